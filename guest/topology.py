"""Reading CPUs out of the device tree the way Linux 6.1 on pseries does.

Pure functions over :class:`fdt.Node` trees: the cpu nodes in tree order, their
hardware thread ids, the possible-CPU count from ``/rtas/ibm,lrdr-capacity``, NUMA
node ids from ``ibm,associativity`` and the reference points, socket ids from
``ibm,chip-id``, Linux's free logical-id search for a hot-added core
(``find_cpu_id_range``), and the cpulist syntax of sysfs (``0-2,4``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping

import fdt

#: Linux's NUMA_NO_NODE.
NUMA_NO_NODE = -1


def cells(node: fdt.Node | None, name: str) -> tuple[int, ...] | None:
    """A property read as BE u32 cells (trailing odd bytes dropped), or None if absent."""
    if node is None:
        return None
    prop = node.get(name)
    if prop is None:
        return None
    value = prop.value[: len(prop.value) // 4 * 4]
    return struct.unpack(f">{len(value) // 4}I", value)


def cell(node: fdt.Node | None, name: str) -> int | None:
    """The first cell of a property, or None."""
    values = cells(node, name)
    return values[0] if values else None


def string(node: fdt.Node | None, name: str) -> str | None:
    """A property read as one NUL-terminated string, or None."""
    if node is None:
        return None
    prop = node.get(name)
    if prop is None:
        return None
    return prop.value.split(b"\0", 1)[0].decode("latin-1")


def unit_name(name: str) -> str:
    """The node name without its unit address (what ``%pOFn`` prints)."""
    return name.split("@", 1)[0]


def iter_nodes_by_type(root: fdt.Node, device_type: str) -> Iterator[tuple[str, fdt.Node]]:
    """Nodes whose ``device_type`` is ``device_type``, in tree order, with their paths."""
    for path, node in root.iter_nodes():
        if string(node, "device_type") == device_type:
            yield path, node


def interrupt_servers(node: fdt.Node) -> tuple[int, ...]:
    """Hardware thread ids of a cpu node (``ibm,ppc-interrupt-server#s``, else ``reg``)."""
    servers = cells(node, "ibm,ppc-interrupt-server#s")
    if servers:
        return servers
    reg = cells(node, "reg")
    return reg[:1] if reg else ()


def lrdr_max_cores(root: fdt.Node) -> int | None:
    """The last cell Linux reads from ``/rtas/ibm,lrdr-capacity`` (cores the LPAR may have).

    Linux indexes it with the root's #address-cells + #size-cells (2 + 2 on pseries).
    """
    capacity = cells(root.find("/rtas"), "ibm,lrdr-capacity")
    if capacity is None:
        return None
    index = (cell(root, "#address-cells") or 2) + (cell(root, "#size-cells") or 1)
    return capacity[index] if index < len(capacity) else None


def primary_domain_index(root: fdt.Node) -> int | None:
    """The associativity index of the NUMA node id (first reference point), or None."""
    refs = cells(root.find("/rtas"), "ibm,associativity-reference-points")
    return refs[0] if refs else None


def associativity_node(node: fdt.Node | None, domain_index: int | None) -> int:
    """The NUMA node a node's ``ibm,associativity`` names, or NUMA_NO_NODE."""
    if domain_index is None:
        return NUMA_NO_NODE
    assoc = cells(node, "ibm,associativity")
    if not assoc or domain_index < 1 or domain_index > assoc[0] or domain_index >= len(assoc):
        return NUMA_NO_NODE
    nid = assoc[domain_index]
    return NUMA_NO_NODE if nid == 0xFFFF or nid >= 1 << 16 else nid


def max_numa_nodes(root: fdt.Node, domain_index: int | None) -> int:
    """Nodes the partition is configured for (``ibm,max-associativity-domains``)."""
    if domain_index is None:
        return 1
    rtas = root.find("/rtas")
    domains = cells(rtas, "ibm,current-associativity-domains") or cells(
        rtas, "ibm,max-associativity-domains"
    )
    if not domains or domain_index >= len(domains):
        return 1
    return max(domains[domain_index], 1)


def memory_nodes(root: fdt.Node, domain_index: int | None) -> dict[int, int]:
    """Bytes of RAM per NUMA node from the ``memory`` nodes (node 0 when unassigned)."""
    address_cells = cell(root, "#address-cells") or 2
    size_cells = cell(root, "#size-cells") or 1
    sizes: dict[int, int] = {}
    for _path, node in iter_nodes_by_type(root, "memory"):
        reg = cells(node, "reg") or ()
        nid = associativity_node(node, domain_index)
        nid = 0 if nid == NUMA_NO_NODE else nid
        step = address_cells + size_cells
        for i in range(0, len(reg) - step + 1, step):
            size = 0
            for c in reg[i + address_cells : i + step]:
                size = (size << 32) | c
            sizes[nid] = sizes.get(nid, 0) + size
    return sizes


def memory_ranges(root: fdt.Node) -> list[tuple[int, int]]:
    """(base, size) of every RAM range the ``memory`` nodes declare."""
    address_cells = cell(root, "#address-cells") or 2
    size_cells = cell(root, "#size-cells") or 1
    out = []
    for _path, node in iter_nodes_by_type(root, "memory"):
        reg = cells(node, "reg") or ()
        step = address_cells + size_cells
        for i in range(0, len(reg) - step + 1, step):
            base = size = 0
            for c in reg[i : i + address_cells]:
                base = (base << 32) | c
            for c in reg[i + address_cells : i + step]:
                size = (size << 32) | c
            out.append((base, size))
    return out


def drc_indexes(node: fdt.Node | None) -> tuple[int, ...]:
    """The DRC indexes listed by ``ibm,drc-indexes`` (count first, then indexes)."""
    values = cells(node, "ibm,drc-indexes")
    if not values:
        return ()
    return values[1 : 1 + values[0]]


def find_cpu_id_range(
    nthreads: int,
    nr_cpu_ids: int,
    possible: Iterable[int],
    present: Iterable[int],
    excluded: Iterable[int] = (),
) -> range | None:
    """Linux's find_cpu_id_range: the first ``nthreads``-aligned block of free ids.

    Free means possible, not present and not in ``excluded`` (ids recorded for
    other NUMA nodes). None when no block fits (Linux returns -ENOSPC).
    """
    if nthreads < 1:
        return None
    candidates = (set(possible) - set(present)) - set(excluded)
    if not candidates:
        return None
    start = 0
    while start + nthreads <= nr_cpu_ids:
        block = range(start, start + nthreads)
        if all(cpu in candidates for cpu in block):
            return block
        start += nthreads
    return None


def cpulist(ids: Iterable[int]) -> str:
    """The sysfs cpulist syntax: sorted, runs collapsed (``0-2,4``); empty for none."""
    values = sorted(set(ids))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


def node_distance(
    a: int,
    b: int,
    *,
    form2_table: Mapping[tuple[int, int], int] | None = None,
    form1_domains: Mapping[int, tuple[int, ...]] | None = None,
) -> int:
    """Linux's node distance: 10 local; FORM2 from the table; FORM1 doubling per level."""
    if a == b:
        return 10
    if form2_table is not None and (a, b) in form2_table:
        return form2_table[(a, b)]
    if form1_domains is not None and a in form1_domains and b in form1_domains:
        distance = 10
        for da, db in zip(form1_domains[a], form1_domains[b]):
            if da == db:
                break
            distance *= 2
        return distance
    return 20


def form1_domains(
    node: fdt.Node | None, reference_points: tuple[int, ...]
) -> tuple[int, ...] | None:
    """The associativity domain at each reference point (Linux's distance lookup row)."""
    assoc = cells(node, "ibm,associativity")
    if not assoc:
        return None
    out = []
    for ref in reference_points:
        if ref < 1 or ref > assoc[0] or ref >= len(assoc):
            return None
        out.append(assoc[ref])
    return tuple(out)


def form2_distance_table(root: fdt.Node) -> dict[tuple[int, int], int] | None:
    """FORM2 ``ibm,numa-lookup-index-table`` + ``ibm,numa-distance-table``, or None."""
    rtas = root.find("/rtas")
    index_table = cells(rtas, "ibm,numa-lookup-index-table")
    prop = rtas.get("ibm,numa-distance-table") if rtas is not None else None
    if not index_table or prop is None or len(prop.value) < 4:
        return None
    nodes = index_table[1 : 1 + index_table[0]]
    (count,) = struct.unpack_from(">I", prop.value)
    distances = prop.value[4 : 4 + count]
    if len(distances) < len(nodes) ** 2:
        return None
    table = {}
    for i, a in enumerate(nodes):
        for j, b in enumerate(nodes):
            table[(a, b)] = distances[i * len(nodes) + j]
    return table
