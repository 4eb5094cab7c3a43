"""The deterministic vCPU thread scheduler: guest programs on virtual time over host processors.

Sans-IO: one virtual clock in integer nanoseconds, no threads, no sleeping. Every
pending occurrence is a heap entry ``(time, sequence, kind, vcpu-or-timer, token)``;
the sequence number (one counter for everything) makes ties deterministic, FIFO
in order of scheduling. There are two heaps, and the order is exactly that of one
merged heap:

* the *near* heap holds the "slice ends" of the vCPUs on host processors (at most
  ``host_cpus`` live ones) and the timeouts and timers due within
  ``near_horizon_ns``: it stays small, which keeps the per-slice path cheap;
* the *far* heap holds later timeouts — with thousands of idle vCPUs, one cede
  timeout (the decrementer) each — and is touched once per such timeout. A
  *far marker* entry in the near heap, due before the far heap's first entry,
  moves the far entries coming within the horizon into the near heap (unchanged,
  so still in their order) when it is reached; the loop itself only ever pops the
  near heap.

Runnable vCPUs wait in a third heap keyed ``(vruntime, sequence)``; a freed host
processor takes the minimum (fair share by virtual runtime, CFS-like), and a
running vCPU is preempted at the end of its quantum if a waiting vCPU has no more
virtual runtime than it. Cancellation is lazy: each vCPU carries a token, bumped
whenever its pending entries become obsolete, and stale entries are skipped when
popped. So every event costs O(log n) at worst and nothing ever scans all vCPUs.

A vCPU made runnable while a host processor is free, or whose EXECUTE an
interrupt cuts, goes on a FIFO ``ready`` list that is served before the next heap
entry (it is due *now*): guest generators are never resumed from inside an API
call (an hcall, a timer callback), which is what makes the API re-entrant.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import attrs

from machine.sched._state import VcpuState
from machine.sched._tables import SchedStats, VcpuTable
from rtas.hcalls import EXECUTE, Hcall, HcallReturn
from spapr.trace import TraceRecorder

#: A guest program: yields operations (tuples), receives each one's result.
Program = Generator[tuple[Any, ...], Any, Any]
#: Builds the program a vCPU runs from start-cpu's (vcpu_id, entry address, r3).
ProgramFactory = Callable[[int, int, int], Program]
#: The machine's hypercall entry: (vcpu_id, hcall number, arguments) -> result.
HcallHandler = Callable[[int, int, tuple[Any, ...]], Any]
#: A host-side timer callback.
TimerCallback = Callable[[], None]

_STOPPED = int(VcpuState.STOPPED)
_RUNNABLE = int(VcpuState.RUNNABLE)
_RUNNING = int(VcpuState.RUNNING)
_HALTED = int(VcpuState.HALTED)
_STATE_NAMES = tuple(s.name for s in sorted(VcpuState))

_EXECUTE = EXECUTE
_H_CEDE = int(Hcall.H_CEDE)
_H_PROD = int(Hcall.H_PROD)
_H_CONFER = int(Hcall.H_CONFER)
_H_SUCCESS = int(HcallReturn.H_SUCCESS)
_H_PARAMETER = int(HcallReturn.H_PARAMETER)
_H_FUNCTION = int(HcallReturn.H_FUNCTION)

_SPECIAL_OPS = (_H_CEDE, _H_PROD, _H_CONFER)
#: What ``_special_op`` returns when the vCPU left its host processor.
_GAVE_UP = object()

# Kinds of heap entries: (time, seq, kind, vcpu or TimerHandle, token).
_K_SLICE = 0
_K_TIMEOUT = 1
_K_TIMER = 2
#: Far marker: move the far entries due soon into the near heap.
_K_FAR = 3

#: Operations a vCPU may perform at one instant without virtual time passing
#: (zero-length EXECUTEs, EXECUTEs cut by a pending interrupt, free hcalls); more in
#: a row is a guest livelock, which stops the vCPU instead of hanging the machine.
ZERO_TIME_OP_LIMIT = 10_000

_NO_LIMIT = 1 << 126
#: Steps per ``_drive`` call for the unbounded runs: below 2**30, so the loop's
#: step comparisons stay on CPython's fast path for small ints.
_STEP_CHUNK = (1 << 30) - 1

_NEVER: Any = float("inf")
#: Last entry of the near heap: due at +inf, so never taken, and the loop needs no
#: emptiness check.
_SENTINEL: tuple[Any, int, int, Any, int] = (_NEVER, 0, _K_SLICE, None, 0)


class SchedulerError(Exception):
    """Misuse of the scheduler by the machine (unknown vCPU id, start of a running vCPU, ...)."""


@attrs.define(eq=False)
class TimerHandle:
    """A host-side timer made by ``call_at``/``call_later``; ``cancel()`` drops it."""

    when: int
    callback: TimerCallback
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        """Do not run the callback (no effect once it has run)."""
        self.cancelled = True

    @property
    def pending(self) -> bool:
        """Still due to run."""
        return not (self.cancelled or self.fired)


@attrs.define(eq=False)
class _Vcpu:
    """One vCPU thread's scheduling record (plain attributes: the hot path reads them).

    Time owed is kept as targets on the thread's own run-time axis: the current
    operation is done when ``run_ns`` reaches ``op_end`` and the quantum is over
    when it reaches ``quantum_end``; virtual runtime is ``run_ns + vruntime_bias``.
    So a slice end updates two counters and compares.
    """

    vcpu_id: int
    slot: int
    tid: int
    state: int = _STOPPED
    program: Program | None = None
    run_ns: int = 0
    #: ``run_ns`` at which the current EXECUTE or hcall charge is done.
    op_end: int = 0
    #: ``run_ns`` at which the current quantum ends (a preemption check).
    quantum_end: int = 0
    #: vruntime - run_ns (moved up when a waking thread is given the floor).
    vruntime_bias: int = 0
    #: Whether an interrupt may cut what is owed up to ``op_end`` (EXECUTE, not hcalls).
    cuttable: bool = False
    #: What the program is sent when ``op_end`` is reached.
    result: Any = None
    #: Start of the slice in progress on a host processor, or -1.
    slice_start: int = -1
    #: When it last became RUNNABLE (steal-time accounting).
    since: int = 0
    #: Host processor it holds (running, or reserved for dispatch), or -1.
    cpu: int = -1
    #: Bumped to make every pending heap/ready entry of this vCPU stale.
    token: int = 0
    #: Bumped when its program is replaced or closed (re-entrancy check around hcalls).
    epoch: int = 0
    #: External-interrupt line level (driven by the interrupt controller).
    irq: bool = False
    #: An H_PROD not yet consumed by a cede.
    prod: bool = False
    #: Queued in the scheduler's list of rows to copy into the accounting table.
    dirty: bool = False
    steal_ns: int = 0
    slices: int = 0
    wakeups: int = 0

    @property
    def vruntime(self) -> int:
        """Virtual runtime: the run queue's key."""
        return self.run_ns + self.vruntime_bias


class VcpuScheduler:
    """Deterministic scheduler of vCPU threads over ``host_cpus`` host processors.

    Driven explicitly (``step``, ``run_until``, ``run_for``, ``run_until_idle``) on
    one virtual clock; the same calls in the same order give the same event order,
    trace and statistics. Guest work comes from ``program_factory`` at start-cpu;
    hypercalls other than H_CEDE/H_PROD/H_CONFER go to ``hcall`` and are charged
    ``hcall_cost_ns`` of the caller's CPU time.
    """

    # Slots: the event loop reads and writes these on every event, and a slotted
    # instance keeps every access on CPython's fast path however many there are.
    __slots__ = (
        "_cpu",
        "_dirty",
        "_driving",
        "_far",
        "_far_lead",
        "_far_mark",
        "_free_slots",
        "_hcall",
        "_idle_cpus",
        "_min_vruntime",
        "_n_busy",
        "_near",
        "_next_slot",
        "_next_tid",
        "_now",
        "_program_factory",
        "_ready",
        "_retired_slices",
        "_retired_wakeups",
        "_runqueue",
        "_seq",
        "_table",
        "_timer_fires",
        "_trace",
        "_tracing",
        "_vcpus",
        "hcall_cost_ns",
        "host_cpus",
        "near_horizon_ns",
        "quantum_ns",
    )

    def __init__(
        self,
        host_cpus: int = 1,
        *,
        quantum_ns: int = 1_000_000,
        hcall_cost_ns: int = 1_000,
        hcall: HcallHandler | None = None,
        program_factory: ProgramFactory | None = None,
        trace: TraceRecorder | None = None,
        tid_base: int = 10_000,
        near_horizon_ns: int | None = None,
    ) -> None:
        if host_cpus < 1:
            raise ValueError("host_cpus must be at least 1")
        if quantum_ns < 1:
            raise ValueError("quantum_ns must be at least 1")
        if hcall_cost_ns < 1:
            # every hypercall must take some time, or guests could spin forever at one instant
            raise ValueError("hcall_cost_ns must be at least 1")
        self.host_cpus = host_cpus
        self.quantum_ns = quantum_ns
        self.hcall_cost_ns = hcall_cost_ns
        #: Timeouts and timers due within this of ``now`` go to the small (near) heap.
        self.near_horizon_ns = 16 * quantum_ns if near_horizon_ns is None else near_horizon_ns
        self._hcall = hcall
        self._program_factory = program_factory
        self._trace = trace
        self._tracing = False
        self._now = 0
        self._seq = 0
        self._near: list[tuple[Any, int, int, Any, int]] = [_SENTINEL]
        self._far: list[tuple[Any, int, int, Any, int]] = []
        #: A far entry is moved to the near heap this long before it is due.
        self._far_lead = max(self.near_horizon_ns, 0) + 1
        #: Time of the earliest far marker in the near heap (+inf: none).
        self._far_mark: Any = _NEVER
        self._runqueue: list[tuple[int, int, _Vcpu, int]] = []
        self._ready: deque[tuple[_Vcpu, int]] = deque()
        self._cpu: list[_Vcpu | None] = [None] * host_cpus
        self._idle_cpus: list[int] = list(range(host_cpus - 1, -1, -1))
        self._vcpus: dict[int, _Vcpu] = {}
        self._free_slots: list[int] = []
        self._next_slot = 0
        self._next_tid = tid_base
        self._table = VcpuTable()
        self._dirty: list[_Vcpu] = []
        self._n_busy = 0
        self._min_vruntime = 0
        self._timer_fires = 0
        self._retired_slices = 0
        self._retired_wakeups = 0
        self._driving = False
        self._refresh_tracing()

    # ------------------------------------------------------------------ clock

    @property
    def now(self) -> int:
        """Virtual time in nanoseconds."""
        return self._now

    def clock(self) -> int:
        """Virtual time in nanoseconds (a callable for ``TraceRecorder.set_clock``)."""
        return self._now

    # ------------------------------------------------------------ threads

    def add_vcpu(self, vcpu_id: int) -> None:
        """Create the thread of ``vcpu_id``, STOPPED (a plugged core's threads start so)."""
        if vcpu_id in self._vcpus:
            raise SchedulerError(f"vCPU {vcpu_id} already exists")
        slot = heapq.heappop(self._free_slots) if self._free_slots else self._next_slot
        if slot == self._next_slot:
            self._next_slot += 1
        v = _Vcpu(vcpu_id, slot, self._next_tid, vruntime_bias=self._min_vruntime)
        self._next_tid += 1
        self._vcpus[vcpu_id] = v
        self._table.ensure(slot)
        v.dirty = True
        self._dirty.append(v)
        self._refresh_tracing()
        self._emit("vcpu_added", vcpu=vcpu_id, tid=v.tid, state=_STATE_NAMES[v.state])

    def remove_vcpu(self, vcpu_id: int) -> None:
        """Destroy the thread (unplug completion).

        A thread that is not STOPPED still has guest work: that is a guest bug,
        recorded as ``vcpu_removed_busy``; its program is closed all the same.
        """
        v = self._get(vcpu_id)
        self._refresh_tracing()
        if v.state != _STOPPED:
            self._emit("vcpu_removed_busy", vcpu=vcpu_id, state=_STATE_NAMES[v.state])
            self._stop(v, close=True)
        del self._vcpus[vcpu_id]
        v.token += 1
        v.epoch += 1
        self._retired_slices += v.slices
        self._retired_wakeups += v.wakeups
        self._table.clear(v.slot)
        heapq.heappush(self._free_slots, v.slot)
        v.slot = -1
        if v.dirty:
            # only stats() flushes the dirty list: a removed thread must not wait there
            # for ever (one per hotplug cycle, a leak over a long run)
            v.dirty = False
            self._dirty.remove(v)
        self._emit("vcpu_removed", vcpu=vcpu_id)

    def start(
        self,
        vcpu_id: int,
        entry: int = 0,
        r3: int = 0,
        program_factory: ProgramFactory | None = None,
    ) -> None:
        """start-cpu: run the program ``program_factory(vcpu_id, entry, r3)`` on a halted thread.

        Allowed when :meth:`is_halted` (STOPPED, or ceded: QEMU restarts a ceded
        thread at ``entry`` too, dropping what it was doing); otherwise
        :class:`SchedulerError`. The program first runs when dispatched, never
        inside this call.
        """
        v = self._get(vcpu_id)
        old = v.state
        if old != _STOPPED and old != _HALTED:
            raise SchedulerError(f"vCPU {vcpu_id} is not halted")
        factory = program_factory if program_factory is not None else self._program_factory
        if factory is None:
            raise SchedulerError("no program factory to start a vCPU with")
        program = factory(vcpu_id, entry, r3)
        self._refresh_tracing()
        previous = v.program
        if previous is not None:
            self._emit("vcpu_program_replaced", vcpu=vcpu_id, entry=entry)
        v.token += 1
        v.epoch += 1
        v.program = program
        v.result = None
        v.op_end = v.run_ns
        v.cuttable = False
        if v.run_ns + v.vruntime_bias < self._min_vruntime:
            v.vruntime_bias = self._min_vruntime - v.run_ns
        self._make_runnable(v, old)
        if previous is not None:
            self._close(v, previous)

    def stop_self(self, vcpu_id: int) -> None:
        """RTAS stop-self: the thread becomes STOPPED and its program is closed (never resumes)."""
        self._stop(self._get(vcpu_id), close=True)

    def start_vcpu(self, vcpu: int, caller: Any, entry: int, r3: int) -> None:
        """``spapr.cpu_rtas.VcpuControl`` spelling of :meth:`start` (``caller`` is unused here)."""
        self.start(vcpu, entry, r3)

    def find_vcpu(self, vcpu_id: int) -> int | None:
        """``vcpu_id`` if that thread exists, else None (``VcpuControl``)."""
        return vcpu_id if vcpu_id in self._vcpus else None

    # ------------------------------------------------------- interrupts

    def raise_interrupt(self, vcpu_id: int) -> None:
        """Assert the external-interrupt line: wakes a HALTED thread, cuts a running EXECUTE."""
        v = self._vcpus.get(vcpu_id)
        if v is None:
            raise SchedulerError(f"no vCPU {vcpu_id}")
        v.irq = True
        state = v.state
        if state == _HALTED:
            self._wake(v)
        elif state == _RUNNING and v.slice_start >= 0 and v.cuttable:
            self._cut(v)

    def lower_interrupt(self, vcpu_id: int) -> None:
        """Deassert the external-interrupt line."""
        v = self._vcpus.get(vcpu_id)
        if v is None:
            raise SchedulerError(f"no vCPU {vcpu_id}")
        v.irq = False

    def interrupt_pending(self, vcpu_id: int) -> bool:
        """Level of the thread's external-interrupt line."""
        return self._get(vcpu_id).irq

    def prod(self, vcpu_id: int) -> None:
        """H_PROD: leave a prod pending (QEMU keeps it) and wake the thread if it is ceded.

        QEMU also clears ``halted`` of a STOPPED thread here; this model leaves a
        stopped thread stopped (only start-cpu starts it) but keeps the flag.
        """
        v = self._get(vcpu_id)
        v.prod = True
        if v.state == _HALTED:
            self._wake(v)

    # ------------------------------------------------------------ timers

    def call_at(self, when: int, callback: TimerCallback) -> TimerHandle:
        """Run ``callback()`` at virtual time ``when`` (not before ``now``)."""
        if when < self._now:
            raise ValueError(f"call_at({when}) is in the past (now {self._now})")
        handle = TimerHandle(when, callback)
        self._seq = seq = self._seq + 1
        if when - self._now <= self.near_horizon_ns:
            heapq.heappush(self._near, (when, seq, _K_TIMER, handle, 0))
        else:
            self._push_far((when, seq, _K_TIMER, handle, 0))
        return handle

    def call_later(self, delay: int, callback: TimerCallback) -> TimerHandle:
        """Run ``callback()`` ``delay`` ns from now."""
        if delay < 0:
            raise ValueError("delay must not be negative")
        when = self._now + delay
        handle = TimerHandle(when, callback)
        self._seq = seq = self._seq + 1
        if delay <= self.near_horizon_ns:
            heapq.heappush(self._near, (when, seq, _K_TIMER, handle, 0))
        else:
            self._push_far((when, seq, _K_TIMER, handle, 0))
        return handle

    # ----------------------------------------------------------- driving

    def step(self) -> bool:
        """Handle the next scheduling event (advancing ``now`` to it); False if there is none."""
        return self._drive(_NO_LIMIT, 1) > 0

    def _run_to(self, until: int) -> None:
        """Handle every event up to ``until`` (in chunks of ``_STEP_CHUNK`` steps)."""
        if until == _NEVER:
            until = _NO_LIMIT  # the near heap's sentinel must stay beyond it
        while self._drive(until, _STEP_CHUNK) == _STEP_CHUNK:
            pass

    def run_until(self, when: int) -> None:
        """Handle every event up to ``when`` inclusive, then set ``now`` to ``when``."""
        if when < self._now:
            raise ValueError(f"run_until({when}) is in the past (now {self._now})")
        self._run_to(when)
        self._now = when

    def run_for(self, ns: int) -> None:
        """``run_until(now + ns)``."""
        self.run_until(self._now + ns)

    def run_until_idle(self, limit_ns: int) -> bool:
        """Run until no vCPU is runnable and no event is due within ``limit_ns`` from now.

        Returns True when that idle point was reached (``now`` stays at the last
        event handled), False when the limit came first (``now`` = now + limit_ns).
        """
        if limit_ns < 0:
            raise ValueError("limit_ns must not be negative")
        deadline = self._now + limit_ns
        self._run_to(deadline)
        if self._n_busy == 0:
            return True
        self._now = deadline
        return False

    # ----------------------------------------------------------- queries

    def vcpus(self) -> list[int]:
        """Ids of all threads, in creation order."""
        return list(self._vcpus)

    def state(self, vcpu_id: int) -> VcpuState:
        """Scheduling state of the thread."""
        return VcpuState(self._get(vcpu_id).state)

    def is_halted(self, vcpu_id: int) -> bool:
        """QEMU's ``halted``: STOPPED or ceded (query-cpu-stopped-state, start-cpu)."""
        state = self._get(vcpu_id).state
        return state in (_STOPPED, _HALTED)

    def thread_id(self, vcpu_id: int) -> int:
        """Fake host TID of the thread (``tid_base`` + creation order; never reused)."""
        return self._get(vcpu_id).tid

    def host_cpu(self, vcpu_id: int) -> int | None:
        """Host processor the thread runs on (or is being dispatched to), else None."""
        cpu = self._get(vcpu_id).cpu
        return None if cpu < 0 else cpu

    def runnable_count(self) -> int:
        """Threads RUNNING or RUNNABLE."""
        return self._n_busy

    def stats(self) -> SchedStats:
        """Accounting of every live thread up to ``now`` (numpy arrays in slot order)."""
        self._flush()
        table = self._table
        n = self._next_slot
        now = self._now
        run = table.run_ns[:n].copy()
        steal = table.steal_ns[:n].copy()
        for v in self._cpu:
            if v is not None and v.state == _RUNNING and v.slice_start >= 0:
                run[v.slot] += now - v.slice_start
        for _, _, v, token in self._runqueue:
            if v.token == token and v.state == _RUNNABLE:
                steal[v.slot] += now - v.since
        for v, token in self._ready:
            if v.token == token and v.state == _RUNNABLE:
                steal[v.slot] += now - v.since
        import numpy as np  # (statistics only: the scheduler itself never needs numpy)

        live = np.flatnonzero(table.vcpu_id[:n] >= 0)
        slices = table.slices[live]
        wakeups = table.wakeups[live]
        return SchedStats(
            now=now,
            host_cpus=self.host_cpus,
            vcpu_id=table.vcpu_id[live],
            state=table.state[live],
            run_ns=run[live],
            steal_ns=steal[live],
            slices=slices,
            wakeups=wakeups,
            total_slices=self._retired_slices + int(slices.sum()),
            total_wakeups=self._retired_wakeups + int(wakeups.sum()),
            timer_fires=self._timer_fires,
        )

    # ------------------------------------------------------------ internals

    def _get(self, vcpu_id: int) -> _Vcpu:
        v = self._vcpus.get(vcpu_id)
        if v is None:
            raise SchedulerError(f"no vCPU {vcpu_id}")
        return v

    def _lookup(self, vcpu_id: Any) -> _Vcpu | None:
        """The thread a guest names in an hcall argument, or None (never raises)."""
        try:
            return self._vcpus.get(vcpu_id)
        except TypeError:
            return None

    def _refresh_tracing(self) -> None:
        trace = self._trace
        self._tracing = trace is not None and trace.active()

    def _emit(self, name: str, **fields: Any) -> None:
        if self._tracing and self._trace is not None:
            self._trace.emit(name, **fields)

    def _emit_state(self, v: _Vcpu, old: int, new: int) -> None:
        if self._trace is not None:
            self._trace.emit(
                "vcpu_state", vcpu=v.vcpu_id, old=_STATE_NAMES[old], new=_STATE_NAMES[new]
            )

    def _flush(self) -> None:
        """Copy the rows of changed threads into the table.

        Changed means marked dirty when leaving or waiting for a host processor,
        or holding one now (those are always copied, so dispatch marks nothing).
        """
        dirty = self._dirty
        for v in self._cpu:
            if v is not None and not v.dirty:
                v.dirty = True
                dirty.append(v)
        for v in dirty:
            v.dirty = False
        rows = [v for v in dirty if v.slot >= 0]
        dirty.clear()
        self._table.write(
            [v.slot for v in rows],
            [v.vcpu_id for v in rows],
            [v.state for v in rows],
            [v.run_ns for v in rows],
            [v.steal_ns for v in rows],
            [v.slices for v in rows],
            [v.wakeups for v in rows],
        )

    def _drive(self, until: int, max_steps: int) -> int:
        """The event loop; returns the number of events handled (at most ``max_steps``).

        Order: ready dispatches first (they are due at ``now``), then the near
        heap's entries (far ones reach it through far markers), up to time
        ``until``. When an operation would complete before any other event, its
        completion is handled on the spot and the program goes on ("run ahead");
        a slice end just made is pushed by the next pop (``heappushpop``). Both
        only skip heap traffic: the event order is the one the heaps would give.
        The per-slice work, timer and timeout pops, and EXECUTE, H_CEDE and
        machine-hcall handling are inlined here; rarer paths are methods.
        """
        if self._driving:
            raise SchedulerError("the scheduler is already running (re-entrant drive)")
        self._driving = True
        self._refresh_tracing()
        near = self._near
        runqueue = self._runqueue
        ready = self._ready
        heappop = heapq.heappop
        heappush = heapq.heappush
        heappushpop = heapq.heappushpop
        dirty = self._dirty
        cpu_owner = self._cpu
        idle_cpus = self._idle_cpus
        horizon = self.near_horizon_ns
        quantum = self.quantum_ns
        cost = self.hcall_cost_ns
        hcall = self._hcall
        steps = 0
        # A slice end just made, not yet in the near heap: the next pop takes it
        # through heappushpop (one sift instead of two; the same order).
        pending: tuple[Any, int, int, Any, int] | None = None
        v: _Vcpu
        value: Any
        result: Any
        # Layout note: CPython 3.11 specializes an int comparison only when the
        # conditional jump after it is short, so tests sit right before a small
        # branch (``if steps >= max_steps: break``, ``if a < b: <small> else: <big>``).
        try:
            while True:
                if steps >= max_steps:
                    break
                if ready:
                    if pending is not None:
                        heappush(near, pending)
                        pending = None
                    v, token = ready.popleft()
                    if v.token != token:
                        continue
                    steps += 1
                    now = self._now
                    run = v.run_ns
                    if v.state == _RUNNABLE:
                        # switch in on the host processor reserved for it
                        v.state = _RUNNING
                        if self._tracing:
                            self._emit_state(v, _RUNNABLE, _RUNNING)
                        v.steal_ns += now - v.since
                        v.quantum_end = run + quantum
                        # (a thread on a host processor is always flushed: no dirty mark)
                        vruntime = run + v.vruntime_bias
                        if vruntime > self._min_vruntime:
                            self._min_vruntime = vruntime
                    op_end = v.op_end
                    if run < op_end:
                        if not (v.irq and v.cuttable):
                            quantum_end = v.quantum_end
                            v.slice_start = now
                            self._seq = seq = self._seq + 1
                            pending = (
                                now + (op_end if op_end < quantum_end else quantum_end) - run,
                                seq,
                                _K_SLICE,
                                v,
                                token,
                            )
                            continue
                        value = op_end - run
                        v.op_end = run
                    else:
                        value = v.result
                else:
                    # the next heap entry (the near heap ends in a sentinel at +inf);
                    # one popped and not taken goes back unchanged
                    if pending is not None:
                        entry = heappushpop(near, pending)
                        pending = None
                    else:
                        entry = heappop(near)
                    t, _, kind, obj, token = entry
                    if t > until:
                        heappush(near, entry)
                        break
                    if kind != _K_SLICE:
                        if kind == _K_TIMEOUT:
                            if obj.token == token:
                                steps += 1
                                self._now = t
                                self._wake(obj)
                            continue
                        if kind == _K_FAR:
                            self._far_due(t)
                            continue
                        if not obj.cancelled:
                            steps += 1
                            self._now = t
                            obj.fired = True
                            self._timer_fires += 1
                            obj.callback()
                            if self._trace is not None:
                                self._tracing = self._trace.active()
                        continue
                    v = obj
                    if v.token != token:
                        continue
                    # -- a slice of v ends at t: the per-slice hot path
                    steps += 1
                    self._now = now = t
                    run = v.run_ns + t - v.slice_start
                    v.run_ns = run
                    v.slices += 1
                    if run < v.quantum_end:
                        pass
                    else:
                        vruntime = run + v.vruntime_bias
                        if not runqueue or runqueue[0][0] > vruntime:
                            v.quantum_end = run + quantum
                        else:
                            # preempted: back into the run queue, the least-vruntime
                            # waiter gets this host processor (via the ready list)
                            v.slice_start = -1
                            v.state = _RUNNABLE
                            if self._tracing:
                                self._emit_state(v, _RUNNING, _RUNNABLE)
                            if not v.dirty:
                                v.dirty = True
                                dirty.append(v)
                            v.since = t
                            self._seq = seq = self._seq + 1
                            _, _, w, token = heappushpop(runqueue, (vruntime, seq, v, v.token))
                            while w.token != token:
                                _, _, w, token = heappop(runqueue)
                            cpu = v.cpu
                            v.cpu = -1
                            cpu_owner[cpu] = w
                            w.cpu = cpu
                            if ready or steps >= max_steps:
                                ready.append((w, token))
                                continue
                            # nothing else is due now: dispatch w at once (as the
                            # ready list would next) and go on with it below
                            steps += 1
                            v = w
                            run = v.run_ns
                            v.state = _RUNNING
                            if self._tracing:
                                self._emit_state(v, _RUNNABLE, _RUNNING)
                            v.steal_ns += t - v.since
                            v.quantum_end = run + quantum
                            vruntime = run + v.vruntime_bias
                            if vruntime > self._min_vruntime:
                                self._min_vruntime = vruntime
                    op_end = v.op_end
                    if run < op_end:
                        if not (v.irq and v.cuttable):
                            quantum_end = v.quantum_end
                            v.slice_start = t
                            self._seq = seq = self._seq + 1
                            pending = (
                                t + (op_end if op_end < quantum_end else quantum_end) - run,
                                seq,
                                _K_SLICE,
                                v,
                                v.token,
                            )
                            continue
                        value = op_end - run
                        v.op_end = run
                    else:
                        value = v.result
                    v.slice_start = -1

                # -- v is RUNNING with no slice in progress: run its program at `now`
                #    until an operation needs virtual time or it gives up the CPU.
                #    (op_end, result and cuttable are stored only when a slice is
                #    queued: an operation completed by running ahead needs none.)
                program = v.program
                zero_time_ops = 0
                while True:
                    try:
                        op = program.send(value)  # type: ignore[union-attr]
                    except StopIteration:
                        self._program_ended(v, "return", "", close=False)
                        break
                    except Exception as exc:
                        self._program_ended(
                            v, "exception", f"{type(exc).__name__}: {exc}", close=False
                        )
                        break
                    if type(op) is not tuple or not op:
                        self._program_ended(v, "bad_op", repr(op)[:120], close=True)
                        break
                    code = op[0]
                    nargs = len(op)
                    if code == _EXECUTE:
                        if nargs == 2:
                            ns = op[1]
                            cuttable = True
                        elif nargs == 3:
                            ns = op[1]
                            cuttable = bool(op[2])
                        else:
                            ns = None
                        if type(ns) is not int:
                            self._program_ended(v, "bad_op", repr(op)[:120], close=True)
                            break
                        if ns <= 0 or (cuttable and v.irq):
                            # nothing to run, or cut at once by the pending interrupt
                            value = 0 if ns <= 0 else ns
                            zero_time_ops += 1
                            if zero_time_ops > ZERO_TIME_OP_LIMIT:
                                self._program_ended(
                                    v,
                                    "livelock",
                                    f"{ZERO_TIME_OP_LIMIT} operations without time passing",
                                    close=True,
                                )
                                break
                            continue
                        result = 0
                        run = v.run_ns
                        op_end = run + ns
                    else:
                        if code in _SPECIAL_OPS:
                            if code != _H_CEDE or nargs > 2 or v.prod or v.irq:
                                result = self._special_op(v, code, op)
                            else:
                                timeout = op[1] if nargs == 2 else None
                                if timeout is not None and (
                                    type(timeout) is not int or timeout <= 0
                                ):
                                    result = self._special_op(v, code, op)
                                else:
                                    # halt (RUNNING -> HALTED) and give the host processor away
                                    v.state = _HALTED
                                    if self._tracing:
                                        self._emit_state(v, _RUNNING, _HALTED)
                                    self._n_busy -= 1
                                    if not v.dirty:
                                        v.dirty = True
                                        dirty.append(v)
                                    v.result = _H_SUCCESS
                                    v.op_end = v.run_ns
                                    if timeout is not None:
                                        self._seq = seq = self._seq + 1
                                        if timeout <= horizon:
                                            heappush(
                                                near, (now + timeout, seq, _K_TIMEOUT, v, v.token)
                                            )
                                        else:
                                            self._push_far(
                                                (now + timeout, seq, _K_TIMEOUT, v, v.token)
                                            )
                                    cpu = v.cpu
                                    v.cpu = -1
                                    while runqueue:
                                        _, _, w, token = heappop(runqueue)
                                        if w.token == token:
                                            cpu_owner[cpu] = w
                                            w.cpu = cpu
                                            ready.append((w, token))
                                            break
                                    else:
                                        cpu_owner[cpu] = None
                                        idle_cpus.append(cpu)
                                    break
                            if result is _GAVE_UP:
                                break
                        elif hcall is None:
                            result = _H_FUNCTION
                        else:
                            epoch = v.epoch
                            try:
                                result = hcall(v.vcpu_id, code, op[1:])
                            except BaseException:
                                if v.epoch == epoch:
                                    self._program_ended(
                                        v, "hcall_raised", f"hcall {code!r}", close=True
                                    )
                                raise
                            if v.epoch != epoch:
                                # stop-self, unplug or start-cpu happened during the call
                                break
                        cuttable = False
                        run = v.run_ns
                        op_end = run + cost
                    quantum_end = v.quantum_end
                    if op_end < quantum_end:
                        t = now + op_end - run
                        if not ready and t <= until and steps < max_steps and near[0][0] > t:
                            # Run ahead: this slice end is the very next event, so
                            # handle it here and carry on with the program.
                            steps += 1
                            self._now = now = t
                            v.run_ns = op_end
                            v.slices += 1
                            value = result
                            zero_time_ops = 0
                            continue
                    else:
                        t = now + quantum_end - run
                    v.op_end = op_end
                    v.result = result
                    v.cuttable = cuttable
                    v.slice_start = now
                    self._seq = seq = self._seq + 1
                    pending = (t, seq, _K_SLICE, v, v.token)
                    break
        finally:
            if pending is not None:
                heappush(near, pending)
            self._driving = False
        return steps

    def _special_op(self, v: _Vcpu, code: int, op: tuple[Any, ...]) -> Any:
        """H_CEDE, H_PROD, H_CONFER: the result to charge, or _GAVE_UP if v left the CPU."""
        nargs = len(op)
        if code == _H_CEDE:
            if v.prod:
                v.prod = False
                return _H_SUCCESS
            if v.irq:
                return _H_SUCCESS
            timeout = op[1] if nargs > 1 else None
            if nargs > 2 or (timeout is not None and type(timeout) is not int):
                self._program_ended(v, "bad_op", repr(op)[:120], close=True)
                return _GAVE_UP
            if timeout is not None and timeout <= 0:
                return _H_SUCCESS  # the decrementer has already fired: work pending
            self._halt(v, timeout)
            return _GAVE_UP
        if code == _H_PROD:
            target = self._lookup(op[1]) if nargs > 1 else None
            if target is None:
                return _H_PARAMETER
            self.prod(target.vcpu_id)
            return _H_SUCCESS
        # H_CONFER: -1 yields to everyone, self waits for a prod, another thread: yield.
        target_id = op[1] if nargs > 1 else -1
        if target_id != -1:
            target = self._lookup(target_id)
            if target is None:
                return _H_PARAMETER
            if target is v:
                if v.prod:
                    v.prod = False
                    return _H_SUCCESS
                self._halt(v, None)
                return _GAVE_UP
        v.op_end = v.run_ns + self.hcall_cost_ns
        v.cuttable = False
        v.result = _H_SUCCESS
        self._preempt(v, behind=True)
        return _GAVE_UP

    def _push_timer(self, when: int, kind: int, obj: Any, token: int) -> None:
        """Queue a timeout or timer: near-term ones share the small heap with slice ends."""
        self._seq = seq = self._seq + 1
        if when - self._now <= self.near_horizon_ns:
            heapq.heappush(self._near, (when, seq, kind, obj, token))
        else:
            self._push_far((when, seq, kind, obj, token))

    def _push_far(self, entry: tuple[int, int, int, Any, int]) -> None:
        """Queue an entry due beyond the horizon; keep a far marker in the near heap before it."""
        heapq.heappush(self._far, entry)
        mark = entry[0] - self._far_lead
        if mark < self._far_mark:
            self._far_mark = mark
            self._seq = seq = self._seq + 1
            heapq.heappush(self._near, (mark, seq, _K_FAR, None, 0))

    def _far_due(self, mark: int) -> None:
        """A far marker was reached: move the far entries due within the lead to the near heap."""
        if mark != self._far_mark:
            return  # superseded by an earlier marker, which has done the work
        far = self._far
        near = self._near
        limit = mark + self._far_lead
        while far and far[0][0] <= limit:
            heapq.heappush(near, heapq.heappop(far))
        self._far_mark = _NEVER
        if far:
            self._far_mark = mark = far[0][0] - self._far_lead
            self._seq = seq = self._seq + 1
            heapq.heappush(near, (mark, seq, _K_FAR, None, 0))

    def _halt(self, v: _Vcpu, timeout: int | None) -> None:
        """RUNNING -> HALTED (ceded); frees the host processor."""
        v.state = _HALTED
        if self._tracing:
            self._emit_state(v, _RUNNING, _HALTED)
        self._n_busy -= 1
        if not v.dirty:
            v.dirty = True
            self._dirty.append(v)
        v.result = _H_SUCCESS
        v.op_end = v.run_ns
        v.slice_start = -1
        if timeout is not None:
            self._push_timer(self._now + timeout, _K_TIMEOUT, v, v.token)
        cpu = v.cpu
        v.cpu = -1
        self._release(cpu)

    def _wake(self, v: _Vcpu) -> None:
        """HALTED -> RUNNABLE; its cede returns H_SUCCESS."""
        v.token = token = v.token + 1
        v.wakeups += 1
        vruntime = v.run_ns + v.vruntime_bias
        floor = self._min_vruntime - self.quantum_ns
        if vruntime < floor:
            v.vruntime_bias = floor - v.run_ns
            vruntime = floor
        v.state = _RUNNABLE
        if self._tracing:
            self._emit_state(v, _HALTED, _RUNNABLE)
        self._n_busy += 1
        if not v.dirty:
            v.dirty = True
            self._dirty.append(v)
        v.since = self._now
        idle = self._idle_cpus
        if idle:
            cpu = idle.pop()
            self._cpu[cpu] = v
            v.cpu = cpu
            self._ready.append((v, token))
        else:
            self._seq = seq = self._seq + 1
            heapq.heappush(self._runqueue, (vruntime, seq, v, token))

    def _make_runnable(self, v: _Vcpu, old: int) -> None:
        v.state = _RUNNABLE
        if self._tracing:
            self._emit_state(v, old, _RUNNABLE)
        self._n_busy += 1
        if not v.dirty:
            v.dirty = True
            self._dirty.append(v)
        v.since = self._now
        idle = self._idle_cpus
        if idle:
            cpu = idle.pop()
            self._cpu[cpu] = v
            v.cpu = cpu
            self._ready.append((v, v.token))
        else:
            self._seq = seq = self._seq + 1
            heapq.heappush(self._runqueue, (v.run_ns + v.vruntime_bias, seq, v, v.token))

    def _preempt(self, v: _Vcpu, behind: bool = False) -> None:
        """RUNNING -> RUNNABLE back into the run queue (``behind``: after the current minimum)."""
        v.slice_start = -1
        v.state = _RUNNABLE
        if self._tracing:
            self._emit_state(v, _RUNNING, _RUNNABLE)
        if not v.dirty:
            v.dirty = True
            self._dirty.append(v)
        v.since = self._now
        runqueue = self._runqueue
        key = v.run_ns + v.vruntime_bias
        if behind and runqueue and runqueue[0][0] > key:
            key = runqueue[0][0]
        self._seq = seq = self._seq + 1
        heapq.heappush(runqueue, (key, seq, v, v.token))
        cpu = v.cpu
        v.cpu = -1
        self._release(cpu)

    def _release(self, cpu: int) -> None:
        """Host processor ``cpu`` is free: reserve it for the least-vruntime waiter, if any."""
        runqueue = self._runqueue
        while runqueue:
            _, _, w, token = heapq.heappop(runqueue)
            if w.token == token:
                self._cpu[cpu] = w
                w.cpu = cpu
                self._ready.append((w, token))
                return
        self._cpu[cpu] = None
        self._idle_cpus.append(cpu)

    def _cut(self, v: _Vcpu) -> None:
        """An interrupt arrived during v's EXECUTE slice: end the slice now, resume v at once."""
        run = v.run_ns + self._now - v.slice_start
        v.run_ns = run
        v.slices += 1
        if run >= v.quantum_end:
            v.quantum_end = run + self.quantum_ns
        v.slice_start = -1
        v.token += 1
        self._ready.append((v, v.token))

    def _stop(self, v: _Vcpu, *, close: bool) -> None:
        """Any state -> STOPPED: drop pending entries and the host processor, close the program."""
        old = v.state
        if old == _STOPPED:
            return
        if old == _RUNNING and v.slice_start >= 0 and self._now > v.slice_start:
            v.run_ns += self._now - v.slice_start
            v.slices += 1
        v.slice_start = -1
        v.token += 1
        v.epoch += 1
        v.state = _STOPPED
        if self._tracing:
            self._emit_state(v, old, _STOPPED)
        if old in (_RUNNING, _RUNNABLE):
            self._n_busy -= 1
        if not v.dirty:
            v.dirty = True
            self._dirty.append(v)
        program = v.program
        v.program = None
        v.op_end = v.run_ns
        v.result = None
        v.cuttable = False
        cpu = v.cpu
        if cpu >= 0:
            v.cpu = -1
            self._release(cpu)
        if close and program is not None:
            self._close(v, program)

    def _close(self, v: _Vcpu, program: Program) -> None:
        try:
            program.close()
        except Exception as exc:
            self._emit(
                "vcpu_program_exit",
                vcpu=v.vcpu_id,
                reason="close_failed",
                detail=f"{type(exc).__name__}: {exc}",
            )

    def _program_ended(self, v: _Vcpu, reason: str, detail: str, *, close: bool) -> None:
        """A guest bug (program returned, raised, yielded garbage, livelocked): STOPPED."""
        self._emit("vcpu_program_exit", vcpu=v.vcpu_id, reason=reason, detail=detail)
        self._stop(v, close=close)
