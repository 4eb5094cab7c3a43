"""Property-based tests of the vCPU scheduler (hypothesis).

Random guest programs (EXECUTE, H_CEDE with and without timeouts, H_PROD,
H_CONFER, and machine hcalls that raise/lower interrupts, stop-self, start-cpu
and unplug threads from inside the call) plus random host-side interrupts run
step by step, and after every step: no thread both halted and running, at most
``host_cpus`` running, guest code runs only while its thread is RUNNING, a STOPPED
thread makes no progress, run time is conserved, every traced transition is
legal. Separately: determinism, fairness between equally busy threads, and
steal-time conservation when threads outnumber host processors.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from machine.sched import TRANSITIONS, VcpuScheduler, VcpuState
from rtas.hcalls import EXECUTE, Hcall
from spapr.trace import TraceRecorder

Gen = Generator[tuple[Any, ...], Any, None]

# Machine hypercall numbers of these tests (the handler below gives them meaning).
IPI, EOI, STOP_SELF, START, REMOVE = 0x6C, 0x64, 0xF100, 0xF101, 0xF102
MAX_VCPUS = 6

ops = st.one_of(
    st.tuples(st.just("exec"), st.integers(1, 3_000)),
    st.tuples(st.just("cede"), st.one_of(st.none(), st.integers(-1, 3_000))),
    st.tuples(st.just("prod"), st.integers(0, MAX_VCPUS)),
    st.tuples(st.just("confer"), st.sampled_from([-1, 0, 1, 2, 99])),
    st.tuples(st.just("ipi"), st.integers(0, MAX_VCPUS - 1)),
    st.tuples(st.just("eoi")),
    st.tuples(st.just("stop_self")),
    st.tuples(st.just("start"), st.integers(0, MAX_VCPUS - 1)),
    st.tuples(st.just("remove"), st.integers(0, MAX_VCPUS - 1)),
)


@attrs.frozen
class Workload:
    """A random machine: host processors, costs, one op script per thread, host events."""

    host_cpus: int
    quantum: int
    cost: int
    scripts: tuple[tuple[tuple[Any, ...], ...], ...]
    loops: tuple[bool, ...]
    externals: tuple[tuple[int, str, int], ...]
    horizon: int


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    n = draw(st.integers(1, MAX_VCPUS))
    return Workload(
        host_cpus=draw(st.integers(1, 3)),
        quantum=draw(st.sampled_from([50, 500, 2_000])),
        cost=draw(st.sampled_from([1, 7, 100])),
        scripts=tuple(tuple(draw(st.lists(ops, min_size=1, max_size=8))) for _ in range(n)),
        loops=tuple(draw(st.booleans()) for _ in range(n)),
        externals=tuple(
            draw(
                st.lists(
                    st.tuples(
                        st.integers(0, 20_000),
                        st.sampled_from(["raise", "lower", "prod", "start", "stop"]),
                        st.integers(0, n - 1),
                    ),
                    max_size=10,
                )
            )
        ),
        horizon=draw(st.sampled_from([100, 5_000])),
    )


class Harness:
    """Runs a :class:`Workload` and checks the invariants after every event."""

    def __init__(self, work: Workload, trace: TraceRecorder | None = None) -> None:
        self.work = work
        self.trace = trace
        self.violations: list[str] = []
        self.sched = VcpuScheduler(
            work.host_cpus,
            quantum_ns=work.quantum,
            hcall_cost_ns=work.cost,
            hcall=self.hcall,
            program_factory=self.program,
            trace=trace,
            near_horizon_ns=work.horizon,
        )
        if trace is not None:
            trace.set_clock(self.sched.clock)
        for vcpu_id in range(len(work.scripts)):
            self.sched.add_vcpu(vcpu_id)
        for vcpu_id in range(len(work.scripts)):
            if vcpu_id % 2 == 0 or vcpu_id == 1:
                self.sched.start(vcpu_id, 0x100, vcpu_id)
        for when, action, target in work.externals:
            self.sched.call_at(when, self.later(action, target))

    # -- the machine side

    def exists(self, vcpu_id: int) -> bool:
        return self.sched.find_vcpu(vcpu_id) is not None

    def hcall(self, vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        sched = self.sched
        if number == IPI and self.exists(args[0]):
            sched.raise_interrupt(args[0])
        elif number == EOI:
            sched.lower_interrupt(vcpu_id)
        elif number == STOP_SELF:
            sched.stop_self(vcpu_id)
        elif number == START and self.exists(args[0]) and sched.is_halted(args[0]):
            sched.start(args[0], 0x100, args[0])
        elif number == REMOVE and self.exists(args[0]):
            sched.remove_vcpu(args[0])
        return 0

    def later(self, action: str, vcpu_id: int) -> Callable[[], None]:
        return lambda: self.external(action, vcpu_id)

    def external(self, action: str, vcpu_id: int) -> None:
        sched = self.sched
        if not self.exists(vcpu_id):
            return
        if action == "raise":
            sched.raise_interrupt(vcpu_id)
        elif action == "lower":
            sched.lower_interrupt(vcpu_id)
        elif action == "prod":
            sched.prod(vcpu_id)
        elif action == "start" and sched.is_halted(vcpu_id):
            sched.start(vcpu_id, 0x100, vcpu_id)
        elif action == "stop":
            sched.stop_self(vcpu_id)

    # -- the guest side

    def program(self, vcpu_id: int, entry: int, r3: int) -> Gen:
        script = self.work.scripts[vcpu_id % len(self.work.scripts)]
        loop = self.work.loops[vcpu_id % len(self.work.scripts)]
        sched = self.sched
        while True:
            for op in script:
                if sched.state(vcpu_id) is not VcpuState.RUNNING:
                    self.violations.append(f"vCPU {vcpu_id} ran while {sched.state(vcpu_id)}")
                kind = op[0]
                if kind == "exec":
                    yield (EXECUTE, op[1])
                elif kind == "cede":
                    yield (Hcall.H_CEDE,) if op[1] is None else (Hcall.H_CEDE, op[1])
                elif kind == "prod":
                    yield (Hcall.H_PROD, op[1])
                elif kind == "confer":
                    yield (Hcall.H_CONFER, op[1])
                elif kind == "ipi":
                    yield (IPI, op[1])
                elif kind == "eoi":
                    yield (EOI,)
                elif kind == "stop_self":
                    yield (STOP_SELF,)
                    self.violations.append(f"vCPU {vcpu_id} returned from stop-self")
                elif kind == "start":
                    yield (START, op[1])
                elif kind == "remove":
                    yield (REMOVE, op[1])
            if not loop:
                return

    # -- checking

    def check(self, previous: dict[int, tuple[VcpuState, int]]) -> dict[int, tuple[VcpuState, int]]:
        sched = self.sched
        stats = sched.stats()
        now = sched.now
        assert stats.now == now
        states = {v: sched.state(v) for v in sched.vcpus()}
        running = [v for v, s in states.items() if s is VcpuState.RUNNING]
        assert len(running) <= sched.host_cpus
        cpus = [sched.host_cpu(v) for v in running]
        assert None not in cpus
        assert len(set(cpus)) == len(cpus)
        assert sched.runnable_count() == sum(
            s in (VcpuState.RUNNING, VcpuState.RUNNABLE) for s in states.values()
        )
        for v, s in states.items():
            halted = sched.is_halted(v)
            assert halted == (s in (VcpuState.STOPPED, VcpuState.HALTED))
            assert not (halted and s is VcpuState.RUNNING)
            if s in (VcpuState.STOPPED, VcpuState.HALTED):
                assert sched.host_cpu(v) is None
        run = dict(zip(stats.vcpu_id.tolist(), stats.run_ns.tolist(), strict=True))
        steal = dict(zip(stats.vcpu_id.tolist(), stats.steal_ns.tolist(), strict=True))
        assert set(run) == set(states)
        assert sum(run.values()) <= sched.host_cpus * now
        for v in states:
            assert run[v] >= 0
            assert steal[v] >= 0
            assert run[v] + steal[v] <= now
            old = previous.get(v)
            if old is not None and old[0] is VcpuState.STOPPED and states[v] is VcpuState.STOPPED:
                assert run[v] == old[1], f"STOPPED vCPU {v} made progress"
        return {v: (states[v], run[v]) for v in states}

    def run(self, until: int, *, check: bool = True, max_steps: int = 1_500) -> None:
        previous: dict[int, tuple[VcpuState, int]] = {}
        for _ in range(max_steps):
            if not self.sched.step() or self.sched.now > until:
                break
            if check:
                previous = self.check(previous)
        assert self.violations == []


def check_trace(rec: TraceRecorder) -> None:
    """Every state change is legal and chains from the thread's previous state."""
    legal = {(a.name, b.name) for a, b in TRANSITIONS}
    last: dict[int, str] = {}
    for event in rec.events:
        vcpu = event.fields.get("vcpu")
        if event.name == "vcpu_added":
            last[vcpu] = "STOPPED"
        elif event.name == "vcpu_state":
            old, new = event.fields["old"], event.fields["new"]
            assert (old, new) in legal
            assert last[vcpu] == old
            last[vcpu] = new
        elif event.name == "vcpu_removed":
            assert last.pop(vcpu) == "STOPPED"


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(workloads())
def test_invariants_hold_after_every_event(work: Workload) -> None:
    rec = TraceRecorder()
    harness = Harness(work, rec)
    harness.run(30_000)
    check_trace(rec)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_same_inputs_give_the_same_trace_and_statistics(work: Workload) -> None:
    outputs = []
    for _ in range(2):
        rec = TraceRecorder()
        harness = Harness(work, rec)
        harness.run(30_000, check=False)
        stats = harness.sched.stats()
        outputs.append(
            (
                rec.to_jsonl(),
                stats.vcpu_id.tolist(),
                stats.state.tolist(),
                stats.run_ns.tolist(),
                stats.steal_ns.tolist(),
                stats.slices.tolist(),
                stats.wakeups.tolist(),
                stats.events,
                harness.sched.now,
            )
        )
    assert outputs[0] == outputs[1]
    assert outputs[0][0]  # something was traced


def _busy() -> Gen:
    while True:
        yield (EXECUTE, 10**15)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(2, 8),
    host_cpus=st.integers(1, 4),
    quantum=st.sampled_from([100, 1_000, 7_000]),
    window=st.integers(1, 400_000),
)
def test_equally_busy_threads_get_equal_time(
    n: int, host_cpus: int, quantum: int, window: int
) -> None:
    sched = VcpuScheduler(host_cpus, quantum_ns=quantum, program_factory=lambda _v, _e, _r: _busy())
    for v in range(n):
        sched.add_vcpu(v)
        sched.start(v)
    sched.run_until(window)
    run = sched.stats().run_ns
    assert int(run.max() - run.min()) <= 2 * quantum


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(2, 8),
    host_cpus=st.integers(1, 4),
    quantum=st.sampled_from([100, 1_000]),
    window=st.integers(1, 200_000),
)
def test_busy_threads_conserve_processor_time(
    n: int, host_cpus: int, quantum: int, window: int
) -> None:
    sched = VcpuScheduler(host_cpus, quantum_ns=quantum, program_factory=lambda _v, _e, _r: _busy())
    for v in range(n):
        sched.add_vcpu(v)
        sched.start(v)
    sched.run_until(window)
    stats = sched.stats()
    used = min(n, host_cpus)
    assert int(stats.run_ns.sum()) == used * window  # no processor idles while one waits
    assert (stats.run_ns + stats.steal_ns).tolist() == [window] * n
    assert int(stats.steal_ns.sum()) == (n - used) * window
    if n > host_cpus:
        assert int(stats.steal_ns.sum()) > 0


class SchedulerMachine(RuleBasedStateMachine):
    """Host actions (plug, start-cpu, interrupts, prods, stop, unplug, time) in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.rec = TraceRecorder()
        self.harness: Harness | None = None
        self.previous: dict[int, tuple[VcpuState, int]] = {}
        self.next_id = 0

    @initialize(work=workloads())
    def setup(self, work: Workload) -> None:
        self.harness = Harness(work, self.rec)
        self.next_id = len(work.scripts)

    @property
    def sched(self) -> VcpuScheduler:
        assert self.harness is not None
        return self.harness.sched

    def pick(self, data: st.DataObject) -> int | None:
        vcpus = self.sched.vcpus()
        return data.draw(st.sampled_from(vcpus)) if vcpus else None

    @rule(ns=st.integers(0, 5_000))
    def run_for(self, ns: int) -> None:
        self.sched.run_for(ns)
        # many events: a thread may have been started, run and stopped again in
        # between, so "a STOPPED thread made no progress" is checked per event only
        self.previous = {}

    @rule()
    def step(self) -> None:
        self.sched.step()

    @rule(data=st.data())
    def raise_interrupt(self, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None:
            self.sched.raise_interrupt(v)

    @rule(data=st.data())
    def lower_interrupt(self, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None:
            self.sched.lower_interrupt(v)

    @rule(data=st.data())
    def prod(self, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None:
            self.sched.prod(v)

    @rule(data=st.data())
    def start_cpu(self, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None and self.sched.is_halted(v):
            self.sched.start(v, 0x100, v)

    @rule(data=st.data())
    def stop_self(self, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None:
            self.sched.stop_self(v)

    @rule(data=st.data())
    def unplug(self, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None:
            self.sched.remove_vcpu(v)
            self.previous.pop(v, None)

    @precondition(lambda self: len(self.sched.vcpus()) < 8)
    @rule()
    def plug(self) -> None:
        self.sched.add_vcpu(self.next_id)
        self.next_id += 1

    @rule(delay=st.integers(0, 3_000), data=st.data())
    def timer_interrupt(self, delay: int, data: st.DataObject) -> None:
        v = self.pick(data)
        if v is not None and self.harness is not None:
            self.sched.call_later(delay, self.harness.later("raise", v))

    @invariant()
    def consistent(self) -> None:
        if self.harness is None:
            return
        self.previous = self.harness.check(self.previous)
        assert self.harness.violations == []
        check_trace(self.rec)


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
