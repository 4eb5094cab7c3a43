"""CAS on the platform side: the PVR scan and the option-vector table, as QEMU 7.2 reads them.

Sources: QEMU 7.2 ``hw/ppc/spapr_hcall.c: cas_check_pvr`` (at most 512 (mask, PVR)
records; a record with ``~mask & pvr`` non-zero ends the list and is not itself
matched; a record matching the real PVR under its mask sets "raw mode allowed",
any other is a candidate logical PVR that ``ppc_check_compat`` accepts when it is
no older than the best so far, no newer than max-cpu-compat and supported by the
CPU; the option vectors start after the terminator) and ``hw/ppc/spapr_ovec.c``
(``spapr_ovec_parse_vector``: the table's first byte is the number of vectors minus
one, each vector a length-minus-one byte and its bytes; ``spapr_dt_ovec``: bit 0 is
the MSB of byte 1, the value is length-minus-one then the bytes up to the last set
bit, at least one). The logical PVRs are QEMU's ``target/ppc/compat.c`` table.
"""

from __future__ import annotations

import pytest

from rtas import GuestMemory
from spapr.cas import MAX_PVR_RECORDS, cas_check_pvr
from spapr.cpu_models import by_cpu_type, compat_mode
from spapr.ovec import (
    OV5_FORM1_AFFINITY,
    OV5_HP_EVT,
    OV_MAXBYTES,
    OptionVector,
    parse_vector,
    vector_address,
)

P9 = by_cpu_type("power9_v2.0")
P8 = by_cpu_type("power8_v2.0")
P10 = by_cpu_type("power10_v2.0")
POWER6, POWER7, POWER7P, POWER8, POWER9, POWER10 = (
    0x0F000002,
    0x0F000003,
    0x0F100003,
    0x0F000004,
    0x0F000005,
    0x0F000006,
)
START = 0x1000


def records(pairs: list[tuple[int, int]], terminator: bool = True) -> tuple[GuestMemory, int]:
    """The (mask, PVR) records at START (then Linux's terminator); returns memory and end."""
    memory = GuestMemory(0x10000)
    addr = START
    for mask, pvr in pairs + ([(0xFFFFFFFE, 0x0F000001)] if terminator else []):
        memory.st32(addr, mask)
        memory.st32(addr + 4, pvr)
        addr += 8
    return memory, addr


def choose(
    pairs: list[tuple[int, int]], model: object = P9, max_compat: str | None = None
) -> tuple[int, bool, int]:
    memory, _ = records(pairs)
    mode = compat_mode(max_compat) if max_compat is not None else None
    choice = cas_check_pvr(memory, START, model, mode)  # type: ignore[arg-type]
    return choice.best_compat_pvr, choice.explicit_match, choice.table_addr


def test_the_models_have_their_qemu_pvrs() -> None:
    """(The CPU models used below, with QEMU's real PVRs.)"""
    assert P9 is not None and P8 is not None and P10 is not None
    assert (P9.pvr, P8.pvr, P10.pvr) == (0x004E1200, 0x004D0200, 0x00800200)


def test_the_newest_supported_logical_pvr_wins_in_any_order() -> None:
    """Candidates no older than the best so far replace it: the newest the CPU runs."""
    for pairs in (
        [(0xFFFFFFFF, POWER7), (0xFFFFFFFF, POWER9), (0xFFFFFFFF, POWER8)],
        [(0xFFFFFFFF, POWER9), (0xFFFFFFFF, POWER7), (0xFFFFFFFF, POWER8)],
        [(0xFFFFFFFF, POWER8), (0xFFFFFFFF, POWER9), (0xFFFFFFFF, POWER9)],
    ):
        assert choose(pairs)[:2] == (POWER9, False)
    # POWER10 is newer than a POWER9 can run: skipped
    assert choose([(0xFFFFFFFF, POWER10), (0xFFFFFFFF, POWER8)])[0] == POWER8
    assert choose([(0xFFFFFFFF, POWER10), (0xFFFFFFFF, POWER8)], P10)[0] == POWER10
    # power7+ comes after power7 in QEMU's table
    assert choose([(0xFFFFFFFF, POWER7P), (0xFFFFFFFF, POWER7)])[0] == POWER7P
    assert choose([(0xFFFFFFFF, POWER7), (0xFFFFFFFF, POWER7P)])[0] == POWER7P
    # POWER8 lists ISA 2.05 in its pcr_supported: power6 compat is a candidate
    assert choose([(0xFFFFFFFF, POWER6)], P8)[0] == POWER6
    # an unknown logical PVR is no candidate
    assert choose([(0xFFFFFFFF, 0x0F000007)])[0] == 0


@pytest.mark.parametrize(
    ("max_compat", "best"),
    [
        ("power7", POWER7),
        ("power7+", POWER7P),
        ("power8", POWER8),
        ("power9", POWER9),
        ("power10", POWER9),
    ],
)
def test_max_cpu_compat_is_the_newest_allowed(max_compat: str, best: int) -> None:
    """max-cpu-compat caps the candidates, inclusively."""
    pairs = [(0xFFFFFFFF, p) for p in (POWER10, POWER9, POWER8, POWER7P, POWER7)]
    assert choose(pairs, P9, max_compat)[0] == best


def test_the_real_pvr_matches_under_its_mask_and_is_not_a_candidate() -> None:
    """A record matching the CPU's PVR under its mask allows raw mode; its PVR is not
    also taken as a logical PVR."""
    assert choose([(0xFFFF0000, 0x004E0000)])[:2] == (0, True)
    assert choose([(0xFFFFFFFF, 0x004E1200)])[:2] == (0, True)
    assert choose([(0xFFFF0000, 0x004D0000)])[:2] == (0, False)  # a POWER8 family
    # the mask selects the compared bits: POWER9's value under a zero mask matches anything
    assert choose([(0x00000000, 0x00000000), (0xFFFFFFFF, POWER8)])[:2] == (POWER8, True)
    # a logical PVR record does not match the real PVR
    assert choose([(0xFFFFFFFF, POWER9)])[:2] == (POWER9, False)


def test_the_terminator_is_the_first_record_with_bits_outside_its_mask() -> None:
    """``~mask & pvr`` non-zero ends the list; records after it are not read and the
    vectors start right after it."""
    memory, end = records(
        [(0xFFFFFFFF, POWER8), (0xFFFF0000, 0x004E1200), (0xFFFFFFFF, POWER9)], terminator=False
    )
    choice = cas_check_pvr(memory, START, P9, None)
    assert (choice.best_compat_pvr, choice.explicit_match, choice.table_addr) == (
        POWER8,
        False,
        START + 16,
    )
    # only the low 32 bits count: a full mask never terminates
    memory, end = records([(0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, POWER9)])
    assert cas_check_pvr(memory, START, P9, None).best_compat_pvr == POWER9
    assert cas_check_pvr(memory, START, P9, None).table_addr == end


def test_at_most_512_records_are_read() -> None:
    """QEMU reads 512 records at most; the vectors then start after the 512th."""
    assert MAX_PVR_RECORDS == 512
    filler = [(0xFFFFFFFF, 0x0F0000FF)] * 511  # unknown logical PVRs: no candidates
    memory, _ = records([*filler, (0xFFFFFFFF, POWER8), (0xFFFFFFFF, POWER9)], terminator=False)
    choice = cas_check_pvr(memory, START, P9, None)
    assert (choice.best_compat_pvr, choice.table_addr) == (POWER8, START + 512 * 8)


def test_not_negotiable_without_a_compat_mode_or_the_real_pvr() -> None:
    """QEMU answers H_HARDWARE when neither raw mode nor a compat PVR is possible."""
    memory, _ = records([(0xFFFFFFFF, POWER10)])
    assert not cas_check_pvr(memory, START, P9, None).negotiable
    memory, _ = records([(0xFFFF0000, 0x004E0000)])
    assert cas_check_pvr(memory, START, P9, None).negotiable
    memory, _ = records([(0xFFFFFFFF, POWER8)])
    assert cas_check_pvr(memory, START, P9, None).negotiable


def table(*vectors: bytes, count: int | None = None) -> tuple[GuestMemory, int]:
    memory = GuestMemory(0x10000)
    data = bytes([(len(vectors) if count is None else count) - 1])
    for vec in vectors:
        data += bytes([len(vec) - 1]) + vec
    memory.write(START, data)
    return memory, START


def test_vectors_are_found_by_their_length_bytes() -> None:
    """spapr_ovec_parse_vector: vector n follows n-1 (length byte + bytes) records."""
    memory, addr = table(b"\x01", b"\x02\x03\x04", b"\x80" * 26)
    assert vector_address(memory, addr, 1) == START + 1
    assert vector_address(memory, addr, 2) == START + 3
    assert vector_address(memory, addr, 3) == START + 7
    assert vector_address(memory, addr, 4) is None
    v2 = parse_vector(memory, addr, 2)
    assert v2 is not None and v2.to_bytes() == b"\x02\x03\x04"
    v3 = parse_vector(memory, addr, 3)
    assert v3 is not None and v3.to_bytes() == b"\x80" * 26
    assert parse_vector(memory, addr, 4) is None


def test_a_vector_past_the_declared_count_is_absent() -> None:
    """Only the first (count byte + 1) vectors exist, whatever follows."""
    memory, addr = table(b"\x01", b"\x02", count=1)
    assert vector_address(memory, addr, 1) == START + 1
    assert vector_address(memory, addr, 2) is None


def test_option_vector_bits_count_from_the_msb_of_byte_1() -> None:
    """OV_BIT(byte, bit): byte from 1, bit 0 is the MSB; OV5_HP_EVT is byte 6 mask 0x04
    and OV5_FORM1_AFFINITY byte 5 mask 0x80 (protocol.md §10)."""
    vec = OptionVector.from_bytes(bytes([0, 0, 0, 0, 0x80, 0x04]))
    assert vec.test(OV5_HP_EVT) and vec.test(OV5_FORM1_AFFINITY)
    assert vec.bits == {OV5_HP_EVT, OV5_FORM1_AFFINITY}
    single = OptionVector()
    single.set(OV5_HP_EVT)
    assert single.to_bytes() == bytes([0, 0, 0, 0, 0, 0x04])
    assert single.dt_value() == bytes([5, 0, 0, 0, 0, 0, 0x04])


def test_an_empty_vector_still_has_one_byte_in_the_tree() -> None:
    """spapr_dt_ovec: no bit set gives length byte 0 and one zero byte."""
    assert OptionVector().to_bytes() == b"\0"
    assert OptionVector().dt_value() == b"\0\0"


def test_every_bit_of_a_full_vector_round_trips() -> None:
    """All OV_MAXBYTES bytes: from_bytes then to_bytes gives the same bytes."""
    data = bytes(range(1, 256)) + b"\xff"
    assert len(data) == OV_MAXBYTES
    vec = OptionVector.from_bytes(data)
    assert vec.to_bytes() == data
    assert vec.dt_value() == bytes([OV_MAXBYTES - 1]) + data
    assert vec.intersect(OptionVector.from_bytes(b"\x0f")).to_bytes() == b"\x01"
