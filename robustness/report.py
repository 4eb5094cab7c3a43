"""What a campaign area tried, what held, and what failed (with the input that failed).

An :class:`AreaReport` counts trials by category; a trial that breaks a rule adds
a :class:`Failure` naming the category, the input (enough to reproduce it) and
the problem. Only the first :data:`KEPT_FAILURES` failures of an area are kept in
full; all are counted. :class:`Progress` prints a line now and then while a long
area runs, so a person watching the long version sees it move.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

import attrs

#: Failures kept with their details per area (every one is counted).
KEPT_FAILURES = 25


@attrs.frozen
class Failure:
    """One broken rule: where, on what input, and what went wrong."""

    category: str
    input: str
    problem: str

    def line(self) -> str:
        shown = self.input if len(self.input) <= 300 else self.input[:297] + "..."
        return f"[{self.category}] {self.problem}\n      input: {shown}"


@attrs.define
class AreaReport:
    """The figures of one area."""

    name: str
    tried: Counter[str] = attrs.field(factory=Counter)
    failures: list[Failure] = attrs.field(factory=list)
    failed: int = 0
    notes: list[str] = attrs.field(factory=list)
    seconds: float = 0.0

    def count(self, category: str, n: int = 1) -> None:
        """Note ``n`` trials of ``category``."""
        self.tried[category] += n

    def fail(self, category: str, input_: str, problem: str) -> None:
        """Note a broken rule (kept in full for the first few)."""
        self.failed += 1
        if len(self.failures) < KEPT_FAILURES:
            self.failures.append(Failure(category, input_, problem))

    def note(self, text: str) -> None:
        """A figure or remark for the summary (RSS, live comparisons, ...)."""
        self.notes.append(text)

    @property
    def total(self) -> int:
        return sum(self.tried.values())

    @property
    def held(self) -> int:
        return self.total - self.failed

    def summary(self) -> list[str]:
        """The area's lines of the campaign report."""
        head = (
            f"{self.name}: {self.total} tried, {self.held} held, {self.failed} failed "
            f"({self.seconds:.1f} s)"
        )
        lines = [head]
        for category, n in sorted(self.tried.items()):
            lines.append(f"    {category}: {n}")
        lines.extend(f"    {note}" for note in self.notes)
        lines.extend(f"  FAIL {f.line()}" for f in self.failures)
        if self.failed > len(self.failures):
            lines.append(f"  ... and {self.failed - len(self.failures)} more failures")
        return lines


class Progress:
    """Prints ``area: n/total`` at most every ``every_s`` seconds (to stderr by default)."""

    def __init__(self, name: str, total: int, *, out: TextIO | None = None, every_s: float = 5.0):
        self.name = name
        self.total = total
        self.out = out
        self.every_s = every_s
        self._last = time.monotonic()

    def step(self, done: int, detail: str = "") -> None:
        if self.out is None:
            return
        now = time.monotonic()
        if now - self._last >= self.every_s or done == self.total:
            self._last = now
            extra = f" {detail}" if detail else ""
            print(f"  {self.name}: {done}/{self.total}{extra}", file=self.out, flush=True)


def stderr_progress(enabled: bool) -> TextIO | None:
    """Where progress goes: stderr when asked, else nowhere."""
    return sys.stderr if enabled else None
