"""Edges of the event queue: the RTAS entry points, the ``event_queue`` trace, CAS's
clearing of hotplug entries, and the bounded queue after the guest took entries
out of order.

Sources: QEMU 7.2 ``hw/ppc/spapr_events.c``: check-exception accepts nargs 6 or 7
with nret 1 (``if ((nargs < 6) || (nargs > 7) || nret != 1)`` -> -3) and on success
stores 0 in rets[0] only; event-scan (nargs 4, nret 1) returns 1, "no errors found"
(protocol.md §8.4, §8.5); ``spapr_clear_pending_hotplug_events`` (CAS) drops the
hotplug entries and keeps the rest. The project's ``event_queue`` trace event
(README "trace"; ``machine/diagrams/messages.py`` reads it) names the changed entry
(``entry``: source, IRQ, log bytes; None when no single entry changed) and the
pending entries, at most TRACE_PENDING_SHOWN of them plus ``pending_total``. The
bound on identical requests (``tests/test_events_pending.py``) is about the queue
as it is now.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rtas import GuestMemory, RtasCall, decode_event_log, encode_call
from rtas.codes import EventMask, RtasStatus
from rtas.errlog import EventLogEntry, HotplugAction
from rtas.tokens import RtasToken
from spapr.events import (
    MAX_PENDING,
    SPAPR_IRQ_EPOW,
    SPAPR_IRQ_HOTPLUG,
    TRACE_PENDING_SHOWN,
    EventQueue,
)
from spapr.trace import TraceRecorder

ARGS = 0x100
BUF = 0x1000
CPU = 0x10000000
MARK = 0xDEADBEEF


def make_queue(
    trace: TraceRecorder | None = None, pulse: Callable[[int], None] | None = None
) -> tuple[EventQueue, list[int]]:
    pulses: list[int] = []
    queue = EventQueue(
        pulse_irq=pulse or pulses.append, rtc=lambda: ((2016, 9, 1), (12, 34, 56)), trace=trace
    )
    queue.hp_evt_negotiated = True
    return queue, pulses


def call_with_marked_rets(
    memory: GuestMemory, token: int, args: list[int], nret: int
) -> tuple[RtasCall[Any], int]:
    """Encode a call, then mark each ret word and the word after them with MARK."""
    encode_call(memory, ARGS, token, args, nret)
    rets = ARGS + 12 + 4 * len(args)
    for i in range(nret + 1):
        memory.st32(rets + 4 * i, MARK)
    return RtasCall.decode(memory, ARGS, 0), rets


def describe(queue: EventQueue, entry: EventLogEntry) -> dict[str, object]:
    """The trace's description of an entry, from its routing and bytes."""
    hotplug = (entry.summary & 0xFF) == 0xE5
    if hotplug and queue.hp_evt_negotiated:
        source, irq = "hot-plug-events", SPAPR_IRQ_HOTPLUG
    else:
        source, irq = "epow-events", SPAPR_IRQ_EPOW
    return {"source": source, "irq": irq, "log": entry.to_bytes().hex()}


# --- RTAS entry points -----------------------------------------------------------------


def test_the_registered_event_scan_answers_and_repulses() -> None:
    """register_rtas installs check-exception (0x200E) and event-scan (0x200F) with
    working handlers: the event-scan handler returns 1 (no errors found) and pulses
    the IRQ of a class that still holds an entry."""
    queue, pulses = make_queue()
    services: dict[int, tuple[str, Callable[[RtasCall[Any]], None]]] = {}
    queue.register_rtas(lambda token, name, handler: services.__setitem__(token, (name, handler)))
    assert {t: n for t, (n, _) in services.items()} == {
        RtasToken.CHECK_EXCEPTION: "check-exception",
        RtasToken.EVENT_SCAN: "event-scan",
    }
    queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    pulses.clear()
    memory = GuestMemory(0x10000)
    call, rets = call_with_marked_rets(memory, RtasToken.EVENT_SCAN, [0xFFFFFFFF, 0, BUF, 2048], 1)
    services[RtasToken.EVENT_SCAN][1](call)
    assert memory.ld32(rets) == RtasStatus.NO_ERRORS_FOUND
    assert pulses == [SPAPR_IRQ_HOTPLUG]
    assert len(queue) == 1  # event-scan never hands out an entry
    call, rets = call_with_marked_rets(
        memory, RtasToken.CHECK_EXCEPTION, [0x500, 0x1001, EventMask.HOT_PLUG, 0, BUF, 2048], 1
    )
    services[RtasToken.CHECK_EXCEPTION][1](call)
    assert memory.ld32(rets) == RtasStatus.SUCCESS
    assert len(queue) == 0


def test_check_exception_stores_success_in_rets0_only() -> None:
    """A successful check-exception writes 0 to rets[0] and nothing past nret."""
    queue, _ = make_queue()
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 2)
    memory = GuestMemory(0x10000)
    call, rets = call_with_marked_rets(
        memory, RtasToken.CHECK_EXCEPTION, [0x500, 0x1001, EventMask.HOT_PLUG, 0, BUF, 2048], 1
    )
    queue.rtas_check_exception(call)
    assert memory.ld32(rets) == 0
    assert memory.ld32(rets + 4) == MARK
    log = decode_event_log(memory.read(BUF, 116)).hotplug
    assert log is not None and log.drc_index == CPU + 2


@pytest.mark.parametrize(("nargs", "accepted"), [(5, False), (6, True), (7, True), (8, False)])
def test_check_exception_accepts_six_or_seven_arguments(nargs: int, accepted: bool) -> None:
    """nargs outside 6..7 is a parameter error (-3) and leaves the entry queued."""
    queue, _ = make_queue()
    queue.queue_hotplug(HotplugAction.ADD, CPU + 3)
    args = [0x500, 0x1001, EventMask.HOT_PLUG, 0, BUF, 2048, 0, 0][:nargs]
    memory = GuestMemory(0x10000)
    call, rets = call_with_marked_rets(memory, RtasToken.CHECK_EXCEPTION, args, 1)
    queue.rtas_check_exception(call)
    if accepted:
        assert memory.ld32(rets) == RtasStatus.SUCCESS and len(queue) == 0
    else:
        assert memory.ld32(rets) == RtasStatus.PARAM_ERROR & 0xFFFFFFFF and len(queue) == 1


# --- the event_queue trace -----------------------------------------------------------------


def test_a_dequeue_names_the_entry_taken() -> None:
    """``dequeued``: ``entry`` describes the entry handed to the guest (routed as now),
    ``pending`` the ones left."""
    trace = TraceRecorder()
    queue, _ = make_queue(trace)
    first = queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    second = queue.queue_hotplug(HotplugAction.ADD, CPU + 2)
    assert queue.dequeue(EventMask.HOT_PLUG) is first
    last = trace.select("event_queue")[-1].fields
    assert last["op"] == "dequeued"
    assert last["entry"] == describe(queue, first)
    assert last["pending"] == [describe(queue, second)]


def test_a_long_queue_change_without_an_entry_says_none() -> None:
    """A change that concerns no single entry (a migration load) on a queue longer than
    TRACE_PENDING_SHOWN: ``entry`` None, the oldest entries listed and the total."""
    source, _ = make_queue()
    for i in range(TRACE_PENDING_SHOWN + 2):
        source.queue_hotplug(HotplugAction.REMOVE, CPU + i)
    trace = TraceRecorder()
    target, _ = make_queue(trace)
    target.load_vmstate(source.vmstate())
    last = trace.select("event_queue")[-1].fields
    assert last["op"] == "migration" and last["entry"] is None
    assert last["pending_total"] == TRACE_PENDING_SHOWN + 2
    assert last["pending"] == [describe(target, e) for e in list(target)[:TRACE_PENDING_SHOWN]]


def test_cas_drops_hotplug_entries_and_says_so_once() -> None:
    """clear_hotplug (CAS) removes every hotplug entry, keeps the EPOW ones in order,
    and emits one ``cleared`` change (entry None) listing what is left."""
    trace = TraceRecorder()
    queue, _ = make_queue(trace)
    epow1 = queue.queue_epow_shutdown()
    queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    epow2 = queue.queue_epow_shutdown()
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 2)
    before = len(trace.select("event_queue"))
    queue.clear_hotplug()
    assert list(queue) == [epow1, epow2]
    changes = trace.select("event_queue")[before:]
    assert [c.fields["op"] for c in changes] == ["cleared"]
    assert changes[0].fields["entry"] is None
    assert changes[0].fields["pending"] == [describe(queue, epow1), describe(queue, epow2)]


def test_cas_with_no_hotplug_entry_changes_nothing_and_says_nothing() -> None:
    """With only EPOW entries pending, clear_hotplug keeps them and emits no change."""
    trace = TraceRecorder()
    queue, _ = make_queue(trace)
    entries = [queue.queue_epow_shutdown() for _ in range(3)]
    before = len(trace.select("event_queue"))
    queue.clear_hotplug()
    assert list(queue) == entries
    assert len(trace.select("event_queue")) == before


# --- queueing failures ---------------------------------------------------------------------


def test_a_failing_interrupt_line_that_emptied_the_queue_reports_its_own_error() -> None:
    """If the interrupt line fails after something already emptied the queue (a machine
    reset from inside the pulse), the line's error reaches the caller unchanged and
    the queue stays empty."""

    class LineError(RuntimeError):
        pass

    holder: list[EventQueue] = []

    def pulse(_irq: int) -> None:
        holder[0].clear_all()
        raise LineError("line gone")

    queue, _ = make_queue(pulse=pulse)
    holder.append(queue)
    with pytest.raises(LineError, match="line gone"):
        queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    assert len(queue) == 0


# --- the bound after the guest took entries out of order ----------------------------------


def test_at_the_bound_a_request_taken_from_the_middle_is_queued_again() -> None:
    """An EPOW entry stays at the front while the guest takes hotplug entries
    (check-exception with the hot-plug mask takes the oldest hotplug one, behind it).
    Back at the bound, the request it took is no longer pending, so asking it again
    queues a new entry (and a second ask is then coalesced with that one)."""
    queue, _ = make_queue()
    queue.queue_epow_shutdown()
    for i in range(1, MAX_PENDING):
        queue.queue_hotplug(HotplugAction.REMOVE, CPU + i)
    assert len(queue) == MAX_PENDING
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 1)  # pending: coalesced
    assert len(queue) == MAX_PENDING
    taken = queue.dequeue(EventMask.HOT_PLUG)
    assert taken is not None
    hotplug = decode_event_log(taken.to_bytes()).hotplug
    assert hotplug is not None and hotplug.drc_index == CPU + 1
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 500)  # back at the bound
    assert len(queue) == MAX_PENDING
    again = queue.queue_hotplug(HotplugAction.REMOVE, CPU + 1)
    assert len(queue) == MAX_PENDING + 1
    assert list(queue)[-1] is again
    assert queue.queue_hotplug(HotplugAction.REMOVE, CPU + 1) is again
    assert len(queue) == MAX_PENDING + 1


def test_a_queue_cycling_many_requests_at_the_bound_keeps_coalescing_right() -> None:
    """Hundreds of distinct requests pass through a queue held at the bound (the guest
    takes the oldest, the host asks a new one): every new request is queued, a pending
    one is coalesced, and the guest gets them in FIFO order."""
    queue, _ = make_queue()
    for i in range(MAX_PENDING):
        queue.queue_hotplug(HotplugAction.REMOVE, CPU + i)
    rounds = 8 * MAX_PENDING
    for n in range(MAX_PENDING, MAX_PENDING + rounds):
        entry = queue.queue_hotplug(HotplugAction.REMOVE, CPU + n)  # new: queued
        assert list(queue)[-1] is entry and len(queue) == MAX_PENDING + 1
        taken = queue.dequeue(EventMask.HOT_PLUG)
        assert taken is not None
        hotplug = decode_event_log(taken.to_bytes()).hotplug
        assert hotplug is not None and hotplug.drc_index == CPU + n - MAX_PENDING
    newest = list(queue)[-1]
    assert queue.queue_hotplug(HotplugAction.REMOVE, CPU + MAX_PENDING + rounds - 1) is newest
    oldest = next(iter(queue))
    assert queue.queue_hotplug(HotplugAction.REMOVE, CPU + rounds) is oldest
    assert len(queue) == MAX_PENDING
