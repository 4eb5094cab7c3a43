"""DTB encode/decode and DTS text, checked against QEMU's blobs, dtc, libfdt and pyfdt.

Random trees (hypothesis) must round-trip through our blob; QEMU 7.2's dumped
blobs must decode and render exactly as ``dtc -I dtb -O dts`` rendered them; and
when the real tools are installed, dtc must render our blobs the way we do, libfdt
must accept them and build the same stored order as our libfdt-style operations.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import string
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracle_tools import DTC, LIBFDT_NAME
from pyfdt.pyfdt import (
    FdtBlobParse,
    FdtNode,
    FdtProperty,
    FdtPropertyBytes,
    FdtPropertyStrings,
    FdtPropertyWords,
)

from fdt import DeviceTree, FdtError, Node, Property, from_dtb, to_dtb, to_dts

DTB_DIR = Path(__file__).parent / "data" / "dtb"
ORACLE_DTBS = sorted(DTB_DIR.glob("*.dtb"))

# -- random trees ------------------------------------------------------------

# dtc's own character sets, plus printable ASCII outside them (dtc reports those
# as errors, which changes what it prints: see fdt/_dts.py).
NODE_CHARS = string.ascii_letters + string.digits + ",._+-"
PROP_CHARS = string.ascii_letters + string.digits + ",._+*#?-"
ODD_CHARS = "!$%&'()*;<=>?[]^`{|}~\"\\:#"

u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)


def _names(alphabet: str, odd: str) -> st.SearchStrategy[str]:
    usual = st.text(alphabet, min_size=1, max_size=8)
    return st.one_of(usual, usual, usual, st.text(alphabet + odd, min_size=1, max_size=8))


node_bases = _names(NODE_CHARS, ODD_CHARS)
units = st.text(string.hexdigits.lower() + ",", max_size=4)
node_names = st.builds(
    lambda base, unit, extra_at: base + ("" if unit is None else "@" + unit) + extra_at,
    node_bases,
    st.none() | units,
    st.sampled_from([""] * 9 + ["@1"]),
)
prop_names = _names(PROP_CHARS, "!$%&@~^")
ascii_text = st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=12)
# Bytes near dtc's string/cell/byte boundaries: printable, NUL, escapes, non-printable.
stringy_bytes = st.lists(st.sampled_from(b'ab \0\t\n"\\\x7f\x80\x01'), max_size=12).map(bytes)

properties = st.one_of(
    st.builds(Property.empty, prop_names),
    st.builds(lambda n, c: Property.cells(n, *c), prop_names, st.lists(u32, max_size=6)),
    st.builds(lambda n, c: Property.u64(n, *c), prop_names, st.lists(u64, max_size=3)),
    st.builds(Property.string, prop_names, ascii_text),
    st.builds(Property.strings, prop_names, st.lists(ascii_text, max_size=4)),
    st.builds(Property.bytes, prop_names, st.binary(max_size=16)),
    st.builds(Property.bytes, prop_names, stringy_bytes),
)


@st.composite
def nodes(draw: st.DrawFn, depth: int = 0, name: str | None = None) -> Node:
    """A random node; new properties/children go in with set/add or append at random."""
    node = Node(draw(node_names) if name is None else name)
    for prop in draw(st.lists(properties, max_size=5, unique_by=lambda p: p.name)):
        (node.set_property if draw(st.booleans()) else node.append_property)(prop)
    # A "name" property: dtc drops it when it equals the base name (and checks pass).
    base = node.name.split("@")[0]
    name_prop = draw(
        st.sampled_from(
            [None] * 5
            + [
                Property.string("name", base),
                Property.string("name", node.name + "x"),
                Property.cells("name", 1),
            ]
        )
    )
    if name_prop is not None:
        node.set_property(name_prop)
    if depth < 4:
        width = 3 if depth < 2 else 1
        kids = draw(st.lists(nodes(depth + 1), max_size=width, unique_by=lambda n: n.name))
        for child in kids:
            (node.add_subnode if draw(st.booleans()) else node.append_subnode)(child)
    return node


trees = st.builds(
    DeviceTree,
    nodes(name=""),
    u32,
    st.lists(st.tuples(u64, st.integers(1, 0xFFFF_FFFF_FFFF_FFFF)), max_size=3),
)


def prop_names_in_use(root: Node) -> list[str]:
    """Property names in order of first use, depth-first (independent of the encoder)."""
    seen: dict[str, None] = {}

    def visit(node: Node) -> None:
        for prop in node.properties:
            seen.setdefault(prop.name)
        for child in node.children:
            visit(child)

    visit(root)
    return list(seen)


# -- round trip -------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_random_trees_round_trip(tree: DeviceTree) -> None:
    blob = to_dtb(tree)
    back = from_dtb(blob)
    assert back.root == tree.root
    assert back.boot_cpuid_phys == tree.boot_cpuid_phys
    assert back.reserve_map == tree.reserve_map
    assert to_dtb(back) == blob
    assert to_dts(back) == to_dts(tree) == to_dts(blob)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_blob_layout(tree: DeviceTree) -> None:
    blob = to_dtb(tree)
    header = struct.unpack_from(">10I", blob)
    (
        magic,
        total,
        off_struct,
        off_strings,
        off_rsv,
        version,
        last_comp,
        boot,
        size_str,
        size_struct,
    ) = header
    assert (magic, version, last_comp, boot) == (0xD00DFEED, 17, 16, tree.boot_cpuid_phys)
    assert total == len(blob)
    assert off_rsv == 40 and off_rsv % 8 == 0
    n_rsv = len(tree.reserve_map) + 1
    assert off_struct == off_rsv + 16 * n_rsv and off_struct % 4 == 0
    rsv = [struct.unpack_from(">QQ", blob, off_rsv + 16 * i) for i in range(n_rsv)]
    assert rsv == [*tree.reserve_map, (0, 0)]
    assert off_strings == off_struct + size_struct and size_struct % 4 == 0
    assert off_strings + size_str == total
    # The structure block starts with the root's BEGIN_NODE and ends with FDT_END.
    assert blob[off_struct : off_struct + 4] == b"\0\0\0\1"
    assert blob[off_strings - 4 : off_strings] == b"\0\0\0\x09"
    # Strings block: each property name once, in order of first use.
    strings = blob[off_strings:total]
    expected = prop_names_in_use(tree.root)
    assert strings == b"".join(name.encode() + b"\0" for name in expected)


# -- QEMU's blobs ------------------------------------------------------------


def test_oracle_files_are_present() -> None:
    assert len(ORACLE_DTBS) >= 13
    assert len(list(DTB_DIR.glob("*.FAILED.txt"))) >= 2


@pytest.mark.parametrize("path", ORACLE_DTBS, ids=lambda p: p.stem)
def test_oracle_blob_decodes_and_renders_like_dtc(path: Path) -> None:
    blob = path.read_bytes()
    tree = from_dtb(blob)
    assert to_dts(blob) == path.with_suffix(".dts").read_text()
    again = from_dtb(to_dtb(tree))
    assert again == tree
    assert again.root.same_content(tree.root)
    # Spot checks read straight from the blob header and well-known nodes.
    assert tree.boot_cpuid_phys == struct.unpack_from(">I", blob, 28)[0]
    cpus = tree.root.find("/cpus")
    assert cpus is not None
    assert cpus["#address-cells"].cells() == (1,)
    assert cpus["#size-cells"].cells() == (0,)
    cpu_nodes = [c for c in cpus.children if "device_type" in c]
    assert cpu_nodes and all(c["device_type"].string() == "cpu" for c in cpu_nodes)
    for cpu in cpu_nodes:
        assert cpu.name == f"{cpu.name.split('@')[0]}@{cpu['reg'].cells()[0]:x}"


def test_qemu_stored_order_is_kept() -> None:
    # QEMU creates /rtas's token properties in rising token order; libfdt puts each new
    # one first, so the blob (and dtc's text) lists them highest token first.
    tree = from_dtb((DTB_DIR / "p9_classic.dtb").read_bytes())
    rtas = tree.root.find("/rtas")
    assert rtas is not None
    tokens = [
        p.cells()[0] for p in rtas.properties if p.name.startswith("ibm,") and len(p.value) == 4
    ]
    tokens = [t for t in tokens if 0x2000 <= t < 0x2100]
    assert len(tokens) > 10 and tokens == sorted(tokens, reverse=True)


# -- dtc ---------------------------------------------------------------------


def run_dtc(blob: bytes, out_format: str) -> subprocess.CompletedProcess[bytes]:
    assert DTC is not None
    # -f: dtc refuses to print trees that fail an error-level check unless forced.
    return subprocess.run(
        [DTC, "-q", "-f", "-I", "dtb", "-O", out_format],
        input=blob,
        capture_output=True,
        check=False,
    )


@pytest.mark.dtc
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_dtc_renders_our_blobs_as_we_do(tree: DeviceTree) -> None:
    blob = to_dtb(tree)
    text = run_dtc(blob, "dts")
    assert text.returncode == 0, text.stderr
    assert to_dts(blob) == text.stdout.decode("ascii")
    recompiled = run_dtc(blob, "dtb")
    assert recompiled.returncode == 0, recompiled.stderr
    # dtc's own blob (suffix-shared strings, redundant names dropped) decodes too.
    assert to_dts(recompiled.stdout) == to_dts(blob)


@pytest.mark.dtc
@pytest.mark.parametrize("path", ORACLE_DTBS[:3], ids=lambda p: p.stem)
def test_dtc_reads_our_reencoding_of_qemu_blobs(path: Path) -> None:
    assert DTC is not None
    ours = to_dtb(from_dtb(path.read_bytes()))
    text = subprocess.run(
        [DTC, "-q", "-I", "dtb", "-O", "dts"], input=ours, capture_output=True, check=True
    )
    assert text.stdout.decode() == path.with_suffix(".dts").read_text()


# -- pyfdt -------------------------------------------------------------------

# pyfdt is used only as an independent blob reader. Its defects are avoided: we
# never call to_raw() (TypeError on word and byte properties under Python 3), we
# undo its signed storage of bytes ourselves, we rebuild raw values from its
# guessed types (strings/words/bytes/empty) by hand, and we walk its subdata
# ourselves instead of relying on its path helpers. It refuses a property and a
# child of the same name in one node, so such trees are skipped.


def pyfdt_raw(prop: FdtProperty) -> bytes:
    if isinstance(prop, FdtPropertyStrings):
        return b"".join(s.encode("ascii") + b"\0" for s in prop.strings)
    if isinstance(prop, FdtPropertyWords):
        return b"".join(struct.pack(">I", w) for w in prop.words)
    if isinstance(prop, FdtPropertyBytes):
        return bytes(b & 0xFF for b in prop.bytes)
    return b""


def pyfdt_flatten(node: FdtNode, path: str, out: dict[str, dict[str, bytes]]) -> None:
    props: dict[str, bytes] = {}
    out[path or "/"] = props
    for i in range(len(node)):
        item = node[i]
        if isinstance(item, FdtNode):
            pyfdt_flatten(item, f"{path}/{item.get_name()}", out)
        elif isinstance(item, FdtProperty):
            props[item.get_name()] = pyfdt_raw(item)


def our_flatten(root: Node) -> dict[str, dict[str, bytes]]:
    return {path: {p.name: p.value for p in node.properties} for path, node in root.iter_nodes()}


def has_name_clash(root: Node) -> bool:
    return any(
        {p.name for p in node.properties} & {c.name for c in node.children}
        for _, node in root.iter_nodes()
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_pyfdt_reads_our_blobs(tree: DeviceTree) -> None:
    assume(not has_name_clash(tree.root))
    blob = to_dtb(tree)
    parsed = FdtBlobParse(io.BytesIO(blob)).to_fdt()
    flat: dict[str, dict[str, bytes]] = {}
    pyfdt_flatten(parsed.get_rootnode(), "", flat)
    assert flat == our_flatten(tree.root)
    assert list(flat) == [path for path, _ in tree.root.iter_nodes()]
    assert parsed.header["boot_cpuid_phys"] == tree.boot_cpuid_phys
    assert [(e["address"], e["size"]) for e in parsed.reserve_entries] == list(tree.reserve_map)
    # pyfdt's own encoder (suffix-shared strings) gives a blob we decode to the same tree.
    assert from_dtb(parsed.to_dtb()).root.same_content(tree.root)


@pytest.mark.parametrize("path", ORACLE_DTBS[:2], ids=lambda p: p.stem)
def test_pyfdt_agrees_on_qemu_blobs(path: Path) -> None:
    blob = path.read_bytes()
    flat: dict[str, dict[str, bytes]] = {}
    pyfdt_flatten(FdtBlobParse(io.BytesIO(blob)).to_fdt().get_rootnode(), "", flat)
    assert flat == our_flatten(from_dtb(blob).root)


# -- libfdt (the C library QEMU uses), through ctypes -------------------------


class Libfdt:
    """The few libfdt read-write calls QEMU's tree building uses."""

    def __init__(self, name: str) -> None:
        lib = ctypes.CDLL(name)
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        self.signatures: dict[str, tuple[list[type], type]] = {
            "fdt_create_empty_tree": ([vp, i], i),
            "fdt_path_offset": ([vp, cp], i),
            "fdt_setprop": ([vp, i, cp, vp, i], i),
            "fdt_delprop": ([vp, i, cp], i),
            "fdt_add_subnode": ([vp, i, cp], i),
            "fdt_del_node": ([vp, i], i),
            "fdt_check_full": ([vp, ctypes.c_size_t], i),
        }
        self.fn: dict[str, Callable[..., int]] = {}
        for fname, (args, res) in self.signatures.items():
            f = getattr(lib, fname)
            f.argtypes, f.restype = args, res
            self.fn[fname] = f


LIBFDT = Libfdt(LIBFDT_NAME) if LIBFDT_NAME else None


@pytest.mark.libfdt
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_libfdt_accepts_our_blobs(tree: DeviceTree) -> None:
    assert LIBFDT is not None
    blob = to_dtb(tree)
    assert LIBFDT.fn["fdt_check_full"](blob, len(blob)) == 0


PROP_POOL = ["a", "b", "c", "reg", "name", "ibm,x"]
NODE_POOL = ["x", "y@1", "z@2", "cpus"]


@pytest.mark.libfdt
@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_libfdt_and_our_model_build_the_same_order(data: st.DataObject) -> None:
    """Random setprop/add_subnode/delprop/del_node sequences on libfdt and on Node."""
    assert LIBFDT is not None
    fn = LIBFDT.fn
    buf = ctypes.create_string_buffer(1 << 16)
    assert fn["fdt_create_empty_tree"](buf, len(buf)) == 0
    root = Node("")
    paths = ["/"]

    def offset(path: str) -> int:
        off = fn["fdt_path_offset"](buf, path.encode())
        assert off >= 0
        return off

    for _ in range(data.draw(st.integers(1, 30))):
        op = data.draw(st.sampled_from(["setprop", "setprop", "addnode", "delprop", "delnode"]))
        path = data.draw(st.sampled_from(paths))
        node = root.find(path)
        assert node is not None
        if op == "setprop":
            name = data.draw(st.sampled_from(PROP_POOL))
            value = data.draw(st.binary(max_size=9))
            assert fn["fdt_setprop"](buf, offset(path), name.encode(), value, len(value)) == 0
            node.set_property(Property(name, value))
        elif op == "addnode":
            if path.count("/") >= 4:
                continue
            name = data.draw(st.sampled_from(NODE_POOL))
            rc = fn["fdt_add_subnode"](buf, offset(path), name.encode())
            if name in {c.name for c in node.children}:
                assert rc < 0
                with pytest.raises(FdtError):
                    node.add_subnode(Node(name))
            else:
                assert rc >= 0
                node.add_subnode(Node(name))
                paths.append(f"{path.rstrip('/')}/{name}")
        elif op == "delprop":
            name = data.draw(st.sampled_from(PROP_POOL))
            rc = fn["fdt_delprop"](buf, offset(path), name.encode())
            if name in node:
                assert rc == 0
                node.remove_property(name)
            else:
                assert rc < 0
        elif path != "/":
            assert fn["fdt_del_node"](buf, offset(path)) == 0
            parent_path, _, name = path.rpartition("/")
            parent = root.find(parent_path or "/")
            assert parent is not None
            parent.remove_subnode(name)
            paths = [p for p in paths if p != path and not p.startswith(path + "/")]

    totalsize = struct.unpack_from(">I", buf.raw, 4)[0]
    assert from_dtb(buf.raw[:totalsize]).root == root  # same stored order, not just content
