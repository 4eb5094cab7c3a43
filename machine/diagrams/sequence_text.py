"""A text sequence diagram of a handshake, drawn from the trace.

Three lanes — the management client, the machine (QEMU's side) and the guest — and
one row per message between them: host commands (``host_command``), QMP events
(``qmp_event``), interrupts raised towards the guest (``xics_ics_set_irq_msi`` of an
unmasked or masked source) and every RTAS call with its arguments and status
(``rtas_call``). Internal transitions (``spapr_drc_*``) are shown as notes on the
machine's lane (CPU connectors only), so a reader can follow a DRC from U to C and
back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spapr.drc import DrcType
from spapr.trace import TraceEvent

#: Column where each lane's text starts.
MGMT, MACHINE, GUEST = 12, 40, 78
#: The DRC transitions drawn as notes on the machine lane.
NOTE_EVENTS = (
    "spapr_drc_attach",
    "spapr_drc_set_allocation_state",
    "spapr_drc_set_isolation_state",
    "spapr_drc_set_configured",
    "spapr_drc_unplug_request",
    "spapr_drc_awaiting_quiesce",
    "spapr_drc_reset",
)
_ALLOCATION = {0: "UNUSABLE", 1: "USABLE"}
_ISOLATION = {0: "ISOLATED", 1: "UNISOLATED"}


#: Arguments printed in decimal whatever their size (sensor and indicator types).
_DECIMAL_ARGS = {"set-indicator": (0,), "get-sensor-state": (0,)}


def _hexes(values: Sequence[object], decimal: Sequence[int] = ()) -> str:
    """Arguments as a reader expects them: addresses and DRC indexes in hex, the rest decimal."""
    return ", ".join(
        f"0x{v:x}" if isinstance(v, int) and v >= 0x400 and i not in decimal else str(v)
        for i, v in enumerate(values)
    )


def _row(t: int, column: int, text: str) -> str:
    stamp = f"{t / 1e6:10.3f}"
    return (stamp + " " * max(1, column - len(stamp)) + text).rstrip()


def _describe(event: TraceEvent) -> tuple[int, str] | None:
    f = event.fields
    name = event.name
    if name == "host_command":
        return MGMT, f"{f['command']} {_args(f.get('args', {}))} ──────►"
    if name == "qmp_event":
        return MGMT, f"◄────── {f['name']} {_args(f.get('data', {}))}"
    if name == "rtas_call":
        args = _hexes(f.get("args", []), _DECIMAL_ARGS.get(f["name"], ()))
        rets = f.get("rets") or []
        status = rets[0] if rets else "-"
        extra = f" {_hexes(rets[1:])}" if len(rets) > 1 else ""
        return MACHINE, f"◄────── [vcpu {f['vcpu']}] {f['name']}({args}) = {status}{extra}"
    if name == "xics_ics_set_irq_msi":
        return MACHINE, f"irq 0x{f['nr']:x} ──────►"
    if name in NOTE_EVENTS and f["index"] >> 28 == DrcType.CPU.shift:
        label = name.removeprefix("spapr_drc_").replace("_", " ")
        detail = ""
        if name == "spapr_drc_set_allocation_state":
            detail = f" {_ALLOCATION.get(f['state'], f['state'])}"
        elif name == "spapr_drc_set_isolation_state":
            detail = f" {_ISOLATION.get(f['state'], f['state'])}"
        return MACHINE, f"  (drc 0x{f['index']:x}: {label}{detail})"
    return None


def _args(args: object) -> str:
    if isinstance(args, dict):
        return " ".join(f"{k}={v}" for k, v in args.items())
    return str(args)


def sequence_diagram(events: Iterable[TraceEvent], *, since_ns: int = 0) -> list[str]:
    """The diagram's lines for the events at or after ``since_ns`` (virtual time)."""
    header = (
        f"{'t (ms)':>10}"
        + " " * (MGMT - 10)
        + "management".ljust(MACHINE - MGMT)
        + "machine".ljust(GUEST - MACHINE)
        + "guest"
    )
    lines = [header]
    previous_pulse: tuple[int, int] | None = None
    last_text: str | None = None
    repeats = 0
    first_t = 0
    for event in events:
        if event.t < since_ns:
            continue
        described = _describe(event)
        if described is None:
            continue
        if event.name == "xics_ics_set_irq_msi":
            # a pulse sets then clears the line: one arrow per pulse
            key = (event.t, event.fields["nr"])
            if previous_pulse == key:
                previous_pulse = None
                continue
            previous_pulse = key
        column, text = described
        if text == last_text:
            # consecutive identical calls (a configure-connector walk): one row, counted
            repeats += 1
            lines[-1] = _row(first_t, column, f"{text}  ×{repeats + 1}")
            continue
        last_text, repeats, first_t = text, 0, event.t
        lines.append(_row(event.t, column, text))
    return lines
