"""Scaling with the number of CPU slots: build, dumpdtb (vs QEMU), queries and hot-add bursts.

For ``maxcpus`` N = 8, 256, 1024, 4096 (POWER9, SMT1, TCG, ``-m 1G``):

* **build**: in this process, the command line parsed, the machine created with its
  reference guest and reset (the boot tree built) — ``-smp 1,maxcpus=N``; best of 3.
* **dumpdtb, whole process**, the emulator beside qemu-system-ppc64 7.2 in the same
  run, alternately: sparse ``-smp 1,maxcpus=N`` and fully present ``-smp N`` (2048
  present too, the issue's old data point); wall time and the process's own peak
  RSS, median of ``DTB_REPEATS``. QEMU refuses trees that outgrow its FDT buffer
  (4096 present threads: ``FDT_ERR_NOSPACE``): such a row says so.
* **query-hotpluggable-cpus**: in this process, on the sparse machine; mean of
  repeats.
* **hot-add burst with the guest**: on the sparse machine, running, the guest booted,
  ``device_add`` of the next free core then a settle (as a scripted monitor does:
  the guest brings the core online), up to ``BURST`` = 512 adds (N - 1 when fewer
  slots are free); the median cost per add over the first and the last ``WINDOW``
  adds shows how it grows as the machine fills (the mean over the burst beside it).
* **hot-add burst without a guest** (``-guest none``, N = 4096 only): the same 512
  adds, QEMU's live-comparison mode.

JSON: ``time_ratio_vs_qemu`` and ``rss_ratio_vs_qemu`` are emulator / QEMU for the
sparse 4096-slot dumpdtb (null, with ``qemu_note``, when QEMU is absent);
``add_cost_ratio_4096_vs_8`` is the cost of one hot-add (with the guest) into the
4096-slot machine (mean of the burst's first ``WINDOW`` adds) over that into the
8-slot one (``burst_add_cost_ratio_4096_vs_8``: the whole burst's mean instead);
``noguest_add_cost_last_vs_first`` the growth over the guest-less burst. Add costs
are CPU time of this process (on a busy host wall time measures the others).
``--quick``: sizes 8 and 256, short bursts, one repeat.
"""

from __future__ import annotations

import gc
import io
import statistics
import tempfile
import time
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
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from machine.monitor.control import MachineControl

SIZES = (8, 256, 1024, 4096)
PRESENT_SIZES = (8, 256, 1024, 2048, 4096)
QUICK_SIZES = (8, 256)
BASE = ["-M", "pseries", "-cpu", "POWER9", "-m", "1G", "-nographic", "-display", "none"]
TAIL = ["-nodefaults", "-seed", "1"]
DTB_REPEATS = 3
BUILD_REPEATS = 3
QUERY_REPEATS = 20
BURST = 512
QUICK_BURST = 8
WINDOW = 32


def _argv(smp: str, *extra: str) -> list[str]:
    return [*BASE, "-smp", smp, *TAIL, *extra]


def _build(n: int, guest: str = "linux") -> PseriesMachine:
    machine = build_machine(_argv(f"1,maxcpus={n}", "-guest", guest), io.StringIO())
    machine.reset()
    return machine


def _dumpdtb(binary: list[str], smp: str, path: str, repeats: int) -> tuple[ProcessRun, str | None]:
    """Median wall time and RSS of a dumpdtb process; the refusal text if it failed."""
    runs: list[ProcessRun] = []
    for _ in range(repeats):
        run = run_process([*binary, *_argv(smp), "-M", f"pseries,dumpdtb={path}"])
        if run.status != 0:  # a refusal is the same every time: once is enough
            lines = run.stderr.strip().splitlines()
            return run, lines[-1] if lines else f"exit {run.status}"
        runs.append(run)
    return (
        ProcessRun(
            statistics.median(r.seconds for r in runs),
            statistics.median(r.rss_mib for r in runs),
            0,
            "",
            statistics.median(r.cpu_seconds for r in runs),
        ),
        None,
    )


def _burst(machine: PseriesMachine, adds: int, progress: Progress, label: str) -> list[float]:
    """Hot-add ``adds`` cores into the free slots in order, settling after each.

    Returns the CPU seconds of this process each add took (``time.process_time``: on
    a busy host the wall time of one add mostly measures the other processes).
    """
    control = MachineControl(machine)
    control.settle()
    free = [s.core_id for s in machine.slots if s.core is None][:adds]
    gc.collect()  # (the garbage of earlier machines is not this burst's)
    costs: list[float] = []
    for i, core_id in enumerate(free):
        t0 = time.process_time()
        control.device_add({"driver": machine.core_type, "id": f"b{i}", "core-id": core_id})
        control.settle()
        costs.append(time.process_time() - t0)
        progress.tick(f"{label}: {i + 1}/{len(free)} adds, last {costs[-1] * 1000:.2f} ms")
    if len(machine.cores) != 1 + len(free):
        raise RuntimeError(f"{label}: {len(machine.cores)} cores after {len(free)} adds")
    return costs


def _window_ms(costs: list[float], last: bool) -> float:
    """Median CPU ms of the first or last ``WINDOW`` adds (a garbage collection that
    lands in one add is the whole heap's, not that add's)."""
    part = costs[-WINDOW:] if last else costs[:WINDOW]
    return 1000 * statistics.median(part)


def run(args: list[str]) -> dict[str, Any]:
    """Measure every size; print the tables; return the figures."""
    quick = "--quick" in args
    sizes = QUICK_SIZES if quick else SIZES
    present_sizes = QUICK_SIZES if quick else PRESENT_SIZES
    burst = QUICK_BURST if quick else BURST
    dtb_repeats = 1 if quick else DTB_REPEATS
    build_repeats = 1 if quick else BUILD_REPEATS
    emulator = emulator_command()
    qemu = qemu_binary()
    progress = Progress("scale")
    per_n: dict[int, dict[str, Any]] = {}
    dtb_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "out.dtb")
        for kind, smps in (
            ("sparse", [(n, f"1,maxcpus={n}") for n in sizes]),
            ("present", [(n, str(n)) for n in present_sizes]),
        ):
            for n, smp in smps:
                ours, our_error = _dumpdtb(emulator, smp, path, dtb_repeats)
                if our_error is not None:
                    raise RuntimeError(f"emulator dumpdtb -smp {smp}: {our_error}")
                row: dict[str, Any] = {
                    "kind": kind,
                    "n": n,
                    "emulator_s": round(ours.seconds, 3),
                    "emulator_cpu_s": round(ours.cpu_seconds, 3),
                    "emulator_rss_mib": round(ours.rss_mib, 1),
                    "qemu_s": None,
                    "qemu_cpu_s": None,
                    "qemu_rss_mib": None,
                    "qemu_error": None,
                }
                if qemu is not None:
                    theirs, qemu_error = _dumpdtb([qemu], smp, path, dtb_repeats)
                    if qemu_error is None:
                        row["qemu_s"] = round(theirs.seconds, 3)
                        row["qemu_cpu_s"] = round(theirs.cpu_seconds, 3)
                        row["qemu_rss_mib"] = round(theirs.rss_mib, 1)
                    else:
                        row["qemu_error"] = qemu_error
                dtb_rows.append(row)
                progress.tick(f"dumpdtb {kind} {n}", force=True)
        for n in sizes:
            builds = []
            for _ in range(build_repeats):
                t0 = time.perf_counter()
                machine = _build(n)
                builds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(QUERY_REPEATS):
                machine.query_hotpluggable_cpus()
            query_ms = 1000 * (time.perf_counter() - t0) / QUERY_REPEATS
            costs = _burst(machine, min(burst, n - 1), progress, f"burst with guest, {n} slots")
            per_n[n] = {
                "build_s": round(min(builds), 4),
                "query_hotpluggable_cpus_ms": round(query_ms, 3),
                "adds": len(costs),
                "add_ms_mean": round(1000 * statistics.mean(costs), 3),
                "add_ms_first": round(_window_ms(costs, last=False), 3),
                "add_ms_last": round(_window_ms(costs, last=True), 3),
            }
            progress.tick(f"{n} slots done", force=True)
    big = sizes[-1]
    noguest = _burst(
        _build(big, "none"), min(burst, big - 1), progress, f"burst without guest, {big}"
    )
    noguest_first, noguest_last = _window_ms(noguest, last=False), _window_ms(noguest, last=True)

    print(
        f"scale: POWER9 SMT1, -m 1G; dumpdtb whole process (median of {dtb_repeats}) beside "
        f"{qemu or 'qemu-system-ppc64 (not installed)'}"
    )
    header = (
        f"{'dumpdtb':8} {'N':>5} {'emulator s':>10} {'cpu s':>6} {'RSS MiB':>8} | {'qemu s':>8} "
        f"{'cpu s':>6} {'RSS MiB':>8} {'time ×':>7} {'RSS ×':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in dtb_rows:
        if row["qemu_s"] is not None:
            tail = (
                f"{row['qemu_s']:>8.3f} {row['qemu_cpu_s']:>6.2f} {row['qemu_rss_mib']:>8.1f} "
                f"{row['emulator_s'] / row['qemu_s']:>7.3f} "
                f"{row['emulator_rss_mib'] / row['qemu_rss_mib']:>6.3f}"
            )
        else:
            tail = f"  {row['qemu_error'] or 'QEMU not installed'}"
        print(
            f"{row['kind']:8} {row['n']:>5} {row['emulator_s']:>10.3f} "
            f"{row['emulator_cpu_s']:>6.2f} {row['emulator_rss_mib']:>8.1f} | {tail}"
        )
    print()
    header = (
        f"{'slots':>5} {'build s':>8} {'query-hp ms':>11} {'adds':>5} {'add ms mean':>11} "
        f"{'first':>8} {'last':>8}"
    )
    print(header)
    print("-" * len(header))
    for n, r in per_n.items():
        print(
            f"{n:>5} {r['build_s']:>8.3f} {r['query_hotpluggable_cpus_ms']:>11.3f} {r['adds']:>5} "
            f"{r['add_ms_mean']:>11.3f} {r['add_ms_first']:>8.3f} {r['add_ms_last']:>8.3f}"
        )
    print(
        f"without a guest, {big} slots, {len(noguest)} adds: first {WINDOW} "
        f"{noguest_first:.3f} ms/add, last {WINDOW} {noguest_last:.3f} ms/add"
    )
    sparse_big = next(r for r in dtb_rows if r["kind"] == "sparse" and r["n"] == big)
    time_ratio = rss_ratio = None
    note = None
    if sparse_big["qemu_s"] is not None:
        time_ratio = round(sparse_big["emulator_s"] / sparse_big["qemu_s"], 3)
        rss_ratio = round(sparse_big["emulator_rss_mib"] / sparse_big["qemu_rss_mib"], 3)
    else:
        note = sparse_big["qemu_error"] or "qemu-system-ppc64 is not installed"
    # one hot-add into a nearly empty machine (the first adds of the burst) vs one at 8 slots
    add_ratio = per_n[big]["add_ms_first"] / per_n[sizes[0]]["add_ms_mean"]
    burst_ratio = per_n[big]["add_ms_mean"] / per_n[sizes[0]]["add_ms_mean"]
    print(
        f"sparse {big} slots vs QEMU: time {time_ratio}, RSS {rss_ratio}; one add at {big} vs "
        f"{sizes[0]} slots: {add_ratio:.3f} (whole burst's mean: {burst_ratio:.3f}); add ms "
        "are CPU ms of this process"
    )
    return {
        "time_ratio_vs_qemu": time_ratio,
        "rss_ratio_vs_qemu": rss_ratio,
        "qemu_note": note,
        "add_cost_ratio_4096_vs_8": round(add_ratio, 3),
        "burst_add_cost_ratio_4096_vs_8": round(burst_ratio, 3),
        "noguest_add_ms_first": round(noguest_first, 3),
        "noguest_add_ms_last": round(noguest_last, 3),
        "noguest_add_cost_last_vs_first": round(noguest_last / noguest_first, 3),
        "per_n": {str(n): r for n, r in per_n.items()},
        "dumpdtb": dtb_rows,
        "quick": quick,
        "host": host_facts(),
    }
