"""HMP: QEMU 7.2's exact texts for the modelled commands, parser errors and help lines.

Expected outputs: the oracle's hmp/ files (info hotpluggable-cpus, info cpus,
info qtree, info qom-tree before/after a device_add and a device_del) and the
``hmp`` list of tests/data/qmp/qemu72_captures.json (one session of real QEMU,
every line's output). Where QEMU's text lists commands this emulator does not
have (``help``, ``info``, ``device_add help``), the emulator's lines must be a
subset of QEMU's, its own additions aside.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from test_qmp_harness import DATA, P8E, QMP_DATA

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.hmp import ADDITION, HmpMonitor, crlf

HMP_DATA = DATA / "hmp"
CAPTURES = json.loads((QMP_DATA / "qemu72_captures.json").read_text())
TID = re.compile(r"thread_id=\d+")


def monitor(argv: list[str] = P8E) -> HmpMonitor:
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    return HmpMonitor(MachineControl(machine))


def oracle_text(phase: str, name: str) -> str:
    return (HMP_DATA / phase / f"{name}.txt").read_text()


@pytest.mark.parametrize("info", ["hotpluggable-cpus", "cpus", "qtree", "qom-tree"])
def test_oracle_info_outputs_before_and_after_add_and_del(info: str) -> None:
    hmp = monitor()
    steps = [
        ("before", None),
        ("after_device_add", "device_add power8e_v2.1-spapr-cpu-core,id=core2,core-id=2"),
        ("after_device_del", "device_del core2"),
    ]
    for phase, command in steps:
        if command is not None:
            assert hmp.execute(command) == ""
        got = hmp.execute(f"info {info}")
        assert TID.sub("thread_id=N", got) == TID.sub(
            "thread_id=N", oracle_text(phase, f"info_{info}")
        )


def test_info_cpus_marks_the_monitors_cpu_and_lists_thread_ids() -> None:
    hmp = monitor()
    lines = hmp.execute("info cpus").splitlines()
    assert lines[0].startswith("* CPU #0: thread_id=") and lines[1].startswith("  CPU #1:")
    assert hmp.execute("info cpus", cpu_index=1).splitlines()[1].startswith("* CPU #1:")


_LISTINGS = {"help", "info", "help info", "device_add help"}
_CAPTURED = CAPTURES["hmp"]


@pytest.mark.parametrize("index", range(len(_CAPTURED)), ids=[line for line, _ in _CAPTURED])
def test_captured_session_line_by_line(index: int) -> None:
    """Replays the captured session up to this line on a fresh machine; compares its output."""
    hmp = monitor()
    for line, _ in _CAPTURED[:index]:
        hmp.execute(line)
    line, response = _CAPTURED[index]
    qemu = response["return"]
    ours = crlf(hmp.execute(line))
    if line not in _LISTINGS:
        assert ours == qemu
        return
    qemu_lines = set(qemu.split("\r\n"))
    own = [x for x in ours.split("\r\n") if ADDITION not in x]
    assert set(own) <= qemu_lines
    assert len(own) >= 6


def test_help_lists_the_additions_as_additions() -> None:
    text = monitor().execute("help")
    additions = [x for x in text.splitlines() if ADDITION in x]
    assert [x.split()[0] for x in additions] == ["dt", "guest", "rtas", "trace", "vcpu"]
    assert all(len(x.split()) >= 2 for x in text.splitlines())
    assert all(len(x.split()) >= 2 for x in monitor().execute("info").splitlines())


def test_device_add_help_is_qemus_cpu_section() -> None:
    qemu = dict(_CAPTURED)["device_add help"]["return"].replace("\r\n", "\n")
    section = qemu[qemu.index("CPU devices:\n") :]
    section = section[: section.index("\n\n") + 2]
    assert monitor().execute("device_add help") == section


def test_errors_print_error_prefix_and_quoting_rules() -> None:
    hmp = monitor()
    assert hmp.execute("device_del nosuchdev") == "Error: Device 'nosuchdev' not found\n"
    assert hmp.execute('device_del "a b"') == "Error: Device 'a b' not found\n"
    assert hmp.execute("") == ""
    assert hmp.execute("   ") == ""


def test_device_add_option_errors_go_to_stderr_with_the_hint_on_the_monitor() -> None:
    machine = build_machine(P8E, io.StringIO())
    machine.reset()
    errors: list[str] = []
    hmp = HmpMonitor(MachineControl(machine), stderr=errors.append)
    out = hmp.execute("device_add power8e_v2.1-spapr-cpu-core,id=9x")
    assert out == 'Try "help device_add" for more information\n'
    assert errors[0] == "Parameter 'id' expects an identifier"


def test_guest_views_without_a_guest_say_so() -> None:
    hmp = monitor()
    assert hmp.execute("guest lscpu") == "guest: no reference guest is loaded in this machine\n"
    assert hmp.execute("guest").startswith("guest: string expected\n")


def test_trace_show_prints_recorded_events() -> None:
    hmp = monitor()
    hmp.execute("device_add power8e_v2.1-spapr-cpu-core,id=core2,core-id=2")
    text = hmp.execute("trace show spapr_drc_attach")
    assert text.splitlines() and all(x.startswith("spapr_drc_attach") for x in text.splitlines())
    assert "0x10000002" in text
    assert hmp.execute("trace") == (
        "trace: usage: trace show [pattern...] | trace diagram [since-ms] | trace draw FILE\n"
    )
    assert hmp.execute("trace show no_such_event") == (
        "trace: no events matching 'no_such_event' recorded\n"
    )


def test_trace_diagram_draws_the_host_side_of_a_hot_add() -> None:
    hmp = monitor()
    hmp.execute("device_add power8e_v2.1-spapr-cpu-core,id=core2,core-id=2")
    lines = hmp.execute("trace diagram").splitlines()
    assert lines[0].split() == ["t", "(ms)", "management", "machine", "guest"]
    rows = [line.split(None, 1)[1] for line in lines[1:]]
    (add,) = [i for i, row in enumerate(rows) if row.startswith("device_add ")]
    assert set(rows[add].split()[1:-1]) == {
        "driver=power8e_v2.1-spapr-cpu-core",
        "id=core2",
        "core-id=2",
    }
    # attach, then one arrow for the pulse of the EPOW interrupt (no CAS happened)
    assert rows[add + 1 : add + 3] == ["(drc 0x10000002: attach)", "irq 0x1000 ──────►"]
    assert hmp.execute("trace diagram soon") == "trace: usage: trace diagram [since-ms]\n"


@pytest.mark.parametrize("version", sorted(CAPTURES["qtree_versions"]))
def test_info_qtree_of_every_machine_version(version: str) -> None:
    hmp = monitor(f"-M pseries-{version},cap-htm=off -cpu POWER8E -smp 2 -m 1G -S".split())
    assert crlf(hmp.execute("info qtree")) == CAPTURES["qtree_versions"][version]


@pytest.mark.parametrize("config", sorted(CAPTURES["configs"]))
def test_info_qtree_and_qom_tree_of_configurations(config: str) -> None:
    hmp = monitor(f"{config} -S".split())
    captured = CAPTURES["configs"][config]
    assert crlf(hmp.execute("info qtree")) == captured["info qtree"]
    assert crlf(hmp.execute("info qom-tree")) == captured["info qom-tree"]
