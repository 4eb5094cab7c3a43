"""Test-wide settings: hypothesis profiles, and the external tools some tests compare with.

Hypothesis: no per-example deadline (CI machines are slower and busier than a
laptop; tests here never assert on time). Under CI (``CI`` set in the environment,
as .ci/run does) examples are derandomized, so a red run is reproducible from its
log; locally they stay random and keep finding new cases.

Tools: a test that compares with a real tool carries its marker (``qemu``, ``dtc``,
``libfdt``, ``qmp_shell``; see tests/oracle_tools.py). On a developer's machine without
the tool it is skipped; under CI it fails, since .ci/run installs every tool and a
green run must mean the comparisons ran. Under CI any other skip fails too, and
QEMU must be 7.2, the version the recordings come from.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import settings
from oracle_tools import TOOLS, qemu_version_problem

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
UNDER_CI = bool(os.environ.get("CI"))
settings.load_profile("ci" if UNDER_CI else "default")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, under CI, fail) a test whose tool is absent; under CI, insist on QEMU 7.2."""
    for name, tool in TOOLS.items():
        if item.get_closest_marker(name) is None:
            continue
        if tool.find() is None:
            message = f"needs {tool.description}, which is not installed"
            if UNDER_CI:
                pytest.fail(f"CI: {message} (.ci/run installs it)", pytrace=False)
            pytest.skip(message)
        if name == "qemu" and UNDER_CI and (problem := qemu_version_problem()):
            pytest.fail(f"CI: {problem}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Under CI a skipped test is a failed one: nothing may pass by not running."""
    outcome = yield
    report = outcome.get_result()
    if UNDER_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI: skipped tests fail under CI ({reason})"
