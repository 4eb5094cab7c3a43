"""The guest's ibm,client-architecture-support request and how it reads the answer.

Sources: Linux 6.1 ``arch/powerpc/kernel/prom_init.c`` (``ibm_architecture_vec``:
vectors 1-4 and 6 as below, vector 7 the OS id in 256 bytes, ``NUM_VECTORS(6)``
so the count byte says 6 vectors; ``prom_count_smt_threads``: a threads-per-core
outside 1..64 counts as 1, and ``max_cpus`` = DIV_ROUND_UP(NR_CPUS, threads);
``prom_check_platform_support`` / ``prom_parse_platform_support``: the
(index, value) byte pairs of ``/chosen/ibm,arch-vec-5-platform-support``, at most
8 bytes, MMU byte 24 (mask 0xC0: 0x00 hash, 0x40 radix, 0x80 either, 0xC0
dynamic), radix extensions byte 26 (GTSE 0x40), interrupt byte 23 (mask 0xC0:
0x00 legacy, 0x40 exploitation, 0x80 either; ``xive=off`` ignored when only
exploitation is offered)) and ``arch/powerpc/include/asm/prom.h`` (the
``(byte << 8) | mask`` feature encoding; ``firmware_has_feature``-style tests
``vec5[byte] & mask`` with the length byte at index 0).
"""

from __future__ import annotations

import struct

import pytest

import fdt
from guest.cas import CasRequest, NegotiatedFeatures, PlatformSupport


def vectors(table: bytes) -> tuple[int, list[bytes]]:
    """(count byte, vectors) after the 14 PVR records."""
    pos = 14 * 8
    count = table[pos]
    pos += 1
    out = []
    while pos < len(table):
        length = table[pos] + 1
        out.append(table[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return count, out


def test_vectors_1_to_4_6_and_7_are_linux_6_1s() -> None:
    """The fixed vectors of ibm_architecture_vec, byte for byte."""
    count, vecs = vectors(CasRequest().table())
    assert count == 5  # NUM_VECTORS(6): vector 7 follows uncounted
    assert len(vecs) == 7
    assert vecs[0] == bytes([0, 0xFF, 0xC0])  # ISA 2.00-2.07; 3.00 and 3.1
    assert vecs[1] == struct.pack(
        ">BHIIIIIIIBB",
        0x20,  # OV2_REAL_MODE
        0,
        0xFFFFFFFF,
        0xFFFFFFFF,
        0xFFFFFFFF,
        0xFFFFFFFF,
        0xFFFFFFFF,
        512,  # min_rma in MB
        0xFFFFFFFF,
        0,
        48,  # max_pft_size
    )
    assert vecs[2] == bytes([0, 0x80 | 0x40 | 0x20])  # FP, VMX, DFP
    assert vecs[3] == bytes([0, 0x01])  # OV4_MIN_ENT_CAP
    assert vecs[5] == bytes([0, 0, 0x02])  # OV6_LINUX
    assert len(vecs[6]) == 256 and vecs[6].startswith(b"Linux version ")
    assert vecs[6].rstrip(b"\0").count(b"\0") == 0


def test_vector_5_bytes_linux_sets() -> None:
    """Vector 5: byte 2 LPAR|SPLPAR|DRCONF|LARGE_PAGES|DONATE|MSI, byte 5 FORM1|PRRN|
    FORM2, byte 6 HP_EVT|RESIZE_HPT, bytes 9-12 max_cpus, byte 17 the RNG/842/
    encryption facilities, byte 21 sub-processors 1, byte 22 DRMEM_V2|DRC_INFO; a
    hash guest leaves the interrupt, MMU and radix bytes (23-26) zero."""
    vec5 = CasRequest().vector5()
    assert len(vec5) == 26
    assert vec5[0] == 0
    assert vec5[1] == 0xF3
    assert vec5[4] == 0xE0
    assert vec5[5] == 0x05
    assert struct.unpack_from(">I", vec5, 8)[0] == 2048
    assert vec5[16] == 0xE0
    assert vec5[20] == 1
    assert vec5[21] == 0xC0
    assert vec5[22:26] == bytes(4)
    assert CasRequest(hp_evt=False).vector5()[5] == 0x01


@pytest.mark.parametrize(
    ("platform", "mmu", "gtse"),
    [
        (PlatformSupport(radix_mmu=True, radix_gtse=True), 0x40, 0x40),
        (PlatformSupport(radix_mmu=True), 0x40, 0x00),
        (PlatformSupport(hash_mmu=True, radix_gtse=True), 0x00, 0x00),
        (PlatformSupport(), 0x00, 0x00),
    ],
)
def test_radix_and_gtse_are_asked_for_only_when_offered(
    platform: PlatformSupport, mmu: int, gtse: int
) -> None:
    """prom_init asks for radix (byte 24) when the platform supports it, and GTSE
    (byte 26) only with radix."""
    vec5 = CasRequest(platform=platform).vector5()
    assert (vec5[23], vec5[25]) == (mmu, gtse)


@pytest.mark.parametrize(
    ("threads", "nr_cpus", "max_cores"),
    [
        (1, 2048, 2048),
        (2, 2047, 1024),
        (8, 2048, 256),
        (64, 100, 2),
        (0, 2048, 2048),
        (65, 2048, 2048),
    ],
)
def test_max_cores_is_nr_cpus_over_threads_rounded_up(
    threads: int, nr_cpus: int, max_cores: int
) -> None:
    """prom_count_smt_threads (1..64, else 1) and DIV_ROUND_UP(NR_CPUS, threads)."""
    request = CasRequest(threads_per_core=threads, nr_cpus=nr_cpus)
    assert request.max_cores == max_cores
    assert struct.unpack_from(">I", request.vector5(), 8)[0] == max_cores


def chosen(value: bytes | None) -> fdt.Node:
    node = fdt.Node("chosen")
    if value is not None:
        node.append_property(fdt.Property("ibm,arch-vec-5-platform-support", value))
    return node


@pytest.mark.parametrize(
    ("pairs", "xive_disabled", "expected"),
    [
        # (radix, hash, gtse, xive)
        (bytes([24, 0x00]), True, (False, True, False, False)),
        (bytes([24, 0x40]), True, (True, False, False, False)),
        (bytes([24, 0x80]), True, (True, True, False, False)),
        (bytes([24, 0xC0]), True, (True, True, False, False)),
        (bytes([24, 0x3F]), True, (False, True, False, False)),  # only bits 0xC0 count
        (bytes([26, 0x40]), True, (False, False, True, False)),
        (bytes([26, 0xBF]), True, (False, False, False, False)),
        (bytes([23, 0x80]), True, (False, False, False, False)),
        (bytes([23, 0x80]), False, (False, False, False, True)),
        (bytes([23, 0x40]), True, (False, False, False, True)),
        (bytes([23, 0x00]), False, (False, False, False, False)),
        (bytes([25, 0xFF]), False, (False, False, False, False)),  # no such index
        (bytes([23, 0x80, 24, 0x80, 26, 0x40]), False, (True, True, True, True)),
        # QEMU 7.2 pseries with a POWER9 and xive=off: 23 0x80, 24 0xC0 (radix, hash)
        (bytes([23, 0x80, 24, 0xC0]), True, (True, True, False, False)),
        # bytes past the 8 Linux reads are ignored
        (bytes([23, 0, 23, 0, 23, 0, 23, 0, 24, 0x40]), True, (False, False, False, False)),
        # an odd trailing byte has no value
        (bytes([23, 0, 24]), True, (False, False, False, False)),
    ],
)
def test_platform_support_pairs(
    pairs: bytes, xive_disabled: bool, expected: tuple[bool, bool, bool, bool]
) -> None:
    """prom_parse_platform_support over each (index, value) pair."""
    got = PlatformSupport.from_chosen(chosen(pairs), xive_disabled=xive_disabled)
    assert (got.radix_mmu, got.hash_mmu, got.radix_gtse, got.xive) == expected


@pytest.mark.parametrize("value", [None, b"", b"\x18"])
def test_no_usable_platform_support_property_means_nothing_known(value: bytes | None) -> None:
    """A missing or one-byte property is ignored (``prop_len > 1``)."""
    assert PlatformSupport.from_chosen(chosen(value)) == PlatformSupport()
    assert PlatformSupport.from_chosen(None) == PlatformSupport()


def negotiated(**bytes_: int) -> NegotiatedFeatures:
    """A /chosen/ibm,architecture-vec-5 value with byte N (from 1) as given (b5=0x80)."""
    length = max([int(k[1:]) for k in bytes_] + [1])
    vec = bytearray(length + 1)
    vec[0] = length - 1
    for key, value in bytes_.items():
        vec[int(key[1:])] = value
    root = fdt.Node("")
    node = root.append_subnode(fdt.Node("chosen"))
    node.append_property(fdt.Property("ibm,architecture-vec-5", bytes(vec)))
    return NegotiatedFeatures.from_tree(root)


@pytest.mark.parametrize(
    ("vec", "names"),
    [
        ({"b6": 0x04}, ("hp-evt",)),
        ({"b5": 0x80}, ("form1-affinity",)),
        ({"b5": 0x20}, ("form2-affinity",)),
        ({"b24": 0x40}, ("radix",)),
        ({"b24": 0xC0}, ()),  # dynamic is not "radix"
        ({"b23": 0x40}, ("xive",)),
        ({"b23": 0xC0}, ()),
        ({"b22": 0x80}, ("drmem-v2",)),
        (
            {"b5": 0xA0, "b6": 0x05, "b22": 0x80, "b24": 0x40},
            ("hp-evt", "form1-affinity", "form2-affinity", "radix", "drmem-v2"),
        ),
        ({"b6": 0xFB}, ()),
    ],
)
def test_negotiated_features_read_byte_by_number(
    vec: dict[str, int], names: tuple[str, ...]
) -> None:
    """Linux reads vec5[byte] & mask with the length byte at index 0."""
    assert negotiated(**vec).names() == names


def test_a_short_negotiated_vector_has_none_of_the_later_features() -> None:
    """A byte past the property's end is a feature not negotiated (``index < len``)."""
    short = negotiated(b5=0xA0)
    assert short.form1_affinity and not short.hp_evt and not short.radix and not short.xive
    assert NegotiatedFeatures().names() == ()
    assert NegotiatedFeatures.from_tree(fdt.Node("")).ov5 == b""
    exactly = negotiated(b6=0x04)
    assert exactly.hp_evt  # byte 6 of a 6-byte vector is the last one
    assert not negotiated(b23=0x00).xive and not negotiated(b24=0x00).radix
