"""HMP views around a hotplug handshake: connectors, interrupts, events, the guest's tree.

``info pic`` is QEMU's command and prints QEMU 7.2's text for the emulated XICS;
the others are the project's (marked as additions in ``help``) and print what a
learner needs beside the ``rtas`` prompt: ``info drc`` (every DR connector's
state), ``info events`` (the QMP events so far, with virtual time: HMP itself
shows none, so nothing else at the prompt says an unplug finished), ``info
pending`` (what QEMU holds for the guest and the interrupts it raised), and ``dt
show PATH`` (the device tree as the guest sees it now, as dtc prints it).
Each function returns the lines to print.
"""

from __future__ import annotations

import json
from typing import Any

import fdt
from machine.board.manual_guest import ManualGuest
from machine.board.pseries import PseriesMachine
from rtas import EventLogError, decode_event_log
from spapr.drc import DRC, DrcType
from spapr.xics import SourceStatus

#: ``info drc`` filters: a DRC type by name.
DRC_TYPES = {t.name.lower(): t for t in DrcType}


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.6f} s"


# ------------------------------------------------------------------------------ info pic


def info_pic(machine: PseriesMachine) -> list[str]:
    """QEMU's ``info pic``: the active controller's state (XICS, or XIVE once active),
    then whether that controller is KVM's in-kernel device (spapr_pic_print_info)."""
    if machine.xive_active and machine.xive is not None:
        lines = machine.xive.info_pic().splitlines()
    else:
        lines = machine.xics.info_pic().splitlines()
    return [*lines, f"irqchip: {'in-kernel' if machine.kvm_irqchip_in_kernel else 'emulated'}"]


# ------------------------------------------------------------------------------ info drc


def _device_path(device: object | None) -> str:
    if device is None:
        return "-"
    path = getattr(device, "qom_path", None) or getattr(device, "path", None)
    return str(path) if path else type(device).__name__


def _drc_notes(drc: DRC) -> str:
    notes = []
    if drc.unplug_requested:
        notes.append("unplug requested")
    if drc.fragment_steps and drc.ccs_offset > 0 and not drc.is_ready:
        notes.append(f"walk at step {drc.ccs_offset} of {len(drc.fragment_steps)}")
    if not drc.is_logical:
        notes.append(f"dr-indicator {drc.dr_indicator.name}")
    return ", ".join(notes)


def info_drc(machine: PseriesMachine, which: str | None) -> list[str]:
    """Every connector (or one type, or one index): index, name, state, sense, device."""
    drcs = sorted(machine.drcs, key=lambda d: d.index)
    if which is not None:
        key = which.lower()
        if key in DRC_TYPES:
            drcs = [d for d in drcs if d.type is DRC_TYPES[key]]
        else:
            try:
                index = int(which, 0)
            except ValueError:
                kinds = "|".join(sorted({d.type.name.lower() for d in machine.drcs}))
                return [f"info drc: usage: info drc [{kinds}|INDEX]"]
            drcs = [d for d in drcs if d.index == index]
            if not drcs:
                return [f"info drc: no connector with index {index:#x}"]
    rows = [("index", "name", "state", "sense", "device", "notes")]
    for drc in drcs:
        _, sense = drc.entity_sense()
        rows.append(
            (
                f"{drc.index:#010x}",
                drc.name,
                drc.state.name,
                sense.name,
                _device_path(drc.device),
                _drc_notes(drc),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])).rstrip()
        + (f"  {row[5]}" if row[5] else "")
        for row in rows
    ]


# ------------------------------------------------------------------------------ info events


def info_events(machine: PseriesMachine, name: str | None) -> list[str]:
    """The QMP events the machine emitted, oldest first, with their virtual time."""
    events = [e for e in machine.qmp_events if name is None or e.name == name.upper()]
    if not events:
        return ["no QMP events yet" if name is None else f"no {name.upper()} events yet"]
    return [f"{_seconds(e.t):>14}  {e.name} {json.dumps(dict(e.data))}".rstrip() for e in events]


# ------------------------------------------------------------------------------ info pending


def info_pending(machine: PseriesMachine, guest: Any) -> list[str]:
    """Events QEMU holds for the guest, interrupts raised and not yet taken or answered."""
    lines: list[str] = []
    entries = list(machine.events)
    lines.append(
        f"events QEMU holds for the guest: {len(entries)}"
        + (" (check-exception returns them oldest first)" if entries else "")
    )
    for n, entry in enumerate(entries, 1):
        source = machine.events.route(entry)
        cls = source.event_class
        try:
            log = decode_event_log(entry.to_bytes())
            hp = log.hotplug
            what = (
                f"hotplug {hp.action.name} {hp.resource.name} drc index {hp.drc_index:#x}"
                if hp is not None and hp.drc_index is not None
                else ("EPOW" if log.epow is not None else f"type {log.event_type:#x}")
            )
        except EventLogError:
            what = f"summary {entry.summary:#010x}"
        lines.append(
            f"  {n}. {what} -> {cls.node_name} (irq {source.irq:#x}, mask {cls.mask:#010x})"
        )
    xics = machine.xics
    for icp in xics.icps.values():
        if icp.xisr:
            lines.append(
                f"  XICS: irq {icp.xisr:#x} presented to CPU {icp.cpu_index}, not yet accepted"
            )
    for srcno, src in enumerate(xics.ics.sources):
        irq = xics.ics.offset + srcno
        if src.status & SourceStatus.MASKED_PENDING:
            lines.append(f"  XICS: irq {irq:#x} is masked with a pulse pending")
        if src.status & SourceStatus.REJECTED:
            lines.append(f"  XICS: irq {irq:#x} was rejected and waits to be resent")
    if isinstance(guest, ManualGuest):
        waiting = guest.unanswered()
        lines.append(f"interrupts the guest took and has not answered: {len(waiting)}")
        for taken in waiting:
            origin = taken.source or "not an event source"
            lines.append(
                f"  irq {taken.irq:#x} ({origin}) on vCPU {taken.vcpu} at "
                f"{_seconds(taken.time_ns)}: 'rtas check-exception' fetches its event"
            )
    return lines


# ------------------------------------------------------------------------------ dt show


def guest_tree(machine: PseriesMachine, guest: Any) -> tuple[fdt.Node | None, str]:
    """The tree the guest sees now, and whose view it is."""
    if isinstance(guest, ManualGuest):
        return guest.tree, "the manual guest's tree"
    if guest is not None:
        try:
            tree = getattr(guest, "tree", None)
        except RuntimeError:  # the reference guest has not booted
            return None, "no tree"
        if isinstance(tree, fdt.Node):
            return tree, "the reference guest's tree"
    if machine.fdt_blob:
        return fdt.from_dtb(machine.fdt_blob).root, "the tree QEMU placed for the boot CPU"
    return None, "no tree"


def dt_show(machine: PseriesMachine, guest: Any, path: str) -> list[str]:
    """``dt show PATH``: the node as dtc prints it."""
    root, _ = guest_tree(machine, guest)
    if root is None:
        return ["dt: the guest has no device tree yet (it has not booted)"]
    node = root.find(path) if path != "/" else root
    if node is None:
        return [f"dt: no node {path} in the guest's tree"]
    lines = fdt.to_dts(node).splitlines()
    if node is not root:  # a subtree: dtc's file header belongs to whole trees only
        while lines and (not lines[0] or lines[0].startswith("/dts-v1/")):
            lines.pop(0)
    return lines
