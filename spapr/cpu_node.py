"""The device-tree node of one virtual core, as QEMU 7.2's spapr_dt_cpu builds it.

The same builder serves the boot tree (``/cpus/PowerPC,POWER9@0``) and the
fragment a hot-plugged core hands out through ibm,configure-connector (which adds
a ``name`` property, QEMU 6.0+). Properties are set in QEMU's creation order with
libfdt semantics (a new property goes to the front), so the stored order — and the
configure-connector walk — come out reversed exactly as QEMU's do (protocol.md §6).
"""

from __future__ import annotations

import attrs

from fdt import Node, Property
from spapr.cpu_models import PA_FEATURES, CpuModel, IsaLevel, compat_by_pvr

#: Timebase frequency QEMU gives a TCG guest (SPAPR_TIMEBASE_FREQ).
TCG_TIMEBASE_FREQ = 512_000_000
#: clock-frequency QEMU gives a TCG guest.
TCG_CLOCK_FREQ = 1_000_000_000
#: ibm,processor-segment-sizes of CPUs with 1 TB segments: 256M, 1T, then two -1 cells.
SEGMENT_SIZES = (28, 40, 0xFFFFFFFF, 0xFFFFFFFF)
#: FORM1 associativity: reference points beyond the node id (domains d1..d3).
FORM1_MAX_DISTANCE_REF_POINTS = 4


@attrs.frozen
class CpuNodeEnv:
    """Machine-wide values that shape every CPU node (topology, caps, CAS outcome)."""

    threads_per_core: int
    cores_per_socket: int
    timebase_freq: int = TCG_TIMEBASE_FREQ
    clock_freq: int = TCG_CLOCK_FREQ
    htab_shift: int = 0
    numa_nodes: int = 1
    numa_form2: bool = False
    cap_vsx: bool = True
    cap_dfp: bool = True
    cap_htm: bool = False
    cap_large_decr: bool = True
    hpt_max_page_shift: int = 16
    #: Effective compat PVR (negotiated at CAS), or 0 for the raw PVR.
    compat_pvr: int = 0
    #: The guest told CAS it is pre-ISA 3.00 (QEMU then hides radix in pa-features).
    pre_isa3_guest: bool = False


def filtered_page_sizes(model: CpuModel, max_page_shift: int) -> list[int]:
    """ibm,segment-page-sizes cells after cap-hpt-max-page-size filtering.

    A page size survives if it is no larger than the cap and is either the segment's
    own base size or 16M (KVM's rule, applied to TCG for consistency); segments left
    with no page size are dropped.
    """
    cells: list[int] = []
    for sps in model.segment_page_sizes:
        kept = [
            e
            for e in sps.encodings
            if e.page_shift <= max_page_shift
            and (e.page_shift == sps.page_shift or e.page_shift == 24)
        ]
        if not kept:
            continue
        cells += [sps.page_shift, sps.slb_enc, len(kept)]
        for e in kept:
            cells += [e.page_shift, e.pte_enc]
    return cells


def _keeps_ci_large_pages(model: CpuModel, max_page_shift: int) -> bool:
    """Whether any 64K-or-larger page survives the filter (pa-features byte 3 bit)."""
    if not model.has_1t_segments:  # the basic hash options have no CI large pages
        return False
    cells = filtered_page_sizes(model, max_page_shift)
    i = 0
    while i < len(cells):
        count = cells[i + 2]
        if any(cells[i + 3 + 2 * j] >= 16 for j in range(count)):
            return True
        i += 3 + 2 * count
    return False


def _isa_level(model: CpuModel, compat_pvr: int) -> IsaLevel:
    """The ISA level the guest sees: the compat mode's, else the model's own."""
    if compat_pvr:
        compat = compat_by_pvr(compat_pvr)
        if compat is not None:
            return compat.isa
    return model.isa


def pa_features(model: CpuModel, env: CpuNodeEnv) -> bytes | None:
    """ibm,pa-features: the table of the (compat) ISA level with QEMU's tweaks."""
    isa = _isa_level(model, env.compat_pvr)
    if isa >= IsaLevel.V3_00:
        table = PA_FEATURES[IsaLevel.V3_00]
    elif isa >= IsaLevel.V2_07:
        table = PA_FEATURES[IsaLevel.V2_07]
    elif isa >= IsaLevel.V2_06:
        table = PA_FEATURES[IsaLevel.V2_06]
    else:
        return None
    out = bytearray(table)
    if _keeps_ci_large_pages(model, env.hpt_max_page_shift):
        out[3] |= 0x20
    if env.cap_htm and len(out) > 24:
        out[24] |= 0x80
    if env.pre_isa3_guest and len(out) > 40:
        out[42] &= ~0x80 & 0xFF
    return bytes(out)


def cpu_node_name(model: CpuModel, vcpu_id: int) -> str:
    """``<fw_name>@<vcpu id of thread 0 in hex>``, e.g. ``PowerPC,POWER9@10``."""
    return f"{model.fw_name}@{vcpu_id:x}"


def associativity(env: CpuNodeEnv, node_id: int, vcpu_id: int) -> tuple[int, ...]:
    """ibm,associativity of a vCPU: FORM1 {5, 0, 0, 0, node, vcpu} or FORM2 {2, node, vcpu}."""
    if env.numa_form2:
        return (2, node_id, vcpu_id)
    domains = (0,) * (FORM1_MAX_DISTANCE_REF_POINTS - 1) + (node_id,)
    return (FORM1_MAX_DISTANCE_REF_POINTS + 1, *domains, vcpu_id)


def build_cpu_node(
    model: CpuModel,
    env: CpuNodeEnv,
    *,
    vcpu_id: int,
    cpu_index: int,
    node_id: int,
    drc_index: int | None,
    nr_threads: int,
    compat_pvr: int | None = None,
    with_name: bool = False,
) -> Node:
    """The node of the core whose thread 0 has ``vcpu_id``, in QEMU's property order."""
    compat = env.compat_pvr if compat_pvr is None else compat_pvr
    if compat != env.compat_pvr:
        env = attrs.evolve(env, compat_pvr=compat)
    name = cpu_node_name(model, vcpu_id)
    node = Node(name)
    setp = node.set_property
    if drc_index is not None:
        setp(Property.cells("ibm,my-drc-index", drc_index))
    setp(Property.cells("reg", vcpu_id))
    setp(Property.string("device_type", "cpu"))
    setp(Property.cells("cpu-version", model.pvr))
    setp(Property.cells("d-cache-block-size", model.cache_line_size))
    setp(Property.cells("d-cache-line-size", model.cache_line_size))
    setp(Property.cells("i-cache-block-size", model.cache_line_size))
    setp(Property.cells("i-cache-line-size", model.cache_line_size))
    setp(Property.cells("d-cache-size", model.dcache_size))
    setp(Property.cells("i-cache-size", model.icache_size))
    setp(Property.cells("timebase-frequency", env.timebase_freq & 0xFFFFFFFF))
    setp(Property.cells("clock-frequency", env.clock_freq & 0xFFFFFFFF))
    setp(Property.cells("slb-size", model.slb_size))
    setp(Property.cells("ibm,slb-size", model.slb_size))
    setp(Property.string("status", "okay"))
    setp(Property.empty("64-bit"))
    if model.has_purr:
        setp(Property.cells("ibm,purr", 1))
        setp(Property.cells("ibm,spurr", 1))
    if model.has_1t_segments:
        setp(Property.cells("ibm,processor-segment-sizes", *SEGMENT_SIZES))
    if model.has_altivec:
        setp(Property.cells("ibm,vmx", 2 if env.cap_vsx else 1))
    if env.cap_dfp:
        setp(Property.cells("ibm,dfp", 1))
    page_sizes = filtered_page_sizes(model, env.hpt_max_page_shift)
    if page_sizes:
        setp(Property.cells("ibm,segment-page-sizes", *page_sizes))
    features = pa_features(model, env)
    if features is not None:
        setp(Property.bytes("ibm,pa-features", features))
    vcpus_per_socket = env.threads_per_core * env.cores_per_socket
    setp(Property.cells("ibm,chip-id", cpu_index // vcpus_per_socket))
    setp(Property.cells("ibm,pft-size", 0, env.htab_shift))
    if env.numa_nodes > 1:
        setp(Property.cells("ibm,associativity", *associativity(env, node_id, vcpu_id)))
    if env.compat_pvr:
        setp(Property.cells("cpu-version", env.compat_pvr))
    smt = nr_threads
    if env.compat_pvr:
        mode = compat_by_pvr(env.compat_pvr)
        if mode is not None:
            smt = min(smt, mode.max_vthreads)
    smt = min(smt, env.threads_per_core)
    servers = [vcpu_id + i for i in range(smt)]
    setp(Property.cells("ibm,ppc-interrupt-server#s", *servers))
    gservers: list[int] = []
    for server in servers:
        gservers += [server, 0]
    setp(Property.cells("ibm,ppc-interrupt-gserver#s", *gservers))
    if model.radix_ap_encodings:
        setp(Property.cells("ibm,processor-radix-AP-encodings", *model.radix_ap_encodings))
    if env.cap_large_decr:
        setp(Property.cells("ibm,dec-bits", model.dec_bits))
    if with_name:
        setp(Property.string("name", name))
    return node
