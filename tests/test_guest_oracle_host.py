"""The host side of a real Linux 6.12 guest's CPU hotplug on QEMU 7.2, against the emulator's.

The same replay as test_guest_oracle (tests/guest_oracle_replay.py); compared
here: the command line, QEMU's trace lines for the events the recording enabled
(``spapr_drc_*``, ``spapr_cas_*``, ``xics_ics_set_irq*``, ``spapr_xive_set_irq``,
with each command's ``monitor_qmp_cmd_in_band`` marking where it ran) at boot and
during the operations, and the whole QMP session: greeting, every response and
every event, in order and member for member.

Every difference the comparison tolerates is named below with its reason; each
test also checks that the named difference really occurs, so none hides
anything else.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from guest_oracle_replay import (
    DROPPED_OPTIONS,
    POWER9_RUNS,
    RUNS,
    emulator_argv,
    recording,
    replay,
)

#: QEMU's monitor trace point prints an event's enum number and a host pointer; the
#: events themselves are compared in the QMP session.
MONITOR_EVENT_LINE = "monitor_protocol_event_emit "
#: The recording's harness typed "irq" at the guest's console (hvc0, QEMU's spapr-vty,
#: interrupt 0x1100) to read /proc/interrupts before quitting. The emulator models no
#: VIO console and takes no console input, so this interrupt never fires.
CONSOLE_INPUT = "console-in"
VTY_IRQ_LINE = re.compile(r"\[irq 0x1100\]$|^spapr_xive_set_irq lisn=0x1100 ")
#: QEMU's default PCI devices, plugged at boot because the command line has neither
#: -nodefaults nor -vga none: the VGA adapter (slot 0) and the USB xHCI controller
#: (slot 1). Each plug is an attach of its PCI connector and the reset that follows it.
#: The emulator models no PCI devices (README: not modelled); their connectors exist,
#: empty, and take part in every machine reset like QEMU's.
DEFAULT_PCI_DEVICE_DRCS = {0x40000000: "VGA, slot 0", 0x40000008: "nec-usb-xhci, slot 1"}
#: "Copy changes to the guest: N bytes" counts the whole tree QEMU rebuilds at CAS,
#: with nodes the emulator does not model (the PCI host bridge's devices, VIO, ...).
CAS_TREE_SIZE_LINE = "spapr_cas_continue Copy changes to the guest: "
#: Interrupt-controller trace points (compared separately: POWER9 negotiated XIVE).
INTERRUPT_LINE = re.compile(r"^(xics_ics_set_irq|spapr_xive_set_irq)")
#: Host thread ids (query-cpus-fast, HMP "info cpus") are the host's, not the machine's.
HMP_THREAD_ID = re.compile(r"thread_id=\d+")


def without(lines: list[str], *, interrupts: bool) -> list[str]:
    """Trace lines without the named differences (and, if asked, the interrupt lines)."""
    out = []
    for line in lines:
        if line.startswith(MONITOR_EVENT_LINE) or VTY_IRQ_LINE.search(line):
            continue
        if interrupts and INTERRUPT_LINE.match(line):
            continue
        out.append(line)
    return out


def normalised(message: Any) -> Any:
    """A QMP message without event time stamps and host thread ids (member order kept)."""
    if isinstance(message, dict):
        return {
            key: "TID" if key == "thread-id" else normalised(value)
            for key, value in message.items()
            if key != "timestamp"
        }
    if isinstance(message, list):
        return [normalised(item) for item in message]
    if isinstance(message, str):
        return HMP_THREAD_ID.sub("thread_id=TID", message)
    return message


def greeting_view(message: dict[str, Any]) -> dict[str, Any]:
    """The greeting without ``package`` (the build's name) and ``capabilities``.

    QEMU is Debian's package and offers ``oob``; the emulator names itself and
    offers no capabilities, as it has no out-of-band execution.
    """
    return {"version": message["QMP"]["version"]["qemu"]}


# ------------------------------------------------------------------ command line


@pytest.mark.parametrize("run", RUNS)
def test_emulator_runs_the_recorded_command_line(run: str) -> None:
    """QEMU's options for the machine, unchanged; only the guest's and the recorder's go."""
    cmdline = recording(run).qemu_cmdline
    argv = emulator_argv(cmdline)
    cpu = cmdline[cmdline.index("-cpu") + 1]
    assert argv == [
        *("-M", "pseries", "-cpu", cpu, "-smp", "1,cores=4,threads=1,maxcpus=4"),
        *("-m", "1G", "-nographic"),
    ]
    dropped = [w for w in cmdline if w.startswith("-") and w not in argv]
    assert set(dropped) == set(DROPPED_OPTIONS)


# --------------------------------------------------------------------------- QMP


@pytest.mark.parametrize("run", RUNS)
def test_qmp_session_matches(run: str) -> None:
    rec = recording(run)
    expected = [row["msg"] for row in rec.qmp if row["dir"] == "in"]
    # the console input is not replayed (see CONSOLE_INPUT); it brought no QMP message
    assert [row["msg"] for row in rec.qmp if row["dir"] == CONSOLE_INPUT] == ["irq\n"]
    got = replay(run).qmp_in
    assert greeting_view(got[0]) == greeting_view(expected[0])
    want = [json.dumps(normalised(m)) for m in expected[1:]]
    have = [json.dumps(normalised(m)) for m in got[1:]]
    assert have == want


# ------------------------------------------------------------------ boot trace


@pytest.mark.parametrize("run", RUNS)
def test_boot_connector_trace_matches(run: str) -> None:
    """Realize, attach and both resets of every connector, in QEMU's (hash) order."""
    recorded = [ln for ln in recording(run).boot_trace if ln.startswith("spapr_drc_")]
    expected = list(recorded)
    for drc in DEFAULT_PCI_DEVICE_DRCS:
        plug = [f"spapr_drc_attach drc: 0x{drc:x}", f"spapr_drc_reset drc: 0x{drc:x}"]
        at = expected.index(plug[0])
        assert expected[at : at + 2] == plug
        del expected[at : at + 2]
    got = [ln for ln in replay(run).boot_trace if ln.startswith("spapr_drc_")]
    assert got == expected


@pytest.mark.parametrize("run", RUNS)
def test_boot_cas_trace_matches(run: str) -> None:
    recorded = [ln for ln in recording(run).boot_trace if ln.startswith("spapr_cas_")]
    got = [ln for ln in replay(run).boot_trace if ln.startswith("spapr_cas_")]
    assert [ln.startswith(CAS_TREE_SIZE_LINE) for ln in recorded] == [False, True]
    assert [ln.startswith(CAS_TREE_SIZE_LINE) for ln in got] == [False, True]
    assert got[0] == recorded[0]


# ----------------------------------------------------------- hotplug-time trace


@pytest.mark.parametrize("run", RUNS)
def test_hotplug_trace_matches_apart_from_interrupt_lines(run: str) -> None:
    """Every DR connector line after boot, between the same commands, in the same order."""
    recorded = recording(run).trace
    assert any(ln.startswith(MONITOR_EVENT_LINE) for ln in recorded)
    assert sum(1 for ln in recorded if VTY_IRQ_LINE.search(ln)) == 2
    expected = without(recorded, interrupts=True)
    assert without(replay(run).trace, interrupts=True) == expected


@pytest.mark.parametrize("run", RUNS)
def test_hotplug_trace_matches_with_interrupt_lines(run: str) -> None:
    """Each event's interrupt pulses too, and the re-pulse when events are still queued."""
    expected = without(recording(run).trace, interrupts=False)
    assert without(replay(run).trace, interrupts=False) == expected


@pytest.mark.parametrize("run", POWER9_RUNS)
def test_power9_interrupt_lines_are_xives(run: str) -> None:
    """POWER9 negotiated XIVE: QEMU and the emulator both pulse the XIVE source, never XICS."""
    for lines in (recording(run).trace, replay(run).trace):
        kept = without(lines, interrupts=False)
        assert any(ln.startswith("spapr_xive_set_irq") for ln in kept)
        assert not any(ln.startswith("xics_") for ln in kept)
