"""Blob decoding at the edges of the v17 format: unsigned fields, and where a fault is reported.

The DTB v17 spec makes every structure-block field an unsigned 32-bit big-endian
word: a property's ``len`` and ``nameoff`` above 2**31 are huge, not negative,
and point outside any real blob, so decoding must refuse them (libfdt does too:
its offsets are checked as unsigned). The structure-block offset in an error is
counted from the start of the structure block, so a user can find the bad tag
with a hex dump. Blobs are assembled by hand here, independently of fdt.to_dtb.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from fdt import FdtError, Node, from_dtb, to_dts

BEGIN, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9
STRINGS = b"reg\0"


def tag(t: int) -> bytes:
    return struct.pack(">I", t)


def begin(name: bytes) -> bytes:
    raw = name + b"\0"
    return tag(BEGIN) + raw + b"\0" * (-len(raw) % 4)


def prop_header(length: int, nameoff: int) -> bytes:
    return struct.pack(">III", PROP, length, nameoff)


def blob(structure: bytes, strings: bytes = STRINGS) -> bytes:
    """A v17 blob: 40-byte header, empty reservation map, the blocks given."""
    off_rsv, rsv = 40, bytes(16)
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(structure)
    total = off_strings + len(strings)
    header = struct.pack(
        ">10I",
        0xD00DFEED,
        total,
        off_struct,
        off_strings,
        off_rsv,
        17,
        16,
        0,
        len(strings),
        len(structure),
    )
    return header + rsv + structure + strings


def numbers(text: str) -> set[int]:
    """The decimal numbers in ``text`` (hex values such as a tag's ``0x7`` left out)."""
    return {int(n) for n in re.findall(r"-?\d+", re.sub(r"0x[0-9a-fA-F]+", "", text))}


def test_a_well_formed_reference_blob_decodes() -> None:
    """The helpers make real blobs (so the refusals below are about the one bad field)."""
    tree = from_dtb(blob(begin(b"") + prop_header(4, 0) + b"\0\0\0\x07" + tag(END_NODE) + tag(END)))
    assert tree.root["reg"].cells() == (7,)


@pytest.mark.parametrize("nameoff", [4, 5, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFC, 0xFFFF_FFFF])
def test_a_name_offset_outside_the_strings_block_is_refused(nameoff: int) -> None:
    structure = begin(b"") + prop_header(4, nameoff) + bytes(4) + tag(END_NODE) + tag(END)
    with pytest.raises(FdtError):
        from_dtb(blob(structure))


@pytest.mark.parametrize("length", [5, 0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF])
def test_a_value_length_beyond_the_structure_block_is_refused(length: int) -> None:
    structure = begin(b"") + prop_header(length, 0) + bytes(4) + tag(END_NODE) + tag(END)
    with pytest.raises(FdtError):
        from_dtb(blob(structure))


def test_an_empty_property_name_is_refused() -> None:
    structure = begin(b"") + prop_header(0, 3) + tag(END_NODE) + tag(END)  # offset 3: the NUL
    with pytest.raises(FdtError):
        from_dtb(blob(structure))


@pytest.mark.parametrize(
    ("structure", "offset"),
    [
        # root (8 bytes), its end (at 8), then a stray end at 12
        (begin(b"") + tag(END_NODE) + tag(END_NODE) + tag(END), 12),
        # root, NOP, its end, then a property at 16 outside any node
        (begin(b"") + tag(NOP) + tag(END_NODE) + prop_header(0, 0) + tag(END), 16),
        # an unknown tag 0x7 at 8
        (begin(b"") + tag(7) + tag(END_NODE) + tag(END), 8),
    ],
    ids=["stray-end-node", "property-outside-nodes", "unknown-tag"],
)
def test_a_misplaced_tag_is_reported_at_its_structure_offset(structure: bytes, offset: int) -> None:
    with pytest.raises(FdtError) as info:
        from_dtb(blob(structure))
    assert numbers(str(info.value)) == {offset}


def test_a_second_root_is_refused() -> None:
    structure = begin(b"") + tag(END_NODE) + begin(b"") + tag(END_NODE) + tag(END)
    with pytest.raises(FdtError, match="root"):
        from_dtb(blob(structure))


# -- block placement and header versions --------------------------------------------

REORDERED_STRUCT = begin(b"") + prop_header(4, 0) + b"\0\0\0\x07" + begin(b"cpus") + tag(END_NODE)
REORDERED_STRUCT += tag(END_NODE) + tag(END)


def reordered(rsvmap: bytes) -> bytes:
    """A v17 blob laid out header, structure, strings, then the reservation map last."""
    off_struct = 40
    off_strings = off_struct + len(REORDERED_STRUCT)
    pad = b"\0" * (-(off_strings + len(STRINGS)) % 8)
    off_rsv = off_strings + len(STRINGS) + len(pad)
    total = off_rsv + len(rsvmap)
    header = struct.pack(
        ">10I",
        0xD00DFEED,
        total,
        off_struct,
        off_strings,
        off_rsv,
        17,
        16,
        0,
        len(STRINGS),
        len(REORDERED_STRUCT),
    )
    return header + REORDERED_STRUCT + STRINGS + pad + rsvmap


def test_blocks_may_come_in_any_order() -> None:
    """The spec fixes no block order; the reservation map may even end the blob."""
    entries = struct.pack(">QQQQQQ", 0x1000, 0x2000, 0xFFFF_0000, 0x10, 0, 0)
    tree = from_dtb(reordered(entries))
    assert tree.reserve_map == ((0x1000, 0x2000), (0xFFFF_0000, 0x10))
    assert tree.root["reg"].cells() == (7,)
    assert [c.name for c in tree.root.children] == ["cpus"]


@pytest.mark.dtc
@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_dtc_reads_the_reordered_blob_as_we_do() -> None:
    blob = reordered(struct.pack(">QQQQ", 0x1000, 0x2000, 0, 0))
    dtc = shutil.which("dtc")
    assert dtc is not None
    done = subprocess.run([dtc, "-q", "-I", "dtb", "-O", "dts"], input=blob, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert to_dts(blob) == done.stdout.decode("ascii")


def test_a_reservation_map_running_off_the_blob_is_refused() -> None:
    # The last entry is not the zero terminator and nothing follows it.
    with pytest.raises(FdtError, match="reservation"):
        from_dtb(reordered(struct.pack(">QQ", 0x1000, 0x2000)))


def v16_blob(off_strings: int) -> bytes:
    """A v16 blob (36-byte header, no size_dt_struct) with an empty strings block."""
    structure = begin(b"") + tag(END_NODE) + tag(END)
    off_rsv = 40  # 8-aligned after the 36-byte header
    off_struct = off_rsv + 16
    total = off_struct + len(structure)
    header = struct.pack(">9I", 0xD00DFEED, total, off_struct, off_strings, off_rsv, 16, 16, 0, 0)
    return header + bytes(4) + bytes(16) + structure


def test_a_v16_header_is_36_bytes() -> None:
    """Offset 36 is past a v16 header, so an (empty) strings block may start there."""
    assert from_dtb(v16_blob(36)).root == Node("")
    with pytest.raises(FdtError):
        from_dtb(v16_blob(35))


def test_a_v17_header_is_40_bytes() -> None:
    structure = begin(b"") + tag(END_NODE) + tag(END)
    inside = blob(structure, b"")
    patched = bytearray(inside)
    struct.pack_into(">I", patched, 12, 36)  # strings inside the v17 header
    with pytest.raises(FdtError):
        from_dtb(bytes(patched))
    struct.pack_into(">I", patched, 12, 40)  # right after it
    assert from_dtb(bytes(patched)).root == Node("")


@pytest.mark.parametrize(
    ("version", "last_comp", "ok"),
    [(17, 16, True), (17, 17, True), (16, 16, True), (17, 18, False), (17, 0xFFFF_FFFF, False)],
)
def test_last_compatible_version_may_not_exceed_the_version(
    version: int, last_comp: int, ok: bool
) -> None:
    structure = begin(b"") + tag(END_NODE) + tag(END)
    raw = bytearray(blob(structure, b""))
    struct.pack_into(">II", raw, 20, version, last_comp)
    if ok:
        assert from_dtb(bytes(raw)).root == Node("")
    else:
        with pytest.raises(FdtError):
            from_dtb(bytes(raw))
