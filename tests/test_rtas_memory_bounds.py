"""The end of guest RAM, exactly: the last bytes are usable, one byte further is not.

GuestMemory's contract (rtas/memory.py): an access succeeds when it lies wholly
inside ``[0, size)`` and raises GuestMemoryError otherwise. These tests pin both
sides of the boundary for every accessor, deterministically (the random bounds
tests elsewhere may or may not land on the last word), and then show the guest
what it sees: an RTAS call whose status word is the last word of RAM gets its
status; one whose status word starts a byte later gets H_PARAMETER.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from rtas import GuestMemory, GuestMemoryError, RtasCall, RtasDispatcher, encode_call, read_rets
from rtas.hcalls import HcallReturn
from rtas.tokens import RtasToken

#: A small RAM, and one the size of a real guest's (an anonymous mapping).
SIZES = [64, 1 << 30]

Loader = Callable[[GuestMemory, int], int]
Storer = Callable[[GuestMemory, int, int], None]

ACCESSORS: list[tuple[int, Loader, Storer]] = [
    (1, GuestMemory.ld8, GuestMemory.st8),
    (2, GuestMemory.ld16, GuestMemory.st16),
    (4, GuestMemory.ld32, GuestMemory.st32),
    (8, GuestMemory.ld64, GuestMemory.st64),
]


def pattern(width: int) -> int:
    """A value with every byte distinct and non-zero (0x01 0x02 ...), big-endian."""
    return int.from_bytes(bytes(range(1, width + 1)), "big")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("width", "load", "store"), ACCESSORS)
def test_the_last_word_of_each_width_stores_and_loads(
    size: int, width: int, load: Loader, store: Storer
) -> None:
    mem = GuestMemory(size)
    last = size - width
    store(mem, last, pattern(width))
    assert load(mem, last) == pattern(width)
    # Big-endian and exactly at the end: the final byte of RAM is the low byte.
    assert mem.read(size - width, width) == bytes(range(1, width + 1))
    assert mem.ld8(size - 1) == width


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("width", "load", "store"), ACCESSORS)
def test_one_byte_past_the_end_is_refused_and_changes_nothing(
    size: int, width: int, load: Loader, store: Storer
) -> None:
    mem = GuestMemory(size)
    for addr in (size - width + 1, size, size + 1):
        with pytest.raises(GuestMemoryError) as info:
            load(mem, addr)
        assert (info.value.addr, info.value.length, info.value.size) == (addr, width, size)
        with pytest.raises(GuestMemoryError) as info:
            store(mem, addr, pattern(width))
        assert (info.value.addr, info.value.length, info.value.size) == (addr, width, size)
    assert mem.read(size - 16, 16) == bytes(16)


@pytest.mark.parametrize(("width", "load", "store"), ACCESSORS)
def test_the_first_word_of_ram_stores_and_loads(width: int, load: Loader, store: Storer) -> None:
    mem = GuestMemory(16)
    store(mem, 0, pattern(width))
    assert load(mem, 0) == pattern(width)
    assert mem.read(0, width) == bytes(range(1, width + 1))


@pytest.mark.parametrize("size", SIZES)
def test_bulk_access_reaches_the_last_byte_and_no_further(size: int) -> None:
    mem = GuestMemory(size)
    mem.write(size - 4, b"\xde\xad\xbe\xef")
    assert mem.read(size - 4, 4) == b"\xde\xad\xbe\xef"
    assert mem.read(size, 0) == b""
    assert mem.unpack(struct.Struct(">I"), size - 4) == (0xDEADBEEF,)
    with pytest.raises(GuestMemoryError):
        mem.read(size - 3, 4)
    with pytest.raises(GuestMemoryError):
        mem.read(size + 1, 0)
    with pytest.raises(GuestMemoryError):
        mem.write(size - 3, b"\x01\x02\x03\x04")
    with pytest.raises(GuestMemoryError):
        mem.unpack(struct.Struct(">I"), size - 3)
    assert mem.read(size - 4, 4) == b"\xde\xad\xbe\xef"


def test_a_c_string_ending_on_the_last_byte_is_read() -> None:
    mem = GuestMemory(32)
    mem.write(28, b"cpu\0")
    assert mem.read_cstring(28, 4) == b"cpu"
    assert mem.read_cstring(28, 100) == b"cpu"
    mem.write(28, b"cpus")  # no NUL before the end of RAM
    with pytest.raises(GuestMemoryError):
        mem.read_cstring(28, 100)


def test_an_empty_string_at_the_end_of_ram_is_refused_not_read() -> None:
    """``addr == size`` with room to search: no byte there, so no terminator either."""
    mem = GuestMemory(32)
    with pytest.raises(GuestMemoryError):
        mem.read_cstring(32, 1)


# --- what the guest sees through H_RTAS ------------------------------------

MEM = 0x1000


def _status_service(call: RtasCall[None]) -> None:
    """A service that answers rets[0] = 0 and rets[1] = 0x12345678."""
    call.set_ret(0, 0)
    call.set_ret(1, 0x12345678)


def _dispatcher() -> RtasDispatcher[None]:
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    dispatcher.register(RtasToken.GET_TIME_OF_DAY, "get-time-of-day", _status_service)
    return dispatcher


def test_rets_ending_on_the_last_word_of_ram_reach_the_guest() -> None:
    mem = GuestMemory(MEM)
    # header (12) + 1 arg (4) + 2 rets (8) = 24 bytes ending exactly at the end of RAM
    buf = MEM - 24
    encode_call(mem, buf, RtasToken.GET_TIME_OF_DAY, [7], 2)
    assert _dispatcher().hcall_rtas(mem, buf, None) == HcallReturn.H_SUCCESS
    assert read_rets(mem, buf) == (0, 0x12345678)
    assert mem.ld32(MEM - 4) == 0x12345678


def test_a_ret_word_one_byte_past_ram_makes_the_call_fail_cleanly() -> None:
    mem = GuestMemory(MEM)
    # The header and the argument fit; rets[1] would span the last 3 bytes and one more.
    buf = MEM - 23
    mem.write(buf, struct.pack(">IIII", RtasToken.GET_TIME_OF_DAY, 1, 2, 7) + b"\xaa" * 7)
    assert _dispatcher().hcall_rtas(mem, buf, None) == HcallReturn.H_PARAMETER
    # rets[0] was inside RAM and was written before the refused store; the three
    # bytes rets[1] would have begun with are untouched.
    assert mem.ld32(buf + 16) == 0
    assert mem.read(MEM - 3, 3) == b"\xaa" * 3


# --- values and the errors a caller can inspect ---------------------------------


@pytest.mark.parametrize(("width", "load", "store"), ACCESSORS)
def test_zero_and_the_largest_value_of_each_width_store_exactly(
    width: int, load: Loader, store: Storer
) -> None:
    mem = GuestMemory(16)
    largest = (1 << (8 * width)) - 1
    store(mem, 4, largest)
    assert mem.read(4, width) == b"\xff" * width
    assert load(mem, 4) == largest
    store(mem, 4, 0)
    assert mem.read(4, width) == bytes(width)


@pytest.mark.parametrize(("width", "load", "store"), ACCESSORS)
def test_a_value_one_too_wide_is_refused_with_the_store_it_was_for(
    width: int, load: Loader, store: Storer
) -> None:
    mem = GuestMemory(16)
    for value in (1 << (8 * width), -1):
        with pytest.raises(GuestMemoryError) as info:
            store(mem, 8, value)
        assert (info.value.addr, info.value.length, info.value.size) == (8, width, 16)
        assert f"{8 * width} bits" in str(info.value)
    assert mem.read(0, 16) == bytes(16)


def test_bulk_errors_carry_the_refused_range() -> None:
    mem = GuestMemory(16)
    for call, length in (
        (lambda: mem.read(14, 4), 4),
        (lambda: mem.write(14, b"abcd"), 4),
        (lambda: mem.unpack(struct.Struct(">Q"), 12), 8),
    ):
        with pytest.raises(GuestMemoryError) as info:
            call()
        assert (info.value.addr, info.value.length, info.value.size) == (
            12 if length == 8 else 14,
            length,
            16,
        )


def test_c_string_at_address_zero() -> None:
    mem = GuestMemory(16)
    assert mem.read_cstring(0, 4) == b""
    mem.write(0, b"ok\0")
    assert mem.read_cstring(0, 4) == b"ok"


@pytest.mark.parametrize(
    ("addr", "max_len"),
    [(-1, 4), (-1, 100), (-8, 100), (0, 100), (12, 5), (17, 1), (0, 4), (4, 8), (0, 16)],
)
def test_c_string_errors_carry_the_searched_window(addr: int, max_len: int) -> None:
    """Negative addresses, windows past the end, or no NUL in the window are refused."""
    mem = GuestMemory(16)
    mem.write(0, b"x" * 16)  # no NUL anywhere
    with pytest.raises(GuestMemoryError) as info:
        mem.read_cstring(addr, max_len)
    assert (info.value.addr, info.value.length, info.value.size) == (addr, max_len, 16)


def test_a_negative_address_is_refused_even_when_ram_ends_in_a_nul() -> None:
    mem = GuestMemory(8)  # all zero: a NUL at every address, the last one included
    for addr in (-1, -4, -8):
        with pytest.raises(GuestMemoryError):
            mem.read_cstring(addr, 100)
