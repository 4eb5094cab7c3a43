"""A text sequence diagram of a handshake, drawn from the trace.

Three lanes — the management client, the machine (QEMU's side) and the guest — and
one row per message between them: host commands (``host_command``), QMP events
(``qmp_event``), interrupts raised towards the guest (``xics_ics_set_irq_msi`` of an
unmasked or masked source under XICS, ``spapr_xive_set_irq`` raising a source under
XIVE, POWER9's and POWER10's mode) and every RTAS call with its arguments and status
(``rtas_call``), numbers and names printed as every picture prints them
(:mod:`machine.diagrams.words`). Internal transitions (``spapr_drc_*``) are shown as
notes on the machine's lane (CPU connectors only), so a reader can follow a DRC from U
to C and back.

Every other monitor command (``handle_hmp_command``: ``guest lscpu``, ``info ...``,
``stop``, ``trace diagram`` itself) is a row ``(hmp) LINE`` on the management lane at
the virtual time it ran, so a reader sees when each look happened relative to the
handshake; the commands the machine draws itself (the operations, the ``rtas`` calls
of ``-guest manual``) are not drawn twice.

Refusals are marked ✗: a host command the machine refused (its ``host_reply`` carries
the error) ends in ``──────✗`` followed by QEMU's message, a refused RTAS call's arrow
is ``◄───✗──``, and a transition the connector refused is noted with its code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

from machine.diagrams.words import describe_call, named
from rtas.codes import AllocationState, IsolationState, RtasStatus
from spapr.drc import DrcType, StateCause
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
#: The indicator value each ``spapr_drc_set_*_state`` note names.
_NOTE_VALUES: Mapping[str, type[enum.IntEnum]] = {
    "spapr_drc_set_allocation_state": AllocationState,
    "spapr_drc_set_isolation_state": IsolationState,
}
#: Monitor commands whose row is the machine's own (host_command, rtas_call).
DRAWN_BY_THE_MACHINE = frozenset({"device_add", "device_del", "system_reset", "rtas"})
ARROW_IN, ARROW_IN_REFUSED = "◄──────", "◄───✗──"
ARROW_OUT, ARROW_OUT_REFUSED = "──────►", "──────✗"


def _value_name(kind: type[enum.IntEnum], value: int) -> str:
    """An indicator value by its rtas.codes name (``USABLE``), else the number."""
    try:
        return kind(value).name
    except ValueError:
        return str(value)


def _row(t: int, column: int, text: str) -> str:
    stamp = f"{t / 1e6:10.3f}"
    return (stamp + " " * max(1, column - len(stamp)) + text).rstrip()


def _describe(event: TraceEvent, refusal: str | None = None) -> tuple[int, str] | None:
    """The column and text of an event's row (None: not drawn); ``refusal``: QEMU's error
    text when this host command was refused."""
    f = event.fields
    name = event.name
    if name == "host_command":
        command = f"{f['command']} {_args(f.get('args', {}))}"
        if refusal is not None:
            return MGMT, f"{command} {ARROW_OUT_REFUSED} {refusal}"
        return MGMT, f"{command} {ARROW_OUT}"
    if name == "qmp_event":
        return MGMT, f"◄────── {f['name']} {_args(f.get('data', {}))}"
    if name == "handle_hmp_command":
        line = str(f["cmdline"]).strip()
        if not line or line.split()[0] in DRAWN_BY_THE_MACHINE:
            return None
        return MGMT, f"(hmp) {line}"
    if name == "rtas_call":
        call = describe_call(f["name"], f.get("args", []), f.get("rets") or [])
        arrow = ARROW_IN_REFUSED if call.refused else ARROW_IN
        result = call.result or "-"
        return MACHINE, f"{arrow} [vcpu {f['vcpu']}] {call.call} = {result}"
    if name == "xics_ics_set_irq_msi":
        return MACHINE, f"irq 0x{f['nr']:x} ──────►"
    if name == "spapr_xive_set_irq" and f["val"]:  # the lowering half of a pulse is not drawn
        return MACHINE, f"irq 0x{f['lisn']:x} ──────►"
    if name in NOTE_EVENTS and f["index"] >> 28 == DrcType.CPU.shift:
        label = name.removeprefix("spapr_drc_").replace("_", " ")
        kind = _NOTE_VALUES.get(name)
        detail = f" {_value_name(kind, f['state'])}" if kind is not None else ""
        return MACHINE, f"  (drc 0x{f['index']:x}: {label}{detail})"
    if name == "drc_state" and (f.get("code") or 0) < 0 and f["op"] != StateCause.RESET.value:
        guard = f", {f['guard']}" if f.get("guard") else ""
        code = named(f["code"], RtasStatus)
        return MACHINE, f"  (drc 0x{f['index']:x}: ✗ {f['op']} refused: {code}{guard})"
    return None


def _refusals(events: Sequence[TraceEvent]) -> Mapping[int, str]:
    """QEMU's error text of each refused host command, by the command's event index."""
    refused: dict[int, str] = {}
    command: int | None = None
    for i, event in enumerate(events):
        if event.name == "host_command":
            command = i
        elif event.name == "host_reply" and command is not None:
            if event.fields.get("error") is not None:
                refused[command] = str(event.fields["error"])
            command = None
    return refused


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
    events = list(events)
    refusals = _refusals(events)
    for i, event in enumerate(events):
        if event.t < since_ns:
            continue
        described = _describe(event, refusals.get(i))
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
