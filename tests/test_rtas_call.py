"""The RTAS argument buffer: guest encoding, machine decoding, rets written in place."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtas.call import (
    RTAS_ADDR_MASK,
    RtasCall,
    call_buffer_size,
    encode_call,
    read_rets,
    rets_offset,
)
from rtas.memory import GuestMemory, GuestMemoryError

u32 = st.integers(0, 0xFFFF_FFFF)
s32 = st.integers(-0x8000_0000, 0x7FFF_FFFF)


def words(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


def test_mask_drops_the_top_nibble() -> None:
    assert RTAS_ADDR_MASK == 0x0FFF_FFFF_FFFF_FFFF


def test_layout_of_an_encoded_call() -> None:
    mem = GuestMemory(0x200)
    mem.write(0x100, b"\xee" * 0x40)
    encode_call(mem, 0x100, 0x201A, [9001, 0x10000000, 1], 1)
    # token, nargs, nret, three args, one zeroed ret; nothing after it touched.
    assert mem.read(0x100, 28) == words(0x201A, 3, 1, 9001, 0x10000000, 1, 0)
    assert mem.read(0x100 + 28, 4) == b"\xee" * 4
    assert call_buffer_size(3, 1) == 28


def test_negative_arguments_are_stored_twos_complement() -> None:
    mem = GuestMemory(64)
    encode_call(mem, 0, 0x2001, [-1, -3], 0)
    assert mem.read(12, 8) == words(0xFFFFFFFF, 0xFFFFFFFD)


@pytest.mark.parametrize("bad", [1 << 32, -(1 << 31) - 1])
def test_encode_refuses_values_outside_32_bits(bad: int) -> None:
    mem = GuestMemory(64)
    with pytest.raises(ValueError):
        encode_call(mem, 0, 0x2000, [bad], 1)
    with pytest.raises(ValueError):
        encode_call(mem, 0, bad, [], 1)


@given(
    token=u32,
    args=st.lists(u32, max_size=20),
    nret=st.integers(0, 10),
    addr=st.integers(0, 0x300),
    nibble=st.integers(0, 15),
)
def test_decode_round_trips_encode(
    token: int, args: list[int], nret: int, addr: int, nibble: int
) -> None:
    mem = GuestMemory(0x400)
    encode_call(mem, addr, token, args, nret)
    caller = object()
    call = RtasCall.decode(mem, (nibble << 60) | addr, caller)
    assert (call.addr, call.token, call.nargs, call.nret) == (addr, token, len(args), nret)
    assert call.args == tuple(args)
    assert call.caller is caller
    assert call.rets_addr == addr + 12 + 4 * len(args)
    assert read_rets(mem, addr) == (0,) * nret


@given(
    args=st.lists(u32, max_size=8),
    rets=st.lists(st.one_of(s32, u32), min_size=1, max_size=8),
)
def test_rets_are_written_in_place(args: list[int], rets: list[int]) -> None:
    mem = GuestMemory(0x200)
    encode_call(mem, 0x40, 0x201D, args, len(rets))
    call = RtasCall.decode(mem, 0x40, None)
    for i, value in enumerate(rets):
        call.set_ret(i, value)
    base = 0x40 + 12 + 4 * len(args)
    signed = tuple(v - (1 << 32) if v >= 1 << 31 else v for v in rets)
    for i, value in enumerate(rets):
        assert mem.ld32(base + 4 * i) == value & 0xFFFFFFFF
        assert call.ret(i) == signed[i]
    assert read_rets(mem, 0x40) == signed
    assert call.status == signed[0]
    # The header and the args are untouched.
    assert mem.read(0x40, 12 + 4 * len(args)) == words(0x201D, len(args), len(rets), *args)


def test_negative_status_is_twos_complement_in_memory() -> None:
    mem = GuestMemory(64)
    encode_call(mem, 0, 0x201A, [1, 2, 3], 1)
    call = RtasCall.decode(mem, 0, None)
    call.set_ret(0, -9003)
    assert mem.read(24, 4) == (0x1_0000_0000 - 9003).to_bytes(4, "big")
    assert call.status == -9003
    assert read_rets(mem, 0) == (-9003,)


def test_set_ret_ignores_nret_like_qemu() -> None:
    # A handler answering nret=0 with -3 still writes rets[0], just after the args.
    mem = GuestMemory(64)
    encode_call(mem, 0, 0x2003, [0, 0], 0)
    call = RtasCall.decode(mem, 0, None)
    call.set_ret(0, -3)
    assert mem.ld32(20) == 0xFFFFFFFD
    assert read_rets(mem, 0) == ()


def test_rets_offset_wraps_like_qemus_32_bit_multiply() -> None:
    assert rets_offset(0) == 12
    assert rets_offset(5) == 32
    assert rets_offset(0x4000_0001) == 16


def test_decode_outside_memory_raises() -> None:
    mem = GuestMemory(64)
    with pytest.raises(GuestMemoryError):
        RtasCall.decode(mem, 60, None)  # header runs off the end
    with pytest.raises(GuestMemoryError):
        RtasCall.decode(mem, 1 << 40, None)
    mem.write(40, words(0x2000, 4, 1))  # header fits, the four args do not
    with pytest.raises(GuestMemoryError):
        RtasCall.decode(mem, 40, None)


def test_set_ret_outside_memory_raises() -> None:
    mem = GuestMemory(24)
    encode_call(mem, 0, 0x2000, [1, 2, 3], 0)
    call = RtasCall.decode(mem, 0, None)
    with pytest.raises(GuestMemoryError):
        call.set_ret(0, 0)


def test_rets_in_memory_stops_at_memory_end_and_limit() -> None:
    mem = GuestMemory(32)
    mem.write(0, words(0x2000, 1, 0xFFFF_FFFF, 7, 0xFFFF_FFFE, 5, 6, 8))
    call = RtasCall.decode(mem, 0, None)
    assert call.rets_in_memory(100) == (-2, 5, 6, 8)
    assert call.rets_in_memory(2) == (-2, 5)
    mem.write(0, words(0x2000, 5, 1))
    assert RtasCall.decode(mem, 0, None).rets_in_memory(100) == ()


def test_read_rets_outside_memory_raises() -> None:
    mem = GuestMemory(20)
    mem.write(0, struct.pack(">III", 0x2000, 0, 3))
    with pytest.raises(GuestMemoryError):
        read_rets(mem, 0)
