"""Where every tree traversal stops: node loops and the nesting limit, exactly.

The fdt package's contract (fdt/_tree.py): a node nested MAX_DEPTH levels below
the node a traversal starts from is accepted, one level deeper is an FdtError,
and a node met again inside itself is an FdtError naming that node. These tests
pin the exact point for each traversal a user reaches: ``Node.iter_nodes`` (the
paths it hands out before it stops), ``fdt.walk`` (the configure-connector
steps), ``to_dtb``, ``from_dtb``, ``to_dts`` and ``Node.copy``. A traversal that
noticed a loop only later would hand out paths that do not exist; one that
miscounted depth would refuse a legal tree or accept an illegal one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fdt import MAX_DEPTH, FdtError, Node, Property, WalkStep, WalkTag, from_dtb, to_dtb, to_dts
from fdt import walk as fdt_walk

B, P, E = WalkTag.BEGIN_NODE, WalkTag.PROPERTY, WalkTag.END_NODE


def chain(levels: int, top: str = "") -> Node:
    """A node with a child, grandchild, ... ``levels`` levels deep (each has one property)."""
    head = node = Node(top)
    for i in range(levels):
        node = node.append_subnode(Node(f"n{i}", [Property.cells("reg", i)]))
    return head


def taken_until_error(items: Iterator[Any]) -> tuple[list[Any], FdtError]:
    """Everything ``items`` yields before it raises FdtError, and the error."""
    out: list[Any] = []
    try:
        for item in items:
            out.append(item)
    except FdtError as exc:
        return out, exc
    raise AssertionError(f"no FdtError after {len(out)} items")


# -- loops ---------------------------------------------------------------------


def loop_through_top() -> Node:
    """a -> b -> a: the starting node is inside itself."""
    a = Node("a", [Property.cells("reg", 1)])
    b = a.append_subnode(Node("b", [Property.cells("reg", 2)]))
    b.append_subnode(a)
    return a


def loop_below_top() -> Node:
    """a -> b -> c -> b: the loop does not pass through the starting node."""
    a = Node("a", [Property.cells("reg", 1)])
    b = a.append_subnode(Node("b", [Property.cells("reg", 2)]))
    c = b.append_subnode(Node("c", [Property.cells("reg", 3)]))
    c.append_subnode(b)
    return a


@pytest.mark.parametrize(
    ("make", "paths", "culprit"),
    [
        (loop_through_top, ["/", "/b"], "a"),
        (loop_below_top, ["/", "/b", "/b/c"], "b"),
    ],
)
def test_iter_nodes_stops_at_the_first_repeated_node(
    make: Callable[[], Node], paths: list[str], culprit: str
) -> None:
    seen, error = taken_until_error(p for p, _ in make().iter_nodes())
    assert seen == paths
    assert repr(culprit) in str(error)


@pytest.mark.parametrize(
    ("make", "begun", "culprit"),
    [
        (loop_through_top, ["a", "b"], "a"),
        (loop_below_top, ["a", "b", "c"], "b"),
    ],
)
def test_walk_stops_at_the_first_repeated_node(
    make: Callable[[], Node], begun: list[str], culprit: str
) -> None:
    steps, error = taken_until_error(fdt_walk(make()))
    expected: list[WalkStep] = []
    for i, name in enumerate(begun, start=1):
        expected += [WalkStep(B, name), WalkStep(P, "reg", struct.pack(">I", i))]
    assert steps == expected
    assert repr(culprit) in str(error)


@pytest.mark.parametrize("make", [loop_through_top, loop_below_top])
def test_every_whole_tree_operation_refuses_a_loop(make: Callable[[], Node]) -> None:
    root = Node("", children=[make()])
    for operation in (to_dtb, to_dts, Node.copy):
        with pytest.raises(FdtError, match="loop"):
            operation(root)


# -- the nesting limit ----------------------------------------------------------


def test_the_deepest_legal_tree_passes_every_traversal() -> None:
    deepest = chain(MAX_DEPTH)
    assert len(list(deepest.iter_nodes())) == MAX_DEPTH + 1
    steps = list(fdt_walk(deepest))
    assert [s.tag for s in steps].count(B) == MAX_DEPTH + 1
    assert [s.tag for s in steps].count(E) == MAX_DEPTH + 1
    blob = to_dtb(deepest)
    assert from_dtb(blob).root == deepest
    assert to_dts(blob).count("{") == MAX_DEPTH + 1
    assert deepest.copy() == deepest


def test_a_walk_counts_depth_from_the_node_it_starts_at() -> None:
    """The configure-connector walk of a subtree may reach MAX_DEPTH below that subtree."""
    top = chain(MAX_DEPTH, top="frag")
    assert len(list(fdt_walk(top))) == 3 * (MAX_DEPTH + 1) - 1


@pytest.mark.parametrize(
    "operation",
    [
        lambda n: list(n.iter_nodes()),
        lambda n: list(fdt_walk(n)),
        to_dtb,
        to_dts,
        Node.copy,
    ],
    ids=["iter_nodes", "walk", "to_dtb", "to_dts", "copy"],
)
def test_one_level_deeper_is_refused_naming_the_limit(operation: Callable[[Node], Any]) -> None:
    with pytest.raises(FdtError) as info:
        operation(chain(MAX_DEPTH + 1))
    assert str(MAX_DEPTH) in str(info.value)


def test_walk_of_a_too_deep_tree_stops_where_the_limit_is_crossed() -> None:
    steps, _error = taken_until_error(fdt_walk(chain(MAX_DEPTH + 1)))
    begun = [s.name for s in steps if s.tag is B]
    assert begun == ["", *[f"n{i}" for i in range(MAX_DEPTH)]]
    assert E not in [s.tag for s in steps]


def test_decoding_refuses_a_blob_one_level_too_deep() -> None:
    """A blob assembled by hand (to_dtb would refuse the tree first)."""
    body = b""
    for i in range(MAX_DEPTH + 2):
        name = b"" if i == 0 else f"n{i}".encode()
        raw = name + b"\0"
        body += struct.pack(">I", 1) + raw + b"\0" * (-len(raw) % 4)
    body += struct.pack(">I", 2) * (MAX_DEPTH + 2) + struct.pack(">I", 9)
    header_size, rsvmap = 40, bytes(16)
    off_struct = header_size + len(rsvmap)
    total = off_struct + len(body)
    header = struct.pack(
        ">10I", 0xD00DFEED, total, off_struct, total, header_size, 17, 16, 0, 0, len(body)
    )
    with pytest.raises(FdtError) as info:
        from_dtb(header + rsvmap + body)
    assert str(MAX_DEPTH) in str(info.value)
