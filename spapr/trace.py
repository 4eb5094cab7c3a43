"""One trace recorder for the whole machine, with QEMU's trace-event names and texts.

Every state change in the model emits a named event here: QEMU's own events
(``spapr_drc_attach``, ``xics_ics_set_irq_msi``, ...) with QEMU's message format,
and this project's guest-side events (``rtas_call``, ``vcpu_state``, ...). The
recorder keeps the recent ones in memory with their virtual time (a bounded ring:
a machine that runs for days must not grow), renders QEMU's log line format
(``-trace``/``-D``) and exports JSON lines (``-trace-json``), where a whole run is
kept when someone asks for it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

#: Message formats of QEMU 7.2's trace events (hw/ppc, hw/intc, monitor), as
#: Python format strings over the event's fields.
QEMU_TRACE_FORMATS: dict[str, str] = {
    "spapr_drc_set_isolation_state": "drc: 0x{index:x}, state: 0x{state:x}",
    "spapr_drc_set_isolation_state_finalizing": "drc: 0x{index:x}",
    "spapr_drc_set_dr_indicator": "drc: 0x{index:x}, state: 0x{state:x}",
    "spapr_drc_set_allocation_state": "drc: 0x{index:x}, state: 0x{state:x}",
    "spapr_drc_set_allocation_state_finalizing": "drc: 0x{index:x}",
    "spapr_drc_set_configured": "drc: 0x{index:x}",
    "spapr_drc_attach": "drc: 0x{index:x}",
    "spapr_drc_unplug_request": "drc: 0x{index:x}",
    "spapr_drc_awaiting_quiesce": "drc: 0x{index:x}",
    "spapr_drc_reset": "drc: 0x{index:x}",
    "spapr_drc_realize": "drc: 0x{index:x}",
    "spapr_drc_realize_child": "drc: 0x{index:x}, child name: {childname}",
    "spapr_drc_realize_complete": "drc: 0x{index:x}",
    "spapr_drc_unrealize": "drc: 0x{index:x}",
    "spapr_rtas_get_sensor_state_not_supported": "sensor index: 0x{index:x}, type: {type}",
    "spapr_rtas_get_sensor_state_invalid": "sensor index: 0x{index:x}",
    "spapr_rtas_ibm_configure_connector_invalid": "DRC index: 0x{index:x}",
    "spapr_cas_pvr": "current=0x{cur_pvr:x}, explicit_match={explicit_match:d}, new=0x{new_pvr:x}",
    "spapr_cas_continue": "Copy changes to the guest: {n} bytes",
    "xics_icp_check_ipi": "CPU {server} can take IPI mfrr=0x{mfrr:x}",
    "xics_icp_accept": "icp_accept: XIRR 0x{old_xirr:x}->0x{new_xirr:x}",
    "xics_icp_eoi": "icp_eoi: server {server} given XIRR 0x{xirr:x} new XIRR 0x{new_xirr:x}",
    "xics_icp_irq": "cpu {server} trying to deliver irq 0x{nr:x} priority 0x{priority:x}",
    "xics_icp_raise": "raising IRQ new XIRR=0x{xirr:x} new pending priority=0x{pending_priority:x}",
    "xics_ics_set_irq_msi": "set_irq_msi: srcno {srcno} [irq 0x{nr:x}]",
    "xics_masked_pending": "set_irq_msi: masked pending",
    "xics_ics_set_irq_lsi": "set_irq_lsi: srcno {srcno} [irq 0x{nr:x}]",
    "xics_ics_write_xive": "ics_write_xive: irq 0x{nr:x} [src {srcno}] server 0x{server:x} "
    "prio 0x{priority:x}",
    "xics_ics_reject": "reject irq 0x{nr:x} [src {srcno}]",
    "xics_ics_eoi": "ics_eoi: irq 0x{nr:x}",
    "spapr_xive_set_irq": "lisn=0x{lisn:x} val={val:d}",
    "spapr_xive_claim_irq": "lisn=0x{lisn:x} lsi={lsi:d}",
    "spapr_xive_free_irq": "lisn=0x{lisn:x}",
    "spapr_xive_get_source_info": "flags=0x{flags:x} lisn=0x{lisn:x}",
    "spapr_xive_set_source_config": "flags=0x{flags:x} lisn=0x{lisn:x} target=0x{target:x} "
    "priority=0x{priority:x} eisn=0x{eisn:x}",
    "spapr_xive_get_source_config": "flags=0x{flags:x} lisn=0x{lisn:x}",
    "spapr_xive_get_queue_info": "flags=0x{flags:x} target=0x{target:x} priority=0x{priority:x}",
    "spapr_xive_set_queue_config": "flags=0x{flags:x} target=0x{target:x} "
    "priority=0x{priority:x} qpage=0x{qpage:x} qsize=0x{qsize:x}",
    "spapr_xive_get_queue_config": "flags=0x{flags:x} target=0x{target:x} priority=0x{priority:x}",
    "spapr_xive_set_os_reporting_line": "flags=0x{flags:x}",
    "spapr_xive_get_os_reporting_line": "flags=0x{flags:x}",
    "spapr_xive_esb": "flags=0x{flags:x} lisn=0x{lisn:x} offset=0x{offset:x} data=0x{data:x}",
    "spapr_xive_sync": "flags=0x{flags:x} lisn=0x{lisn:x}",
    "spapr_xive_reset": "flags=0x{flags:x}",
    "kvm_xive_cpu_connect": "connect CPU{id:d} to KVM device",
    "kvm_xive_source_reset": "IRQ 0x{srcno:x}",
    "xive_source_esb_read": "@0x{addr:x} IRQ 0x{srcno:x} val=0x{val:x}",
    "xive_source_esb_write": "@0x{addr:x} IRQ 0x{srcno:x} val=0x{val:x}",
    "xive_router_end_notify": "END 0x{end_blk:02x}/0x{end_idx:04x} -> enqueue 0x{end_data:08x}",
    "xive_router_end_escalate": "END 0x{end_blk:02x}/0x{end_idx:04x} -> escalate END "
    "0x{esc_blk:02x}/0x{esc_idx:04x} data 0x{end_data:08x}",
    "xive_end_source_read": "END 0x{end_blk:x}/0x{end_idx:x} @0x{addr:x}",
    "xive_presenter_notify": "found NVT 0x{nvt_blk:x}/0x{nvt_idx:x} ring=0x{ring:x}",
    "xive_tctx_accept": "target={target:d} ring=0x{ring:x} IBP=0x{ipb:02x} PIPR=0x{pipr:02x} "
    "CPPR=0x{cppr:02x} NSR=0x{nsr:02x} ACK",
    "xive_tctx_notify": "target={target:d} ring=0x{ring:x} IBP=0x{ipb:02x} PIPR=0x{pipr:02x} "
    "CPPR=0x{cppr:02x} NSR=0x{nsr:02x} raise !",
    "xive_tctx_set_cppr": "target={target:d} ring=0x{ring:x} IBP=0x{ipb:02x} PIPR=0x{pipr:02x} "
    "new CPPR=0x{cppr:02x} NSR=0x{nsr:02x}",
    "xive_tctx_tm_read": "@0x{offset:x} sz={size:d} val=0x{val:x}",
    "xive_tctx_tm_write": "@0x{offset:x} sz={size:d} val=0x{val:x}",
    "handle_qmp_command": "mon {mon} req: {req}",
    "handle_hmp_command": "mon {mon:#x} cmdline: {cmdline}",
}


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(value)


@attrs.frozen(slots=True)
class TraceEvent:
    """One recorded event: virtual time (ns), name and named fields."""

    t: int
    name: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    def message(self) -> str:
        """The event's message in QEMU's format (project events: ``key=value`` pairs)."""
        fmt = QEMU_TRACE_FORMATS.get(self.name)
        if fmt is not None:
            return fmt.format(**self.fields)
        return " ".join(f"{k}={_format_value(v)}" for k, v in self.fields.items())

    def qemu_line(self) -> str:
        """The line QEMU's ``log`` trace backend writes: ``name message``."""
        return f"{self.name} {self.message()}"

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines form: ``t`` and ``event`` first, then the fields."""
        out: dict[str, Any] = {"t": self.t, "event": self.name}
        out.update(self.fields)
        return out


TraceSink = Callable[[TraceEvent], None]

#: Events kept in memory by default: about 200 hotplug cycles (a cycle is about 100
#: events of some 300 bytes each), the recent past ``trace show``, ``trace diagram``
#: and ``trace draw`` look at; ``-trace-json`` keeps a whole run on disk.
DEFAULT_KEEP = 20_000
#: Sink failures remembered (a sink that fails is dropped; these say why).
MAX_SINK_ERRORS = 16


@functools.lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in pattern))


def event_pattern_matches(pattern: str, name: str) -> bool:
    """Whether an event name matches a pattern as QEMU's ``-trace`` reads it.

    QEMU matches event names with GLib's simple patterns: ``*`` stands for any run of
    characters, ``?`` for one, and nothing else is special (``[c]`` or ``a|b`` are
    literal text, which no event name contains).
    """
    return _pattern_regex(pattern).fullmatch(name) is not None


def is_event_pattern(text: str) -> bool:
    """Whether ``-trace`` text is a pattern rather than one event's name."""
    return "*" in text or "?" in text


def selects(patterns: Iterable[str], name: str) -> bool:
    """Whether ``-trace`` options (in order) leave event ``name`` enabled.

    Each option enables the events it matches; one that starts with ``-`` disables
    the events the rest of it matches; later options override earlier ones.
    """
    enabled = False
    for pattern in patterns:
        if pattern.startswith("-"):
            if event_pattern_matches(pattern[1:], name):
                enabled = False
        elif event_pattern_matches(pattern, name):
            enabled = True
    return enabled


@attrs.define
class _Subscription:
    sink: TraceSink
    patterns: tuple[str, ...]
    cache: dict[str, bool] = attrs.field(factory=dict)

    def wants(self, name: str) -> bool:
        hit = self.cache.get(name)
        if hit is None:
            hit = selects(self.patterns, name)
            self.cache[name] = hit
        return hit


class TraceRecorder:
    """Collects trace events on virtual time and fans them out to subscribed sinks.

    ``keep`` bounds the in-memory log: True keeps the latest :data:`DEFAULT_KEEP`
    events, a number that many, False none. ``events`` is a plain list holding the
    latest ones (between ``keep`` and 1.5 × ``keep`` of them: the oldest are dropped
    in batches, so appending stays cheap); ``dropped`` counts what left it. Sinks (a
    ``-D`` file, a JSON-lines file, a live printer) receive every event matching
    their glob patterns, like QEMU's ``-trace``; a sink whose output fails (a closed
    pipe, a full disk) is dropped, as QEMU's log carries on after a failed write,
    and the machine never stops for it (``sink_errors`` says what failed).
    """

    def __init__(self, clock: Callable[[], int] | None = None, *, keep: bool | int = True) -> None:
        self._clock: Callable[[], int] = clock if clock is not None else (lambda: 0)
        capacity = DEFAULT_KEEP if keep is True else int(keep)
        self.capacity = max(0, capacity)
        self.keep = self.capacity > 0
        self.events: list[TraceEvent] = []
        self.dropped = 0
        self.sink_errors: list[str] = []
        self._trim_at = self.capacity + max(1, self.capacity // 2)
        self._subs: list[_Subscription] = []

    def set_clock(self, clock: Callable[[], int]) -> None:
        """Use ``clock`` (virtual nanoseconds) to time-stamp later events."""
        self._clock = clock

    def now(self) -> int:
        return self._clock()

    def subscribe(self, sink: TraceSink, patterns: Iterable[str] = ("*",)) -> None:
        """Send every later event that ``patterns`` select (:func:`selects`) to ``sink``."""
        self._subs.append(_Subscription(sink, tuple(patterns)))

    def active(self) -> bool:
        """Whether emitting costs anything (something keeps or receives events)."""
        return self.keep or bool(self._subs)

    def emit(self, event_name: str, /, **fields: Any) -> None:
        """Record one event now."""
        if not self.keep and not self._subs:
            return
        event = TraceEvent(self._clock(), event_name, fields)
        if self.keep:
            events = self.events
            events.append(event)
            if len(events) >= self._trim_at:
                excess = len(events) - self.capacity
                del events[:excess]
                self.dropped += excess
        failed: list[tuple[_Subscription, Exception]] = []
        for sub in self._subs:
            if sub.wants(event_name):
                try:
                    sub.sink(event)
                except (OSError, ValueError) as exc:
                    failed.append((sub, exc))
        for sub, problem in failed:
            self._sink_failed(sub, problem)

    def _sink_failed(self, sub: _Subscription, exc: Exception) -> None:
        """Drop a sink whose output failed; remember why (bounded)."""
        if sub in self._subs:
            self._subs.remove(sub)
        if len(self.sink_errors) < MAX_SINK_ERRORS:
            self.sink_errors.append(f"{getattr(sub.sink, '__name__', 'sink')}: {exc}")

    def select(self, *patterns: str) -> list[TraceEvent]:
        """Recorded events the patterns select as ``-trace`` options would (all: ``*``)."""
        chosen = patterns or ("*",)
        wanted: dict[str, bool] = {}
        out = []
        for e in self.events:
            hit = wanted.get(e.name)
            if hit is None:
                hit = wanted[e.name] = selects(chosen, e.name)
            if hit:
                out.append(e)
        return out

    def qemu_lines(self, *patterns: str) -> list[str]:
        """Recorded events as QEMU log lines."""
        return [e.qemu_line() for e in self.select(*patterns)]

    def to_jsonl(self, *patterns: str) -> str:
        """Recorded events as JSON lines (compact, keys in emission order)."""
        return "".join(
            json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in self.select(*patterns)
        )

    def clear(self) -> None:
        """Forget the kept events (sinks keep what they received)."""
        self.events.clear()
        self.dropped = 0
