"""``info qtree``: the bus tree QEMU 7.2 prints for a pseries machine.

CPU cores and DR connectors are not on any bus in 7.2, so none of the hotplug
objects appear; what ``info qtree`` shows is the main system bus with the PCI host
bridge (its qdev properties after the machine version's compat settings), the VIO
bridge with the NVRAM, and on POWER9 and later the XIVE controller. Devices are
listed newest first, as QEMU links bus children at the head.
"""

from __future__ import annotations

from collections.abc import Iterator

from machine.board.pseries import PseriesMachine

#: SPAPR_XIRQ_BASE: external IRQ numbers start here.
SPAPR_XIRQ_BASE = 0x1000
#: XIVE controller MMIO bases (SPAPR_XIVE_VC_BASE, SPAPR_XIVE_TM_BASE) and TIMA size.
XIVE_VC_BASE = 0x0006010000000000
XIVE_TM_BASE = 0x0006030203180000
XIVE_ESB_REGION = 0x40000000
XIVE_TIMA_SIZE = 0x40000
NVRAM_REG = 0x71000000

#: spapr-pci-host-bridge defaults (QEMU 7.2), in qdev property order: name -> (kind, value).
PHB_DEFAULTS: tuple[tuple[str, str, int | bool], ...] = (
    ("index", "uint", 0),
    ("mem_win_size", "uint", 0x80000000),
    ("mem64_win_size", "uint", 0x10000000000),
    ("io_win_size", "uint", 0x10000),
    ("dynamic-reconfiguration", "bool", True),
    ("dma_win_addr", "uint", 0),
    ("dma_win_size", "uint", 0x40000000),
    ("dma64_win_addr", "uint", 0x800000000000000),
    ("ddw", "bool", True),
    ("pgsz", "uint", 0x1211000),
    ("numa_node", "uint", 0xFFFFFFFF),
    ("pre-2.8-migration", "bool", False),
    ("pcie-extended-configuration-space", "bool", True),
    ("gpa", "uint", 0x400000000000),
    ("atsd", "uint", 0x800000000000),
    ("pre-5.1-associativity", "bool", False),
    ("x-config-reg-migration-enabled", "bool", True),
    ("bypass-iommu", "bool", False),
)
#: The PHB's 32-bit MMIO window is at most 2 GiB; the legacy placement splits the rest off.
LEGACY_MMIO32_MAX = 0x80000000


def phb_properties(machine: PseriesMachine) -> dict[str, int | bool]:
    """PHB 0's qdev properties after the machine version's compat properties and placement."""
    mtype = machine.setup.machine
    props: dict[str, int | bool] = {name: value for name, _, value in PHB_DEFAULTS}
    kinds = {name: kind for name, kind, _ in PHB_DEFAULTS}
    for name, text in mtype.phb_compat_props:
        props[name] = text == "on" if kinds[name] == "bool" else int(text, 0)
    if mtype.phb_placement == "2.7":
        window = int(props["mem_win_size"])
        if window > LEGACY_MMIO32_MAX:
            props["mem_win_size"] = LEGACY_MMIO32_MAX
            props["mem64_win_size"] = window - LEGACY_MMIO32_MAX
    if mtype.phb_placement in ("2.7", "4.0"):
        props["gpa"] = 0  # no NVLink2 windows before pseries-4.1
        props["atsd"] = 0
    if mtype.version <= (5, 0):
        props["x-config-reg-migration-enabled"] = False  # hw_compat_5_0
    return props


def _prop_line(name: str, kind: str, value: int | bool) -> str:
    if kind == "bool":
        return f"{name} = {'true' if value else 'false'}"
    return f"{name} = {int(value)} (0x{int(value):x})"


def qtree_lines(machine: PseriesMachine) -> Iterator[str]:
    """The lines of ``info qtree``."""
    yield "bus: main-system-bus"
    yield "  type System"
    props = phb_properties(machine)
    yield '  dev: spapr-pci-host-bridge, id ""'
    for name, kind, _ in PHB_DEFAULTS:
        yield "    " + _prop_line(name, kind, props[name])
    yield "    bus: pci.0"
    yield "      type PCI"
    yield '  dev: spapr-vio-bridge, id ""'
    yield "    bus: spapr-vio"
    yield "      type spapr-vio-bus"
    yield f'      dev: spapr-nvram, id "nvram@{NVRAM_REG:x}"'
    yield "        " + _prop_line("reg", "uint", NVRAM_REG)
    yield '        drive = ""'
    if any(o.type_name == "spapr-xive" for o in machine.qom.unattached.children.values()):
        nr_irqs = machine.setup.machine.nr_xirqs + SPAPR_XIRQ_BASE
        nr_ends = machine.topology.max_server_number << 3
        yield '  dev: spapr-xive, id ""'
        yield "    " + _prop_line("nr-irqs", "uint", nr_irqs)
        yield "    " + _prop_line("nr-ends", "uint", nr_ends)
        yield "    " + _prop_line("vc-base", "uint", XIVE_VC_BASE)
        yield "    " + _prop_line("tm-base", "uint", XIVE_TM_BASE)
        yield "    " + _prop_line("hv-prio", "uint", 7)
        yield f"    mmio {XIVE_VC_BASE:016x}/{XIVE_ESB_REGION:016x}"
        yield f"    mmio {XIVE_VC_BASE + XIVE_ESB_REGION:016x}/{XIVE_ESB_REGION:016x}"
        yield f"    mmio {XIVE_TM_BASE:016x}/{XIVE_TIMA_SIZE:016x}"
