"""HMP ``rtas``: the person at the prompt makes one RTAS call as the guest (``-guest manual``).

``rtas NAME|TOKEN ARG...`` has a thread of the manual guest (the one ``vcpu N``
chose) write the argument buffer into guest memory and trap with H_RTAS, exactly
as a guest does; the token comes from the guest's ``/rtas`` node and the machine
answers through its one dispatcher. The answer is printed decoded: the status by
its PAPR name (names from ``rtas.codes``) and meaning, the outputs by name, the
event log of ``check-exception`` through ``rtas``'s own decoder, the work area of
``ibm,configure-connector`` as the guest reads it after each step. Where QEMU
refuses a call (a connector in the wrong state, an unknown index, a thread that
is not stopped), a ``why:`` line says which rule applied, from the machine's
state just before the call; ``next:`` lines point at the step Linux takes next.

Input the prompt cannot turn into a call (an unknown service or token, the wrong
number of arguments, a value that is no number, a buffer past guest memory) is
refused before anything is written: the machine is left as it was.

Arguments are numbers (``0x`` for hex, negative values as two's complement);
sensors and indicators also by name (``allocation-state``, ``isolation-state``,
``dr-indicator``, ``entity-sense``), their values by name (``usable``,
``unisolated``, ...), event masks by name (``hot-plug``, ``epow``, joined with
``|``). Some arguments the prompt can supply, as Linux's own code would: the
check-exception and event-scan buffer, the configure-connector work area (the
prompt keeps it in guest memory from one call of a walk to the next), the
system-parameter buffer, start-cpu's entry point and r3.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

import attrs

import fdt
from machine.board.manual_guest import (
    CHECK_EXCEPTION_VECTOR,
    DATA_BUFFER_SIZE,
    ConsoleError,
    ManualConsole,
    ManualGuest,
    RequestState,
    RtasRequest,
)
from machine.monitor.control import MachineControl
from machine.sched import VcpuState
from rtas import EVENT_LOG_HEADER_SIZE, EventLogError, decode_event_log
from rtas.codes import (
    RTAS_ERROR_LOG_MAX,
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
from rtas.errlog import HOTPLUG_EXTENDED_LENGTH, LogSummary
from spapr.drc import DRC, LOGICAL_TRANSITIONS, PHYSICAL_TRANSITIONS, DrcOperation, Guard
from spapr.platform_rtas import SYSPARM_UUID

_U32 = 0xFFFF_FFFF
#: Bytes QEMU writes into a check-exception buffer whatever length the guest gives.
EVENT_LOG_SIZE = EVENT_LOG_HEADER_SIZE + HOTPLUG_EXTENDED_LENGTH


class RtasInputError(Exception):
    """The line cannot become a call; the message says why. Nothing was changed."""


def _enum_name(member: enum.Enum) -> str:
    """``ALLOCATION_STATE`` -> ``allocation-state``: how the prompt spells enum names."""
    return member.name.lower().replace("_", "-")


def _names(kind: type[enum.IntEnum] | type[enum.IntFlag]) -> dict[str, int]:
    """Every member name (aliases too) as the prompt spells it, with its value."""
    return {name.lower().replace("_", "-"): int(m) for name, m in kind.__members__.items()}


#: Sensor and indicator names (rtas.codes.SensorType), read in either call.
SENSOR_NAMES = _names(SensorType)
#: The names shown: get-sensor-state reads sensors, set-indicator sets indicators.
_SENSOR_SHOWN = {int(SensorType.ENTITY_SENSE): "entity-sense", int(SensorType.EPOW): "epow"}
_INDICATOR_SHOWN = {
    int(SensorType.ISOLATION_STATE): "isolation-state",
    int(SensorType.DR_INDICATOR): "dr-indicator",
    int(SensorType.ALLOCATION_STATE): "allocation-state",
}
#: Value names per indicator type (9001, 9002, 9003).
INDICATOR_VALUE_NAMES: dict[int, dict[str, int]] = {
    int(SensorType.ISOLATION_STATE): _names(IsolationState),
    int(SensorType.DR_INDICATOR): _names(DrIndicator),
    int(SensorType.ALLOCATION_STATE): _names(AllocationState),
}
MASK_NAMES = _names(EventMask)

#: What each status means (PAPR's words, shortened), by the name rtas.codes gives it.
STATUS_MEANINGS = {
    "SUCCESS": "the call succeeded",
    "NO_ERRORS_FOUND": "no event of the requested classes is pending",
    "HW_ERROR": "hardware error",
    "BUSY": "busy: try again",
    "PARAM_ERROR": "parameter error",
    "NOT_AUTHORIZED": "not authorized",
    "SYSPARM_PARAM_ERROR": "system parameter error",
}
CC_MEANINGS = {
    "SUCCESS": "the walk is complete; the connector is now CONFIGURED",
    "NEXT_SIBLING": "a sibling node begins",
    "NEXT_CHILD": "a node begins; its name is in the work area",
    "NEXT_PROPERTY": "a property; its name, length and value are in the work area",
    "PREV_PARENT": "the current node ends; go back up to its parent",
    "MORE_MEMORY": "the work area is too small",
    "ERROR": "the walk failed",
    "NOT_THIS_SYSTEM": "not this system",
    "NOT_THIS_SLOT": "not this slot",
    "NOT_CONFIGURABLE": "the connector cannot be configured in its present state",
}


class Kind(enum.Enum):
    """How the prompt reads one argument."""

    NUMBER = "number"
    SENSOR = "sensor"
    VALUE = "value"  # an indicator value: by name for the indicator given before it
    MASK = "mask"
    ADDRESS = "address"  # a guest buffer; the next LENGTH argument (or a fixed size) bounds it


@attrs.frozen
class Param:
    """One argument of a call: its PAPR name and how the prompt reads it."""

    name: str
    kind: Kind = Kind.NUMBER
    #: For an ADDRESS: bytes the machine may touch there when no LENGTH follows.
    size: int = 4


@attrs.frozen
class CallSpec:
    """One RTAS service as the prompt offers it."""

    name: str
    params: tuple[Param, ...]
    nret: int
    #: Names of rets[1:], in order.
    rets: tuple[str, ...] = ()
    summary: str = ""
    #: A short form the prompt completes: (usage, completer(guest, words) -> full args, or
    #: None when the prompt handles the form itself).
    short: tuple[str, Callable[[ManualGuest, list[str]], list[int]] | None] | None = None
    #: Argument counts the machine also accepts (check-exception takes 6 or 7).
    alt_counts: tuple[int, ...] = ()

    @property
    def usage(self) -> str:
        """The full form, PAPR names in order."""
        return " ".join([self.name, *(p.name for p in self.params)])


def _p(*names: str) -> tuple[Param, ...]:
    return tuple(Param(n) for n in names)


def _short_arity(low: int, high: int) -> Callable[[list[str]], None]:
    def check(words: list[str]) -> None:
        if not low <= len(words) <= high:
            raise RtasInputError("wrong number of arguments")

    return check


def _check_exception_short(guest: ManualGuest, words: list[str]) -> list[int]:
    """check-exception [mask]: Linux's vector and buffer; the mask and irq of the oldest
    unanswered interrupt's source, or of the hotplug class the guest negotiated."""
    _short_arity(0, 1)(words)
    mask, irq = guest.default_event_mask()
    if words:
        mask = _mask(words[0])
    return [CHECK_EXCEPTION_VECTOR, irq, mask, 0, guest.errlog_buffer, RTAS_ERROR_LOG_MAX]


def _event_scan_short(guest: ManualGuest, words: list[str]) -> list[int]:
    """event-scan [mask]: every class (rtasd's mask) into the error-log buffer."""
    _short_arity(0, 1)(words)
    mask = _mask(words[0]) if words else _U32
    return [mask, 0, guest.errlog_buffer, RTAS_ERROR_LOG_MAX]


def _start_cpu_short(guest: ManualGuest, words: list[str]) -> list[int]:
    """start-cpu id [entry [r3]]: entry defaults to the guest's secondary entry, r3 to id."""
    _short_arity(1, 2)(words)
    hwid = _number(words[0], "cpu-id")
    entry = _number(words[1], "start-address") if len(words) > 1 else guest.secondary_entry
    return [hwid, entry, hwid]


def _sysparm_short(guest: ManualGuest, words: list[str]) -> list[int]:
    """ibm,get-system-parameter parameter: into the prompt's data buffer."""
    _short_arity(1, 1)(words)
    return [_number(words[0], "parameter"), guest.data_buffer, DATA_BUFFER_SIZE]


def _power_off_short(guest: ManualGuest, words: list[str]) -> list[int]:
    """power-off: no power-on time (-1, -1), as Linux passes."""
    _short_arity(0, 0)(words)
    return [_U32, _U32]


_BUFFER = Param("buffer", Kind.ADDRESS)
_DEVICE = _p("config-addr", "buid-hi", "buid-lo")

#: Every service QEMU 7.2 registers, with its arguments and outputs (PAPR's names).
CALLS: tuple[CallSpec, ...] = (
    CallSpec("display-character", _p("char"), 1, (), "write one character to the console"),
    CallSpec(
        "get-time-of-day",
        (),
        8,
        ("year", "month", "day", "hour", "minute", "second", "nanosecond"),
        "read the real-time clock",
    ),
    CallSpec(
        "set-time-of-day",
        _p("year", "month", "day", "hour", "minute", "second", "nanosecond"),
        1,
        (),
        "set the real-time clock",
    ),
    CallSpec(
        "power-off",
        _p("power-on-time-hi", "power-on-time-lo"),
        1,
        (),
        "power the machine off (QEMU shuts down)",
        ("power-off", _power_off_short),
    ),
    CallSpec("system-reboot", (), 1, (), "reset the machine"),
    CallSpec(
        "query-cpu-stopped-state",
        _p("cpu-id"),
        2,
        ("state",),
        "is hardware thread cpu-id stopped? (0 STOPPED, 2 NOT_STOPPED)",
    ),
    CallSpec(
        "start-cpu",
        _p("cpu-id", "start-address", "r3"),
        1,
        (),
        "start a stopped thread at start-address with r3",
        ("start-cpu cpu-id [start-address]", _start_cpu_short),
    ),
    CallSpec("stop-self", (), 1, (), "stop the calling thread (never returns)"),
    CallSpec(
        "ibm,get-system-parameter",
        (Param("parameter"), _BUFFER, Param("length")),
        1,
        (),
        "read a system parameter into a buffer",
        ("ibm,get-system-parameter parameter", _sysparm_short),
    ),
    CallSpec(
        "ibm,set-system-parameter",
        (Param("parameter"), Param("buffer", Kind.ADDRESS, 2)),
        1,
        (),
        "write a system parameter (QEMU refuses)",
    ),
    CallSpec("ibm,set-xive", _p("irq", "server", "priority"), 1, (), "route an interrupt source"),
    CallSpec("ibm,get-xive", _p("irq"), 3, ("server", "priority"), "read a source's routing"),
    CallSpec("ibm,int-off", _p("irq"), 1, (), "mask an interrupt source"),
    CallSpec("ibm,int-on", _p("irq"), 1, (), "unmask an interrupt source"),
    CallSpec(
        "check-exception",
        (
            Param("vector"),
            Param("info"),
            Param("event-mask", Kind.MASK),
            Param("critical"),
            Param("buffer", Kind.ADDRESS),
            Param("length"),
        ),
        1,
        (),
        "fetch the oldest pending event of the mask's classes",
        ("check-exception [event-mask]", _check_exception_short),
        alt_counts=(7,),
    ),
    CallSpec(
        "event-scan",
        (Param("event-mask", Kind.MASK), Param("critical"), _BUFFER, Param("length")),
        1,
        (),
        "scan for events (QEMU only re-raises pending ones' interrupts)",
        ("event-scan [event-mask]", _event_scan_short),
    ),
    CallSpec("ibm,set-tce-bypass", _p("unit", "enable"), 1),
    CallSpec("quiesce", (), 1, (), "quiesce the platform"),
    CallSpec(
        "nvram-fetch", (Param("index"), _BUFFER, Param("length")), 2, ("count",), "read NVRAM"
    ),
    CallSpec(
        "nvram-store", (Param("index"), _BUFFER, Param("length")), 2, ("count",), "write NVRAM"
    ),
    CallSpec("read-pci-config", _p("config-addr", "size"), 2, ("value",)),
    CallSpec("write-pci-config", _p("config-addr", "size", "value"), 1),
    CallSpec("ibm,read-pci-config", (*_DEVICE, Param("size")), 2, ("value",)),
    CallSpec("ibm,write-pci-config", (*_DEVICE, Param("size"), Param("value")), 1),
    CallSpec("ibm,query-interrupt-source-number", _DEVICE, 3, ("irq", "type")),
    CallSpec(
        "ibm,change-msi",
        (*_DEVICE, Param("function"), Param("num-irqs"), Param("seq")),
        4,
        ("first-irq", "count", "seq"),
    ),
    CallSpec(
        "set-indicator",
        (Param("indicator", Kind.SENSOR), Param("index"), Param("value", Kind.VALUE)),
        1,
        (),
        "set a connector's isolation-state (9001), dr-indicator (9002) or allocation-state (9003)",
    ),
    CallSpec("set-power-level", _p("domain", "level"), 2, ("level",), "set a power domain's level"),
    CallSpec("get-power-level", _p("domain"), 2, ("level",), "read a power domain's level"),
    CallSpec(
        "get-sensor-state",
        (Param("sensor", Kind.SENSOR), Param("index")),
        2,
        ("state",),
        "read a sensor: 9003 (entity-sense) is a connector's dr-entity-sense",
    ),
    CallSpec(
        "ibm,configure-connector",
        (Param("work-area", Kind.ADDRESS, 4096), Param("memory-extent")),
        1,
        (),
        "one step of a connector's device-tree walk",
        ("ibm,configure-connector index", None),
    ),
    CallSpec(
        "ibm,os-term",
        (Param("string", Kind.ADDRESS, 512),),
        1,
        (),
        "the OS terminates (QEMU reports a guest panic)",
        ("ibm,os-term text...", None),
    ),
    CallSpec("ibm,set-eeh-option", (*_DEVICE, Param("option")), 1),
    CallSpec("ibm,get-config-addr-info2", (*_DEVICE, Param("function")), 2, ("info",)),
    CallSpec("ibm,read-slot-reset-state2", _DEVICE, 4, ("state", "capable", "wait-time")),
    CallSpec("ibm,set-slot-reset", (*_DEVICE, Param("option")), 1),
    CallSpec("ibm,configure-pe", _DEVICE, 1),
    CallSpec(
        "ibm,slot-error-detail",
        (*_DEVICE, *_p("loc-buf", "loc-len", "err-buf", "err-len", "type")),
        1,
    ),
    CallSpec("ibm,query-pe-dma-window", _DEVICE, 5, ("windows", "largest", "page-sizes", "mode")),
    CallSpec(
        "ibm,create-pe-dma-window",
        (*_DEVICE, Param("page-shift"), Param("window-shift")),
        4,
        ("liobn", "start-hi", "start-lo"),
    ),
    CallSpec("ibm,remove-pe-dma-window", _p("liobn"), 1),
    CallSpec("ibm,reset-pe-dma-window", _DEVICE, 1),
    CallSpec("ibm,suspend-me", (), 1, (), "suspend the partition"),
    CallSpec("ibm,nmi-register", _p("system-reset-addr", "machine-check-addr"), 1),
    CallSpec("ibm,nmi-interlock", (), 1),
)
CALLS_BY_NAME = {c.name: c for c in CALLS}


def rtas_help_lines() -> list[str]:
    """``help rtas``: every call with its arguments, and the short forms the prompt completes."""
    lines = ["  calls (arguments are numbers; [..] may be left for the prompt to supply):"]
    for spec in CALLS:
        what = f"  -- {spec.summary}" if spec.summary else ""
        lines.append(f"  {spec.usage}{what}")
        if spec.short is not None:
            lines.append(f"      or: {spec.short[0]}")
    lines.append(
        "  sensors/indicators: "
        + ", ".join(f"{v} {n}" for n, v in SENSOR_NAMES.items())
        + "; event masks: "
        + ", ".join(f"{n} {v:#x}" for n, v in MASK_NAMES.items())
    )
    return lines


# ------------------------------------------------------------------------------ parsing


def _number(word: str, what: str) -> int:
    try:
        value = int(word, 0)
    except ValueError:
        raise RtasInputError(f"{what}: '{word}' is not a number") from None
    if not -(1 << 31) <= value <= _U32:
        raise RtasInputError(f"{what}: {word} does not fit in 32 bits")
    return value & _U32


def _named(word: str, names: dict[str, int], what: str) -> int:
    if word.lower() in names:
        return names[word.lower()]
    try:
        return _number(word, what)
    except RtasInputError:
        have = ", ".join(names)
        raise RtasInputError(f"{what}: '{word}' is neither a number nor one of {have}") from None


def _mask(word: str) -> int:
    value = 0
    for part in word.split("|"):
        value |= _named(part, MASK_NAMES, "event-mask")
    return value


def parse_args(spec: CallSpec, words: Sequence[str]) -> list[int]:
    """The learner's words as a call's arguments (RtasInputError if they do not fit)."""
    values: list[int] = []
    indicator = 0
    for param, word in zip(spec.params, words, strict=False):
        if param.kind is Kind.SENSOR:
            value = _named(word, SENSOR_NAMES, param.name)
            indicator = value
        elif param.kind is Kind.VALUE:
            value = _named(word, INDICATOR_VALUE_NAMES.get(indicator, {}), param.name)
        elif param.kind is Kind.MASK:
            value = _mask(word)
        else:
            value = _number(word, param.name)
        values.append(value)
    for word in words[len(spec.params) :]:  # an optional extra (check-exception's 7th)
        values.append(_number(word, "extended-info"))
    return values


def check_buffers(spec: CallSpec, args: Sequence[int], memory_size: int) -> None:
    """Refuse a buffer argument that does not lie inside guest memory."""
    for i, param in enumerate(spec.params):
        if param.kind is not Kind.ADDRESS or i >= len(args):
            continue
        addr = args[i]
        if spec.name == "ibm,configure-connector":
            addr |= args[1] << 32 if len(args) > 1 else 0
        following = spec.params[i + 1] if i + 1 < len(spec.params) else None
        size = param.size
        if following is not None and following.name == "length" and i + 1 < len(args):
            size = args[i + 1]
        if spec.name == "check-exception":
            size = max(size, EVENT_LOG_SIZE)  # QEMU writes the whole event regardless
        if addr + size > memory_size:
            raise RtasInputError(
                f"{param.name} {addr:#x}..{addr + size:#x} lies past guest memory "
                f"(RAM ends at {memory_size:#x})"
            )


# ------------------------------------------------------------------------------ the call


@attrs.frozen
class Before:
    """The machine as the tutor saw it just before the call (for the ``why:`` lines)."""

    drc: DRC | None = None
    #: The connector index the call names (configure-connector: the work area's word 0).
    drc_index: int | None = None
    drc_state: Any = None
    drc_device: object | None = None
    unplug_requested: bool = False
    vcpu_state: VcpuState | None = None
    pending_events: int = 0


def _status_names(value: int, kind: type[enum.IntEnum]) -> list[str]:
    return [name for name, member in kind.__members__.items() if int(member) == value]


def describe_status(spec: CallSpec, status: int) -> str:
    """``-3 PARAM_ERROR (also NOT_SUPPORTED, NO_SUCH_INDICATOR): parameter error``."""
    names = (
        _status_names(status, ConfigureConnector) if spec.name == "ibm,configure-connector" else []
    )
    meanings = CC_MEANINGS
    if not names:  # the RTAS-wide statuses (configure-connector's -3 too)
        names, meanings = _status_names(status, RtasStatus), STATUS_MEANINGS
    if not names:
        return f"{status}: not a status PAPR names"
    also = f" (also {', '.join(names[1:])})" if len(names) > 1 else ""
    return f"{status} {names[0]}{also}: {meanings.get(names[0], '')}".rstrip(": ")


def _value_text(name: str, value: bytes) -> str:
    """A property value as dtc prints it (fdt's own printer)."""
    node = fdt.Node("value")
    node.append_property(fdt.Property.bytes(name, value))
    for line in fdt.to_dts(node).splitlines():
        stripped = line.strip()
        if stripped.startswith(name):
            return stripped.rstrip(";")
    return name


@attrs.define
class RtasPrompt:
    """The ``rtas``/``vcpu`` commands of one monitor over a machine with a manual guest."""

    control: MachineControl
    out: Callable[[str], None]

    @property
    def guest(self) -> ManualGuest | None:
        guest = self.control.machine.guest
        return guest if isinstance(guest, ManualGuest) else None

    def _need_guest(self, command: str) -> ManualGuest | None:
        guest = self.guest
        if guest is None:
            self.out(
                f"{command}: only with -guest manual (then you are the guest at this prompt); "
                "this machine's guest makes its own calls"
            )
        return guest

    # ---------------------------------------------------------------- vcpu

    def vcpu(self, word: str | None) -> None:
        """``vcpu [N]``: show or choose the thread the prompt calls from."""
        guest = self._need_guest("vcpu")
        if guest is None:
            return
        sched = self.control.machine.sched
        if word is None:
            state = "running" if guest.console_vcpu in guest.online else "stopped"
            self.out(f"rtas calls are made from vCPU {guest.console_vcpu} ({state})")
            return
        try:
            vcpu = _number(word, "vcpu")
        except RtasInputError as err:
            self.out(f"vcpu: {err}")
            return
        if sched.find_vcpu(vcpu) is None:
            have = ", ".join(str(v) for v in sched.vcpus())
            self.out(f"vcpu: there is no vCPU {vcpu} (vCPUs: {have})")
            return
        guest.console_vcpu = vcpu
        note = "" if vcpu in guest.online else " (stopped: start it with 'rtas start-cpu' first)"
        self.out(f"rtas calls are now made from vCPU {vcpu}{note}")

    # ---------------------------------------------------------------- rtas

    def rtas(self, line: str) -> None:
        """``rtas NAME|TOKEN ARG...``: one call, decoded."""
        guest = self._need_guest("rtas")
        if guest is None:
            return
        words = line.split()
        if not words:
            self.out("rtas: usage: rtas NAME|TOKEN [ARG...] (see 'help rtas')")
            return
        try:
            spec, args, prepare = self._parse(guest, words)
        except RtasInputError as err:
            self.out(f"rtas: {err}; nothing was called")
            return
        if not self.control.runstate.running:
            self.out(
                f"rtas: the VM is {self.control.runstate.state.value}: a guest that does not "
                "run makes no calls ('cont' runs it); nothing was called"
            )
            return
        if not guest.booted:
            self.out("rtas: the guest has not booted yet; nothing was called")
            return
        vcpu = guest.console_vcpu
        if prepare is not None:
            if vcpu not in guest.online:
                self.out(
                    f"rtas: vCPU {vcpu} is stopped: a stopped thread runs no guest code; "
                    "nothing was called"
                )
                return
            prepare()
        before = self._before(spec, args)
        console = ManualConsole(guest, self.control.machine.sched)
        try:
            request = console.call(vcpu, spec.name, tuple(args), spec.nret)
        except ConsoleError as err:
            self.out(f"rtas: {err}; nothing was called")
            return
        finally:
            self.control.view.sync()
        self._report(guest, spec, request, before)

    def _parse(
        self, guest: ManualGuest, words: list[str]
    ) -> tuple[CallSpec, list[int], Callable[[], None] | None]:
        name = self._service(guest, words[0])
        spec = CALLS_BY_NAME.get(name)
        if spec is None:  # in /rtas but unknown to the prompt: numbers only, nret 1
            spec = CallSpec(name, tuple(Param(f"arg{i}") for i in range(len(words) - 1)), 1)
        typed = words[1:]
        memory = self.control.machine.memory
        prepare: Callable[[], None] | None = None
        if spec.name == "ibm,configure-connector":
            if len(typed) != 1:
                raise RtasInputError(
                    "usage: rtas ibm,configure-connector index (the prompt keeps the work "
                    "area in guest memory from call to call)"
                )
            index = _number(typed[0], "index")

            def prepare() -> None:
                guest.start_walk(index)

            return spec, [guest.work_area, 0], prepare
        if spec.name == "ibm,os-term":
            text = " ".join(typed).encode("latin-1", "replace")[: DATA_BUFFER_SIZE - 1]

            def prepare() -> None:
                memory.write(guest.data_buffer, text + b"\0")

            return spec, [guest.data_buffer], prepare
        counts = {len(spec.params), *spec.alt_counts}
        args: list[int] | None = None
        if len(typed) in counts:
            args = parse_args(spec, typed)
        elif spec.short is not None and spec.short[1] is not None:
            try:
                args = spec.short[1](guest, typed)
            except RtasInputError as err:
                if str(err) != "wrong number of arguments":
                    raise
        if args is None:
            wanted = " or ".join(str(n) for n in sorted(counts))
            forms = f"'{spec.usage}'" + (f" or '{spec.short[0]}'" if spec.short else "")
            raise RtasInputError(
                f"{spec.name} takes {wanted} arguments, not {len(typed)} (usage: {forms})"
            )
        check_buffers(spec, args, memory.size)
        return spec, args, None

    @staticmethod
    def _service(guest: ManualGuest, word: str) -> str:
        """A service by /rtas name or by token number; RtasInputError if /rtas lacks it."""
        if word in guest.tokens:
            return word
        try:
            token = int(word, 0)
        except ValueError:
            raise RtasInputError(
                f"no service '{word}' in the guest's /rtas node (see 'help rtas')"
            ) from None
        for name, value in guest.tokens.items():
            if value == token:
                return name
        raise RtasInputError(f"token {token:#x} is not in the guest's /rtas node")

    def _before(self, spec: CallSpec, args: Sequence[int]) -> Before:
        machine = self.control.machine
        drc: DRC | None = None
        index: int | None = None
        if spec.name in ("set-indicator", "get-sensor-state") and len(args) > 1:
            index = args[1]
        elif spec.name == "ibm,configure-connector" and self.guest is not None:
            walk = self.guest.walk
            index = walk.drc_index if walk is not None else None
        if index is not None:
            drc = machine.drc(index)
        vcpu_state = None
        cpu_call = spec.name in ("start-cpu", "query-cpu-stopped-state")
        if cpu_call and args and machine.sched.find_vcpu(args[0]) is not None:
            vcpu_state = machine.sched.state(args[0])
        return Before(
            drc=drc,
            drc_index=index,
            drc_state=drc.state if drc is not None else None,
            drc_device=drc.device if drc is not None else None,
            unplug_requested=drc.unplug_requested if drc is not None else False,
            vcpu_state=vcpu_state,
            pending_events=len(machine.events),
        )

    # ------------------------------------------------------------- reporting

    def _report(self, guest: ManualGuest, spec: CallSpec, req: RtasRequest, before: Before) -> None:
        self.out(
            f"vCPU {req.vcpu} -> {spec.name} (token {req.token:#x}): " + _args_text(spec, req.args)
        )
        memory = self.control.machine.memory
        if req.state is RequestState.NO_RETURN:
            self._no_return(guest, spec, req)
            return
        nargs = len(req.args)
        words = [memory.ld32(req.buffer + 4 * i) for i in range(3 + nargs + req.nret)]
        raw = " ".join(f"{w:08x}" for w in words[: 3 + nargs])
        rets = " ".join(f"{w:08x}" for w in words[3 + nargs :])
        self.out(f"  buffer {req.buffer:#x}: {raw} | rets {rets}")
        if req.hcall_status:
            self.out(f"  H_RTAS returned {req.hcall_status} (H_PARAMETER): the call was refused")
        status = req.status
        if status is None:
            return
        self.out(f"  status {describe_status(spec, status)}")
        for name, value in zip(spec.rets, req.rets[1:], strict=False):
            shown = self._ret_text(spec, name, value) if status == 0 else str(value)
            self.out(f"  {name} {shown}")
        for line in self._explain(guest, spec, req, before):
            self.out(f"  {line}")

    def _ret_text(self, spec: CallSpec, name: str, value: int) -> str:
        if spec.name == "get-sensor-state" and name == "state":
            names = _status_names(value, EntitySense)
            return f"{value} {names[0]}" if names else str(value)
        if spec.name == "query-cpu-stopped-state" and name == "state":
            names = _status_names(value, CpuStoppedState)
            return f"{value} {names[0]}" if names else str(value)
        return f"{value} ({value & _U32:#x})" if value < 0 or value > 9 else str(value)

    def _no_return(self, guest: ManualGuest, spec: CallSpec, req: RtasRequest) -> None:
        if spec.name == "stop-self":
            self.out(
                "  no return: stop-self does not return (PAPR); QEMU marked the thread "
                f"halted: query-cpu-stopped-state {req.vcpu} now reads 0 STOPPED"
            )
        elif spec.name == "system-reboot":
            self.out(
                "  no return: QEMU reset the machine (RESET in 'info events'); the guest "
                "booted again"
            )
        else:
            self.out(f"  no return: vCPU {req.vcpu} was stopped before the call came back")
        if guest.console_vcpu in guest.online:
            return
        others = sorted(guest.online)
        if others:
            guest.console_vcpu = others[0]
            self.out(f"  the prompt now calls from vCPU {others[0]} ('vcpu N' to choose)")
        else:
            self.out("  no vCPU runs guest code any more: only a reset ('system_reset') helps")

    # ----------------------------------------------------------- explanations

    def _explain(
        self, guest: ManualGuest, spec: CallSpec, req: RtasRequest, before: Before
    ) -> list[str]:
        status = req.status
        assert status is not None
        args = req.args
        if spec.name == "check-exception":
            return self._explain_event(guest, req, status)
        if spec.name == "event-scan":
            return [
                "why: QEMU returns no event from event-scan; it re-raises the interrupt of "
                "every class with pending events (fetch them with check-exception)"
            ]
        if spec.name == "get-sensor-state":
            return self._explain_sensor(args, status, before)
        if spec.name == "set-indicator":
            return self._explain_indicator(args, status, before)
        if spec.name == "ibm,configure-connector":
            return self._explain_walk(guest, status, before)
        if spec.name == "start-cpu":
            return self._explain_start(guest, args, status, before)
        if spec.name == "query-cpu-stopped-state" and status == 0:
            if args[0] == req.vcpu:
                return [f"why: thread {args[0]} is the caller itself: it runs"]
            if before.vcpu_state is VcpuState.HALTED:
                return [
                    f"why: thread {args[0]} is online but idle in H_CEDE: QEMU answers from "
                    "its halted flag, so an idle thread reads STOPPED too"
                ]
            return []
        if spec.name == "query-cpu-stopped-state":
            return [f"why: there is no thread with hardware id {args[0]}"]
        if spec.name == "ibm,os-term" and status == 0:
            return [
                "QEMU took the OS's last words as a guest panic (GUEST_PANICKED, 'info events')"
            ]
        if spec.name == "ibm,get-system-parameter" and status == 0 and len(args) > 1:
            memory = self.control.machine.memory
            length = memory.ld16(args[1])
            data = memory.read(args[1] + 2, min(length, DATA_BUFFER_SIZE - 2))
            if args[0] == SYSPARM_UUID and len(data) == 16:
                return [f"value ({length} bytes): the -uuid, {_uuid_text(data)}"]
            if args[0] == SYSPARM_UUID:
                return [f"value ({length} bytes): no -uuid was given"]
            if not all(32 <= b < 127 for b in data.rstrip(b"\0")):
                return [f"value ({length} bytes): {data.hex(' ')}"]
            text = data.rstrip(b"\0").decode("latin-1")
            return [f"value ({length} bytes): {text!r}"]
        return []

    def _explain_event(self, guest: ManualGuest, req: RtasRequest, status: int) -> list[str]:
        mask = req.args[2]
        classes = "|".join(n for n, v in MASK_NAMES.items() if v & mask) or f"{mask:#x}"
        if status != 0:
            if status == RtasStatus.NO_ERRORS_FOUND:
                return [f"why: no pending event belongs to the classes {classes}"]
            return []
        memory = self.control.machine.memory
        buffer = req.args[4]
        header = memory.read(buffer, EVENT_LOG_HEADER_SIZE)
        length = int.from_bytes(header[4:8], "big")
        try:
            log = decode_event_log(memory.read(buffer, EVENT_LOG_HEADER_SIZE + length))
        except EventLogError as err:
            return [f"event log at {buffer:#x} does not decode: {err}"]
        lines = [
            f"event log at {buffer:#x} ({EVENT_LOG_HEADER_SIZE + length} bytes, class {classes}):",
            f"  summary {log.summary:#010x}: version {log.version}, "
            f"severity {self._summary_name('SEVERITY', log.severity << 21)}, "
            f"disposition {self._summary_name('DISPOSITION', log.disposition << 19)}, "
            f"initiator {self._summary_name('INITIATOR', log.initiator << 12)}, "
            f"type {self._summary_name('TYPE', log.event_type)}",
            f"  sections {', '.join(log.section_ids)}; platform log id {log.plid}",
        ]
        if log.creation_date and log.creation_time:
            (y, mo, d), (h, mi, s) = log.creation_date, log.creation_time
            lines.append(f"  created {y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}")
        hp = log.hotplug
        if hp is not None:
            target = f" {hp.drc_index:#x}" if hp.drc_index is not None else ""
            if hp.count is not None:
                target = f" count {hp.count}" + target
            lines.append(
                f"  hotplug: {hp.action.name} {hp.resource.name}, by {hp.id_type.name}{target}"
            )
            if hp.drc_index is not None:
                index = hp.drc_index
                if hp.action.name == "ADD":
                    lines.append(
                        f"next: rtas get-sensor-state 9003 {index:#x} (Linux adds a CPU only "
                        "if it reads 2 UNUSABLE)"
                    )
                else:
                    lines.append(
                        "next: stop the core's threads (vcpu N; rtas stop-self), then "
                        f"rtas set-indicator 9001 {index:#x} 0 and rtas set-indicator 9003 "
                        f"{index:#x} 0"
                    )
        if log.epow is not None:
            lines.append(
                f"  epow: sensor value {log.epow.sensor_value}, modifier {log.epow.event_modifier}"
            )
        left = len(self.control.machine.events)
        if left:
            lines.append(f"{left} more event(s) pending: QEMU raised their interrupt again")
        return lines

    @staticmethod
    def _summary_name(field: str, value: int) -> str:
        for name in dir(LogSummary):
            named = name.startswith(field + "_") and not name.endswith("MASK")
            if named and getattr(LogSummary, name) == value:
                number = value >> _shift(field)
                shown = f"{number:#04x}" if field == "TYPE" else str(number)
                return f"{shown} {name[len(field) + 1 :]}"
        return str(value >> _shift(field))

    def _explain_sensor(self, args: Sequence[int], status: int, before: Before) -> list[str]:
        sensor, index = args[0], args[1]
        if status == 0:
            state = before.drc_state.name if before.drc_state is not None else "?"
            hint = []
            usable = before.drc is not None and before.drc.is_logical
            if usable and state == "LOGICAL_UNUSABLE" and before.drc_device is not None:
                hint = [f"next: rtas set-indicator 9003 {index:#x} 1 (allocate it: USABLE)"]
            return [f"connector {index:#x} is {state}", *hint]
        if sensor != SensorType.ENTITY_SENSE:
            return [f"why: QEMU implements only sensor 9003 (entity-sense), not {sensor}"]
        return [f"why: there is no connector with index {index:#x}"]

    def _explain_indicator(self, args: Sequence[int], status: int, before: Before) -> list[str]:
        indicator, index, value = args[0], args[1], args[2]
        drc = before.drc
        names = _INDICATOR_SHOWN
        if indicator not in INDICATOR_VALUE_NAMES:
            return [f"why: QEMU has indicators 9001, 9002 and 9003 only, not {indicator}"]
        if drc is None:
            return [f"why: there is no connector with index {index:#x}"]
        state = before.drc_state
        now = drc.state
        if indicator == SensorType.DR_INDICATOR:
            if drc.is_logical:
                return ["why: dr-indicator (9002) exists on physical (PCI) connectors only"]
            return [] if status == 0 else [f"why: {value} is not a dr-indicator value (0..3)"]
        if indicator == SensorType.ALLOCATION_STATE and not drc.is_logical:
            return ["why: allocation-state (9003) exists on logical connectors only"]
        op = _operation(indicator, value)
        if op is None:
            return [
                f"why: QEMU accepts {names[indicator]} 0 or 1 only, not {value}"
                + (" (PAPR's exchange and recover are refused)" if indicator == 9003 else "")
            ]
        table = LOGICAL_TRANSITIONS if drc.is_logical else PHYSICAL_TRANSITIONS
        cell = table.get((state, op))
        lines: list[str] = []
        if cell is None:
            lines.append(f"why: {op.value} on a {state.name} connector is refused (no such step)")
            return lines
        if status == 0:
            moved = f"{state.name} -> {now.name}" if now is not state else f"stays {now.name}"
            lines.append(f"connector {index:#x}: {moved}")
            if before.unplug_requested and not drc.unplug_requested and drc.device is None:
                lines.append(
                    "the host had asked for the device back (device_del): QEMU released it "
                    "now and emitted DEVICE_DELETED ('info events')"
                )
            elif before.unplug_requested and not drc.unplug_requested:
                lines.append(
                    "UNISOLATE while an unplug is pending: QEMU takes it as the guest "
                    "refusing the unplug (DEVICE_UNPLUG_GUEST_ERROR)"
                )
            detached = self.guest.last_detached if self.guest is not None else None
            if op is DrcOperation.SET_UNUSABLE and detached is not None:
                lines.append(
                    f"the guest gave the connector back and detached {detached} from its "
                    "tree ('dt show /cpus')"
                )
            lines += _next_step(op, index, now.name)
            return lines
        for guard in cell.guards:
            if guard is Guard.NEEDS_DEVICE and before.drc_device is None:
                lines.append(
                    f"why: nothing is attached to connector {index:#x} ({state.name}): "
                    "there is no device to make usable (device_add first)"
                )
                return lines
            if guard is Guard.NO_UNPLUG_PENDING and before.unplug_requested:
                lines.append(
                    "why: the host asked for this device back (device_del): the guest may "
                    "not acquire it again"
                )
                return lines
        lines.append(f"why: {op.value} is refused while the connector is {state.name}")
        lines += _refusal_hint(op, index, state.name)
        return lines

    def _explain_walk(self, guest: ManualGuest, status: int, before: Before) -> list[str]:
        walk = guest.walk
        index = before.drc_index if before.drc_index is not None else 0
        if status == ConfigureConnector.NOT_CONFIGURABLE:
            state = before.drc_state.name if before.drc_state is not None else "?"
            return [
                f"why: connector {index:#x} is {state}; QEMU walks a connector only when it "
                f"is UNISOLATE or CONFIGURED (rtas set-indicator 9001 {index:#x} 1 first)"
            ]
        if status == RtasStatus.PARAM_ERROR:
            return [f"why: there is no connector with index {index:#x} (the work area's word 0)"]
        answer = walk.last if walk is not None else None
        if walk is None or answer is None:
            return []
        if status == ConfigureConnector.NEXT_CHILD:
            return [f"node {answer.name} (step {walk.calls})"]
        if status == ConfigureConnector.NEXT_PROPERTY:
            value = answer.value or b""
            where = f" in {answer.path}" if answer.path else ""
            return [
                f"property {_value_text(answer.name or '?', value)}  "
                f"({len(value)} bytes{where}, step {walk.calls})"
            ]
        if status == ConfigureConnector.SUCCESS:
            lines = [f"the walk took {walk.calls} calls"]
            if answer.path:
                lines.append(f"the guest attached {answer.path}: see 'dt show {answer.path}'")
                lines += self._start_hint(index)
            return lines
        return []

    def _start_hint(self, index: int) -> list[str]:
        machine = self.control.machine
        for core in machine.cores:
            if machine.cpu_drc_index(core.core_id) == index:
                ids = [t.vcpu_id for t in core.threads]
                return [
                    f"next: rtas query-cpu-stopped-state {ids[0]}, then rtas start-cpu "
                    f"{ids[0]} (threads {', '.join(map(str, ids))})"
                ]
        return []

    def _explain_start(
        self, guest: ManualGuest, args: Sequence[int], status: int, before: Before
    ) -> list[str]:
        hwid = args[0]
        if status == 0:
            return [
                f"QEMU started thread {hwid} at {args[1]:#x} with r3 {args[2]:#x}; the manual "
                f"guest runs its wait loop there ('vcpu {hwid}' calls from it; 'info cpus')"
            ]
        if status == RtasStatus.HW_ERROR:
            who = "the caller itself" if hwid == guest.console_vcpu else "not halted"
            return [f"why: thread {hwid} is {who}: it already runs guest code"]
        if before.vcpu_state is None:
            return [f"why: there is no thread with hardware id {hwid}"]
        return []


#: Arguments shown in hex whatever their size (indexes, addresses, interrupt numbers).
_HEX_PARAMS = frozenset({"index", "irq", "start-address", "vector", "info"})


def _args_text(spec: CallSpec, args: Sequence[int]) -> str:
    """``sensor=9003 (entity-sense) index=0x10000001``: each argument under its PAPR name."""
    if not args:
        return "no arguments"
    out = []
    indicator = 0
    for i, value in enumerate(args):
        param = spec.params[i] if i < len(spec.params) else Param("extended-info")
        text = f"{value:#x}" if value >= 0x10000 else str(value)
        if param.kind is Kind.SENSOR:
            indicator = value
            shown = _SENSOR_SHOWN if spec.name == "get-sensor-state" else _INDICATOR_SHOWN
            text = f"{value} ({shown[value]})" if value in shown else str(value)
        elif param.kind is Kind.VALUE:
            names = [n for n, v in INDICATOR_VALUE_NAMES.get(indicator, {}).items() if v == value]
            text = f"{value} ({names[0]})" if names else str(value)
        elif param.kind is Kind.MASK:
            names = [n for n, v in MASK_NAMES.items() if v & value]
            text = f"{value:#x} ({'|'.join(names)})" if names else f"{value:#x}"
        elif param.kind is Kind.ADDRESS or param.name in _HEX_PARAMS:
            text = f"{value:#x}"
        out.append(f"{param.name}={text}")
    return " ".join(out)


def _shift(field: str) -> int:
    return {"SEVERITY": 21, "DISPOSITION": 19, "INITIATOR": 12, "TYPE": 0}[field]


def _operation(indicator: int, value: int) -> DrcOperation | None:
    if indicator == SensorType.ISOLATION_STATE:
        return {0: DrcOperation.ISOLATE, 1: DrcOperation.UNISOLATE}.get(value)
    if indicator == SensorType.ALLOCATION_STATE:
        return {0: DrcOperation.SET_UNUSABLE, 1: DrcOperation.SET_USABLE}.get(value)
    return None


def _next_step(op: DrcOperation, index: int, state: str) -> list[str]:
    if op is DrcOperation.SET_USABLE and state == "LOGICAL_AVAILABLE":
        return [f"next: rtas set-indicator 9001 {index:#x} 1 (unisolate it)"]
    if op is DrcOperation.UNISOLATE and state == "LOGICAL_UNISOLATE":
        return [f"next: rtas ibm,configure-connector {index:#x}, once per step until 0"]
    if op is DrcOperation.ISOLATE and state == "LOGICAL_AVAILABLE":
        return [f"next: rtas set-indicator 9003 {index:#x} 0 (give it back: UNUSABLE)"]
    return []


def _refusal_hint(op: DrcOperation, index: int, state: str) -> list[str]:
    if op is DrcOperation.UNISOLATE and state == "LOGICAL_UNUSABLE":
        return [f"first: rtas set-indicator 9003 {index:#x} 1 (USABLE: UNUSABLE -> AVAILABLE)"]
    if op is DrcOperation.SET_UNUSABLE and state in ("LOGICAL_UNISOLATE", "LOGICAL_CONFIGURED"):
        return [f"first: rtas set-indicator 9001 {index:#x} 0 (isolate it: -> AVAILABLE)"]
    if op is DrcOperation.ISOLATE and state == "LOGICAL_UNISOLATE":
        return [f"first: finish the walk (rtas ibm,configure-connector {index:#x} until 0)"]
    return []


def _uuid_text(data: bytes) -> str:
    """16 bytes as a UUID is written (8-4-4-4-12 hex digits)."""
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
