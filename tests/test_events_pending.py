"""The pending-event queue seen from the guest: FIFO order, PLIDs, its bound, traces.

QEMU 7.2 (``hw/ppc/spapr_events.c``) queues every hotplug request in one FIFO, each
log with the next PLID of a process-wide counter, and pulses the source's IRQ; the
guest takes entries with check-exception (oldest matching first). The project bounds
the queue (robustness campaign, area 6: ``tests/test_robustness_defects.py``): up to
``MAX_PENDING`` entries it queues every request as QEMU does; past that, a request
identical (action, DRC index, resource) to one still pending is not queued again,
only its IRQ is pulsed,
so a client repeating ``device_del`` on a stopped guest cannot grow it without
bound. The ``event_queue`` trace event lists at most ``TRACE_PENDING_SHOWN``
pending entries and then the total. Everything here is checked through
check-exception's answers, the IRQ pulses and the trace.
"""

from __future__ import annotations

import pytest

from rtas import GuestMemory, RtasCall, decode_event_log, encode_call
from rtas.codes import EventMask, RtasStatus
from rtas.errlog import EventLogEntry, HotplugAction, HotplugResource
from spapr.events import (
    MAX_PENDING,
    SPAPR_IRQ_EPOW,
    SPAPR_IRQ_HOTPLUG,
    TRACE_PENDING_SHOWN,
    EventQueue,
    PlidCounter,
)
from spapr.trace import TraceRecorder

ARGS = 0x100
BUF = 0x1000
CPU = 0x10000000


def make_queue(trace: TraceRecorder | None = None) -> tuple[EventQueue, list[int]]:
    pulses: list[int] = []
    queue = EventQueue(
        pulse_irq=pulses.append, rtc=lambda: ((2016, 9, 1), (12, 34, 56)), trace=trace
    )
    queue.hp_evt_negotiated = True
    return queue, pulses


def take(
    queue: EventQueue, memory: GuestMemory, mask: int = EventMask.HOT_PLUG
) -> tuple[int, ...] | None:
    """check-exception as Linux calls it: (action, DRC index, PLID) of the log, or None."""
    encode_call(memory, ARGS, 0x200E, [0x500, 0x1001, mask, 0, BUF, 2048], 1)
    call = RtasCall.decode(memory, ARGS, 0)
    queue.rtas_check_exception(call)
    if call.status == RtasStatus.NO_ERRORS_FOUND:
        return None
    assert call.status == RtasStatus.SUCCESS
    log = decode_event_log(memory.read(BUF, 116))
    assert log.hotplug is not None
    return (log.hotplug.action, log.hotplug.drc_index, log.plid)


def drain(queue: EventQueue, memory: GuestMemory) -> list[tuple[int, ...]]:
    out = []
    while (got := take(queue, memory)) is not None:
        out.append(got)
    return out


def fill(queue: EventQueue, n: int, cores: int = 4) -> None:
    """``n`` REMOVE requests cycling over ``cores`` connectors (repeats included)."""
    for i in range(n):
        queue.queue_hotplug(HotplugAction.REMOVE, CPU + i % cores)


def test_up_to_the_bound_every_request_is_queued_like_qemu() -> None:
    """Below MAX_PENDING pending entries even identical requests each get an entry and
    a PLID, in FIFO order (QEMU queues every request)."""
    queue, pulses = make_queue()
    fill(queue, MAX_PENDING)
    assert len(queue) == MAX_PENDING
    assert pulses == [SPAPR_IRQ_HOTPLUG] * MAX_PENDING
    memory = GuestMemory(0x10000)
    got = drain(queue, memory)
    assert got == [(HotplugAction.REMOVE, CPU + i % 4, i) for i in range(MAX_PENDING)]


def test_past_the_bound_an_identical_request_is_only_pulsed_again() -> None:
    """With MAX_PENDING entries pending, a request identical to a pending one adds no
    entry and takes no PLID, but its IRQ is pulsed again; a request that differs in
    action or index is still queued."""
    queue, pulses = make_queue()
    fill(queue, MAX_PENDING)
    pulses.clear()
    first = queue.queue_hotplug(HotplugAction.REMOVE, CPU + 1)
    assert len(queue) == MAX_PENDING and pulses == [SPAPR_IRQ_HOTPLUG]
    assert decode_event_log(first.to_bytes()).plid == 1  # the first pending entry for it
    queue.queue_hotplug(HotplugAction.ADD, CPU + 1)  # other action
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 7)  # other index
    assert len(queue) == MAX_PENDING + 2
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 7)  # now pending: coalesced
    queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    assert len(queue) == MAX_PENDING + 2
    memory = GuestMemory(0x10000)
    got = drain(queue, memory)
    assert got[-2:] == [
        (HotplugAction.ADD, CPU + 1, MAX_PENDING),
        (HotplugAction.REMOVE, CPU + 7, MAX_PENDING + 1),
    ]


def test_the_bound_follows_the_queue_as_the_guest_takes_entries() -> None:
    """Once the guest took entries the queue is below the bound again and requests are
    queued; what counts as "still pending" is the queue as it is now."""
    queue, _ = make_queue()
    memory = GuestMemory(0x10000)
    for i in range(MAX_PENDING):  # REMOVE of core 100 first, then other cores
        queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100 + i)
    assert take(queue, memory) == (HotplugAction.REMOVE, CPU + 100, 0)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100)  # 63 pending: queued
    assert len(queue) == MAX_PENDING
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100)  # pending again: coalesced
    assert len(queue) == MAX_PENDING
    assert take(queue, memory) == (HotplugAction.REMOVE, CPU + 101, 1)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 101)  # taken: queued
    assert len(queue) == MAX_PENDING
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 102)  # still pending: coalesced
    assert len(queue) == MAX_PENDING
    got = drain(queue, memory)
    assert got[-2:] == [
        (HotplugAction.REMOVE, CPU + 100, 64),
        (HotplugAction.REMOVE, CPU + 101, 65),
    ]


@pytest.mark.parametrize("clear", ["reset", "cas"])
def test_after_the_queue_is_emptied_requests_are_queued_again(clear: str) -> None:
    """Machine reset (every entry dropped) and CAS (hotplug entries dropped) leave
    nothing pending: the same requests are queued again, up to the bound."""
    queue, _ = make_queue()
    fill(queue, MAX_PENDING + 3)
    assert len(queue) == MAX_PENDING
    if clear == "reset":
        queue.clear_all()
    else:
        queue.clear_hotplug()
    assert len(queue) == 0
    fill(queue, MAX_PENDING + 3)
    assert len(queue) == MAX_PENDING
    fill(queue, 3, cores=3)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 5)
    assert len(queue) == MAX_PENDING + 1


def test_epow_entries_count_towards_the_bound_but_never_match_a_request() -> None:
    """An EPOW entry is pending like any other; no hotplug request is identical to it."""
    queue, pulses = make_queue()
    for _ in range(MAX_PENDING):
        queue.queue_epow_shutdown()
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 1)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 1)
    assert len(queue) == MAX_PENDING + 1
    assert pulses[-1] == SPAPR_IRQ_HOTPLUG


def test_a_coalesced_request_pulses_the_irq_its_entry_is_routed_to_now() -> None:
    """Before OV5_HP_EVT is negotiated hotplug entries route to EPOW (0x1000): the
    coalesced request pulses that IRQ."""
    queue, pulses = make_queue()
    queue.hp_evt_negotiated = False
    fill(queue, MAX_PENDING)
    pulses.clear()
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 2)
    assert pulses == [SPAPR_IRQ_EPOW]


def test_memory_requests_are_told_apart_from_cpu_requests() -> None:
    """The resource is part of a request: a PMEM request for the same index as a
    pending CPU one is not identical to it."""
    queue, _ = make_queue()
    fill(queue, MAX_PENDING, cores=1)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU, HotplugResource.PMEM)
    assert len(queue) == MAX_PENDING + 1


def test_plids_wrap_at_32_bits() -> None:
    """The PLID is a u32 counter in QEMU (spapr_events.c: ``next_plid++``)."""
    counter = PlidCounter(next_plid=0xFFFFFFFF)
    queue = EventQueue(
        pulse_irq=lambda _irq: None, rtc=lambda: ((2016, 9, 1), (12, 34, 56)), plids=counter
    )
    first = queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    second = queue.queue_hotplug(HotplugAction.ADD, CPU + 2)
    assert decode_event_log(first.to_bytes()).plid == 0xFFFFFFFF
    assert decode_event_log(second.to_bytes()).plid == 0


def test_a_failing_pulse_queues_nothing_and_spends_no_plid() -> None:
    """All or nothing: when raising the interrupt fails the request leaves no entry
    and the next request gets the PLID this one would have had."""
    fail = [True]

    def pulse(_irq: int) -> None:
        if fail[0]:
            raise RuntimeError("interrupt controller gone")

    queue = EventQueue(pulse_irq=pulse, rtc=lambda: ((2016, 9, 1), (12, 34, 56)))
    with pytest.raises(RuntimeError):
        queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    assert len(queue) == 0
    fail[0] = False
    entry = queue.queue_hotplug(HotplugAction.ADD, CPU + 1)
    assert decode_event_log(entry.to_bytes()).plid == 0
    assert list(queue) == [entry]


def test_an_entry_of_no_known_type_has_no_source() -> None:
    """Only EPOW (0x40) and hotplug (0xE5) logs are routed (rtas_event_log_to_source)."""
    queue, _ = make_queue()
    entry = queue.queue_epow_shutdown()
    stray = EventLogEntry((entry.summary & ~0xFF) | 0xE0, entry.extended)
    with pytest.raises(ValueError, match="0xe0"):
        queue.route(stray)


def test_the_trace_lists_a_long_queue_in_part() -> None:
    """``event_queue``: each change names the entry and lists the pending ones as
    routed now; past TRACE_PENDING_SHOWN it lists the oldest ones and the total."""
    trace = TraceRecorder()
    queue, _ = make_queue(trace)
    fill(queue, TRACE_PENDING_SHOWN)
    last = trace.select("event_queue")[-1].fields
    assert last["op"] == "queued" and "pending_total" not in last
    assert len(last["pending"]) == TRACE_PENDING_SHOWN
    assert last["pending"][0] == {
        "source": "hot-plug-events",
        "irq": SPAPR_IRQ_HOTPLUG,
        "log": next(iter(queue)).to_bytes().hex(),
    }
    entry = queue.queue_hotplug(HotplugAction.ADD, CPU + 9)
    last = trace.select("event_queue")[-1].fields
    assert last["op"] == "queued"
    assert last["entry"]["log"] == entry.to_bytes().hex()
    assert len(last["pending"]) == TRACE_PENDING_SHOWN
    assert last["pending_total"] == TRACE_PENDING_SHOWN + 1
    assert last["pending"][0]["log"] == next(iter(queue)).to_bytes().hex()
    queue.hp_evt_negotiated = False
    take(queue, GuestMemory(0x10000), EventMask.EPOW)
    last = trace.select("event_queue")[-1].fields
    assert last["op"] == "dequeued"
    assert last["pending"][0]["source"] == "epow-events"
    assert last["pending"][0]["irq"] == SPAPR_IRQ_EPOW
    queue.clear_all()
    last = trace.select("event_queue")[-1].fields
    assert (last["op"], last["entry"], last["pending"]) == ("cleared", None, [])
    count = len(trace.select("event_queue"))
    queue.clear_all()  # nothing to clear: no event
    queue.clear_hotplug()
    assert len(trace.select("event_queue")) == count


def test_coalesced_requests_are_traced() -> None:
    """A coalesced request is an ``event_queue`` change of its own, naming the pending
    entry it matched."""
    trace = TraceRecorder()
    queue, _ = make_queue(trace)
    fill(queue, MAX_PENDING)
    same = queue.queue_hotplug(HotplugAction.REMOVE, CPU + 3)
    last = trace.select("event_queue")[-1].fields
    assert last["op"] == "coalesced"
    assert last["entry"]["log"] == same.to_bytes().hex()


def test_migration_load_is_traced_and_restores_routing() -> None:
    """load_vmstate replaces the queue and the negotiated routing; it is traced."""
    trace = TraceRecorder()
    source, _ = make_queue()
    source.queue_hotplug(HotplugAction.ADD, CPU + 2)
    target, _ = make_queue(trace)
    target.hp_evt_negotiated = False
    target.queue_epow_shutdown()
    target.load_vmstate(source.vmstate())
    assert list(target) == list(source) and target.hp_evt_negotiated
    assert trace.select("event_queue")[-1].fields["op"] == "migration"


def test_at_the_bound_a_request_taken_by_the_guest_is_queued_again() -> None:
    """What counts as pending is the queue as it is now, also when it is back at the
    bound: a request the guest already took is queued again, a still pending one not."""
    queue, _ = make_queue()
    memory = GuestMemory(0x10000)
    for i in range(MAX_PENDING):
        queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100 + i)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 105)  # at the bound: coalesced
    assert len(queue) == MAX_PENDING
    assert take(queue, memory) == (HotplugAction.REMOVE, CPU + 100, 0)
    queue.queue_hotplug(HotplugAction.ADD, CPU + 1)  # back at the bound
    assert len(queue) == MAX_PENDING
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100)  # taken: queued again
    assert len(queue) == MAX_PENDING + 1
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100)  # pending again: coalesced
    queue.queue_hotplug(HotplugAction.ADD, CPU + 1)  # the last one appended: coalesced
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 163)  # the last of the first ones
    assert len(queue) == MAX_PENDING + 1
    queue.clear_all()
    for i in range(MAX_PENDING):
        queue.queue_hotplug(HotplugAction.ADD, CPU + 200 + i)
    queue.queue_hotplug(HotplugAction.REMOVE, CPU + 100)  # pending before the reset only
    assert len(queue) == MAX_PENDING + 1
