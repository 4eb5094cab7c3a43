"""Flattened device-tree blobs (DTB, version 17) in and out.

Layout written: 40-byte header, memory reservation map (16-byte entries ending
with a zero entry), structure block (4-byte aligned tags), strings block (each
property name once, in order of first use). Every decoding failure is an
:class:`FdtError`; nothing else escapes from :func:`from_dtb`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from fdt._error import FdtError
from fdt._property import NAME_CHARS, Property, check_property_name
from fdt._tree import MAX_DEPTH, DeviceTree, Node, check_node_name

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE = 0x1
FDT_END_NODE = 0x2
FDT_PROP = 0x3
FDT_NOP = 0x4
FDT_END = 0x9

#: Version written; versions read.
FDT_VERSION = 17
FDT_LAST_COMP_VERSION = 16
READABLE_VERSIONS = (16, 17)

_HEADER = struct.Struct(">10I")
_HEADER_V16_SIZE = 36
_RESERVE_ENTRY = struct.Struct(">QQ")
_U32 = struct.Struct(">I")
_PROP_HEAD = struct.Struct(">III")


def _pad4(n: int) -> int:
    return -n % 4


def to_dtb(tree: DeviceTree | Node) -> bytes:
    """Encode a tree (a bare Node is the root, boot CPU 0, no reservations) as a v17 blob."""
    if isinstance(tree, Node):
        tree = DeviceTree(tree)
    rsvmap = b"".join(_RESERVE_ENTRY.pack(a, s) for a, s in tree.reserve_map)
    rsvmap += _RESERVE_ENTRY.pack(0, 0)

    out = bytearray()
    strings: dict[str, int] = {}
    strings_block = bytearray()
    begin = _U32.pack(FDT_BEGIN_NODE)
    end = _U32.pack(FDT_END_NODE)
    pack_prop = _PROP_HEAD.pack
    for event, node in _enter_leave(tree.root):
        if not event:
            out += end
            continue
        name = node.name.encode("ascii")
        out += begin
        out += name
        out += b"\0" * (1 + _pad4(len(name) + 1))
        for prop in node._properties:
            nameoff = strings.get(prop.name)
            if nameoff is None:
                nameoff = strings[prop.name] = len(strings_block)
                strings_block += prop.name.encode("ascii") + b"\0"
            value = prop.value
            out += pack_prop(FDT_PROP, len(value), nameoff)
            out += value
            out += b"\0" * _pad4(len(value))
    out += _U32.pack(FDT_END)

    off_rsvmap = _HEADER.size
    off_struct = off_rsvmap + len(rsvmap)
    off_strings = off_struct + len(out)
    totalsize = off_strings + len(strings_block)
    header = _HEADER.pack(
        FDT_MAGIC,
        totalsize,
        off_struct,
        off_strings,
        off_rsvmap,
        FDT_VERSION,
        FDT_LAST_COMP_VERSION,
        tree.boot_cpuid_phys,
        len(strings_block),
        len(out),
    )
    return b"".join((header, rsvmap, out, strings_block))


def _enter_leave(root: Node) -> Iterator[tuple[bool, Node]]:
    """(True, node) on entering each node and (False, node) on leaving it, depth-first."""
    yield True, root
    on_path = {id(root)}
    stack = [(root, iter(root._children))]
    while stack:
        node, it = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            on_path.discard(id(node))
            yield False, node
            continue
        if id(child) in on_path:
            raise FdtError(f"loop: node {child.name!r} contains itself")
        if len(stack) > MAX_DEPTH:
            raise FdtError(f"nesting deeper than {MAX_DEPTH} levels")
        on_path.add(id(child))
        stack.append((child, iter(child._children)))
        yield True, child


def from_dtb(blob: bytes | bytearray | memoryview) -> DeviceTree:
    """Decode a version 16 or 17 blob; properties come back with kind BYTES."""
    data = bytes(blob)
    if len(data) < 8:
        raise FdtError(f"truncated header ({len(data)} bytes)")
    magic, totalsize = struct.unpack_from(">II", data)
    if magic != FDT_MAGIC:
        raise FdtError(f"bad magic {magic:#010x}")
    if len(data) < 28:
        raise FdtError(f"truncated header ({len(data)} bytes)")
    version, last_comp = struct.unpack_from(">II", data, 20)
    if version not in READABLE_VERSIONS or last_comp > version:
        raise FdtError(f"unsupported version {version} (last compatible {last_comp})")
    header_size = _HEADER.size if version >= 17 else _HEADER_V16_SIZE
    if len(data) < header_size:
        raise FdtError(f"truncated header ({len(data)} bytes)")
    off_struct, off_strings, off_rsvmap = struct.unpack_from(">III", data, 8)
    boot_cpuid, size_strings = struct.unpack_from(">II", data, 28)
    if not header_size <= totalsize <= len(data):
        raise FdtError(f"totalsize {totalsize} outside {header_size}..{len(data)}")

    def check_block(what: str, offset: int, size: int) -> None:
        if offset < header_size or offset + size > totalsize:
            raise FdtError(f"{what} block [{offset}, +{size}) outside the blob ({totalsize})")

    if off_rsvmap % 8:
        raise FdtError(f"memory reservation map at misaligned offset {off_rsvmap}")
    check_block("memory reservation", off_rsvmap, 0)
    if off_struct % 4:
        raise FdtError(f"structure block at misaligned offset {off_struct}")
    if version >= 17:
        (size_struct,) = _U32.unpack_from(data, 36)
    else:  # v16 has no structure size: the block may run to the end of the blob
        check_block("structure", off_struct, 0)
        size_struct = totalsize - off_struct
    check_block("structure", off_struct, size_struct)
    check_block("strings", off_strings, size_strings)

    reserve_map = _read_reserve_map(data, off_rsvmap, totalsize)
    strings = data[off_strings : off_strings + size_strings]
    root = _read_structure(data[off_struct : off_struct + size_struct], strings)
    return DeviceTree(root, boot_cpuid, reserve_map)


def _read_reserve_map(data: bytes, offset: int, limit: int) -> list[tuple[int, int]]:
    entries: list[tuple[int, int]] = []
    while True:
        if offset + _RESERVE_ENTRY.size > limit:
            raise FdtError("memory reservation map runs past the blob")
        address, size = _RESERVE_ENTRY.unpack_from(data, offset)
        if size == 0:
            return entries
        entries.append((address, size))
        offset += _RESERVE_ENTRY.size


class _Strings:
    """Property names looked up by offset in the strings block (each decoded once)."""

    def __init__(self, block: bytes) -> None:
        self._block = block
        self._cache: dict[int, str] = {}

    def __call__(self, offset: int) -> str:
        name = self._cache.get(offset)
        if name is None:
            if offset >= len(self._block):
                raise FdtError(f"property name offset {offset} beyond the strings block")
            end = self._block.find(b"\0", offset)
            if end < 0:
                raise FdtError(f"unterminated property name at strings offset {offset}")
            name = self._cache[offset] = check_property_name(_ascii(self._block[offset:end]))
        return name


def _ascii(raw: bytes) -> str:
    text = raw.decode("latin-1")
    if not NAME_CHARS.issuperset(text):
        raise FdtError(f"invalid name {raw!r}")
    return text


def _read_structure(block: bytes, strings_block: bytes) -> Node:
    strings = _Strings(strings_block)
    u32 = _U32.unpack_from
    pos = 0
    size = len(block)
    stack: list[Node] = []
    root: Node | None = None
    while True:
        if pos + 4 > size:
            raise FdtError("structure block ends without FDT_END")
        (tag,) = u32(block, pos)
        pos += 4
        if tag == FDT_PROP:
            if not stack:
                raise FdtError(f"property outside any node at structure offset {pos - 4}")
            if pos + 8 > size:
                raise FdtError("truncated property header")
            length, nameoff = struct.unpack_from(">II", block, pos)
            start = pos + 8
            if start + length > size:
                raise FdtError(f"property value of {length} bytes runs past the structure block")
            name = strings(nameoff)
            stack[-1].append_property(Property(name, block[start : start + length]), replace=False)
            pos = start + length + _pad4(length)
        elif tag == FDT_BEGIN_NODE:
            if root is not None and not stack:
                raise FdtError("second top-level node after the root")
            end = block.find(b"\0", pos)
            if end < 0:
                raise FdtError(f"unterminated node name at structure offset {pos}")
            name = check_node_name(_ascii(block[pos:end]), root=not stack)
            pos = end + 1 + _pad4(end + 1)
            node = Node(name)
            if stack:
                if len(stack) > MAX_DEPTH:
                    raise FdtError(f"nesting deeper than {MAX_DEPTH} levels")
                stack[-1].append_subnode(node)
            else:
                root = node
            stack.append(node)
        elif tag == FDT_END_NODE:
            if not stack:
                raise FdtError(f"FDT_END_NODE without FDT_BEGIN_NODE at offset {pos - 4}")
            stack.pop()
        elif tag == FDT_NOP:
            pass
        elif tag == FDT_END:
            if stack:
                raise FdtError(f"FDT_END inside node {stack[-1].name!r}")
            if root is None:
                raise FdtError("structure block has no root node")
            return root
        else:
            raise FdtError(f"unknown tag {tag:#x} at structure offset {pos - 4}")
