"""vCPU ids, core slots, node ids and CPU DRC indexes against QEMU 7.2's outputs.

For every accepted dumpdtb configuration of the oracle the model's topology must
give the ``/cpus`` ``ibm,drc-indexes``, the boot CPU nodes' ``reg`` and
``ibm,chip-id`` of the device tree, and the slots of ``query-hotpluggable-cpus``.
The vsmt=8, pseries-2.7 and KVM SMT cases are also checked against the formulas of
protocol.md §1.3-1.4 written out independently here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from machine.config.cmdline import StartupError, parse_argv
from machine.config.machine_types import find_machine
from machine.config.startup import startup
from machine.config.topology import Topology, cpu_drc_index, default_vsmt

DATA = Path(__file__).parent / "data"
TOPO = DATA / "topology"
MANIFEST = json.loads((DATA / "manifest.json").read_text())["files"]
CONFIGS = sorted(p.stem for p in TOPO.glob("*.dts"))


def setup_for(name: str) -> tuple[Topology, list[int]]:
    """The model's topology for an oracle config, and the core-ids given with -device."""
    argv = MANIFEST[f"dtb/{name}.dtb"]["argv"][1:]
    extra: list[int] = []
    while "-device" in argv:
        i = argv.index("-device")
        extra.append(int(re.search(r"core-id=(\d+)", argv[i + 1]).group(1)))  # type: ignore[union-attr]
        argv = argv[:i] + argv[i + 2 :]
    return startup(parse_argv(argv)).topology, extra


def cells(text: str) -> list[int]:
    return [int(x, 16) for x in re.findall(r"0x([0-9a-f]+)", text)]


def dts_cpus(name: str) -> tuple[list[int], list[dict[str, list[int]]]]:
    """(/cpus ibm,drc-indexes entries, CPU nodes' reg/chip-id/associativity)."""
    text = (TOPO / f"{name}.dts").read_text()
    block = text[text.index("\tcpus {") :]
    block = block[: block.index("\n\t};")]
    head = block[: block.index("PowerPC,")]
    drc = cells(re.search(r"ibm,drc-indexes = <([^>]*)>", head).group(1))  # type: ignore[union-attr]
    nodes = []
    for body in re.split(r"\n\t\tPowerPC,[A-Z0-9]+@[0-9a-f]+ \{", block)[1:]:
        props = {}
        for prop in ("reg", "ibm,chip-id", "ibm,associativity"):
            match = re.search(rf"\t{re.escape(prop)} = <([^>]*)>", body)
            if match:
                props[prop] = cells(match.group(1))
        nodes.append(props)
    return drc[1:], nodes


def hotpluggable_cpus(name: str) -> list[dict]:
    path = TOPO / f"query_{name}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for i, line in enumerate(lines):
        if line["msg"].get("execute") == "query-hotpluggable-cpus":
            return lines[i + 1]["msg"]["return"]  # type: ignore[no-any-return]
    raise AssertionError("no query-hotpluggable-cpus in transcript")


@pytest.mark.parametrize("name", CONFIGS)
def test_drc_indexes_match_device_tree(name: str) -> None:
    topology, _ = setup_for(name)
    drc, _ = dts_cpus(name)
    assert sorted(topology.cpu_drc_indexes()) == sorted(drc)
    assert len(drc) == topology.slot_count


@pytest.mark.parametrize("name", CONFIGS)
def test_boot_cpu_nodes_match_device_tree(name: str) -> None:
    topology, extra = setup_for(name)
    _, nodes = dts_cpus(name)
    core_ids = [i * topology.threads for i in range(topology.boot_cores)] + extra
    expected = sorted(
        (topology.vcpu_id(core_id), topology.chip_id(core_id)) for core_id in core_ids
    )
    got = sorted((n["reg"][0], n["ibm,chip-id"][0]) for n in nodes)
    assert got == expected
    if topology.num_nodes > 1:
        for node in nodes:
            core_id = topology.cpu_index_of_vcpu(node["reg"][0])
            assert core_id is not None
            assert node["ibm,associativity"][-2] == topology.node_of_core(core_id)


@pytest.mark.parametrize("name", [n for n in CONFIGS if (TOPO / f"query_{n}.jsonl").exists()])
def test_slots_match_query_hotpluggable_cpus(name: str) -> None:
    topology, _ = setup_for(name)
    listed = {
        (e["props"]["core-id"], e["props"]["node-id"], e["vcpus-count"], e["type"])
        for e in hotpluggable_cpus(name)
    }
    model = {(s.core_id, s.node_id, s.vcpus_count, s.type) for s in topology.slots}
    assert model == listed


@pytest.mark.parametrize("name", ["p8e_smt4", "p9_smt8"])
def test_failed_configs_are_refused(name: str) -> None:
    argv = MANIFEST[f"dtb/{name}.FAILED.txt"]["argv"][1:]
    expected = (TOPO / f"{name}.FAILED.txt").read_text()
    with pytest.raises(StartupError) as info:
        startup(parse_argv(argv))
    assert info.value.report() in expected


def test_vsmt8_spacing() -> None:
    topology, _ = setup_for("p8e_vsmt8")
    assert topology.vsmt == 8
    # vcpu_id = core * vsmt + thread (threads = 1): 0, 8, 16, 24.
    assert [topology.vcpu_id(i) for i in range(4)] == [0, 8, 16, 24]
    assert topology.cpu_drc_indexes() == (0x10000000, 0x10000008, 0x10000010, 0x10000018)
    assert topology.max_server_number == 32


def test_pseries_2_7_uses_vsmt_8_and_qom_ids() -> None:
    topology, _ = setup_for("p8e_pseries-2.7")
    assert topology.vsmt == max(8, topology.threads) == 8
    lines = [json.loads(x) for x in (TOPO / "hotplug_unplug_p8e_pseries-2.7.jsonl").open()]
    ids: dict[int, int] = {}
    for i, line in enumerate(lines):
        args = line["msg"].get("arguments", {})
        if line["msg"].get("execute") == "qom-get" and args.get("property") == "id":
            index = int(re.search(r"\[(\d+)\]", args["path"]).group(1))  # type: ignore[union-attr]
            ids[index] = lines[i + 1]["msg"]["return"]
    assert ids == {
        topology.drc_index(s.core_id): topology.drc_id(s.core_id) for s in topology.slots
    }


def test_default_vsmt_rule_per_version() -> None:
    assert default_vsmt(find_machine("pseries-4.2"), 2) == 2
    assert default_vsmt(find_machine("pseries-4.1"), 2) == 8
    assert default_vsmt(find_machine("pseries-4.1"), 16) == 16


def test_cpu_drc_index_encoding() -> None:
    assert cpu_drc_index(0) == 0x10000000
    assert cpu_drc_index(8) == 0x10000008
    assert cpu_drc_index(0x0FFFFFFF) == 0x1FFFFFFF


def test_maxcpus_4096_accepted_4097_refused() -> None:
    topology = startup(parse_argv(["-smp", "1,cores=4096,threads=1,maxcpus=4096"])).topology
    assert topology.slot_count == 4096
    assert topology.cpu_drc_indexes()[-1] == 0x10000000 + 4095
    with pytest.raises(StartupError) as info:
        startup(parse_argv(["-smp", "1,cores=4097,threads=1,maxcpus=4097"]))
    assert info.value.message == (
        "Invalid SMP CPUs 4097. The max CPUs supported by machine 'pseries-7.2' is 4096"
    )


@pytest.mark.parametrize(
    ("argv", "core_ids", "vcpu_ids"),
    [
        (["-enable-kvm", "-cpu", "host", "-smp", "4,cores=4,threads=4,maxcpus=16"],
         [0, 4, 8, 12], [0, 4, 8, 12]),
        (["-accel", "kvm", "-smp", "8,maxcpus=32,threads=8"], [0, 8, 16, 24], [0, 8, 16, 24]),
        (["-enable-kvm", "-smp", "4,maxcpus=16,threads=4", "-M", "vsmt=8"],
         [0, 4, 8, 12], [0, 8, 16, 24]),
        (["-enable-kvm", "-smp", "2,maxcpus=8,threads=2"], [0, 2, 4, 6], [0, 2, 4, 6]),
        (["-enable-kvm", "-host-cpu", "POWER8", "-smp", "8,threads=8"], [0], [0]),
        (["-M", "pseries-4.1,accel=kvm", "-smp", "2,maxcpus=8,threads=2"],
         [0, 2, 4, 6], [0, 8, 16, 24]),
    ],
)  # fmt: skip
def test_kvm_smt_configs(argv: list[str], core_ids: list[int], vcpu_ids: list[int]) -> None:
    setup = startup(parse_argv(argv))
    topology = setup.topology
    assert [s.core_id for s in topology.slots] == core_ids
    assert [topology.vcpu_id(c) for c in core_ids] == vcpu_ids
    assert topology.cpu_drc_indexes() == tuple(0x10000000 + v for v in vcpu_ids)
    assert topology.core_type == "host-spapr-cpu-core"
    assert setup.cpu.cpu_type == "host-powerpc64-cpu"


def test_kvm_thread_ids_inside_a_core() -> None:
    topology = startup(
        parse_argv(["-enable-kvm", "-smp", "4,maxcpus=16,threads=4", "-M", "vsmt=8"])
    ).topology
    assert [topology.vcpu_id(i) for i in range(8)] == [0, 1, 2, 3, 8, 9, 10, 11]
    assert topology.is_thread0(8) and not topology.is_thread0(9)
    assert topology.cpu_index_of_vcpu(9) == 5
    assert topology.cpu_index_of_vcpu(12) is None


def test_kvm_vsmt_on_power9_host_may_be_changed() -> None:
    # POWER9 hosts start in SMT4 but emulate any VSMT mode up to 8.
    setup = startup(parse_argv(["-enable-kvm", "-smp", "8,threads=8"]))
    assert setup.topology.vsmt == 8
    assert setup.warnings == ()


def test_kvm_vsmt_failure_is_a_warning_when_host_mode_suffices() -> None:
    # POWER8 hosts cannot go above SMT8, but SMT8 already holds 8 threads and 16 % 8 == 0.
    argv = ["-enable-kvm", "-host-cpu", "POWER8", "-smp", "8,threads=8", "-M", "vsmt=16"]
    setup = startup(parse_argv(argv))
    assert [w.message for w in setup.warnings] == [
        "Failed to set KVM's VSMT mode to 16 (errno -22)"
    ]
    assert setup.topology.vsmt == 16


def test_kvm_vsmt_refused_for_user_mode() -> None:
    argv = ["-enable-kvm", "-host-cpu", "POWER8", "-smp", "4,threads=4", "-M", "vsmt=12"]
    with pytest.raises(StartupError) as info:
        startup(parse_argv(argv))
    assert info.value.message == (
        "Failed to set KVM's VSMT mode to 12 (errno -22)\nAvailable VSMT modes: 8 4 2 1."
    )


def test_kvm_vsmt_default_refused_with_hint() -> None:
    # A POWER7 host runs SMT4 "strictly": SMT8 guests cannot get VSMT 8.
    argv = ["-enable-kvm", "-host-cpu", "POWER7", "-smp", "8,threads=8"]
    with pytest.raises(StartupError) as info:
        startup(parse_argv(argv))
    assert info.value.message.splitlines() == [
        "Failed to set KVM's VSMT mode to 8 (errno -22)",
        "On PPC, a VM with 8 threads/core on a host with 4 threads/core requires the use of "
        "VSMT mode 8.",
        "Available VSMT modes: 4 2 1.",
    ]


def test_kvm_family_alias_redirects_to_host() -> None:
    setup = startup(parse_argv(["-enable-kvm", "-cpu", "POWER9"]))
    assert setup.cpu.is_host and setup.core_type == "host-spapr-cpu-core"
    setup = startup(parse_argv(["-enable-kvm", "-host-cpu", "POWER8E", "-cpu", "power8"]))
    assert setup.cpu.is_host
    assert setup.cpu.model is not None and setup.cpu.model.cpu_type == "power8e_v2.1"


def test_tcg_refuses_cpu_host() -> None:
    with pytest.raises(StartupError) as info:
        startup(parse_argv(["-cpu", "host"]))
    assert info.value.message == "unable to find CPU model 'host'"


def test_pre_2_7_has_no_cpu_drcs_and_boot_slots_only() -> None:
    topology = startup(parse_argv(["-M", "pseries-2.6,cap-htm=off", "-smp", "3"])).topology
    assert topology.cpu_drc_indexes() == ()
    assert topology.slot_count == topology.boot_cores == 3


def test_default_node_mapping_uses_sockets() -> None:
    argv = [
        "-smp", "2,sockets=2,cores=2,maxcpus=4",
        "-object", "memory-backend-ram,id=m0,size=256M",
        "-object", "memory-backend-ram,id=m1,size=256M",
        "-numa", "node,memdev=m0", "-numa", "node,memdev=m1",
    ]  # fmt: skip
    topology = startup(parse_argv(argv)).topology
    # node = slot / cores_per_socket % nodes
    assert topology.slot_nodes == (0, 0, 1, 1)
    assert [topology.chip_id(i) for i in range(4)] == [0, 0, 1, 1]


@given(
    threads_log=st.integers(0, 3),
    cores=st.integers(1, 16),
    sockets=st.integers(1, 4),
    vsmt_extra=st.integers(0, 2),
)
def test_vcpu_id_map_is_injective_and_matches_formula(
    threads_log: int, cores: int, sockets: int, vsmt_extra: int
) -> None:
    threads = 1 << threads_log
    vsmt = threads << vsmt_extra
    assume(vsmt <= 8)  # KVM-HV's largest VSMT mode
    maxcpus = sockets * cores * threads
    argv = ["-enable-kvm", "-host-cpu", "POWER9", "-M", f"vsmt={vsmt}",
            "-smp", f"{threads},sockets={sockets},cores={cores},threads={threads}"
            f",maxcpus={maxcpus}"]  # fmt: skip
    topology = startup(parse_argv(argv)).topology
    ids = [topology.vcpu_id(i) for i in range(maxcpus)]
    assert len(set(ids)) == maxcpus
    assert ids == [i // threads * vsmt + i % threads for i in range(maxcpus)]
    assert all(topology.cpu_index_of_vcpu(v) == i for i, v in enumerate(ids))
    assert all(topology.slot_index(s.core_id) == s.index for s in topology.slots)
    assert len(set(topology.cpu_drc_indexes())) == topology.slot_count == maxcpus // threads
