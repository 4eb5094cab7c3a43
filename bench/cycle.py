"""Full hotplug cycles with the reference guest: device_add → online → device_del → DEVICE_DELETED.

One *cycle*, on a running machine whose reference guest (Linux 6.1, in-kernel
DLPAR, every RTAS call through guest memory and H_RTAS) has booted, is what a
scripted monitor session does: ``device_add`` of the last slot's core (id
``hot``) through :class:`~machine.monitor.control.MachineControl`, which then
settles (runs virtual time until the machine has been quiet for 50 ms: the guest
takes the event, walks the connector and starts every thread); every thread of
the core must then be online in the guest; ``device_del hot``, settle again (the
guest offlines the threads, they stop-self, it isolates and releases the
connector); ``DEVICE_DELETED`` for ``hot`` must have come. Both checks run inside
the timed loop (a failed cycle cannot look fast; they cost little).

Configurations: POWER9 SMT1 under TCG (``-smp 1,maxcpus=8``; 44 RTAS calls a
cycle in XIVE mode, the one the guest negotiates, and a query-cpu-stopped-state
poll answered "running" per dying thread), and SMT4 / SMT8 cores under the modeled
KVM (``-cpu host``, POWER9 host, ``maxcpus=16``). Each runs warm-up cycles, then
cycles for at least ``--seconds`` (5 by default; ``--quick``: a few cycles, for the
smoke test) of wall time.

Figures: cycles per wall second; ``rtas_call_us``, the wall time of one RTAS call
inside a cycle as the machine serves it (H_RTAS: the argument buffer read from
guest memory, the service, the returns written back, its trace events), timed in
a separate pass of the same cycles with a clock around the H_RTAS handler (the
clock's own cost, measured, is taken off); ``cycle_us_per_rtas_call``, the whole
cycle's wall time divided by its RTAS calls (guest, scheduler and monitor
included: the figure the issue first quoted); the RTAS calls and trace events per
cycle; the process's RSS before and after the timed cycles. There is no anchor:
QEMU needs a real POWER guest to run this protocol (``bench qmp`` compares the
host side, without a guest, with QEMU).
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._common import Progress, current_rss_mib, host_facts
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine, QmpEvent
from machine.monitor.control import MachineControl
from rtas.hcalls import Hcall

COMMON = ["-m", "1G", "-nographic", "-display", "none", "-nodefaults", "-seed", "1"]
CONFIGS: dict[str, list[str]] = {
    "smt1": ["-M", "pseries", "-cpu", "POWER9", "-smp", "1,maxcpus=8"],
    "smt4": ["-enable-kvm", "-M", "pseries", "-cpu", "host", "-smp", "4,threads=4,maxcpus=16"],
    "smt8": ["-enable-kvm", "-M", "pseries", "-cpu", "host", "-smp", "8,threads=8,maxcpus=16"],
}
WARMUP = 5
SECONDS = 5.0
QUICK_CYCLES = 3
#: Cycles of the instrumented pass that times each RTAS call.
RTAS_PASS_CYCLES = 200
QUICK_RTAS_PASS_CYCLES = 2


class CycleRig:
    """A booted machine with its reference guest, and one hotplug cycle on its last slot."""

    def __init__(self, config: str) -> None:
        self.machine: PseriesMachine = build_machine(CONFIGS[config] + COMMON, io.StringIO())
        self.machine.reset()
        self.control = MachineControl(self.machine)
        self.control.settle()
        guest = self.machine.guest
        if guest is None or not guest.booted:
            raise RuntimeError(f"{config}: the reference guest did not boot")
        self.guest = guest
        slot = self.machine.slots[-1]
        self.core_id = slot.core_id
        self.vcpu_ids = [
            self.machine.topology.vcpu_id(slot.core_id + i) for i in range(slot.vcpus_count)
        ]
        self.deleted = 0
        self.machine.event_listeners.append(self._event)

    def _event(self, event: QmpEvent) -> None:
        if event.name == "DEVICE_DELETED" and event.data.get("device") == "hot":
            self.deleted += 1

    def cycle(self) -> None:
        """device_add, settle, all threads online; device_del, settle, DEVICE_DELETED."""
        control = self.control
        control.device_add({"driver": self.machine.core_type, "id": "hot", "core-id": self.core_id})
        control.settle()
        kernel = self.guest.kernel
        for vcpu_id in self.vcpu_ids:
            cpu = kernel.cpu_by_hwid(vcpu_id)
            if cpu is None or not cpu.online:
                raise RuntimeError(f"hardware thread {vcpu_id} is not online in the guest")
        deleted = self.deleted
        control.device_del("hot")
        control.settle()
        if self.deleted != deleted + 1:
            raise RuntimeError("no DEVICE_DELETED for the hot-added core")

    def rtas_calls(self) -> int:
        """RTAS calls the guest has made so far (its own count; its record may be bounded)."""
        kernel = self.guest.kernel
        count = getattr(kernel, "rtas_calls", None)
        return int(count) if count is not None else len(kernel.rtas_trace)


def _timed_rtas(rig: CycleRig, cycles: int) -> tuple[float, float]:
    """Mean and median wall µs of one H_RTAS as the machine serves it, over ``cycles``.

    The scheduler hands every machine hypercall to one handler; for this pass it is
    wrapped so H_RTAS (and only it) runs between two clock reads. (The median says
    what a call costs when the host does not interrupt it; the mean includes the
    garbage collector's pauses and, on a busy host, preemption.)
    """
    sched = rig.machine.sched
    inner: Callable[[int, int, tuple[Any, ...]], Any] = sched._hcall  # type: ignore[assignment]
    times: list[int] = []
    clock = time.perf_counter_ns
    h_rtas = int(Hcall.KVMPPC_H_RTAS)

    def timed(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        if number != h_rtas:
            return inner(vcpu_id, number, args)
        t0 = clock()
        result = inner(vcpu_id, number, args)
        times.append(clock() - t0)
        return result

    # the clock's own cost (two reads) is measured and taken off
    empty = 0
    for _ in range(10_000):
        t0 = clock()
        empty += clock() - t0
    overhead = empty / 10_000
    sched._hcall = timed
    try:
        for _ in range(cycles):
            rig.cycle()
    finally:
        sched._hcall = inner
    if not times:
        return 0.0, 0.0
    return (
        (sum(times) / len(times) - overhead) / 1000,
        (statistics.median(times) - overhead) / 1000,
    )


def _trace_count(rig: CycleRig) -> int:
    """Trace events emitted so far (kept, plus those a bounded recorder dropped)."""
    trace = rig.machine.trace
    return len(trace.events) + int(getattr(trace, "dropped", 0))


def measure(config: str, seconds: float, quick: bool) -> dict[str, Any]:
    """Cycles per second, RTAS call cost and RSS for one configuration."""
    rig = CycleRig(config)
    for _ in range(1 if quick else WARMUP):
        rig.cycle()
    progress = Progress(f"cycle {config}")
    calls0 = rig.rtas_calls()
    events0 = _trace_count(rig)
    gc.collect()
    rss_before = current_rss_mib()
    cycles = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    elapsed = 0.0
    while True:
        rig.cycle()
        cycles += 1
        elapsed = time.perf_counter() - t0
        if quick and cycles >= QUICK_CYCLES:
            break
        if not quick and elapsed >= seconds:
            break
        progress.tick(f"{cycles} cycles, {cycles / elapsed:,.0f}/s")
    cpu = time.process_time() - cpu0
    rss_after = current_rss_mib()
    calls = (rig.rtas_calls() - calls0) / cycles
    events = (_trace_count(rig) - events0) / cycles
    rate = cycles / elapsed
    rtas_mean, rtas_median = _timed_rtas(rig, QUICK_RTAS_PASS_CYCLES if quick else RTAS_PASS_CYCLES)
    return {
        "cycles": cycles,
        "seconds": round(elapsed, 3),
        "cycles_per_s": round(rate, 1),
        "cycles_per_cpu_s": round(cycles / cpu, 1) if cpu > 0 else None,
        "rtas_calls_per_cycle": round(calls, 2),
        "trace_events_per_cycle": round(events, 1),
        "rtas_call_us": round(rtas_mean, 2),
        "rtas_call_median_us": round(rtas_median, 2),
        "cycle_us_per_rtas_call": round(1e6 / rate / calls, 2) if calls else None,
        "rss_before_mib": round(rss_before, 1),
        "rss_after_mib": round(rss_after, 1),
    }


def run(args: list[str]) -> dict[str, Any]:
    """Measure every configuration; print the table; return the figures."""
    quick = "--quick" in args
    seconds = SECONDS
    if "--seconds" in args:
        seconds = float(args[args.index("--seconds") + 1])
    print(
        f"cycle: device_add → all threads online in the guest → device_del → DEVICE_DELETED, "
        f"settled as a scripted monitor does; {'quick' if quick else f'≥ {seconds:g} s each'}"
    )
    rows = {name: measure(name, seconds, quick) for name in CONFIGS}
    header = (
        f"{'config':7} {'cycles':>7} {'cycles/s':>9} {'/cpu-s':>8} {'rtas/cyc':>8} "
        f"{'events/cyc':>10} {'rtas µs':>8} {'(median)':>8} {'cyc µs/rtas':>11} "
        f"{'RSS before→after MiB':>21}"
    )
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        print(
            f"{name:7} {r['cycles']:>7} {r['cycles_per_s']:>9,.1f} "
            f"{r['cycles_per_cpu_s'] or 0:>8,.1f} {r['rtas_calls_per_cycle']:>8} "
            f"{r['trace_events_per_cycle']:>10} {r['rtas_call_us']:>8.2f} "
            f"{r['rtas_call_median_us']:>8.2f} {r['cycle_us_per_rtas_call']:>11.2f} "
            f"{r['rss_before_mib']:>10.1f} → {r['rss_after_mib']:<8.1f}"
        )
    print(
        "cycles/s: per wall second; /cpu-s: per CPU second of this process (what the wall "
        "rate is on an idle host); rtas µs: mean wall time of one H_RTAS (median beside it)"
    )
    smt1 = rows["smt1"]
    return {
        "smt1_cycles_per_s": smt1["cycles_per_s"],
        "smt4_cycles_per_s": rows["smt4"]["cycles_per_s"],
        "smt8_cycles_per_s": rows["smt8"]["cycles_per_s"],
        "smt1_cycles_per_cpu_s": smt1["cycles_per_cpu_s"],
        "smt4_cycles_per_cpu_s": rows["smt4"]["cycles_per_cpu_s"],
        "smt8_cycles_per_cpu_s": rows["smt8"]["cycles_per_cpu_s"],
        "rtas_call_us": smt1["rtas_call_us"],
        "rtas_call_median_us": smt1["rtas_call_median_us"],
        "rtas_calls_per_cycle": smt1["rtas_calls_per_cycle"],
        "cycle_us_per_rtas_call": smt1["cycle_us_per_rtas_call"],
        "rss_before_mib": smt1["rss_before_mib"],
        "rss_after_mib": smt1["rss_after_mib"],
        "per_config": rows,
        "quick": quick,
        "host": host_facts(),
    }
