"""The messages of a handshake, read from its trace: who tells whom what, in order.

Both the SVG sequence diagram and the step-through page draw these. The lanes are
the parties — the monitor/QMP client, the machine (its hotplug handler), each CPU DR
connector the window touches, the event queue, the interrupt controller, RTAS, each
vCPU and the guest kernel — and each message is one arrow between two of them (or a
note on one lane, for a state change):

* ``host_command`` / ``host_reply``: the command and its answer (a refusal is marked);
* ``qmp_event``: an event to the client;
* ``drc_state``: attach, unplug request and release as arrows between the machine and
  the connector; the guest's transitions (and resets) as notes on the connector;
* ``event_queue``: an entry queued (arrow), handed out or dropped (notes);
* ``xics_ics_set_irq_msi``: a pulse of an event source's IRQ (one arrow per pulse,
  which QEMU logs twice: set and clear); ``xics_icp_irq`` / ``xics_icp_check_ipi``:
  delivery to a vCPU; under XIVE (POWER9, POWER10) ``spapr_xive_set_irq`` raising a
  source is the pulse and ``xive_presenter_notify`` (after ``xive_router_end_notify``
  put the event in a queue) the delivery, and the lane is titled XIVE;
* ``rtas_call``: every call, with arguments and result in words (:mod:`.words`); the
  calls of one ``ibm,configure-connector`` walk form a group drawn folded;
* ``rtas_output`` of check-exception: the event log handed to the guest kernel;
* ``vcpu_added``, ``vcpu_removed`` and ``vcpu_state`` changes to or from STOPPED:
  notes on the vCPU's lane.

Nothing here decides protocol questions: every fact comes from an event.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from machine.diagrams import words
from rtas.codes import ConfigureConnector, RtasStatus
from spapr.drc import StateCause
from spapr.trace import TraceEvent
from spapr.xive import SPAPR_XIVE_NVT_BASE, end_target

CONFIGURE_CONNECTOR = "ibm,configure-connector"
#: ``drc_state`` causes drawn as host arrows (machine ↔ connector), the rest as notes.
_DRC_HOST_OPS = {
    StateCause.ATTACH.value: "attach the core",
    StateCause.UNPLUG_REQUEST.value: "unplug request",
}
_DRC_TO_MACHINE_OPS = {
    StateCause.RELEASE.value: "release: give the device back",
    StateCause.UNPLUG_REJECTED.value: "unplug rejected by the guest",
}
#: ``drc_state`` causes not drawn: the first state, and the end of a release.
_DRC_SILENT_OPS = (StateCause.REALIZE.value, StateCause.RELEASED.value)
_STOPPED = "STOPPED"


class LaneKind(enum.Enum):
    """The kinds of party, in the order their lanes are drawn."""

    CLIENT = "client"
    MACHINE = "machine"
    DRC = "drc"
    QUEUE = "queue"
    XICS = "xics"
    RTAS = "rtas"
    VCPU = "vcpu"
    GUEST = "guest"


@attrs.frozen
class Lane:
    """One party: its key (``drc:0x10000002``), kind and header text."""

    key: str
    kind: LaneKind
    title: str
    subtitle: str = ""


class Kind(enum.Enum):
    """What a message is; the pictures style each kind."""

    COMMAND = "command"
    REPLY = "reply"
    QMP_EVENT = "qmp-event"
    DRC_HOST = "drc-host"
    DRC_STATE = "drc-state"
    QUEUE = "queue"
    QUEUE_NOTE = "queue-note"
    PULSE = "pulse"
    IRQ_NOTE = "irq-note"
    DELIVER = "deliver"
    RTAS = "rtas"
    EVENT_LOG = "event-log"
    VCPU_STATE = "vcpu-state"
    GUEST_NOTE = "guest-note"


@attrs.frozen
class Message:
    """One arrow (or note, when source is target) of the diagram: a step of the page."""

    #: 1-based position in the window.
    step: int
    t: int
    kind: Kind
    source: str
    target: str
    label: str
    #: Index (in the whole trace) of the last event this step shows the effect of.
    event: int
    #: Index of the event this message draws (``event`` may be later: what it left).
    drawn: int
    refused: bool = False
    #: The configure-connector walk this call belongs to (1-based), if any.
    group: int | None = None
    #: The RTAS service of an RTAS message, and its status word.
    call: str | None = None
    status: int | None = None

    @property
    def is_note(self) -> bool:
        return self.source == self.target


@attrs.frozen
class CallGroup:
    """The calls of one configure-connector walk, drawn as one folded arrow."""

    number: int
    first_step: int
    last_step: int
    source: str
    label: str
    calls: int
    refused: bool


@attrs.frozen
class Handshake:
    """The lanes, the messages and the folded groups of a window of a trace."""

    lanes: tuple[Lane, ...]
    messages: tuple[Message, ...]
    groups: tuple[CallGroup, ...]
    #: The window, as indexes into the trace.
    start: int
    end: int


def drc_lane(index: int) -> str:
    return f"drc:{words.hex_number(index)}"


def vcpu_lane(vcpu: int) -> str:
    return f"vcpu:{vcpu}"


def _args_text(args: object) -> str:
    if isinstance(args, Mapping):
        return " ".join(f"{k}={v}" for k, v in args.items())
    return "" if args is None else str(args)


def _drc_note(f: Mapping[str, Any]) -> tuple[str, bool]:
    op, old, new = f["op"], words.state_short(f["old"]), words.state_short(f["new"])
    code = f.get("code")
    if code is not None and code < 0:
        guard = f" ({f['guard']})" if f.get("guard") else ""
        return f"✗ {op} refused{guard}: {words.named(code, RtasStatus)} in {old}", True
    return (f"{op}: {old} → {new}" if old != new else f"{op}: stays {new}"), False


class _Reader:
    """Walks the window's events once, turning each into zero or one message."""

    def __init__(self, events: Sequence[TraceEvent], start: int, end: int) -> None:
        self.events = events
        self.start, self.end = start, end
        self.messages: list[Message] = []
        self.drcs: set[int] = set()
        self.vcpus: set[int] = _vcpus_before(events, start)
        self._pulse: tuple[int, int] | None = None
        #: The interrupt controller the window's events come from.
        self.intc = "XICS"
        #: The END the last XIVE notification went through: (index, queue entry).
        self._end: tuple[int, int] = (0, 0)

    def add(self, i: int, kind: Kind, source: str, target: str, label: str, **kw: Any) -> None:
        event = kw.pop("event", i)
        step = len(self.messages) + 1
        self.messages.append(
            Message(step, self.events[i].t, kind, source, target, label, event, i, **kw)
        )

    def read(self) -> None:
        for i in range(self.start, self.end):
            self.one(i, self.events[i])

    def one(self, i: int, e: TraceEvent) -> None:
        """The message of event ``i``, if it draws one (one branch per event name)."""
        f = e.fields
        name = e.name
        if name == "host_command":
            reply = self._reply_of(i)
            refused = reply is not None and reply.fields.get("error") is not None
            label = f"{f['command']} {_args_text(f.get('args'))}".rstrip()
            self.add(i, Kind.COMMAND, "client", "machine", label, refused=refused)
        elif name == "host_reply":
            error = f.get("error")
            label = "return {}" if error is None else f"✗ error: {error}"
            self.add(i, Kind.REPLY, "machine", "client", label, refused=error is not None)
        elif name == "qmp_event":
            label = f"{f['name']} {_args_text(f.get('data'))}".rstrip()
            self.add(i, Kind.QMP_EVENT, "machine", "client", label)
        elif name == "drc_state":
            self._drc_state(i, f)
        elif name == "event_queue":
            self._event_queue(i, f)
        elif name == "xics_ics_set_irq_msi":
            key = (e.t, f["nr"])
            if self._pulse == key:  # the clearing half of the same pulse
                self._pulse = None
                return
            self._pulse = key
            self.add(i, Kind.PULSE, "queue", "xics", f"pulse irq {words.irq_label(f['nr'])}")
        elif name == "xics_masked_pending":
            self.add(i, Kind.IRQ_NOTE, "xics", "xics", "source masked: left pending")
        elif name == "xics_ics_reject":
            self.add(i, Kind.IRQ_NOTE, "xics", "xics", f"irq {words.hex_number(f['nr'])} rejected")
        elif name == "xics_icp_irq":
            label = f"irq {words.irq_label(f['nr'])}, priority {f['priority']}"
            self.add(i, Kind.DELIVER, "xics", self._vcpu(f["server"]), label)
        elif name == "xics_icp_check_ipi":
            label = f"IPI (mfrr {f['mfrr']})"
            self.add(i, Kind.DELIVER, "xics", self._vcpu(f["server"]), label)
        elif name == "spapr_xive_set_irq":
            self.intc = "XIVE"
            if f["val"]:  # the lowering half of a pulse is not drawn
                self.add(i, Kind.PULSE, "queue", "xics", f"pulse irq {words.irq_label(f['lisn'])}")
        elif name == "xive_router_end_notify":
            self._end = (f["end_idx"], f["end_data"])
        elif name == "xive_presenter_notify":
            self.intc = "XIVE"
            end_idx, entry = self._end
            label = f"queue entry {words.hex_number(entry)}, priority {end_target(end_idx)[1]}"
            self.add(i, Kind.DELIVER, "xics", self._vcpu(f["nvt_idx"] - SPAPR_XIVE_NVT_BASE), label)
        elif name == "rtas_call":
            self._rtas_call(i, f)
        elif name == "rtas_output" and f.get("event_log"):
            log = bytes.fromhex(f["event_log"])
            label = f"event log in {words.hex_number(f['buffer'])}: {words.describe_event_log(log)}"
            self.add(i, Kind.EVENT_LOG, "rtas", "guest", label)
        elif name == "vcpu_added":
            self.vcpus.add(f["vcpu"])
            self.add(i, Kind.VCPU_STATE, vcpu_lane(f["vcpu"]), vcpu_lane(f["vcpu"]), "created")
        elif name == "vcpu_removed":
            self.vcpus.add(f["vcpu"])
            self.add(i, Kind.VCPU_STATE, vcpu_lane(f["vcpu"]), vcpu_lane(f["vcpu"]), "removed")
        elif name == "vcpu_state" and _STOPPED in (f["old"], f["new"]):
            self.vcpus.add(f["vcpu"])
            lane = vcpu_lane(f["vcpu"])
            label = f"{words.words(f['old'])} → {words.words(f['new'])}"
            self.add(i, Kind.VCPU_STATE, lane, lane, label)
        elif name in ("guest_error", "guest_os_term"):
            self.add(i, Kind.GUEST_NOTE, "guest", "guest", f"{name}: {f.get('message', '')}")
        elif name == "guest_unplug_rejected":
            label = f"rejected the unplug of {f.get('device')}"
            self.add(i, Kind.GUEST_NOTE, "guest", "guest", label, refused=True)

    def _vcpu(self, vcpu: int) -> str:
        """The lane of a vCPU (an interrupt server is a vCPU id in this machine)."""
        self.vcpus.add(vcpu)
        return vcpu_lane(vcpu)

    def _reply_of(self, i: int) -> TraceEvent | None:
        for j in range(i + 1, len(self.events)):
            name = self.events[j].name
            if name == "host_reply":
                return self.events[j]
            if name == "host_command":
                return None
        return None

    def _drc_state(self, i: int, f: Mapping[str, Any]) -> None:
        op = f["op"]
        if op in _DRC_SILENT_OPS:
            return
        lane = drc_lane(f["index"])
        self.drcs.add(f["index"])
        if op in _DRC_HOST_OPS:
            self.add(i, Kind.DRC_HOST, "machine", lane, _DRC_HOST_OPS[op])
        elif op in _DRC_TO_MACHINE_OPS:
            refused = op == StateCause.UNPLUG_REJECTED.value
            self.add(i, Kind.DRC_HOST, lane, "machine", _DRC_TO_MACHINE_OPS[op], refused=refused)
        else:
            label, refused = _drc_note(f)
            self.add(i, Kind.DRC_STATE, lane, lane, label, refused=refused)

    def _event_queue(self, i: int, f: Mapping[str, Any]) -> None:
        op = f["op"]
        entry = f.get("entry")
        pending = f.get("pending_total", len(f.get("pending", [])))  # long queues: a count
        if op == "queued" and entry is not None:
            label = f"queue {words.pending_entry_words(entry)}"
            self.add(i, Kind.QUEUE, "machine", "queue", label)
            return
        what = f" {words.describe_event_log(bytes.fromhex(entry['log']))}" if entry else ""
        label = f"{op}{what}; {pending} pending"
        self.add(i, Kind.QUEUE_NOTE, "queue", "queue", label)

    def _rtas_call(self, i: int, f: Mapping[str, Any]) -> None:
        rets = f.get("rets") or []
        call = words.describe_call(f["name"], f.get("args", []), rets)
        vcpu = f["vcpu"]
        self.vcpus.add(vcpu)
        # the step shows what the call left in guest memory too (its rtas_output)
        event = i
        label = call.line()
        if i + 1 < self.end and self.events[i + 1].name == "rtas_output":
            event = i + 1
            item = self.events[i + 1].fields.get("item")
            if item:  # the node or property the work area now names
                label += f" {item}"
        self.add(
            i,
            Kind.RTAS,
            vcpu_lane(vcpu),
            "rtas",
            label,
            refused=call.refused,
            call=f["name"],
            status=rets[0] if rets else None,
            event=event,
        )


def _vcpus_before(events: Sequence[TraceEvent], start: int) -> set[int]:
    """The vCPUs that exist when the window opens."""
    alive: set[int] = set()
    for e in events[:start]:
        if e.name == "vcpu_added":
            alive.add(e.fields["vcpu"])
        elif e.name == "vcpu_removed":
            alive.discard(e.fields["vcpu"])
    return alive


def _group_calls(messages: list[Message]) -> tuple[list[Message], list[CallGroup]]:
    """Mark each configure-connector walk (two calls or more) as one group."""
    groups: list[CallGroup] = []
    out = list(messages)
    i = 0
    while i < len(out):
        first = out[i]
        if first.call != CONFIGURE_CONNECTOR:
            i += 1
            continue
        last = i
        j = i + 1
        while j < len(out) and (
            (out[j].call == CONFIGURE_CONNECTOR and out[j].source == first.source)
            or out[j].kind is Kind.DRC_STATE
        ):
            if out[j].call == CONFIGURE_CONNECTOR:
                last = j
            j += 1
        members = out[i : last + 1]
        calls = [m for m in members if m.call == CONFIGURE_CONNECTOR]
        if len(calls) >= 2:
            number = len(groups) + 1
            for k in range(i, last + 1):
                out[k] = attrs.evolve(out[k], group=number)
            groups.append(
                CallGroup(
                    number=number,
                    first_step=first.step,
                    last_step=out[last].step,
                    source=first.source,
                    label=_group_label(calls, out[last].label),
                    calls=len(calls),
                    refused=any(m.refused for m in members),
                )
            )
        i = last + 1
    return out, groups


def _group_label(calls: Sequence[Message], last_label: str) -> str:
    """``ibm,configure-connector ×30: 1 node, 27 properties → 0 success``."""
    final = last_label.rpartition(" → ")[2]
    nodes = sum(1 for c in calls if c.status == ConfigureConnector.NEXT_CHILD)
    props = sum(1 for c in calls if c.status == ConfigureConnector.NEXT_PROPERTY)
    return (
        f"{CONFIGURE_CONNECTOR} ×{len(calls)}: {nodes} node{'s' if nodes != 1 else ''}, "
        f"{props} propert{'ies' if props != 1 else 'y'} → {final}"
    )


def _lanes(drcs: set[int], vcpus: set[int], intc: str = "XICS") -> tuple[Lane, ...]:
    lanes = [
        Lane("client", LaneKind.CLIENT, "monitor / QMP client"),
        Lane("machine", LaneKind.MACHINE, "machine", "hotplug handler"),
    ]
    lanes += [
        Lane(drc_lane(i), LaneKind.DRC, words.cpu_drc_name(i), words.hex_number(i))
        for i in sorted(drcs)
    ]
    lanes += [
        Lane("queue", LaneKind.QUEUE, "event queue", "check-exception"),
        Lane("xics", LaneKind.XICS, "interrupt controller", intc),
        Lane("rtas", LaneKind.RTAS, "RTAS", "H_RTAS"),
    ]
    lanes += [
        Lane(vcpu_lane(v), LaneKind.VCPU, f"vCPU {v}", "hardware thread") for v in sorted(vcpus)
    ]
    lanes.append(Lane("guest", LaneKind.GUEST, "guest kernel", "Linux"))
    return tuple(lanes)


def read_handshake(events: Sequence[TraceEvent], start: int, end: int) -> Handshake:
    """The lanes and messages of the events ``[start, end)`` of a trace."""
    reader = _Reader(events, start, end)
    reader.read()
    messages, groups = _group_calls(reader.messages)
    lanes = _lanes(reader.drcs, reader.vcpus, reader.intc)
    return Handshake(lanes, tuple(messages), tuple(groups), start, end)
