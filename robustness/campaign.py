"""The campaign: which areas run, with how many trials, and the report it prints.

Two budgets: :data:`SHORT` runs inside the normal test command (about a minute
for all areas together); :data:`LONG` is the on-demand version (100,000 QMP
messages, 100,000 guest calls, 10,000 interleavings, the 20,000-cycle soak),
which shows its progress as it goes.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from typing import TextIO

import attrs

from robustness.report import AreaReport, Progress


@attrs.frozen
class Budget:
    """Trial counts per area."""

    name: str
    qmp_messages: int
    guest_calls: int
    interleavings: int
    migration_rounds: int
    signal_rounds: int
    soak_cycles: int
    atomic_rounds: int
    live_samples: int


SHORT = Budget("short", 800, 3000, 40, 1, 1, 0, 1, 60)
LONG = Budget("long", 100_000, 100_000, 10_000, 20, 5, 20_000, 5, 2000)

Area = Callable[[AreaReport, Budget, int, Progress | None], None]


def _qmp(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from machine.monitor.qmp_commands import QmpCommands
    from robustness import live, qmp_fuzz
    from robustness.harness import P9, new_control

    qmp_fuzz.run(report, budget.qmp_messages, seed, progress=progress)
    if budget.live_samples:
        commands = QmpCommands(new_control(P9, guest="none"))
        cases = list(qmp_fuzz.generate(seed + 7, budget.live_samples, commands))
        live.compare_qmp_cases(report, cases, "live-qmp")
        hmp = [qmp_fuzz.hmp_case(line) for line in qmp_fuzz.HMP_LIVE_LINES]
        live.compare_qmp_cases(report, hmp, "live-hmp", texts=True)


def _guest(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import guest_fuzz

    guest_fuzz.run(report, budget.guest_calls, seed, progress=progress)


def _interleave(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import interleave

    interleave.run(report, budget.interleavings, seed, progress=progress)


def _migration(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import migration_faults

    migration_faults.run(report, budget.migration_rounds, seed, progress=progress)


def _process(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import process

    process.run(report, budget.signal_rounds, seed, progress=progress)


def _bounds(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import bounds

    bounds.run(report, budget.soak_cycles, progress=progress)


def _atomic(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import atomic

    atomic.run(report, budget.atomic_rounds, seed, progress=progress)


def _security(report: AreaReport, budget: Budget, seed: int, progress: Progress | None) -> None:
    from robustness import security

    security.run(report, 1, seed, progress=progress)


AREAS: dict[str, tuple[str, Area, Callable[[Budget], int]]] = {
    "qmp": ("1. QMP and HMP input", _qmp, lambda b: b.qmp_messages),
    "guest": ("2. Hostile guests", _guest, lambda b: b.guest_calls),
    "interleave": ("3. Interleavings", _interleave, lambda b: b.interleavings),
    "migration": ("4. Migration faults", _migration, lambda b: 60 * b.migration_rounds),
    "process": ("5. Output and signals", _process, lambda b: 8 * b.signal_rounds),
    "bounds": ("6. Resource bounds", _bounds, lambda b: b.soak_cycles),
    "atomic": ("7. All or nothing", _atomic, lambda b: b.atomic_rounds),
    "security": ("8. Security", _security, lambda b: 1),
}


def run(
    budget: Budget,
    *,
    only: Sequence[str] = (),
    seed: int = 1,
    progress_out: TextIO | None = None,
) -> list[AreaReport]:
    """Run the chosen areas (all by default); one report per area.

    With ``progress_out`` each area's report is also printed there as soon as the
    area ends (the long version runs for an hour or more).
    """
    reports: list[AreaReport] = []
    for key, (title, area, total) in AREAS.items():
        if only and key not in only:
            continue
        report = AreaReport(title)
        progress = Progress(key, total(budget), out=progress_out) if progress_out else None
        started = time.monotonic()
        try:
            area(report, budget, seed, progress)
        except Exception as exc:  # the area itself broke: that is a finding too
            where = traceback.format_exc().strip().splitlines()[-6:]
            report.fail("campaign", key, f"the area stopped: {exc!r} " + " | ".join(where))
        report.seconds = time.monotonic() - started
        reports.append(report)
        if progress_out is not None:
            print("\n".join(report.summary()), file=progress_out, flush=True)
    return reports


def render(budget: Budget, reports: Sequence[AreaReport]) -> str:
    """The printed report: every area's counts, notes and failures, then the totals."""
    lines = [f"robustness campaign ({budget.name} version)"]
    for report in reports:
        lines.extend(report.summary())
    tried = sum(r.total for r in reports)
    failed = sum(r.failed for r in reports)
    seconds = sum(r.seconds for r in reports)
    lines.append(f"total: {tried} tried, {tried - failed} held, {failed} failed ({seconds:.1f} s)")
    return "\n".join(lines) + "\n"
