"""One trace recorder for the whole machine, with QEMU's trace-event names and texts.

Every state change in the model emits a named event here: QEMU's own events
(``spapr_drc_attach``, ``xics_ics_set_irq_msi``, ...) with QEMU's message format,
and this project's guest-side events (``rtas_call``, ``vcpu_state``, ...). The
recorder keeps them in memory with their virtual time, renders QEMU's log line
format (``-trace``/``-D``) and exports JSON lines (``-trace-json``).
"""

from __future__ import annotations

import fnmatch
import json
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


@attrs.define
class _Subscription:
    sink: TraceSink
    patterns: tuple[str, ...]
    cache: dict[str, bool] = attrs.field(factory=dict)

    def wants(self, name: str) -> bool:
        hit = self.cache.get(name)
        if hit is None:
            hit = any(fnmatch.fnmatchcase(name, p) for p in self.patterns)
            self.cache[name] = hit
        return hit


class TraceRecorder:
    """Collects trace events on virtual time and fans them out to subscribed sinks.

    ``keep`` controls the in-memory log (on by default: the step-by-step view and
    the tests read it); sinks (a ``-D`` file, a JSON-lines file, a live printer)
    receive only the events matching their glob patterns, like QEMU's ``-trace``.
    """

    def __init__(self, clock: Callable[[], int] | None = None, *, keep: bool = True) -> None:
        self._clock: Callable[[], int] = clock if clock is not None else (lambda: 0)
        self.keep = keep
        self.events: list[TraceEvent] = []
        self._subs: list[_Subscription] = []

    def set_clock(self, clock: Callable[[], int]) -> None:
        """Use ``clock`` (virtual nanoseconds) to time-stamp later events."""
        self._clock = clock

    def now(self) -> int:
        return self._clock()

    def subscribe(self, sink: TraceSink, patterns: Iterable[str] = ("*",)) -> None:
        """Send every later event whose name matches one of ``patterns`` to ``sink``."""
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
            self.events.append(event)
        for sub in self._subs:
            if sub.wants(event_name):
                sub.sink(event)

    def select(self, pattern: str = "*") -> list[TraceEvent]:
        """Recorded events whose name matches ``pattern``."""
        return [e for e in self.events if fnmatch.fnmatchcase(e.name, pattern)]

    def qemu_lines(self, pattern: str = "*") -> list[str]:
        """Recorded events as QEMU log lines."""
        return [e.qemu_line() for e in self.select(pattern)]

    def to_jsonl(self, pattern: str = "*") -> str:
        """Recorded events as JSON lines (compact, keys in emission order)."""
        return "".join(
            json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in self.select(pattern)
        )

    def clear(self) -> None:
        self.events.clear()
