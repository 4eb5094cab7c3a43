"""The event sources and the pending-event queue behind check-exception and event-scan.

QEMU keeps one FIFO of RTAS error-log entries. Hotplug entries belong to the
hot-plug-events source only once the guest negotiated OV5_HP_EVT at CAS; until then
they travel through the EPOW source (protocol.md §5.2). Routing is evaluated both
when an entry is queued (which IRQ to pulse) and when the guest dequeues it (which
mask matches). Interrupts are edge (MSI) and raised by pulsing; after a successful
check-exception, and on every event-scan, every class that still holds entries is
pulsed again.
"""

from __future__ import annotations

import collections
import enum
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from rtas import RtasCall
from rtas.codes import RtasStatus
from rtas.errlog import (
    EventLogEntry,
    HotplugAction,
    HotplugIdType,
    HotplugResource,
    decode_event_log,
    epow_event,
    hotplug_event,
)
from rtas.tokens import RtasToken
from spapr.trace import TraceRecorder

#: RTAS log type byte of hotplug and EPOW entries (summary & 0xFF).
LOG_TYPE_EPOW = 0x40
LOG_TYPE_HOTPLUG = 0xE5
#: Fixed IRQ numbers of the two event sources (SPAPR_IRQ_EPOW, SPAPR_IRQ_HOTPLUG).
SPAPR_IRQ_EPOW = 0x1000
SPAPR_IRQ_HOTPLUG = 0x1001
#: Pending entries past which an identical hotplug request is not queued again.
MAX_PENDING = 64
#: Pending entries an ``event_queue`` trace event lists (the rest are counted).
TRACE_PENDING_SHOWN = 8

RtasRegister = Callable[[int, str, Callable[[RtasCall], None]], None]


class EventClass(enum.IntEnum):
    """PAPR event classes, in /event-sources order; mask = 1 << (31 - class)."""

    INTERNAL_ERRORS = 0
    EPOW = 1
    RESERVED = 2
    HOT_PLUG = 3
    IO = 4

    @property
    def mask(self) -> int:
        return 1 << (31 - self.value)

    @property
    def node_name(self) -> str:
        return _CLASS_NODE_NAMES[self]


_CLASS_NODE_NAMES = {
    EventClass.INTERNAL_ERRORS: "internal-errors",
    EventClass.EPOW: "epow-events",
    EventClass.RESERVED: "",
    EventClass.HOT_PLUG: "hot-plug-events",
    EventClass.IO: "ibm,io-events",
}

#: Broken-down guest RTC time: (year, month, day), (hour, minute, second).
RtcTime = tuple[tuple[int, int, int], tuple[int, int, int]]


@attrs.frozen
class EventSource:
    """An enabled event class and the IRQ it raises."""

    event_class: EventClass
    irq: int


@attrs.define
class PlidCounter:
    """QEMU's platform log id counter: process-wide, starts at 0, never reset."""

    next_plid: int = 0

    def take(self) -> int:
        plid = self.next_plid
        self.next_plid = (plid + 1) & 0xFFFFFFFF
        return plid


@attrs.define
class EventQueue:
    """The pending-event FIFO, the enabled sources and the OV5_HP_EVT routing switch."""

    pulse_irq: Callable[[int], None]
    rtc: Callable[[], RtcTime]
    modern_hotplug_events: bool = True
    epow_irq: int = SPAPR_IRQ_EPOW
    hotplug_irq: int = SPAPR_IRQ_HOTPLUG
    plids: PlidCounter = attrs.field(factory=PlidCounter)
    #: Whether the guest negotiated OV5_HP_EVT (the dedicated hotplug source) at CAS.
    hp_evt_negotiated: bool = False
    pending: collections.deque[EventLogEntry] = attrs.field(factory=collections.deque)
    #: Where the project's ``event_queue`` event goes after every change (None: nowhere).
    trace: TraceRecorder | None = attrs.field(default=None, repr=False)
    #: First pending entry by request, how many entries it covers, the first and the
    #: last of those (see :meth:`_request_index`).
    _index: tuple[
        dict[tuple[Any, ...] | None, EventLogEntry], int, EventLogEntry | None, EventLogEntry | None
    ] = attrs.field(factory=lambda: ({}, 0, None, None), init=False, repr=False, eq=False)
    #: Decoded requests of pending entries, by entry id (see :meth:`_request_of`).
    _requests: dict[int, tuple[EventLogEntry, tuple[Any, ...] | None]] = attrs.field(
        factory=dict, init=False, repr=False, eq=False
    )

    def _trace_change(self, op: str, entry: EventLogEntry | None = None) -> None:
        """``event_queue``: what changed (``op``, the entry) and every pending entry now.

        Each entry is described as the machine routes it right now (class, IRQ) with
        its bytes, so a reader of the trace need not know the routing rule.
        """
        if self.trace is None or not self.trace.active():
            return
        if len(self.pending) <= TRACE_PENDING_SHOWN:
            self.trace.emit(
                "event_queue",
                op=op,
                entry=None if entry is None else self._describe(entry),
                pending=[self._describe(e) for e in self.pending],
            )
            return
        # a long queue: the oldest entries (check-exception's next) and the count, so
        # one event stays small however long the queue grows
        shown = itertools.islice(self.pending, TRACE_PENDING_SHOWN)
        self.trace.emit(
            "event_queue",
            op=op,
            entry=None if entry is None else self._describe(entry),
            pending=[self._describe(e) for e in shown],
            pending_total=len(self.pending),
        )

    def _describe(self, entry: EventLogEntry) -> dict[str, object]:
        source = self.route(entry)
        return {
            "source": source.event_class.node_name,
            "irq": source.irq,
            "log": entry.to_bytes().hex(),
        }

    # --- sources -----------------------------------------------------------------

    def sources(self) -> list[EventSource]:
        """Enabled sources in class order (what /event-sources lists)."""
        out = [EventSource(EventClass.EPOW, self.epow_irq)]
        if self.modern_hotplug_events:
            out.append(EventSource(EventClass.HOT_PLUG, self.hotplug_irq))
        return out

    def route(self, entry: EventLogEntry) -> EventSource:
        """The source an entry belongs to right now (hotplug → EPOW until negotiated)."""
        log_type = entry.summary & 0xFF
        if log_type == LOG_TYPE_HOTPLUG and self.hp_evt_negotiated:
            return EventSource(EventClass.HOT_PLUG, self.hotplug_irq)
        if log_type in (LOG_TYPE_HOTPLUG, LOG_TYPE_EPOW):
            return EventSource(EventClass.EPOW, self.epow_irq)
        raise ValueError(f"no event source for log type 0x{log_type:02x}")

    # --- producers ---------------------------------------------------------------

    def queue(self, entry: EventLogEntry) -> None:
        """Append an entry and pulse its source's IRQ (nothing queued if either fails)."""
        self.pending.append(entry)
        try:
            self._trace_change("queued", entry)
            self.pulse_irq(self.route(entry).irq)
        except BaseException:
            if self.pending and self.pending[-1] is entry:
                self.pending.pop()
            raise

    def _pending_request(
        self, action: HotplugAction, drc_index: int, resource: HotplugResource
    ) -> EventLogEntry | None:
        """A pending hotplug entry asking exactly this, if the queue is at its bound."""
        if len(self.pending) < MAX_PENDING:
            return None
        return self._request_index().get((action, drc_index, resource))

    def _request_index(self) -> dict[tuple[Any, ...] | None, EventLogEntry]:
        """The first pending entry of each request, kept as the queue grows.

        The index covers the first ``n`` pending entries; entries appended since are
        added to it. When the queue changed otherwise (an entry taken, a reset), its
        first or ``n``-th entry is no longer the one indexed, and it is rebuilt.
        """
        pending = self.pending
        index, covered, first, last = self._index
        if not (
            covered
            and len(pending) >= covered
            and pending[0] is first
            and pending[covered - 1] is last
        ):
            index, covered = {}, 0
        for i in range(covered, len(pending)):
            entry = pending[i]
            index.setdefault(self._request_of(entry), entry)
        if pending:
            self._index = (index, len(pending), pending[0], pending[-1])
        else:
            self._index = ({}, 0, None, None)
        return index

    def _request_of(self, entry: EventLogEntry) -> tuple[Any, ...] | None:
        """(action, DRC index, resource) of a hotplug entry (None: not a hotplug entry).

        Decoded once per entry and remembered (a long queue is looked through on every
        request; decoding each entry every time made a request cost grow with it).
        """
        known = self._requests.get(id(entry))
        if known is not None and known[0] is entry:
            return known[1]
        hotplug = decode_event_log(entry.to_bytes()).hotplug
        request = None if hotplug is None else (hotplug.action, hotplug.drc_index, hotplug.resource)
        if len(self._requests) > 4 * MAX_PENDING + 2 * len(self.pending):
            # forget entries no longer pending (ids of dropped entries can be reused)
            live = {id(e) for e in self.pending}
            self._requests = {k: v for k, v in self._requests.items() if k in live}
        self._requests[id(entry)] = (entry, request)
        return request

    def queue_hotplug(
        self,
        action: HotplugAction,
        drc_index: int,
        resource: HotplugResource = HotplugResource.CPU,
    ) -> EventLogEntry:
        """Queue an ADD/REMOVE-by-DRC-index request (the only kind CPUs use).

        QEMU queues every request; so does this model up to :data:`MAX_PENDING`
        entries. Past that, a request identical to one still pending is not queued
        again (its interrupt is pulsed again): a client repeating ``device_del`` while
        the guest is stopped must not grow the queue without bound.
        """
        same = self._pending_request(action, drc_index, resource)
        if same is not None:
            self._trace_change("coalesced", same)
            self.pulse_irq(self.route(same).irq)
            return same
        next_plid = self.plids.next_plid
        try:
            return self._queue_new_hotplug(action, drc_index, resource)
        except BaseException:
            self.plids.next_plid = next_plid  # all or nothing, the PLID counter included
            raise

    def _queue_new_hotplug(
        self, action: HotplugAction, drc_index: int, resource: HotplugResource
    ) -> EventLogEntry:
        date, time = self.rtc()
        entry = hotplug_event(
            resource,
            action,
            HotplugIdType.DRC_INDEX,
            drc_index=drc_index,
            plid=self.plids.take(),
            date=date,
            time=time,
        )
        self.queue(entry)
        return entry

    def queue_epow_shutdown(self) -> EventLogEntry:
        """Queue the EPOW power-down request that ``system_powerdown`` raises."""
        date, time = self.rtc()
        entry = epow_event(plid=self.plids.take(), date=date, time=time)
        self.queue(entry)
        return entry

    # --- consumers ---------------------------------------------------------------

    def contains(self, mask: int) -> bool:
        """Whether some pending entry's current class intersects ``mask``."""
        return any(self.route(e).event_class.mask & mask for e in self.pending)

    def dequeue(self, mask: int) -> EventLogEntry | None:
        """Remove and return the oldest entry whose current class intersects ``mask``."""
        for i, entry in enumerate(self.pending):
            if self.route(entry).event_class.mask & mask:
                del self.pending[i]
                self._trace_change("dequeued", entry)
                return entry
        return None

    def repulse(self) -> None:
        """Pulse the IRQ of every class that still holds entries (edge re-assertion)."""
        for source in self.sources():
            if self.contains(source.event_class.mask):
                self.pulse_irq(source.irq)

    def clear_all(self) -> None:
        """Machine reset: every pending entry is discarded."""
        had = bool(self.pending)
        self.pending.clear()
        if had:
            self._trace_change("cleared")

    def clear_hotplug(self) -> None:
        """CAS: hotplug entries are discarded (DRCs were just reset to match)."""
        kept = [e for e in self.pending if (e.summary & 0xFF) != LOG_TYPE_HOTPLUG]
        dropped = len(self.pending) - len(kept)
        self.pending.clear()
        self.pending.extend(kept)
        if dropped:
            self._trace_change("cleared")

    def __iter__(self) -> Iterator[EventLogEntry]:
        return iter(self.pending)

    def __len__(self) -> int:
        return len(self.pending)

    # --- RTAS ----------------------------------------------------------------------

    def rtas_check_exception(self, call: RtasCall) -> None:
        """check-exception: nargs 6 or 7, nret 1; writes the whole entry (length ignored)."""
        if not 6 <= call.nargs <= 7 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        mask = call.args[2]
        buf = call.args[4]
        entry = self.dequeue(mask)
        if entry is None:
            call.set_ret(0, RtasStatus.NO_ERRORS_FOUND)
            return
        call.memory.write_clipped(buf, entry.to_bytes())
        call.set_ret(0, RtasStatus.SUCCESS)
        self.repulse()

    def rtas_event_scan(self, call: RtasCall) -> None:
        """event-scan: never returns an event; re-pulses pending classes, returns 1."""
        if call.nargs != 4 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        self.repulse()
        call.set_ret(0, RtasStatus.NO_ERRORS_FOUND)

    def register_rtas(self, register: RtasRegister) -> None:
        """Register check-exception and event-scan with an RTAS dispatcher."""
        register(RtasToken.CHECK_EXCEPTION, "check-exception", self.rtas_check_exception)
        register(RtasToken.EVENT_SCAN, "event-scan", self.rtas_event_scan)

    # --- migration -----------------------------------------------------------------

    def vmstate(self) -> dict[str, object]:
        """What QEMU migrates (spapr_pending_events) plus the negotiated routing bit."""
        return {
            "pending": [{"summary": e.summary, "extended": e.extended.hex()} for e in self.pending],
            "hp_evt_negotiated": self.hp_evt_negotiated,
        }

    def load_vmstate(self, state: dict[str, object]) -> None:
        pending = state["pending"]
        assert isinstance(pending, list)
        self.pending.clear()
        for item in pending:
            self.pending.append(
                EventLogEntry(int(item["summary"]), bytes.fromhex(item["extended"]))
            )
        self.hp_evt_negotiated = bool(state["hp_evt_negotiated"])
        self._trace_change("migration")
