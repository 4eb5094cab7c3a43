"""The suite's CI rules, run on small test files: a missing tool or any skip fails under CI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent

NEEDS_QEMU = """
import pytest

@pytest.mark.qemu
def test_compares_with_qemu():
    assert True
"""

SKIPS = """
import pytest

def test_skips_itself():
    pytest.skip("not today")

@pytest.mark.xfail(strict=True)
def test_known_failure():
    assert False
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A scratch suite with this suite's conftest and tool table, and no QEMU on PATH."""
    for name in ("conftest.py", "oracle_tools.py"):
        shutil.copy(HERE / name, pytester.path / name)
    pytester.makeini("[pytest]\nmarkers =\n    qemu: real QEMU\n")
    empty = pytester.mkdir("empty-bin")
    monkeypatch.setenv("PATH", str(empty))
    return pytester


def run(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, *, ci: bool
) -> pytest.RunResult:
    """Run ``source`` in a fresh interpreter (the conftest reads ``CI`` when imported)."""
    suite.makepyfile(test_scratch=source)
    if ci:
        monkeypatch.setenv("CI", "1")
    else:
        monkeypatch.delenv("CI", raising=False)
    return suite.runpytest_subprocess("-p", "no:cacheprovider")


def test_a_missing_tool_skips_on_a_developers_machine(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(suite, monkeypatch, NEEDS_QEMU, ci=False)
    result.assert_outcomes(skipped=1)
    result.stdout.no_fnmatch_line("*CI:*")


def test_a_missing_tool_fails_under_ci(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(suite, monkeypatch, NEEDS_QEMU, ci=True)
    result.assert_outcomes(errors=1)  # failed in set-up: the run is red
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*CI: needs qemu-system-ppc64, which is not installed*"])


def test_any_skip_fails_under_ci_but_strict_xfail_stays(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(suite, monkeypatch, SKIPS, ci=True)
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*CI: skipped tests fail under CI*not today*"])
