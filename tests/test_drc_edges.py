"""DR connector edges: host-side refusals that name their connector, shared fragment
walks past their cache bound, the precomputed configure-connector answers, the
work-area address's high word, and clipping at the end of the 4 KiB work area.

Sources: QEMU 7.2 ``hw/ppc/spapr_drc.c`` and PAPR §13.5.3.5 as protocol.md §6 states
them: the work area is at ``(args[1] << 32) | args[0]``, every access masked by
``ppc64_phys_to_real`` (top nibble dropped), a load outside RAM reads 0 (no DRC has
index 0 -> -3); a node answer is 2 (NEXT_CHILD) with the name offset 20 at +8 and the
name at +20, a property answer 3 (NEXT_PROPERTY) with length at +12 and value offset
``20 + strlen(name) + 1`` at +16; ``configure_connector_st`` stores
``MIN(len, 4096 - offset)`` bytes. QEMU has connectors of the CPU, PHB, PCI, LMB
and PMEM types only (``SpaprDrcTypeShift`` has VIO but no VIO connector class). The
host-side refusals are QEMU aborts (``g_assert``) that the model raises as
``DrcError``; like every refusal in the project (docs/testing.md) they name their
input, here the connector's index.
"""

from __future__ import annotations

from typing import Any

import pytest

from fdt import Node, Property, WalkTag, walk
from rtas import GuestMemory, RtasDispatcher, encode_call, read_rets
from rtas.codes import ConfigureConnector
from spapr.drc import (
    DRC,
    SHARED_FRAGMENTS_MAX,
    DrcError,
    DRCState,
    DrcTable,
    DrcType,
    DrcVmstate,
    Fragment,
    shared_fragment,
)
from spapr.drc_rtas import register_drc_rtas
from spapr.trace import TraceRecorder

CONFIGURE_CONNECTOR = 0x201E
SET_INDICATOR = 0x201A
MEM_SIZE = 0x10000
BUF = 0x100
WA = 0x2000
WA_LEN = 4096
SENTINEL = 0xA5
CPU2 = 0x10000002


# --- host-side refusals ---------------------------------------------------------------


def test_a_connector_of_a_type_qemu_has_none_of_is_refused() -> None:
    """VIO has a type shift but QEMU 7.2 defines no VIO connector: creating one is
    refused, naming the type."""
    with pytest.raises(DrcError, match=r"\bVIO\b"):
        DRC(DrcType.VIO, 1)


def test_attaching_to_a_busy_connector_names_it() -> None:
    """A second device on an occupied CPU connector is refused with its index."""
    drc = DRC(DrcType.CPU, 2)
    drc.attach("core2")
    with pytest.raises(DrcError, match="0x10000002"):
        drc.attach("another")
    assert drc.device == "core2"


def test_an_unplug_request_without_a_device_names_the_connector() -> None:
    """spapr_drc_unplug_request asserts drc->dev: the model refuses, naming the index."""
    drc = DRC(DrcType.CPU, 3)
    with pytest.raises(DrcError, match="0x10000003"):
        drc.unplug_request()
    assert not drc.unplug_requested


def test_a_migrated_busy_state_without_a_device_names_connector_and_state() -> None:
    """An incoming section saying "configured" for a connector with nothing attached
    is refused, naming the index and the state; the connector is left as it was."""
    drc = DRC(DrcType.CPU, 4)
    section = DrcVmstate(index=0x10000004, state=int(DRCState.LOGICAL_CONFIGURED))
    with pytest.raises(DrcError, match=r"0x10000004.*LOGICAL_CONFIGURED"):
        drc.load_vmstate(section)
    assert drc.state == DRCState.LOGICAL_UNUSABLE


def test_a_table_given_no_recorder_records_nothing() -> None:
    """Without a recorder a table (like a lone DRC) keeps no trace events: only a
    machine that asks for a trace pays for one."""
    table = DrcTable()
    drc = table.new(DrcType.CPU, 1)
    drc.attach("core1")
    drc.reset()
    assert table.trace.select() == []
    assert not table.trace.active()


# --- shared fragments and their precomputed answers --------------------------------------


def tiny_node(i: int) -> Node:
    return Node(f"n@{i:x}", properties=[Property("reg", i.to_bytes(4, "big"))])


def test_shared_fragments_past_the_bound_walk_their_own_node() -> None:
    """More than SHARED_FRAGMENTS_MAX nodes declared shared: each gets a fragment of
    itself (its walk), the oldest ones forgotten on the way without harm."""
    nodes = [tiny_node(i) for i in range(SHARED_FRAGMENTS_MAX + 16)]
    for node in nodes:
        fragment = shared_fragment(node)
        assert fragment.node is node
        assert fragment.steps == tuple(walk(node))
    again = shared_fragment(nodes[-1])
    assert again.node is nodes[-1]


def test_precomputed_answers_are_the_papr_answers_of_each_step() -> None:
    """A node begins with NEXT_CHILD (2) and its name, a property is NEXT_PROPERTY (3)
    with name and value; node ends have no fixed answer (they depend on the depth)."""
    child = Node("l2@1", properties=[Property("compatible", b"cache\0")])
    node = Node(
        "PowerPC,POWER9@8",
        properties=[Property("reg", b"\x00\x00\x00\x08"), Property("64-bit", b"")],
        children=[child],
    )
    fragment = Fragment.of(node)
    expected: list[tuple[ConfigureConnector, str, bytes | None] | None] = []
    for step in fragment.steps:
        if step.tag is WalkTag.BEGIN_NODE:
            expected.append((ConfigureConnector.NEXT_CHILD, step.name, None))
        elif step.tag is WalkTag.PROPERTY:
            expected.append((ConfigureConnector.NEXT_PROPERTY, step.name, step.value))
        else:
            expected.append(None)
    got = [None if a is None else (a.code, a.name, a.value) for a in fragment.answers]
    assert got == expected
    assert got[0] == (ConfigureConnector.NEXT_CHILD, "PowerPC,POWER9@8", None)
    assert (ConfigureConnector.NEXT_PROPERTY, "reg", b"\x00\x00\x00\x08") in got


# --- ibm,configure-connector through guest memory ----------------------------------------


class Rig:
    """A CPU connector (id 2) holding a device, acquired by the guest, and RTAS."""

    def __init__(self, fragment: Any) -> None:
        self.rec = TraceRecorder()
        self.table = DrcTable(self.rec)
        self.cpu = self.table.new(DrcType.CPU, 2, build_fragment=fragment)
        self.dispatcher: RtasDispatcher[None] = RtasDispatcher()
        register_drc_rtas(self.dispatcher.register, self.table)
        self.mem = GuestMemory(MEM_SIZE)
        self.cpu.attach("core2")
        assert self.rtas(SET_INDICATOR, [9003, CPU2, 1], 1)[0] == 0
        assert self.rtas(SET_INDICATOR, [9001, CPU2, 1], 1)[0] == 0
        self.mem.write(WA - 64, bytes([SENTINEL]) * (WA_LEN + 4200))
        self.mem.write(WA, CPU2.to_bytes(4, "big") + bytes(4))
        self.rec.clear()

    def rtas(self, token: int, args: list[int], nret: int) -> tuple[int, ...]:
        encode_call(self.mem, BUF, token, args, nret)
        assert self.dispatcher.hcall_rtas(self.mem, BUF, None) == 0
        return read_rets(self.mem, BUF)

    def configure(self, hi: int = 0) -> int:
        return self.rtas(CONFIGURE_CONNECTOR, [WA, hi], 1)[0]


def small_fragment(device: Any) -> Node:
    return Node("PowerPC,POWER9@2", properties=[Property("reg", b"\x00\x00\x00\x02")])


@pytest.mark.parametrize("hi", [1, 0x08000000])
def test_a_high_word_beyond_ram_reads_no_index(hi: int) -> None:
    """args[1] = 1 puts the work area at 4 GiB + WA, 0x08000000 at 2^59 + WA (below
    the masked nibble): both outside the 64 KiB of RAM, so the index reads 0 and the
    call is -3, naming index 0; the connector's walk does not move."""
    rig = Rig(small_fragment)
    assert rig.configure(hi) == -3
    assert rig.rec.qemu_lines() == ["spapr_rtas_ibm_configure_connector_invalid DRC index: 0x0"]
    assert rig.configure(0) == ConfigureConnector.NEXT_CHILD  # the walk starts afresh


def test_a_high_word_in_the_masked_nibble_reaches_the_work_area() -> None:
    """args[1] = 0x10000000 is bit 60 of the address, which the mask drops: the call
    reads the index at WA and answers the first step."""
    rig = Rig(small_fragment)
    assert rig.configure(0x10000000) == ConfigureConnector.NEXT_CHILD
    assert rig.mem.read(WA + 20, 17) == b"PowerPC,POWER9@2\0"


@pytest.mark.parametrize("hi", [0, 0x10000000], ids=["plain", "masked"])
def test_a_value_starting_at_the_work_area_end_is_not_stored(hi: int) -> None:
    """A property whose name fills the work area up to byte 4096 (4075 characters):
    its value would start at offset 4096, where MIN(len, 4096 - 4096) = 0 bytes are
    stored; the words at +8/+12/+16 and the name are written as usual."""
    name = "q" * 4075
    rig = Rig(lambda device: Node("n@2", properties=[Property(name, b"VALUE")]))
    assert rig.configure(hi) == ConfigureConnector.NEXT_CHILD
    assert rig.configure(hi) == ConfigureConnector.NEXT_PROPERTY
    area = rig.mem.read(WA - 64, 64 + WA_LEN + 64)
    assert area[:64] == bytes([SENTINEL]) * 64  # nothing before the work area
    wa = area[64:]
    assert wa[8:20] == (20).to_bytes(4, "big") + (5).to_bytes(4, "big") + (4096).to_bytes(4, "big")
    assert wa[20:WA_LEN] == name.encode() + b"\0"
    assert wa[WA_LEN:] == bytes([SENTINEL]) * 64  # the value is not stored


def test_an_overlong_property_name_still_gets_its_name_offset_word() -> None:
    """A property name past the work area's end (4100 characters) is answered through
    the word-by-word stores: +8 still says 20 and nothing before the work area moves."""
    rig = Rig(lambda device: Node("n@2", properties=[Property("p" * 4100, b"VALUE")]))
    assert rig.configure() == ConfigureConnector.NEXT_CHILD
    rig.mem.write(WA + 8, bytes(4))
    assert rig.configure() == ConfigureConnector.NEXT_PROPERTY
    assert rig.mem.read(WA + 8, 4) == (20).to_bytes(4, "big")
    assert rig.mem.read(WA - 64, 64) == bytes([SENTINEL]) * 64
