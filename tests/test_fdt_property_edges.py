"""Typed property constructors: what a cell or u64 may be, and the exact bytes at the limits.

A device-tree cell is a big-endian u32 and a u64 two of them (DTB v17 spec,
"Property values"). Only integers make cells: a bool or a float is a mistake the
constructor must refuse (TypeError) instead of writing 1 or failing deep inside
struct packing.
"""

from __future__ import annotations

import pytest

from fdt import Property


@pytest.mark.parametrize("bad", [True, False, 1.0, 2.5, None, b"\x01"])
def test_cells_refuse_anything_but_int(bad: object) -> None:
    with pytest.raises(TypeError):
        Property.cells("reg", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Property.cells("reg", 1, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, False, 1.0, None])
def test_u64_refuses_anything_but_int(bad: object) -> None:
    with pytest.raises(TypeError):
        Property.u64("reg", bad)  # type: ignore[arg-type]


def test_limits_encode_big_endian() -> None:
    assert Property.cells("c", 0, 0xFFFF_FFFF).value == bytes(4) + b"\xff" * 4
    assert Property.u64("q", 0xFFFF_FFFF_FFFF_FFFF, 1).value == b"\xff" * 8 + bytes(7) + b"\x01"
    assert Property.cells("c").value == b""
    assert Property.bytes("b", bytearray(b"\x00\x01")).value == b"\x00\x01"
