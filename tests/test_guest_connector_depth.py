"""How deep a configure-connector fragment the guest accepts, and its first words.

Linux 6.1's unflattener stops at 64 levels (``drivers/of/fdt.c``: ``FDT_MAX_DEPTH``
64, the root at depth 0), which is the limit the project's fdt package keeps
(``fdt.MAX_DEPTH``, checked in ``tests/test_fdt_tree_limits.py``). A fragment
handed out by configure-connector becomes nodes of the guest's tree, so the guest
accepts a chain whose deepest node is at depth ``MAX_DEPTH`` (the first node at 0)
and refuses a deeper one as a malformed answer, the way it refuses the others
(``guest.connector.ConnectorError``). The work area starts as Linux's kzalloc'd
one with the DRC index in word 0 (``dlpar.c: dlpar_configure_connector``).
"""

from __future__ import annotations

import struct

import pytest

import fdt
from guest.connector import ConnectorError, ConnectorWalk, initial_work_area, read_property

NEXT_CHILD, PREV_PARENT = 2, 4


def node_answer(name: str) -> bytes:
    """A work area holding a NEXT_CHILD answer: name offset at word 2, name at 20."""
    area = bytearray(4096)
    struct.pack_into(">I", area, 8, 20)
    encoded = name.encode() + b"\0"
    area[20 : 20 + len(encoded)] = encoded
    return bytes(area)


def chain(nodes: int) -> ConnectorWalk:
    walk = ConnectorWalk(0x10000002)
    for i in range(nodes):
        walk.step(NEXT_CHILD, node_answer(f"n{i}"))
    for _ in range(nodes):
        walk.step(PREV_PARENT, b"")
    return walk


def depth_of(node: fdt.Node) -> int:
    depth = 0
    while node.children:
        (node,) = node.children
        depth += 1
    return depth


@pytest.mark.parametrize("nodes", [1, 2, fdt.MAX_DEPTH, fdt.MAX_DEPTH + 1])
def test_a_chain_down_to_the_depth_limit_is_accepted(nodes: int) -> None:
    (top,) = chain(nodes).nodes()
    assert top.name == "n0"
    assert depth_of(top) == nodes - 1


@pytest.mark.parametrize("nodes", [fdt.MAX_DEPTH + 2, fdt.MAX_DEPTH + 3])
def test_a_chain_past_the_depth_limit_is_refused(nodes: int) -> None:
    with pytest.raises(ConnectorError):
        chain(nodes).nodes()


@pytest.mark.parametrize("index", [0x10000002, 0x1FFFFFFF, 0xFFFFFFFF])
def test_the_work_area_starts_zeroed_with_the_index_in_word_0(index: int) -> None:
    area = initial_work_area(index)
    assert len(area) == 4096
    assert struct.unpack_from(">I", area, 0)[0] == index
    assert area[4:] == bytes(4092)


def test_a_property_value_may_end_exactly_at_the_work_area_end() -> None:
    """QEMU clips a value at the 4 KiB work area's end (configure_connector_st), so a
    value that fills it to the last byte is a whole value, read as such; one byte
    more would run past the area and is refused."""
    area = bytearray(4096)
    struct.pack_into(">III", area, 8, 20, 4096 - 24, 24)
    area[20:24] = b"big\0"
    area[24:] = b"\xab" * (4096 - 24)
    prop = read_property(bytes(area))
    assert (prop.name, len(prop.value)) == ("big", 4096 - 24)
    struct.pack_into(">I", area, 12, 4096 - 23)
    with pytest.raises(ConnectorError):
        read_property(bytes(area))
