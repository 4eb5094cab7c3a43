"""Tracing from the command line: -trace/-D in QEMU's format and pattern syntax (against
QEMU 7.2's recorded selections), -trace-json identical per run, XIVE's events on POWER9."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from machine.board.build import build_machine
from machine.cli.main import main

SCENARIO = """\
-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nodefaults -seed 7 -guest linux
device_add power9_v2.0-spapr-cpu-core,id=core2,core-id=2
device_del core2
"""


def run(tmp_path: Path, name: str, extra: list[str]) -> str:
    scenario = tmp_path / "s.hmp"
    scenario.write_text(SCENARIO)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["-scenario", str(scenario), *extra]) == 0
    return out.getvalue()


def test_trace_json_is_identical_for_identical_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run(tmp_path, "a", ["-trace-json", str(first)])
    run(tmp_path, "b", ["-trace-json", str(second)])
    assert first.read_bytes() == second.read_bytes()
    events = [json.loads(line) for line in first.read_text().splitlines()]
    assert all("t" in e and "event" in e for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    rtas = [e for e in events if e["event"] == "rtas_call"]
    assert rtas and all({"vcpu", "name", "args", "status", "rets"} <= set(e) for e in rtas)
    names = [e["name"] for e in rtas]
    assert "ibm,configure-connector" in names and "stop-self" in names
    states = [e for e in events if e["event"] == "vcpu_state"]
    assert any(e["vcpu"] == 2 and e["new"] == "RUNNING" for e in states)


def test_trace_patterns_write_qemu_lines_to_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "qemu.log"
    run(tmp_path, "c", ["-trace", "spapr_drc_set*", "-trace", "spapr_drc_attach", "-D", str(log)])
    lines = log.read_text().splitlines()
    assert lines[0] == "spapr_drc_attach drc: 0x10000000"
    assert "spapr_drc_attach drc: 0x10000002" in lines
    assert "spapr_drc_set_allocation_state drc: 0x10000002, state: 0x1" in lines
    assert "spapr_drc_set_isolation_state drc: 0x10000002, state: 0x0" in lines
    assert all(line.startswith(("spapr_drc_set", "spapr_drc_attach")) for line in lines)


PATTERNS = json.loads((Path(__file__).parent / "data" / "xive" / "trace_patterns.json").read_text())


@pytest.mark.parametrize("case", PATTERNS["cases"], ids=lambda c: json.dumps(c["trace"]))
def test_trace_patterns_select_what_qemu_selects(tmp_path: Path, case: dict[str, Any]) -> None:
    """-trace as QEMU 7.2 reads it (tests/data/xive/trace_patterns.json): ``*`` and ``?``
    only, a leading ``-`` deselects, later options win, events files alike; the XIVE
    sources' claims at creation are logged as QEMU logs them."""
    log = tmp_path / "trace.log"
    argv = [*PATTERNS["args"].split(), "-D", str(log)]
    for item in case["trace"]:
        if isinstance(item, dict):
            events = tmp_path / "events"
            events.write_text("".join(f"{line}\n" for line in item["events"]))
            item = f"events={events}"
        argv += ["-trace", item]
    err = io.StringIO()
    build_machine(argv, err)
    stderr = [ln for ln in err.getvalue().splitlines() if "TCG doesn't support" not in ln]
    assert (log.read_text() if log.exists() else "") == case["log"]
    assert stderr == case["stderr"]


def test_trace_show_and_json_carry_the_xive_events_of_a_hot_add(tmp_path: Path) -> None:
    """On POWER9 the hot-plug interrupt is XIVE's: ``trace show`` with several
    patterns (as several -trace options) and -trace-json both carry it."""
    scenario = tmp_path / "s.hmp"
    scenario.write_text(
        SCENARIO.splitlines()[0]
        + "\ndevice_add power9_v2.0-spapr-cpu-core,id=core2,core-id=2\n"
        + "trace show spapr_xive_set_irq xive_tctx_* -xive_tctx_tm_*\n"
    )
    trace_json = tmp_path / "t.jsonl"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["-scenario", str(scenario), "-trace-json", str(trace_json)]) == 0
    shown = [ln for ln in out.getvalue().splitlines() if ln.startswith(("spapr_xive", "xive_"))]
    names = [ln.split()[0] for ln in shown]
    raised = shown.index("spapr_xive_set_irq lisn=0x1001 val=1")
    assert names.index("xive_tctx_notify", raised) < names.index("xive_tctx_accept", raised)
    assert not any(ln.startswith("xive_tctx_tm_") for ln in shown)
    assert set(names) <= {
        "spapr_xive_set_irq",
        "xive_tctx_accept",
        "xive_tctx_notify",
        "xive_tctx_set_cppr",
    }
    events = [json.loads(line) for line in trace_json.read_text().splitlines()]
    assert any(
        e["event"] == "spapr_xive_set_irq" and e["lisn"] == 0x1001 and e["val"] == 1 for e in events
    )
