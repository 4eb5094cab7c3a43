"""The pending-event queue: routing, masks, pulses, check-exception and event-scan."""

from __future__ import annotations

from rtas import GuestMemory, RtasCall, decode_event_log, encode_call
from rtas.codes import EventMask, RtasStatus
from rtas.errlog import HotplugAction
from spapr.events import SPAPR_IRQ_EPOW, SPAPR_IRQ_HOTPLUG, EventClass, EventQueue

ARGS = 0x100
BUF = 0x1000


def make_queue(modern: bool = True) -> tuple[EventQueue, list[int]]:
    pulses: list[int] = []
    queue = EventQueue(
        pulse_irq=pulses.append,
        rtc=lambda: ((2016, 9, 1), (12, 34, 56)),
        modern_hotplug_events=modern,
    )
    return queue, pulses


def check_exception(queue: EventQueue, memory: GuestMemory, mask: int, nargs: int = 6) -> int:
    args = [0x500, 0x1001, mask, 0, BUF, 2048, 0][:nargs]
    encode_call(memory, ARGS, 0x200E, args, 1)
    call = RtasCall.decode(memory, ARGS, 0)
    queue.rtas_check_exception(call)
    return call.status


def test_sources_and_their_irqs() -> None:
    queue, _ = make_queue()
    assert [(s.event_class, s.irq) for s in queue.sources()] == [
        (EventClass.EPOW, SPAPR_IRQ_EPOW),
        (EventClass.HOT_PLUG, SPAPR_IRQ_HOTPLUG),
    ]
    old, _ = make_queue(modern=False)  # pseries-2.7 and older: no hot-plug-events source
    assert [s.event_class for s in old.sources()] == [EventClass.EPOW]
    assert EventClass.HOT_PLUG.mask == EventMask.HOT_PLUG
    assert EventClass.EPOW.mask == EventMask.EPOW


def test_hotplug_entries_use_epow_until_negotiated() -> None:
    queue, pulses = make_queue()
    memory = GuestMemory(0x10000)
    queue.queue_hotplug(HotplugAction.ADD, 0x10000002)
    assert pulses == [SPAPR_IRQ_EPOW]
    assert check_exception(queue, memory, EventMask.HOT_PLUG) == RtasStatus.NO_ERRORS_FOUND
    # routing is evaluated at dequeue time too: negotiating moves the queued entry
    queue.hp_evt_negotiated = True
    assert check_exception(queue, memory, EventMask.EPOW) == RtasStatus.NO_ERRORS_FOUND
    assert check_exception(queue, memory, EventMask.HOT_PLUG) == RtasStatus.SUCCESS
    hp = decode_event_log(memory.read(BUF, 116)).hotplug
    assert hp is not None and (hp.action, hp.drc_index) == (HotplugAction.ADD, 0x10000002)
    queue.queue_hotplug(HotplugAction.REMOVE, 0x10000002)
    assert pulses[-1] == SPAPR_IRQ_HOTPLUG


def test_fifo_order_repulse_and_whole_buffer_written() -> None:
    queue, pulses = make_queue()
    queue.hp_evt_negotiated = True
    memory = GuestMemory(0x10000)
    memory.write(BUF, b"\xaa" * 200)
    queue.queue_hotplug(HotplugAction.ADD, 0x10000001)
    queue.queue_hotplug(HotplugAction.ADD, 0x10000002)
    queue.queue_epow_shutdown()
    pulses.clear()
    # a buffer length of 16 is ignored: the whole 116-byte log is written
    encode_call(memory, ARGS, 0x200E, [0x500, 0, EventMask.HOT_PLUG, 0, BUF, 16], 1)
    call = RtasCall.decode(memory, ARGS, 0)
    queue.rtas_check_exception(call)
    assert call.status == 0
    assert memory.read(BUF + 116, 4) == b"\xaa" * 4
    assert decode_event_log(memory.read(BUF, 116)).hotplug.drc_index == 0x10000001  # type: ignore[union-attr]
    # both classes still hold entries: both are pulsed again, in class order
    assert pulses == [SPAPR_IRQ_EPOW, SPAPR_IRQ_HOTPLUG]
    pulses.clear()
    assert check_exception(queue, memory, EventMask.EPOW) == 0
    assert decode_event_log(memory.read(BUF, 116)).epow is not None
    assert pulses == [SPAPR_IRQ_HOTPLUG]


def test_event_scan_pulses_pending_classes_and_returns_no_errors() -> None:
    queue, pulses = make_queue()
    memory = GuestMemory(0x10000)
    encode_call(memory, ARGS, 0x200F, [0xFFFFFFFF, 0, BUF, 2048], 1)
    call = RtasCall.decode(memory, ARGS, 0)
    queue.rtas_event_scan(call)
    assert (call.status, pulses) == (RtasStatus.NO_ERRORS_FOUND, [])
    queue.queue_hotplug(HotplugAction.ADD, 0x10000002)
    pulses.clear()
    queue.rtas_event_scan(call)
    assert (call.status, pulses) == (RtasStatus.NO_ERRORS_FOUND, [SPAPR_IRQ_EPOW])
    assert len(queue) == 1  # event-scan never returns an event


def test_argument_count_checks() -> None:
    queue, _ = make_queue()
    memory = GuestMemory(0x10000)
    queue.queue_hotplug(HotplugAction.ADD, 0x10000002)
    assert check_exception(queue, memory, EventMask.EPOW, nargs=5) == RtasStatus.PARAM_ERROR
    assert len(queue) == 1
    assert check_exception(queue, memory, EventMask.EPOW, nargs=7) == RtasStatus.SUCCESS
    encode_call(memory, ARGS, 0x200F, [0, 0, BUF], 1)
    call = RtasCall.decode(memory, ARGS, 0)
    queue.rtas_event_scan(call)
    assert call.status == RtasStatus.PARAM_ERROR


def test_cas_drops_only_hotplug_entries_reset_drops_all_plids_keep_counting() -> None:
    queue, _ = make_queue()
    first = queue.queue_hotplug(HotplugAction.ADD, 0x10000002)
    queue.queue_epow_shutdown()
    queue.queue_hotplug(HotplugAction.REMOVE, 0x10000002)
    queue.clear_hotplug()
    assert [e.summary & 0xFF for e in queue] == [0x40]
    queue.clear_all()
    assert len(queue) == 0
    later = queue.queue_hotplug(HotplugAction.ADD, 0x10000003)
    assert decode_event_log(first.to_bytes()).plid == 0
    assert decode_event_log(later.to_bytes()).plid == 3


def test_vmstate_round_trip() -> None:
    queue, _ = make_queue()
    queue.hp_evt_negotiated = True
    queue.queue_hotplug(HotplugAction.ADD, 0x10000002)
    state = queue.vmstate()
    other, _ = make_queue()
    other.load_vmstate(state)
    assert list(other) == list(queue) and other.hp_evt_negotiated
