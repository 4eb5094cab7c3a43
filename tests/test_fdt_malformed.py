"""Malformed blobs: every defect is an FdtError, never IndexError/struct.error/etc.

Blobs here are assembled by hand (``assemble``), independently of fdt.to_dtb, so a
test states exactly which bytes are wrong.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fdt import MAX_DEPTH, FdtError, Node, Property, from_dtb, to_dtb

BEGIN, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9


def tag(t: int) -> bytes:
    return struct.pack(">I", t)


def begin(name: bytes) -> bytes:
    raw = name + b"\0"
    return tag(BEGIN) + raw + b"\0" * (-len(raw) % 4)


def prop(nameoff: int, value: bytes) -> bytes:
    return struct.pack(">III", PROP, len(value), nameoff) + value + b"\0" * (-len(value) % 4)


def assemble(
    structure: bytes,
    strings: bytes = b"",
    *,
    rsvmap: bytes = b"\0" * 16,
    version: int = 17,
    last_comp: int = 16,
    boot: int = 0,
    **override: int,
) -> bytes:
    """Header + reservation map + structure + strings; ``override`` patches header fields."""
    header_size = 40 if version >= 17 else 36
    pad = b"\0" * (-header_size % 8)
    off_rsv = header_size + len(pad)
    off_struct = off_rsv + len(rsvmap)
    off_strings = off_struct + len(structure)
    total = off_strings + len(strings)
    fields = {
        "magic": 0xD00DFEED,
        "totalsize": total,
        "off_dt_struct": off_struct,
        "off_dt_strings": off_strings,
        "off_mem_rsvmap": off_rsv,
        "version": version,
        "last_comp_version": last_comp,
        "boot_cpuid_phys": boot,
        "size_dt_strings": len(strings),
        "size_dt_struct": len(structure),
    }
    fields.update(override)
    values = list(fields.values())[: header_size // 4]
    return struct.pack(f">{len(values)}I", *values) + pad + rsvmap + structure + strings


STRINGS = b"reg\0compatible\0"
GOOD_STRUCT = (
    begin(b"")
    + prop(4, b"a\0b\0")
    + begin(b"cpus")
    + prop(0, b"\0\0\0\x01")
    + tag(END_NODE)
    + tag(END_NODE)
    + tag(END)
)
RSV = struct.pack(">QQQQ", 0x1000, 0x2000, 0, 0)


def good_blob() -> bytes:
    return assemble(GOOD_STRUCT, STRINGS, rsvmap=RSV, boot=3)


def test_hand_assembled_blob_decodes() -> None:
    tree = from_dtb(good_blob())
    assert tree.boot_cpuid_phys == 3
    assert tree.reserve_map == ((0x1000, 0x2000),)
    assert tree.root == Node(
        "",
        properties=[Property.strings("compatible", ["a", "b"])],
        children=[Node("cpus", properties=[Property.cells("reg", 1)])],
    )


def test_accepted_variations() -> None:
    expected = from_dtb(good_blob()).root
    # Version 16: no size_dt_struct; the structure block runs to FDT_END.
    assert from_dtb(assemble(GOOD_STRUCT, STRINGS, version=16)).root == expected
    # NOPs anywhere, bytes after totalsize, and a property name shared as a suffix.
    nops = tag(NOP).join([b"", begin(b""), prop(4, b"a\0b\0"), begin(b"cpus")])
    nops += prop(0, b"\0\0\0\x01") + tag(NOP) + tag(END_NODE) + tag(END_NODE) + tag(NOP) + tag(END)
    assert from_dtb(assemble(nops, STRINGS) + b"junk").root == expected
    shared = begin(b"") + prop(1, b"") + tag(END_NODE) + tag(END)
    assert from_dtb(assemble(shared, b"xreg\0")).root == Node("", [Property.empty("reg")])
    # A property after a subnode (libfdt and dtc tolerate it).
    late = begin(b"") + begin(b"c") + tag(END_NODE) + prop(0, b"") + tag(END_NODE) + tag(END)
    root = from_dtb(assemble(late, b"p\0")).root
    assert root.get("p") == Property.empty("p") and root.subnode("c") == Node("c")


def test_truncated_at_every_length() -> None:
    blob = good_blob()
    for n in range(len(blob)):
        with pytest.raises(FdtError):
            from_dtb(blob[:n])


def patch_u32(blob: bytes, offset: int, value: int) -> bytes:
    return blob[:offset] + struct.pack(">I", value) + blob[offset + 4 :]


MALFORMED = {
    "bad magic": patch_u32(good_blob(), 0, 0xEDFE0DD0),
    "version 15": assemble(GOOD_STRUCT, STRINGS, version=15, last_comp=15),
    "version 18": assemble(GOOD_STRUCT, STRINGS, version=18),
    "version 1": assemble(GOOD_STRUCT, STRINGS, version=1, last_comp=1),
    "last_comp_version 18": assemble(GOOD_STRUCT, STRINGS, last_comp=18),
    "totalsize beyond the blob": patch_u32(good_blob(), 4, len(good_blob()) + 1),
    "totalsize inside the header": patch_u32(good_blob(), 4, 20),
    "structure offset beyond": assemble(GOOD_STRUCT, STRINGS, off_dt_struct=0x10000),
    "structure offset in header": assemble(GOOD_STRUCT, STRINGS, off_dt_struct=8),
    "structure misaligned": assemble(GOOD_STRUCT, STRINGS, off_dt_struct=58),
    "structure size beyond": assemble(GOOD_STRUCT, STRINGS, size_dt_struct=0x10000),
    "strings offset beyond": assemble(GOOD_STRUCT, STRINGS, off_dt_strings=0x10000),
    "strings size beyond": assemble(GOOD_STRUCT, STRINGS, size_dt_strings=0x10000),
    "rsvmap offset beyond": assemble(GOOD_STRUCT, STRINGS, off_mem_rsvmap=0x10000),
    "rsvmap misaligned": assemble(GOOD_STRUCT, STRINGS, off_mem_rsvmap=44),
    "rsvmap without terminator": assemble(
        b"", rsvmap=struct.pack(">QQ", 1, 1), size_dt_struct=0, off_dt_struct=56
    ),
    "string offset out of range": assemble(
        begin(b"") + prop(99, b"") + tag(END_NODE) + tag(END), STRINGS
    ),
    "unterminated property name": assemble(
        begin(b"") + prop(0, b"") + tag(END_NODE) + tag(END), b"reg"
    ),
    "unterminated node name": assemble(tag(BEGIN) + b"abcdefgh"),
    "property outside any node": assemble(
        prop(0, b"") + begin(b"") + tag(END_NODE) + tag(END), STRINGS
    ),
    "property after the root": assemble(
        begin(b"") + tag(END_NODE) + prop(0, b"") + tag(END), STRINGS
    ),
    "unbalanced END_NODE": assemble(begin(b"") + tag(END_NODE) + tag(END_NODE) + tag(END)),
    "END_NODE first": assemble(tag(END_NODE) + tag(END)),
    "missing FDT_END": assemble(begin(b"") + tag(END_NODE)),
    "FDT_END inside a node": assemble(begin(b"") + begin(b"a") + tag(END_NODE) + tag(END)),
    "no root node": assemble(tag(NOP) + tag(END)),
    "second root node": assemble(
        begin(b"") + tag(END_NODE) + begin(b"") + tag(END_NODE) + tag(END)
    ),
    "unknown tag 5": assemble(begin(b"") + tag(5) + tag(END_NODE) + tag(END)),
    "unknown tag 0": assemble(begin(b"") + tag(0) + tag(END_NODE) + tag(END)),
    "misaligned tag after unpadded name": assemble(tag(BEGIN) + b"ab\0" + tag(END_NODE) + tag(END)),
    "property value past the block": assemble(
        begin(b"") + struct.pack(">III", PROP, 100, 0) + tag(END_NODE) + tag(END), STRINGS
    ),
    "truncated property header": assemble(begin(b"") + struct.pack(">II", PROP, 0)),
    "duplicate property": assemble(
        begin(b"") + prop(0, b"") + prop(0, b"x") + tag(END_NODE) + tag(END), STRINGS
    ),
    "duplicate node": assemble(
        begin(b"") + (begin(b"a") + tag(END_NODE)) * 2 + tag(END_NODE) + tag(END)
    ),
    "empty child name": assemble(begin(b"") + begin(b"") + tag(END_NODE) * 2 + tag(END)),
    "slash in node name": assemble(begin(b"") + begin(b"a/b") + tag(END_NODE) * 2 + tag(END)),
    "non-ASCII node name": assemble(begin(b"") + begin(b"\xff") + tag(END_NODE) * 2 + tag(END)),
    "non-ASCII property name": assemble(
        begin(b"") + prop(0, b"") + tag(END_NODE) + tag(END), b"\xe9\0"
    ),
    "empty property name": assemble(begin(b"") + prop(0, b"") + tag(END_NODE) + tag(END), b"\0"),
    "too deep": assemble(
        b"".join(begin(b"n") for _ in range(MAX_DEPTH + 2))
        + tag(END_NODE) * (MAX_DEPTH + 2)
        + tag(END)
    ),
    "empty input": b"",
    "only magic": b"\xd0\x0d\xfe\xed",
}


@pytest.mark.parametrize("blob", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_blob_raises_fdt_error(blob: bytes) -> None:
    with pytest.raises(FdtError):
        from_dtb(blob)


def test_deepest_allowed_nesting_decodes() -> None:
    depth = MAX_DEPTH + 1  # root at depth 0, the deepest node at MAX_DEPTH
    blob = assemble(b"".join(begin(b"n") for _ in range(depth)) + tag(END_NODE) * depth + tag(END))
    names = [path for path, _ in from_dtb(blob).root.iter_nodes()]
    assert len(names) == depth and names[-1].count("/") == MAX_DEPTH


def fuzz_seeds() -> list[bytes]:
    root = Node("", properties=[Property.string("model", "m"), Property.cells("#size-cells", 2)])
    cpu = Node("PowerPC,POWER9@8", properties=[Property.cells("reg", 8), Property.empty("64-bit")])
    root.append_subnode(Node("cpus", children=[cpu]))
    oracle = (Path(__file__).parent / "data" / "dtb" / "p9_classic.dtb").read_bytes()
    return [good_blob(), to_dtb(root), oracle]


SEEDS = fuzz_seeds()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SEEDS))), st.data())
def test_random_corruption_raises_only_fdt_error(seed: int, data: st.DataObject) -> None:
    blob = bytearray(SEEDS[seed])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        if data.draw(st.booleans()):
            blob[pos] ^= 1 << data.draw(st.integers(0, 7))
        else:
            blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        tree = from_dtb(bytes(blob))
    except FdtError:
        return
    # When the corruption still decodes, the result is a consistent tree.
    assert from_dtb(to_dtb(tree)) == tree


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_garbage_after_a_valid_header_raises_only_fdt_error(tail: bytes) -> None:
    head = struct.pack(">10I", 0xD00DFEED, 40 + len(tail), 40, 40, 40, 17, 16, 0, 0, len(tail))
    try:
        tree = from_dtb(head + tail)
    except FdtError:
        return
    assert from_dtb(to_dtb(tree)) == tree
