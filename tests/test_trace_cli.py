"""Tracing from the command line: -trace/-D in QEMU's format, -trace-json identical per run."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

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
