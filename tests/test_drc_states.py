"""The ``drc_state`` trace event: every indicator of a CPU connector after each operation.

README ("Trace"): besides QEMU's events the trace carries ``drc_state``, "every
indicator of a CPU connector after each operation, with the operation, old and new
state, code and failed guard". The expected transitions and codes are protocol.md
§5.4's tables (QEMU 7.2 ``hw/ppc/spapr_drc.c``), transcribed independently in
``tests/test_drc.py`` (``expect_logical_*``), which this file reuses; the indicators
a state implies are PAPR's (§13.5.3.3 / §13.5.3.4, protocol.md §5.5): U reads
ISOLATED / UNUSABLE / sense UNUSABLE, A ISOLATED / USABLE / PRESENT, I and C
UNISOLATED / USABLE / PRESENT. A physical (PCI) connector has no allocation state,
senses PRESENT or EMPTY by device, and shows its dr-indicator.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_drc import (
    DEV,
    LOGICAL_CONFIGS,
    LOGICAL_LETTERS,
    Owner,
    expect_logical_allocation,
    expect_logical_isolation,
    make,
)

from fdt import Node, Property
from spapr.drc import DRC, DrcTable, DrcType, DrcVmstate
from spapr.trace import TraceRecorder

#: (isolation, allocation, sense) as PAPR ties them to the logical states.
IMPLIED = {
    "U": ("ISOLATED", "UNUSABLE", "UNUSABLE"),
    "A": ("ISOLATED", "USABLE", "PRESENT"),
    "I": ("UNISOLATED", "USABLE", "PRESENT"),
    "C": ("UNISOLATED", "USABLE", "PRESENT"),
}
NAMES = {letter: state.name for letter, state in LOGICAL_LETTERS.items()}
IDX = 0x10000002


def traced(
    letter: str, device: bool, unplug: bool, drc_type: DrcType = DrcType.CPU
) -> tuple[DRC, Owner, TraceRecorder]:
    drc, owner, rec = make(drc_type, letter, device, unplug)
    drc.trace_states = True
    return drc, owner, rec


def states(rec: TraceRecorder) -> list[dict[str, Any]]:
    return [dict(e.fields) for e in rec.select("drc_state")]


def state_event(
    op: str,
    old: str,
    new: str,
    *,
    code: int | None,
    guard: str | None = None,
    attached: bool,
    unplug: bool,
    index: int = IDX,
) -> dict[str, Any]:
    isolation, allocation, sense = IMPLIED[new]
    return {
        "index": index,
        "op": op,
        "old": NAMES[old],
        "new": NAMES[new],
        "code": code,
        "guard": guard,
        "isolation": isolation,
        "allocation": allocation,
        "indicator": None,
        "sense": sense,
        "attached": attached,
        "unplug_requested": unplug,
    }


def failed_guard(letter: str, device: bool, unplug: bool, op: str) -> str | None:
    """Which precondition a refusal failed (protocol.md §5.4's "no device attached",
    "unplug_requested"); None when the refusal is the table's own."""
    if op == "set-usable" and letter == "U":
        if not device:
            return "needs-device"
        if unplug:
            return "no-unplug-pending"
    return None


OPS = [
    ("set-unusable", 9003, 0),
    ("set-usable", 9003, 1),
    ("isolate", 9001, 0),
    ("unisolate", 9001, 1),
]


@pytest.mark.parametrize(("op", "kind", "value"), OPS)
@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_every_logical_operation_is_traced_with_its_outcome(
    config: tuple[str, bool, bool], op: str, kind: int, value: int
) -> None:
    """One ``drc_state`` per set-indicator: the operation, old and new state, the rc
    (refusals included) and the failed guard, then the indicators of the new state;
    a release adds "release" (device still attached) and "released" (connector
    empty), a rejected unplug adds "unplug-rejected" (flag cleared)."""
    letter, device, unplug = config
    drc, _owner, rec = traced(*config)
    if kind == 9003:
        rc = drc.set_allocation_state(value)
        new, code, released, rejected = expect_logical_allocation(letter, device, unplug, value)
    else:
        rc = drc.set_isolation_state(value)
        new, code, released, rejected = expect_logical_isolation(letter, device, unplug, value)
    assert rc == code
    expected = [
        state_event(
            op,
            letter,
            new,
            code=code,
            guard=failed_guard(letter, device, unplug, op) if code else None,
            attached=device,
            unplug=unplug,
        )
    ]
    if released:
        expected.append(state_event("release", new, new, code=None, attached=True, unplug=True))
        expected.append(state_event("released", new, new, code=None, attached=False, unplug=False))
    if rejected:
        expected.append(
            state_event("unplug-rejected", new, new, code=None, attached=True, unplug=False)
        )
    assert states(rec) == expected


def test_an_lmb_isolate_refused_for_want_of_an_unplug_names_its_guard() -> None:
    """C + ISOLATE on an LMB without unplug_requested answers -1 and stays C
    (protocol.md §5.4); the event names the guard."""
    drc, _owner, rec = traced("C", True, False, DrcType.LMB)
    assert drc.set_isolation_state(0) == -1
    (event,) = states(rec)
    assert (event["op"], event["old"], event["new"], event["code"], event["guard"]) == (
        "isolate",
        NAMES["C"],
        NAMES["C"],
        -1,
        "lmb-needs-unplug",
    )


def test_a_value_outside_the_table_changes_nothing_and_is_not_an_operation() -> None:
    """Values other than 0 and 1 are refused (-3) before any transition is tried."""
    drc, _owner, rec = traced("A", True, False)
    assert drc.set_isolation_state(2) == -3
    assert drc.set_allocation_state(3) == -3
    assert states(rec) == []
    assert drc.state == LOGICAL_LETTERS["A"]


def walk_owner(device: Any) -> Node:
    return Node(f"PowerPC,TEST@{device}", properties=[Property("reg", b"\0\0\0\x08")])


def test_host_operations_are_traced_too() -> None:
    """Realize, attach, the end of the configure-connector walk, unplug request, reset
    (which completes a pending unplug) and a migration load: each a ``drc_state`` with
    its cause; only the walk's end carries a code (0)."""
    rec = TraceRecorder()
    table = DrcTable(rec)
    owner = Owner()
    drc = table.new(
        DrcType.CPU,
        2,
        trace_states=True,
        on_release=owner.on_release,
        build_fragment=walk_owner,
    )
    drc.attach(DEV)
    assert drc.set_allocation_state(1) == 0
    assert drc.set_isolation_state(1) == 0
    codes = [drc.configure_connector_step().code for _ in range(3)]
    assert [int(c) for c in codes] == [2, 3, 0]  # NEXT_CHILD, NEXT_PROPERTY, SUCCESS
    drc.unplug_request()
    drc.reset()
    got = [
        (e["op"], e["old"], e["new"], e["code"], e["attached"], e["unplug_requested"])
        for e in states(rec)
    ]
    u, a, i, c = NAMES["U"], NAMES["A"], NAMES["I"], NAMES["C"]
    assert got == [
        ("realize", u, u, None, False, False),
        ("attach", u, u, None, True, False),
        ("set-usable", u, a, 0, True, False),
        ("unisolate", a, i, 0, True, False),
        ("configured", i, c, 0, True, False),
        ("unplug-request", c, c, None, True, True),
        ("release", c, c, None, True, True),
        ("released", c, c, None, False, False),
        ("reset", c, u, None, False, False),
    ]
    other = table.new(DrcType.CPU, 3, trace_states=True)
    other.attach("core3")
    rec.clear()
    other.load_vmstate(
        DrcVmstate(index=other.index, state=int(LOGICAL_LETTERS["A"]), unplug_requested=True)
    )
    (event,) = states(rec)
    assert (event["op"], event["old"], event["new"], event["unplug_requested"], event["index"]) == (
        "migration",
        u,
        a,
        True,
        0x10000003,
    )


def test_a_connector_that_does_not_ask_is_not_traced_and_nobody_recording_costs_nothing() -> None:
    """Only connectors created with ``trace_states`` emit ``drc_state``, and only while
    the recorder records (the machine asks it of its CPU connectors)."""
    drc, _owner, rec = make(DrcType.CPU, "U", True, False)
    assert drc.set_allocation_state(1) == 0
    assert states(rec) == []
    quiet = DRC(DrcType.CPU, 4, trace=TraceRecorder(keep=False), trace_states=True)
    quiet.attach(DEV)
    assert quiet.set_allocation_state(1) == 0


def test_a_physical_connector_shows_its_dr_indicator_and_sense_by_device() -> None:
    """PCI connectors: no allocation state (None), sense PRESENT with a device else
    EMPTY, the dr-indicator by name after set-indicator 9002."""
    rec = TraceRecorder()
    drc = DRC(DrcType.PCI, 5, trace=rec, trace_states=True)
    assert drc.set_dr_indicator(2) == 0
    (event,) = states(rec)
    assert (
        event["op"],
        event["code"],
        event["indicator"],
        event["allocation"],
        event["sense"],
    ) == (
        "set-dr-indicator",
        0,
        "IDENTIFY",
        None,
        "EMPTY",
    )
    assert event["isolation"] == "ISOLATED" and event["index"] == 0x40000005
    drc.attach("pci-dev")
    assert states(rec)[-1]["sense"] == "PRESENT"
