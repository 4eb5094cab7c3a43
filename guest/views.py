"""What a user of the guest sees: lscpu, numactl -H, /sys/devices/system/cpu/*.

Pure functions of the kernel's state. Counting follows the tools: lscpu's "CPU(s)"
counts present CPUs and derives threads/cores/sockets from the online ones (a core
is a cpu node, a socket an ``ibm,chip-id``); NUMA nodes are the online nodes; the
cpulists use the sysfs range syntax. Memory sizes come from the ``memory`` nodes;
the model never allocates, so numactl's "free" equals the size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guest import topology

if TYPE_CHECKING:
    from guest.kernel import Kernel

#: Names /proc/cpuinfo gives PVR families (upper 16 bits).
_PVR_FAMILIES = {
    0x003F: "POWER7",
    0x004A: "POWER7+",
    0x004B: "POWER8E",
    0x004C: "POWER8NVL",
    0x004D: "POWER8",
    0x004E: "POWER9",
    0x0080: "POWER10",
}


def sys_cpu_online(k: Kernel) -> str:
    """/sys/devices/system/cpu/online."""
    return topology.cpulist(c.logical for c in k.cpus.values() if c.online)


def sys_cpu_present(k: Kernel) -> str:
    """/sys/devices/system/cpu/present."""
    return topology.cpulist(c.logical for c in k.cpus.values() if c.present)


def sys_cpu_possible(k: Kernel) -> str:
    """/sys/devices/system/cpu/possible."""
    return topology.cpulist(k.cpus)


def _real_pvr(k: Kernel) -> int | None:
    tree = k.boot_tree if k.boot_tree is not None else k.tree
    for _path, node in topology.iter_nodes_by_type(tree, "cpu"):
        return topology.cell(node, "cpu-version")
    return None


#: Linux's cputable names of the logical ("architected") PVRs a CAS can select.
_ARCHITECTED_NAMES = {
    0x0F000002: "POWER6",
    0x0F000003: "POWER7",
    0x0F100003: "POWER7",
    0x0F000004: "POWER8",
    0x0F000005: "POWER9",
    0x0F000006: "POWER10",
}


def _cpu_name(k: Kernel, real_pvr: int) -> str | None:
    """cur_cpu_spec->cpu_name: the architected entry once CAS set a logical PVR, else raw."""
    for _path, node in topology.iter_nodes_by_type(k.tree, "cpu"):
        version = topology.cell(node, "cpu-version")
        if version in _ARCHITECTED_NAMES:
            return f"{_ARCHITECTED_NAMES[version]} (architected)"
        break
    family = _PVR_FAMILIES.get(real_pvr >> 16)
    return None if family is None else f"{family} (raw)"


def _cache_size(k: Kernel, name: str) -> int | None:
    for _path, node in topology.iter_nodes_by_type(k.tree, "cpu"):
        return topology.cell(node, name)
    return None


def lscpu(k: Kernel) -> list[str]:
    """``lscpu`` summary lines (util-linux's classic two-column layout)."""
    present = [c for c in k.present_cpus()]
    online = [c for c in present if c.online]
    cores = {c.node_path for c in online}
    sockets = {c.chip_id if c.chip_id is not None else 0 for c in online}
    rows: list[tuple[str, str]] = [
        ("Architecture:", "ppc64le"),
        ("Byte Order:", "Little Endian"),
        ("CPU(s):", str(len(present))),
        ("On-line CPU(s) list:", topology.cpulist(c.logical for c in online)),
    ]
    offline = [c.logical for c in present if not c.online]
    if offline:
        rows.append(("Off-line CPU(s) list:", topology.cpulist(offline)))
    rows += [
        ("Thread(s) per core:", str(len(online) // max(len(cores), 1))),
        ("Core(s) per socket:", str(len(cores) // max(len(sockets), 1))),
        ("Socket(s):", str(len(sockets))),
        ("NUMA node(s):", str(len(k.online_nodes))),
    ]
    pvr = _real_pvr(k)
    if pvr is not None:
        major, minor = (pvr >> 8) & 0xF, pvr & 0xFF
        rows.append(("Model:", f"{major}.{minor} (pvr {pvr >> 16:04x} {pvr & 0xFFFF:04x})"))
        name = _cpu_name(k, pvr)
        if name is not None:
            rows.append(("Model name:", f"{name}, altivec supported"))
    for label, prop in (("L1d cache:", "d-cache-size"), ("L1i cache:", "i-cache-size")):
        size = _cache_size(k, prop)
        if size:
            rows.append((label, f"{size // 1024}K"))
    for node in sorted(k.online_nodes):
        cpus = topology.cpulist(c.logical for c in online if c.node == node)
        rows.append((f"NUMA node{node} CPU(s):", cpus))
    width = max(len(label) for label, _ in rows) + 1
    return [f"{label:<{width}}{value}".rstrip() for label, value in rows]


def _distance_table(k: Kernel, nodes: list[int]) -> dict[tuple[int, int], int]:
    form2 = topology.form2_distance_table(k.tree) if k.features.form2_affinity else None
    refs = topology.cells(k.tree.find("/rtas"), "ibm,associativity-reference-points") or ()
    domains: dict[int, tuple[int, ...]] = {}
    if form2 is None and refs:
        for kind in ("memory", "cpu"):
            for _path, node in topology.iter_nodes_by_type(k.tree, kind):
                nid = topology.associativity_node(node, k.domain_index)
                row = topology.form1_domains(node, refs)
                if nid != topology.NUMA_NO_NODE and row is not None:
                    domains.setdefault(nid, row)
    return {
        (a, b): topology.node_distance(a, b, form2_table=form2, form1_domains=domains or None)
        for a in nodes
        for b in nodes
    }


def numactl_hardware(k: Kernel) -> list[str]:
    """``numactl -H``: nodes, their CPUs and sizes, the distance matrix."""
    nodes = sorted(k.online_nodes)
    sizes = topology.memory_nodes(k.tree, k.domain_index)
    lines = [f"available: {len(nodes)} nodes ({topology.cpulist(nodes)})"]
    for node in nodes:
        cpus = [c.logical for c in k.online_cpus() if c.node == node]
        lines.append(f"node {node} cpus:" + "".join(f" {c}" for c in cpus))
        size_mb = sizes.get(node, 0) >> 20
        lines.append(f"node {node} size: {size_mb} MB")
        lines.append(f"node {node} free: {size_mb} MB")
    distances = _distance_table(k, nodes)
    lines.append("node distances:")
    lines.append("node " + "".join(f"{n:3d} " for n in nodes))
    for a in nodes:
        lines.append(f"{a:3d}: " + "".join(f"{distances[(a, b)]:3d} " for b in nodes))
    return lines
