"""The vCPU scheduling policy of ``machine.sched`` written as SimPy models: the benchmark's anchor.

The same guest programs and the same machine hcall handler run on them, under
the same policy (host processors handed out by least virtual runtime, FIFO among
equals; a quantum budget with a preemption check at its end; hcalls charged
``hcall_cost_ns``; a level-triggered interrupt line that cuts an EXECUTE; cede
with a timeout; the wake-up vruntime floor), so both sides do the same work.
They cover the operations the benchmark workload uses: EXECUTE, H_CEDE and
machine hypercalls.

:class:`SimpyScheduler` is written the usual SimPy way: one process per vCPU
thread, the host processors a ``simpy.PriorityResource`` requested with the
vruntime as priority, ``env.timeout`` per slice, ``Process.interrupt`` to cut a
slice, an event per wake-up and ``wake | timeout`` for a cede with a timeout.
:class:`LeanSimpyScheduler` replaces the resource by a hand-rolled run queue of
plain grant events (fewer SimPy events per hand-over), as a second, tighter
anchor.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Generator
from typing import Any

import simpy

from machine.sched import HcallHandler, ProgramFactory
from rtas.hcalls import EXECUTE, Hcall

_STOPPED, _RUNNABLE, _RUNNING, _HALTED = 0, 1, 2, 3
_H_CEDE = int(Hcall.H_CEDE)

SimpyProcess = Generator[simpy.Event, Any, Any]


class _SimVcpu:
    """Per-thread record of the SimPy model."""

    __slots__ = (
        "budget",
        "cuttable",
        "in_slice",
        "irq",
        "proc",
        "prod",
        "program",
        "run_ns",
        "since",
        "slices",
        "state",
        "steal_ns",
        "vcpu_id",
        "vruntime",
        "wake",
        "wakeups",
    )

    def __init__(self, vcpu_id: int) -> None:
        self.vcpu_id = vcpu_id
        self.program: Any = None
        self.proc: simpy.Process | None = None
        self.state = _STOPPED
        self.irq = False
        self.prod = False
        self.vruntime = 0
        self.budget = 0
        self.since = 0
        self.in_slice = False
        self.cuttable = False
        self.wake: simpy.Event | None = None
        self.run_ns = 0
        self.steal_ns = 0
        self.slices = 0
        self.wakeups = 0


class LeanSimpyScheduler:
    """SimPy model with a hand-rolled run queue of grant events."""

    def __init__(
        self,
        host_cpus: int,
        *,
        quantum_ns: int,
        hcall_cost_ns: int,
        hcall: HcallHandler,
        program_factory: ProgramFactory,
    ) -> None:
        self.env = simpy.Environment()
        self.quantum_ns = quantum_ns
        self.hcall_cost_ns = hcall_cost_ns
        self.hcall = hcall
        self.program_factory = program_factory
        self.free_cpus = host_cpus
        self.runqueue: list[tuple[int, int, _SimVcpu, simpy.Event]] = []
        self.seq = itertools.count()
        self.min_vruntime = 0
        self.timer_fires = 0
        self.vcpus: dict[int, _SimVcpu] = {}

    @property
    def now(self) -> int:
        """Virtual time in nanoseconds."""
        return int(self.env.now)

    def add_vcpu(self, vcpu_id: int) -> None:
        """A STOPPED thread."""
        self.vcpus[vcpu_id] = _SimVcpu(vcpu_id)

    def start(self, vcpu_id: int, entry: int = 0, r3: int = 0) -> None:
        """start-cpu: a process running the guest program."""
        v = self.vcpus[vcpu_id]
        v.program = self.program_factory(vcpu_id, entry, r3)
        v.state = _RUNNABLE
        v.since = self.now
        v.vruntime = max(v.vruntime, self.min_vruntime)
        v.proc = self.env.process(self._thread(v))

    def raise_interrupt(self, vcpu_id: int) -> None:
        """Assert the line: wake a ceded thread or cut a running EXECUTE slice."""
        v = self.vcpus[vcpu_id]
        v.irq = True
        if v.state == _HALTED:
            wake = v.wake
            if wake is not None and not wake.triggered:
                wake.succeed()
        elif v.state == _RUNNING and v.in_slice and v.cuttable and v.proc is not None:
            v.in_slice = False
            v.proc.interrupt()

    def lower_interrupt(self, vcpu_id: int) -> None:
        """Deassert the line."""
        self.vcpus[vcpu_id].irq = False

    def call_later(self, delay: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay`` ns (a timeout event with a callback)."""

        def fire(_event: simpy.Event) -> None:
            self.timer_fires += 1
            callback()

        timeout = self.env.timeout(delay)
        timeout.callbacks.append(fire)

    def run_until(self, when: int) -> None:
        """Process every event before ``when``."""
        self.env.run(until=when)

    def events(self) -> int:
        """Slice ends + wake-ups + timer callbacks (the benchmark's event definition)."""
        return (
            sum(v.slices for v in self.vcpus.values())
            + sum(v.wakeups for v in self.vcpus.values())
            + self.timer_fires
        )

    def run_ns(self) -> dict[int, int]:
        """Run time per thread."""
        return {i: v.run_ns for i, v in self.vcpus.items()}

    # -- the model

    def _acquire(self, v: _SimVcpu) -> SimpyProcess:
        if self.free_cpus:
            self.free_cpus -= 1
        else:
            granted = self.env.event()
            heapq.heappush(self.runqueue, (v.vruntime, next(self.seq), v, granted))
            yield granted
        v.state = _RUNNING
        v.steal_ns += self.now - v.since
        v.budget = self.quantum_ns
        if v.vruntime > self.min_vruntime:
            self.min_vruntime = v.vruntime

    def _waiting_min(self) -> int | None:
        return self.runqueue[0][0] if self.runqueue else None

    def _release_of(self, v: _SimVcpu) -> None:
        self._release()

    def _release(self) -> None:
        if self.runqueue:
            _, _, _, granted = heapq.heappop(self.runqueue)
            granted.succeed()
        else:
            self.free_cpus += 1

    def _preempt(self, v: _SimVcpu) -> SimpyProcess:
        v.state = _RUNNABLE
        v.since = self.now
        granted = self.env.event()
        heapq.heappush(self.runqueue, (v.vruntime, next(self.seq), v, granted))
        self._release()
        yield granted
        v.state = _RUNNING
        v.steal_ns += self.now - v.since
        v.budget = self.quantum_ns
        if v.vruntime > self.min_vruntime:
            self.min_vruntime = v.vruntime

    def _consume(self, v: _SimVcpu, ns: int, cuttable: bool) -> SimpyProcess:
        """Use ``ns`` of CPU in quantum-bounded slices; returns what an interrupt left undone."""
        env = self.env
        remaining = ns
        while remaining > 0:
            if cuttable and v.irq:
                return remaining
            length = remaining if remaining < v.budget else v.budget
            start: Any = env.now  # SimPy types time as int | float; it stays int here
            v.in_slice = True
            v.cuttable = cuttable
            cut = False
            try:
                yield env.timeout(length)
            except simpy.Interrupt:
                cut = True
            v.in_slice = False
            elapsed = env.now - start
            v.run_ns += elapsed
            v.vruntime += elapsed
            v.slices += 1
            remaining -= elapsed
            v.budget -= elapsed
            if cut:
                if v.budget <= 0:
                    v.budget = self.quantum_ns
                return remaining
            if v.budget <= 0:
                v.budget = self.quantum_ns
                waiting = self._waiting_min()
                if waiting is not None and waiting <= v.vruntime:
                    yield from self._preempt(v)
        return 0

    def _thread(self, v: _SimVcpu) -> SimpyProcess:
        env = self.env
        cost = self.hcall_cost_ns
        yield from self._acquire(v)
        value: Any = None
        program = v.program
        while True:
            try:
                op = program.send(value)
            except StopIteration:
                v.state = _STOPPED
                self._release_of(v)
                return
            code = op[0]
            if code == EXECUTE:
                ns = op[1]
                if ns <= 0:
                    value = 0
                    continue
                if v.irq:
                    value = ns
                    continue
                value = yield from self._consume(v, ns, True)
                continue
            if code == _H_CEDE:
                if v.prod:
                    v.prod = False
                elif not v.irq:
                    v.state = _HALTED
                    self._release_of(v)
                    wake = env.event()
                    v.wake = wake
                    if len(op) > 1 and op[1] is not None:
                        yield wake | env.timeout(op[1])
                    else:
                        yield wake
                    v.wake = None
                    v.wakeups += 1
                    floor = self.min_vruntime - self.quantum_ns
                    if v.vruntime < floor:
                        v.vruntime = floor
                    v.state = _RUNNABLE
                    v.since = self.now
                    yield from self._acquire(v)
                    value = 0
                    continue
                result: Any = 0
            else:
                result = self.hcall(v.vcpu_id, code, op[1:])
            if cost > 0:
                yield from self._consume(v, cost, False)
            value = result


class SimpyScheduler(LeanSimpyScheduler):
    """SimPy model with the host processors as a ``simpy.PriorityResource`` (vruntime priority)."""

    def __init__(
        self,
        host_cpus: int,
        *,
        quantum_ns: int,
        hcall_cost_ns: int,
        hcall: HcallHandler,
        program_factory: ProgramFactory,
    ) -> None:
        super().__init__(
            host_cpus,
            quantum_ns=quantum_ns,
            hcall_cost_ns=hcall_cost_ns,
            hcall=hcall,
            program_factory=program_factory,
        )
        self.cpus = simpy.PriorityResource(self.env, capacity=host_cpus)
        self.requests: dict[int, simpy.resources.resource.PriorityRequest] = {}

    def _acquire(self, v: _SimVcpu) -> SimpyProcess:
        request = self.cpus.request(priority=v.vruntime)
        self.requests[v.vcpu_id] = request
        yield request
        v.state = _RUNNING
        v.steal_ns += self.now - v.since
        v.budget = self.quantum_ns
        if v.vruntime > self.min_vruntime:
            self.min_vruntime = v.vruntime

    def _release_of(self, v: _SimVcpu) -> None:
        self.cpus.release(self.requests.pop(v.vcpu_id))

    def _waiting_min(self) -> int | None:
        queue = self.cpus.queue
        return queue[0].priority if queue else None

    def _preempt(self, v: _SimVcpu) -> SimpyProcess:
        v.state = _RUNNABLE
        v.since = self.now
        self._release_of(v)
        yield from self._acquire(v)
