"""Dynamic Reconfiguration Connectors: index encoding, the two DR state machines, the table.

A DRC is the slot through which the guest acquires or gives back a hot-pluggable
resource (a CPU core here). Its protocol with the guest is a small state machine
driven by RTAS indicators; this module holds it as explicit transition tables
{(state, operation) -> transition} applied through one funnel, with QEMU 7.2's
trace event at every step and no I/O: the RTAS layer (:mod:`spapr.drc_rtas`)
decodes guest memory into method calls and writes the results back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from fdt import Node, WalkStep, WalkTag, walk
from rtas.codes import (
    AllocationState,
    ConfigureConnector,
    DrIndicator,
    EntitySense,
    IsolationState,
    RtasStatus,
)
from spapr.trace import TraceRecorder

# --------------------------------------------------------------------------
# Types and index encoding (the one place these numbers live)
# --------------------------------------------------------------------------

#: The DRC type's shift sits in the top nibble of an index; the id is the rest.
DRC_INDEX_TYPE_SHIFT = 28
DRC_INDEX_ID_MASK = (1 << DRC_INDEX_TYPE_SHIFT) - 1
_U32 = 0xFFFFFFFF


class DrcType(enum.IntEnum):
    """DRC types; the value is QEMU's type shift (SpaprDrcTypeShift)."""

    CPU = 1
    PHB = 2
    VIO = 3
    PCI = 4
    LMB = 8
    PMEM = 9

    @property
    def shift(self) -> int:
        """The type shift (index bits 28..31)."""
        return int(self.value)

    @property
    def type_bit(self) -> int:
        """QEMU's internal type mask bit (``1 << shift``), used to filter DT arrays."""
        return 1 << self.value

    @property
    def index_prefix(self) -> int:
        """The index of id 0 of this type, e.g. 0x10000000 for CPU."""
        return self.value << DRC_INDEX_TYPE_SHIFT

    @property
    def drc_types_name(self) -> str | None:
        """The ``ibm,drc-types`` string (None: QEMU has no connector of this type)."""
        return _TYPE_FACTS[self][0]

    @property
    def name_prefix(self) -> str | None:
        """Prefix of the ``ibm,drc-names`` entry (``"CPU "`` for ``"CPU 8"``)."""
        return _TYPE_FACTS[self][1]

    @property
    def is_logical(self) -> bool:
        """Logical DRCs (CPU, PHB, LMB, PMEM) use the U/A/I/C machine."""
        return _TYPE_FACTS[self][2] == "logical"

    @property
    def is_physical(self) -> bool:
        """Physical DRCs (PCI) use the POWERON/UNISOLATE/CONFIGURED machine."""
        return _TYPE_FACTS[self][2] == "physical"

    @property
    def qom_type(self) -> str | None:
        """QEMU's QOM type name of connectors of this type."""
        return _TYPE_FACTS[self][3]


#: (ibm,drc-types string, name prefix, state machine, QOM type) per type.
_TYPE_FACTS: dict[DrcType, tuple[str | None, str | None, str | None, str | None]] = {
    DrcType.CPU: ("CPU", "CPU ", "logical", "spapr-drc-cpu"),
    DrcType.PHB: ("PHB", "PHB ", "logical", "spapr-drc-phb"),
    DrcType.VIO: (None, None, None, None),
    DrcType.PCI: ("28", "C", "physical", "spapr-drc-pci"),
    DrcType.LMB: ("MEM", "LMB ", "logical", "spapr-drc-lmb"),
    DrcType.PMEM: ("PMEM", "PMEM ", "logical", "spapr-drc-pmem"),
}


def drc_index(drc_type: DrcType, drc_id: int) -> int:
    """The DRC index of ``drc_id`` of a type: ``(shift << 28) | (id & 0x0FFFFFFF)``."""
    # int() of the member is its shift (``.shift`` goes through enum's value property)
    return (int(drc_type) << DRC_INDEX_TYPE_SHIFT) | (drc_id & DRC_INDEX_ID_MASK)


def drc_id(index: int) -> int:
    """The id part of a DRC index (for a CPU DRC: the vCPU id of thread 0)."""
    return index & DRC_INDEX_ID_MASK


def drc_type_of(index: int) -> DrcType | None:
    """The type encoded in an index, or None when the top nibble names no type."""
    try:
        return DrcType((index & _U32) >> DRC_INDEX_TYPE_SHIFT)
    except ValueError:
        return None


def drc_name(drc_type: DrcType, drc_id: int) -> str:
    """The ``ibm,drc-names`` entry: prefix then the id in decimal (``"CPU 8"``)."""
    prefix = drc_type.name_prefix
    if prefix is None:
        raise ValueError(f"QEMU has no {drc_type.name} connectors")
    signed = drc_id & _U32
    if signed >= 1 << 31:  # QEMU prints the u32 id with %d
        signed -= 1 << 32
    return f"{prefix}{signed}"


# --------------------------------------------------------------------------
# States and the transition tables
# --------------------------------------------------------------------------


class DRCState(enum.IntEnum):
    """SpaprDrcState; the values travel in the migration stream."""

    INVALID = 0
    LOGICAL_UNUSABLE = 1
    LOGICAL_AVAILABLE = 2
    LOGICAL_UNISOLATE = 3
    LOGICAL_CONFIGURED = 4
    PHYSICAL_AVAILABLE = 5
    PHYSICAL_POWERON = 6
    PHYSICAL_UNISOLATE = 7
    PHYSICAL_CONFIGURED = 8


class DrcOperation(enum.Enum):
    """A guest request that moves a DRC: one indicator type with one legal value."""

    ISOLATE = "isolate"  # indicator 9001 = 0
    UNISOLATE = "unisolate"  # indicator 9001 = 1
    SET_UNUSABLE = "set-unusable"  # indicator 9003 = 0
    SET_USABLE = "set-usable"  # indicator 9003 = 1


class StateCause(enum.Enum):
    """What moved a DRC besides a table operation, as the ``drc_state`` event names it."""

    REALIZE = "realize"  # created (its first state)
    ATTACH = "attach"  # the host plugged a device in
    CONFIGURED = "configured"  # the configure-connector walk ended
    UNPLUG_REQUEST = "unplug-request"  # the host asked for the device back
    UNPLUG_REJECTED = "unplug-rejected"  # the guest re-UNISOLATEd instead
    RELEASE = "release"  # the device is being given back to its owner
    RELEASED = "released"  # ... and the connector is empty again
    RESET = "reset"  # machine reset or CAS
    MIGRATION = "migration"  # loaded from the migration stream
    SET_DR_INDICATOR = "set-dr-indicator"  # physical connectors' indicator 9002


class Guard(enum.Enum):
    """A condition a transition checks before moving; failing it returns its code."""

    NEEDS_DEVICE = "needs-device"  # -3: nothing attached to make usable/unisolate
    NO_UNPLUG_PENDING = "no-unplug-pending"  # -3: host wants the device back
    LMB_NEEDS_UNPLUG = "lmb-needs-unplug"  # -1: an LMB may only be isolated for removal


_GUARD_CODES: dict[Guard, RtasStatus] = {
    Guard.NEEDS_DEVICE: RtasStatus.NO_SUCH_INDICATOR,
    Guard.NO_UNPLUG_PENDING: RtasStatus.NO_SUCH_INDICATOR,
    Guard.LMB_NEEDS_UNPLUG: RtasStatus.HW_ERROR,
}


class Effect(enum.Enum):
    """What happens after a successful transition besides the state change."""

    NONE = "none"
    RESET_CURSOR = "reset-cursor"  # configure-connector restarts at the fragment start
    RELEASE_IF_UNPLUG = "release-if-unplug"  # give the device back if the host asked
    REJECT_UNPLUG = "reject-unplug"  # a pending unplug is refused by the guest


@attrs.frozen
class Transition:
    """One table cell: the state to move to (None: stay), the code, guards, effect."""

    to: DRCState | None = None
    code: RtasStatus = RtasStatus.SUCCESS
    guards: tuple[Guard, ...] = ()
    effect: Effect = Effect.NONE


_STAY = Transition()
_REFUSE = Transition(code=RtasStatus.PARAM_ERROR)

# protocol.md's abbreviations: U/A/I/C for the logical states.
_U = DRCState.LOGICAL_UNUSABLE
_A = DRCState.LOGICAL_AVAILABLE
_I = DRCState.LOGICAL_UNISOLATE
_C = DRCState.LOGICAL_CONFIGURED
_P_ON = DRCState.PHYSICAL_POWERON
_P_UN = DRCState.PHYSICAL_UNISOLATE
_P_CF = DRCState.PHYSICAL_CONFIGURED
_Op = DrcOperation

#: The logical (CPU, PHB, LMB, PMEM) machine, protocol.md §3.4.
LOGICAL_TRANSITIONS: Mapping[tuple[DRCState, DrcOperation], Transition] = {
    (_U, _Op.SET_USABLE): Transition(_A, guards=(Guard.NEEDS_DEVICE, Guard.NO_UNPLUG_PENDING)),
    (_A, _Op.SET_USABLE): _STAY,
    (_I, _Op.SET_USABLE): _STAY,
    (_C, _Op.SET_USABLE): _STAY,
    (_U, _Op.SET_UNUSABLE): _STAY,
    (_A, _Op.SET_UNUSABLE): Transition(_U, effect=Effect.RELEASE_IF_UNPLUG),
    (_I, _Op.SET_UNUSABLE): _REFUSE,
    (_C, _Op.SET_UNUSABLE): _REFUSE,
    (_U, _Op.UNISOLATE): _REFUSE,
    (_A, _Op.UNISOLATE): Transition(_I, guards=(Guard.NEEDS_DEVICE,), effect=Effect.RESET_CURSOR),
    (_I, _Op.UNISOLATE): Transition(effect=Effect.REJECT_UNPLUG),
    (_C, _Op.UNISOLATE): Transition(effect=Effect.REJECT_UNPLUG),
    (_U, _Op.ISOLATE): _STAY,
    (_A, _Op.ISOLATE): _STAY,
    (_I, _Op.ISOLATE): _REFUSE,
    (_C, _Op.ISOLATE): Transition(_A, guards=(Guard.LMB_NEEDS_UNPLUG,)),
}

#: The physical (PCI) machine, protocol.md §3.5 (no allocation state).
PHYSICAL_TRANSITIONS: Mapping[tuple[DRCState, DrcOperation], Transition] = {
    (_P_ON, _Op.ISOLATE): _STAY,
    (_P_UN, _Op.ISOLATE): _REFUSE,
    (_P_CF, _Op.ISOLATE): Transition(_P_ON, effect=Effect.RELEASE_IF_UNPLUG),
    (_P_ON, _Op.UNISOLATE): Transition(
        _P_UN, guards=(Guard.NEEDS_DEVICE,), effect=Effect.RESET_CURSOR
    ),
    (_P_UN, _Op.UNISOLATE): _STAY,
    (_P_CF, _Op.UNISOLATE): _STAY,
}


@attrs.frozen
class DrcMachine:
    """One of the two DR state machines: its states, table and entity-sense rule."""

    name: str
    empty_state: DRCState
    ready_state: DRCState
    #: States where ibm,configure-connector may walk the fragment.
    configurable: frozenset[DRCState]
    transitions: Mapping[tuple[DRCState, DrcOperation], Transition]
    #: Sensor 9003 by state; None: by device presence (physical).
    sense_by_state: Mapping[DRCState, EntitySense] | None
    #: Indicator 9001 as each state implies it (QEMU keeps no separate isolation field).
    isolation_by_state: Mapping[DRCState, IsolationState]
    #: Indicator 9003 as each state implies it; None: the machine has no allocation state.
    allocation_by_state: Mapping[DRCState, AllocationState] | None

    @property
    def states(self) -> frozenset[DRCState]:
        """Every state a DRC of this machine can be in."""
        return frozenset(state for state, _ in self.transitions)


LOGICAL = DrcMachine(
    name="logical",
    empty_state=_U,
    ready_state=_C,
    configurable=frozenset({_I, _C}),
    transitions=LOGICAL_TRANSITIONS,
    sense_by_state={
        _U: EntitySense.UNUSABLE,
        _A: EntitySense.PRESENT,
        _I: EntitySense.PRESENT,
        _C: EntitySense.PRESENT,
    },
    isolation_by_state={
        _U: IsolationState.ISOLATED,
        _A: IsolationState.ISOLATED,
        _I: IsolationState.UNISOLATED,
        _C: IsolationState.UNISOLATED,
    },
    allocation_by_state={
        _U: AllocationState.UNUSABLE,
        _A: AllocationState.USABLE,
        _I: AllocationState.USABLE,
        _C: AllocationState.USABLE,
    },
)

PHYSICAL = DrcMachine(
    name="physical",
    empty_state=_P_ON,
    ready_state=_P_CF,
    configurable=frozenset({_P_UN, _P_CF}),
    transitions=PHYSICAL_TRANSITIONS,
    sense_by_state=None,
    isolation_by_state={
        _P_ON: IsolationState.ISOLATED,
        _P_UN: IsolationState.UNISOLATED,
        _P_CF: IsolationState.UNISOLATED,
    },
    allocation_by_state=None,
)

#: The trace event QEMU emits just before a transition gives the device back.
_FINALIZING_EVENT: dict[DrcOperation, str] = {
    _Op.ISOLATE: "spapr_drc_set_isolation_state_finalizing",
    _Op.SET_UNUSABLE: "spapr_drc_set_allocation_state_finalizing",
}


_DR_INDICATOR_VALUES = frozenset(int(v) for v in DrIndicator)


class DrcError(Exception):
    """A host-side misuse of a DRC that QEMU would abort on (attach to a busy DRC, ...)."""


# --------------------------------------------------------------------------
# Responses and migration sections
# --------------------------------------------------------------------------


@attrs.frozen
class CCResponse:
    """One ibm,configure-connector answer: the status and what to write in the work area."""

    code: ConfigureConnector
    #: Node name (NEXT_CHILD) or property name (NEXT_PROPERTY).
    name: str | None = None
    #: Property value (NEXT_PROPERTY only).
    value: bytes | None = None


@attrs.frozen
class DrcVmstate:
    """Section ``spapr_drc`` (instance id = index) and its ``unplug_requested`` subsection."""

    index: int
    state: int
    #: The subsection travels only when True; None means it was absent.
    unplug_requested: bool | None = None


@attrs.frozen
class DrcPhysicalVmstate:
    """Section ``spapr_drc/physical`` (instance id = index)."""

    index: int
    dr_indicator: int


# --------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Fragment:
    """A device-tree fragment with its configure-connector walk and the answers to it.

    The walk and the answers for its BEGIN_NODE and PROPERTY steps (END_NODE answers
    depend on the depth; None there) are computed once, when the fragment is made;
    the node must not change afterwards.
    """

    node: Node
    steps: tuple[WalkStep, ...]
    answers: tuple[CCResponse | None, ...]

    @classmethod
    def of(cls, node: Node) -> Fragment:
        """Walk ``node`` once and precompute the answers."""
        steps = tuple(walk(node))
        answers: list[CCResponse | None] = []
        for step in steps:
            if step.tag is WalkTag.BEGIN_NODE:
                answers.append(CCResponse(ConfigureConnector.NEXT_CHILD, name=step.name))
            elif step.tag is WalkTag.PROPERTY:
                answers.append(
                    CCResponse(ConfigureConnector.NEXT_PROPERTY, name=step.name, value=step.value)
                )
            else:
                answers.append(None)
        return cls(node, steps, tuple(answers))


#: Walks of nodes their builders declared immutable (:func:`shared_fragment`), by id.
_SHARED: dict[int, Fragment] = {}
#: Most shared walks remembered (the oldest is forgotten first; it is only a cache).
SHARED_FRAGMENTS_MAX = 256


def shared_fragment(node: Node) -> Fragment:
    """Declare ``node`` immutable and shared: its walk is computed once for every connector.

    A builder that hands out the same node again (the machine caches a core's node
    while its inputs stay the same) calls this once; connectors given that node then
    reuse the walk and answers instead of walking it on every plug.
    """
    known = _SHARED.get(id(node))
    if known is not None and known.node is node:
        return known
    fragment = Fragment.of(node)
    if len(_SHARED) >= SHARED_FRAGMENTS_MAX:
        del _SHARED[next(iter(_SHARED))]
    _SHARED[id(node)] = fragment
    return fragment


def _fragment_of(node: Node) -> Fragment:
    """The walk of the node a builder returned (a shared node's is not recomputed)."""
    known = _SHARED.get(id(node))
    if known is not None and known.node is node:
        return known
    return Fragment.of(node)


#: Member names and values for the ``drc_state`` event, one table per enum (IntEnum
#: members of different enums compare equal by value, so they cannot share one).
_STATE_NAMES: dict[DRCState, str] = {m: m.name for m in DRCState}
_ISOLATION_NAMES: dict[IsolationState, str] = {m: m.name for m in IsolationState}
_ALLOCATION_NAMES: dict[AllocationState, str] = {m: m.name for m in AllocationState}
_INDICATOR_NAMES: dict[DrIndicator, str] = {m: m.name for m in DrIndicator}
_SENSE_NAMES: dict[EntitySense, str] = {m: m.name for m in EntitySense}
_MEMBER_VALUES: dict[DrcOperation | StateCause | Guard, str] = {
    m: m.value for e in (DrcOperation, StateCause, Guard) for m in e
}

ReleaseCallback = Callable[["DRC", Any], None]
FragmentBuilder = Callable[[Any], Node | None]


def _no_release(drc: DRC, device: Any) -> None:
    """Default owner hook: nothing to do."""


def _no_fragment(device: Any) -> Node | None:
    """Default fragment builder: none (configure-connector then fails with -1)."""
    return None


def _machine_for(drc_type: DrcType) -> DrcMachine:
    if drc_type.is_logical:
        return LOGICAL
    if drc_type.is_physical:
        return PHYSICAL
    raise DrcError(f"QEMU has no {drc_type.name} connectors")


@attrs.define(eq=False)
class DRC:
    """One DR connector: state, attached device, unplug flag, configure-connector cursor.

    Guest-facing methods return PAPR codes and never raise; host-facing ones
    (attach, unplug_request, release, reset, load_vmstate) raise :class:`DrcError`
    where QEMU would abort. The owner hears about releases and rejected unplugs
    through ``on_release(drc, device)`` / ``on_unplug_rejected(drc, device)`` and
    supplies the device-tree fragment through ``build_fragment(device)``.
    """

    type: DrcType
    id: int
    trace: TraceRecorder = attrs.field(factory=lambda: TraceRecorder(keep=False), repr=False)
    on_release: ReleaseCallback = attrs.field(default=_no_release, repr=False)
    on_unplug_rejected: ReleaseCallback = attrs.field(default=_no_release, repr=False)
    build_fragment: FragmentBuilder = attrs.field(default=_no_fragment, repr=False)
    #: The object the DRC hangs off (machine or PHB); filters the DT arrays.
    owner: object = attrs.field(default=None, repr=False)
    #: Emit the project's ``drc_state`` event after every change (the machine asks it of
    #: its CPU connectors, so a trace can be replayed step by step without recomputing).
    trace_states: bool = attrs.field(default=False, repr=False)
    machine: DrcMachine = attrs.field(init=False, repr=False)
    state: DRCState = attrs.field(init=False)
    #: The attached device (opaque to the DRC), or None.
    device: object | None = attrs.field(init=False, default=None)
    unplug_requested: bool = attrs.field(init=False, default=False)
    #: The cached fragment and its flattened walk (built on the first configure call).
    fragment: Node | None = attrs.field(init=False, default=None, repr=False)
    fragment_steps: tuple[WalkStep, ...] = attrs.field(init=False, default=(), repr=False)
    _index: int = attrs.field(init=False, default=0, repr=False)
    #: The table holding this connector (told of every change, for its watchers).
    _table: DrcTable | None = attrs.field(init=False, default=None, repr=False)
    #: The fragment ``fragment_steps`` came from, with its precomputed answers.
    _walk: Fragment | None = attrs.field(init=False, default=None, repr=False)
    #: configure-connector cursor: next step in ``fragment_steps`` (-1: none) and depth.
    ccs_offset: int = attrs.field(init=False, default=-1)
    ccs_depth: int = attrs.field(init=False, default=-1)
    #: Physical DRCs only (9002); INACTIVE until the first reset.
    dr_indicator: DrIndicator = attrs.field(init=False, default=DrIndicator.INACTIVE)

    def __attrs_post_init__(self) -> None:
        self.machine = _machine_for(self.type)
        self.state = self.machine.empty_state
        self._index = drc_index(self.type, self.id)

    # -- the project's state trace ---------------------------------------------

    @property
    def isolation_state(self) -> IsolationState:
        """Indicator 9001 as the state implies it."""
        return self.machine.isolation_by_state[self.state]

    @property
    def allocation_state(self) -> AllocationState | None:
        """Indicator 9003 as the state implies it (None: a physical DRC has none)."""
        table = self.machine.allocation_by_state
        return None if table is None else table[self.state]

    def _trace_state(
        self,
        op: DrcOperation | StateCause,
        old: DRCState,
        code: RtasStatus | None = None,
        guard: Guard | None = None,
    ) -> None:
        """``drc_state``: what ``op`` did (``old`` → now, its code) and every indicator now.

        Only for connectors that ask for it, and only when someone records. Every
        change of state, device or unplug flag passes here, so the table holding the
        connector learns of it here too (see :meth:`DrcTable.watch`).
        """
        table = self._table
        if table is not None and table._watches:
            table._touch(self)
        if not (self.trace_states and self.trace.active()):
            return
        # (member names come from tables: an enum's .name/.value are Python properties)
        allocation = self.allocation_state
        _status, sense = self.entity_sense()
        self.trace.emit(
            "drc_state",
            index=self.index,
            op=_MEMBER_VALUES[op],
            old=_STATE_NAMES[old],
            new=_STATE_NAMES[self.state],
            code=None if code is None else int(code),
            guard=None if guard is None else _MEMBER_VALUES[guard],
            isolation=_ISOLATION_NAMES[self.isolation_state],
            allocation=None if allocation is None else _ALLOCATION_NAMES[allocation],
            indicator=None if self.is_logical else _INDICATOR_NAMES[self.dr_indicator],
            sense=_SENSE_NAMES[sense],
            attached=self.device is not None,
            unplug_requested=self.unplug_requested,
        )

    # -- identity -----------------------------------------------------------

    @property
    def index(self) -> int:
        """The DRC index the guest uses in every RTAS call (computed once: ``type`` and
        ``id`` name the connector and never change)."""
        return self._index

    @property
    def name(self) -> str:
        """The ``ibm,drc-names`` entry, e.g. ``"CPU 8"``."""
        return drc_name(self.type, self.id)

    @property
    def qom_child_name(self) -> str:
        """Child name under the owner: ``dr-connector[<decimal index>]``."""
        return f"dr-connector[{self.index}]"

    @property
    def container_link_name(self) -> str:
        """Alias name under ``/dr-connector``: the index in lower-case hex."""
        return f"{self.index:x}"

    @property
    def is_logical(self) -> bool:
        """Whether the logical (allocation-state) machine applies."""
        return self.machine is LOGICAL

    # -- queries ------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """No device attached."""
        return self.device is None

    @property
    def is_ready(self) -> bool:
        """In the ready state (CONFIGURED): what a cold-plugged device looks like."""
        return self.state == self.machine.ready_state

    @property
    def awaiting_quiesce(self) -> bool:
        """An unplug is pending and waits for the guest to give the device back."""
        return self.unplug_requested and self.state != self.machine.empty_state

    @property
    def migration_needed(self) -> bool:
        """Whether the ``spapr_drc`` section is sent (QEMU's spapr_drc_needed)."""
        if self.device is None:
            return False
        return self.state != self.machine.ready_state or self.unplug_requested

    # -- the funnel ---------------------------------------------------------

    def _apply(self, op: DrcOperation) -> RtasStatus:
        """Look ``(state, op)`` up in the table, check guards, move, run the effect."""
        transition = self.machine.transitions.get((self.state, op))
        if transition is None:
            raise DrcError(
                f"{self.machine.name} DRC 0x{self.index:x}: no {op.value} in {self.state!r}"
            )
        old = self.state
        for guard in transition.guards:
            if not self._guard_holds(guard):
                self._trace_state(op, old, _GUARD_CODES[guard], guard)
                return _GUARD_CODES[guard]
        if transition.code != RtasStatus.SUCCESS:
            self._trace_state(op, old, transition.code)
            return transition.code
        if transition.to is not None:
            self.state = transition.to
        self._trace_state(op, old, transition.code)
        if transition.effect is Effect.RESET_CURSOR:
            self._rewind()
        elif transition.effect is Effect.RELEASE_IF_UNPLUG:
            if self.unplug_requested:
                self.trace.emit(_FINALIZING_EVENT[op], index=self.index)
                self._release()
        elif (
            transition.effect is Effect.REJECT_UNPLUG
            and self.unplug_requested
            and self.device is not None
        ):
            self.unplug_requested = False
            self._trace_state(StateCause.UNPLUG_REJECTED, self.state)
            self.on_unplug_rejected(self, self.device)
        return transition.code

    def _guard_holds(self, guard: Guard) -> bool:
        if guard is Guard.NEEDS_DEVICE:
            return self.device is not None
        if guard is Guard.NO_UNPLUG_PENDING:
            return not self.unplug_requested
        # Guard.LMB_NEEDS_UNPLUG
        return self.type != DrcType.LMB or self.unplug_requested

    def _rewind(self) -> None:
        self.ccs_offset = 0
        self.ccs_depth = 0

    def _release(self) -> None:
        device = self.device
        self._trace_state(StateCause.RELEASE, self.state)
        self.on_release(self, device)
        self.unplug_requested = False
        self.fragment = None
        self.fragment_steps = ()
        self.device = None
        self._trace_state(StateCause.RELEASED, self.state)

    # -- guest side (RTAS) ----------------------------------------------------

    def set_isolation_state(self, value: int) -> RtasStatus:
        """set-indicator 9001 (isolation-state) with ``value``."""
        self.trace.emit("spapr_drc_set_isolation_state", index=self.index, state=value & _U32)
        if value == IsolationState.ISOLATED:
            return self._apply(_Op.ISOLATE)
        if value == IsolationState.UNISOLATED:
            return self._apply(_Op.UNISOLATE)
        return RtasStatus.PARAM_ERROR

    def set_allocation_state(self, value: int) -> RtasStatus:
        """set-indicator 9003 (allocation-state); physical DRCs have none (-3)."""
        if not self.is_logical:
            return RtasStatus.NO_SUCH_INDICATOR
        self.trace.emit("spapr_drc_set_allocation_state", index=self.index, state=value & _U32)
        if value == AllocationState.USABLE:
            return self._apply(_Op.SET_USABLE)
        if value == AllocationState.UNUSABLE:
            return self._apply(_Op.SET_UNUSABLE)
        return RtasStatus.PARAM_ERROR

    def set_dr_indicator(self, value: int) -> RtasStatus:
        """set-indicator 9002 (dr-indicator): physical DRCs store 0..3; logical ones -3."""
        if self.is_logical:
            return RtasStatus.NO_SUCH_INDICATOR
        if value not in _DR_INDICATOR_VALUES:
            return RtasStatus.PARAM_ERROR
        self.trace.emit("spapr_drc_set_dr_indicator", index=self.index, state=value)
        self.dr_indicator = DrIndicator(value)
        self._trace_state(StateCause.SET_DR_INDICATOR, self.state, RtasStatus.SUCCESS)
        return RtasStatus.SUCCESS

    def entity_sense(self) -> tuple[RtasStatus, EntitySense]:
        """get-sensor-state 9003: logical by state (U reads 2), physical by device."""
        table = self.machine.sense_by_state
        if table is None:
            sense = EntitySense.PRESENT if self.device is not None else EntitySense.EMPTY
        else:
            sense = table[self.state]
        return RtasStatus.SUCCESS, sense

    def configure_connector_step(self) -> CCResponse:
        """One ibm,configure-connector call: the next node/property of the fragment."""
        if self.state not in self.machine.configurable:
            return CCResponse(ConfigureConnector.NOT_CONFIGURABLE)
        if self.fragment is None:
            node = self.build_fragment(self.device)
            if node is None:
                return CCResponse(ConfigureConnector.ERROR)
            fragment = _fragment_of(node)
            self.fragment = fragment.node
            self.fragment_steps = fragment.steps
            self._walk = fragment
            self._rewind()
        steps = self.fragment_steps
        offset = self.ccs_offset
        if not 0 <= offset < len(steps):
            return CCResponse(ConfigureConnector.ERROR)  # past the structure end
        self.ccs_offset = offset + 1
        known = self._walk
        # (the answers hold only while the steps are the fragment's own)
        answer = known.answers[offset] if known is not None and known.steps is steps else None
        if answer is not None:
            if answer.code is ConfigureConnector.NEXT_CHILD:
                self.ccs_depth += 1
            return answer
        step = steps[offset]
        if step.tag is WalkTag.BEGIN_NODE:
            self.ccs_depth += 1
            return CCResponse(ConfigureConnector.NEXT_CHILD, name=step.name)
        if step.tag is WalkTag.PROPERTY:
            return CCResponse(ConfigureConnector.NEXT_PROPERTY, name=step.name, value=step.value)
        self.ccs_depth -= 1
        if self.ccs_depth > 0:
            return CCResponse(ConfigureConnector.PREV_PARENT)
        self.trace.emit("spapr_drc_set_configured", index=self.index)
        old = self.state
        self.state = self.machine.ready_state
        self._rewind()
        self._trace_state(StateCause.CONFIGURED, old, RtasStatus.SUCCESS)
        return CCResponse(ConfigureConnector.SUCCESS)

    # -- host side ----------------------------------------------------------

    def realize(self) -> None:
        """Emit the realize trace events QEMU logs when the connector is created."""
        self.trace.emit("spapr_drc_realize", index=self.index)
        self.trace.emit("spapr_drc_realize_child", index=self.index, childname=self.qom_child_name)
        self.trace.emit("spapr_drc_realize_complete", index=self.index)
        self._trace_state(StateCause.REALIZE, self.state)

    def unrealize(self) -> None:
        """Emit the unrealize trace event (the table forgets the connector)."""
        self.trace.emit("spapr_drc_unrealize", index=self.index)

    def attach(self, device: object) -> None:
        """Plug ``device`` into an empty connector (state stays empty until the guest acts)."""
        if self.device is not None or self.state != self.machine.empty_state:
            raise DrcError(f"DRC 0x{self.index:x} is not empty")
        self.trace.emit("spapr_drc_attach", index=self.index)
        self.device = device
        self._trace_state(StateCause.ATTACH, self.state)

    def detach(self, device: object) -> None:
        """Undo :meth:`attach` (a plug that failed after it): the connector is empty again."""
        if self.device is not device or self.state != self.machine.empty_state:
            raise DrcError(f"DRC 0x{self.index:x} cannot detach in {self.state!r}")
        self.device = None

    def cancel_unplug_request(self) -> None:
        """Undo :meth:`unplug_request` that did not release (a device_del that failed after it)."""
        self.unplug_requested = False

    def unplug_request(self) -> bool:
        """Ask for the device back: released now if the DRC is empty-state, else flagged.

        Returns whether the device was released. Like QEMU's spapr_drc_unplug_request
        it does not check for a request already pending (the caller does).
        """
        self.trace.emit("spapr_drc_unplug_request", index=self.index)
        if self.device is None:
            raise DrcError(f"DRC 0x{self.index:x} has no device to unplug")
        self.unplug_requested = True
        self._trace_state(StateCause.UNPLUG_REQUEST, self.state)
        if self.state != self.machine.empty_state:
            self.trace.emit("spapr_drc_awaiting_quiesce", index=self.index)
            return False
        self._release()
        return True

    def release(self) -> None:
        """Give the device back to its owner now (only in the empty state)."""
        if self.device is None or self.state != self.machine.empty_state:
            raise DrcError(f"DRC 0x{self.index:x} cannot release in {self.state!r}")
        self._release()

    def drop_fragment(self) -> None:
        """Forget the configure-connector fragment and rewind the cursor.

        What a migration destination has: QEMU does not migrate the fragment or the
        cursor, so the next call rebuilds it and starts again at the node.
        """
        self.fragment = None
        self.fragment_steps = ()
        start = 0 if self.device is not None else -1
        self.ccs_offset = start
        self.ccs_depth = start

    def reset(self) -> bool:
        """spapr_drc_reset: finish a pending unplug, then ready if plugged else empty.

        Returns whether an unplug completed (the table then restarts its walk).
        """
        self.trace.emit("spapr_drc_reset", index=self.index)
        completed = False
        if self.unplug_requested:
            self._release()
            completed = True
        old = self.state
        if self.device is not None:
            self.state = self.machine.ready_state
            self._rewind()
        else:
            self.state = self.machine.empty_state
            self.ccs_offset = -1
            self.ccs_depth = -1
        self._trace_state(StateCause.RESET, old)
        return completed

    def reset_dr_indicator(self) -> None:
        """Physical DRCs' own device reset: ACTIVE with a device, else INACTIVE."""
        if not self.is_logical:
            self.dr_indicator = (
                DrIndicator.ACTIVE if self.device is not None else DrIndicator.INACTIVE
            )

    # -- migration ----------------------------------------------------------

    def vmstate(self) -> DrcVmstate | None:
        """The ``spapr_drc`` section, or None when QEMU would not send it."""
        if not self.migration_needed:
            return None
        return DrcVmstate(
            index=self.index,
            state=int(self.state),
            unplug_requested=True if self.unplug_requested else None,
        )

    def physical_vmstate(self) -> DrcPhysicalVmstate | None:
        """The ``spapr_drc/physical`` section, or None when not needed / not physical."""
        if self.is_logical:
            return None
        usual = DrIndicator.ACTIVE if self.device is not None else DrIndicator.INACTIVE
        if self.dr_indicator == usual:
            return None
        return DrcPhysicalVmstate(index=self.index, dr_indicator=int(self.dr_indicator))

    def load_vmstate(self, section: DrcVmstate) -> None:
        """Apply an incoming ``spapr_drc`` section; the fragment is not migrated.

        The destination has never built a fragment, so any cached one is dropped
        and the next configure-connector call rebuilds it from the start.
        """
        if section.index != self.index:
            raise DrcError(f"section for 0x{section.index:x} loaded into 0x{self.index:x}")
        try:
            state = DRCState(section.state)
        except ValueError:
            raise DrcError(f"invalid DRC state {section.state}") from None
        if state not in self.machine.states:
            raise DrcError(f"state {state!r} is not a {self.machine.name} DRC state")
        unplug = (
            self.unplug_requested if section.unplug_requested is None else section.unplug_requested
        )
        if self.device is None and (state != self.machine.empty_state or unplug):
            raise DrcError(f"DRC 0x{self.index:x}: state {state!r} needs an attached device")
        old = self.state
        self.state = state
        self.unplug_requested = unplug
        self.fragment = None
        self.fragment_steps = ()
        if self.device is not None:
            self._rewind()
        self._trace_state(StateCause.MIGRATION, old)

    def load_physical_vmstate(self, section: DrcPhysicalVmstate) -> None:
        """Apply an incoming ``spapr_drc/physical`` section."""
        if self.is_logical or section.index != self.index:
            raise DrcError(f"physical section for 0x{section.index:x} does not fit")
        try:
            self.dr_indicator = DrIndicator(section.dr_indicator)
        except ValueError:
            raise DrcError(f"invalid dr-indicator {section.dr_indicator}") from None


# --------------------------------------------------------------------------
# The set of connectors
# --------------------------------------------------------------------------


@attrs.frozen
class DrcArrays:
    """The four ``ibm,drc-*`` property values (each starts with the BE u32 count)."""

    indexes: bytes
    power_domains: bytes
    names: bytes
    types: bytes


class DrcWatch:
    """What a watcher of a :class:`DrcTable` has to look at again since it last looked.

    A watcher keeps something derived from the connectors (which ones are not at
    rest, which QOM links exist) without walking them all every time: it looks only
    at the connectors :meth:`take` returns.
    """

    __slots__ = ("everything", "touched")

    def __init__(self) -> None:
        #: Every connector may have changed (first look, table changed, iterated).
        self.everything = True
        self.touched: set[DRC] = set()

    def take(self) -> set[DRC] | None:
        """The connectors that may have changed since the last call; None: any may have."""
        if self.everything:
            self.everything = False
            self.touched = set()
            return None
        touched = self.touched
        self.touched = set()
        return touched


def is_at_rest(drc: DRC) -> bool:
    """No unplug pending, and the attached device (if any) configured: nothing to do."""
    if drc.unplug_requested:
        return False
    if drc.device is None and not drc.is_empty:
        return False
    return not (drc.device is not None and not drc.is_ready)


class DrcTable:
    """Every DRC of the machine by index (RTAS lookup), iterated in an order the owner sets.

    QEMU iterates its ``/dr-connector`` container (a hash table); the machine
    passes that order with :meth:`set_order`. Without one, insertion order.

    Watchers (:meth:`watch`) learn which connectors may have changed: every
    connector looked up (:meth:`get`, :meth:`by_id`) or changed through its own
    methods counts; iterating the table, adding, replacing or removing one counts
    as "any may have changed".
    """

    def __init__(self, trace: TraceRecorder | None = None) -> None:
        self.trace = trace if trace is not None else TraceRecorder(keep=False)
        self._by_index: dict[int, DRC] = {}
        self._order: list[int] | None = None
        self._watches: list[DrcWatch] = []

    def watch(self) -> DrcWatch:
        """A new watcher; its first :meth:`DrcWatch.take` says "look at everything"."""
        watch = DrcWatch()
        self._watches.append(watch)
        return watch

    def _touch(self, drc: DRC) -> None:
        for watch in self._watches:
            if not watch.everything:  # (a watcher about to look at everything needs no list)
                watch.touched.add(drc)

    def _touch_all(self) -> None:
        for watch in self._watches:
            watch.everything = True

    def holds(self, drc: DRC) -> bool:
        """Whether ``drc`` itself is the table's connector for its index (not a touch)."""
        return self._by_index.get(drc.index) is drc

    def members(self) -> list[DRC]:
        """Every connector, in no particular order, for a read-only scan (not a touch)."""
        return list(self._by_index.values())

    def add(self, drc: DRC) -> DRC:
        """Register a connector (its index must be new)."""
        if drc.index in self._by_index:
            raise DrcError(f"DRC 0x{drc.index:x} already exists")
        self._by_index[drc.index] = drc
        drc._table = self
        self._touch_all()
        return drc

    def new(self, drc_type: DrcType, id_: int, **hooks: Any) -> DRC:
        """Create, realize (trace) and register a connector sharing this table's recorder."""
        drc = DRC(drc_type, id_, trace=self.trace, **hooks)
        self.add(drc)
        drc.realize()
        return drc

    def replace(self, drc: DRC) -> DRC:
        """Put ``drc`` in place of the connector with its index; returns the one replaced.

        The conformance kit swaps in a checked implementation this way: lookups and
        iteration (in the owner's order) find the new object from then on.
        """
        old = self._by_index[drc.index]
        self._by_index[drc.index] = drc
        if old._table is self:
            old._table = None
        drc._table = self
        self._touch_all()
        return old

    def remove(self, index: int) -> DRC:
        """Unregister a connector (its index no longer resolves for the guest)."""
        drc = self._by_index.pop(index)
        if drc._table is self:
            drc._table = None
        self._touch_all()
        drc.unrealize()
        return drc

    def get(self, index: int) -> DRC | None:
        """The connector with this index, or None (RTAS then answers -3)."""
        drc = self._by_index.get(index & _U32)
        if drc is not None and self._watches:
            # the caller may change it (through methods a subclass overrides, too)
            for watch in self._watches:
                if not watch.everything:
                    watch.touched.add(drc)
        return drc

    def by_id(self, drc_type: DrcType, id_: int) -> DRC | None:
        """The connector of a type and id (QEMU's spapr_drc_by_id)."""
        return self.get(drc_index(drc_type, id_))

    def set_order(self, indexes: Iterable[int]) -> None:
        """Iterate in this order (QEMU's container order); unknown indexes are skipped."""
        self._order = list(indexes)

    def __iter__(self) -> Iterator[DRC]:
        self._touch_all()
        if self._order is None:
            yield from list(self._by_index.values())
            return
        seen: set[int] = set()
        for index in self._order:
            drc = self._by_index.get(index)
            if drc is not None and index not in seen:
                seen.add(index)
                yield drc
        for index, drc in list(self._by_index.items()):
            if index not in seen:
                yield drc

    def __len__(self) -> int:
        return len(self._by_index)

    def __contains__(self, index: object) -> bool:
        return index in self._by_index

    def reset_all(self) -> None:
        """spapr_drc_reset_all: reset each DRC; when one completes an unplug, start over."""
        restart = True
        while restart:
            restart = False
            for drc in self:
                if drc.reset():
                    restart = True
                    break

    def dt_arrays(self, type_mask: int, owner: object = None) -> DrcArrays:
        """``ibm,drc-indexes/-power-domains/-names/-types`` for the DRCs matching the mask."""
        chosen = [
            drc
            for drc in self
            if drc.type.type_bit & type_mask and (owner is None or drc.owner is owner)
        ]
        count = len(chosen).to_bytes(4, "big")
        return DrcArrays(
            indexes=count + b"".join(d.index.to_bytes(4, "big") for d in chosen),
            power_domains=count + b"\xff\xff\xff\xff" * len(chosen),
            names=count + b"".join(d.name.encode() + b"\0" for d in chosen),
            types=count + b"".join((d.type.drc_types_name or "").encode() + b"\0" for d in chosen),
        )
