"""Unit tests of the guest's pure pieces: CAS vectors, the configure-connector reader,
device-tree readers, the logical-id search, cpulists, the log and the allocator."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fdt
from guest.cas import CasRequest, NegotiatedFeatures, PlatformSupport
from guest.connector import CcAction, ConnectorError, ConnectorWalk, busy_delay_ms
from guest.log import GuestLog, LogEntry, LogLevel
from guest.memory_map import GuestRegions, OutOfGuestMemory
from guest.options import Misbehavior, WrongIndices
from guest.topology import (
    associativity_node,
    cpulist,
    drc_indexes,
    find_cpu_id_range,
    form1_domains,
    form2_distance_table,
    interrupt_servers,
    iter_nodes_by_type,
    lrdr_max_cores,
    memory_nodes,
    node_distance,
    primary_domain_index,
)

DATA = Path(__file__).parent / "data" / "guest"


def oracle(name: str) -> fdt.Node:
    return fdt.from_dtb((DATA / f"{name}.dtb").read_bytes()).root


# ------------------------------------------------------------------------- CAS


def parse_table(table: bytes) -> tuple[list[tuple[int, int]], list[bytes]]:
    """Read the table the way QEMU's h_client_architecture_support does."""
    pvrs = []
    pos = 0
    while True:
        mask, pvr = struct.unpack_from(">II", table, pos)
        pos += 8
        pvrs.append((mask, pvr))
        if ~mask & pvr & 0xFFFFFFFF:
            break
    count = table[pos] + 1
    pos += 1
    vectors = []
    for _ in range(count):
        length = table[pos] + 1
        vectors.append(table[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return pvrs, vectors


def test_cas_table_layout_is_linux_6_1() -> None:
    pvrs, vectors = parse_table(CasRequest().table())
    assert len(pvrs) == 14
    assert pvrs[-1] == (0xFFFFFFFE, 0x0F000001)  # terminator doubles as ISA 2.04
    assert (0xFFFF0000, 0x004E0000) in pvrs  # POWER9
    assert (0xFFFFFFFF, 0x0F000005) in pvrs  # ISA 3.00 logical PVR
    assert [len(v) for v in vectors] == [3, 33, 2, 2, 26, 3]
    vec5 = vectors[4]
    assert vec5[1] == 0x80 | 0x40 | 0x10 | 0x20 | 0x02 | 0x01  # byte 2: LPAR..MSI
    assert vec5[4] == 0x80 | 0x40 | 0x20  # byte 5: FORM1, PRRN, FORM2
    assert vec5[5] == 0x04 | 0x01  # byte 6: HP_EVT, RESIZE_HPT
    assert struct.unpack_from(">I", vec5, 8)[0] == 2048  # max cores = NR_CPUS / 1 thread
    assert vec5[22] == 0  # byte 23: no XIVE requested


def test_legacy_cas_does_not_ask_for_hotplug_events() -> None:
    _pvrs, vectors = parse_table(CasRequest(hp_evt=False).table())
    assert vectors[4][5] & 0x04 == 0
    assert vectors[4][5] & 0x01  # still asks for HPT resizing


def test_max_cores_divides_by_threads() -> None:
    _pvrs, vectors = parse_table(CasRequest(threads_per_core=4, nr_cpus=2048).table())
    assert struct.unpack_from(">I", vectors[4], 8)[0] == 512


def test_platform_support_from_qemu_chosen_values() -> None:
    p9 = PlatformSupport.from_chosen(oracle("p9_classic").find("/chosen"))
    assert p9.radix_mmu and p9.hash_mmu and p9.radix_gtse
    assert not p9.xive  # xive=off
    p8 = PlatformSupport.from_chosen(oracle("p8e_classic").find("/chosen"))
    assert p8.hash_mmu and not p8.radix_mmu


def test_radix_requested_only_when_supported() -> None:
    radix = CasRequest(platform=PlatformSupport(radix_mmu=True, radix_gtse=True)).vector5()
    assert radix[23] == 0x40 and radix[25] == 0x40  # bytes 24 and 26
    hashed = CasRequest(platform=PlatformSupport(hash_mmu=True)).vector5()
    assert hashed[23] == 0 and hashed[25] == 0


def test_negotiated_features_index_by_byte_number() -> None:
    vec = bytearray(27)
    vec[0] = 25
    vec[6] = 0x04
    vec[5] = 0x20
    vec[24] = 0x40
    root = fdt.Node("")
    chosen = root.append_subnode(fdt.Node("chosen"))
    chosen.append_property(fdt.Property.bytes("ibm,architecture-vec-5", bytes(vec)))
    features = NegotiatedFeatures.from_tree(root)
    assert features.hp_evt and features.form2_affinity and features.radix
    assert not features.form1_affinity and not features.xive
    assert NegotiatedFeatures(b"\x00\x00").names() == ()


# ------------------------------------------------------------ configure-connector


def work_area(name: str, value: bytes | None = None) -> bytes:
    area = bytearray(4096)
    encoded = name.encode() + b"\0"
    struct.pack_into(">III", area, 8, 20, len(value or b""), 20 + len(encoded))
    area[20 : 20 + len(encoded)] = encoded
    if value is not None:
        area[20 + len(encoded) : 20 + len(encoded) + len(value)] = value
    return bytes(area)


def test_walk_builds_a_node_with_properties_in_arrival_order() -> None:
    walk = ConnectorWalk(0x10000001)
    walk.step(2, work_area("PowerPC,POWER9@1"))
    walk.step(3, work_area("reg", b"\0\0\0\1"))
    walk.step(3, work_area("64-bit", b""))
    (node,) = walk.nodes()
    assert node.name == "PowerPC,POWER9@1"
    assert [p.name for p in node.properties] == ["reg", "64-bit"]
    assert node["reg"].value == b"\0\0\0\1"


def test_walk_children_and_siblings() -> None:
    walk = ConnectorWalk(1)
    walk.step(2, work_area("a@1"))
    walk.step(2, work_area("child"))
    walk.step(4, work_area(""))
    walk.step(1, work_area("b@2"))
    nodes = walk.nodes()
    assert [n.name for n in nodes] == ["a@1", "b@2"]
    assert [c.name for c in nodes[0].children] == ["child"]


@pytest.mark.parametrize(
    ("status", "area"),
    [
        (3, work_area("reg", b"\0\0\0\1")),  # property before any node
        (1, work_area("x")),  # sibling before any node
        (4, work_area("")),  # climbing above the parent
    ],
)
def test_walk_refuses_answers_linux_would_crash_on(status: int, area: bytes) -> None:
    with pytest.raises(ConnectorError):
        ConnectorWalk(1).step(status, area)


def test_walk_refuses_a_value_running_past_the_work_area() -> None:
    area = bytearray(work_area("reg", b"\0\0\0\1"))
    struct.pack_into(">I", area, 12, 5000)
    walk = ConnectorWalk(1)
    walk.step(2, work_area("n@1"))
    with pytest.raises(ConnectorError):
        walk.step(3, bytes(area))


def test_status_actions_follow_linux_6_1() -> None:
    assert ConnectorWalk.action(0) is CcAction.DONE
    assert {ConnectorWalk.action(s) for s in (1, 2, 3, 4)} == {CcAction.NODE}
    assert ConnectorWalk.action(-2) is CcAction.RETRY
    assert ConnectorWalk.action(9902) is CcAction.RETRY
    for status in (5, -1, -9000, -9001, -9002, -9003, -3):
        assert ConnectorWalk.action(status) is CcAction.FAIL
    assert busy_delay_ms(9905) == 1000 and busy_delay_ms(9901) == 10 and busy_delay_ms(0) is None


# -------------------------------------------------------------------- topology


def test_oracle_tree_readers() -> None:
    root = oracle("p9_classic")
    assert lrdr_max_cores(root) == 4
    cpus = root.find("/cpus")
    assert sorted(drc_indexes(cpus)) == [0x10000000, 0x10000001, 0x10000002, 0x10000003]
    nodes = list(iter_nodes_by_type(root, "cpu"))
    assert [interrupt_servers(n) for _p, n in nodes] == [(0,), (1,)]


def test_numa_nodes_from_associativity() -> None:
    root = oracle("p8e_numa_cpus")
    index = primary_domain_index(root)
    assert index == 4
    nodes = [associativity_node(n, index) for _p, n in iter_nodes_by_type(root, "cpu")]
    assert sorted(nodes) == [0, 1]
    assert memory_nodes(root, index) == {0: 512 << 20, 1: 512 << 20}


def test_node_distances_form1_and_form2() -> None:
    root = fdt.Node("")
    rtas = root.append_subnode(fdt.Node("rtas"))
    rtas.append_property(fdt.Property.cells("ibm,numa-lookup-index-table", 2, 0, 1))
    rtas.append_property(
        fdt.Property.bytes("ibm,numa-distance-table", b"\0\0\0\x04" + bytes([10, 40, 40, 10]))
    )
    table = form2_distance_table(root)
    assert table is not None and node_distance(0, 1, form2_table=table) == 40
    a = fdt.Node("a")
    a.append_property(fdt.Property.cells("ibm,associativity", 4, 0, 0, 0, 0))
    b = fdt.Node("b")
    b.append_property(fdt.Property.cells("ibm,associativity", 4, 0, 0, 1, 1))
    refs = (4, 3, 2)
    rows = {0: form1_domains(a, refs), 1: form1_domains(b, refs)}
    assert rows == {0: (0, 0, 0), 1: (1, 1, 0)}
    # FORM1: 10, doubled per differing reference level until one matches.
    assert node_distance(0, 1, form1_domains=rows) == 40  # type: ignore[arg-type]
    assert node_distance(1, 1) == 10 and node_distance(0, 1) == 20


def test_find_cpu_id_range_is_aligned_and_skips_present_ids() -> None:
    possible = range(8)
    assert find_cpu_id_range(4, 8, possible, {0, 1, 2, 3}) == range(4, 8)
    assert find_cpu_id_range(2, 8, possible, {0, 1, 4}) == range(2, 4)
    assert find_cpu_id_range(2, 8, possible, {0, 1, 4}, excluded={2}) == range(6, 8)
    assert find_cpu_id_range(4, 8, possible, {0, 5}) is None
    assert find_cpu_id_range(1, 2, range(2), {0, 1}) is None


@given(st.sets(st.integers(min_value=0, max_value=300), max_size=60))
def test_cpulist_round_trips(ids: set[int]) -> None:
    text = cpulist(ids)
    back: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        back.update(range(int(first), int(last or first) + 1))
    assert back == ids
    assert cpulist([0, 1, 2, 4]) == "0-2,4"


# ------------------------------------------------------------- log, allocator


def test_dmesg_line_format() -> None:
    assert LogEntry(1_500_000_000, LogLevel.INFO, "hello").dmesg_line() == "[    1.500000] hello"
    log = GuestLog()
    log.emit(0, LogLevel.INFO, "k")
    log.emit(0, LogLevel.INFO, "u", source="drmgr")
    assert log.dmesg() == ["[    0.000000] k"]
    assert log.texts("drmgr") == ["u"]


def test_regions_skip_reserved_ranges_and_run_out() -> None:
    regions = GuestRegions(0x1000, 0x3000, [(0x1800, 0x100)])
    a = regions.alloc(0x780, 0x100)
    b = regions.alloc(0x100, 0x100)
    assert a == 0x1000 and b == 0x1900
    with pytest.raises(OutOfGuestMemory):
        regions.alloc(0x2000)


def test_option_validation() -> None:
    with pytest.raises(ValueError):
        WrongIndices(services=frozenset({"power-off"}))
    with pytest.raises(ValueError):
        Misbehavior(abandon_configure_after=-1)
