"""Every refusal of the fdt package names what was wrong.

A user who builds a tree or hands in a blob sees only the exception: its type,
and a message that must point at the offending input (the bad name, the value,
the type given, the offset in the blob). The expectations are those inputs, as
the test wrote them, never the message wording: a test checks that the message
*contains* the value it passed in.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

import pytest
from test_fdt_blob_edges import begin, blob, prop_header, tag, v16_blob

from fdt import DeviceTree, FdtError, Node, Property, from_dtb, to_dtb, walk

#: End the root node, then the structure block.
ENDS = struct.pack(">II", 2, 9)


def message(exc_type: type[Exception], action: Callable[[], object]) -> str:
    """The message of the ``exc_type`` that ``action`` raises."""
    with pytest.raises(exc_type) as info:
        action()
    return str(info.value)


def numbers(text: str) -> set[int]:
    """Decimal numbers in ``text`` (hex tokens removed first)."""
    return {int(n) for n in re.findall(r"-?\d+", re.sub(r"0x[0-9a-fA-F]+", "", text))}


# -- building trees -----------------------------------------------------------------


def test_node_names() -> None:
    assert "int" in message(FdtError, lambda: Node(5))  # type: ignore[arg-type]
    assert "'a b'" in message(FdtError, lambda: Node("a b"))
    assert "'x/y'" in message(FdtError, lambda: Node("x/y"))


def test_subnodes() -> None:
    root = Node("")
    root.append_subnode(Node("cpus"))
    text = message(FdtError, lambda: root.append_subnode(Node("cpus")))
    assert "'cpus'" in text and "'/'" in text
    cpus = root.subnode("cpus")
    assert cpus is not None
    cpus.append_subnode(Node("cpu@0"))
    text = message(FdtError, lambda: cpus.add_subnode(Node("cpu@0")))
    assert "'cpu@0'" in text and "'cpus'" in text
    assert "'cpus'" in message(FdtError, lambda: cpus.append_subnode(cpus))
    assert "int" in message(TypeError, lambda: cpus.append_subnode(5))  # type: ignore[arg-type]
    text = message(FdtError, lambda: Node("", children=[Node("a"), Node("a")]))
    assert "'a'" in text


def test_properties_on_nodes() -> None:
    node = Node("cpu@0", [Property.cells("reg", 0)])
    assert "int" in message(TypeError, lambda: node.append_property(5))  # type: ignore[arg-type]
    assert "int" in message(TypeError, lambda: node.set_property(7))  # type: ignore[arg-type]
    text = message(FdtError, lambda: node.append_property(Property.cells("reg", 1), replace=False))
    assert "'reg'" in text and "'cpu@0'" in text
    text = message(FdtError, lambda: Node("n", [Property.empty("p"), Property.empty("p")]))
    assert "'p'" in text and "'n'" in text


def test_property_names_and_values() -> None:
    assert "int" in message(FdtError, lambda: Property(5, b""))  # type: ignore[arg-type]
    assert "'a b'" in message(FdtError, lambda: Property("a b", b""))
    assert "int" in message(TypeError, lambda: Property("a", 5))  # type: ignore[arg-type]
    assert "bool" in message(TypeError, lambda: Property.cells("reg", True))
    assert "cell" in message(TypeError, lambda: Property.cells("reg", True))
    assert "u64" in message(TypeError, lambda: Property.u64("reg", 1.5))  # type: ignore[arg-type]
    assert "0x100000000" in message(ValueError, lambda: Property.cells("reg", 1 << 32))
    assert "int" in message(TypeError, lambda: Property.string("s", 5))  # type: ignore[arg-type]
    assert "'x\\x00y'" in message(ValueError, lambda: Property.string("s", "x\0y"))
    assert "'\\ud800'" in message(ValueError, lambda: Property.string("s", "\ud800"))
    assert "str" in message(TypeError, lambda: Property.strings("s", "abc"))


@pytest.mark.parametrize(
    ("prop", "reader", "length"),
    [
        (Property("odd", b"\0\0\0"), "cells", 3),
        (Property("odd", b"\0\0\0\0"), "u64s", 4),
        (Property("odd", b"a\0b\0"), "string", None),
        (Property("odd", b"ab"), "strings", None),
        (Property("odd", b"\xff\0"), "string", None),
        (Property("odd", b"\xff\0"), "strings", None),
    ],
)
def test_readers_name_the_property(prop: Property, reader: str, length: int | None) -> None:
    text = message(FdtError, getattr(prop, reader))
    assert "odd" in text
    if length is not None:
        assert length in numbers(text)


def test_device_tree_header_values() -> None:
    assert -1 in numbers(message(FdtError, lambda: DeviceTree(reserve_map=[(-1, 1)])))
    assert 0 in numbers(message(FdtError, lambda: DeviceTree(reserve_map=[(0x1000, 0)])))
    assert 1 << 32 in numbers(message(FdtError, lambda: DeviceTree(boot_cpuid_phys=1 << 32)))


@pytest.mark.parametrize(
    "entry", [(1 << 64, 1), (0, 1 << 64), (1 << 65, 1), (2 << 64, 1), (0, -1), ("1", 1)]
)
def test_reserve_map_values_must_be_u64(entry: tuple[object, object]) -> None:
    with pytest.raises(FdtError):
        DeviceTree(reserve_map=[entry])  # type: ignore[list-item]


def test_the_largest_header_values_round_trip() -> None:
    """A u64 reserve-map entry and a u32 boot CPU id may each be all ones."""
    top = (1 << 64) - 1
    tree = DeviceTree(Node(""), 0xFFFF_FFFF, [(top, top), (0, 1)])
    blob = to_dtb(tree)
    assert blob[28:32] == b"\xff" * 4  # boot_cpuid_phys, the header's eighth word
    decoded = from_dtb(blob)
    assert decoded.reserve_map == ((top, top), (0, 1))
    assert decoded.boot_cpuid_phys == 0xFFFF_FFFF


# -- decoding blobs -------------------------------------------------------------------


def good_v17() -> bytearray:
    return bytearray(to_dtb(Node("", [Property.cells("reg", 1)])))


def patched(offset: int, value: int) -> bytes:
    blob = good_v17()
    struct.pack_into(">I", blob, offset, value)
    return bytes(blob)


def test_header_refusals_carry_the_values_found() -> None:
    assert "0xd00dfeee" in message(FdtError, lambda: from_dtb(patched(0, 0xD00DFEEE)))
    for cut in (7, 20, 39):
        assert cut in numbers(message(FdtError, lambda cut=cut: from_dtb(good_v17()[:cut])))
    assert 15 in numbers(message(FdtError, lambda: from_dtb(patched(20, 15))))
    assert 5000 in numbers(message(FdtError, lambda: from_dtb(patched(4, 5000))))
    assert 44 in numbers(message(FdtError, lambda: from_dtb(patched(16, 44))))
    assert 58 in numbers(message(FdtError, lambda: from_dtb(patched(8, 58))))


@pytest.mark.parametrize(
    ("field", "value", "block"),
    [
        (16, 0x10000, "memory reservation"),
        (8, 0x10000, "structure"),
        (36, 0x10000, "structure"),
        (12, 0x10000, "strings"),
        (32, 0x10000, "strings"),
    ],
)
def test_a_block_outside_the_blob_is_named(field: int, value: int, block: str) -> None:
    text = message(FdtError, lambda: from_dtb(patched(field, value)))
    assert block in text


def test_structure_refusals_point_at_the_fault() -> None:
    root_prop = begin(b"") + prop_header(4, 0) + bytes(4)
    # the strings block is "reg\0": offset 4 is just past it
    text = message(FdtError, lambda: from_dtb(blob(begin(b"") + prop_header(0, 4) + ENDS)))
    assert 4 in numbers(text)
    # a strings block whose only name has no NUL
    text = message(FdtError, lambda: from_dtb(blob(root_prop + ENDS, b"reg")))
    assert 0 in numbers(text)
    # a node name with a space in it
    text = message(FdtError, lambda: from_dtb(blob(begin(b"") + begin(b"a b") + ENDS + ENDS)))
    assert "a b" in text
    # a value longer than what is left of the structure block
    text = message(FdtError, lambda: from_dtb(blob(begin(b"") + prop_header(100, 0) + ENDS)))
    assert 100 in numbers(text)
    # the blob ends while "cpus" is still open
    text = message(FdtError, lambda: from_dtb(blob(begin(b"") + begin(b"cpus") + tag(9))))
    assert "'cpus'" in text
    # a node name running to the end of the structure block without its NUL
    text = message(FdtError, lambda: from_dtb(blob(begin(b"") + tag(1) + b"abcd")))
    assert 12 in numbers(text)
    # a property tag with only its length word before the block ends
    text = message(FdtError, lambda: from_dtb(blob(begin(b"") + tag(3) + bytes(4))))
    assert "property" in text
    # no node at all, or no FDT_END
    assert "root" in message(FdtError, lambda: from_dtb(blob(tag(9))))
    assert "FDT_END" in message(FdtError, lambda: from_dtb(blob(begin(b"") + tag(2))))


def test_a_v16_structure_block_outside_the_blob_is_named() -> None:
    raw = bytearray(v16_blob(36))
    struct.pack_into(">I", raw, 8, 0x1000)
    assert "structure" in message(FdtError, lambda: from_dtb(bytes(raw)))


def test_to_dtb_names_the_node_found_inside_itself() -> None:
    a = Node("a")
    b = a.append_subnode(Node("b"))
    b.append_subnode(a)
    assert "'a'" in message(FdtError, lambda: to_dtb(a))


def test_a_bad_walk_order_is_named() -> None:
    text = message(TypeError, lambda: list(walk(Node("x"), child_order="sideways")))  # type: ignore[arg-type]
    assert "'sideways'" in text
