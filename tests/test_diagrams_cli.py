"""The front ends of the pictures: ``spapr trace-draw``, ``spapr trace-report``, HMP
``trace draw`` and ``-trace-html`` (written when the machine quits)."""

from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from diagram_runs import hotplug_run

from machine.cli.main import main
from machine.diagrams import svg

SCENARIO = """\
-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nodefaults -seed 7 -guest linux
device_add power9_v2.0-spapr-cpu-core,id=core2,core-id=2
trace draw {svg} --op 1
trace draw {states} --state-diagram
trace draw
device_del core2
"""


def run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_text(hotplug_run().jsonl)
    return path


def messages_in(path: Path) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    return [g for g in root.iter(f"{{{svg.SVG_NS}}}g") if "message" in g.get("class", "").split()]


def test_trace_draw_writes_the_sequence_diagram(trace_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "handshake.svg"
    status, stdout, _ = run_main(["trace-draw", str(trace_file), "-o", str(out)])
    assert status == 0
    drawn = messages_in(out)
    assert stdout == f"{out}: {len(drawn)} messages\n"
    commands = [g for g in drawn if g.get("data-kind") == "command"]
    assert len(commands) == hotplug_run().jsonl.count('"event":"host_command"')


def test_trace_draw_windows_and_the_state_diagram(trace_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "op.svg"
    assert run_main(["trace-draw", str(trace_file), "-o", str(out), "--op", "3"])[0] == 0
    kinds = [g.get("data-kind") for g in messages_in(out)]
    assert kinds.count("command") == 1
    states = tmp_path / "states.svg"
    args = ["trace-draw", str(trace_file), "-o", str(states), "--state-diagram"]
    status, stdout, _ = run_main(args)
    assert status == 0 and stdout.endswith("transitions\n")
    assert ET.parse(states).getroot().get("class") == "states"
    status, _, err = run_main(["trace-draw", str(trace_file), "-o", str(out), "--op", "9"])
    assert status == 1 and err == "spapr trace-draw: no host operation 9: the trace has 3\n"
    status, _, err = run_main(["trace-draw", str(tmp_path / "none.jsonl"), "-o", str(out)])
    assert status == 1 and "cannot read" in err


def test_trace_report_writes_one_self_contained_page(trace_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    status, stdout, _ = run_main(["trace-report", str(trace_file), "-o", str(out)])
    assert status == 0 and stdout == f"{out}: written\n"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # nothing fetched: no external script, style, image or link
    for needle in ("src=", "href=", "@import", "url(http", "//cdn"):
        assert needle not in page, needle
    assert page.count("<svg") == 2


def test_a_broken_trace_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "event": "x"}\nnot json\n')
    status, _, err = run_main(["trace-report", str(bad), "-o", str(tmp_path / "r.html")])
    assert status == 1 and "line 2: not a trace event" in err


def test_hmp_trace_draw_and_trace_html_at_quit(tmp_path: Path) -> None:
    scenario = tmp_path / "s.hmp"
    seq, states, page = tmp_path / "seq.svg", tmp_path / "states.svg", tmp_path / "run.html"
    scenario.write_text(SCENARIO.format(svg=seq, states=states))
    jsonl = tmp_path / "run.jsonl"
    args = ["-scenario", str(scenario), "-trace-html", str(page), "-trace-json", str(jsonl)]
    status, stdout, _ = run_main(args)
    assert status == 0
    drawn = messages_in(seq)
    assert f"trace: {len(drawn)} messages drawn in {seq}" in stdout
    assert "trace: the file to write is missing" in stdout
    assert ET.parse(states).getroot().get("class") == "states"
    # the page covers the whole run, the device_del after the drawing included
    text = page.read_text()
    data = json.loads(text.split('id="steps-data">', 1)[1].split("</script>", 1)[0])
    commands = [s["label"].split()[0] for s in data["steps"] if s["kind"] == "command"]
    assert commands == ["device_add", "device_del"]
    recorded = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert data["steps"][-1]["event"] < len(recorded)
