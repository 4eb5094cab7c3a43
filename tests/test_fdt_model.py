"""The fdt tree model: typed properties, libfdt insertion order, lookups, the flat walk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdt import (
    MAX_DEPTH,
    DeviceTree,
    FdtError,
    Node,
    Property,
    PropKind,
    WalkOrder,
    WalkStep,
    WalkTag,
    to_dtb,
    to_dts,
    walk,
)

# -- properties -------------------------------------------------------------


def test_typed_constructors_encode_big_endian() -> None:
    assert Property.empty("64-bit").value == b""
    assert Property.cells("reg", 1, 0xFFFFFFFF).value == b"\x00\x00\x00\x01\xff\xff\xff\xff"
    assert Property.cells("none").value == b""
    assert Property.u64("x", 0x0102030405060708).value == bytes(range(1, 9))
    assert Property.string("status", "okay").value == b"okay\0"
    assert Property.strings("compatible", ["a", "bc"]).value == b"a\0bc\0"
    assert Property.strings("compatible", []).value == b""
    assert Property.bytes("pa", bytearray(b"\x06\x00")).value == b"\x06\x00"


def test_kinds_follow_the_constructor() -> None:
    assert Property.empty("a").kind is PropKind.EMPTY
    assert Property.cells("a", 1).kind is PropKind.CELLS
    assert Property.u64("a", 1).kind is PropKind.U64
    assert Property.string("a", "x").kind is PropKind.STRING
    assert Property.strings("a", ["x"]).kind is PropKind.STRINGS
    assert Property.bytes("a", b"x").kind is PropKind.BYTES
    assert Property("a", b"x").kind is PropKind.BYTES


def test_equality_ignores_kind() -> None:
    assert Property.cells("a", 0x6F6B6179) == Property.bytes("a", b"okay")
    assert Property.string("a", "abc") == Property("a", b"abc\0")
    assert Property.string("a", "abc") != Property.string("b", "abc")
    assert hash(Property.cells("a", 1)) == hash(Property.bytes("a", b"\0\0\0\1"))


@pytest.mark.parametrize("bad", [-1, 1 << 32])
def test_cells_out_of_range_are_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        Property.cells("a", 1, bad)


@pytest.mark.parametrize("bad", [-1, 1 << 64])
def test_u64_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        Property.u64("a", bad)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(TypeError):
        Property.cells("a", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Property.string("a", "x\0y")
    with pytest.raises(ValueError):
        Property.string("a", "\ud800")
    with pytest.raises(TypeError):
        Property.strings("a", "abc")
    with pytest.raises(TypeError):
        Property("a", 5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "é", "a\0b", "tab\t"])
def test_bad_property_names_are_refused(name: str) -> None:
    with pytest.raises(FdtError):
        Property.empty(name)


def test_readers() -> None:
    assert Property.cells("a", 1, 2).cells() == (1, 2)
    assert Property.u64("a", 1 << 40, 3).u64s() == (1 << 40, 3)
    assert Property.u64("a", 1 << 40).cells() == (0x100, 0)
    assert Property.string("a", "okay").string() == "okay"
    assert Property.strings("a", ["x", "", "yz"]).strings() == ["x", "", "yz"]
    assert Property.string("a", "one").strings() == ["one"]
    assert Property.empty("a").strings() == []
    assert Property.empty("a").cells() == ()


@pytest.mark.parametrize(
    ("value", "reader"),
    [
        (b"\0\0\0", "cells"),
        (b"\0" * 12, "u64s"),
        (b"", "string"),
        (b"abc", "string"),
        (b"a\0b\0", "string"),
        (b"\xff\0", "string"),
        (b"ab", "strings"),
        (b"a\0\xfe\0", "strings"),
    ],
)
def test_readers_reject_malformed_values(value: bytes, reader: str) -> None:
    prop = Property("p", value)
    with pytest.raises(FdtError):
        getattr(prop, reader)()


@given(st.lists(st.integers(0, 0xFFFF_FFFF), max_size=8))
def test_cells_round_trip(values: list[int]) -> None:
    assert Property.cells("c", *values).cells() == tuple(values)


@given(
    st.lists(
        st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=5),
        max_size=5,
    )
)
def test_strings_round_trip(values: list[str]) -> None:
    prop = Property.strings("s", values)
    assert prop.strings() == (values if values else [])


# -- libfdt insertion semantics ----------------------------------------------


def names(items: tuple[Property, ...] | tuple[Node, ...]) -> list[str]:
    return [item.name for item in items]


@given(st.integers(1, 12), st.data())
def test_set_property_puts_new_first_and_overwrites_in_place(n: int, data: st.DataObject) -> None:
    node = Node("n")
    for i in range(1, n + 1):
        node.set_property(Property.cells(f"p{i}", i))
    k = data.draw(st.integers(1, n))
    node.set_property(Property.string(f"p{k}", "new"))
    # libfdt: P1..Pn created in order are stored Pn..P1; the overwritten Pk keeps its slot.
    assert names(node.properties) == [f"p{i}" for i in range(n, 0, -1)]
    assert node.properties[n - k] == Property.string(f"p{k}", "new")
    assert [p.cells()[0] for p in node.properties if p.name != f"p{k}"] == [
        i for i in range(n, 0, -1) if i != k
    ]


def test_append_property_adds_last_and_replaces_in_place() -> None:
    node = Node("n")
    node.append_property(Property.cells("a", 1))
    node.append_property(Property.cells("b", 2))
    node.set_property(Property.cells("c", 3))
    node.append_property(Property.cells("a", 9))
    assert names(node.properties) == ["c", "a", "b"]
    assert node["a"].cells() == (9,)
    with pytest.raises(FdtError):
        node.append_property(Property.cells("a", 1), replace=False)


def test_property_lookup_and_removal() -> None:
    node = Node("n", properties=[Property.cells("a", 1), Property.empty("b")])
    assert "a" in node and "z" not in node
    assert node.get("z") is None
    assert node.get("b") == Property.empty("b")
    with pytest.raises(KeyError):
        node["z"]
    assert node.remove_property("a") == Property.cells("a", 1)
    assert names(node.properties) == ["b"]
    with pytest.raises(KeyError):
        node.remove_property("a")
    node.set_property(Property.cells("a", 2))
    assert names(node.properties) == ["a", "b"]


def test_add_subnode_goes_before_existing_subnodes() -> None:
    parent = Node("")
    parent.set_property(Property.empty("x"))
    for name in ("a", "b@1", "c"):
        parent.add_subnode(Node(name))
    assert names(parent.children) == ["c", "b@1", "a"]
    parent.append_subnode(Node("z"))
    assert names(parent.children) == ["c", "b@1", "a", "z"]
    assert names(parent.properties) == ["x"]


def test_subnode_errors_and_removal() -> None:
    parent = Node("")
    child = parent.add_subnode(Node("cpus"))
    assert parent.subnode("cpus") is child
    assert parent.subnode("nope") is None
    with pytest.raises(FdtError):
        parent.add_subnode(Node("cpus"))
    with pytest.raises(FdtError):
        parent.append_subnode(Node("cpus"))
    with pytest.raises(FdtError):
        parent.add_subnode(Node(""))
    with pytest.raises(FdtError):
        parent.add_subnode(parent)
    assert parent.remove_subnode("cpus") is child
    assert parent.children == ()
    with pytest.raises(KeyError):
        parent.remove_subnode("cpus")


@pytest.mark.parametrize("name", ["a/b", "sp ace", "ü", "nul\0"])
def test_bad_node_names_are_refused(name: str) -> None:
    with pytest.raises(FdtError):
        Node(name)


def test_constructor_checks_duplicates() -> None:
    with pytest.raises(FdtError):
        Node("n", properties=[Property.empty("a"), Property.cells("a", 1)])
    with pytest.raises(FdtError):
        Node("n", children=[Node("a"), Node("a")])
    with pytest.raises(FdtError):
        Node("n", children=[Node("")])


def test_name_cannot_be_changed() -> None:
    node = Node("a")
    with pytest.raises(AttributeError):
        node.name = "b"


def sample_tree() -> Node:
    root = Node("", properties=[Property.string("model", "m")])
    cpus = root.append_subnode(Node("cpus", properties=[Property.cells("#size-cells", 0)]))
    cpus.append_subnode(Node("PowerPC,POWER8@0", properties=[Property.cells("reg", 0)]))
    cpus.append_subnode(Node("PowerPC,POWER8@8", properties=[Property.cells("reg", 8)]))
    root.append_subnode(Node("memory@0"))
    root.append_subnode(Node("memory"))
    return root


def test_find() -> None:
    root = sample_tree()
    assert root.find("/") is root
    assert root.find("") is root
    assert root.find("/cpus/PowerPC,POWER8@8")["reg"].cells() == (8,)  # type: ignore[index]
    assert root.find("cpus/PowerPC,POWER8@0") is root.find("/cpus/PowerPC,POWER8@0")
    # Without a unit address: the first child of that base name (libfdt's rule)...
    assert root.find("/cpus/PowerPC,POWER8") is root.find("/cpus/PowerPC,POWER8@0")
    # ...but an exact name wins.
    assert root.find("/memory").name == "memory"  # type: ignore[union-attr]
    assert root.find("/cpus/PowerPC,POWER8@10") is None
    assert root.find("/nope/cpus") is None


def test_iter_nodes_is_depth_first_with_paths() -> None:
    root = sample_tree()
    assert [path for path, _ in root.iter_nodes()] == [
        "/",
        "/cpus",
        "/cpus/PowerPC,POWER8@0",
        "/cpus/PowerPC,POWER8@8",
        "/memory@0",
        "/memory",
    ]
    cpus = root.subnode("cpus")
    assert cpus is not None
    assert [path for path, _ in cpus.iter_nodes()][1] == "/PowerPC,POWER8@0"


def test_copy_is_deep() -> None:
    root = sample_tree()
    dup = root.copy()
    assert dup == root and dup is not root
    dup.find("/cpus").set_property(Property.empty("new"))  # type: ignore[union-attr]
    dup.find("/cpus").add_subnode(Node("x"))  # type: ignore[union-attr]
    assert "new" not in root.find("/cpus")  # type: ignore[operator]
    assert root.find("/cpus/x") is None
    assert dup != root


def test_equality_is_order_sensitive_and_same_content_is_not() -> None:
    a, b = Node("n"), Node("n")
    a.append_property(Property.cells("x", 1))
    a.append_property(Property.cells("y", 2))
    b.set_property(Property.cells("x", 1))
    b.set_property(Property.cells("y", 2))
    assert a != b and a.same_content(b)
    a.append_subnode(Node("c1"))
    a.append_subnode(Node("c2"))
    b.add_subnode(Node("c1"))
    b.add_subnode(Node("c2"))
    assert a.same_content(b)
    b.find("c1").set_property(Property.empty("z"))  # type: ignore[union-attr]
    assert not a.same_content(b)
    assert not Node("n").same_content(Node("m"))
    assert not a.same_content(Node("n", properties=a.properties))
    c = Node("n", properties=[Property.cells("x", 1), Property.cells("y", 3)])
    assert not Node("n", properties=a.properties).same_content(c)


def make_loop() -> Node:
    root = Node("")
    a = root.append_subnode(Node("a"))
    b = a.append_subnode(Node("b"))
    b.append_subnode(a)
    return root


def test_loops_are_refused() -> None:
    root = make_loop()
    with pytest.raises(FdtError):
        to_dtb(root)
    with pytest.raises(FdtError):
        to_dts(root)
    with pytest.raises(FdtError):
        list(root.iter_nodes())
    with pytest.raises(FdtError):
        root.copy()
    with pytest.raises(FdtError):
        list(walk(root))


def chain(depth: int) -> Node:
    root = node = Node("")
    for i in range(depth):
        node = node.append_subnode(Node(f"n{i}"))
    return root


def test_nesting_limit() -> None:
    assert len(list(chain(MAX_DEPTH).iter_nodes())) == MAX_DEPTH + 1
    to_dtb(chain(MAX_DEPTH))
    with pytest.raises(FdtError):
        to_dtb(chain(MAX_DEPTH + 1))
    with pytest.raises(FdtError):
        list(walk(chain(MAX_DEPTH + 1)))


def test_shared_subtree_is_not_a_loop() -> None:
    shared = Node("s", properties=[Property.empty("p")])
    root = Node("", children=[Node("a", children=[shared]), Node("b", children=[shared])])
    assert [p for p, _ in root.iter_nodes()] == ["/", "/a", "/a/s", "/b", "/b/s"]
    to_dtb(root)


def test_device_tree_validation() -> None:
    assert DeviceTree().root == Node("")
    with pytest.raises(FdtError):
        DeviceTree(Node(""), reserve_map=((0x1000, 0),))
    with pytest.raises(FdtError):
        DeviceTree(Node(""), reserve_map=((-1, 1),))
    with pytest.raises(FdtError):
        DeviceTree(Node(""), boot_cpuid_phys=1 << 32)
    assert DeviceTree(Node(""), reserve_map=[(1, 2)]).reserve_map == ((1, 2),)


# -- the flat walk -------------------------------------------------------------


def fragment() -> Node:
    core = Node("PowerPC,POWER9@8")
    core.set_property(Property.cells("reg", 8))
    core.set_property(Property.string("device_type", "cpu"))
    core.set_property(Property.empty("64-bit"))
    core.add_subnode(Node("l2", properties=[Property.cells("a", 1), Property.cells("b", 2)]))
    core.add_subnode(Node("l3"))
    return core


B, P, E = WalkTag.BEGIN_NODE, WalkTag.PROPERTY, WalkTag.END_NODE


def test_walk_stored_order() -> None:
    assert list(walk(fragment())) == [
        WalkStep(B, "PowerPC,POWER9@8"),
        WalkStep(P, "64-bit", b""),
        WalkStep(P, "device_type", b"cpu\0"),
        WalkStep(P, "reg", b"\0\0\0\x08"),
        WalkStep(B, "l3"),
        WalkStep(E),
        WalkStep(B, "l2"),
        WalkStep(P, "a", b"\0\0\0\1"),
        WalkStep(P, "b", b"\0\0\0\2"),
        WalkStep(E),
        WalkStep(E),
    ]


def test_walk_reversed_order() -> None:
    steps = list(
        walk(fragment(), property_order=WalkOrder.REVERSED, child_order=WalkOrder.REVERSED)
    )
    assert [(s.tag, s.name) for s in steps] == [
        (B, "PowerPC,POWER9@8"),
        (P, "reg"),
        (P, "device_type"),
        (P, "64-bit"),
        (B, "l2"),
        (P, "b"),
        (P, "a"),
        (E, ""),
        (B, "l3"),
        (E, ""),
        (E, ""),
    ]


def test_walk_custom_order() -> None:
    steps = list(
        walk(
            fragment(),
            property_order=lambda props: sorted(props, key=lambda p: p.name),
            child_order=WalkOrder.STORED,
        )
    )
    assert [s.name for s in steps if s.tag is P][:3] == ["64-bit", "device_type", "reg"]
    with pytest.raises(TypeError):
        list(walk(fragment(), property_order="sideways"))  # type: ignore[arg-type]


def test_walk_of_a_leaf() -> None:
    assert list(walk(Node("x"))) == [WalkStep(B, "x"), WalkStep(E)]


@given(st.integers(0, 6), st.integers(0, 6))
def test_walk_counts(n_props: int, n_children: int) -> None:
    node = Node("n", properties=[Property.cells(f"p{i}", i) for i in range(n_props)])
    for i in range(n_children):
        node.add_subnode(Node(f"c{i}", properties=[Property.empty("e")]))
    steps = list(walk(node))
    assert sum(s.tag is B for s in steps) == sum(s.tag is E for s in steps) == n_children + 1
    assert sum(s.tag is P for s in steps) == n_props + n_children
    assert [s.name for s in steps if s.tag is B][1:] == [
        f"c{i}" for i in reversed(range(n_children))
    ]
