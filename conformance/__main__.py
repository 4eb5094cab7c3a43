"""``python -m conformance qemu --examples N [--seed S] [-j JOBS]``: a differential campaign.

Generated host-side QMP sequences run against ``qemu-system-ppc64`` 7.2 and this
emulator (see :mod:`conformance.campaign`), spread over the cores by pytest-xdist
(each chunk of examples from its own seed). Progress is printed as chunks finish:
examples done, mismatches, known QEMU crashes, examples per second. At the end:
the totals, and each finding as the shrunk QMP transcript hypothesis found,
with the seed that replays it. Exit status 0 when nothing differed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest

from conformance.campaign import KNOWN_CRASHES
from conformance.qmp import environment_cpu_count, qemu_binary


class CampaignProgress:
    """A pytest plugin for the controlling process: counts and prints as chunks finish."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.start = time.monotonic()
        self.examples = 0
        self.steps = 0
        self.findings: list[tuple[str, str]] = []
        self.crashes: Counter[str] = Counter()
        self.unresponsive = 0
        self.chunks = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take a chunk's summary from its report (call phase, or a setup error)."""
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        for key, value in report.user_properties:
            if key != "campaign":
                continue
            summary: dict[str, Any] = json.loads(str(value))
            self.examples += int(summary["examples"])
            self.steps += int(summary["steps"])
            self.crashes.update(summary["known_crashes"])
            self.unresponsive += int(summary.get("unresponsive", 0))
        self.chunks += 1
        if report.failed:
            self.findings.append((report.nodeid, str(report.longrepr)))
        self.line()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.examples / elapsed if elapsed > 0 else 0.0

    def line(self) -> None:
        """One progress line."""
        crashes = sum(self.crashes.values())
        print(
            f"[conformance] {self.examples}/{self.total} examples, "
            f"{len(self.findings)} mismatches, {crashes} known QEMU crashes, "
            f"{self.rate():.1f} examples/s",
            file=self.out,
            flush=True,
        )


def _summary(progress: CampaignProgress, out: TextIO) -> None:
    elapsed = time.monotonic() - progress.start
    print("", file=out)
    print(
        f"conformance campaign: {progress.examples} examples ({progress.steps} QMP steps) "
        f"in {elapsed:.1f} s, {progress.rate():.2f} examples/s; "
        f"{len(progress.findings)} mismatches",
        file=out,
    )
    for name, count in sorted(progress.crashes.items()):
        print(f"  known QEMU 7.2 crash x{count}: {name} -- {KNOWN_CRASHES[name]}", file=out)
    if progress.unresponsive:
        print(
            f"  QEMU left its monitor unanswered (twice) in {progress.unresponsive} example(s) "
            "-- SLOF running on a busy host; not compared",
            file=out,
        )
    for nodeid, text in progress.findings:
        print(f"\n=== finding in {nodeid} ===", file=out)
        print(_transcript_of(text), file=out)


def _transcript_of(longrepr: str) -> str:
    """The transcript and replay lines of a failure report (hypothesis's notes included)."""
    keep: list[str] = []
    for line in longrepr.splitlines():
        text = line[2:] if line.startswith("E ") else line
        stripped = text.strip()
        if stripped.startswith(("# ", "-> ", "<- ", "Falsifying", "You can reproduce")) or (
            "Mismatch" in stripped or "UnexpectedCrash" in stripped
        ):
            keep.append(stripped)
    return "\n".join(keep) if keep else longrepr


def run_campaign(
    examples: int, seed: int, jobs: int, *, out: TextIO = sys.stdout, extra: Sequence[str] = ()
) -> int:
    """Run a campaign through pytest (with pytest-xdist when ``jobs`` > 1); the exit status."""
    if qemu_binary() is None:
        print("conformance: qemu-system-ppc64 is not installed", file=sys.stderr)
        return 2
    tests = Path(__file__).with_name("campaign_tests.py")
    args = [
        str(tests),
        "-p",
        "conformance.plugin",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-o",
        "python_files=campaign_tests.py",
        f"--rootdir={tests.parent}",
        "-q",
        "--no-header",
        "-rN",
        "--tb=long",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--conformance-examples={examples}",
        f"--conformance-seed={seed}",
        *extra,
    ]
    if jobs > 1:
        args += ["-n", str(jobs)]
    progress = CampaignProgress(examples, out)
    print(
        f"[conformance] {examples} examples from seed {seed} on {max(1, jobs)} worker(s), "
        f"QEMU {qemu_binary()}",
        file=out,
        flush=True,
    )
    status = pytest.main(args, plugins=[progress])
    _summary(progress, out)
    return 0 if status == 0 and not progress.findings else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m conformance")
    commands = parser.add_subparsers(dest="command", required=True)
    qemu = commands.add_parser(
        "qemu", help="a differential campaign: generated QMP sequences, real QEMU 7.2 vs this"
    )
    qemu.add_argument("--examples", type=int, default=200, help="examples in all (default 200)")
    qemu.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    qemu.add_argument(
        "-j",
        "--jobs",
        default="auto",
        help="parallel workers (pytest-xdist); 'auto' = the cores available (default)",
    )
    args = parser.parse_args(argv)
    jobs = environment_cpu_count() if args.jobs == "auto" else int(args.jobs)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return run_campaign(args.examples, args.seed, jobs)


if __name__ == "__main__":
    sys.exit(main())
