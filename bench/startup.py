"""Whole-process start-up: ``-M help``, ``-version`` and a small ``dumpdtb``, emulator vs QEMU.

Each command runs as a fresh process, the emulator as a user starts it (the
``spapr`` script of this Python's environment) and qemu-system-ppc64 7.2 with the
same arguments, alternately, ``REPEATS`` times (``--quick``: once); the figures are
the median wall time from spawn to exit, the median CPU time (user + system, what
the wall time is on an idle host) and the median peak RSS of the process
(``os.wait4``). The small ``dumpdtb`` is ``-M pseries,dumpdtb=FILE -cpu POWER9
-smp 1,maxcpus=8 -m 1G -nodefaults``: parse, board init, first reset, the tree
written.

``startup_s`` is the slowest of the emulator's three wall medians (the target
bounds each; ``startup_cpu_s`` the same in CPU time). The same run also times a
scripted monitor session two ways (whole process, median of ``REPEATS``): the
commands of :data:`SCRIPT` (ten hot-add / hot-remove rounds with the guest, and
views) as a ``-scenario`` file, and the same commands piped into ``-monitor
stdio``; ``stdio_vs_scenario`` is their ratio (wall; CPU beside it).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench._common import (
    ProcessRun,
    Progress,
    emulator_command,
    host_facts,
    qemu_binary,
    run_process,
)

REPEATS = 11
QUICK_REPEATS = 1
SMALL = ["-cpu", "POWER9", "-smp", "1,maxcpus=8", "-m", "1G", "-nodefaults"]
#: The scripted session's machine (first line of the scenario file).
SCRIPT_ARGS = "-M pseries -cpu POWER9 -smp 1,cores=4,threads=1,maxcpus=4 -m 1G -nodefaults -seed 1"
#: Ten rounds of a hot-add and a hot-remove the guest answers, with views, then quit.
SCRIPT = (
    *(
        line
        for i in range(10)
        for line in (
            f"device_add power9_v2.0-spapr-cpu-core,id=c{i},core-id=1",
            "guest lscpu",
            f"device_del c{i}",
            "info hotpluggable-cpus",
        )
    ),
    "quit",
)


def _medians(runs: list[ProcessRun]) -> tuple[float, float, float]:
    """Median wall seconds, CPU seconds and peak RSS (MiB)."""
    return (
        statistics.median(r.seconds for r in runs),
        statistics.median(r.cpu_seconds for r in runs),
        statistics.median(r.rss_mib for r in runs),
    )


def _check(run: ProcessRun, what: str) -> ProcessRun:
    if run.status != 0:
        raise RuntimeError(f"{what} exited {run.status}: {run.stderr}")
    return run


def run(args: list[str]) -> dict[str, Any]:
    """Time every command both ways; print the table; return the figures."""
    quick = "--quick" in args
    repeats = QUICK_REPEATS if quick else REPEATS
    emulator = emulator_command()
    qemu = qemu_binary()
    progress = Progress("startup")
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        dtb = str(Path(tmp) / "small.dtb")
        commands = {
            "-M help": ["-M", "help"],
            "-version": ["-version"],
            "dumpdtb small": ["-M", f"pseries,dumpdtb={dtb}", *SMALL],
        }
        for label, argv in commands.items():
            ours: list[ProcessRun] = []
            theirs: list[ProcessRun] = []
            for _ in range(repeats):
                ours.append(_check(run_process([*emulator, *argv]), f"spapr {label}"))
                if qemu is not None:
                    theirs.append(_check(run_process([qemu, *argv]), f"qemu {label}"))
                progress.tick(f"{label}: {len(ours)}/{repeats}")
            ours_s, ours_cpu, ours_rss = _medians(ours)
            row: dict[str, Any] = {
                "emulator_s": round(ours_s, 4),
                "emulator_cpu_s": round(ours_cpu, 4),
                "emulator_rss_mib": round(ours_rss, 1),
            }
            if theirs:
                qemu_s, qemu_cpu, qemu_rss = _medians(theirs)
                row.update(
                    qemu_s=round(qemu_s, 4),
                    qemu_cpu_s=round(qemu_cpu, 4),
                    qemu_rss_mib=round(qemu_rss, 1),
                    ratio_vs_qemu=round(ours_s / qemu_s, 2),
                )
            rows[label] = row
        scenario = Path(tmp) / "bench.hmp"
        scenario.write_text(SCRIPT_ARGS + "\n" + "\n".join(SCRIPT) + "\n")
        piped = ("\n".join(SCRIPT) + "\n").encode()
        as_scenario: list[ProcessRun] = []
        as_stdio: list[ProcessRun] = []
        for _ in range(repeats):
            as_scenario.append(
                _check(run_process([*emulator, "-scenario", str(scenario)]), "-scenario")
            )
            stdio_argv = [*emulator, *SCRIPT_ARGS.split(), "-monitor", "stdio"]
            as_stdio.append(_check(run_process(stdio_argv, stdin=piped), "-monitor stdio"))
            progress.tick(f"scripted session: {len(as_stdio)}/{repeats}")
    scenario_s, scenario_cpu, _ = _medians(as_scenario)
    stdio_s, stdio_cpu, _ = _medians(as_stdio)
    print(
        f"startup: whole process, median of {repeats}; emulator = {' '.join(emulator)}, "
        f"QEMU = {qemu or '(not installed)'}"
    )
    header = (
        f"{'command':15} {'emulator s':>10} {'cpu s':>7} {'RSS MiB':>8} | "
        f"{'qemu s':>8} {'cpu s':>7} {'RSS MiB':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for label, row in rows.items():
        tail = (
            f"{row['qemu_s']:>8.4f} {row['qemu_cpu_s']:>7.4f} {row['qemu_rss_mib']:>8.1f} "
            f"{row['ratio_vs_qemu']:>6.2f}"
            if "qemu_s" in row
            else f"{'-':>8} {'-':>7} {'-':>8} {'-':>6}"
        )
        print(
            f"{label:15} {row['emulator_s']:>10.4f} {row['emulator_cpu_s']:>7.4f} "
            f"{row['emulator_rss_mib']:>8.1f} | {tail}"
        )
    ratio = stdio_s / scenario_s
    cpu_ratio = stdio_cpu / scenario_cpu if scenario_cpu else None
    print(
        f"scripted session ({len(SCRIPT)} commands with the guest): -scenario {scenario_s:.3f} s "
        f"({scenario_cpu:.3f} cpu), piped to -monitor stdio {stdio_s:.3f} s ({stdio_cpu:.3f} "
        f"cpu): ratio {ratio:.3f} (cpu {cpu_ratio or 0:.3f})"
    )
    return {
        "startup_s": max(row["emulator_s"] for row in rows.values()),
        "startup_cpu_s": max(row["emulator_cpu_s"] for row in rows.values()),
        "commands": rows,
        "scenario_s": round(scenario_s, 4),
        "stdio_s": round(stdio_s, 4),
        "stdio_vs_scenario": round(ratio, 3),
        "stdio_vs_scenario_cpu": None if cpu_ratio is None else round(cpu_ratio, 3),
        "qemu": qemu,
        "repeats": repeats,
        "host": host_facts(),
    }
