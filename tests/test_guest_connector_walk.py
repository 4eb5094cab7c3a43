"""The guest's configure-connector walk (guest/connector.py) rebuilds the trees it is handed.

Two encodings of a subtree reach a pseries guest's ``dlpar_configure_connector``
loop (Linux 6.1 arch/powerpc/platforms/pseries/dlpar.c; drmgr's loop in
powerpc-utils is the same):

* PAPR's (§13.5.3.5): a node's first child comes as NEXT_CHILD (2), each further
  child as NEXT_SIBLING (1) of the child before it, and PREV_PARENT (4) closes a
  level once its last node is done. The guest keeps a "last node" pointer: 2 makes
  the new node the last node's child, 1 its sibling (same parent), 4 moves the
  pointer to the last node's parent. Every tree and every forest round-trips.
* QEMU 7.2's (protocol.md §4.6, this project's spapr/drc.py over ``fdt.walk``):
  every node is NEXT_CHILD and every node end PREV_PARENT (the outermost end is
  SUCCESS). A second child therefore comes as 4 then 2, and dlpar.c's 2 *sets*
  the parent's child pointer: the earlier child and its subtree are dropped. So
  Linux 6.1 rebuilds a QEMU fragment exactly when no node in it has two children
  (a CPU core's fragment is one node), and otherwise keeps, at every level, only
  the last child. The reference guest does the same on purpose.

The expectations below come from those two descriptions, not from the code under
test: ``papr_answers`` encodes a forest as PAPR says, ``linux_view`` is what the
dlpar.c pointer logic leaves of a QEMU-encoded tree. The QEMU side is the
project's own producer, driven through guest memory and the RTAS dispatcher.
"""

from __future__ import annotations

import string
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fdt
from guest.connector import ConnectorError, ConnectorWalk, initial_work_area
from rtas import GuestMemory, RtasDispatcher, encode_call, read_rets
from rtas.codes import CC_WORK_AREA_SIZE, ConfigureConnector
from rtas.tokens import RtasToken
from spapr.drc import DrcTable, DrcType
from spapr.drc_rtas import register_drc_rtas
from spapr.trace import TraceRecorder

NEXT_SIBLING = 1
NEXT_CHILD = 2
NEXT_PROPERTY = 3
PREV_PARENT = 4

# -- random trees -------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + ",._+-#"
node_names = st.builds(
    lambda base, unit: base if unit is None else f"{base}@{unit}",
    st.text(NAME_CHARS, min_size=1, max_size=10),
    st.none() | st.text(string.hexdigits.lower(), min_size=1, max_size=4),
)
properties = st.builds(
    fdt.Property, st.text(NAME_CHARS, min_size=1, max_size=12), st.binary(max_size=40)
)


@st.composite
def subtrees(draw: st.DrawFn, depth: int = 0, max_children: int = 3) -> fdt.Node:
    """A node with up to 4 properties and, above depth 3, up to ``max_children`` children."""
    props = draw(st.lists(properties, max_size=4, unique_by=lambda p: p.name))
    width = max_children if depth < 3 else 0
    children = draw(
        st.lists(subtrees(depth + 1, max_children), max_size=width, unique_by=lambda n: n.name)
    )
    return fdt.Node(draw(node_names), props, children)


forests = st.lists(subtrees(), min_size=1, max_size=3, unique_by=lambda n: n.name)
#: Trees in which no node has two children: the shape QEMU's encoding cannot garble.
chains = subtrees(max_children=1)


# -- the guest side, fed work areas ------------------------------------------


def papr_work_area(drc_index: int, name: str, value: bytes | None = None) -> bytes:
    """A work area as PAPR lays an answer out (protocol.md §4.6's table).

    Word 0 the DRC index, word 1 zero, word 2 the name offset (20), and for a
    property word 3 the value length and word 4 the value offset, which is just
    past the name's NUL; the name at 20 and the value after it.
    """
    area = bytearray(CC_WORK_AREA_SIZE)
    raw = name.encode() + b"\0"
    struct.pack_into(">III", area, 0, drc_index, 0, 20)
    area[20 : 20 + len(raw)] = raw
    if value is not None:
        struct.pack_into(">II", area, 12, len(value), 20 + len(raw))
        area[20 + len(raw) : 20 + len(raw) + len(value)] = value
    return bytes(area)


def papr_answers(forest: list[fdt.Node]) -> list[tuple[int, str, bytes | None]]:
    """The (status, name, value) answers PAPR's encoding gives for ``forest``, in order."""
    out: list[tuple[int, str, bytes | None]] = []

    def emit(node: fdt.Node, status: int) -> None:
        out.append((status, node.name, None))
        out.extend((NEXT_PROPERTY, p.name, p.value) for p in node.properties)
        for i, child in enumerate(node.children):
            emit(child, NEXT_CHILD if i == 0 else NEXT_SIBLING)
        if node.children:
            out.append((PREV_PARENT, "", None))  # from the last child back to this node

    for i, top in enumerate(forest):
        emit(top, NEXT_CHILD if i == 0 else NEXT_SIBLING)
    return out


def feed(answers: list[tuple[int, str, bytes | None]], drc_index: int = 0x10000008) -> list[Any]:
    """Run the guest's walk over ``answers`` and return the nodes it built."""
    walk = ConnectorWalk(drc_index)
    for status, name, value in answers:
        walk.step(status, papr_work_area(drc_index, name, value))
    return walk.nodes()


@settings(max_examples=150)
@given(forests)
def test_guest_rebuilds_any_papr_encoded_forest(forest: list[fdt.Node]) -> None:
    assert feed(papr_answers(forest)) == forest


def test_sibling_after_climbing_attaches_beside_the_parent() -> None:
    """2, 2, 1, 4, 1: a node, its two children, then a sibling of the first node."""
    a, b, c, d = (f"{n}@{i}" for i, n in enumerate("abcd"))
    built = feed(
        [
            (NEXT_CHILD, a, None),
            (NEXT_CHILD, b, None),
            (NEXT_SIBLING, c, None),
            (PREV_PARENT, "", None),
            (NEXT_SIBLING, d, None),
        ]
    )
    assert built == [fdt.Node(a, children=[fdt.Node(b), fdt.Node(c)]), fdt.Node(d)]


def test_properties_after_a_sibling_belong_to_the_sibling() -> None:
    reg = (NEXT_PROPERTY, "reg", b"\0\0\0\x02")
    built = feed([(NEXT_CHILD, "a", None), (NEXT_CHILD, "b", None), (NEXT_SIBLING, "c", None), reg])
    assert built == [
        fdt.Node("a", children=[fdt.Node("b"), fdt.Node("c", [fdt.Property(*reg[1:])])])
    ]


@pytest.mark.parametrize(
    "answers",
    [
        # climbing out of the first node leaves the guest at the connector's parent
        # (Linux's /cpus); a node there would overwrite that live node's pointers
        [(NEXT_CHILD, "a", None), (PREV_PARENT, "", None), (NEXT_CHILD, "b", None)],
        [(NEXT_CHILD, "a", None), (PREV_PARENT, "", None), (NEXT_SIBLING, "b", None)],
        [(NEXT_CHILD, "a", None), (PREV_PARENT, "", None), (NEXT_PROPERTY, "reg", b"")],
        [(NEXT_CHILD, "a", None), (PREV_PARENT, "", None), (PREV_PARENT, "", None)],
    ],
)
def test_answers_above_the_connector_parent_are_refused(
    answers: list[tuple[int, str, bytes | None]],
) -> None:
    walk = ConnectorWalk(1)
    *ok, bad = answers
    for status, name, value in ok:
        walk.step(status, papr_work_area(1, name, value))
    with pytest.raises(ConnectorError):
        walk.step(bad[0], papr_work_area(1, bad[1], bad[2]))


# -- the machine's producer, through guest memory and RTAS ---------------------

MEM_SIZE = 0x10000
BUF = 0x100
WA = 0x2000
CPU_INDEX = 0x10000002


def linux_view(node: fdt.Node) -> fdt.Node:
    """What dlpar.c keeps of a QEMU-encoded ``node``: each level's last child only."""
    kept = [linux_view(node.children[-1])] if node.children else []
    return fdt.Node(node.name, node.properties, kept)


def configure_through_rtas(tree: fdt.Node) -> tuple[list[int], list[fdt.Node]]:
    """Plug ``tree`` as a CPU DRC's fragment and run the guest's configure loop over RTAS.

    The DRC is acquired as a guest does (allocation usable, then unisolate); each
    call copies the guest's work area into RAM and back, as Linux does. Returns
    the statuses and the nodes the guest built.
    """
    table = DrcTable(TraceRecorder())
    drc = table.new(DrcType.CPU, 2, build_fragment=lambda _device: tree)
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    register_drc_rtas(dispatcher.register, table)
    mem = GuestMemory(MEM_SIZE)

    def rtas(token: int, args: list[int], nret: int) -> int:
        encode_call(mem, BUF, token, args, nret)
        assert dispatcher.hcall_rtas(mem, BUF, None) == 0
        return read_rets(mem, BUF)[0]

    drc.attach("core")
    assert rtas(RtasToken.SET_INDICATOR, [9003, CPU_INDEX, 1], 1) == 0
    assert rtas(RtasToken.SET_INDICATOR, [9001, CPU_INDEX, 1], 1) == 0
    area = initial_work_area(CPU_INDEX)
    walk = ConnectorWalk(CPU_INDEX)
    statuses: list[int] = []
    for _ in range(10_000):
        mem.write(WA, area)
        status = rtas(RtasToken.IBM_CONFIGURE_CONNECTOR, [WA, 0], 1)
        area = bytearray(mem.read(WA, CC_WORK_AREA_SIZE))
        statuses.append(status)
        if status == ConfigureConnector.SUCCESS:
            return statuses, walk.nodes()
        walk.step(status, bytes(area))
    raise AssertionError("configure-connector never completed")


def qemu_statuses(node: fdt.Node, depth: int = 0) -> list[int]:
    """QEMU's answers for ``node``: 2, its properties, its children, then 4 (0 outermost)."""
    out = [NEXT_CHILD] + [NEXT_PROPERTY] * len(node.properties)
    for child in node.children:
        out += qemu_statuses(child, depth + 1)
    return [*out, PREV_PARENT if depth else ConfigureConnector.SUCCESS]


@settings(max_examples=60)
@given(chains)
def test_guest_rebuilds_the_machines_fragment_when_no_node_has_two_children(
    tree: fdt.Node,
) -> None:
    statuses, built = configure_through_rtas(tree)
    assert statuses == qemu_statuses(tree)
    assert NEXT_SIBLING not in statuses
    assert built == [tree]


@settings(max_examples=60)
@given(subtrees())
def test_guest_keeps_what_linux_keeps_of_any_machine_fragment(tree: fdt.Node) -> None:
    statuses, built = configure_through_rtas(tree)
    assert statuses == qemu_statuses(tree)
    assert built == [linux_view(tree)]


def test_a_second_child_from_the_machine_replaces_the_first_as_in_linux() -> None:
    first = fdt.Node("l2-cache@10", [fdt.Property("reg", b"\0\0\0\x10")], [fdt.Node("x")])
    second = fdt.Node("l3-cache@20", [fdt.Property("reg", b"\0\0\0\x20")])
    core = fdt.Node("PowerPC,POWER9@8", [fdt.Property("reg", b"\0\0\0\x08")], [first, second])
    statuses, built = configure_through_rtas(core)
    assert statuses == [2, 3, 2, 3, 2, 4, 4, 2, 3, 4, 0]
    assert built == [fdt.Node("PowerPC,POWER9@8", [fdt.Property("reg", b"\0\0\0\x08")], [second])]
