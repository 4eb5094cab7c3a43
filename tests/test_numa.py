"""``-numa`` and memory backends: nodes, slot mapping and QEMU 7.2's texts.

The oracle's NUMA refusals are checked end to end in test_config; here the
pieces are exercised directly, with texts and orders observed on QEMU 7.2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from machine.config.cmdline import StartupError, parse_argv
from machine.config.numa import (
    MemoryBackend,
    NumaCpuOption,
    NumaDistOption,
    NumaNodeOption,
    NumaState,
    parse_memory_backend,
    read_numa_option,
)
from machine.config.qemu_opts import OptsList, QemuWarning, parse_qemu_opts
from machine.config.startup import startup
from spapr.errors import QemuError

DATA = Path(__file__).parent / "data"
CMDLINE = {c["case"]: c for c in json.loads((DATA / "errors" / "cmdline.json").read_text())}
MIB = 1 << 20
NUMA = OptsList("numa", implied="type")
OBJECT = OptsList("object", implied="qom-type")


def numa_option(text: str) -> NumaNodeOption | NumaCpuOption | NumaDistOption:
    opts, _ = parse_qemu_opts(NUMA, text, location=f"-numa {text}")
    return read_numa_option(opts)


def state(max_cpus: int = 4, threads: int = 1, cores: int = 4, mem_ok: bool = False) -> NumaState:
    return NumaState(
        max_cpus=max_cpus,
        threads=threads,
        cores=cores,
        slot_count=max_cpus // threads,
        ensure_slots=lambda location: None,
        numa_mem_supported=mem_ok,
    )


BACKENDS = {
    "m0": MemoryBackend("m0", 512 * MIB, None),
    "m1": MemoryBackend("m1", 512 * MIB, None),
}


def test_repeated_cpus_and_ranges() -> None:
    option = numa_option("node,nodeid=1,cpus=0,cpus=2-3,memdev=m0")
    assert isinstance(option, NumaNodeOption)
    assert option.cpus == (0, 2, 3)
    assert option.nodeid == 1 and option.memdev == "m0"


def test_legacy_cpus_mapping_matches_oracle_config() -> None:
    numa = state()
    warnings: list[QemuWarning] = []
    for text in ("node,nodeid=0,cpus=0,cpus=2,memdev=m0", "node,nodeid=1,cpus=1,cpus=3,memdev=m1"):
        numa.apply(numa_option(text), BACKENDS, warnings)
    numa.complete(1 << 30)
    assert numa.finish_cpu_init(warnings) == (0, 1, 0, 1)
    assert warnings == []
    assert numa.node_memory() == (512 * MIB, 512 * MIB)


def test_legacy_cpus_are_thread_indexes() -> None:
    # With 4 threads per core, cpu_index 4..7 is the second core (core-id 4).
    numa = state(max_cpus=8, threads=4, cores=2)
    warnings: list[QemuWarning] = []
    numa.apply(numa_option("node,cpus=0-3,memdev=m0"), BACKENDS, warnings)
    numa.apply(numa_option("node,cpus=4-7,memdev=m1"), BACKENDS, warnings)
    numa.complete(1 << 30)
    assert numa.finish_cpu_init(warnings) == (0, 1)


def test_threads_of_one_core_on_two_nodes_conflict() -> None:
    numa = state(max_cpus=8, threads=4, cores=2)
    numa.apply(numa_option("node,cpus=0,memdev=m0"), BACKENDS, [])
    with pytest.raises(QemuError) as info:
        numa.apply(numa_option("node,cpus=1,memdev=m1"), BACKENDS, [])
    assert info.value.message == "CPU is already assigned to node-id: 0"
    assert info.value.location == "-numa node,cpus=1,memdev=m1"


def test_numa_cpu_form() -> None:
    numa = state()
    warnings: list[QemuWarning] = []
    for text in ("node,nodeid=0,memdev=m0", "node,nodeid=1,memdev=m1"):
        numa.apply(numa_option(text), BACKENDS, warnings)
    for core, node in ((0, 0), (1, 1), (2, 0), (3, 1)):
        numa.apply(numa_option(f"cpu,node-id={node},core-id={core}"), BACKENDS, warnings)
    numa.complete(1 << 30)
    assert numa.finish_cpu_init(warnings) == (0, 1, 0, 1)


def test_partial_mapping_warns_and_uses_node_0() -> None:
    case = CMDLINE["NUMA partial cpus= mapping (warning only)"]
    numa = state()
    warnings: list[QemuWarning] = []
    numa.apply(numa_option("node,nodeid=0,cpus=0,memdev=m0"), BACKENDS, warnings)
    numa.apply(numa_option("node,nodeid=1,cpus=1,memdev=m1"), BACKENDS, warnings)
    numa.complete(1 << 30)
    assert numa.finish_cpu_init(warnings) == (0, 1, 0, 0)
    assert [w.report() for w in warnings] == case["stderr"].splitlines()[:2]


def test_default_mapping_is_socket_modulo_nodes() -> None:
    numa = state(max_cpus=8, cores=2)
    for text in ("node,memdev=m0", "node,memdev=m1"):
        numa.apply(numa_option(text), BACKENDS, [])
    numa.complete(1 << 30)
    # slot i -> (i / cores) % nodes
    assert numa.finish_cpu_init([]) == (0, 0, 1, 1, 0, 0, 1, 1)


def test_implicit_node_0() -> None:
    numa = state()
    numa.complete(512 * MIB)
    assert numa.num_nodes == 1
    assert numa.node_memory() == (512 * MIB,)
    assert numa.finish_cpu_init([]) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["node,nodeid=0,cpus=0-4,memdev=m0"], "CPU index (4) should be smaller than maxcpus (4)"),
        (["node,nodeid=0,memdev=m0", "cpu,node-id=1,core-id=7"],
         "Invalid node-id=1, NUMA node must be defined with -numa node,nodeid=ID before it's "
         "used with -numa cpu,node-id=ID"),
        (["node,memdev=m0", "cpu,node-id=0,core-id=7"], "no match found"),
        (["node,memdev=m0", "cpu,node-id=0,socket-id=0"], "socket-id is not supported"),
        (["node,memdev=m0", "cpu,node-id=0,thread-id=0"], "thread-id is not supported"),
        (["cpu,core-id=1"], "Missing mandatory node-id property"),
        (["node,nodeid=0", "node,nodeid=0"], "Duplicate NUMA nodeid: 0"),
        (["node,nodeid=128"], "Max number of NUMA nodes reached: 128"),
        (["node,memdev=m9"], "memdev=m9 is ambiguous"),
        (["node,mem=1G"], "Parameter -numa node,mem is not supported by this machine type\n"
         "Use -numa node,memdev instead"),
        (["node,cpus=70000"], "Parameter 'null' expects uint16_t"),
        (["node,cpus=3-1"], "Parameter 'cpus' expects a uint64 value or range"),
        (["node,nodeid=x"], "Parameter 'nodeid' expects a uint64 value"),
        (["foo"], "Parameter 'type' does not accept value 'foo'"),
        (["nodeid=0"], "Parameter 'type' is missing"),
        (["node,foo=1"], "Invalid parameter 'foo'"),
        (["cpu,node-id=0,core-id=x"], "Parameter 'core-id' expects an int64 value"),
        (["node", "node", "dist,src=0,dst=1,val=5"],
         "NUMA distance (5) is invalid, it shouldn't be less than 10."),
        (["node", "dist,src=0,dst=0,val=11"], "Local distance of node 0 should be 10."),
        (["node", "dist,src=0,dst=3,val=20"],
         "Source/Destination NUMA node is missing. Please use '-numa node' option to declare it "
         "first."),
    ],
)  # fmt: skip
def test_option_refusals(options: list[str], message: str) -> None:
    numa = state()
    with pytest.raises(QemuError) as info:
        for text in options:
            numa.apply(numa_option(text), BACKENDS, [])
    assert info.value.message == message
    assert info.value.location == f"-numa {options[-1]}"


@pytest.mark.parametrize(
    ("options", "ram", "message"),
    [
        (["node,nodeid=1,memdev=m0"], 512 * MIB, "numa: Node ID missing: 0"),
        (["node,nodeid=0,cpus=0-3"], 1 << 30,
         "total memory for NUMA nodes (0x0) should equal RAM size (0x40000000)"),
        (["node,memdev=m0", "node,memdev=m1", "node,memdev=m0"], 1536 * MIB,
         "The distance between node 0 and 1 is missing, at least one distance value between "
         "each nodes should be provided."),
    ],
)  # fmt: skip
def test_completion_refusals(options: list[str], ram: int, message: str) -> None:
    numa = state()
    for text in options:
        numa.apply(numa_option(text), BACKENDS, [])
    if len(options) == 3:
        numa.apply(numa_option("dist,src=0,dst=2,val=20"), BACKENDS, [])
    with pytest.raises(QemuError) as info:
        numa.complete(ram)
    assert info.value.message == message
    assert info.value.location is None


def test_distances_are_completed_symmetrically() -> None:
    numa = state()
    numa.apply(numa_option("node,memdev=m0"), BACKENDS, [])
    numa.apply(numa_option("node,memdev=m1"), BACKENDS, [])
    numa.apply(numa_option("dist,src=0,dst=1,val=20"), BACKENDS, [])
    numa.complete(1 << 30)
    assert numa.distance_table() == ((10, 20), (20, 10))


def test_legacy_mem_on_old_machines() -> None:
    numa = state(mem_ok=True)
    warnings: list[QemuWarning] = []
    numa.apply(numa_option("node,mem=512"), BACKENDS, warnings)
    assert numa.node_memory() == (512 * MIB,)  # suffix-less means MiB
    assert warnings[0].message == (
        "Parameter -numa node,mem is deprecated, use -numa node,memdev instead"
    )


def test_node0_size_for_rma() -> None:
    numa = state()
    numa.apply(numa_option("node,memdev=m0"), {"m0": MemoryBackend("m0", 384 * MIB, None)}, [])
    # The first node with memory, rounded down to a power of two.
    assert numa.node0_size(1 << 30) == 256 * MIB


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("memory-backend-ram,id=m0", "Parameter 'size' is missing"),
        ("memory-backend-ram,size=1G", "Parameter 'id' is missing"),
        ("foo,id=x", "Parameter 'qom-type' does not accept value 'foo'"),
        ("memory-backend-ram,id=m0,size=1x", "Parameter 'size' expects a size value"),
        ("memory-backend-ram,id=m0,size=1G,bar=1", "Invalid parameter 'bar'"),
        ("id=m0", "Parameter 'qom-type' is missing"),
    ],
)
def test_memory_backend_refusals(text: str, message: str) -> None:
    opts, _ = parse_qemu_opts(OBJECT, text, location=f"-object {text}")
    with pytest.raises(QemuError) as info:
        parse_memory_backend(opts)
    assert info.value.message == message
    assert info.value.location == f"-object {text}"


def test_memory_backend_values() -> None:
    opts, _ = parse_qemu_opts(OBJECT, "memory-backend-ram,id=m0,size=512M,prealloc=on")
    backend = parse_memory_backend(opts)
    assert (backend.id, backend.size, backend.prealloc) == ("m0", 512 * MIB, True)


def test_node_ids_reach_the_topology() -> None:
    argv = [
        "-smp", "2,cores=4,threads=1,maxcpus=4",
        "-object", "memory-backend-ram,id=m0,size=512M",
        "-object", "memory-backend-ram,id=m1,size=512M",
        "-numa", "node,nodeid=0,memdev=m0", "-numa", "node,nodeid=1,memdev=m1",
        "-numa", "cpu,node-id=1,core-id=0", "-m", "1G",
    ]  # fmt: skip
    setup = startup(parse_argv(argv))
    assert setup.topology.num_nodes == 2
    assert setup.topology.slot_nodes == (1, 0, 0, 0)
    assert setup.numa_node_mem == (512 * MIB, 512 * MIB)
    assert [w.message.split(":")[0] for w in setup.warnings][:1] == [
        "CPU(s) not present in any NUMA nodes"
    ]


def test_core_lookup_failure_names_the_numa_option() -> None:
    with pytest.raises(StartupError) as info:
        startup(parse_argv(["-cpu", "7400", "-numa", "node,cpus=0"]))
    assert info.value.report() == (
        "qemu-system-ppc64: -numa node,cpus=0: Unable to find sPAPR CPU Core definition"
    )
