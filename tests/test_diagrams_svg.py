"""The SVG pictures, parsed as XML and checked against the trace's facts.

Sequence diagram: one lane per party (each CPU connector the window touches, each
vCPU), one element per message: every host command, reply, QMP event, RTAS call and
interrupt pulse of the window, refusals marked, a configure-connector walk folded into
one group. State diagram: the states and arrows of spapr/drc.py's own table, the
transitions the trace took numbered in order, the refused allocate marked.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

import attrs
import pytest
from diagram_runs import CORE2_DRC, CORE3_DRC, hotplug_run

from machine.diagrams import svg
from machine.diagrams.messages import read_handshake
from machine.diagrams.state_diagram import state_diagram_svg
from machine.diagrams.svg_sequence import sequence_svg
from machine.diagrams.trace_window import TraceWindow, window_bounds
from machine.diagrams.words import describe_call
from spapr.drc import (
    LOGICAL,
    LOGICAL_TRANSITIONS,
    DrcMachine,
    DrcOperation,
    DRCState,
    Transition,
)
from spapr.trace import TraceEvent

NS = {"s": svg.SVG_NS}


def draw(window: TraceWindow | None = None) -> tuple[ET.Element, range]:
    events = hotplug_run().events
    window = window if window is not None else TraceWindow()
    start, end = window_bounds(events, window)
    text = svg.to_text(sequence_svg(read_handshake(events, start, end)))
    return ET.fromstring(text.encode()), range(start, end)


def messages(root: ET.Element, kind: str | None = None) -> list[ET.Element]:
    found = [g for g in root.iter(f"{{{svg.SVG_NS}}}g") if "message" in g.get("class", "").split()]
    return [g for g in found if kind is None or g.get("data-kind") == kind]


def label(g: ET.Element) -> str:
    return "".join(t.text or "" for t in g.findall("s:text", NS) if t.get("class") == "label")


def in_window(window: range, name: str) -> list[tuple[int, TraceEvent]]:
    events = hotplug_run().events
    return [(i, events[i]) for i in window if events[i].name == name]


def test_lanes_are_the_parties_of_the_trace() -> None:
    root, window = draw()
    lanes = [g.get("data-lane") for g in root.iter(f"{{{svg.SVG_NS}}}g") if g.get("data-lane")]
    touched = {
        e.fields["index"] for _, e in in_window(window, "drc_state") if e.fields["op"] != "realize"
    }
    events = hotplug_run().events
    alive = {e.fields["vcpu"] for e in events[: window.start] if e.name == "vcpu_added"}
    alive -= {e.fields["vcpu"] for e in events[: window.start] if e.name == "vcpu_removed"}
    vcpus = alive | {e.fields["vcpu"] for _, e in in_window(window, "vcpu_added")}
    assert lanes == [
        "client",
        "machine",
        *[f"drc:0x{i:x}" for i in sorted(touched)],
        "queue",
        "xics",
        "rtas",
        *[f"vcpu:{v}" for v in sorted(vcpus)],
        "guest",
    ]
    assert touched == {CORE2_DRC, CORE3_DRC}


def test_one_arrow_per_rtas_call_with_its_words() -> None:
    root, window = draw()
    calls = in_window(window, "rtas_call")
    drawn = messages(root, "rtas")
    assert len(drawn) == len(calls)
    for g, (i, call) in zip(drawn, calls, strict=True):
        f = call.fields
        assert int(g.get("data-t", "")) == call.t
        assert g.get("data-from") == f"vcpu:{f['vcpu']}" and g.get("data-to") == "rtas"
        words = describe_call(f["name"], f["args"], f["rets"])
        assert label(g).removeprefix("✗ ").startswith(f"{words.call} → {words.status}")
        assert ("refused" in g.get("class", "")) == (f["rets"][0] < 0)
        assert int(g.get("data-event", "")) in (i, i + 1)


def test_commands_replies_events_and_pulses_each_get_one_arrow() -> None:
    root, window = draw()
    assert len(messages(root, "command")) == len(in_window(window, "host_command"))
    assert len(messages(root, "reply")) == len(in_window(window, "host_reply"))
    assert len(messages(root, "qmp-event")) == len(in_window(window, "qmp_event"))
    # QEMU logs a pulse twice (raise, then lower): one arrow each; POWER9 runs XIVE
    raised = [e for _, e in in_window(window, "spapr_xive_set_irq") if e.fields["val"]]
    halves = len(in_window(window, "xics_ics_set_irq_msi"))
    assert raised and len(messages(root, "pulse")) == len(raised) + halves // 2
    refused = [g for g in messages(root) if "refused" in g.get("class", "").split()]
    kinds = Counter(g.get("data-kind") for g in refused)
    assert kinds == {"command": 1, "reply": 1, "drc-state": 1, "rtas": 1}
    (reply,) = [g for g in refused if g.get("data-kind") == "reply"]
    assert "core 2 already populated" in label(reply)


def test_a_power9_hot_plug_interrupt_goes_through_xive() -> None:
    """The source raised (spapr_xive_set_irq) and the thread context the router found
    (xive_presenter_notify, after xive_router_end_notify queued the entry) each draw an
    arrow, on a lane titled XIVE; a window without XIVE events keeps XICS."""
    root, window = draw()
    (lane,) = [g for g in root.iter(f"{{{svg.SVG_NS}}}g") if g.get("data-lane") == "xics"]
    assert "XIVE" in [t.text for t in lane.iter(f"{{{svg.SVG_NS}}}text")]
    raised = [e for _, e in in_window(window, "spapr_xive_set_irq") if e.fields["val"]]
    pulses = messages(root, "pulse")
    assert [int(g.get("data-t", "")) for g in pulses] == [e.t for e in raised]
    for g, e in zip(pulses, raised, strict=True):
        assert (g.get("data-from"), g.get("data-to")) == ("queue", "xics")
        assert label(g) == f"pulse irq 0x{e.fields['lisn']:x} hot-plug-events"
    events = hotplug_run().events
    found = in_window(window, "xive_presenter_notify")
    delivered = messages(root, "deliver")
    assert len(delivered) == len(found) >= len(raised)
    for g, (i, e) in zip(delivered, found, strict=True):
        (queued,) = [q for q in events[:i] if q.name == "xive_router_end_notify"][-1:]
        assert g.get("data-to") == f"vcpu:{e.fields['nvt_idx'] - 0x400}"
        priority = queued.fields["end_idx"] % 8
        assert label(g) == f"queue entry 0x{queued.fields['end_data']:x}, priority {priority}"
    (xics,) = [lane for lane in read_handshake(events, 0, 0).lanes if lane.key == "xics"]
    assert xics.subtitle == "XICS"


def test_drc_state_changes_sit_on_their_connectors_lane() -> None:
    root, window = draw()
    notes = messages(root, "drc-state")
    changes = [
        e
        for _, e in in_window(window, "drc_state")
        if e.fields["op"] in ("set-usable", "unisolate", "configured", "isolate", "set-unusable")
    ]
    assert len(notes) == len(changes)
    for g, e in zip(notes, changes, strict=True):
        lane = f"drc:0x{e.fields['index']:x}"
        assert g.get("data-from") == g.get("data-to") == lane
        assert e.fields["op"] in label(g)


def test_a_configure_connector_walk_is_one_folded_group() -> None:
    root, window = draw()
    groups = [g for g in root.iter(f"{{{svg.SVG_NS}}}g") if "cc-group" in g.get("class", "")]
    walk = [
        e
        for _, e in in_window(window, "rtas_call")
        if e.fields["name"] == "ibm,configure-connector"
    ]
    (group,) = groups
    assert int(group.get("data-calls", "")) == len(walk)
    assert "folded" in group.get("class", "")
    members = [g for g in messages(root) if g.get("data-group") == group.get("data-group")]
    cc = [g for g in members if g.get("data-kind") == "rtas"]
    assert len(cc) == len(walk)
    assert all(g.get("display") == "none" for g in members)  # unfolded by the page


def test_op_and_time_windows() -> None:
    events = hotplug_run().events
    root, window = draw(TraceWindow(op=3))
    commands = messages(root, "command")
    assert [label(g).split()[0] for g in commands] == ["device_del"]
    assert all(events[window.start].t <= int(g.get("data-t", "")) for g in messages(root))
    root, window = draw(TraceWindow(since_ms=0, until_ms=1))
    assert messages(root, "command") == []
    assert all(int(g.get("data-t", "")) <= 1_000_000 for g in messages(root))
    with pytest.raises(ValueError, match="no host operation 9"):
        draw(TraceWindow(op=9))


# ---------------------------------------------------------------- the state diagram


def states_svg(machine: DrcMachine = LOGICAL) -> ET.Element:
    events = hotplug_run().events
    start, end = window_bounds(events, TraceWindow())
    root = state_diagram_svg(events, start, end, machine=machine)
    return ET.fromstring(svg.to_text(root).encode())


def test_the_state_diagram_is_the_tables_own() -> None:
    root = states_svg()
    states = {g.get("data-state") for g in root.iter() if g.get("data-state")}
    assert states == {s.name for s in LOGICAL.states}
    edges = {
        (g.get("data-from"), g.get("data-op"), g.get("data-to"))
        for g in root.iter()
        if "edge" in g.get("class", "").split()
    }
    moving = {
        (s.name, op.value, t.to.name)
        for (s, op), t in LOGICAL_TRANSITIONS.items()
        if t.to is not None and t.to != s
    }
    assert edges == moving | {("LOGICAL_UNISOLATE", "configured", "LOGICAL_CONFIGURED")}


def test_a_changed_table_changes_the_picture() -> None:
    """Nothing about the states is written twice: a new cell shows up as a new arrow."""
    table = dict(LOGICAL_TRANSITIONS)
    table[(DRCState.LOGICAL_CONFIGURED, DrcOperation.SET_UNUSABLE)] = Transition(
        DRCState.LOGICAL_UNUSABLE
    )
    root = states_svg(attrs.evolve(LOGICAL, transitions=table))
    edges = {(g.get("data-from"), g.get("data-op")) for g in root.iter() if g.get("data-op")}
    assert ("LOGICAL_CONFIGURED", "set-unusable") in edges


def test_taken_transitions_are_numbered_in_trace_order_and_refusals_marked() -> None:
    events = hotplug_run().events
    start, end = window_bounds(events, TraceWindow())
    expected = [
        (i, e.fields["op"], e.fields["old"], e.fields["new"])
        for i in range(start, end)
        if (e := events[i]).name == "drc_state"
        and e.fields["op"]
        in ({op.value for op in DrcOperation} | {"configured", "reset", "migration"})
    ]
    root = states_svg()
    marks = sorted(
        (
            (int(el.get("data-seq", "")), int(el.get("data-event", "")), el.get("data-op"))
            + (el.get("data-from"), el.get("data-to"))
            for el in root.iter()
            if el.get("data-seq")
        ),
    )
    assert [m[0] for m in marks] == list(range(1, len(expected) + 1))
    assert [m[1:] for m in marks] == expected
    refused = [el for el in root.iter() if "refused" in el.get("class", "").split()]
    (mark,) = refused
    assert mark.get("data-op") == "set-usable" and mark.get("data-code") == "-3"
    assert mark.get("data-index") == f"0x{CORE3_DRC:x}"
    assert "needs-device" in (mark.text or "")
