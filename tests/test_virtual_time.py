"""Virtual time: the views, the trace and the diagram tell one story.

Two learner reports started this. (a) After ``device_del``, ``guest lscpu`` showed the
CPU gone while the diagram put ``stop-self`` later: the view ran after the scripted
session had let the machine settle, but nothing showed when it ran. (b) With
``-guest none`` every time in the diagram was ``0.000``: the virtual clock only
moved when a guest program was loaded, although QEMU's clock runs while the VM runs,
OS or not.

The expectations come from the rules the README states, not from the emulator's
output: a scripted command is followed by the machine running until it has been
quiet for the quiet period (50 ms, checked every 10 ms; at once without guest
code); a stopped VM's clock stands still; every monitor command is traced at the
virtual time it ran (QEMU's ``handle_hmp_command`` event); and Linux's CPU removal
order (protocol.md §7.2): the dying thread goes offline before it calls
``stop-self``, and the CPU stops being present only after the guest has given the
connector back (``set-indicator`` isolate, unusable, then DEVICE_DELETED).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from oracle_tools import QEMU

from machine.board.build import build_machine
from machine.cli.runner import Scenario, run_scenario
from machine.diagrams.pictures import draw_svg
from machine.diagrams.trace_window import TraceWindow
from machine.monitor.control import QUIET_PERIOD_NS, MachineControl
from machine.monitor.hmp import HmpMonitor
from spapr.trace import TraceEvent

P8E = "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nodefaults -seed 1"
CORE = "power8e_v2.1-spapr-cpu-core"
MS = 1_000_000


def scripted(args: str, commands: list[str]) -> tuple[MachineControl, str]:
    """Run ``commands`` as a scenario does; the control and the transcript."""
    machine = build_machine(args.split(), io.StringIO())
    machine.reset()
    control = MachineControl(machine)
    out = io.StringIO()
    run_scenario(control, Scenario("t", tuple(args.split()), tuple(commands)), out=out, err=out)
    return control, out.getvalue()


def hmp_times(control: MachineControl) -> list[tuple[str, int]]:
    """Every monitor command line with the virtual time it ran at."""
    return [
        (str(e.fields["cmdline"]), e.t)
        for e in control.machine.trace.events
        if e.name == "handle_hmp_command"
    ]


def diagram_rows(text: str) -> list[tuple[float, str]]:
    """The rows of the last ``trace diagram`` in a transcript: (ms, text)."""
    body = text.rsplit("(qemu) trace diagram\n", 1)[1]
    rows = []
    for line in body.splitlines()[1:]:
        stamp, rest = line[:10], line[10:]
        rows.append((float(stamp), rest.strip()))
    return rows


# -- (b) the clock runs while the VM runs, guest or not --------------------------------


def test_without_a_guest_each_scripted_command_comes_one_quiet_period_later() -> None:
    commands = [
        "info status",
        f"device_add {CORE},id=core2,core-id=2",
        "device_del core2",
        "info events",
    ]
    control, text = scripted(f"{P8E} -guest none", commands)
    # the session settles once after the banner, then once after every command
    assert hmp_times(control) == [(c, (i + 1) * QUIET_PERIOD_NS) for i, c in enumerate(commands)]
    (add,) = control.machine.trace.select("host_command")[:1]
    assert add.t == 2 * QUIET_PERIOD_NS
    # nothing acquired core 2's connector, so device_del completes at once (QEMU 7.2)
    assert re.search(r"^ +0\.150000 s  DEVICE_DELETED .*\"device\": \"core2\"", text, re.M)


def test_a_stopped_vm_keeps_its_clock_still_without_a_guest() -> None:
    control, _ = scripted(
        f"{P8E} -S -guest none", ["info status", f"device_add {CORE},id=c,core-id=2"]
    )
    assert [t for _, t in hmp_times(control)] == [0, 0]


def test_stop_and_cont_freeze_and_release_the_clock() -> None:
    control, _ = scripted(f"{P8E} -guest none", ["stop", "info status", "cont", "info status"])
    times = dict(hmp_times(control))
    assert times["stop"] == QUIET_PERIOD_NS
    assert times["cont"] == QUIET_PERIOD_NS  # paused: no time passed after stop
    assert control.machine.sched.now == 3 * QUIET_PERIOD_NS


# -- (a) a look happens at the virtual time it is taken -----------------------------------


SEED_LIKE = [
    f"device_add {CORE},id=core2,core-id=2",
    "device_del core2",
    "guest lscpu",
    "trace diagram",
]


def test_guest_lscpu_after_device_del_runs_after_the_whole_remove() -> None:
    control, text = scripted(f"{P8E} -guest linux", SEED_LIKE)
    events = control.machine.trace.events
    looked = next(
        e.t for e in events if e.name == "handle_hmp_command" and "lscpu" in str(e.fields)
    )
    stop_self = _rtas(events, "stop-self")[-1].t
    deleted = next(
        e.t for e in events if e.name == "qmp_event" and e.fields["name"] == "DEVICE_DELETED"
    )
    deleting = dict(hmp_times(control))["device_del core2"]
    assert deleting < stop_self <= deleted < looked
    # the remove was over when the look was taken; at least the quiet period has passed
    assert looked - deleted >= QUIET_PERIOD_NS
    lscpu = text.split("(qemu) guest lscpu\n", 1)[1]
    assert re.search(r"^CPU\(s\): +2$", lscpu, re.M)


def test_the_diagram_draws_each_look_at_its_time_and_each_operation_once() -> None:
    _, text = scripted(f"{P8E} -guest linux", SEED_LIKE)
    rows = diagram_rows(text)
    texts = [r for _, r in rows]
    assert sum(r.startswith("device_del id=core2") for r in texts) == 1
    assert not any(r.startswith("(hmp) device_") for r in texts)
    (look,) = [t for t, r in rows if r == "(hmp) guest lscpu"]
    stop_self = next(t for t, r in rows if "stop-self()" in r)
    assert look > stop_self
    # the diagram's last row is the diagram itself: where "now" is
    assert texts[-1] == "(hmp) trace diagram"
    assert rows == sorted(rows, key=lambda r: r[0])


def test_the_manual_guests_rtas_lines_are_not_drawn_twice() -> None:
    args = "-M pseries -cpu POWER9 -smp 1,maxcpus=4 -m 1G -nodefaults -seed 1 -guest manual"
    _, text = scripted(
        args,
        [
            "device_add power9_v2.0-spapr-cpu-core,id=core1,core-id=1",
            "rtas check-exception",
            "trace diagram",
        ],
    )
    texts = [r for _, r in diagram_rows(text)]
    assert not any(r.startswith("(hmp) rtas") for r in texts)
    assert sum("check-exception(" in r for r in texts) == 1


def _rtas(events: list[TraceEvent], name: str) -> list[TraceEvent]:
    return [e for e in events if e.name == "rtas_call" and e.fields["name"] == name]


def _lscpu_field(text: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}:? +(.*)$", text, re.M)
    return match.group(1) if match else ""


def test_guest_lscpu_shows_what_the_guest_sees_at_the_current_virtual_time() -> None:
    """Step through a remove 0.25 ms at a time: each look agrees with the trace so far."""
    machine = build_machine(f"{P8E} -guest linux".split(), io.StringIO())
    machine.reset()
    control = MachineControl(machine)
    hmp = HmpMonitor(control)
    control.settle()
    hmp.execute(f"device_add {CORE},id=core2,core-id=2")
    control.settle()
    hmp.execute("device_del core2")
    start = machine.sched.now
    seen = set()
    for step in range(60):
        machine.sched.run_until(start + step * MS // 4)
        text = hmp.execute("guest lscpu")
        online = _lscpu_field(text, "On-line CPU(s) list")
        present = _lscpu_field(text, "CPU(s)")
        stopped = bool(_rtas(machine.trace.events, "stop-self"))
        released = any(
            e.name == "qmp_event" and e.fields.get("data", {}).get("device") == "core2"
            for e in machine.trace.events
        )
        # §7.2: the thread is offline before it stops itself; gone only after the release
        if online == "0-2":
            assert not stopped
        if present == "2":
            assert released and online == "0-1"
        if not released:
            assert present == "3"
        seen.add((present, online))
    # and every stage was seen: online, going (offline, still present), gone
    assert seen == {("3", "0-2"), ("3", "0-1"), ("2", "0-1")}


# -- the trace event and the picture -------------------------------------------------------


def test_every_monitor_line_is_traced_as_qemus_handle_hmp_command() -> None:
    machine = build_machine(f"{P8E} -S -guest none".split(), io.StringIO())
    machine.reset()
    hmp = HmpMonitor(MachineControl(machine))
    hmp.execute("info status")
    hmp.execute("nonsense")
    lines = machine.trace.qemu_lines("handle_hmp_command")
    assert [re.sub(r"mon 0x[0-9a-f]+ ", "mon ADDR ", x) for x in lines] == [
        "handle_hmp_command mon ADDR cmdline: info status",
        "handle_hmp_command mon ADDR cmdline: nonsense",
    ]


@pytest.mark.qemu
def test_handle_hmp_command_reads_as_in_qemu(tmp_path: Path) -> None:
    """The same -trace line from QEMU 7.2 and from the emulator (the address aside)."""
    argv = ["-M", "pseries", "-S", "-nodefaults", "-display", "none"]
    argv += ["-trace", "handle_hmp_command", "-monitor", "stdio"]
    commands = "info status\nquit\n"
    assert QEMU is not None
    runs = [
        subprocess.run(cmd, input=commands, capture_output=True, text=True, timeout=60, check=False)
        for cmd in ([QEMU, *argv], [sys.executable, "-m", "spapr", *argv])
    ]
    traced = [
        [
            re.sub(r"mon 0x[0-9a-f]+ ", "mon ADDR ", line)
            for line in (run.stdout + run.stderr).replace("\r", "").splitlines()
            if line.startswith("handle_hmp_command ")
        ]
        for run in runs
    ]
    assert traced[0] == [
        "handle_hmp_command mon ADDR cmdline: info status",
        "handle_hmp_command mon ADDR cmdline: quit",
    ]
    assert traced[1] == traced[0]


def test_the_svg_says_its_times_are_milliseconds() -> None:
    control, _ = scripted(f"{P8E} -guest linux", SEED_LIKE[:2])
    text, _count = draw_svg(control.machine.trace.events, TraceWindow())
    assert ">t (ms)</text>" in text
