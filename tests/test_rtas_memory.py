"""GuestMemory: bounds on every access, big-endian accessors, C strings, clipped writes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtas.memory import GuestMemory, GuestMemoryError

WIDTHS = [1, 2, 4, 8]


def accessors(
    mem: GuestMemory, width: int
) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
    return {
        1: (mem.ld8, mem.st8),
        2: (mem.ld16, mem.st16),
        4: (mem.ld32, mem.st32),
        8: (mem.ld64, mem.st64),
    }[width]


def test_error_is_not_an_index_error() -> None:
    assert not issubclass(GuestMemoryError, IndexError)
    mem = GuestMemory(16)
    with pytest.raises(GuestMemoryError) as info:
        mem.read(14, 4)
    assert not isinstance(info.value, IndexError)


def test_error_message_names_address_and_size() -> None:
    mem = GuestMemory(0x100)
    with pytest.raises(GuestMemoryError) as info:
        mem.ld32(0xFE)
    assert "0xfe" in str(info.value)
    assert "0x100" in str(info.value)
    assert (info.value.addr, info.value.length, info.value.size) == (0xFE, 4, 0x100)


def test_negative_size_refused() -> None:
    with pytest.raises(ValueError):
        GuestMemory(-1)


def test_new_memory_is_zero() -> None:
    assert GuestMemory(32).read(0, 32) == bytes(32)


def test_accessors_are_big_endian() -> None:
    mem = GuestMemory(32)
    mem.st16(0, 0x0102)
    mem.st32(2, 0x03040506)
    mem.st64(6, 0x0708090A0B0C0D0E)
    mem.st8(14, 0x0F)
    assert mem.read(0, 15) == bytes(range(1, 16))
    assert mem.ld16(1) == 0x0203
    assert mem.ld32(3) == 0x04050607
    assert mem.ld64(7) == 0x08090A0B0C0D0E0F
    assert mem.ld8(15) == 0


@given(
    size=st.integers(0, 64),
    addr=st.integers(-100, 100),
    width=st.sampled_from(WIDTHS),
    data=st.data(),
)
def test_fixed_width_bounds_and_round_trip(
    size: int, addr: int, width: int, data: st.DataObject
) -> None:
    mem = GuestMemory(size)
    ld, store = accessors(mem, width)
    value = data.draw(st.integers(0, (1 << (8 * width)) - 1))
    in_range = addr >= 0 and addr + width <= size
    if in_range:
        store(addr, value)
        assert ld(addr) == value
        assert mem.read(addr, width) == value.to_bytes(width, "big")
    else:
        with pytest.raises(GuestMemoryError):
            store(addr, value)
        with pytest.raises(GuestMemoryError):
            ld(addr)
        assert mem.read(0, size) == bytes(size)


@given(
    width=st.sampled_from(WIDTHS),
    value=st.one_of(st.integers(max_value=-1), st.integers(min_value=1 << 64)),
    data=st.data(),
)
def test_values_wider_than_the_store_are_refused(
    width: int, value: int, data: st.DataObject
) -> None:
    mem = GuestMemory(16)
    _ld, store = accessors(mem, width)
    too_wide = data.draw(st.sampled_from([value, 1 << (8 * width)]))
    with pytest.raises(GuestMemoryError):
        store(0, too_wide)
    assert mem.read(0, 16) == bytes(16)


@given(size=st.integers(0, 64), addr=st.integers(-80, 80), n=st.integers(-4, 80), fill=st.binary())
def test_bulk_bounds_and_round_trip(size: int, addr: int, n: int, fill: bytes) -> None:
    mem = GuestMemory(size)
    payload = (fill * (n // max(len(fill), 1) + 1))[:n] if n > 0 and fill else bytes(max(n, 0))
    ok = addr >= 0 and n >= 0 and addr + n <= size
    if ok:
        mem.write(addr, payload)
        assert mem.read(addr, n) == payload
    else:
        with pytest.raises(GuestMemoryError):
            mem.read(addr, n)
        if n >= 0:
            with pytest.raises(GuestMemoryError):
                mem.write(addr, payload)
        assert mem.read(0, size) == bytes(size)


def test_read_cstring() -> None:
    mem = GuestMemory(32)
    mem.write(4, b"cpu@8\0rest")
    assert mem.read_cstring(4, 16) == b"cpu@8"
    assert mem.read_cstring(9, 1) == b""
    # The NUL must come within max_len bytes.
    with pytest.raises(GuestMemoryError, match="NUL"):
        mem.read_cstring(4, 5)


def test_read_cstring_running_off_memory() -> None:
    mem = GuestMemory(8)
    mem.write(4, b"abcd")
    with pytest.raises(GuestMemoryError):
        mem.read_cstring(4, 100)
    with pytest.raises(GuestMemoryError):
        mem.read_cstring(-1, 4)
    with pytest.raises(GuestMemoryError):
        mem.read_cstring(9, 4)


def test_write_clipped_drops_what_lies_outside() -> None:
    mem = GuestMemory(8)
    assert mem.write_clipped(6, b"\x11\x22\x33\x44") == 2
    assert mem.read(0, 8) == bytes(6) + b"\x11\x22"
    assert mem.write_clipped(-2, b"\xaa\xbb\xcc") == 1
    assert mem.ld8(0) == 0xCC
    assert mem.write_clipped(100, b"\x01") == 0
    assert mem.write_clipped(-10, b"\x01") == 0


@given(size=st.integers(0, 32), addr=st.integers(-40, 40), data=st.binary(max_size=40))
def test_write_clipped_matches_a_bytewise_model(size: int, addr: int, data: bytes) -> None:
    mem = GuestMemory(size)
    expected = bytearray(size)
    stored = 0
    for i, byte in enumerate(data):
        if 0 <= addr + i < size:
            expected[addr + i] = byte
            stored += 1
    assert mem.write_clipped(addr, data) == stored
    assert mem.read(0, size) == bytes(expected)
