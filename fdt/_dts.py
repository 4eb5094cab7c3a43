"""DTS text exactly as ``dtc -I dtb -O dts`` (dtc 1.6.1) prints a blob.

A blob carries no types, so dtc guesses each value's form from its bytes:

* a string list ``"a\\0b"`` when the value ends in NUL, every byte is printable
  ASCII, NUL or one of ``\\a\\b\\t\\n\\v\\f\\r``, and NULs are at most half the bytes;
* else cells ``<0x01 0x2000>`` when the length is a multiple of 4;
* else bytes ``[00 ff]``.

dtc also runs its checks before printing: when every error-level check that
precedes "name_properties" passes (node and property name characters, at most
one ``@`` per node name, every ``name`` property a single string), a ``name``
property equal to the node's name without unit address is dropped as redundant.
A tree that fails an error-level check is rendered as ``dtc -f`` would force it.
"""

from __future__ import annotations

import string
import struct

from fdt._dtb import from_dtb
from fdt._property import Property
from fdt._tree import DeviceTree, Node

_STRING_BYTES = bytes(range(0x20, 0x7F)) + b"\0\a\b\t\n\v\f\r"
_ESCAPES = {
    0: "\\0",
    0x07: "\\a",
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0B: "\\v",
    0x0C: "\\f",
    0x0D: "\\r",
    ord("\\"): "\\\\",
    ord('"'): '\\"',
}
_DTC_NODE_CHARS = frozenset(string.ascii_letters + string.digits + ",._+-@")
_DTC_PROPERTY_CHARS = frozenset(string.ascii_letters + string.digits + ",._+*#?-")


def to_dts(source: DeviceTree | Node | bytes | bytearray | memoryview) -> str:
    """Render a tree, a root node or a blob as dtc 1.6.1's ``-I dtb -O dts`` does."""
    if isinstance(source, bytes | bytearray | memoryview):
        tree = from_dtb(source)
    elif isinstance(source, Node):
        tree = DeviceTree(source)
    else:
        tree = source
    nodes = [node for _, node in tree.root.iter_nodes()]  # also refuses loops / deep trees
    drop_names = _dtc_drops_redundant_names(nodes)
    out = ["/dts-v1/;\n\n"]
    for address, size in tree.reserve_map:
        out.append(f"/memreserve/\t0x{address:016x} 0x{size:016x};\n")
    _render_node(out, tree.root, 0, drop_names)
    return "".join(out)


def _dtc_drops_redundant_names(nodes: list[Node]) -> bool:
    """Whether dtc's checks get as far as "name_properties" without an earlier error."""
    for node in nodes:
        if not _DTC_NODE_CHARS.issuperset(node.name) or node.name.count("@") > 1:
            return False
        for prop in node.properties:
            if not _DTC_PROPERTY_CHARS.issuperset(prop.name):
                return False
        name = node.get("name")
        if name is not None and not _is_one_string(name.value):
            return False
    return True


def _is_one_string(value: bytes) -> bool:
    return bool(value) and value.find(b"\0") == len(value) - 1


def _render_node(out: list[str], node: Node, level: int, drop_names: bool) -> None:
    indent = "\t" * level
    out.append(f"{indent}{node.name or '/'} {{\n")
    inner = indent + "\t"
    redundant_name = node.name.split("@")[0].encode("ascii") + b"\0"
    for prop in node.properties:
        if drop_names and prop.name == "name" and prop.value == redundant_name:
            continue
        out.append(f"{inner}{prop.name}{_render_value(prop)};\n")
    for child in node.children:
        out.append("\n")
        _render_node(out, child, level + 1, drop_names)
    out.append(f"{indent}}};\n")


def _render_value(prop: Property) -> str:
    value = prop.value
    n = len(value)
    if n == 0:
        return ""
    nul = value.count(0)
    if value[-1] == 0 and not value.translate(None, _STRING_BYTES) and nul <= n - nul:
        text = "".join(_ESCAPES.get(b, chr(b)) for b in value[:-1])
        return f' = "{text}"'
    if n % 4 == 0:
        cells = struct.unpack(f">{n // 4}I", value)
        return " = <" + " ".join(f"0x{c:02x}" for c in cells) + ">"
    return " = [" + value.hex(" ") + "]"
