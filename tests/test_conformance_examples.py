"""docs/examples run as a user runs them: pytest on the file, the kit's plugin, no conftest.

first_test.py passes; broken_guest.py and broken_connector.py fail, the kit
having found their deliberate bugs, with the shrunk counterexamples
docs/conformance.md shows. The seeds are fixed so the search is short and the
output is the documented one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
#: Seeds under which the kit finds each deliberate bug quickly.
SEEDS = {"first_test.py": 1, "broken_guest.py": 4, "broken_connector.py": 3}
#: hypothesis prints the invariants it checked after each step; the doc keeps the steps.
_CHECKS = ("state.connectors_", "state.cores_", "state.every_", "state.guest_", "state.monitor_")
_CHECKS += ("state.queues_", "state.same_", "state.state_in_")


def _command(name: str, where: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(EXAMPLES / name),
        "-p",
        "conformance.plugin",
        "-p",
        "no:cacheprovider",
        f"--rootdir={where}",
        f"--hypothesis-seed={SEEDS[name]}",
        "-q",
        "--tb=short",
    ]


def run_examples(names: list[str], tmp_path: Path) -> dict[str, tuple[int, str]]:
    """``pytest docs/examples/NAME`` for each name, side by side, each in an empty directory
    (so with its own hypothesis database); (exit status, output) by name."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CI", None)
    running = {}
    for name in names:
        where = tmp_path / name.removesuffix(".py")
        where.mkdir()
        running[name] = subprocess.Popen(
            _command(name, where),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=where,
            env=env,
        )
    results = {}
    for name, process in running.items():
        output, _ = process.communicate(timeout=900)
        results[name] = (process.returncode, output)
    return results


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """The three examples, run once for the module (the two broken ones in parallel)."""
    tmp = tmp_path_factory.mktemp("examples")
    results = run_examples(["broken_guest.py", "broken_connector.py"], tmp)
    results.update(run_examples(["first_test.py"], tmp))
    return results


def shrunk_steps(output: str) -> list[str]:
    """The counterexamples' steps as hypothesis printed them, without the invariant checks."""
    steps = []
    for line in output.splitlines():
        if not line.startswith("E "):
            continue
        text = line.removeprefix("E").strip()
        if text.startswith(("state = ", "state.")) and not text.startswith(_CHECKS):
            steps.append(text)
    return steps


def test_first_test_passes(outputs: dict[str, tuple[int, str]]) -> None:
    status, output = outputs["first_test.py"]
    assert status == 0, output
    assert "FAILED" not in output


def test_the_broken_guest_is_found(outputs: dict[str, tuple[int, str]]) -> None:
    status, output = outputs["broken_guest.py"]
    assert status == 1, output
    assert "had not stopped (stop-self)" in output
    steps = shrunk_steps(output)
    assert steps[0] == "state = EarlyReleaseGuestMachine()"
    assert any(s.startswith("state.device_add(") for s in steps)
    assert any(s.startswith("state.device_del(") for s in steps)
    assert len(steps) <= 8, steps


def test_the_broken_connector_is_found_alone_and_in_a_machine(
    outputs: dict[str, tuple[int, str]],
) -> None:
    status, output = outputs["broken_connector.py"]
    assert status == 1, output
    assert "FAILED ::TestLaxConnectorAlone::runTest" in output
    assert "FAILED ::TestLaxConnectorInAMachine::runTest" in output
    assert "ibm,configure-connector: answered (2," in output
    assert "QEMU 7.2: (-9003, None, None)" in output
    steps = shrunk_steps(output)
    assert "state = LaxConnectorAlone()" in steps
    assert "state = LaxConnectorInAMachine()" in steps
    assert "state.configure_connector(calls=1)" in steps
    assert any(s.startswith("state.dlpar(") and "'configure'" in s for s in steps), steps
