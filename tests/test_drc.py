"""The DR connector state machines (spapr/drc.py), checked cell by cell against
protocol.md §3.4/§3.5/§3.6/§3.7/§3.8 and against QEMU 7.2's recorded traces and
device tree. The expectations below are transcribed from those tables, not
taken from running the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from fdt import Node, Property
from spapr.drc import (
    DRC,
    DrcError,
    DRCState,
    DrcTable,
    DrcType,
    DrcVmstate,
    drc_id,
    drc_index,
    drc_name,
    drc_type_of,
)
from spapr.trace import TraceRecorder

DATA = Path(__file__).parent / "data" / "drc"

VALUES = (0, 1, 2, 3, 7, 0xFFFFFFFF)

# --------------------------------------------------------------------------
# §3.1 index encoding
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drc_type", "ident", "index", "name", "types_name"),
    [
        (DrcType.CPU, 8, 0x10000008, "CPU 8", "CPU"),
        (DrcType.CPU, 0, 0x10000000, "CPU 0", "CPU"),
        (DrcType.PHB, 3, 0x20000003, "PHB 3", "PHB"),
        (DrcType.PCI, 109, 0x4000006D, "C109", "28"),
        (DrcType.LMB, 2, 0x80000002, "LMB 2", "MEM"),
        (DrcType.PMEM, 1, 0x90000001, "PMEM 1", "PMEM"),
    ],
)
def test_index_encoding(
    drc_type: DrcType, ident: int, index: int, name: str, types_name: str
) -> None:
    assert drc_index(drc_type, ident) == index
    assert drc_id(index) == ident
    assert drc_type_of(index) is drc_type
    assert drc_name(drc_type, ident) == name
    assert drc_type.drc_types_name == types_name


def test_type_facts() -> None:
    assert [(t.name, t.shift, t.type_bit, t.index_prefix) for t in DrcType] == [
        ("CPU", 1, 0x002, 0x10000000),
        ("PHB", 2, 0x004, 0x20000000),
        ("VIO", 3, 0x008, 0x30000000),
        ("PCI", 4, 0x010, 0x40000000),
        ("LMB", 8, 0x100, 0x80000000),
        ("PMEM", 9, 0x200, 0x90000000),
    ]
    assert {t for t in DrcType if t.is_logical} == {
        DrcType.CPU,
        DrcType.PHB,
        DrcType.LMB,
        DrcType.PMEM,
    }
    assert {t for t in DrcType if t.is_physical} == {DrcType.PCI}


def test_index_masks_id_and_unknown_types() -> None:
    assert drc_index(DrcType.CPU, 0x1234_5678) == 0x1234_5678 & 0x0FFFFFFF | 0x10000000
    assert drc_type_of(0) is None
    assert drc_type_of(0x50000000) is None
    assert drc_type_of(0xF0000001) is None
    with pytest.raises(DrcError):
        DRC(DrcType.VIO, 0)


def test_drc_identity_names() -> None:
    drc = DRC(DrcType.CPU, 2)
    assert drc.index == 0x10000002
    assert drc.name == "CPU 2"
    assert drc.qom_child_name == "dr-connector[268435458]"
    assert drc.container_link_name == "10000002"
    assert drc.state == DRCState.LOGICAL_UNUSABLE
    assert DRC(DrcType.PCI, 0).state == DRCState.PHYSICAL_POWERON


def test_state_numbers_are_qemus() -> None:
    assert [(s.name, s.value) for s in DRCState] == [
        ("INVALID", 0),
        ("LOGICAL_UNUSABLE", 1),
        ("LOGICAL_AVAILABLE", 2),
        ("LOGICAL_UNISOLATE", 3),
        ("LOGICAL_CONFIGURED", 4),
        ("PHYSICAL_AVAILABLE", 5),
        ("PHYSICAL_POWERON", 6),
        ("PHYSICAL_UNISOLATE", 7),
        ("PHYSICAL_CONFIGURED", 8),
    ]


# --------------------------------------------------------------------------
# A recording owner and DRC builders that reach each configuration legally
# --------------------------------------------------------------------------


class Owner:
    """Records the owner callbacks."""

    def __init__(self) -> None:
        self.released: list[Any] = []
        self.rejected: list[Any] = []
        self.built: list[Any] = []

    def on_release(self, drc: DRC, device: Any) -> None:
        assert drc.device is device  # QEMU calls release before dropping the link
        self.released.append(device)

    def on_unplug_rejected(self, drc: DRC, device: Any) -> None:
        self.rejected.append(device)

    def build_fragment(self, device: Any) -> Node:
        self.built.append(device)
        return Node(
            f"PowerPC,TEST@{device}",
            properties=[Property("name", b"x\0"), Property("reg", b"\0\0\0\x08")],
        )


DEV = "core2"

LOGICAL_LETTERS = {
    "U": DRCState.LOGICAL_UNUSABLE,
    "A": DRCState.LOGICAL_AVAILABLE,
    "I": DRCState.LOGICAL_UNISOLATE,
    "C": DRCState.LOGICAL_CONFIGURED,
}
PHYSICAL_LETTERS = {
    "POWERON": DRCState.PHYSICAL_POWERON,
    "UNISOLATE": DRCState.PHYSICAL_UNISOLATE,
    "CONFIGURED": DRCState.PHYSICAL_CONFIGURED,
}

#: Every reachable (state, device attached, unplug requested) of a logical DRC.
#: U with a pending unplug cannot exist: unplug_request on U releases at once.
LOGICAL_CONFIGS = [
    ("U", False, False),
    ("U", True, False),
    ("A", True, False),
    ("A", True, True),
    ("I", True, False),
    ("I", True, True),
    ("C", True, False),
    ("C", True, True),
]
PHYSICAL_CONFIGS = [
    ("POWERON", False, False),
    ("POWERON", True, False),
    ("UNISOLATE", True, False),
    ("UNISOLATE", True, True),
    ("CONFIGURED", True, False),
    ("CONFIGURED", True, True),
]


def make(
    drc_type: DrcType, letter: str, device: bool, unplug: bool
) -> tuple[DRC, Owner, TraceRecorder]:
    """A DRC brought to a configuration through its public API only."""
    owner = Owner()
    rec = TraceRecorder()
    drc = DRC(
        drc_type,
        2,
        trace=rec,
        on_release=owner.on_release,
        on_unplug_rejected=owner.on_unplug_rejected,
        build_fragment=owner.build_fragment,
    )
    if device:
        drc.attach(DEV)
    if letter in ("A", "I"):
        assert drc.set_allocation_state(1) == 0
    if letter in ("I", "UNISOLATE"):
        assert drc.set_isolation_state(1) == 0
    if letter in ("C", "CONFIGURED"):
        assert drc.reset() is False
    if unplug:
        assert drc.unplug_request() is False
    letters = LOGICAL_LETTERS if drc.is_logical else PHYSICAL_LETTERS
    assert drc.state == letters[letter]
    assert (drc.device is not None) == device
    assert drc.unplug_requested == unplug
    rec.clear()
    return drc, owner, rec


def events(rec: TraceRecorder) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.fields)) for e in rec.events]


IDX = 0x10000002


def ev(name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return (name, {"index": IDX, **fields})


# --------------------------------------------------------------------------
# §3.4 logical machine: expectations transcribed from the tables
# --------------------------------------------------------------------------


def expect_logical_allocation(
    s: str, dev: bool, unplug: bool, value: int
) -> tuple[str, int, bool, bool]:
    """(new state, rc, released, rejected) for set-indicator 9003."""
    if value == 1:
        if s == "U":
            if not dev or unplug:
                return "U", -3, False, False
            return "A", 0, False, False
        return s, 0, False, False
    if value == 0:
        if s == "U":
            return "U", 0, False, False
        if s == "A":
            return "U", 0, unplug, False
        return s, -3, False, False
    return s, -3, False, False


def expect_logical_isolation(
    s: str, dev: bool, unplug: bool, value: int
) -> tuple[str, int, bool, bool]:
    """(new state, rc, released, rejected) for set-indicator 9001."""
    if value == 1:
        if s == "U":
            return "U", -3, False, False
        if s == "A":
            return "I", 0, False, False
        return s, 0, False, unplug and dev
    if value == 0:
        if s in ("U", "A"):
            return s, 0, False, False
        if s == "I":
            return "I", -3, False, False
        return "A", 0, False, False
    return s, -3, False, False


def check_outcome(
    drc: DRC,
    owner: Owner,
    letters: dict[str, DRCState],
    start: tuple[str, bool, bool],
    outcome: tuple[str, int, bool, bool],
    rc: int,
) -> None:
    new_state, code, released, rejected = outcome
    _, dev, unplug = start
    assert rc == code
    assert drc.state == letters[new_state]
    assert owner.released == ([DEV] if released else [])
    assert owner.rejected == ([DEV] if rejected else [])
    if released:
        assert drc.device is None
        assert drc.unplug_requested is False
        assert drc.fragment is None
    else:
        assert (drc.device is not None) == dev
        assert drc.unplug_requested == (unplug and not rejected)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_allocation_state(config: tuple[str, bool, bool], value: int) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    rc = drc.set_allocation_state(value)
    outcome = expect_logical_allocation(*config, value)
    check_outcome(drc, owner, LOGICAL_LETTERS, config, outcome, rc)
    expected = [ev("spapr_drc_set_allocation_state", state=value)]
    if outcome[2]:
        expected.append(ev("spapr_drc_set_allocation_state_finalizing"))
    assert events(rec) == expected


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_isolation_state(config: tuple[str, bool, bool], value: int) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    before = (drc.ccs_offset, drc.ccs_depth)
    rc = drc.set_isolation_state(value)
    outcome = expect_logical_isolation(*config, value)
    check_outcome(drc, owner, LOGICAL_LETTERS, config, outcome, rc)
    assert events(rec) == [ev("spapr_drc_set_isolation_state", state=value)]
    if config[0] == "A" and outcome[0] == "I":
        assert (drc.ccs_offset, drc.ccs_depth) == (0, 0)  # cursor at the fragment start
    else:
        assert (drc.ccs_offset, drc.ccs_depth) == before


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_dr_indicator_is_refused(config: tuple[str, bool, bool], value: int) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    rc = drc.set_dr_indicator(value)
    check_outcome(drc, owner, LOGICAL_LETTERS, config, (config[0], -3, False, False), rc)
    assert events(rec) == []


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_entity_sense(config: tuple[str, bool, bool]) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    # §3.6: U reads 2 UNUSABLE with or without a device; A, I, C read 1 PRESENT.
    assert drc.entity_sense() == (0, 2 if config[0] == "U" else 1)
    check_outcome(drc, owner, LOGICAL_LETTERS, config, (config[0], 0, False, False), 0)
    assert events(rec) == []


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_configure_connector_first_step(config: tuple[str, bool, bool]) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    response = drc.configure_connector_step()
    if config[0] in ("U", "A"):
        assert response.code == -9003
        assert response.name is None
        assert owner.built == []
    else:
        assert response.code == 2
        assert response.name == f"PowerPC,TEST@{DEV}"
        assert owner.built == [DEV]
    check_outcome(drc, owner, LOGICAL_LETTERS, config, (config[0], 0, False, False), 0)
    assert events(rec) == []


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_attach(config: tuple[str, bool, bool]) -> None:
    drc, _owner, rec = make(DrcType.CPU, *config)
    if config == ("U", False, False):
        drc.attach("other")
        assert drc.device == "other"
        assert drc.state == DRCState.LOGICAL_UNUSABLE
        assert events(rec) == [ev("spapr_drc_attach")]
    else:
        with pytest.raises(DrcError):
            drc.attach("other")
        assert drc.device == DEV
        assert events(rec) == []


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_unplug_request(config: tuple[str, bool, bool]) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    s, dev, _unplug = config
    if not dev:
        with pytest.raises(DrcError):
            drc.unplug_request()
        return
    done = drc.unplug_request()
    if s == "U":  # §3.4: U -> immediate release, no awaiting_quiesce
        assert done is True
        assert owner.released == [DEV]
        assert drc.device is None
        assert drc.unplug_requested is False
        assert events(rec) == [ev("spapr_drc_unplug_request")]
    else:
        assert done is False
        assert owner.released == []
        assert drc.unplug_requested is True
        assert drc.awaiting_quiesce is True
        assert events(rec) == [ev("spapr_drc_unplug_request"), ev("spapr_drc_awaiting_quiesce")]
    assert drc.state == LOGICAL_LETTERS[s]


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_reset(config: tuple[str, bool, bool]) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    _s, dev, unplug = config
    completed = drc.reset()
    # §3.7: pending unplug -> release; device -> C with cursor at start; else U, cursor -1.
    assert completed is unplug
    assert owner.released == ([DEV] if unplug else [])
    assert events(rec) == [ev("spapr_drc_reset")]
    if dev and not unplug:
        assert drc.state == DRCState.LOGICAL_CONFIGURED
        assert (drc.ccs_offset, drc.ccs_depth) == (0, 0)
    else:
        assert drc.state == DRCState.LOGICAL_UNUSABLE
        assert drc.device is None
        assert (drc.ccs_offset, drc.ccs_depth) == (-1, -1)
    assert drc.unplug_requested is False


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_logical_host_release(config: tuple[str, bool, bool]) -> None:
    drc, owner, rec = make(DrcType.CPU, *config)
    if config == ("U", True, False):
        drc.release()
        assert owner.released == [DEV]
        assert drc.device is None
    else:
        with pytest.raises(DrcError):
            drc.release()
        assert owner.released == []
    assert events(rec) == []


def test_lmb_isolate_needs_unplug() -> None:
    # §3.4: isolating a CONFIGURED LMB returns -1 unless its DIMM is being removed.
    drc, _owner, _rec = make(DrcType.LMB, "C", True, False)
    assert drc.set_isolation_state(0) == -1
    assert drc.state == DRCState.LOGICAL_CONFIGURED
    drc, _owner, _rec = make(DrcType.LMB, "C", True, True)
    assert drc.set_isolation_state(0) == 0
    assert drc.state == DRCState.LOGICAL_AVAILABLE


def test_guest_drops_core_it_was_not_asked_to() -> None:
    # §9 item 26: C -> A -> U without unplug_requested releases nothing.
    drc, owner, _rec = make(DrcType.CPU, "C", True, False)
    assert drc.set_isolation_state(0) == 0
    assert drc.set_allocation_state(0) == 0
    assert drc.state == DRCState.LOGICAL_UNUSABLE
    assert drc.device == DEV
    assert owner.released == []
    assert drc.entity_sense() == (0, 2)
    assert drc.set_allocation_state(1) == 0  # and the guest can take it back
    assert drc.state == DRCState.LOGICAL_AVAILABLE


def test_add_then_del_before_guest_acts() -> None:
    # §9 item 6: released inside device_del; the guest's later acquire fails with -3.
    drc, owner, _rec = make(DrcType.CPU, "U", True, False)
    assert drc.unplug_request() is True
    assert owner.released == [DEV]
    assert drc.set_allocation_state(1) == -3
    assert drc.state == DRCState.LOGICAL_UNUSABLE


def test_unplug_while_mid_configure() -> None:
    # §9 item 23: isolate in I returns -3; re-UNISOLATE counts as rejection.
    drc, owner, _rec = make(DrcType.CPU, "I", True, False)
    assert drc.configure_connector_step().code == 2
    assert drc.unplug_request() is False
    assert drc.set_isolation_state(0) == -3
    assert drc.set_isolation_state(1) == 0
    assert owner.rejected == [DEV]
    assert drc.unplug_requested is False
    assert drc.state == DRCState.LOGICAL_UNISOLATE


# --------------------------------------------------------------------------
# §3.5 physical machine
# --------------------------------------------------------------------------


def expect_physical_isolation(
    s: str, dev: bool, unplug: bool, value: int
) -> tuple[str, int, bool, bool]:
    if value == 0:
        if s == "POWERON":
            return s, 0, False, False
        if s == "UNISOLATE":
            return s, -3, False, False
        return "POWERON", 0, unplug, False
    if value == 1:
        if s == "POWERON":
            return ("UNISOLATE", 0, False, False) if dev else (s, -3, False, False)
        return s, 0, False, False  # no rejection rule on physical DRCs
    return s, -3, False, False


PCI_IDX = 0x40000002


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("config", PHYSICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_physical_isolation_state(config: tuple[str, bool, bool], value: int) -> None:
    drc, owner, rec = make(DrcType.PCI, *config)
    rc = drc.set_isolation_state(value)
    outcome = expect_physical_isolation(*config, value)
    check_outcome(drc, owner, PHYSICAL_LETTERS, config, outcome, rc)
    expected = [("spapr_drc_set_isolation_state", {"index": PCI_IDX, "state": value})]
    if outcome[2]:
        expected.append(("spapr_drc_set_isolation_state_finalizing", {"index": PCI_IDX}))
    assert events(rec) == expected


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("config", PHYSICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_physical_allocation_is_refused(config: tuple[str, bool, bool], value: int) -> None:
    drc, owner, rec = make(DrcType.PCI, *config)
    rc = drc.set_allocation_state(value)
    check_outcome(drc, owner, PHYSICAL_LETTERS, config, (config[0], -3, False, False), rc)
    assert events(rec) == []


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("config", PHYSICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_physical_dr_indicator(config: tuple[str, bool, bool], value: int) -> None:
    drc, owner, rec = make(DrcType.PCI, *config)
    before = drc.dr_indicator
    rc = drc.set_dr_indicator(value)
    check_outcome(
        drc, owner, PHYSICAL_LETTERS, config, (config[0], 0 if value <= 3 else -3, False, False), rc
    )
    if value <= 3:
        assert drc.dr_indicator == value
        assert events(rec) == [("spapr_drc_set_dr_indicator", {"index": PCI_IDX, "state": value})]
    else:
        assert drc.dr_indicator == before
        assert events(rec) == []


@pytest.mark.parametrize("config", PHYSICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_physical_sense_and_configure(config: tuple[str, bool, bool]) -> None:
    drc, _owner, _rec = make(DrcType.PCI, *config)
    assert drc.entity_sense() == (0, 1 if config[1] else 0)
    code = drc.configure_connector_step().code
    assert code == (-9003 if config[0] == "POWERON" else 2)


def test_physical_dr_indicator_reset_and_migration() -> None:
    drc, _owner, _rec = make(DrcType.PCI, "POWERON", False, False)
    assert drc.physical_vmstate() is None  # no device, INACTIVE: not sent
    drc.attach(DEV)
    assert drc.physical_vmstate() is not None  # device but still INACTIVE
    drc.reset_dr_indicator()
    assert drc.dr_indicator == 1
    assert drc.physical_vmstate() is None
    assert drc.set_dr_indicator(2) == 0
    section = drc.physical_vmstate()
    assert section is not None and section.dr_indicator == 2
    other, _, _ = make(DrcType.PCI, "POWERON", True, False)
    other.load_physical_vmstate(section)
    assert other.dr_indicator == 2
    assert DRC(DrcType.CPU, 2).physical_vmstate() is None


# --------------------------------------------------------------------------
# Configure-connector walk on the state machine
# --------------------------------------------------------------------------


def nested_fragment(device: Any) -> Node:
    child = Node("child@1", properties=[Property("compatible", b"c\0")])
    return Node(
        "PowerPC,TEST@2",
        properties=[Property("name", b"n\0"), Property("reg", b"\0\0\0\x02")],
        children=[child],
    )


def test_walk_sequence_and_restart() -> None:
    rec = TraceRecorder()
    drc = DRC(DrcType.CPU, 2, trace=rec, build_fragment=nested_fragment)
    drc.attach(DEV)
    drc.set_allocation_state(1)
    drc.set_isolation_state(1)
    rec.clear()
    walk = [drc.configure_connector_step() for _ in range(7)]
    assert [(r.code, r.name, r.value) for r in walk] == [
        (2, "PowerPC,TEST@2", None),
        (3, "name", b"n\0"),
        (3, "reg", b"\0\0\0\x02"),
        (2, "child@1", None),
        (3, "compatible", b"c\0"),
        (4, None, None),
        (0, None, None),
    ]
    assert drc.state == DRCState.LOGICAL_CONFIGURED
    assert events(rec) == [ev("spapr_drc_set_configured")]
    # Calling again on a CONFIGURED DRC restarts at the node.
    assert drc.configure_connector_step().name == "PowerPC,TEST@2"


def test_fragment_built_once_and_dropped_at_release() -> None:
    owner = Owner()
    drc = DRC(DrcType.CPU, 2, build_fragment=owner.build_fragment, on_release=owner.on_release)
    drc.attach(DEV)
    drc.reset()
    for _ in range(5):  # a full walk (node, 2 props, end) then the node again
        drc.configure_connector_step()
    assert drc.configure_connector_step().code == 3
    assert owner.built == [DEV]
    drc.unplug_request()
    drc.set_isolation_state(0)
    drc.set_allocation_state(0)
    assert owner.released == [DEV]
    assert drc.fragment is None
    drc.attach("next")
    drc.reset()
    drc.configure_connector_step()
    assert owner.built == [DEV, "next"]


def test_build_failure_returns_minus_one() -> None:
    drc = DRC(DrcType.CPU, 2)  # default builder builds nothing
    drc.attach(DEV)
    drc.reset()
    assert drc.configure_connector_step().code == -1
    assert drc.state == DRCState.LOGICAL_CONFIGURED


def test_cursor_reset_by_unisolate_and_reset() -> None:
    drc = DRC(DrcType.CPU, 2, build_fragment=nested_fragment)
    drc.attach(DEV)
    drc.reset()
    drc.configure_connector_step()
    drc.configure_connector_step()
    assert drc.set_isolation_state(0) == 0  # C -> A mid-walk
    assert drc.set_isolation_state(1) == 0  # A -> I rewinds
    assert drc.configure_connector_step().code == 2
    drc.configure_connector_step()
    drc.reset()
    assert drc.configure_connector_step().code == 2


# --------------------------------------------------------------------------
# §3.8 migration
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config", LOGICAL_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_vmstate_sent_when(config: tuple[str, bool, bool]) -> None:
    drc, _, _ = make(DrcType.CPU, *config)
    s, dev, unplug = config
    section = drc.vmstate()
    # Sent when a device is attached and (state != C or unplug pending).
    if dev and (s != "C" or unplug):
        assert section == DrcVmstate(IDX, int(LOGICAL_LETTERS[s]), True if unplug else None)
    else:
        assert section is None


@pytest.mark.parametrize(
    "config", [c for c in LOGICAL_CONFIGS if c[1]], ids=lambda c: "-".join(map(str, c))
)
def test_vmstate_round_trip_drops_fragment(config: tuple[str, bool, bool]) -> None:
    src, _, _ = make(DrcType.CPU, *config)
    # The destination has the same core cold-plugged: reset made it C.
    dst, _owner, _ = make(DrcType.CPU, "C", True, False)
    section = src.vmstate()
    if section is not None:
        dst.configure_connector_step()  # even a half-walked destination restarts
        dst.load_vmstate(section)
    assert dst.state == src.state
    assert dst.unplug_requested == src.unplug_requested
    assert dst.fragment is None
    if dst.state in (DRCState.LOGICAL_UNISOLATE, DRCState.LOGICAL_CONFIGURED):
        # §9 item 25: the next call rebuilds and restarts at the node.
        assert dst.configure_connector_step().code == 2


def test_load_vmstate_refuses_nonsense() -> None:
    drc = DRC(DrcType.CPU, 2)
    with pytest.raises(DrcError):
        drc.load_vmstate(DrcVmstate(IDX, 2))  # A without a device
    with pytest.raises(DrcError):
        drc.load_vmstate(DrcVmstate(IDX, 7))  # a physical state
    with pytest.raises(DrcError):
        drc.load_vmstate(DrcVmstate(IDX, 99))
    with pytest.raises(DrcError):
        drc.load_vmstate(DrcVmstate(IDX + 1, 1))


# --------------------------------------------------------------------------
# DrcTable, against QEMU's recorded reset trace and device tree
# --------------------------------------------------------------------------


def _trace_lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def _system_reset_lines() -> list[str]:
    lines = _trace_lines("cmdline_core2_unplug_reset_p8e.trace")
    start = next(i for i, line in enumerate(lines) if '"system_reset"' in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("handle_qmp"))
    return [line for line in lines[start + 1 : end] if line.startswith("spapr_drc")]


def _container_order() -> list[int]:
    """QEMU's /dr-connector iteration order: the last full pass of the reset."""
    indexes = [int(line.rsplit("0x", 1)[1], 16) for line in _system_reset_lines()]
    first_end = indexes.index(0x10000002)
    return indexes[first_end + 1 :]


def p8e_classic_table(rec: TraceRecorder, owner: Owner) -> tuple[DrcTable, object]:
    """The p8e_classic DRCs: 4 CPU, 31 PHB, 256 PCI slots of the default PHB."""
    table = DrcTable(rec)
    phb = object()
    hooks = {"on_release": owner.on_release, "build_fragment": owner.build_fragment}
    for i in range(4):
        table.new(DrcType.CPU, i, **hooks)
    for i in range(31):
        table.new(DrcType.PHB, i, **hooks)
    for i in range(256):
        table.new(DrcType.PCI, i, owner=phb, **hooks)
    table.set_order(_container_order())
    return table, phb


def test_reset_all_restarts_after_a_completed_unplug() -> None:
    rec, owner = TraceRecorder(), Owner()
    table, _ = p8e_classic_table(rec, owner)
    assert len(table) == 291
    for index in (0x10000000, 0x10000001, 0x10000002, 0x20000000):
        drc = table.get(index)
        assert drc is not None
        drc.attach(f"dev{index:x}")
        drc.reset()
    core2 = table.get(0x10000002)
    assert core2 is not None
    rec.clear()
    core2.unplug_request()
    assert rec.qemu_lines() == [
        "spapr_drc_unplug_request drc: 0x10000002",
        "spapr_drc_awaiting_quiesce drc: 0x10000002",
    ]
    rec.clear()
    table.reset_all()
    assert rec.qemu_lines() == _system_reset_lines()
    assert owner.released == ["dev10000002"]
    assert core2.device is None and core2.state == DRCState.LOGICAL_UNUSABLE


def test_hotplug_trace_lines_match_qemu() -> None:
    # hotplug_unplug_p8e: device_add then device_del of core2 never configured.
    lines = _trace_lines("hotplug_unplug_p8e.trace")
    start = next(i for i, line in enumerate(lines) if '"device_add"' in line)
    qemu = [line for line in lines[start:] if line.startswith("spapr_drc")]
    rec, owner = TraceRecorder(), Owner()
    core2 = DRC(DrcType.CPU, 2, trace=rec, on_release=owner.on_release)
    core3 = DRC(DrcType.CPU, 3, trace=rec, on_release=owner.on_release)
    core2.attach("core2")
    assert core2.unplug_request() is True
    core3.attach("core3")
    assert rec.qemu_lines() == qemu
    assert owner.released == ["core2"]


def test_realize_trace_lines_match_qemu() -> None:
    lines = _trace_lines("hotplug_unplug_p8e.trace")
    qemu = [line for line in lines if "spapr_drc_realize" in line and "0x1000000" in line]
    rec = TraceRecorder()
    table = DrcTable(rec)
    for i in range(4):
        table.new(DrcType.CPU, i)
    assert rec.qemu_lines() == qemu
    assert table.get(0x10000003) is not None
    assert table.get(0x10000004) is None
    assert table.by_id(DrcType.CPU, 1) is table.get(0x10000001)


def _dts_property(node_path: str, prop: str) -> bytes:
    """A property of the oracle's p8e_classic.dts, as bytes (cells or byte strings)."""
    text = (DATA / "p8e_classic.dts").read_text()
    depth_names: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith("{"):
            depth_names.append(stripped[:-1].strip())
            continue
        if stripped == "};":
            depth_names.pop()
            continue
        path = "/" + "/".join(depth_names[1:])
        if path == node_path and stripped.startswith(prop + " = "):
            body = stripped[len(prop) + 3 : -1]
            out = b""
            for kind, content in re.findall(r"([<\[])([^>\]]*)[>\]]", body):
                if kind == "<":
                    out += b"".join(int(c, 16).to_bytes(4, "big") for c in content.split())
                else:
                    out += bytes.fromhex(content)
            return out
    raise KeyError(f"{node_path} {prop}")


@pytest.mark.parametrize(
    ("node_path", "drc_type", "by_owner"),
    [
        ("/cpus", DrcType.CPU, False),
        ("/", DrcType.PHB, False),
        ("/pci@800000020000000", DrcType.PCI, True),
    ],
)
def test_dt_arrays_match_qemu(node_path: str, drc_type: DrcType, by_owner: bool) -> None:
    table, phb = p8e_classic_table(TraceRecorder(), Owner())
    arrays = table.dt_arrays(drc_type.type_bit, owner=phb if by_owner else None)
    assert arrays.indexes == _dts_property(node_path, "ibm,drc-indexes")
    assert arrays.power_domains == _dts_property(node_path, "ibm,drc-power-domains")
    assert arrays.names == _dts_property(node_path, "ibm,drc-names")
    assert arrays.types == _dts_property(node_path, "ibm,drc-types")


def test_dt_arrays_protocol_example() -> None:
    # protocol.md §3.2, -smp 1,maxcpus=2.
    table = DrcTable()
    table.new(DrcType.CPU, 0)
    table.new(DrcType.CPU, 1)
    arrays = table.dt_arrays(DrcType.CPU.type_bit)
    assert arrays.indexes.hex() == "000000021000000010000001"
    assert arrays.names == b"\0\0\0\x02CPU 0\0CPU 1\0"
    assert arrays.types == b"\0\0\0\x02CPU\0CPU\0"
    assert arrays.power_domains.hex() == "00000002ffffffffffffffff"


def test_table_order_add_remove() -> None:
    rec = TraceRecorder()
    table = DrcTable(rec)
    for i in range(3):
        table.new(DrcType.CPU, i)
    table.set_order([0x10000002, 0x10000000, 0x10000009])
    table.new(DrcType.CPU, 5)
    assert [d.index for d in table] == [0x10000002, 0x10000000, 0x10000001, 0x10000005]
    table.remove(0x10000000)
    assert 0x10000000 not in table
    assert [d.index for d in table] == [0x10000002, 0x10000001, 0x10000005]
    assert rec.qemu_lines("spapr_drc_unrealize") == ["spapr_drc_unrealize drc: 0x10000000"]
    with pytest.raises(DrcError):
        table.add(DRC(DrcType.CPU, 1))
