"""The robustness campaign's short version, one test per area (``python -m robustness``).

Each test runs one area of :mod:`robustness` with the short budget and fails with
the area's report (what was tried, what held, every broken rule with its input)
when any rule broke. The comparisons with real qemu-system-ppc64 7.2 are tests of
their own, marked ``qemu``. The long version (100,000 QMP messages, 100,000 guest
calls, 10,000 interleavings, the 20,000-cycle soak) runs on demand:
``python -m robustness --long``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from machine.monitor.qmp_commands import QmpCommands
from robustness import (
    atomic,
    bounds,
    guest_fuzz,
    interleave,
    live,
    migration_faults,
    process,
    qmp_fuzz,
    security,
)
from robustness.campaign import SHORT
from robustness.harness import P9, new_control
from robustness.report import AreaReport

SEED = 1


def held(name: str, area: Callable[[AreaReport], None]) -> AreaReport:
    report = AreaReport(name)
    area(report)
    assert report.failed == 0, "\n".join(report.summary())
    assert report.total > 0
    return report


def test_qmp_and_hmp_input() -> None:
    held("qmp", lambda r: qmp_fuzz.run(r, SHORT.qmp_messages, SEED))


@pytest.mark.qemu
def test_qmp_and_hmp_answers_equal_qemus() -> None:
    commands = QmpCommands(new_control(P9, guest="none"))
    cases = list(qmp_fuzz.generate(SEED + 7, SHORT.live_samples, commands))
    hmp = [qmp_fuzz.hmp_case(line) for line in qmp_fuzz.HMP_LIVE_LINES]

    def area(report: AreaReport) -> None:
        assert live.compare_qmp_cases(report, cases, "live-qmp") > 0
        assert live.compare_qmp_cases(report, hmp, "live-hmp", texts=True) > 0

    held("live", area)


def test_hostile_guests() -> None:
    held("guest", lambda r: guest_fuzz.run(r, SHORT.guest_calls, SEED))


def test_interleavings() -> None:
    report = held("interleave", lambda r: interleave.run(r, SHORT.interleavings, SEED))
    assert report.tried["qemu-crash-transcript"] == len(interleave.DEFECTS) == 3


def test_migration_faults() -> None:
    held("migration", lambda r: migration_faults.run(r, SHORT.migration_rounds, SEED))


@pytest.mark.qemu
def test_output_and_signals() -> None:
    report = held("process", lambda r: process.run(r, SHORT.signal_rounds, SEED))
    assert report.tried["live signal"] == 1


def test_resource_bounds() -> None:
    held("bounds", lambda r: bounds.run(r, SHORT.soak_cycles))


def test_all_or_nothing() -> None:
    report = held("atomic", lambda r: atomic.run(r, SHORT.atomic_rounds, SEED))
    assert report.tried["device_add"] >= 10 and report.tried["device_del"] >= 3


@pytest.mark.qemu
def test_security() -> None:
    report = held("security", lambda r: security.run(r, 1, SEED))
    assert report.tried["unix socket mode"] == 2
