"""Unit tests of the vCPU thread scheduler (machine/sched): each operation and transition.

Expected times are worked out by hand from the rules in design.md / the scheduler's
contract (quantum slices, hcall charge, cut at the interrupt's instant, QEMU's
``halted`` covering STOPPED and ceded threads, protocol.md §4.9-4.11, §9 item 21).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest

from machine.sched import (
    TRANSITIONS,
    ZERO_TIME_OP_LIMIT,
    SchedulerError,
    VcpuScheduler,
    VcpuState,
    is_halted_state,
)
from rtas import GuestMemory, RtasDispatcher, encode_call, read_rets
from rtas.codes import CpuStoppedState, RtasStatus
from rtas.hcalls import EXECUTE, Hcall, HcallReturn
from rtas.tokens import RtasToken
from spapr.cpu_rtas import CpuRtas
from spapr.trace import TraceRecorder

QUANTUM = 1_000
COST = 10
H_SUCCESS = int(HcallReturn.H_SUCCESS)
H_PARAMETER = int(HcallReturn.H_PARAMETER)
H_FUNCTION = int(HcallReturn.H_FUNCTION)
MACHINE_CALL = 0x1234  # a hypercall number the machine handles in these tests

Gen = Generator[tuple[Any, ...], Any, None]


def make(
    host_cpus: int = 1,
    *,
    quantum: int = QUANTUM,
    cost: int = COST,
    hcall: Callable[[int, int, tuple[Any, ...]], Any] | None = None,
    trace: TraceRecorder | None = None,
) -> VcpuScheduler:
    sched = VcpuScheduler(
        host_cpus, quantum_ns=quantum, hcall_cost_ns=cost, hcall=hcall, trace=trace
    )
    if trace is not None:
        trace.set_clock(sched.clock)
    return sched


def launch(sched: VcpuScheduler, vcpu_id: int, body: Callable[[], Gen]) -> None:
    """Create thread ``vcpu_id`` and start-cpu it with program ``body()``."""
    sched.add_vcpu(vcpu_id)
    sched.start(vcpu_id, program_factory=lambda _v, _e, _r: body())


def forever() -> Gen:
    while True:
        yield (EXECUTE, 10**15)


# --------------------------------------------------------------------------
# creation, start-cpu, queries
# --------------------------------------------------------------------------


def test_new_thread_is_stopped_and_halted() -> None:
    sched = make()
    sched.add_vcpu(8)
    assert sched.vcpus() == [8]
    assert sched.state(8) is VcpuState.STOPPED
    assert sched.is_halted(8)
    assert sched.host_cpu(8) is None
    assert sched.runnable_count() == 0
    assert not sched.step()  # a stopped thread never runs
    assert sched.now == 0


def test_add_twice_and_unknown_ids_are_errors() -> None:
    sched = make()
    sched.add_vcpu(0)
    with pytest.raises(SchedulerError):
        sched.add_vcpu(0)
    for call in (sched.state, sched.is_halted, sched.thread_id, sched.remove_vcpu):
        with pytest.raises(SchedulerError):
            call(5)
    with pytest.raises(SchedulerError):
        sched.raise_interrupt(5)
    with pytest.raises(SchedulerError):
        sched.start(5, program_factory=lambda _v, _e, _r: forever())
    assert sched.find_vcpu(0) == 0
    assert sched.find_vcpu(5) is None


def test_start_passes_entry_and_r3_and_runs_only_when_dispatched() -> None:
    seen: list[tuple[int, int, int]] = []
    ran: list[int] = []

    def factory(vcpu_id: int, entry: int, r3: int) -> Gen:
        seen.append((vcpu_id, entry, r3))

        def body() -> Gen:
            ran.append(sched.now)
            yield (EXECUTE, 100)

        return body()

    sched = VcpuScheduler(1, quantum_ns=QUANTUM, hcall_cost_ns=COST, program_factory=factory)
    sched.add_vcpu(3)
    sched.start(3, 0x100, 3)
    assert seen == [(3, 0x100, 3)]
    assert ran == []  # not inside start()
    assert sched.state(3) is VcpuState.RUNNABLE
    assert not sched.is_halted(3)
    assert sched.host_cpu(3) == 0  # reserved for it
    assert sched.step()
    assert ran == [0]
    assert sched.state(3) is VcpuState.RUNNING


def test_start_without_factory_or_of_a_running_thread_fails() -> None:
    sched = make()
    sched.add_vcpu(0)
    with pytest.raises(SchedulerError):
        sched.start(0)
    sched.start(0, program_factory=lambda _v, _e, _r: forever())
    with pytest.raises(SchedulerError):
        sched.start(0, program_factory=lambda _v, _e, _r: forever())
    sched.run_for(5)
    assert sched.state(0) is VcpuState.RUNNING
    with pytest.raises(SchedulerError):
        sched.start(0, program_factory=lambda _v, _e, _r: forever())


def test_thread_ids_are_creation_order_and_never_reused() -> None:
    sched = VcpuScheduler(1, tid_base=4000)
    for vcpu_id in (0, 8, 16):
        sched.add_vcpu(vcpu_id)
    assert [sched.thread_id(v) for v in (0, 8, 16)] == [4000, 4001, 4002]
    sched.remove_vcpu(8)
    sched.add_vcpu(8)
    assert sched.thread_id(8) == 4003
    assert sched.vcpus() == [0, 16, 8]


def test_halted_semantics_follow_qemu() -> None:
    """query-cpu-stopped-state's notion: STOPPED and ceded threads are both halted."""
    assert is_halted_state(VcpuState.STOPPED)
    assert is_halted_state(VcpuState.HALTED)
    assert not is_halted_state(VcpuState.RUNNABLE)
    assert not is_halted_state(VcpuState.RUNNING)


# --------------------------------------------------------------------------
# EXECUTE, quantum slices, interrupt cuts
# --------------------------------------------------------------------------


def test_execute_takes_its_time_in_quantum_slices() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (EXECUTE, 2_500)
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.run_until(10_000)
    assert log == [(2_500, 0)]
    stats = sched.stats()
    assert stats.run_ns.tolist() == [2_500]
    assert stats.slices.tolist() == [3]  # 1000 + 1000 + 500
    assert stats.steal_ns.tolist() == [0]
    assert sched.state(0) is VcpuState.STOPPED  # the program returned


def test_step_handles_one_event_at_a_time() -> None:
    sched = make()

    def body() -> Gen:
        yield (EXECUTE, 2_500)
        yield (Hcall.H_CEDE,)

    launch(sched, 0, body)
    times = []
    while sched.step():
        times.append(sched.now)
    # dispatch at 0, slice ends at 1000, 2000 and 2500 (then it cedes for good)
    assert times == [0, 1_000, 2_000, 2_500]
    assert sched.state(0) is VcpuState.HALTED


def test_interrupt_cuts_execute_at_once_with_the_remainder() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        left = yield (EXECUTE, 5_000)
        log.append((sched.now, left))
        sched.lower_interrupt(0)  # the guest's handler accepted it (H_XIRR)
        result = yield (EXECUTE, 200)
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.call_at(1_700, lambda: sched.raise_interrupt(0))
    sched.run_until(10_000)
    assert log == [(1_700, 3_300), (1_900, 0)]
    assert sched.stats().slices.tolist() == [3]  # [0,1000) [1000,1700) [1700,1900)


def test_pending_interrupt_cuts_execute_before_it_starts() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (EXECUTE, 5_000)
        log.append((sched.now, result))
        sched.lower_interrupt(0)  # the guest's handler accepted it
        result = yield (EXECUTE, 5_000)
        log.append((sched.now, result))

    sched.add_vcpu(0)
    sched.raise_interrupt(0)  # a stopped thread is not woken by it
    assert sched.state(0) is VcpuState.STOPPED
    assert sched.interrupt_pending(0)
    sched.start(0, program_factory=lambda _v, _e, _r: body())
    sched.run_until(20_000)
    assert log == [(0, 5_000), (5_000, 0)]


def test_interrupt_cuts_a_preempted_execute_when_it_runs_again() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (EXECUTE, 3_000)
        log.append((sched.now, result))

    launch(sched, 0, body)
    launch(sched, 1, forever)
    # 0 runs [0,1000), is preempted by 1, gets the interrupt at 1500 while waiting.
    sched.call_at(1_500, lambda: sched.raise_interrupt(0))
    sched.run_until(5_000)
    assert log == [(2_000, 2_000)]


def test_uninterruptible_execute_is_not_cut() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (EXECUTE, 5_000, False)
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.call_at(1_700, lambda: sched.raise_interrupt(0))
    sched.run_until(10_000)
    assert log == [(5_000, 0)]


def test_zero_length_execute_returns_at_once() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (EXECUTE, 0)
        log.append((sched.now, result))
        result = yield (EXECUTE, -5)
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.run_until(100)
    assert log == [(0, 0), (0, 0)]


# --------------------------------------------------------------------------
# H_CEDE, H_PROD, H_CONFER
# --------------------------------------------------------------------------


def test_cede_halts_until_an_interrupt() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (Hcall.H_CEDE,)
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.call_at(3_000, lambda: sched.raise_interrupt(0))
    sched.run_until(1_000)
    assert sched.state(0) is VcpuState.HALTED
    assert sched.is_halted(0)  # an idle online thread reads as halted (§9 item 21)
    assert sched.host_cpu(0) is None
    sched.run_until(10_000)
    assert log == [(3_000, H_SUCCESS)]
    assert sched.stats().wakeups.tolist() == [1]


def test_cede_timeout_is_the_decrementer() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        yield (EXECUTE, 300)
        result = yield (Hcall.H_CEDE, 700)
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.run_until(500)
    assert sched.state(0) is VcpuState.HALTED
    sched.run_until(5_000)
    assert log == [(1_000, H_SUCCESS)]


def test_interrupt_before_the_timeout_cancels_it() -> None:
    sched = make()
    log: list[int] = []

    def body() -> Gen:
        yield (Hcall.H_CEDE, 700)
        log.append(sched.now)
        sched.lower_interrupt(0)
        yield (EXECUTE, 1_000)
        log.append(sched.now)

    launch(sched, 0, body)
    sched.call_at(200, lambda: sched.raise_interrupt(0))
    sched.run_until(5_000)
    # no second wake-up at 700 while it executes [200, 1200)
    assert log == [200, 1_200]
    assert sched.stats().wakeups.tolist() == [1]


def test_cede_with_an_expired_timeout_returns_at_once() -> None:
    """A zero timeout means the decrementer has fired already: the thread has work."""
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        for timeout in (0, -3):
            result = yield (Hcall.H_CEDE, timeout)
            log.append((sched.now, result))

    launch(sched, 0, body)
    sched.run_until(1_000)
    assert log == [(COST, H_SUCCESS), (2 * COST, H_SUCCESS)]
    assert sched.stats().wakeups.tolist() == [0]


def test_bad_configuration_is_refused() -> None:
    for kwargs in ({"quantum_ns": 0}, {"hcall_cost_ns": 0}):
        with pytest.raises(ValueError):
            VcpuScheduler(1, **kwargs)
    with pytest.raises(ValueError):
        VcpuScheduler(0)


def test_cede_with_interrupt_pending_returns_at_once() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (Hcall.H_CEDE,)
        log.append((sched.now, result))

    sched.add_vcpu(0)
    sched.raise_interrupt(0)
    sched.start(0, program_factory=lambda _v, _e, _r: body())
    sched.run_until(1_000)
    assert log == [(COST, H_SUCCESS)]  # charged like any hcall


def test_prod_wakes_a_ceded_thread_and_stays_pending_as_in_qemu() -> None:
    sched = make(2)
    log: list[tuple[str, int, Any]] = []

    def target() -> Gen:
        result = yield (Hcall.H_CEDE,)
        log.append(("cede1", sched.now, result))
        result = yield (Hcall.H_CEDE,)
        log.append(("cede2", sched.now, result))
        result = yield (Hcall.H_CEDE,)
        log.append(("cede3", sched.now, result))

    def prodder() -> Gen:
        yield (EXECUTE, 300)
        result = yield (Hcall.H_PROD, 0)
        log.append(("prod", sched.now, result))
        result = yield (Hcall.H_PROD, 99)
        log.append(("prod-unknown", sched.now, result))

    launch(sched, 0, target)
    launch(sched, 1, prodder)
    sched.run_until(10_000)
    assert log == [
        ("cede1", 300, H_SUCCESS),  # woken by the prod
        ("prod", 310, H_SUCCESS),
        ("cede2", 310, H_SUCCESS),  # the prod flag QEMU leaves set
        ("prod-unknown", 320, H_PARAMETER),
    ]
    assert sched.state(0) is VcpuState.HALTED  # cede3 really halts


def test_prod_before_cede_makes_it_return_at_once() -> None:
    sched = make(2)
    log: list[tuple[int, Any]] = []

    def target() -> Gen:
        yield (EXECUTE, 1_000)
        result = yield (Hcall.H_CEDE,)
        log.append((sched.now, result))

    def prodder() -> Gen:
        yield (EXECUTE, 500)
        yield (Hcall.H_PROD, 0)

    launch(sched, 0, target)
    launch(sched, 1, prodder)
    sched.run_until(10_000)
    assert log == [(1_000 + COST, H_SUCCESS)]


def test_prod_does_not_start_a_stopped_thread() -> None:
    sched = make()
    sched.add_vcpu(0)
    sched.prod(0)
    sched.run_until(1_000)
    assert sched.state(0) is VcpuState.STOPPED


def test_confer_gives_the_processor_to_a_waiter() -> None:
    sched = make()
    log: list[tuple[str, int, Any]] = []

    def conferrer() -> Gen:
        yield (EXECUTE, 100)
        result = yield (Hcall.H_CONFER, -1)
        log.append(("confer", sched.now, result))

    def other() -> Gen:
        log.append(("other", sched.now, None))
        yield (EXECUTE, 50)
        yield (Hcall.H_CEDE,)

    launch(sched, 0, conferrer)
    launch(sched, 1, other)
    sched.run_until(10_000)
    assert log == [("other", 100, None), ("confer", 160, H_SUCCESS)]


def test_confer_to_unknown_target_and_to_self() -> None:
    sched = make()
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        result = yield (Hcall.H_CONFER, 42)
        log.append((sched.now, result))
        result = yield (Hcall.H_CONFER, 0)  # to self: wait for a prod
        log.append((sched.now, result))

    launch(sched, 0, body)
    sched.call_at(500, lambda: sched.prod(0))
    sched.run_until(400)
    assert sched.state(0) is VcpuState.HALTED
    sched.run_until(10_000)
    assert log == [(COST, H_PARAMETER), (500, H_SUCCESS)]


# --------------------------------------------------------------------------
# machine hypercalls and re-entrancy
# --------------------------------------------------------------------------


def test_machine_hcall_is_forwarded_and_charged() -> None:
    calls: list[tuple[int, int, tuple[Any, ...], int]] = []

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        calls.append((vcpu_id, number, args, sched.now))
        return "result"

    sched = make(hcall=hcall)
    log: list[tuple[int, Any]] = []

    def body() -> Gen:
        yield (EXECUTE, 40)
        result = yield (MACHINE_CALL, 7, 8)
        log.append((sched.now, result))

    launch(sched, 2, body)
    sched.run_until(1_000)
    assert calls == [(2, MACHINE_CALL, (7, 8), 40)]
    assert log == [(40 + COST, "result")]


def test_hcall_without_a_machine_is_h_function() -> None:
    sched = make()
    log: list[Any] = []

    def body() -> Gen:
        log.append((yield (MACHINE_CALL,)))

    launch(sched, 0, body)
    sched.run_until(1_000)
    assert log == [H_FUNCTION]


def test_stop_self_inside_an_hcall_never_returns() -> None:
    log: list[tuple[str, int]] = []

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        sched.stop_self(vcpu_id)
        log.append(("after stop_self", sched.now))
        return 0

    sched = make(hcall=hcall)

    def dying() -> Gen:
        try:
            yield (EXECUTE, 100)
            yield (MACHINE_CALL,)
            log.append(("survived", sched.now))
        finally:
            log.append(("closed", sched.now))

    def waiter() -> Gen:
        log.append(("waiter runs", sched.now))
        yield (Hcall.H_CEDE,)

    launch(sched, 0, dying)
    launch(sched, 1, waiter)
    sched.run_until(10_000)
    assert log == [("closed", 100), ("after stop_self", 100), ("waiter runs", 100)]
    assert sched.state(0) is VcpuState.STOPPED
    assert sched.is_halted(0)
    assert sched.stats().run_ns.tolist() == [100, 0]


def test_start_of_another_thread_inside_an_hcall_runs_it_later() -> None:
    ran: list[int] = []

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        sched.start(args[0], program_factory=lambda _v, _e, _r: started())
        assert ran == []  # not run inside the call
        return 0

    def started() -> Gen:
        ran.append(sched.now)
        yield (Hcall.H_CEDE,)

    sched = make(2, hcall=hcall)

    def starter() -> Gen:
        yield (EXECUTE, 30)
        yield (MACHINE_CALL, 1)

    launch(sched, 0, starter)
    sched.add_vcpu(1)
    sched.run_until(1_000)
    assert ran == [30]


def test_stop_then_start_of_self_inside_one_hcall_replaces_the_program() -> None:
    log: list[str] = []

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        sched.stop_self(vcpu_id)
        sched.start(vcpu_id, program_factory=lambda _v, _e, _r: second())
        return 0

    def first() -> Gen:
        yield (MACHINE_CALL,)
        log.append("first resumed")

    def second() -> Gen:
        log.append("second")
        yield (Hcall.H_CEDE,)

    sched = make(hcall=hcall)
    launch(sched, 0, first)
    sched.run_until(1_000)
    assert log == ["second"]
    assert sched.state(0) is VcpuState.HALTED


def test_remove_inside_an_hcall_of_a_stopped_and_of_the_calling_thread() -> None:
    rec = TraceRecorder()

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        sched.remove_vcpu(args[0])
        return 0

    sched = make(2, hcall=hcall, trace=rec)
    log: list[str] = []

    def remover() -> Gen:
        yield (MACHINE_CALL, 5)  # unplug completion of a stopped thread
        try:
            yield (MACHINE_CALL, 0)  # ... of itself, while running: a guest bug
            log.append("resumed")
        finally:
            log.append("closed")

    launch(sched, 0, remover)
    launch(sched, 1, forever)
    sched.add_vcpu(5)
    sched.run_until(1_000)
    assert log == ["closed"]
    assert sched.vcpus() == [1]
    assert sched.state(1) is VcpuState.RUNNING
    assert [e.fields for e in rec.select("vcpu_removed_busy")] == [{"vcpu": 0, "state": "RUNNING"}]
    assert [e.fields["vcpu"] for e in rec.select("vcpu_removed")] == [5, 0]


@pytest.mark.parametrize("when", [50, 150, 400])
def test_remove_busy_thread_from_outside_closes_its_program(when: int) -> None:
    rec = TraceRecorder()
    sched = make(trace=rec)
    closed: list[int] = []

    def busy() -> Gen:
        try:
            yield (EXECUTE, 100)  # RUNNING in [0,100)
            yield (Hcall.H_CEDE, 200)  # HALTED in [100,300)
            while True:
                yield (EXECUTE, 10**9)
        finally:
            closed.append(sched.now)

    launch(sched, 0, busy)
    launch(sched, 1, forever)  # keeps 0 RUNNABLE part of the time
    sched.run_until(when)
    state = sched.state(0)
    sched.remove_vcpu(0)
    assert closed == [when]
    assert sched.vcpus() == [1]
    assert rec.select("vcpu_removed_busy")[0].fields == {"vcpu": 0, "state": state.name}
    sched.run_until(when + 5_000)  # the rest carries on
    assert sched.stats().vcpu_id.tolist() == [1]


def test_drive_from_inside_an_hcall_is_refused() -> None:
    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        sched.run_for(10)
        return 0

    sched = make(hcall=hcall)

    def body() -> Gen:
        yield (MACHINE_CALL,)

    launch(sched, 0, body)
    with pytest.raises(SchedulerError):
        sched.run_until(100)
    assert sched.state(0) is VcpuState.STOPPED  # the failed call does not wedge it


# --------------------------------------------------------------------------
# guest bugs
# --------------------------------------------------------------------------


def _exit_reasons(rec: TraceRecorder) -> list[tuple[int, str]]:
    return [(e.fields["vcpu"], e.fields["reason"]) for e in rec.select("vcpu_program_exit")]


def test_guest_program_bugs_stop_the_thread_not_the_scheduler() -> None:
    rec = TraceRecorder()
    sched = make(4, trace=rec)

    def returns() -> Gen:
        yield (EXECUTE, 10)

    def raises() -> Gen:
        yield (EXECUTE, 10)
        raise ValueError("guest oops")

    def garbage() -> Gen:
        yield (EXECUTE, 10)
        yield "not an operation"  # type: ignore[misc]

    def bad_execute() -> Gen:
        yield (EXECUTE, 1.5)

    for vcpu_id, body in enumerate((returns, raises, garbage, bad_execute)):
        launch(sched, vcpu_id, body)
    launch(sched, 9, forever)
    sched.run_until(1_000)
    assert sorted(_exit_reasons(rec)) == [
        (0, "return"),
        (1, "exception"),
        (2, "bad_op"),
        (3, "bad_op"),
    ]
    assert all(sched.state(v) is VcpuState.STOPPED for v in range(4))
    assert sched.state(9) is VcpuState.RUNNING


def test_zero_time_livelock_is_stopped() -> None:
    rec = TraceRecorder()
    sched = make(trace=rec)

    def spins() -> Gen:
        while True:
            yield (EXECUTE, 0)

    launch(sched, 0, spins)
    sched.run_until(1_000)
    assert _exit_reasons(rec) == [(0, "livelock")]
    assert ZERO_TIME_OP_LIMIT > 1


def test_start_cpu_on_a_ceded_thread_replaces_its_program() -> None:
    rec = TraceRecorder()
    sched = make(trace=rec)
    log: list[str] = []

    def old() -> Gen:
        try:
            yield (Hcall.H_CEDE, 10_000)
            log.append("old resumed")
        finally:
            log.append("old closed")

    def new() -> Gen:
        log.append(f"new at {sched.now}")
        yield (Hcall.H_CEDE,)

    launch(sched, 0, old)
    sched.run_until(100)
    assert sched.is_halted(0)
    sched.start(0, 0x200, 0, program_factory=lambda _v, _e, _r: new())
    assert log == ["old closed"]
    sched.run_until(50_000)  # the old timeout must not wake it
    assert log == ["old closed", "new at 100"]
    assert sched.state(0) is VcpuState.HALTED
    assert rec.select("vcpu_program_replaced")[0].fields == {"vcpu": 0, "entry": 0x200}


# --------------------------------------------------------------------------
# timers and driving
# --------------------------------------------------------------------------


def test_timers_run_in_time_then_creation_order_and_can_be_cancelled() -> None:
    sched = make()
    fired: list[tuple[str, int]] = []
    sched.call_at(300, lambda: fired.append(("b", sched.now)))
    sched.call_at(100, lambda: fired.append(("a", sched.now)))
    sched.call_at(300, lambda: fired.append(("c", sched.now)))
    dropped = sched.call_later(200, lambda: fired.append(("x", sched.now)))
    dropped.cancel()
    assert not dropped.pending
    sched.run_until(1_000)
    assert fired == [("a", 100), ("b", 300), ("c", 300)]
    assert sched.stats().timer_fires == 3
    with pytest.raises(ValueError):
        sched.call_at(999, lambda: None)
    with pytest.raises(ValueError):
        sched.run_until(10)


def test_timer_scheduled_from_a_timer() -> None:
    sched = make()
    fired: list[int] = []

    def tick() -> None:
        fired.append(sched.now)
        if len(fired) < 3:
            sched.call_later(250, tick)

    sched.call_later(250, tick)
    sched.run_until(10_000)
    assert fired == [250, 500, 750]


def test_run_until_idle() -> None:
    sched = make()

    def body() -> Gen:
        yield (EXECUTE, 5_000)
        yield (Hcall.H_CEDE,)

    launch(sched, 0, body)
    sched.call_at(7_000, lambda: None)
    assert sched.run_until_idle(1_000_000)
    assert sched.now == 7_000  # the last event; not advanced to the limit
    launch(sched, 1, forever)
    assert not sched.run_until_idle(3_000)
    assert sched.now == 10_000


def test_far_timeouts_and_timers_keep_their_order() -> None:
    sched = VcpuScheduler(1, quantum_ns=100, near_horizon_ns=1_000)
    fired: list[tuple[int, int]] = []

    def fire(i: int) -> Callable[[], None]:
        return lambda: fired.append((sched.now, i))

    for i, when in enumerate([5_000, 900, 70_000, 1_000, 4_999, 5_000]):
        sched.call_at(when, fire(i))
    sched.run_until(100_000)
    assert fired == [(900, 1), (1_000, 3), (4_999, 4), (5_000, 0), (5_000, 5), (70_000, 2)]


# --------------------------------------------------------------------------
# fairness and accounting
# --------------------------------------------------------------------------


def test_two_busy_threads_share_one_processor_exactly() -> None:
    sched = make()
    launch(sched, 0, forever)
    launch(sched, 1, forever)
    sched.run_until(10_000)
    stats = sched.stats()
    assert stats.run_ns.tolist() == [5_000, 5_000]
    assert stats.steal_ns.tolist() == [5_000, 5_000]
    assert stats.slices.tolist() == [5, 5]
    assert isinstance(stats.run_ns, np.ndarray)
    assert stats.index(1) == 1
    with pytest.raises(KeyError):
        stats.index(7)


def test_stats_include_the_slice_in_progress() -> None:
    sched = make(quantum=10_000)
    launch(sched, 0, forever)
    launch(sched, 1, forever)
    sched.run_until(2_500)
    stats = sched.stats()
    assert stats.run_ns.tolist() == [2_500, 0]
    assert stats.steal_ns.tolist() == [0, 2_500]
    assert stats.now == 2_500
    assert stats.host_cpus == 1


def test_stats_cover_live_threads_and_events_survive_removal() -> None:
    sched = make()
    launch(sched, 0, forever)
    sched.add_vcpu(1)
    sched.add_vcpu(2)
    sched.run_until(3_000)
    before = sched.stats()
    assert before.total_slices == 3
    sched.remove_vcpu(0)
    sched.add_vcpu(3)
    after = sched.stats()
    assert sorted(after.vcpu_id.tolist()) == [1, 2, 3]
    assert after.total_slices == 3
    assert after.events == before.events
    assert after.state.tolist() == [VcpuState.STOPPED] * 3


def test_busy_thread_keeps_its_processor_while_a_woken_one_waits() -> None:
    """No wake-up preemption: a woken thread waits for the next quantum boundary."""
    sched = make(quantum=1_000)
    log: list[int] = []

    def sleeper() -> Gen:
        yield (Hcall.H_CEDE,)
        log.append(sched.now)

    launch(sched, 1, sleeper)
    launch(sched, 0, forever)
    sched.call_at(300, lambda: sched.raise_interrupt(1))
    sched.run_until(5_000)
    assert log == [1_000]
    assert sched.stats().steal_ns.tolist()[0] == 700  # vcpu 1 (slot 0) waited 300..1000


# --------------------------------------------------------------------------
# trace
# --------------------------------------------------------------------------


def test_state_changes_are_traced_with_qemu_style_fields() -> None:
    rec = TraceRecorder()
    sched = make(trace=rec)

    def body() -> Gen:
        yield (EXECUTE, 100)
        yield (Hcall.H_CEDE, 50)

    launch(sched, 0, body)
    sched.run_until(1_000)
    states = [(e.t, e.fields["old"], e.fields["new"]) for e in rec.select("vcpu_state")]
    assert states == [
        (0, "STOPPED", "RUNNABLE"),
        (0, "RUNNABLE", "RUNNING"),
        (100, "RUNNING", "HALTED"),
        (150, "HALTED", "RUNNABLE"),
        (150, "RUNNABLE", "RUNNING"),
        (150, "RUNNING", "STOPPED"),
    ]
    legal = {(a.name, b.name) for a, b in TRANSITIONS}
    assert all((old, new) in legal for _, old, new in states)
    assert _exit_reasons(rec) == [(0, "return")]
    assert rec.select("vcpu_added")[0].fields == {
        "vcpu": 0,
        "tid": sched.thread_id(0),
        "state": "STOPPED",
    }


def test_inactive_recorder_records_nothing_until_subscribed() -> None:
    rec = TraceRecorder(keep=False)
    sched = make(trace=rec)
    launch(sched, 0, forever)
    launch(sched, 1, forever)
    sched.run_until(5_000)
    seen: list[str] = []
    rec.subscribe(lambda e: seen.append(e.name), ["vcpu_state"])
    sched.run_until(6_000)
    assert seen == ["vcpu_state", "vcpu_state"]  # one preemption at the 6000 boundary
    assert rec.events == []


# --------------------------------------------------------------------------
# the RTAS calls of protocol.md §4.9-4.11 over this scheduler
# --------------------------------------------------------------------------


def test_cpu_rtas_handshake_over_the_scheduler() -> None:
    """start-cpu / stop-self / query-cpu-stopped-state driven by guest programs via H_RTAS."""
    memory = GuestMemory(0x10000)
    dispatcher: RtasDispatcher[int] = RtasDispatcher()
    buffers = {0: 0x1000, 1: 0x2000}
    log: list[tuple[str, Any]] = []
    state = {"die": False}

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        assert number == Hcall.KVMPPC_H_RTAS
        return dispatcher.hcall_rtas(memory, args[0], vcpu_id)

    def rtas(
        vcpu_id: int, token: int, args: list[int], nret: int
    ) -> Generator[tuple[Any, ...], Any, tuple[int, ...]]:
        addr = buffers[vcpu_id]
        encode_call(memory, addr, token, args, nret)
        status = yield (Hcall.KVMPPC_H_RTAS, addr)
        assert status == H_SUCCESS
        return read_rets(memory, addr)

    def secondary(vcpu_id: int, entry: int, r3: int) -> Gen:
        log.append(("secondary", (vcpu_id, entry, r3, sched.now)))
        yield (EXECUTE, 1_000)  # secondary start-up: online, not halted
        while not state["die"]:
            yield (Hcall.H_CEDE,)
        yield from rtas(vcpu_id, RtasToken.STOP_SELF, [], 1)
        log.append(("secondary", "Alas, I survived."))

    def controller() -> Gen:
        query = RtasToken.QUERY_CPU_STOPPED_STATE
        start = RtasToken.START_CPU
        log.append(("query new", (yield from rtas(0, query, [1], 2))))
        log.append(("start", (yield from rtas(0, start, [1, 0x100, 1], 1))))
        log.append(("query started", (yield from rtas(0, query, [1], 2))))
        log.append(("start again", (yield from rtas(0, start, [1, 0x100, 1], 1))))
        yield (EXECUTE, 2_000)
        log.append(("query ceded", (yield from rtas(0, query, [1], 2))))
        log.append(("query unknown", (yield from rtas(0, query, [7], 2))))
        state["die"] = True
        yield (Hcall.H_PROD, 1)
        while True:
            rets = yield from rtas(0, query, [1], 2)
            # a ceded thread also reads STOPPED: wait for the real stop
            if rets[1] == CpuStoppedState.STOPPED and sched.state(1) is VcpuState.STOPPED:
                break
            yield (EXECUTE, 100)
        log.append(("stopped", sched.now))

    sched = VcpuScheduler(
        2, quantum_ns=QUANTUM, hcall_cost_ns=COST, hcall=hcall, program_factory=secondary
    )
    CpuRtas(sched).register_rtas(dispatcher.register)
    sched.add_vcpu(0)
    sched.add_vcpu(1)
    sched.start(0, program_factory=lambda _v, _e, _r: controller())
    assert sched.run_until_idle(10**9)
    stopped, not_stopped = int(CpuStoppedState.STOPPED), int(CpuStoppedState.NOT_STOPPED)
    assert log[:8] == [
        ("query new", (0, stopped)),  # created stopped
        ("secondary", (1, 0x100, 1, COST)),  # dispatched as start-cpu (made at COST) ran
        ("start", (0,)),
        ("query started", (0, not_stopped)),
        ("start again", (int(RtasStatus.HW_ERROR),)),
        ("query ceded", (0, stopped)),  # the TCG quirk: an idle online thread reads stopped
        ("query unknown", (int(RtasStatus.PARAM_ERROR), 0)),  # state not written
        ("stopped", log[7][1]),
    ]
    assert sched.state(1) is VcpuState.STOPPED
    assert sched.is_halted(1)
