"""Client-architecture-support option vectors (QEMU's spapr_ovec).

An option vector is a bit string numbered from the most significant bit of its first
byte; QEMU names a bit OV_BIT(byte, bit) with ``byte`` counted from 1. The guest
sends vectors in a table (one count byte, then per vector a length-minus-one byte and
the bytes); QEMU intersects the guest's vector 5 with what the machine offers and
publishes the result as ``/chosen/ibm,architecture-vec-5``.
"""

from __future__ import annotations

import attrs

from rtas import GuestMemory


def ov_bit(byte: int, bit: int) -> int:
    """QEMU's OV_BIT: ``byte`` counts from 1, ``bit`` from the MSB."""
    return (byte - 1) * 8 + bit


OV1_PPC_3_00 = ov_bit(3, 0)
OV5_DRCONF_MEMORY = ov_bit(2, 2)
OV5_FORM1_AFFINITY = ov_bit(5, 0)
OV5_FORM2_AFFINITY = ov_bit(5, 2)
OV5_HP_EVT = ov_bit(6, 5)
OV5_HPT_RESIZE = ov_bit(6, 7)
OV5_DRMEM_V2 = ov_bit(22, 0)
OV5_XIVE_BOTH = ov_bit(23, 0)
OV5_XIVE_EXPLOIT = ov_bit(23, 1)
OV5_MMU_BOTH = ov_bit(24, 0)
OV5_MMU_RADIX_300 = ov_bit(24, 1)
OV5_MMU_RADIX_GTSE = ov_bit(26, 1)

#: Largest vector QEMU accepts (OV_MAXBYTES).
OV_MAXBYTES = 256


@attrs.define
class OptionVector:
    """A set of option-vector bits."""

    bits: set[int] = attrs.field(factory=set)

    def set(self, bit: int) -> None:
        self.bits.add(bit)

    def test(self, bit: int) -> bool:
        return bit in self.bits

    def intersect(self, other: OptionVector) -> OptionVector:
        return OptionVector(self.bits & other.bits)

    @classmethod
    def from_bytes(cls, data: bytes) -> OptionVector:
        """Bits of the vector's data bytes (without the length byte)."""
        bits = {i * 8 + b for i, byte in enumerate(data) for b in range(8) if byte & (0x80 >> b)}
        return cls(bits)

    def to_bytes(self) -> bytes:
        """Data bytes up to the last set bit (at least one byte)."""
        length = max(self.bits) // 8 + 1 if self.bits else 1
        out = bytearray(length)
        for bit in self.bits:
            out[bit // 8] |= 0x80 >> (bit % 8)
        return bytes(out)

    def dt_value(self) -> bytes:
        """The device-tree encoding: length-minus-one byte, then the data bytes."""
        data = self.to_bytes()
        return bytes([len(data) - 1]) + data


def vector_address(memory: GuestMemory, table_addr: int, vector: int) -> int | None:
    """Address of option vector ``vector`` (from 1) in a CAS table, or None if absent."""
    count = memory.ld8(table_addr) + 1
    if vector > count:
        return None
    addr = table_addr + 1
    for _ in range(vector - 1):
        addr += memory.ld8(addr) + 1 + 1
    return addr


def parse_vector(memory: GuestMemory, table_addr: int, vector: int) -> OptionVector | None:
    """spapr_ovec_parse_vector: read vector ``vector`` of the table at ``table_addr``."""
    addr = vector_address(memory, table_addr, vector)
    if addr is None:
        return None
    length = memory.ld8(addr) + 1
    return OptionVector.from_bytes(memory.read(addr + 1, length))
