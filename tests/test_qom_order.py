"""GLib 2.74 hash-table order model vs QEMU 7.2 outputs (DT arrays, traces, qom-list)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machine.config.ghash import (
    HASH_TABLE_MIN_SHIFT,
    GHashTableModel,
    drc_container_order,
    drc_link_name,
    drc_reset_order,
    g_str_hash,
    property_iteration_order,
    qom_list_order,
)

DATA = Path(__file__).parent / "data" / "qom_order"

# DRC index = type bits | id (PAPR / QEMU spapr_drc.h).
CPU, PHB, PCI = 0x10000000, 0x20000000, 0x40000000
N_PHB_DRCS = 31  # SPAPR_MAX_PHBS
N_PCI_DRCS = 256  # one per devfn of PHB 0's root bus
DRC_NAME_PREFIX = {CPU: "CPU ", PHB: "PHB ", PCI: "C"}
DRC_TYPE_NAME = {CPU: "CPU", PHB: "PHB", PCI: "28"}


def drc_type(index: int) -> int:
    return index & 0xF0000000


def realize_order(n_slots: int, vsmt: int, *, phb_drcs: bool) -> list[int]:
    """DRC creation order of a pseries machine: CPU slots, PHBs (if enabled), PHB 0's PCI slots.

    CPU DRC index = 0x10000000 + vCPU id of the slot's first thread (slot * vsmt
    with threads=1), per the oracle README.
    """
    cpus = [CPU | (slot * vsmt) for slot in range(n_slots)]
    phbs = [PHB | i for i in range(N_PHB_DRCS)] if phb_drcs else []
    return cpus + phbs + [PCI | i for i in range(N_PCI_DRCS)]


# config -> (possible core slots, vsmt, PHB DRCs present); from the oracle README's table.
DT_CONFIGS: dict[str, tuple[int, int, bool]] = {
    "p8e_classic": (4, 1, True),
    "p9_classic": (4, 1, True),
    "p10_classic": (4, 1, True),
    "p8e_pseries-7.2": (4, 1, True),
    "p9_sockets2": (4, 1, True),
    "p8e_sockets2_implicit": (8, 1, True),
    "p8e_vsmt8": (4, 8, True),
    "p8e_pseries-2.7": (4, 8, False),  # pseries-4.1 and older: vsmt 8; no PHB hotplug before 4.0
    "p8e_numa_cpus": (4, 1, True),
    "p8e_numa_cpu": (4, 1, True),
    "p8e_coldplug_core2": (4, 1, True),
    "p9_coldplug_core3": (4, 1, True),
    "p8e_smp2_nohotplug": (2, 1, True),
}

# ---------------------------------------------------------------------------
# Oracle file parsing


def parse_dts_drc_arrays(path: Path) -> dict[str, dict[str, bytes]]:
    """Node path -> {ibm,drc-* property name -> raw bytes} from dtc's DTS output."""
    nodes: dict[str, dict[str, bytes]] = {}
    stack: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.endswith("{"):
            name = line[:-1].strip()
            stack.append("" if name == "/" else name)
            continue
        if line == "};":
            stack.pop()
            continue
        match = re.fullmatch(r"(ibm,drc-[a-z-]+) = (.*);", line)
        if match is None:
            continue
        node = "/".join(stack) or "/"
        value = match.group(2)
        if value.startswith("<"):
            cells = [int(c, 16) for c in value.strip("<>").split()]
            blob = b"".join(c.to_bytes(4, "big") for c in cells)
        elif value.startswith("["):
            blob = bytes.fromhex(value.strip("[]"))
        else:
            blob = dts_strings_to_bytes(value)
        nodes.setdefault(node, {})[match.group(1)] = blob
    return nodes


DTS_ESCAPES = {"0": 0, "a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13}


def dts_strings_to_bytes(value: str) -> bytes:
    """Bytes of a DTS string-list value (`"a\\0b", "c"`): each string NUL-terminated."""
    out = bytearray()
    for literal in re.findall(r'"((?:[^"\\]|\\.)*)"', value):
        i = 0
        while i < len(literal):
            ch = literal[i]
            if ch != "\\":
                out += ch.encode()
                i += 1
                continue
            esc = literal[i + 1]
            if esc == "x":
                out.append(int(literal[i + 2 : i + 4], 16))
                i += 4
            else:
                out.append(DTS_ESCAPES.get(esc, ord(esc)))
                i += 2
        out.append(0)
    return bytes(out)


def counted_u32s(blob: bytes) -> list[int]:
    count = int.from_bytes(blob[:4], "big")
    values = [int.from_bytes(blob[i : i + 4], "big") for i in range(4, len(blob), 4)]
    assert len(values) == count
    return values


def counted_strings(blob: bytes) -> list[str]:
    count = int.from_bytes(blob[:4], "big")
    strings = [s.decode() for s in blob[4:].split(b"\0")[:-1]] if count else []
    assert len(strings) == count
    return strings


def trace_events(path: Path) -> list[tuple[str, str]]:
    """(event name, rest of line) for each line of a QEMU `-D` trace log."""
    events = []
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(" ")
        events.append((name, rest))
    return events


def drc_of(rest: str) -> int:
    match = re.match(r"drc: (0x[0-9a-f]+)", rest)
    assert match is not None, rest
    return int(match.group(1), 16)


def qmp_exchanges(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(command, its response) pairs of a transcript; events are skipped."""
    pending: dict[str, Any] | None = None
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        msg = entry["msg"]
        if entry["dir"] == "out":
            pending = msg
        elif pending is not None and ("return" in msg or "error" in msg):
            yield pending, msg
            pending = None


def qom_lists(path: Path, qom_path: str) -> list[list[str]]:
    """Every `qom-list` answer for `qom_path` in a transcript, as name lists."""
    return [
        [prop["name"] for prop in resp["return"]]
        for cmd, resp in qmp_exchanges(path)
        if cmd.get("execute") == "qom-list" and cmd["arguments"]["path"] == qom_path
    ]


def table(*keys: str) -> GHashTableModel:
    return GHashTableModel.from_keys(keys)


OBJECT_CLASS = ("type",)  # object_class_init
DEVICE_CLASS = ("realized", "hotpluggable", "hotplugged", "parent_bus")  # device_class_init

# ---------------------------------------------------------------------------
# g_str_hash


def djb2_closed_form(data: bytes) -> int:
    """5381 * 33^n + sum(c_i * 33^(n-1-i)) mod 2^32, with bytes read as signed char."""
    n = len(data)
    total = 5381 * 33**n
    for i, byte in enumerate(data):
        signed = byte - 256 if byte >= 0x80 else byte
        total += signed * 33 ** (n - 1 - i)
    return total % 2**32


def test_g_str_hash_known_values() -> None:
    assert g_str_hash("") == 5381
    assert g_str_hash("a") == 177670  # 5381 * 33 + 97
    assert g_str_hash("ab") == 5863208  # 177670 * 33 + 98
    assert g_str_hash("type") == djb2_closed_form(b"type")


def test_g_str_hash_wraps_at_32_bits_and_reads_signed_bytes() -> None:
    long_key = "dr-connector[1073742079]" * 3
    assert g_str_hash(long_key) == djb2_closed_form(long_key.encode())
    assert g_str_hash("é") == djb2_closed_form("é".encode())
    assert g_str_hash("é") != ((5381 * 33 + 0xC3) * 33 + 0xA9) % 2**32  # not unsigned bytes
    assert g_str_hash("é") == ((5381 * 33 - 61) * 33 - 87) % 2**32


@given(st.text(max_size=40))
def test_g_str_hash_matches_closed_form(key: str) -> None:
    assert g_str_hash(key) == djb2_closed_form(key.encode())


def test_drc_link_name_is_lower_hex_without_prefix() -> None:
    assert drc_link_name(0x10000002) == "10000002"
    assert drc_link_name(0x400000FF) == "400000ff"


# ---------------------------------------------------------------------------
# Table semantics and GLib's resize rules

keys_strategy = st.sampled_from([f"k{i}" for i in range(40)] + [f"{CPU | i:x}" for i in range(40)])
ops_strategy = st.lists(st.tuples(st.booleans(), keys_strategy), max_size=300)


@settings(max_examples=300)
@given(ops_strategy)
def test_model_behaves_as_a_set(ops: list[tuple[bool, str]]) -> None:
    model = GHashTableModel()
    reference: set[str] = set()
    for is_insert, key in ops:
        if is_insert:
            assert model.insert(key) == (key not in reference)
            reference.add(key)
        else:
            assert model.remove(key) == (key in reference)
            reference.discard(key)
        keys = model.keys()
        assert len(keys) == len(set(keys)) == len(model) == len(reference)
        assert set(keys) == reference
        assert all(k in model for k in reference)
        assert key in model if key in reference else key not in model


@settings(max_examples=200)
@given(ops_strategy)
def test_size_stays_within_glib_load_bounds(ops: list[tuple[bool, str]]) -> None:
    """After every operation: a power of two >= 8, never at or over 15/16 full, never under 1/4."""
    model = GHashTableModel()
    for is_insert, key in ops:
        if is_insert:
            model.insert(key)
        else:
            model.remove(key)
        size = model.size
        assert size & (size - 1) == 0 and size >= 1 << HASH_TABLE_MIN_SHIFT
        assert size > len(model) + len(model) // 16
        assert size <= 4 * len(model) or size == 1 << HASH_TABLE_MIN_SHIFT


def test_growth_points_follow_glib_thresholds() -> None:
    """A fresh table grows once size <= n + n // 16, to 2 ** bit_length(int(n * 1.333)) buckets."""
    model = GHashTableModel()
    sizes = []
    for i in range(100):
        model.insert(f"key{i}")
        sizes.append(model.size)
    # 8 buckets hold 7 entries (8 <= 8 + 0 grows); at 8 entries int(8 * 1.333) = 10 -> 16.
    assert sizes[6] == 8 and sizes[7] == 16
    # 16 buckets: grows when n + n // 16 >= 16, i.e. at n = 16 (16 * 1.333 = 21 -> 32).
    assert sizes[14] == 16 and sizes[15] == 32
    # 32 buckets: n = 31 gives 31 + 1 >= 32 (41 -> 64).
    assert sizes[29] == 32 and sizes[30] == 64


def test_shrink_when_under_a_quarter_full() -> None:
    model = GHashTableModel.from_keys(f"key{i}" for i in range(40))
    assert model.size == 64
    for i in range(40):
        model.remove(f"key{i}")
        assert model.size <= 4 * len(model) or model.size == 8
    assert model.size == 8 and model.keys() == []


def test_tombstone_is_reused_by_the_next_insert_on_its_path() -> None:
    model = GHashTableModel.from_keys(["a", "b", "c"])
    position = model.keys().index("b")
    model.remove("b")
    model.insert("b")
    assert model.keys().index("b") == position


def test_scales_to_4096_cpu_slots() -> None:
    indexes = [CPU | i for i in range(4096)] + realize_order(0, 1, phb_drcs=True)
    order = drc_container_order(indexes)
    assert sorted(order) == sorted(indexes)
    assert len(set(order)) == 4096 + N_PHB_DRCS + N_PCI_DRCS


# ---------------------------------------------------------------------------
# Device-tree ibm,drc-* arrays


@pytest.mark.parametrize("config", sorted(DT_CONFIGS))
def test_dt_drc_arrays_follow_container_order(config: str) -> None:
    n_slots, vsmt, phb_drcs = DT_CONFIGS[config]
    order = drc_container_order(realize_order(n_slots, vsmt, phb_drcs=phb_drcs))
    nodes = parse_dts_drc_arrays(DATA / f"{config}.dts")
    pci_nodes = [n for n in nodes if n.startswith("/pci@")]
    assert len(pci_nodes) == 1
    for node, kind in (("/", PHB), ("/cpus", CPU), (pci_nodes[0], PCI)):
        props = nodes[node]
        expected = [i for i in order if drc_type(i) == kind]
        assert counted_u32s(props["ibm,drc-indexes"]) == expected, node
        assert counted_strings(props["ibm,drc-names"]) == [
            f"{DRC_NAME_PREFIX[kind]}{i & 0x0FFFFFFF}" for i in expected
        ]
        assert counted_strings(props["ibm,drc-types"]) == [DRC_TYPE_NAME[kind]] * len(expected)
        assert counted_u32s(props["ibm,drc-power-domains"]) == [0xFFFFFFFF] * len(expected)
    if not phb_drcs:
        assert counted_u32s(nodes["/"]["ibm,drc-indexes"]) == []


def test_classic_cpu_order_is_unsorted() -> None:
    """The example quoted in the oracle README."""
    order = drc_container_order(realize_order(4, 1, phb_drcs=True))
    assert [i for i in order if drc_type(i) == CPU] == [
        0x10000003,
        0x10000000,
        0x10000001,
        0x10000002,
    ]


# ---------------------------------------------------------------------------
# Traces: realize order and the reset walk

TRACES = ("hotplug_unplug_p8e.trace", "cmdline_core2_unplug_reset_p8e.trace")


@pytest.mark.parametrize("name", TRACES)
def test_trace_realize_order_is_the_assumed_insertion_order(name: str) -> None:
    realized = [drc_of(rest) for ev, rest in trace_events(DATA / name) if ev == "spapr_drc_realize"]
    assert realized == realize_order(4, 1, phb_drcs=True)


def split_resets(events: Sequence[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """(resets run as part of a plug, resets of machine-reset walks), before the first command."""
    plug_resets, walk = [], []
    previous: tuple[str, str] | None = None
    for ev, rest in events:
        if ev == "spapr_drc_reset":
            index = drc_of(rest)
            if previous and previous[0] == "spapr_drc_attach" and drc_of(previous[1]) == index:
                plug_resets.append(index)
            else:
                walk.append(index)
        previous = (ev, rest)
    return plug_resets, walk


@pytest.mark.parametrize("name", TRACES)
def test_first_machine_reset_walks_the_container(name: str) -> None:
    events = trace_events(DATA / name)
    first_cmd = next(
        i for i, (ev, rest) in enumerate(events) if ev == "handle_qmp_command" and "device_" in rest
    )
    _, walk = split_resets(events[:first_cmd])
    order = drc_container_order(realize_order(4, 1, phb_drcs=True))
    assert walk == drc_reset_order(order, ())
    assert walk == order


def test_system_reset_restarts_walk_after_completing_pending_unplug() -> None:
    events = trace_events(DATA / "cmdline_core2_unplug_reset_p8e.trace")
    start = next(i for i, (ev, rest) in enumerate(events) if "system_reset" in rest)
    end = next(i for i in range(start + 1, len(events)) if events[i][0] == "handle_qmp_command")
    walk = [drc_of(rest) for ev, rest in events[start:end] if ev == "spapr_drc_reset"]
    order = drc_container_order(realize_order(4, 1, phb_drcs=True))
    expected = drc_reset_order(order, {0x10000002})
    assert walk == expected
    assert len(expected) == order.index(0x10000002) + 1 + len(order)


def test_reset_order_without_pending_unplug_is_one_walk() -> None:
    assert drc_reset_order([3, 1, 2], ()) == [3, 1, 2]
    assert drc_reset_order([3, 1, 2], {1, 2}) == [3, 1, 3, 1, 2, 3, 1, 2]


# ---------------------------------------------------------------------------
# qom-list answers

# transcript -> (possible core slots, vsmt, PHB DRCs present)
DRC_CONTAINER_LISTS = {
    "hotplug_unplug_p8e.jsonl": (4, 1, True),
    "hotplug_unplug_p9.jsonl": (4, 1, True),
    "hotplug_unplug_p10.jsonl": (4, 1, True),
    "hotplug_unplug_p8e_vsmt8.jsonl": (4, 8, True),
    "hotplug_unplug_p8e_pseries-2.7.jsonl": (4, 8, False),
}


@pytest.mark.parametrize("name", sorted(DRC_CONTAINER_LISTS))
def test_qom_list_of_dr_connector_container(name: str) -> None:
    n_slots, vsmt, phb_drcs = DRC_CONTAINER_LISTS[name]
    indexes = realize_order(n_slots, vsmt, phb_drcs=phb_drcs)
    links = table(*(drc_link_name(i) for i in indexes))
    # The `container` type adds no class properties; `object` adds "type".
    expected = qom_list_order(links, [GHashTableModel(), table(*OBJECT_CLASS)])
    (answer,) = qom_lists(DATA / name, "/dr-connector")
    assert answer == expected
    assert answer[0] == "type"
    assert [int(n, 16) for n in answer[:0:-1]] == drc_container_order(indexes)


def test_qom_list_of_machine() -> None:
    """Instance table in the order QEMU 7.2's source adds the properties, then class tables."""
    instance = (
        # machine_initfn
        ["peripheral", "peripheral-anon", "nvdimm", "nvdimm-persistence", "hmat"]
        # spapr_instance_init
        + ["kvm-type", "modern-hotplug-events", "max-cpu-compat", "resize-hpt", "vsmt"]
        + ["vfio-no-msix-emulation", "kernel-addr", "x-vof", "ic-mode", "host-model"]
        + ["host-serial"]
        # qemu_create_machine, then spapr_machine_init: irq, CPU DRCs, RTC, PHB DRCs, watchdogs
        + ["unattached", "ics"]
        + [f"dr-connector[{CPU | i}]" for i in range(4)]
        + ["rtc", "rtc-time"]
        + [f"dr-connector[{PHB | i}]" for i in range(N_PHB_DRCS)]
        + [f"wdt{i}" for i in range(1, 5)]
    )
    caps = ["htm", "vsx", "dfp", "cfpc", "sbbc", "ibs", "hpt-max-page-size", "nested-hv"]
    caps += ["large-decr", "ccf-assist", "fwnmi", "rpt-invalidate"]
    machine_class = ["kernel", "initrd", "append", "dtb", "dumpdtb", "boot", "smp"]
    machine_class += ["phandle-start", "dt-compatible", "dump-guest-core", "mem-merge", "usb"]
    machine_class += ["graphics", "firmware", "suppress-vmdesc", "confidential-guest-support"]
    machine_class += ["memory-encryption", "memory-backend", "memory"]
    chain = [
        GHashTableModel(),  # pseries-7.2-machine
        table(*(f"cap-{c}" for c in caps)),  # spapr-machine
        table(*machine_class),  # machine
        table(*OBJECT_CLASS),
    ]
    (answer,) = qom_lists(DATA / "hotplug_unplug_p8e.jsonl", "/machine")
    assert answer == qom_list_order(table(*instance), chain)


def test_qom_list_of_machine_unattached() -> None:
    instance = table("sysbus", "system[0]", "io[0]", *(f"device[{i}]" for i in range(5)))
    (answer,) = qom_lists(DATA / "hotplug_unplug_p8e.jsonl", "/machine/unattached")
    assert answer == qom_list_order(instance, [GHashTableModel(), table(*OBJECT_CLASS)])


def drc_object_chain() -> list[GHashTableModel]:
    # spapr-drc-cpu, spapr-drc-logical, spapr-drc add no class properties.
    empty = GHashTableModel()
    return [empty, empty, empty, table(*DEVICE_CLASS), table(*OBJECT_CLASS)]


@pytest.mark.parametrize(
    ("name", "qom_path"),
    [("hotplug_unplug_p8e.jsonl", f"/machine/dr-connector[{CPU | i}]") for i in range(4)]
    + [("cmdline_core2_p8e.jsonl", f"/machine/dr-connector[{CPU | 2}]")],
)
def test_qom_list_of_cpu_drc_objects(name: str, qom_path: str) -> None:
    """Instance table: id, index, fdt (instance_init), then device while a core is attached."""
    answers = qom_lists(DATA / name, qom_path)
    assert answers
    for answer in answers:
        instance = table("id", "index", "fdt")
        if "device" in answer:
            instance.insert("device")
        assert answer == qom_list_order(instance, drc_object_chain())
    # After a detach the link is deleted again and the order returns to the plain one.
    detached = table("id", "index", "fdt", "device")
    detached.remove("device")
    assert qom_list_order(detached, drc_object_chain()) == qom_list_order(
        table("id", "index", "fdt"), drc_object_chain()
    )


def test_qom_list_of_core_and_thread() -> None:
    transcript = DATA / "hotplug_unplug_p8e.jsonl"
    empty = GHashTableModel()
    core_chain = [
        empty,  # power8e_v2.1-spapr-cpu-core
        table("node-id", "pre-3.0-migration"),  # spapr-cpu-core qdev properties
        table("core-id", "nr-threads"),  # cpu-core
        table(*DEVICE_CLASS),
        table(*OBJECT_CLASS),
    ]
    (core,) = qom_lists(transcript, "/machine/peripheral/core2")
    assert core == qom_list_order(table("thread[0]"), core_chain)
    thread_chain = [
        empty,  # power8e_v2.1-powerpc64-cpu
        empty,  # POWER8 family
        table("pre-2.8-migration", "pre-2.10-migration", "pre-3.0-migration"),
        # cpu: qdev link "memory" (with its "legacy-memory" twin), "start-powered-off"
        table("legacy-memory", "memory", "start-powered-off"),
        table(*DEVICE_CLASS),
        table(*OBJECT_CLASS),
    ]
    (thread,) = qom_lists(transcript, "/machine/peripheral/core2/thread[0]")
    assert thread == qom_list_order(table("unnamed-gpio-in[0]", "icp"), thread_chain)


def test_property_iteration_is_instance_then_classes() -> None:
    instance, klass = table("a"), table("b", "c")
    order = property_iteration_order(instance, [klass])
    assert order[0] == "a" and set(order[1:]) == {"b", "c"}
    assert qom_list_order(instance, [klass]) == order[::-1]
