"""The machine's flattened device tree, built the way QEMU 7.2's spapr_build_fdt builds it.

Nodes and properties are created in QEMU's order with libfdt semantics (a new
property or subnode goes to the front), so the result has QEMU's layout: the root
properties, ``/interrupt-controller``, memory nodes, ``/cpus`` with one node per
virtual core and the CPU DRC arrays, the root DRC arrays, ``/event-sources``,
``/rtas`` with every registered token, and ``/chosen``. PCI, VIO and NVRAM nodes are
not modelled (they play no part in CPU hotplug).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from fdt import DeviceTree, Node, Property
from machine.config.machine_types import SPAPR_MEMORY_BLOCK_SIZE
from rtas.codes import RTAS_ERROR_LOG_MAX, RTAS_EVENT_SCAN_RATE
from spapr.cpu_core import SpaprCpuCore
from spapr.cpu_models import IsaLevel, compat_by_pvr
from spapr.cpu_node import CpuNodeEnv, build_cpu_node
from spapr.drc import DrcArrays, DrcTable, DrcType
from spapr.events import EventQueue
from spapr.ovec import OV5_FORM2_AFFINITY, OptionVector
from spapr.xive import (
    EQ_SIZES,
    HV_PRIO,
    SPAPR_IRQ_IPI,
    SPAPR_XIVE_TM_BASE,
    TM_OS_PAGE,
    TM_SHIFT,
    TM_USER_PAGE,
)

#: phandle QEMU gives the interrupt controller (PHANDLE_INTC).
PHANDLE_INTC = 0x1111
#: ``vm,uuid`` without ``-uuid`` (QEMU prints its all-zero qemu_uuid).
NULL_UUID = "00000000-0000-0000-0000-000000000000"
#: /chosen graphic defaults (qemu,graphic-*).
GRAPHIC_WIDTH, GRAPHIC_HEIGHT, GRAPHIC_DEPTH = 800, 600, 32
#: SPAPR_OV5_XIVE_* values of ibm,arch-vec-5-platform-support byte 23.
OV5_PLATFORM_XICS, OV5_PLATFORM_XIVE, OV5_PLATFORM_BOTH = 0x00, 0x40, 0x80


@attrs.frozen
class DeviceTreeConfig:
    """Machine-wide inputs of the tree that do not change while the machine runs."""

    max_cpus: int
    smp_threads: int
    has_hotpluggable_cpus: bool
    ram_size: int
    rma_size: int
    #: (node id, memory bytes) for every NUMA node, in node order.
    numa_nodes: tuple[tuple[int, int], ...]
    max_server_number: int
    xics: bool = True
    xive: bool = False
    #: The CPU (with its max compat) is ISA 3.00 or later: radix MMU offered.
    isa_3_00: bool = False
    kvm: bool = False
    dr_phb_enabled: bool = True
    dr_lmb_enabled: bool = True
    nvdimm_supported: bool = True
    linux_pci_probe: bool = True
    pre_5_2_numa_associativity: bool = False
    pre_5_1_assoc_refpoints: bool = False
    cap_rpt_invalidate: bool = False
    resize_hpt: bool = True
    #: ``-uuid`` as QEMU prints it (lower case), the null UUID when none was given.
    vm_uuid: str = NULL_UUID
    #: ``-uuid`` was given: QEMU writes it as ``system-id`` too.
    system_id: bool = False
    vm_name: str | None = None


@attrs.frozen
class DeviceTreeState:
    """The parts of the machine the tree reflects at the moment it is built."""

    cores: Sequence[SpaprCpuCore]
    drcs: DrcTable
    events: EventQueue
    rtas_services: Sequence[tuple[int, str]]
    node_env: CpuNodeEnv
    ov5_cas: OptionVector
    #: The boot CPU's compat PVR (0 before CAS unless max-cpu-compat forces one).
    compat_pvr: int
    rng_seed: Callable[[int], bytes]
    drc_index_of_core: Callable[[SpaprCpuCore], int | None]
    #: XIVE is the active controller: its node's name (else XICS's node, if any).
    xive_node: str | None = None


def _set_drc_arrays(node: Node, arrays: DrcArrays) -> None:
    node.set_property(Property.bytes("ibm,drc-indexes", arrays.indexes))
    node.set_property(Property.bytes("ibm,drc-power-domains", arrays.power_domains))
    node.set_property(Property.bytes("ibm,drc-names", arrays.names))
    node.set_property(Property.bytes("ibm,drc-types", arrays.types))


def _interrupt_controller(config: DeviceTreeConfig) -> Node:
    """spapr_dt_xics: the XICS presentation controller node."""
    node = Node("interrupt-controller")
    node.set_property(Property.string("device_type", "PowerPC-External-Interrupt-Presentation"))
    node.set_property(Property.string("compatible", "IBM,ppc-xicp"))
    node.set_property(Property.empty("interrupt-controller"))
    node.set_property(Property.cells("ibm,interrupt-server-ranges", 0, config.max_server_number))
    node.set_property(Property.cells("#interrupt-cells", 2))
    node.set_property(Property.cells("linux,phandle", PHANDLE_INTC))
    node.set_property(Property.cells("phandle", PHANDLE_INTC))
    return node


def _xive_controller(root: Node, config: DeviceTreeConfig, name: str) -> Node:
    """spapr_xive_dt: the XIVE presenter node, and the priorities the hypervisor keeps."""
    node = Node(name)
    user_page = SPAPR_XIVE_TM_BASE + (TM_USER_PAGE << TM_SHIFT)
    os_page = SPAPR_XIVE_TM_BASE + (TM_OS_PAGE << TM_SHIFT)
    node.set_property(Property.string("device_type", "power-ivpe"))
    node.set_property(Property.u64("reg", user_page, 1 << TM_SHIFT, os_page, 1 << TM_SHIFT))
    node.set_property(Property.string("compatible", "ibm,power-ivpe"))
    node.set_property(Property.cells("ibm,xive-eq-sizes", *EQ_SIZES))
    node.set_property(
        Property.cells(
            "ibm,xive-lisn-ranges", SPAPR_IRQ_IPI, SPAPR_IRQ_IPI + config.max_server_number
        )
    )
    node.set_property(Property.empty("interrupt-controller"))
    node.set_property(Property.cells("#interrupt-cells", 2))
    node.set_property(Property.cells("linux,phandle", PHANDLE_INTC))
    node.set_property(Property.cells("phandle", PHANDLE_INTC))
    root.set_property(Property.cells("ibm,plat-res-int-priorities", HV_PRIO, 0xFF - HV_PRIO))
    return node


def _memory_associativity(ov5: OptionVector, node_id: int) -> tuple[int, ...]:
    """ibm,associativity of a memory node: FORM1 {4, 0, 0, 0, node} or FORM2 {1, node}."""
    if ov5.test(OV5_FORM2_AFFINITY):
        return (1, node_id)
    return (4, 0, 0, 0, node_id)


def _memory_nodes(root: Node, config: DeviceTreeConfig, ov5: OptionVector) -> None:
    """spapr_dt_memory: the RMA first, then power-of-two aligned chunks per node."""
    start = 0
    for node_id, node_mem in config.numa_nodes:
        if not node_mem:
            continue
        if start >= config.ram_size:
            size = 0
        else:
            size = min(node_mem, config.ram_size - start)
        chunks: list[tuple[int, int]] = []
        if not start:
            chunks.append((0, config.rma_size))
            start += config.rma_size
            size -= config.rma_size
        while size > 0:
            chunk = 1 << (size.bit_length() - 1)
            alignment = start & -start
            if alignment and alignment < chunk:
                chunk = alignment
            chunks.append((start, chunk))
            size -= chunk
            start += chunk
        for base, length in chunks:
            mem = Node(f"memory@{base:x}")
            mem.set_property(Property.string("device_type", "memory"))
            mem.set_property(Property.u64("reg", base, length))
            mem.set_property(
                Property.cells("ibm,associativity", *_memory_associativity(ov5, node_id))
            )
            root.add_subnode(mem)


def _cpus_node(config: DeviceTreeConfig, state: DeviceTreeState) -> Node:
    """spapr_dt_cpus: one node per thread-0 of a virtual core, in creation order."""
    cpus = Node("cpus")
    cpus.set_property(Property.cells("#address-cells", 1))
    cpus.set_property(Property.cells("#size-cells", 0))
    for core in reversed(list(state.cores)):
        thread0 = core.threads[0]
        cpus.add_subnode(
            build_cpu_node(
                core.model,
                state.node_env,
                vcpu_id=thread0.vcpu_id,
                cpu_index=thread0.cpu_index,
                node_id=thread0.node_id,
                drc_index=state.drc_index_of_core(core),
                nr_threads=core.nr_threads,
                compat_pvr=thread0.compat_pvr,
            )
        )
    return cpus


def _event_sources(events: EventQueue) -> Node:
    """spapr_dt_events: one child per enabled class, then the ranges."""
    node = Node("event-sources")
    ranges: list[int] = []
    for source in events.sources():
        child = Node(source.event_class.node_name)
        child.set_property(Property.cells("interrupts", source.irq, 0))
        node.add_subnode(child)
        ranges += [source.irq, 1]
    node.set_property(Property.empty("interrupt-controller"))
    node.set_property(Property.cells("#interrupt-cells", 2))
    node.set_property(Property.cells("interrupt-ranges", *ranges))
    return node


def _numa_rtas_properties(rtas: Node, config: DeviceTreeConfig, ov5: OptionVector) -> None:
    nodes = len(config.numa_nodes)
    gpu_numa_id = max(1, nodes)
    if ov5.test(OV5_FORM2_AFFINITY):
        rtas.set_property(Property.cells("ibm,associativity-reference-points", 1))
        rtas.set_property(Property.cells("ibm,max-associativity-domains", 1, nodes))
        lookup = [nodes, *range(nodes)]
        rtas.set_property(Property.cells("ibm,numa-lookup-index-table", *lookup))
        distances = bytes(10 if a == b else 20 for a in range(nodes) for b in range(nodes))
        rtas.set_property(
            Property.bytes("ibm,numa-distance-table", len(distances).to_bytes(4, "big") + distances)
        )
        return
    if config.pre_5_2_numa_associativity or nodes <= 1:
        refpoints: tuple[int, ...] = (4, 4, 2)
        legacy = 1 if gpu_numa_id > 1 else 0
        maxdomains: tuple[int, ...] = (4, legacy, legacy, legacy, gpu_numa_id)
        if config.pre_5_1_assoc_refpoints:
            refpoints = refpoints[:2]
    else:
        refpoints = (4, 3, 2, 1)
        maxdomains = (4, nodes, nodes, nodes, nodes)
    rtas.set_property(Property.cells("ibm,associativity-reference-points", *refpoints))
    rtas.set_property(Property.cells("ibm,max-associativity-domains", *maxdomains))


def _rtas_node(config: DeviceTreeConfig, state: DeviceTreeState) -> Node:
    """spapr_dt_rtas: hcall lists, NUMA reference points, sizes, tokens."""
    rtas = Node("rtas")
    hypertas = [
        "hcall-pft",
        "hcall-term",
        "hcall-dabr",
        "hcall-interrupt",
        "hcall-tce",
        "hcall-vio",
        "hcall-splpar",
        "hcall-join",
        "hcall-bulk",
        "hcall-set-mode",
        "hcall-sprg0",
        "hcall-copy",
        "hcall-debug",
        "hcall-vphn",
    ]
    if config.cap_rpt_invalidate:
        hypertas.append("hcall-rpt-invalidate")
    hypertas.append("hcall-multi-tce")
    if config.resize_hpt:
        hypertas.append("hcall-hpt-resize")
    hypertas.append("hcall-watchdog")
    rtas.set_property(Property.strings("ibm,hypertas-functions", hypertas))
    rtas.set_property(Property.strings("qemu,hypertas-functions", ["hcall-memop1"]))
    _numa_rtas_properties(rtas, config, state.ov5_cas)
    rtas_size = 20 + RTAS_ERROR_LOG_MAX + config.max_cpus * 8 * 2 + 8
    rtas.set_property(Property.cells("rtas-size", rtas_size))
    rtas.set_property(Property.cells("rtas-error-log-max", RTAS_ERROR_LOG_MAX))
    rtas.set_property(Property.cells("rtas-event-scan-rate", RTAS_EVENT_SCAN_RATE))
    rtas.set_property(Property.empty("ibm,change-msix-capable"))
    rtas.set_property(Property.empty("ibm,extended-os-term"))
    rtas.set_property(
        Property.cells(
            "ibm,lrdr-capacity",
            0,
            0,
            SPAPR_MEMORY_BLOCK_SIZE >> 32,
            SPAPR_MEMORY_BLOCK_SIZE & 0xFFFFFFFF,
            config.max_cpus // config.smp_threads,
        )
    )
    for token, name in sorted(state.rtas_services):
        rtas.set_property(Property.cells(name, token))
    return rtas


def _platform_support(config: DeviceTreeConfig, state: DeviceTreeState) -> bytes:
    """ibm,arch-vec-5-platform-support: interrupt and MMU modes the platform allows."""
    if config.xics and config.xive:
        intc = OV5_PLATFORM_BOTH
    elif config.xive:
        intc = OV5_PLATFORM_XIVE
    else:
        intc = OV5_PLATFORM_XICS
    isa3 = config.isa_3_00
    if state.compat_pvr:
        compat = compat_by_pvr(state.compat_pvr)
        isa3 = compat is not None and compat.isa >= IsaLevel.V3_00
    if not isa3:
        intc, mmu = OV5_PLATFORM_XICS, 0x00
    elif config.kvm:
        mmu = 0x80
    else:
        mmu = 0xC0
    return bytes([23, intc, 24, mmu, 25, 0x00, 26, 0x40])


def _chosen(config: DeviceTreeConfig, state: DeviceTreeState, reset: bool) -> Node:
    """spapr_dt_chosen (no kernel, initrd, boot list or console are modelled)."""
    chosen = Node("chosen")
    if reset:
        chosen.set_property(Property.cells("qemu,graphic-width", GRAPHIC_WIDTH))
        chosen.set_property(Property.cells("qemu,graphic-height", GRAPHIC_HEIGHT))
        chosen.set_property(Property.cells("qemu,graphic-depth", GRAPHIC_DEPTH))
        if config.linux_pci_probe:
            chosen.set_property(Property.cells("linux,pci-probe-only", 0))
        chosen.set_property(
            Property.bytes("ibm,arch-vec-5-platform-support", _platform_support(config, state))
        )
    chosen.set_property(Property.bytes("rng-seed", state.rng_seed(32)))
    chosen.set_property(Property.bytes("ibm,architecture-vec-5", state.ov5_cas.dt_value()))
    return chosen


def build_device_tree(
    config: DeviceTreeConfig, state: DeviceTreeState, *, reset: bool = True
) -> DeviceTree:
    """The whole tree, as QEMU builds it at machine reset (and again at CAS)."""
    root = Node("")
    root.set_property(Property.string("device_type", "chrp"))
    root.set_property(Property.string("model", "IBM pSeries (emulated by qemu)"))
    root.set_property(Property.string("compatible", "qemu,pseries"))
    root.set_property(Property.string("vm,uuid", config.vm_uuid))
    if config.system_id:
        root.set_property(Property.string("system-id", config.vm_uuid))
    if config.vm_name:
        root.set_property(Property.string("ibm,partition-name", config.vm_name))
    root.set_property(Property.cells("#address-cells", 2))
    root.set_property(Property.cells("#size-cells", 2))
    if state.xive_node is not None:
        root.add_subnode(_xive_controller(root, config, state.xive_node))
    elif config.xics:
        root.add_subnode(_interrupt_controller(config))
    _memory_nodes(root, config, state.ov5_cas)
    cpus = _cpus_node(config, state)
    root.add_subnode(cpus)
    root_mask = 0
    if config.dr_lmb_enabled:
        root_mask |= DrcType.LMB.type_bit
    if config.dr_phb_enabled:
        root_mask |= DrcType.PHB.type_bit
    if config.nvdimm_supported:
        root_mask |= DrcType.PMEM.type_bit
    if root_mask:
        _set_drc_arrays(root, state.drcs.dt_arrays(root_mask))
    if config.has_hotpluggable_cpus:
        _set_drc_arrays(cpus, state.drcs.dt_arrays(DrcType.CPU.type_bit))
    root.add_subnode(_event_sources(state.events))
    root.add_subnode(_rtas_node(config, state))
    root.add_subnode(_chosen(config, state, reset))
    if config.kvm:
        hypervisor = Node("hypervisor")
        hypervisor.set_property(Property.string("compatible", "linux,kvm"))
        root.add_subnode(hypervisor)
    if config.nvdimm_supported:
        pmem = Node("ibm,persistent-memory")
        pmem.set_property(Property.cells("#address-cells", 1))
        pmem.set_property(Property.cells("#size-cells", 0))
        pmem.set_property(Property.string("device_type", "ibm,persistent-memory"))
        root.add_subnode(pmem)
    return DeviceTree(root)
