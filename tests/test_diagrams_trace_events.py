"""The project trace events the pictures read: drc_state, event_queue, host_reply, rtas_output.

Each is checked against something other than its own emitter: the connector's
handshake as protocol.md tells it, the live machine at quiet points, rtas' event-log
decoder, fdt's walk of the node the machine builds, QEMU's refusal text. And they stay
cheap: with nobody recording, no state is even looked at.
"""

from __future__ import annotations

import io

import pytest
from diagram_runs import ARGV, CORE, CORE2_DRC, CORE3_DRC, S, hotplug_run

from fdt import WalkTag, walk
from guest import GuestTiming, LinuxGuest
from machine.board.build import build_machine
from rtas.errlog import HotplugAction, HotplugResource, decode_event_log
from spapr.drc import DRC, DrcType
from spapr.events import EventQueue
from spapr.trace import TraceEvent, TraceRecorder


def of(event: str, /, **match: object) -> list[TraceEvent]:
    """The run's events of one name whose fields match ``match``."""
    return [
        e
        for e in hotplug_run().events
        if e.name == event and all(e.fields.get(k) == v for k, v in match.items())
    ]


def test_the_connector_of_core_2_walks_the_handshake_of_protocol_md() -> None:
    steps = [
        (e.fields["op"], e.fields["old"], e.fields["new"], e.fields["code"])
        for e in of("drc_state", index=CORE2_DRC)
        if e.fields["op"] not in ("realize", "reset")
    ]
    u, a, i, c = (f"LOGICAL_{s}" for s in ("UNUSABLE", "AVAILABLE", "UNISOLATE", "CONFIGURED"))
    assert steps == [
        ("attach", u, u, None),
        ("set-usable", u, a, 0),
        ("unisolate", a, i, 0),
        ("configured", i, c, 0),
        ("unplug-request", c, c, None),
        ("isolate", c, a, 0),
        ("set-unusable", a, u, 0),
        ("release", u, u, None),
        ("released", u, u, None),
    ]


def test_the_last_drc_state_is_the_live_connector_at_every_quiet_point() -> None:
    run = hotplug_run()
    for point in run.checkpoints:
        latest: dict[int, dict[str, object]] = {}
        for e in run.events[: point.events]:
            if e.name == "drc_state":
                latest[e.fields["index"]] = dict(e.fields)
        assert set(latest) == set(point.drcs), point.label
        for index, live in point.drcs.items():
            seen = latest[index]
            assert seen["new"] == live["state"], (point.label, index)
            assert seen["sense"] == live["sense"]
            assert seen["attached"] == live["attached"]
            assert seen["unplug_requested"] == live["unplug_requested"]
            assert seen["indicator"] is None  # logical connectors have no dr-indicator


def test_a_refused_transition_is_traced_with_its_code_and_guard() -> None:
    (refusal,) = of("drc_state", index=CORE3_DRC, op="set-usable")
    assert refusal.fields["code"] == -3
    assert refusal.fields["guard"] == "needs-device"
    assert refusal.fields["old"] == refusal.fields["new"] == "LOGICAL_UNUSABLE"


def test_only_cpu_connectors_trace_their_states() -> None:
    indexes = {e.fields["index"] for e in of("drc_state")}
    assert indexes == {0x10000000, 0x10000001, CORE2_DRC, CORE3_DRC}
    # a connector made outside the machine (the unit tests' kind) traces no states
    recorder = TraceRecorder()
    drc = DRC(DrcType.CPU, 2, trace=recorder)
    drc.attach(object())
    assert [e.name for e in recorder.events] == ["spapr_drc_attach"]


def test_event_queue_shows_every_pending_entry_as_routed() -> None:
    changes = of("event_queue")
    assert [e.fields["op"] for e in changes] == ["queued", "dequeued", "queued", "dequeued"]
    for change, action in zip(changes[::2], [HotplugAction.ADD, HotplugAction.REMOVE], strict=True):
        (pending,) = change.fields["pending"]
        assert pending == change.fields["entry"]
        # Linux negotiated OV5_HP_EVT at CAS: the dedicated hotplug source and its IRQ
        assert (pending["source"], pending["irq"]) == ("hot-plug-events", 0x1001)
        hp = decode_event_log(bytes.fromhex(pending["log"])).hotplug
        assert hp is not None
        assert (hp.resource, hp.action, hp.drc_index) == (HotplugResource.CPU, action, CORE2_DRC)
    assert all(e.fields["pending"] == [] for e in changes[1::2])


def test_check_exception_output_is_the_dequeued_entry() -> None:
    logs = of("rtas_output", name="check-exception")
    dequeued = [e.fields["entry"]["log"] for e in of("event_queue", op="dequeued")]
    assert [e.fields["event_log"] for e in logs] == dequeued
    assert all(e.fields["buffer"] == 0x1000000 for e in logs)


def test_configure_connector_outputs_are_fdts_walk_of_the_core_node() -> None:
    machine = build_machine(ARGV, io.StringIO())
    machine.load_guest(LinuxGuest(timing=GuestTiming(event_scan=False)))
    machine.reset()
    machine.sched.run_for(3 * S)
    mark = len(machine.trace.events)
    core = machine.device_add({"driver": CORE, "id": "core2", "core-id": 2})
    machine.sched.run_for(2 * S)
    outputs = [
        (e.fields["kind"], e.fields["item"], e.fields["value"])
        for e in machine.trace.events[mark:]
        if e.name == "rtas_output" and e.fields["name"] == "ibm,configure-connector"
    ]
    expected: list[tuple[str | None, str | None, str | None]] = []
    for step in walk(machine.hotplug.build_fragment(core)):
        if step.tag is WalkTag.BEGIN_NODE:
            expected.append(("node", step.name, None))
        elif step.tag is WalkTag.PROPERTY:
            expected.append(("property", step.name, bytes(step.value or b"").hex()))
        else:
            expected.append((None, None, None))
    assert outputs == expected
    assert all(
        e.fields["index"] == CORE2_DRC for e in of("rtas_output", name="ibm,configure-connector")
    )


def test_every_host_command_has_a_reply_with_qemus_refusal_text() -> None:
    run = hotplug_run()
    pairs = []
    for i, e in enumerate(run.events):
        if e.name == "host_command":
            reply = next(r for r in run.events[i + 1 :] if r.name == "host_reply")
            pairs.append((e.fields["command"], reply.fields["command"], reply.fields["error"]))
    assert pairs == [
        ("device_add", "device_add", None),
        ("device_add", "device_add", "core 2 already populated"),
        ("device_del", "device_del", None),
    ]


def test_new_vcpus_are_traced_stopped() -> None:
    (added,) = of("vcpu_added", vcpu=2)
    assert added.fields["state"] == "STOPPED"


def test_nothing_is_looked_at_when_nobody_records(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object) -> None:
        raise AssertionError("state computed for a trace nobody records")

    monkeypatch.setattr(DRC, "entity_sense", boom)
    monkeypatch.setattr(EventQueue, "_describe", boom)
    quiet = TraceRecorder(keep=False)
    drc = DRC(DrcType.CPU, 2, trace=quiet, trace_states=True)
    drc.attach(object())
    assert drc.set_allocation_state(1) == 0
    queue = EventQueue(
        pulse_irq=lambda irq: None, rtc=lambda: ((2016, 9, 1), (0, 0, 0)), trace=quiet
    )
    queue.queue_hotplug(HotplugAction.ADD, drc.index)
    assert queue.dequeue(0xFFFFFFFF) is not None
    assert quiet.events == []
