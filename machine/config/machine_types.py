"""Every pseries machine version QEMU 7.2 defines, with the settings this model uses.

QEMU builds each ``pseries-X.Y`` class by starting from the newest defaults and
applying, version by version, the compatibility tweaks of every newer version
(``spapr_machine_X_Y_class_options`` calls the next newer one first). The table
below is built the same way: ``_DELTAS`` lists what each version changes relative to
the next newer one, newest first. ``pseries-2.12-sxxm`` branches off ``pseries-2.12``.

Values are facts of QEMU 7.2.22 (Debian): ``max_cpus`` is 4096 there
(``SPAPR_IRQ_NR_IPIS``; 7.2.0 had INT32_MAX).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from spapr.errors import QemuError

MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40
#: SLOF needs at least this much Real Mode Area.
MIN_RMA_SLOF = 128 * MIB
#: LMB size (``SPAPR_MEMORY_BLOCK_SIZE``): RAM and NUMA node sizes must be multiples
#: of it (dr_lmb_enabled), and ibm,lrdr-capacity quotes it.
SPAPR_MEMORY_BLOCK_SIZE = 256 * MIB
SPAPR_MAX_RAM_SLOTS = 32
#: KVM_USER_MEM_SLOTS on Book3S: QEMU allows half of them for hotplugged DIMMs.
KVM_MEMSLOTS = 512
RAM_ALIGN = 8192

#: Maximum vCPUs of every pseries version in the modeled QEMU (7.2.11+).
SPAPR_MAX_CPUS = 0x1000
#: ``SPAPR_NR_XIRQS``: external interrupt sources of pseries >= 3.1.
SPAPR_NR_XIRQS = 0x1000

#: The QOM type suffix of machine classes.
MACHINE_TYPE_SUFFIX = "-machine"


@attrs.frozen
class MachineType:
    """One pseries machine version and the class settings that shape the model.

    Names follow QEMU's ``MachineClass``/``SpaprMachineClass`` fields. ``default_caps``
    maps a cap name (``htm``, ``cfpc``, ...) to its level; ``hpt-max-page-size`` 0
    means "decided at machine init" (pseries-2.12 and older).
    """

    name: str
    version: tuple[int, int]
    alias: str | None
    is_default: bool
    default_cpu_type: str
    smp_threads_vsmt: bool
    prefer_sockets: bool
    has_hotpluggable_cpus: bool
    default_machine_opts: str | None
    dr_lmb_enabled: bool
    dr_phb_enabled: bool
    update_dt_enabled: bool
    nvdimm_supported: bool
    numa_mem_supported: bool
    numa_mem_align_shift: int
    irq: str  # "dual", "xics" or "xics-legacy"
    legacy_irq_allocation: bool
    nr_xirqs: int
    linux_pci_probe: bool
    pre_2_10_has_unused_icps: bool
    pre_4_1_migration: bool
    pre_5_1_assoc_refpoints: bool
    pre_5_2_numa_associativity: bool
    pre_6_2_numa_affinity: bool
    broken_host_serial_model: bool
    resize_hpt_default: str  # "enabled" or "disabled"
    rma_limit: int | None
    use_ohci_by_default: bool
    default_caps: Mapping[str, int]
    #: Compat properties of CPU and core types: (QOM type, property, value).
    cpu_compat_props: tuple[tuple[str, str, str], ...]
    #: Compat properties of the PCI host bridge (``spapr-pci-host-bridge``), in order.
    phb_compat_props: tuple[tuple[str, str], ...]
    #: PHB window layout: "current", "4.0" (no NVLink2 windows) or "2.7" (legacy).
    phb_placement: str
    max_cpus: int = SPAPR_MAX_CPUS
    min_cpus: int = 1
    default_cpus: int = 1
    default_ram_size: int = 512 * MIB
    default_ram_id: str = "ppc_spapr.ram"
    desc: str = "pSeries Logical Partition (PAPR compliant)"

    @property
    def qom_type(self) -> str:
        """The QOM class name, e.g. ``pseries-7.2-machine``."""
        return self.name + MACHINE_TYPE_SUFFIX

    @property
    def default_modern_hotplug_events(self) -> bool:
        """``modern-hotplug-events`` before -machine options apply (off for <= 2.7)."""
        return "modern-hotplug-events=off" not in (self.default_machine_opts or "")

    @property
    def has_cpu_drcs(self) -> bool:
        """CPU DR connectors exist only on machines with hotpluggable CPUs."""
        return self.has_hotpluggable_cpus

    @property
    def has_pci_drcs(self) -> bool:
        """Whether PHBs create PCI slot DRCs (``dynamic-reconfiguration``, off <= 2.3)."""
        value = "on"
        for prop, setting in self.phb_compat_props:
            if prop == "dynamic-reconfiguration":
                value = setting
        return value == "on"


_BASE: dict[str, Any] = {
    "default_cpu_type": "power9_v2.0",
    "smp_threads_vsmt": True,
    "prefer_sockets": False,
    "has_hotpluggable_cpus": True,
    "default_machine_opts": None,
    "dr_lmb_enabled": True,
    "dr_phb_enabled": True,
    "update_dt_enabled": True,
    "nvdimm_supported": True,
    "numa_mem_supported": False,
    "numa_mem_align_shift": 28,
    "irq": "dual",
    "legacy_irq_allocation": False,
    "nr_xirqs": SPAPR_NR_XIRQS,
    "linux_pci_probe": True,
    "pre_2_10_has_unused_icps": False,
    "pre_4_1_migration": False,
    "pre_5_1_assoc_refpoints": False,
    "pre_5_2_numa_associativity": False,
    "pre_6_2_numa_affinity": False,
    "broken_host_serial_model": False,
    "resize_hpt_default": "enabled",
    "rma_limit": None,
    "use_ohci_by_default": False,
    "default_caps": {
        "htm": 0,
        "vsx": 1,
        "dfp": 1,
        "cfpc": 1,
        "sbbc": 1,
        "ibs": 1,
        "hpt-max-page-size": 16,
        "nested-hv": 0,
        "large-decr": 1,
        "ccf-assist": 1,
        "fwnmi": 1,
        "rpt-invalidate": 0,
    },
    "cpu_compat_props": (),
    "phb_compat_props": (),
    "phb_placement": "current",
}

_PRE_3_0_MIGRATION = (
    ("powerpc64-cpu", "pre-3.0-migration", "on"),
    ("spapr-cpu-core", "pre-3.0-migration", "on"),
)

#: Version -> changes relative to the next newer version, newest first.
#: ``caps`` entries update default_caps; ``compat`` (CPU/core) and ``phb`` (PCI host
#: bridge) compat properties are appended, as compat_props_add does.
_DELTAS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("7.2", {}),
    ("7.1", {}),
    ("7.0", {}),
    ("6.2", {}),
    ("6.1", {"pre_6_2_numa_affinity": True, "prefer_sockets": True}),
    ("6.0", {}),
    ("5.2", {}),
    ("5.1", {"pre_5_2_numa_associativity": True}),
    (
        "5.0",
        {
            "numa_mem_supported": True,
            "pre_5_1_assoc_refpoints": True,
            "phb": (("pre-5.1-associativity", "on"),),
        },
    ),
    (
        "4.2",
        {"caps": {"ccf-assist": 0, "fwnmi": 0}, "rma_limit": 16 * GIB, "nvdimm_supported": False},
    ),
    (
        "4.1",
        {"linux_pci_probe": False, "smp_threads_vsmt": False, "phb": (("pgsz", "0x11000"),)},
    ),
    ("4.0", {"irq": "xics", "pre_4_1_migration": True, "phb_placement": "4.0"}),
    (
        "3.1",
        {
            "default_cpu_type": "power8_v2.0",
            "update_dt_enabled": False,
            "dr_phb_enabled": False,
            "broken_host_serial_model": True,
            "caps": {"cfpc": 0, "sbbc": 0, "ibs": 0, "large-decr": 0},
        },
    ),
    ("3.0", {"legacy_irq_allocation": True, "nr_xirqs": 0x400, "irq": "xics-legacy"}),
    ("2.12", {"caps": {"hpt-max-page-size": 0}, "compat": _PRE_3_0_MIGRATION}),
    ("2.11", {"caps": {"htm": 1}}),
    ("2.10", {}),
    (
        "2.9",
        {
            "pre_2_10_has_unused_icps": True,
            "resize_hpt_default": "disabled",
            "compat": (("powerpc64-cpu", "pre-2.10-migration", "on"),),
        },
    ),
    (
        "2.8",
        {"numa_mem_align_shift": 23, "phb": (("pcie-extended-configuration-space", "off"),)},
    ),
    (
        "2.7",
        {
            "default_cpu_type": "power7_v2.3",
            "default_machine_opts": "modern-hotplug-events=off",
            "compat": (("powerpc64-cpu", "pre-2.8-migration", "on"),),
            "phb": (
                ("mem_win_size", "0xf80000000"),
                ("mem64_win_size", "0"),
                ("pre-2.8-migration", "on"),
            ),
            "phb_placement": "2.7",
        },
    ),
    ("2.6", {"has_hotpluggable_cpus": False, "phb": (("ddw", "off"),)}),
    ("2.5", {"use_ohci_by_default": True}),
    ("2.4", {"dr_lmb_enabled": False}),
    ("2.3", {"phb": (("dynamic-reconfiguration", "off"),)}),
    (
        "2.2",
        {
            "default_machine_opts": "modern-hotplug-events=off,suppress-vmdesc=on",
            "phb": (("mem_win_size", "0x20000000"),),
        },
    ),
    ("2.1", {}),
)

#: pseries-2.12-sxxm: pseries-2.12 with the Spectre/Meltdown workarounds on by default.
_SXXM_DELTA: dict[str, Any] = {"caps": {"cfpc": 1, "sbbc": 1, "ibs": 3}}


def _apply(settings: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    for key, value in delta.items():
        if key == "caps":
            caps = dict(out["default_caps"])
            caps.update(value)
            out["default_caps"] = caps
        elif key == "compat":
            out["cpu_compat_props"] = out["cpu_compat_props"] + tuple(value)
        elif key == "phb":
            out["phb_compat_props"] = out["phb_compat_props"] + tuple(value)
        else:
            out[key] = value
    return out


def _make(verstr: str, settings: Mapping[str, Any], latest: bool) -> MachineType:
    major, minor = verstr.split("-")[0].split(".")
    values = dict(settings)
    values["default_caps"] = MappingProxyType(dict(values["default_caps"]))
    return MachineType(
        name=f"pseries-{verstr}",
        version=(int(major), int(minor)),
        alias="pseries" if latest else None,
        is_default=latest,
        **values,
    )


def _build() -> tuple[MachineType, ...]:
    types: list[MachineType] = []
    settings = dict(_BASE)
    for i, (verstr, delta) in enumerate(_DELTAS):
        settings = _apply(settings, delta)
        types.append(_make(verstr, settings, latest=i == 0))
        if verstr == "2.12":
            types.append(_make("2.12-sxxm", _apply(settings, _SXXM_DELTA), latest=False))
    return tuple(types)


#: Every pseries machine type of QEMU 7.2, newest first.
MACHINE_TYPES: tuple[MachineType, ...] = _build()
_BY_NAME: dict[str, MachineType] = {m.name: m for m in MACHINE_TYPES}
DEFAULT_MACHINE: MachineType = next(m for m in MACHINE_TYPES if m.is_default)

UNSUPPORTED_MACHINE = "unsupported machine type\nUse -machine help to list supported machines"


def find_machine(name: str) -> MachineType:
    """The machine type for a ``-M`` name or alias; QemuError with QEMU's text if none.

    QEMU matches the exact class name (``pseries-7.2``) or alias (``pseries``);
    other machines of qemu-system-ppc64 (``powernv``, ``mac99``, ...) are not modeled.
    """
    machine = _BY_NAME.get(name)
    if machine is None and name == DEFAULT_MACHINE.alias:
        machine = DEFAULT_MACHINE
    if machine is None:
        raise QemuError(UNSUPPORTED_MACHINE)
    return machine


def machine_help_text() -> str:
    """What ``-machine help`` prints for the pseries machines (QEMU's layout)."""
    lines = ["Supported machines are:"]
    for machine in sorted(MACHINE_TYPES, key=lambda m: m.name):
        if machine.alias:
            lines.append(f"{machine.alias:<20} {machine.desc} (alias of {machine.name})")
        suffix = " (default)" if machine.is_default else ""
        lines.append(f"{machine.name:<20} {machine.desc}{suffix}")
    return "\n".join(lines)
