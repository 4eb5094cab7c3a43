"""Edges of the guest's configure-connector reader (guest/connector.py).

The work area (protocol.md §6.1): word 0 the DRC index, word 1 zero, word 2 the
offset of the NUL-terminated name, word 3 a property's length, word 4 the offset
of its value; the area is 4 KiB. Linux 6.1 (``dlpar.c: dlpar_parse_cc_node``,
``dlpar_parse_cc_property``) reads the name as a C string at
``ccwa + name_offset`` whatever that offset is, and the value as ``length`` bytes
at ``ccwa + prop_offset``. Answers that would make Linux read outside its buffer,
or hang a node where none can go (§6.5), are refused with ``ConnectorError``; the
guest prints the refusal at KERN_ERR as ``dlpar: bad configure-connector answer:
<reason>``, so the reason is what a user reads in dmesg to learn which answer of
the platform was wrong. The reasons checked here name the status with Linux's
constant (``dlpar.c``: ``NEXT_SIBLING 1``, ``NEXT_CHILD 2``, ``NEXT_PROPERTY 3``,
``PREV_PARENT 4``), the field and offset that were out of bounds, or the name
that was not valid.
"""

from __future__ import annotations

import struct

import pytest

import fdt
from guest.connector import ConnectorError, ConnectorWalk, read_node_name, read_property

NEXT_SIBLING, NEXT_CHILD, NEXT_PROPERTY, PREV_PARENT = 1, 2, 3, 4
WA_SIZE = 4096
NAME_AT = 20


def area_with(name: bytes, *, value: bytes = b"", name_offset: int = NAME_AT) -> bytearray:
    """A work area laid out as QEMU writes an answer (§6.1), the name given raw."""
    area = bytearray(WA_SIZE)
    struct.pack_into(">I", area, 0, 0x10000002)
    struct.pack_into(">III", area, 8, name_offset, len(value), NAME_AT + len(name))
    area[NAME_AT : NAME_AT + len(name)] = name
    area[NAME_AT + len(name) : NAME_AT + len(name) + len(value)] = value
    return area


def node(name: str) -> bytes:
    return bytes(area_with(name.encode() + b"\0"))


def prop(name: str, value: bytes) -> bytes:
    return bytes(area_with(name.encode() + b"\0", value=value))


def refusal(walk: ConnectorWalk, status: int, area: bytes) -> str:
    """The reason the walk gives for refusing one answer."""
    with pytest.raises(ConnectorError) as info:
        walk.step(status, area)
    return str(info.value)


# -------------------------------------------------------------- reading names


def test_a_name_offset_of_0_reads_the_string_at_the_start_of_the_work_area() -> None:
    """Offset 0 is inside the work area: Linux's ``kstrdup(ccwa + name_offset)``
    reads the C string there, here the bytes of word 0 up to its NUL."""
    area = area_with(b"", name_offset=0)
    area[0:4] = b"cpu\0"
    assert read_node_name(bytes(area)) == "cpu"
    area[0:4] = b"\0pu\0"
    assert read_node_name(bytes(area)) == ""  # a NUL at the offset: the empty string


def test_a_name_offset_at_the_end_of_the_work_area_is_outside_it() -> None:
    """The last valid offset is 4095; 4096 points past the 4 KiB area, which the
    refusal says (offset and area size), for a node name and a property name."""
    area = bytes(area_with(b"x\0", name_offset=WA_SIZE))
    with pytest.raises(ConnectorError) as info:
        read_node_name(area)
    assert str(info.value) == "node name offset 4096 outside the 4096-byte work area"
    with pytest.raises(ConnectorError) as info:
        read_property(area)
    assert str(info.value) == "property name offset 4096 outside the 4096-byte work area"


def test_the_last_byte_of_the_work_area_may_hold_a_name() -> None:
    """Offset 4095 is inside: a NUL there is an empty name, a non-NUL byte there
    is a name without its terminator, refused as such."""
    area = area_with(b"", name_offset=WA_SIZE - 1)
    assert read_node_name(bytes(area)) == ""
    area[WA_SIZE - 1] = ord("x")
    with pytest.raises(ConnectorError) as info:
        read_node_name(bytes(area))
    assert str(info.value) == "node name at offset 4095 is not NUL-terminated"


def test_a_name_running_to_the_end_of_the_work_area_is_refused() -> None:
    """A name with no NUL before the end of the 4 KiB area would make Linux read
    past its buffer; the refusal names the field and the offset."""
    area = area_with(b"p" * (WA_SIZE - NAME_AT))
    with pytest.raises(ConnectorError) as info:
        read_property(bytes(area))
    assert str(info.value) == "property name at offset 20 is not NUL-terminated"


def test_names_are_read_byte_for_byte() -> None:
    """The name bytes are kept as they are (one character per byte), so a byte
    above 0x7F survives the reading."""
    assert read_node_name(node("PowerPC,POWER9@1")) == "PowerPC,POWER9@1"
    area = area_with(b"cpu\xe9@1\0")
    assert read_node_name(bytes(area)) == "cpu\xe9@1"


def test_a_value_past_the_work_area_is_refused_with_its_extent() -> None:
    """A value of ``length`` bytes at ``prop_offset`` must fit in the 4 KiB area;
    the refusal gives the property, the length and the offset."""
    area = area_with(b"big\0")
    struct.pack_into(">II", area, 12, WA_SIZE - 23, 24)  # one byte too many
    with pytest.raises(ConnectorError) as info:
        read_property(bytes(area))
    assert str(info.value) == "property 'big': 4073 bytes at offset 24 run past the work area"


def test_an_invalid_property_name_is_refused_and_named() -> None:
    """A property name with a space is not a device-tree property name."""
    with pytest.raises(ConnectorError) as info:
        read_property(prop("a b", b""))
    assert str(info.value).startswith("bad property name 'a b': ")
    assert "invalid property name" in str(info.value)


# ------------------------------------------------------------- the walk itself


def test_the_walk_records_every_status_in_call_order() -> None:
    """``statuses`` is the sequence of answers the walk applied (2, 3..., 4, ...)."""
    walk = ConnectorWalk(0x10000002)
    walk.step(NEXT_CHILD, node("a"))
    walk.step(NEXT_PROPERTY, prop("reg", b"\0\0\0\2"))
    walk.step(NEXT_CHILD, node("b"))
    walk.step(PREV_PARENT, b"")
    walk.step(NEXT_SIBLING, node("c"))
    assert walk.statuses == [NEXT_CHILD, NEXT_PROPERTY, NEXT_CHILD, PREV_PARENT, NEXT_SIBLING]


def test_an_invalid_node_name_is_refused_and_named() -> None:
    """A node name holding a '/' cannot be a node of the tree."""
    reason = refusal(ConnectorWalk(1), NEXT_CHILD, node("a/b"))
    assert reason.startswith("bad node name 'a/b': ")
    assert "invalid node name" in reason


@pytest.mark.parametrize(
    ("status", "area", "reason"),
    [
        (NEXT_SIBLING, node("a"), "NEXT_SIBLING before any node"),
        (NEXT_PROPERTY, prop("reg", b""), "NEXT_PROPERTY before any node"),
        (PREV_PARENT, b"", "PREV_PARENT above the parent node"),
        (5, b"", "status 5 is not a configure-connector step"),
        (0, b"", "status 0 is not a configure-connector step"),
    ],
)
def test_a_first_answer_that_is_not_a_node_is_refused_with_its_status(
    status: int, area: bytes, reason: str
) -> None:
    """Before the first NEXT_CHILD there is no node for a sibling, a property or a
    climb; a status outside 1..4 is no step of the walk at all (the caller handles
    0 and the errors)."""
    assert refusal(ConnectorWalk(1), status, area) == reason


@pytest.mark.parametrize(
    ("status", "area", "reason"),
    [
        (NEXT_CHILD, node("b"), "NEXT_CHILD above the configure-connector parent"),
        (NEXT_SIBLING, node("b"), "NEXT_SIBLING above the configure-connector parent"),
        (NEXT_PROPERTY, prop("reg", b""), "NEXT_PROPERTY before any node"),
        (PREV_PARENT, b"", "PREV_PARENT above the parent node"),
    ],
)
def test_an_answer_after_climbing_out_of_the_first_node_is_refused_with_its_status(
    status: int, area: bytes, reason: str
) -> None:
    """2 then 4 leaves the walk on its parent (Linux's live /cpus): nothing may be
    hung there or climbed above it, and the refusal says which status tried."""
    walk = ConnectorWalk(1)
    walk.step(NEXT_CHILD, node("a"))
    walk.step(PREV_PARENT, b"")
    assert refusal(walk, status, area) == reason


def test_two_siblings_of_one_name_cannot_be_children_of_one_node() -> None:
    """2 a, 2 b, 1 b: the second ``b`` is a sibling of the first under ``a``; two
    children of one name are not a tree, and the reason names the duplicate."""
    walk = ConnectorWalk(1)
    walk.step(NEXT_CHILD, node("a"))
    walk.step(NEXT_CHILD, node("b"))
    walk.step(NEXT_SIBLING, node("b"))
    with pytest.raises(ConnectorError) as info:
        walk.nodes()
    assert str(info.value) == "duplicate node 'b' under 'a'"


def test_a_chain_past_the_depth_limit_says_so() -> None:
    """A node one level below fdt.MAX_DEPTH's deepest (Linux's unflattener stops
    at 64 levels, drivers/of/fdt.c) is refused, and the reason says so."""
    walk = ConnectorWalk(1)
    for i in range(fdt.MAX_DEPTH + 2):
        walk.step(NEXT_CHILD, node(f"n{i}"))
    with pytest.raises(ConnectorError) as info:
        walk.nodes()
    assert str(info.value) == "configure-connector nodes nest too deep"
