"""The hotplug state as QEMU's vmstate names it, and the check that a rebuilt machine matches.

:func:`state_sections` computes the sections a migration stream carries
(``spapr_drc``, ``spapr_drc/physical``, ``spapr_pending_events``,
``spapr_option_vector_ov5_cas``, per-vCPU ``cpu``, ``xics``, and the emulator's own
``spapr``, ``cores`` and ``guest``); :func:`verify` refuses a machine rebuilt from a
stream whose journal or sections differ from the source's, naming the first
differing field. ``machine.migration.replay`` says why the stream has this shape.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from guest import LinuxGuest
from machine.board.pseries import PseriesMachine
from machine.migration.stream import MigrationStream, journal_json
from machine.sched import VcpuState
from spapr.cpu_core import SpaprCpuCore
from spapr.errors import QemuError
from spapr.ovec import OV5_DRCONF_MEMORY, OV5_DRMEM_V2, OV5_FORM1_AFFINITY

__all__ = ["core_record", "guest_summary", "state_sections", "verify"]

#: OV5 bits whose negotiation QEMU does not migrate when they are all a machine offers.
_OV5_CAS_UNNEEDED = frozenset({OV5_FORM1_AFFINITY, OV5_DRCONF_MEMORY, OV5_DRMEM_V2})


def _sha256(items: Iterable[Any]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _ov5_cas_needed(machine: PseriesMachine) -> bool:
    """QEMU's spapr_ov5_cas_needed: the machine offers more than the pre-2.8 options."""
    return not machine.ov5.bits <= _OV5_CAS_UNNEEDED


def core_record(core: SpaprCpuCore) -> dict[str, Any]:
    """One core as the ``cores`` section lists it."""
    return {
        "id": core.dev_id,
        "type": core.type_name,
        "core_id": core.core_id,
        "nr_threads": core.nr_threads,
        "node_id": core.node_id,
        "qom_path": core.qom_path,
        "hotplugged": core.hotplugged,
        "vcpus": [t.vcpu_id for t in core.threads],
    }


def _node_json(node: Any) -> dict[str, Any]:
    return {
        "name": node.name,
        "properties": [[p.name, p.value.hex()] for p in node.properties],
        "children": [_node_json(child) for child in node.children],
    }


def guest_summary(guest: LinuxGuest | None) -> dict[str, Any] | None:
    """The guest as the ``guest`` section shows it (None when there is no guest)."""
    if guest is None:
        return None
    try:
        kernel = guest.kernel
    except RuntimeError:
        return {"booted": False}
    cpus_node = guest.tree.find("/cpus")
    return {
        "booted": guest.booted,
        "powered_off": guest.powered_off,
        "cpus": [
            {"logical": c.logical, "hwid": c.hwid, "online": c.online, "node": c.node}
            for c in guest.cpus()
        ],
        "online": guest.online_cpus(),
        "cpus_children": [] if cpus_node is None else [_node_json(n) for n in cpus_node.children],
        "drc_actions": [
            {
                "index": index,
                "time_ns": a.time_ns,
                "action": a.action,
                "outcome": a.outcome.value,
                "rc": a.rc,
                "detail": a.detail,
            }
            for index, a in sorted(kernel.drc_actions.items())
        ],
        "rtas_calls": kernel.rtas_calls,
        # of the calls the guest keeps (the latest few thousand; deterministic on both ends)
        "rtas_digest": _sha256(
            [r.time_ns, r.hwid, r.service, r.token, list(r.args), list(r.rets), r.hcall_status]
            for r in guest.rtas_trace
        ),
        "log_digest": _sha256(guest.dmesg()),
    }


def state_sections(machine: PseriesMachine) -> dict[str, Any]:
    """The machine's hotplug state as vmstate sections (what the stream carries and checks)."""
    drcs = sorted(machine.drcs, key=lambda d: d.index)
    drc_sections = []
    for drc in drcs:
        section = drc.vmstate()
        if section is None:
            continue
        record: dict[str, Any] = {"instance_id": section.index, "state": section.state}
        if section.unplug_requested is not None:
            record["spapr_drc/unplug_requested"] = {"unplug_requested": section.unplug_requested}
        drc_sections.append(record)
    physical = [
        {"instance_id": p.index, "dr_indicator": p.dr_indicator}
        for p in (d.physical_vmstate() for d in drcs)
        if p is not None
    ]
    sections: dict[str, Any] = {"spapr_drc": drc_sections, "spapr_drc/physical": physical}
    if len(machine.events):
        sections["spapr_pending_events"] = [
            {
                "summary": e.summary,
                "extended_length": len(e.extended),
                "extended_log": e.extended.hex(),
            }
            for e in machine.events
        ]
    if _ov5_cas_needed(machine):
        sections["spapr_option_vector_ov5_cas"] = {"ov5_cas": machine.ov5_cas.to_bytes().hex()}
    sched = machine.sched
    sections["cpu"] = [
        {
            "instance_id": t.cpu_index,
            "vcpu_id": t.vcpu_id,
            "compat_pvr": t.compat_pvr,
            "halted": sched.is_halted(t.vcpu_id),
            "run_state": _migrated_run_state(sched.state(t.vcpu_id)).name,
        }
        for t in sorted(machine.iter_threads(), key=lambda t: t.cpu_index)
    ]
    sections["xics"] = machine.xics.vmstate()
    if machine.xive is not None and machine.xive_active:
        # only once XIVE is the active controller, so XICS-mode streams stay as they were
        sections["spapr-xive"] = machine.xive.vmstate()
    sections["spapr"] = {
        "compat_pvr": machine.compat_pvr,
        "hp_evt_negotiated": machine.events.hp_evt_negotiated,
        "radix_guest": machine.radix_guest,
        "htab_shift": machine.htab_shift,
        "rtc_offset_ns": machine.rtc_offset_ns,
    }
    sections["cores"] = [core_record(core) for core in machine.cores]
    sections["guest"] = guest_summary(machine.guest)
    # One JSON round trip: what is compared is what a file holds.
    normalized: dict[str, Any] = json.loads(json.dumps(sections))
    return normalized


def _migrated_run_state(state: VcpuState) -> VcpuState:
    """A thread's scheduling state as the stream carries it.

    Whether a thread with work sits on a host processor (RUNNING) or waits for one
    (RUNNABLE) belongs to the host, not the machine: QEMU's stream carries only
    ``cpu_common``'s ``halted``, and the target's threads are dispatched afresh.
    """
    return VcpuState.RUNNABLE if state is VcpuState.RUNNING else state


def _first_difference(expected: Any, actual: Any, path: str) -> tuple[str, Any, Any] | None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            if key not in expected or key not in actual:
                return (
                    f"{path}[{key!r}]",
                    expected.get(key, "<absent>"),
                    actual.get(key, "<absent>"),
                )
            found = _first_difference(expected[key], actual[key], f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (a, b) in enumerate(zip(expected, actual)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        if len(expected) != len(actual):
            return f"len({path})", len(expected), len(actual)
        return None
    if expected != actual or type(expected) is not type(actual):
        return path, expected, actual
    return None


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 100 else text[:97] + "..."


def verify(stream: MigrationStream, machine: PseriesMachine) -> None:
    """Refuse a rebuilt machine whose journal or state sections differ from the stream's."""
    if journal_json(machine.journal) != journal_json(stream.journal):
        raise QemuError("migration: the replayed journal differs from the source's")
    found = _first_difference(stream.sections, state_sections(machine), "sections")
    if found is not None:
        where, ours, theirs = found
        raise QemuError(
            f"migration: the machine rebuilt from the stream differs from the source at "
            f"{where}: source {_short(ours)}, rebuilt {_short(theirs)}"
        )
