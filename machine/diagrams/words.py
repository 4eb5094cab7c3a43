"""Numbers and names as every picture of a handshake prints them: one format, one place.

The text diagram, the SVG pictures and the step-through page all print through here,
so a number reads the same everywhere:

* DRC indexes, guest addresses, IRQ numbers and event masks in hex (``0x10000002``);
* vCPU ids, counts, lengths, priorities and other plain values in decimal;
* sensor and indicator numbers with their PAPR names (``9003 allocation-state``);
* statuses, sensor values and indicator values as number and name (``0 success``,
  ``2 unusable``), the names taken from :mod:`rtas.codes`' enums (the one place they
  live) and written in lower case with spaces.

A call whose status is negative was refused; the pictures mark it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence

import attrs

from rtas.codes import (
    AllocationState,
    ConfigureConnector,
    CpuStoppedState,
    DrIndicator,
    EntitySense,
    EventMask,
    IsolationState,
    RtasStatus,
    SensorType,
)
from rtas.errlog import EventLogError, decode_event_log
from spapr.drc import DrcType, drc_id, drc_name, drc_type_of
from spapr.events import SPAPR_IRQ_EPOW, SPAPR_IRQ_HOTPLUG, EventClass

#: The IRQs of the two event sources, named as /event-sources names them.
IRQ_NAMES: Mapping[int, str] = {
    SPAPR_IRQ_EPOW: EventClass.EPOW.node_name,
    SPAPR_IRQ_HOTPLUG: EventClass.HOT_PLUG.node_name,
}

# 9003 is both an indicator (allocation-state, set-indicator) and a sensor
# (dr-entity-sense, get-sensor-state); rtas.codes keeps both names as aliases, so the
# two calls look their numbers up among different member names.
_INDICATOR_MEMBERS = ("ISOLATION_STATE", "DR_INDICATOR", "ALLOCATION_STATE")
_SENSOR_MEMBERS = ("ENTITY_SENSE", "EPOW")
#: The values each indicator takes, and each sensor reads.
_INDICATOR_VALUES: Mapping[int, type[enum.IntEnum]] = {
    SensorType.ISOLATION_STATE: IsolationState,
    SensorType.DR_INDICATOR: DrIndicator,
    SensorType.ALLOCATION_STATE: AllocationState,
}
_SENSOR_VALUES: Mapping[int, type[enum.IntEnum]] = {SensorType.ENTITY_SENSE: EntitySense}


def words(name: str, sep: str = " ") -> str:
    """An enum member's name as words: ``NO_ERRORS_FOUND`` → ``no errors found``."""
    return name.lower().replace("_", sep)


def _member_names(members: Sequence[str]) -> dict[int, str]:
    return {int(SensorType.__members__[name]): words(name, "-") for name in members}


_INDICATOR_NAMES = _member_names(_INDICATOR_MEMBERS)
_SENSOR_NAMES = _member_names(_SENSOR_MEMBERS)


def hex_number(value: int) -> str:
    """Indexes, addresses, IRQs: ``0x10000002``."""
    return f"0x{value:x}"


def named(value: int, kind: type[enum.IntEnum]) -> str:
    """``2 unusable``: the number, then its name in ``kind`` (the number alone if unnamed)."""
    try:
        return f"{value} {words(kind(value).name)}"
    except ValueError:
        return str(value)


def drc_label(index: int) -> str:
    """A connector as ``ibm,drc-names`` names it, with its index: ``CPU 2 (0x10000002)``."""
    drc_type = drc_type_of(index)
    if drc_type is None or drc_type.name_prefix is None:
        return hex_number(index)
    return f"{drc_name(drc_type, drc_id(index))} ({hex_number(index)})"


def cpu_drc_name(index: int) -> str:
    """``CPU 2`` for a CPU connector's index (else the index in hex)."""
    if drc_type_of(index) is DrcType.CPU:
        return drc_name(DrcType.CPU, drc_id(index))
    return hex_number(index)


def state_short(state_name: str) -> str:
    """A DRC state without its machine's prefix: ``LOGICAL_UNISOLATE`` → ``UNISOLATE``."""
    return state_name.removeprefix("LOGICAL_").removeprefix("PHYSICAL_")


def irq_label(irq: int) -> str:
    """``0x1001 hot-plug-events`` (the hex number alone for other IRQs)."""
    name = IRQ_NAMES.get(irq)
    return hex_number(irq) if name is None else f"{hex_number(irq)} {name}"


def mask_label(mask: int) -> str:
    """An event-class mask: ``0x10000000 hot-plug``."""
    names = [words(m.name or "", "-") for m in EventMask if m & mask]
    return hex_number(mask) + (" " + "+".join(names) if names else "")


# --------------------------------------------------------------------------
# RTAS calls
# --------------------------------------------------------------------------


class Arg(enum.Enum):
    """How one argument or output word of an RTAS call is printed."""

    HEX = "hex"  # address, DRC index, vector
    DEC = "dec"  # vCPU id, length, priority, plain value
    IRQ = "irq"  # interrupt number, with its event source's name
    MASK = "mask"  # event-class mask, with the classes' names
    INDICATOR = "indicator"  # set-indicator's type: 9003 allocation-state
    INDICATOR_VALUE = "indicator-value"  # named by the indicator in args[0]
    SENSOR = "sensor"  # get-sensor-state's type: 9003 entity-sense
    SENSOR_VALUE = "sensor-value"  # named by the sensor in args[0]
    STOPPED_STATE = "stopped-state"  # query-cpu-stopped-state's answer
    ANY = "any"  # unknown: hex from 0x400 on, else decimal


@attrs.frozen
class Signature:
    """An RTAS call's argument and output words (after the status), each with its role."""

    args: tuple[tuple[str, Arg], ...]
    rets: tuple[tuple[str, Arg], ...] = ()
    #: The enum rets[0] is named by (configure-connector has its own codes).
    status: type[enum.IntEnum] = RtasStatus


#: The calls of the hotplug protocol and their neighbours (PAPR's argument order).
SIGNATURES: Mapping[str, Signature] = {
    "set-indicator": Signature(
        (("indicator", Arg.INDICATOR), ("drc index", Arg.HEX), ("value", Arg.INDICATOR_VALUE))
    ),
    "get-sensor-state": Signature(
        (("sensor", Arg.SENSOR), ("drc index", Arg.HEX)), (("sense", Arg.SENSOR_VALUE),)
    ),
    "ibm,configure-connector": Signature(
        (("work area", Arg.HEX), ("work area high", Arg.HEX)), status=ConfigureConnector
    ),
    "check-exception": Signature(
        (
            ("vector", Arg.HEX),
            ("irq", Arg.IRQ),
            ("mask", Arg.MASK),
            ("critical", Arg.DEC),
            ("buffer", Arg.HEX),
            ("length", Arg.DEC),
        )
    ),
    "event-scan": Signature(
        (("mask", Arg.MASK), ("critical", Arg.DEC), ("buffer", Arg.HEX), ("length", Arg.DEC))
    ),
    "query-cpu-stopped-state": Signature((("vcpu", Arg.DEC),), (("state", Arg.STOPPED_STATE),)),
    "start-cpu": Signature((("vcpu", Arg.DEC), ("entry", Arg.HEX), ("r3", Arg.DEC))),
    "stop-self": Signature(()),
    "ibm,get-xive": Signature((("irq", Arg.IRQ),), (("server", Arg.DEC), ("priority", Arg.DEC))),
    "ibm,set-xive": Signature((("irq", Arg.IRQ), ("server", Arg.DEC), ("priority", Arg.DEC))),
    "ibm,int-on": Signature((("irq", Arg.IRQ),)),
    "ibm,int-off": Signature((("irq", Arg.IRQ),)),
}


def _word(kind: Arg, value: int, first_arg: int | None) -> str:
    if kind is Arg.HEX:
        return hex_number(value)
    if kind is Arg.IRQ:
        return irq_label(value)
    if kind is Arg.MASK:
        return mask_label(value)
    if kind is Arg.INDICATOR:
        name = _INDICATOR_NAMES.get(value)
        return f"{value} {name}" if name else str(value)
    if kind is Arg.SENSOR:
        name = _SENSOR_NAMES.get(value)
        return f"{value} {name}" if name else str(value)
    if kind is Arg.INDICATOR_VALUE and (values := _INDICATOR_VALUES.get(first_arg or 0)):
        try:
            return words(values(value).name)
        except ValueError:
            return str(value)
    if kind is Arg.SENSOR_VALUE and (values := _SENSOR_VALUES.get(first_arg or 0)):
        return named(value, values)
    if kind is Arg.STOPPED_STATE:
        return named(value, CpuStoppedState)
    if kind is Arg.ANY and value >= 0x400:
        return hex_number(value)
    return str(value)


@attrs.frozen
class CallWords:
    """One RTAS call in words: the call with its arguments, the status, the outputs."""

    name: str
    #: (role, text) per argument word.
    args: tuple[tuple[str, str], ...]
    #: ``0 success``; empty when the call wrote no status.
    status: str
    #: (role, text) per output word after the status.
    outputs: tuple[tuple[str, str], ...]
    #: A negative status: the machine refused the call.
    refused: bool

    @property
    def call(self) -> str:
        """``set-indicator(9003 allocation-state, 0x10000002, usable)``."""
        return f"{self.name}({', '.join(text for _, text in self.args)})"

    @property
    def result(self) -> str:
        """``0 success`` or ``0 success; sense 2 unusable``."""
        outputs = ", ".join(f"{role} {text}" for role, text in self.outputs)
        if outputs and self.status:
            return f"{self.status}; {outputs}"
        return self.status or outputs

    def line(self, arrow: str = "→") -> str:
        """The call and its result: ``set-indicator(...) → 0 success``."""
        return f"{self.call} {arrow} {self.result}" if self.result else self.call


def describe_call(name: str, args: Sequence[int], rets: Sequence[int]) -> CallWords:
    """An RTAS call of the trace (``rtas_call``'s name, args and rets) in words."""
    signature = SIGNATURES.get(name)
    first = args[0] if args else None
    arg_kinds = signature.args if signature else ()
    arg_words = tuple(
        (arg_kinds[i][0], _word(arg_kinds[i][1], v, first))
        if i < len(arg_kinds)
        else (f"arg {i}", _word(Arg.ANY, v, first))
        for i, v in enumerate(args)
    )
    status = rets[0] if rets else None
    status_enum = signature.status if signature else RtasStatus
    ret_kinds = signature.rets if signature else ()
    outputs = tuple(
        (ret_kinds[i][0], _word(ret_kinds[i][1], v, first))
        if i < len(ret_kinds)
        else (f"ret {i + 1}", _word(Arg.ANY, v, first))
        for i, v in enumerate(rets[1:])
    )
    return CallWords(
        name=name,
        args=arg_words,
        status="" if status is None else named(status, status_enum),
        outputs=outputs,
        refused=status is not None and status < 0,
    )


# --------------------------------------------------------------------------
# Event logs (what check-exception hands over)
# --------------------------------------------------------------------------


def describe_event_log(log: bytes) -> str:
    """An event log in a few words, read with rtas' own decoder.

    ``hotplug add cpu 0x10000002 (plid 0)``, ``epow 3 (plid 1)``, or why it cannot be read.
    """
    try:
        decoded = decode_event_log(log)
    except EventLogError as err:
        return f"unreadable event log: {err}"
    plid = "" if decoded.plid is None else f" (plid {decoded.plid})"
    hp = decoded.hotplug
    if hp is not None:
        target = hex_number(hp.drc_index) if hp.drc_index is not None else f"count {hp.count}"
        return f"hotplug {words(hp.action.name)} {words(hp.resource.name)} {target}{plid}"
    if decoded.epow is not None:
        return f"epow action {decoded.epow.sensor_value & 0xF}{plid}"
    return f"event type {hex_number(decoded.event_type)}{plid}"


def pending_entry_words(entry: Mapping[str, object]) -> str:
    """A pending event (``event_queue``'s entries) as the queue panel and notes print it."""
    log = bytes.fromhex(str(entry.get("log", "")))
    irq = entry.get("irq")
    where = f" → {irq_label(irq)}" if isinstance(irq, int) else ""
    return f"{describe_event_log(log)}{where}"


#: How each kind of value of a ``drc_state`` event is printed.
DRC_FIELD_WORDS: Mapping[str, Callable[[object], str]] = {
    "isolation": lambda v: "—" if v is None else words(str(v)),
    "allocation": lambda v: "— (none)" if v is None else words(str(v)),
    "indicator": lambda v: "— (logical)" if v is None else words(str(v)),
    "sense": lambda v: words(str(v)),
    "attached": lambda v: "yes" if v else "no",
    "unplug_requested": lambda v: "yes" if v else "no",
}


def property_value_text(value: bytes) -> str:
    """A device-tree property value as dtc writes one: strings, cells, or bytes.

    ``"PowerPC,POWER9@2"``, ``<0x00000038 0x00000002>``, ``[0a 0b 0c]``, or nothing for
    an empty (boolean) property.
    """
    if not value:
        return ""
    if value.endswith(b"\0") and all(
        part and all(0x20 <= c < 0x7F for c in part) for part in value[:-1].split(b"\0")
    ):
        return ", ".join(f'"{part.decode()}"' for part in value[:-1].split(b"\0"))
    if len(value) % 4 == 0:
        cells = (int.from_bytes(value[i : i + 4], "big") for i in range(0, len(value), 4))
        return "<" + " ".join(f"0x{c:08x}" for c in cells) + ">"
    return "[" + " ".join(f"{b:02x}" for b in value) + "]"
