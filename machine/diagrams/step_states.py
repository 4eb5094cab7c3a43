"""What the machine looks like after each step of a handshake, folded from its trace.

The machine records its state as it changes — ``drc_state`` (every indicator of a
CPU connector after each operation), ``vcpu_added`` / ``vcpu_state`` /
``vcpu_removed``, ``event_queue`` (every pending entry after each change),
``rtas_call`` and ``rtas_output`` (what a call left in guest memory) — so a snapshot
is only the latest of each record: nothing here re-decides a protocol question. The
few decodings done here are the guest's reading of what it was handed: the event
log (with rtas' own decoder) and the configure-connector answers, laid out as the
device-tree fragment the guest has walked so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from machine.diagrams import words
from rtas.codes import ConfigureConnector
from rtas.errlog import (
    EVENT_LOG_HEADER_SIZE,
    FIRST_SECTION_OFFSET,
    EventLogError,
    LogSummary,
    decode_event_log,
)
from spapr.trace import TraceEvent

#: What each v6 section id stands for.
SECTION_TITLES: Mapping[str, str] = {
    "PH": "private header (Main-A)",
    "UH": "user header (Main-B)",
    "HP": "hotplug",
    "EP": "EPOW",
}
_EVENT_TYPES = {LogSummary.TYPE_HOTPLUG: "hotplug", LogSummary.TYPE_EPOW: "EPOW"}
_HEX_ROW = 16


@attrs.frozen
class DrcView:
    """One CPU connector as its last ``drc_state`` left it."""

    index: int
    name: str
    state: str
    isolation: str | None
    allocation: str | None
    indicator: str | None
    sense: str
    attached: bool
    unplug_requested: bool
    #: The operation that produced this state, and its code (None: a host operation).
    last_op: str
    last_code: int | None


@attrs.frozen
class HexRegion:
    """A labelled part of a hex dump: its label, first offset and rows of 16 bytes."""

    label: str
    offset: int
    rows: tuple[str, ...]


@attrs.frozen
class EventLogView:
    """The event log check-exception handed over: labelled bytes and decoded fields."""

    buffer: int
    regions: tuple[HexRegion, ...]
    fields: tuple[tuple[str, str], ...]


@attrs.frozen
class WorkAreaView:
    """The configure-connector work area after a call: the node or property it names."""

    address: int
    index: int
    kind: str | None
    item: str | None
    value: str | None


@attrs.frozen
class RtasView:
    """The latest RTAS call: who made it, in words, and what it handed over."""

    event: int
    t: int
    vcpu: int
    words: words.CallWords
    #: rets[0] as the guest read it (None: the call wrote none).
    status: int | None
    event_log: EventLogView | None = None
    work_area: WorkAreaView | None = None


@attrs.frozen
class FragmentView:
    """The device-tree fragment of the latest configure-connector walk, as far as walked."""

    index: int
    lines: tuple[str, ...]
    calls: int
    complete: bool


@attrs.frozen
class Snapshot:
    """The machine after one step."""

    drcs: tuple[DrcView, ...]
    #: (vCPU id, scheduler state) of every existing vCPU.
    vcpus: tuple[tuple[int, str], ...]
    #: Pending event-queue entries in words, oldest first.
    queue: tuple[str, ...]
    rtas: RtasView | None
    fragment: FragmentView | None


def _hex_rows(data: bytes, start: int, end: int) -> tuple[str, ...]:
    return tuple(
        f"{offset:04x}  " + " ".join(f"{b:02x}" for b in data[offset : min(offset + _HEX_ROW, end)])
        for offset in range(start, end, _HEX_ROW)
    )


def event_log_view(buffer: int, data: bytes) -> EventLogView:
    """A labelled hex dump of an event log and its fields, read by rtas' decoder."""
    try:
        log = decode_event_log(data)
    except EventLogError as err:
        region = HexRegion("bytes (not a readable event log)", 0, _hex_rows(data, 0, len(data)))
        return EventLogView(buffer, (region,), (("error", str(err)),))
    end = EVENT_LOG_HEADER_SIZE + log.extended_length
    bounds = [
        ("log header: summary word, extended length", 0, EVENT_LOG_HEADER_SIZE),
        ("v6 extended-log header", EVENT_LOG_HEADER_SIZE, FIRST_SECTION_OFFSET),
    ]
    offset = FIRST_SECTION_OFFSET
    for section in log.section_ids:  # the decoder checked every length on this walk
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        title = SECTION_TITLES.get(section, "section")
        bounds.append((f"section {section}: {title}", offset, offset + length))
        offset += length
    if end < len(data):
        bounds.append(("after the log", end, len(data)))
    regions = tuple(HexRegion(label, a, _hex_rows(data, a, b)) for label, a, b in bounds)
    fields: list[tuple[str, str]] = [
        ("summary", words.hex_number(log.summary)),
        ("version", str(log.version)),
        ("severity", str(log.severity)),
        ("disposition", str(log.disposition)),
        ("initiator", str(log.initiator)),
        ("type", f"0x{log.event_type:02x} {_EVENT_TYPES.get(log.event_type, '')}".rstrip()),
        ("extended length", str(log.extended_length)),
        ("sections", " ".join(log.section_ids)),
    ]
    if log.plid is not None:
        fields.append(("plid", str(log.plid)))
    if log.creation_date is not None and log.creation_time is not None:
        (y, mo, d), (h, mi, s) = log.creation_date, log.creation_time
        fields.append(("created", f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"))
    if log.hotplug is not None:
        hp = log.hotplug
        fields += [
            ("resource", words.words(hp.resource.name)),
            ("action", words.words(hp.action.name)),
            ("id type", words.words(hp.id_type.name)),
        ]
        if hp.drc_index is not None:
            fields.append(("drc index", words.drc_label(hp.drc_index)))
        if hp.count is not None:
            fields.append(("count", str(hp.count)))
    if log.epow is not None:
        fields.append(("epow action", str(log.epow.sensor_value & 0xF)))
    return EventLogView(buffer, regions, tuple(fields))


class StateFold:
    """The latest of every recorded fact, advanced one trace event at a time."""

    def __init__(self) -> None:
        self.drcs: dict[int, DrcView] = {}
        self.vcpus: dict[int, str] = {}
        self.queue: tuple[str, ...] = ()
        self.rtas: RtasView | None = None
        self._walk: list[str] = []
        self._walk_index = 0
        self._walk_calls = 0
        self._walk_complete = False
        self._depth = 0

    def apply(self, index: int, event: TraceEvent) -> None:
        """Take one event into account (``index`` is its position in the trace)."""
        f = event.fields
        name = event.name
        if name == "drc_state":
            self.drcs[f["index"]] = DrcView(
                index=f["index"],
                name=words.cpu_drc_name(f["index"]),
                state=f["new"],
                isolation=f.get("isolation"),
                allocation=f.get("allocation"),
                indicator=f.get("indicator"),
                sense=f["sense"],
                attached=bool(f["attached"]),
                unplug_requested=bool(f["unplug_requested"]),
                last_op=f["op"],
                last_code=f.get("code"),
            )
        elif name == "vcpu_added":
            self.vcpus[f["vcpu"]] = f.get("state", "STOPPED")
        elif name == "vcpu_state":
            self.vcpus[f["vcpu"]] = f["new"]
        elif name == "vcpu_removed":
            self.vcpus.pop(f["vcpu"], None)
        elif name == "event_queue":
            self.queue = tuple(words.pending_entry_words(e) for e in f.get("pending", []))
        elif name == "rtas_call":
            rets = f.get("rets") or []
            call = words.describe_call(f["name"], f.get("args", []), rets)
            self.rtas = RtasView(index, event.t, f["vcpu"], call, rets[0] if rets else None)
        elif name == "rtas_output" and self.rtas is not None:
            self._output(f)

    def _output(self, f: Mapping[str, Any]) -> None:
        assert self.rtas is not None
        if f.get("event_log"):
            view = event_log_view(f["buffer"], bytes.fromhex(f["event_log"]))
            self.rtas = attrs.evolve(self.rtas, event_log=view)
            return
        if "work_area" not in f:
            return
        value = f.get("value")
        text = None if value is None else words.property_value_text(bytes.fromhex(value))
        area = WorkAreaView(f["work_area"], f["index"], f.get("kind"), f.get("item"), text)
        self.rtas = attrs.evolve(self.rtas, work_area=area)
        self._walk_step(area)

    def _walk_step(self, area: WorkAreaView) -> None:
        """Lay the answer out as the guest builds the fragment (PAPR's walk order)."""
        assert self.rtas is not None
        code = self.rtas.status
        if area.kind == "node" and self._depth == 0:  # a new walk begins
            self._walk, self._walk_index, self._walk_calls = [], area.index, 0
            self._walk_complete = False
        self._walk_calls += 1
        pad = "  " * self._depth
        if area.kind == "node":
            self._walk.append(f"{pad}{area.item} {{")
            self._depth += 1
        elif area.kind == "property":
            value = f" = {area.value}" if area.value else ""
            self._walk.append(f"{pad}{area.item}{value};")
        elif code in (ConfigureConnector.PREV_PARENT, ConfigureConnector.SUCCESS):
            self._depth = max(0, self._depth - 1)
            self._walk.append("  " * self._depth + "};")
            self._walk_complete = code == ConfigureConnector.SUCCESS
        elif code is not None and code < 0:
            self._walk.append(f"{pad}(walk refused: {self.rtas.words.status})")
            self._depth = 0

    def snapshot(self) -> Snapshot:
        fragment = (
            FragmentView(self._walk_index, tuple(self._walk), self._walk_calls, self._walk_complete)
            if self._walk
            else None
        )
        return Snapshot(
            drcs=tuple(self.drcs[i] for i in sorted(self.drcs)),
            vcpus=tuple(sorted(self.vcpus.items())),
            queue=self.queue,
            rtas=self.rtas,
            fragment=fragment,
        )


def snapshots_at(events: Sequence[TraceEvent], indexes: Sequence[int]) -> list[Snapshot]:
    """The machine after each of the given trace events (indexes in ascending order)."""
    fold = StateFold()
    out: list[Snapshot] = []
    done = -1
    cached: Snapshot | None = None
    for index in indexes:
        if index < done:
            raise ValueError("snapshot indexes must not decrease")
        if index == done and cached is not None:
            out.append(cached)
            continue
        for i in range(done + 1, index + 1):
            fold.apply(i, events[i])
        done = index
        cached = fold.snapshot()
        out.append(cached)
    return out
