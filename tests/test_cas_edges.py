"""QEMU's option-vector bit numbering, ``OV_BIT(byte, bit)``, called as a function.

QEMU 7.2 ``include/hw/ppc/spapr_ovec.h``: ``#define OV_BIT(byte, bit) ((byte - 1) *
BITS_PER_BYTE + bit)``, the byte counted from 1 and the bit from the most significant
one (protocol.md §10, "Bit numbering"). Linux spells the same bits ``(byte << 8) |
mask`` (``asm/prom.h``: ``OV5_HP_EVT 0x0604``: byte 6, mask 0x04, i.e. bit 5 from the
MSB). The module's constants are computed by ``ov_bit`` at import; these tests call
it at run time too, and check each position against the byte and mask the guest sets.
"""

from __future__ import annotations

import pytest

from spapr.ovec import OptionVector, ov_bit


@pytest.mark.parametrize(
    ("byte", "bit", "number"),
    [(1, 0, 0), (1, 7, 7), (2, 0, 8), (5, 2, 34), (6, 5, 45), (24, 1, 185), (26, 1, 201)],
)
def test_ov_bit_numbers_bits_from_the_msb_of_byte_one(byte: int, bit: int, number: int) -> None:
    """OV_BIT(byte, bit) = (byte - 1) * 8 + bit."""
    assert ov_bit(byte, bit) == number


@pytest.mark.parametrize(("byte", "mask"), [(6, 0x04), (5, 0x20), (5, 0x80), (24, 0x40)])
def test_ov_bit_is_the_bit_linux_sets_with_byte_and_mask(byte: int, mask: int) -> None:
    """Linux's (byte, mask) and QEMU's OV_BIT name the same bit: a vector whose byte
    ``byte`` (from 1) holds only ``mask`` has exactly OV_BIT(byte, 7 - log2(mask))."""
    data = bytearray(byte)
    data[byte - 1] = mask
    bit = 7 - (mask.bit_length() - 1)
    assert OptionVector.from_bytes(bytes(data)).bits == {ov_bit(byte, bit)}
