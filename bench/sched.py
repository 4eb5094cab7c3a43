"""vCPU scheduler throughput: ``machine.sched.VcpuScheduler`` against the same workload in SimPy.

Workload (the same guest programs, machine hcall handler and host timer for all
models; every "random" number comes from a 64-bit LCG, precomputed per vCPU into a
table the guest cycles through, so all models see the same stream):

* ``HOST_CPUS`` = 4 host processors, quantum 100 µs, every hcall charged 1 µs.
* N vCPU threads (N = 8, 64, 1024, 4096), all started with start-cpu at t = 0.
* vCPUs 0..7 are *busy*; each loops forever: compute for 20..319 µs (one EXECUTE,
  re-issued for the remainder after each interrupt cut; after a cut it takes the
  interrupt: H_XIRR (the machine lowers its line), EXECUTE 5 µs, H_EOI). Then, on
  a draw r = 0..7: r = 0 -> H_IPI to busy partner (i + 1) mod 8; r = 1 -> H_IPI
  to an idle vCPU drawn at random (to the partner when N = 8); r = 2, 3 ->
  H_CEDE with a 50 µs timeout, then take the interrupt as above.
* vCPUs 8..N-1 are *idle* (a tickless Linux idle loop); each loops forever:
  H_CEDE with a timeout of 1..2 s (the decrementer), then H_XIRR, EXECUTE 5 µs,
  H_EOI. So N - 8 threads are halted nearly always, each with a pending
  timeout, and are woken only occasionally.
* A host timer every 100 µs raises the interrupt of one vCPU drawn at random among
  the idle ones (among the busy ones when N = 8): an IPI from the machine.
* H_IPI calls ``raise_interrupt(target)`` (waking an idle vCPU or cutting a busy
  one's EXECUTE); H_XIRR calls ``lower_interrupt(caller)``; H_EOI does nothing.
* Each model first runs ``WARMUP_NS`` (10 ms: every vCPU's first dispatch and
  first cede) untimed, then is timed up to ``SPAN_NS`` (400 ms more; 50 ms with
  ``--quick``). The idle timeouts (>= 1 s) stay pending in that window.

Models: ours; :class:`~bench._simpy_sched.SimpyScheduler`, the same policy
written the usual SimPy way (host processors as a ``simpy.PriorityResource``
keyed by vruntime, a process per vCPU, ``env.timeout`` per slice,
``Process.interrupt`` for cuts, ``wake | timeout`` for cedes) — the anchor of
``simpy_events_per_s`` and ``ratio_vs_simpy``; and
:class:`~bench._simpy_sched.LeanSimpyScheduler`, a tighter SimPy formulation
with a hand-rolled run queue of grant events, reported alongside.

Event (one definition, counted by every model at the same points): one *slice
end* (a vCPU's stint on a host processor ends: quantum boundary, completion of an
EXECUTE or of an hcall's charge, or an interrupt cut), one *wake-up* of a halted
vCPU (interrupt or cede timeout), or one *host-timer callback*.
``VcpuScheduler.stats().events`` counts exactly these; the SimPy models count them
in the same places, and process the same number of them up to the order of
simultaneous events. Rates are events per CPU second of this process
(``time.process_time``, so other load on the host skews them less), best of
``OURS_REPEATS`` (ours) / ``REPEATS`` (SimPy) rounds over all sizes.
``cost_ratio_4096_vs_8`` is (CPU seconds per event at N = 4096) / (at N = 8) for
our scheduler; the headline ``events_per_s`` and ``ratio_vs_simpy`` are at
N = 4096, and every N is in ``per_n``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from typing import Any, Protocol

from bench._simpy_sched import LeanSimpyScheduler, SimpyScheduler
from machine.sched import VcpuScheduler
from rtas.hcalls import EXECUTE, Hcall

HOST_CPUS = 4
QUANTUM_NS = 100_000
HCALL_COST_NS = 1_000
BUSY = 8
SIZES = (8, 64, 1024, 4096)
SPAN_NS = 410_000_000
QUICK_SPAN_NS = 60_000_000
TIMER_PERIOD_NS = 100_000
REPEATS = 3
OURS_REPEATS = 7
DRAWS = 1024
WARMUP_NS = 10_000_000

_H_CEDE = Hcall.H_CEDE
_H_IPI = int(Hcall.H_IPI)
_H_XIRR = int(Hcall.H_XIRR)
_H_EOI = int(Hcall.H_EOI)
_MASK = (1 << 64) - 1

GuestProgram = Generator[tuple[Any, ...], Any, None]


class Model(Protocol):
    """The scheduler API the workload drives (both models provide it)."""

    @property
    def now(self) -> int: ...
    def add_vcpu(self, vcpu_id: int) -> None: ...
    def start(self, vcpu_id: int, entry: int = 0, r3: int = 0) -> None: ...
    def raise_interrupt(self, vcpu_id: int) -> None: ...
    def lower_interrupt(self, vcpu_id: int) -> None: ...
    def call_later(self, delay: int, callback: Callable[[], None]) -> Any: ...
    def run_until(self, when: int) -> None: ...


class Lcg:
    """64-bit linear congruential generator (Knuth's MMIX constants); ``draw()`` -> 31 bits."""

    def __init__(self, seed: int) -> None:
        self.x = (seed * 0x9E3779B97F4A7C15 + 1) & _MASK

    def draw(self) -> int:
        """Next 31-bit value."""
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & _MASK
        return self.x >> 33


def draws(seed: int, count: int = DRAWS) -> list[int]:
    """``count`` successive LCG values: a guest cycles through them (cheap and identical)."""
    rng = Lcg(seed)
    return [rng.draw() for _ in range(count)]


def busy_program(vcpu_id: int, n_vcpus: int) -> GuestProgram:
    """A compute thread: EXECUTE bursts, IPIs to others, short cedes."""
    table = draws(vcpu_id)
    i = 0
    partner = (vcpu_id + 1) % BUSY
    n_idle = n_vcpus - BUSY
    while True:
        x = table[i]
        i = (i + 1) % DRAWS
        left = 20_000 + x % 300_000
        while left > 0:
            left = yield (EXECUTE, left)
            if left:
                yield (_H_XIRR,)
                yield (EXECUTE, 5_000)
                yield (_H_EOI, 0)
        r = (x >> 20) % 8
        if r == 0:
            yield (_H_IPI, partner)
        elif r == 1:
            yield (_H_IPI, BUSY + (x >> 4) % n_idle if n_idle > 0 else partner)
        elif r < 4:
            yield (_H_CEDE, 50_000)
            yield (_H_XIRR,)
            yield (EXECUTE, 5_000)
            yield (_H_EOI, 0)


def idle_program(vcpu_id: int) -> GuestProgram:
    """A tickless idle loop: long cedes, a short interrupt handler when woken."""
    table = draws(vcpu_id, 16)
    i = 0
    while True:
        yield (_H_CEDE, 1_000_000_000 + table[i] % 1_000_000_000)
        i = (i + 1) % 16
        yield (_H_XIRR,)
        yield (EXECUTE, 5_000)
        yield (_H_EOI, 0)


class Workload:
    """The machine side of the workload: hcall handler, program factory, host timer."""

    def __init__(self, n_vcpus: int) -> None:
        self.n_vcpus = n_vcpus
        self.model: Model | None = None
        self.targets = draws(0xC0FFEE)
        self.tick_index = 0

    def program(self, vcpu_id: int, entry: int, r3: int) -> GuestProgram:
        """start-cpu's program factory."""
        if vcpu_id < BUSY:
            return busy_program(vcpu_id, self.n_vcpus)
        return idle_program(vcpu_id)

    def hcall(self, vcpu_id: int, number: int, args: tuple[Any, ...]) -> int:
        """H_IPI raises the target's interrupt, H_XIRR lowers the caller's, H_EOI is a no-op."""
        model = self.model
        assert model is not None
        if number == _H_IPI:
            model.raise_interrupt(args[0])
        elif number == _H_XIRR:
            model.lower_interrupt(vcpu_id)
        return 0

    def tick(self) -> None:
        """The host timer: an IPI to a random idle vCPU (busy one if there are none)."""
        model = self.model
        assert model is not None
        x = self.targets[self.tick_index]
        self.tick_index = (self.tick_index + 1) % DRAWS
        n_idle = self.n_vcpus - BUSY
        model.raise_interrupt(BUSY + x % n_idle if n_idle > 0 else x % BUSY)
        model.call_later(TIMER_PERIOD_NS, self.tick)

    def install(self, model: Model) -> None:
        """Create and start every vCPU, arm the host timer."""
        self.model = model
        for vcpu_id in range(self.n_vcpus):
            model.add_vcpu(vcpu_id)
        for vcpu_id in range(self.n_vcpus):
            model.start(vcpu_id)
        model.call_later(TIMER_PERIOD_NS, self.tick)


def run_ours(n_vcpus: int, span_ns: int) -> tuple[int, float, VcpuScheduler]:
    """One run on VcpuScheduler: (events, CPU seconds, scheduler)."""
    work = Workload(n_vcpus)
    sched = VcpuScheduler(
        HOST_CPUS,
        quantum_ns=QUANTUM_NS,
        hcall_cost_ns=HCALL_COST_NS,
        hcall=work.hcall,
        program_factory=work.program,
    )
    work.install(sched)
    sched.run_until(WARMUP_NS)
    events0 = sched.stats().events
    gc.collect()
    t0 = time.process_time()
    sched.run_until(span_ns)
    cpu = time.process_time() - t0
    return sched.stats().events - events0, cpu, sched


def run_simpy(
    n_vcpus: int, span_ns: int, model_class: type[LeanSimpyScheduler] = SimpyScheduler
) -> tuple[int, float, LeanSimpyScheduler]:
    """One run on a SimPy model: (events, CPU seconds, model)."""
    work = Workload(n_vcpus)
    model = model_class(
        HOST_CPUS,
        quantum_ns=QUANTUM_NS,
        hcall_cost_ns=HCALL_COST_NS,
        hcall=work.hcall,
        program_factory=work.program,
    )
    work.install(model)
    model.run_until(WARMUP_NS)
    events0 = model.events()
    gc.collect()
    t0 = time.process_time()
    model.run_until(span_ns)
    cpu = time.process_time() - t0
    return model.events() - events0, cpu, model


def _best(runs: list[tuple[int, float, Any]]) -> tuple[int, float]:
    events = runs[0][0]
    return events, min(r[1] for r in runs)


def run(args: list[str]) -> dict[str, Any]:
    """Measure the three models at every size; print the table; return the figures."""
    quick = "--quick" in args
    span = QUICK_SPAN_NS if quick else SPAN_NS
    repeats = 1 if quick else REPEATS
    ours_repeats = 1 if quick else OURS_REPEATS
    rows: dict[int, dict[str, float]] = {}
    print(
        f"sched: {HOST_CPUS} host CPUs, quantum {QUANTUM_NS // 1000} µs, {BUSY} busy vCPUs + "
        f"idle ones, {(span - WARMUP_NS) / 1e6:.0f} ms virtual timed, best of "
        f"{ours_repeats} (ours) / {repeats} (SimPy) rounds; "
        "ev/s = events per CPU second"
    )
    header = (
        f"{'N':>5} {'events':>7} {'ours ev/s':>10} {'µs/ev':>6} | {'simpy ev':>8} "
        f"{'simpy ev/s':>10} {'ratio':>6} | {'lean ev':>7} {'lean ev/s':>10} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    # Rounds over all sizes (ours gets more: it is cheap), so load on the host
    # that comes and goes touches every size alike; the best round counts.
    ours_runs: dict[int, list[tuple[int, float, Any]]] = {n: [] for n in SIZES}
    simpy_runs: dict[int, list[tuple[int, float, Any]]] = {n: [] for n in SIZES}
    lean_runs: dict[int, list[tuple[int, float, Any]]] = {n: [] for n in SIZES}
    for round_ in range(max(repeats, ours_repeats)):
        for n in SIZES:
            if round_ < ours_repeats:
                ours_runs[n].append(run_ours(n, span))
            if round_ < repeats:
                simpy_runs[n].append(run_simpy(n, span))
                lean_runs[n].append(run_simpy(n, span, LeanSimpyScheduler))
    for n in SIZES:
        ours_events, ours_cpu = _best(ours_runs[n])
        simpy_events, simpy_cpu = _best(simpy_runs[n])
        lean_events, lean_cpu = _best(lean_runs[n])
        ours_rate = ours_events / ours_cpu
        simpy_rate = simpy_events / simpy_cpu
        lean_rate = lean_events / lean_cpu
        rows[n] = {
            "events": ours_events,
            "events_per_s": ours_rate,
            "simpy_events": simpy_events,
            "simpy_events_per_s": simpy_rate,
            "ratio": ours_rate / simpy_rate,
            "lean_events": lean_events,
            "lean_events_per_s": lean_rate,
            "lean_ratio": ours_rate / lean_rate,
        }
        print(
            f"{n:>5} {ours_events:>7} {ours_rate:>10,.0f} {1e6 / ours_rate:>6.3f} | "
            f"{simpy_events:>8} {simpy_rate:>10,.0f} {ours_rate / simpy_rate:>6.2f} | "
            f"{lean_events:>7} {lean_rate:>10,.0f} {ours_rate / lean_rate:>6.2f}"
        )
    head = rows[SIZES[-1]]
    cost_ratio = rows[SIZES[0]]["events_per_s"] / head["events_per_s"]
    print(
        f"headline N={SIZES[-1]}: {head['events_per_s']:,.0f} ev/s vs SimPy "
        f"{head['simpy_events_per_s']:,.0f} ev/s = {head['ratio']:.2f}x "
        f"(vs lean SimPy {head['lean_ratio']:.2f}x); cost per event at {SIZES[-1]} vs "
        f"{SIZES[0]}: {cost_ratio:.3f}"
    )
    return {
        "bench": "sched",
        "headline_n": SIZES[-1],
        "events_per_s": round(head["events_per_s"]),
        "simpy_events_per_s": round(head["simpy_events_per_s"]),
        "ratio_vs_simpy": round(head["ratio"], 3),
        "simpy_lean_events_per_s": round(head["lean_events_per_s"]),
        "ratio_vs_simpy_lean": round(head["lean_ratio"], 3),
        "cost_ratio_4096_vs_8": round(cost_ratio, 3),
        "per_n": {
            str(n): {
                "events": int(r["events"]),
                "events_per_s": round(r["events_per_s"]),
                "simpy_events": int(r["simpy_events"]),
                "simpy_events_per_s": round(r["simpy_events_per_s"]),
                "ratio_vs_simpy": round(r["ratio"], 3),
                "simpy_lean_events": int(r["lean_events"]),
                "simpy_lean_events_per_s": round(r["lean_events_per_s"]),
                "ratio_vs_simpy_lean": round(r["lean_ratio"], 3),
            }
            for n, r in rows.items()
        },
        "host_cpus": HOST_CPUS,
        "quantum_ns": QUANTUM_NS,
        "timed_virtual_ns": span - WARMUP_NS,
        "quick": quick,
    }
