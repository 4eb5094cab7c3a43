"""The differential campaign: generated QMP sequences, QEMU 7.2 against the emulator.

The crash predictor is checked against QEMU's recorded crashes (tests/data/errors/
defect_*.jsonl) without QEMU; the short campaign, the command line on pytest-xdist
workers and the shrinking of a (planted) mismatch need the real qemu-system-ppc64.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from conformance import campaign as C
from conformance.qmp import EmulatorSession, Exchange

ROOT = Path(__file__).resolve().parent.parent
DEFECTS = sorted((ROOT / "tests" / "data" / "errors").glob("defect_*.jsonl"))
P8E = "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 -m 1G".split()


def _requests(path: Path) -> list[tuple[dict[str, Any], bool]]:
    """(request, answered) of a recorded transcript (the crashing request has no answer)."""
    entries = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out: list[tuple[dict[str, Any], bool]] = []
    for entry in entries:
        msg = entry["msg"]
        if entry["dir"] == "out":
            if msg.get("execute") != "qmp_capabilities":
                out.append((msg, False))
        elif out and "event" not in msg and "QMP" not in msg:
            out[-1] = (out[-1][0], True)
    return out


@pytest.mark.parametrize("path", DEFECTS, ids=lambda p: p.stem)
def test_the_predictor_names_each_recorded_qemu_crash_and_nothing_before(path: Path) -> None:
    steps = _requests(path)
    assert [answered for _, answered in steps][-1] is False, "the transcript ends in a crash"
    config = C.MachineArgs(cpu="POWER8E", cpus=2, cores=4, threads=1, maxcpus=4)
    predictor = C.CrashPredictor.for_config(config)
    with EmulatorSession(P8E) as emulator:
        for request, answered in steps:
            exchange = emulator.execute(request)
            predicted = predictor.before(request, exchange)
            if answered:
                assert predicted is None, request
                predictor.after(request, exchange)
            else:
                assert predicted in C.KNOWN_CRASHES, request


def test_the_predictor_knows_the_emulators_refusals_of_crashing_requests() -> None:
    config = C.MachineArgs(cpu="POWER8E", cpus=2, cores=4, threads=1, maxcpus=4)
    predictor = C.CrashPredictor.for_config(config)
    with EmulatorSession(P8E) as emulator:
        for args, crash in (
            ({"core-id": 2**31}, "core-id-wraps-negative"),
            ({"core-id": 2, "realized": True}, "realized-on"),
            ({"core-id": 1, "realized": True}, None),  # the realize fails: QEMU refuses
        ):
            request = {
                "execute": "device_add",
                "arguments": {"driver": "power8e_v2.1-spapr-cpu-core", **args},
            }
            assert predictor.before(request, emulator.execute(request)) == crash


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(C.examples())
def test_generated_examples_are_qmp_on_configurations_that_start(example: C.Example) -> None:
    with EmulatorSession(example.config.argv()) as emulator:
        for step in example.steps:
            if step.request is not None:
                exchange = emulator.execute(step.request)
                assert exchange.response is not None
                assert set(exchange.response) <= {"return", "error"}
                if step.request.get("execute") == "quit":
                    break


# ---------------------------------------------------------------- against real QEMU


@pytest.mark.qemu
def test_a_short_campaign_finds_no_difference() -> None:
    tally = C.run_examples(20, seed=7)
    assert tally.examples == 20
    assert tally.mismatches == 0


@pytest.mark.qemu
def test_a_planted_mismatch_is_shrunk_to_a_transcript(monkeypatch: pytest.MonkeyPatch) -> None:
    class Wrong(EmulatorSession):
        def execute(self, request: Any) -> Exchange:
            answer = super().execute(request)
            if request.get("execute") == "device_add":
                return Exchange(request, answer.events, {"return": "planted"})
            return answer

    monkeypatch.setattr(C, "EmulatorSession", Wrong)
    with pytest.raises(C.Mismatch) as found:
        C.run_examples(25, seed=11)
    lines = str(found.value).splitlines()
    assert lines[0].startswith("# QEMU:     qemu-system-ppc64 -M ")
    assert lines[1].startswith("# emulator: python -m spapr -M ")
    sent = [x for x in lines if x.startswith("->")]
    assert sent[0] == '-> {"execute":"qmp_capabilities"}'
    assert len(sent) == 2 and sent[1].startswith('-> {"execute":"device_add"'), sent
    assert '<- (emulator) {"return":"planted"}' in lines
    assert any(x.startswith("<- (QEMU 7.2) {") for x in lines)


@pytest.mark.qemu
def test_the_command_line_runs_a_campaign_on_xdist_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "qemu", "--examples", "6", "--seed", "5", "-j", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[conformance] 6/6 examples, 0 mismatches" in done.stdout
    assert "on 2 worker(s)" in done.stdout
    assert "conformance campaign: 6 examples" in done.stdout
