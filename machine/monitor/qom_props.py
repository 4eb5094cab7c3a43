"""The QOM composition tree as QEMU 7.2's monitor shows it: paths, properties, types, values.

The machine models the objects the hotplug protocol touches (the machine, its
containers, cores, threads, their presenters, DR connectors). QEMU's tree also
holds board parts this emulator does not model (the RTC, the watchdogs, memory
regions, the PCI host bridge's insides); :class:`QomView` adds those as fixed,
property-less nodes so ``info qom-tree`` and ``qom-list`` list what QEMU lists. The
interrupt controllers' parts (the ics, the XIVE controller's sources and memory
regions, each thread's icp and xive-tctx) list QEMU's properties too, their values
read from the machine's XICS and XIVE (tests/test_monitor_qom_xive.py).

``qom-list`` order is QEMU's: an object's instance properties live in a GLib hash
table filled in the order the source adds them (``machine_initfn``,
``spapr_instance_init``, board init, ...), class properties in one table per class;
the answer is the iteration order reversed (machine/config/ghash.py). The insertion
sequences below were derived from QEMU 7.2's source and checked against the
recorded answers (tests/test_qom_order.py derives the same sequences). Objects
whose children come and go (containers, DR connectors' ``device`` link) keep a
live table, updated by :meth:`QomView.sync` after every monitor command and
event, so deletions leave GLib's tombstones exactly where QEMU has them.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from fdt import Node as FdtNode
from machine.board.qom import QomObject
from machine.config.ghash import GHashTableModel, qom_list_order
from spapr.cpu_core import SpaprCpuCore, VcpuThread
from spapr.cpu_models import IsaLevel
from spapr.drc import DRC, DrcType
from spapr.errors import QemuError
from spapr.xive import END_ESB_SHIFT, ESB_SHIFT, SOURCE_ESB_FLAGS

if TYPE_CHECKING:
    from machine.board.pseries import PseriesMachine

# ---------------------------------------------------------------- class tables

#: object_class_init.
OBJECT_CLASS: tuple[tuple[str, str], ...] = (("type", "string"),)
#: device_class_init, in the order it adds them.
DEVICE_CLASS: tuple[tuple[str, str], ...] = (
    ("realized", "bool"),
    ("hotpluggable", "bool"),
    ("hotplugged", "bool"),
    ("parent_bus", "link<bus>"),
)
#: spapr-machine's class properties (the capabilities), in spapr_caps_add_properties order.
SPAPR_MACHINE_CLASS: tuple[tuple[str, str], ...] = (
    ("cap-htm", "bool"),
    ("cap-vsx", "bool"),
    ("cap-dfp", "bool"),
    ("cap-cfpc", "string"),
    ("cap-sbbc", "string"),
    ("cap-ibs", "string"),
    ("cap-hpt-max-page-size", "int"),
    ("cap-nested-hv", "bool"),
    ("cap-large-decr", "bool"),
    ("cap-ccf-assist", "bool"),
    ("cap-fwnmi", "bool"),
    ("cap-rpt-invalidate", "bool"),
)
#: machine_class_init.
MACHINE_CLASS: tuple[tuple[str, str], ...] = (
    ("kernel", "string"),
    ("initrd", "string"),
    ("append", "string"),
    ("dtb", "string"),
    ("dumpdtb", "string"),
    ("boot", "BootConfiguration"),
    ("smp", "SMPConfiguration"),
    ("phandle-start", "int"),
    ("dt-compatible", "string"),
    ("dump-guest-core", "bool"),
    ("mem-merge", "bool"),
    ("usb", "bool"),
    ("graphics", "bool"),
    ("firmware", "string"),
    ("suppress-vmdesc", "bool"),
    ("confidential-guest-support", "link<confidential-guest-support>"),
    ("memory-encryption", "string"),
    ("memory-backend", "link<memory-backend>"),
    ("memory", "MemorySizeConfiguration"),
)
#: Instance properties of the machine that are not children.
MACHINE_INSTANCE_TYPES: dict[str, str] = {
    "nvdimm": "bool",
    "nvdimm-persistence": "string",
    "hmat": "bool",
    "kvm-type": "string",
    "modern-hotplug-events": "bool",
    "max-cpu-compat": "string",
    "resize-hpt": "string",
    "vsmt": "uint32",
    "vfio-no-msix-emulation": "bool",
    "kernel-addr": "uint64",
    "x-vof": "bool",
    "ic-mode": "string",
    "host-model": "string",
    "host-serial": "string",
    "rtc-time": "struct tm",
}
#: spapr-cpu-core (qdev properties) and cpu-core.
SPAPR_CORE_CLASS: tuple[tuple[str, str], ...] = (
    ("node-id", "int32"),
    ("pre-3.0-migration", "bool"),
)
CPU_CORE_CLASS: tuple[tuple[str, str], ...] = (("core-id", "int"), ("nr-threads", "int"))
#: powerpc64-cpu's compat flags and cpu's qdev properties.
PPC64_CPU_CLASS: tuple[tuple[str, str], ...] = (
    ("pre-2.8-migration", "bool"),
    ("pre-2.10-migration", "bool"),
    ("pre-3.0-migration", "bool"),
)
CPU_CLASS: tuple[tuple[str, str], ...] = (
    ("legacy-memory", "str"),
    ("memory", "link<memory-region>"),
    ("start-powered-off", "bool"),
)
#: spapr_dr_connector_instance_init.
DRC_INSTANCE: tuple[tuple[str, str], ...] = (
    ("id", "uint32"),
    ("index", "uint32"),
    ("fdt", "struct"),
)

#: The interrupt controllers' qdev properties, by class (device_class_set_props adds a
#: link's ``legacy-`` name first, a read-only string nobody can read).
SPAPR_XIVE_CLASS: tuple[tuple[str, str], ...] = (
    ("nr-irqs", "uint32"),
    ("nr-ends", "uint32"),
    ("vc-base", "uint64"),
    ("tm-base", "uint64"),
    ("hv-prio", "uint8"),
)
XIVE_ROUTER_CLASS: tuple[tuple[str, str], ...] = (
    ("legacy-xive-fabric", "str"),
    ("xive-fabric", "link<xive-fabric>"),
)
XIVE_SOURCE_CLASS: tuple[tuple[str, str], ...] = (
    ("flags", "uint64"),
    ("nr-irqs", "uint32"),
    ("shift", "uint32"),
    ("legacy-xive", "str"),
    ("xive", "link<xive-notifier>"),
)
XIVE_END_SOURCE_CLASS: tuple[tuple[str, str], ...] = (
    ("nr-ends", "uint32"),
    ("shift", "uint32"),
    ("legacy-xive", "str"),
    ("xive", "link<xive-router>"),
)
XIVE_TCTX_CLASS: tuple[tuple[str, str], ...] = (
    ("legacy-cpu", "str"),
    ("cpu", "link<cpu>"),
    ("legacy-presenter", "str"),
    ("presenter", "link<xive-presenter>"),
)
ICP_CLASS: tuple[tuple[str, str], ...] = (
    ("legacy-xics", "str"),
    ("xics", "link<xics-fabric>"),
    ("legacy-cpu", "str"),
    ("cpu", "link<cpu>"),
)
ICS_CLASS: tuple[tuple[str, str], ...] = (
    ("nr-irqs", "uint32"),
    ("legacy-xics", "str"),
    ("xics", "link<xics-fabric>"),
)
#: memory_region_initfn: a region's instance properties, in the order it adds them.
MEMORY_REGION_INSTANCE: tuple[tuple[str, str], ...] = (
    ("container", "link<memory-region>"),
    ("addr", "uint64"),
    ("priority", "uint32"),
    ("size", "uint64"),
)
#: Class chains (most derived first) of the devices known by type alone.
_DEVICE_CHAINS: dict[str, list[tuple[tuple[str, str], ...]]] = {
    "spapr-xive": [SPAPR_XIVE_CLASS, XIVE_ROUTER_CLASS, (), DEVICE_CLASS, OBJECT_CLASS],
    "xive-source": [XIVE_SOURCE_CLASS, DEVICE_CLASS, OBJECT_CLASS],
    "xive-end-source": [XIVE_END_SOURCE_CLASS, DEVICE_CLASS, OBJECT_CLASS],
    "xive-tctx": [XIVE_TCTX_CLASS, DEVICE_CLASS, OBJECT_CLASS],
    "icp": [ICP_CLASS, DEVICE_CLASS, OBJECT_CLASS],
    "ics-spapr": [(), ICS_CLASS, DEVICE_CLASS, OBJECT_CLASS],
}
SYSTEM_MEMORY = "/machine/unattached/system[0]"
SYSBUS = "/machine/unattached/sysbus"

#: Board parts QEMU creates and this emulator does not model: (name, type, children).
FixedTree = tuple[tuple[str, str, "FixedTree"], ...]
_NONE: FixedTree = ()
_XIVE_PARTS: FixedTree = (
    ("end_source", "xive-end-source", (("xive.end[0]", "memory-region", _NONE),)),
    (
        "source",
        "xive-source",
        (("xive.esb-emulated[0]", "memory-region", _NONE), ("xive.esb[0]", "memory-region", _NONE)),
    ),
    ("xive.tima[0]", "memory-region", _NONE),
)
_VIO_BRIDGE_PARTS: FixedTree = (("spapr-vio", "spapr-vio-bus", _NONE),)
_ICS_PARTS: FixedTree = (("ics", "ics-spapr", _NONE),)
_MACHINE_PARTS: FixedTree = (
    ("rtc", "spapr-rtc", _NONE),
    ("wdt1", "spapr-wdt", _NONE),
    ("wdt2", "spapr-wdt", _NONE),
    ("wdt3", "spapr-wdt", _NONE),
    ("wdt4", "spapr-wdt", _NONE),
)
#: With NUMA nodes backed by memory backends, QEMU's numa_complete_configuration makes
#: the machine's RAM a container region owned by the machine (default_ram_id).
_NUMA_RAM_PARTS: FixedTree = (("ppc_spapr.ram[0]", "memory-region", _NONE),)
_UNATTACHED_PARTS: FixedTree = (
    ("sysbus", "System", _NONE),
    ("system[0]", "memory-region", _NONE),
    ("io[0]", "memory-region", _NONE),
)
PHB0_NAME = "pci@800000020000000"
PHB0_LIOBNS = (0x80000000, 0x80000001)


def _phb_parts(*, mmio64: bool, ddw: bool) -> FixedTree:
    """PHB 0's own children (memory regions, the root bus, TCE tables)."""
    regions = ["io-alias", "io", "iommu-root", "mmio32-alias"]
    if mmio64:
        regions.append("mmio64-alias")
    regions.append("mmio")
    parts: list[tuple[str, str, FixedTree]] = [
        ("msi[0]", "memory-region", _NONE),
        ("pci.0", "PCI", _NONE),
    ]
    parts += [(f"{PHB0_NAME}.{r}[0]", "memory-region", _NONE) for r in regions]
    for liobn in PHB0_LIOBNS[: 2 if ddw else 1]:
        parts.append(
            (
                f"tce-table-{liobn:x}",
                "spapr-tce-table",
                (
                    (f"tce-iommu-{liobn:x}[0]", "spapr-iommu-memory-region", _NONE),
                    (f"tce-root-{liobn:x}[0]", "memory-region", _NONE),
                ),
            )
        )
    return tuple(parts)


class Kind(enum.Enum):
    """What a node stands for, which decides its children, properties and values."""

    ROOT = "root"
    MACHINE = "machine"
    CONTAINER = "container"
    DRC_LINKS = "dr-connector container"
    CORE = "core"
    THREAD = "thread"
    PRESENTER = "presenter"
    DRC = "drc"
    PHB = "phb"
    XIVE = "xive"
    VIO_BRIDGE = "vio-bridge"
    FIXED = "fixed"


@attrs.frozen(eq=False)
class QomNode:
    """One object of the composition tree: its canonical path, type and what it models."""

    path: str
    type_name: str
    kind: Kind
    obj: QomObject | None = None
    payload: Any = None
    fixed: FixedTree = ()

    @property
    def name(self) -> str:
        """The last path component ("" for the root)."""
        return self.path.rsplit("/", 1)[-1]


def fdt_struct(node: FdtNode) -> dict[str, Any]:
    """prop_get_fdt: a node as a struct (properties as byte lists, subnodes nested)."""
    out: dict[str, Any] = {}
    for prop in node.properties:
        out[prop.name] = list(prop.value)
    for child in node.children:
        out[child.name] = fdt_struct(child)
    return out


class QomView:
    """QEMU's view of the machine's object tree, for qom-list, qom-get and info qom-tree."""

    def __init__(self, machine: PseriesMachine) -> None:
        self.machine = machine
        mtype = machine.setup.machine
        # POWER9 and later threads have a second external-interrupt input.
        self._gpio_inputs = 2 if machine.model.isa >= IsaLevel.V3_00 else 1
        phb_props = dict(mtype.phb_compat_props)
        self._ddw = phb_props.get("ddw", "on") == "on"
        if mtype.phb_placement == "2.7":
            # The legacy placement splits a 32-bit window larger than 2 GiB.
            self._mmio64 = int(phb_props.get("mem_win_size", "0"), 0) > 0x80000000
        else:
            self._mmio64 = phb_props.get("mem64_win_size") != "0"
        self._tables: weakref.WeakKeyDictionary[QomObject, GHashTableModel] = (
            weakref.WeakKeyDictionary()
        )
        self._fixed_tables: dict[str, GHashTableModel] = {}
        #: The instance sequence each live table was last brought in line with.
        self._synced: weakref.WeakKeyDictionary[QomObject, tuple[str, ...]] = (
            weakref.WeakKeyDictionary()
        )
        self._drc_base = tuple(name for name, _ in DRC_INSTANCE)
        qom = machine.qom
        #: Objects whose instance properties change while the machine runs.
        self._containers: list[QomObject] = [qom.unattached, qom.peripheral, qom.peripheral_anon]
        #: The CPU connectors' objects, by connector (a connector's ``device`` link comes
        #: and goes with its core).
        self._drc_objects: dict[DRC, QomObject] = {
            obj.payload: obj
            for obj in qom.machine.children.values()
            if isinstance(obj.payload, DRC) and obj.payload.type is DrcType.CPU
        }
        self._dynamic: list[QomObject] = self._containers + list(self._drc_objects.values())
        #: Which connectors may have changed since the last sync (no walk over them all).
        self._drc_watch = machine.drcs.watch()
        self.sync()

    # ------------------------------------------------------------ navigation

    @property
    def root(self) -> QomNode:
        return QomNode("", "container", Kind.ROOT, obj=self.machine.qom.root)

    def _node_for(self, obj: QomObject) -> QomNode:
        qom = self.machine.qom
        payload = obj.payload
        if obj is qom.root:
            return self.root
        if obj is qom.machine:
            fixed = (_ICS_PARTS if self.machine.has_xics else ()) + _MACHINE_PARTS
            fixed += _NUMA_RAM_PARTS if self._numa_ram_container() else ()
            return QomNode(obj.path, obj.type_name, Kind.MACHINE, obj=obj, fixed=fixed)
        if obj is qom.unattached:
            return QomNode(
                obj.path, obj.type_name, Kind.CONTAINER, obj=obj, fixed=_UNATTACHED_PARTS
            )
        if obj is qom.dr_connectors:
            return QomNode(obj.path, obj.type_name, Kind.DRC_LINKS, obj=obj)
        if isinstance(payload, SpaprCpuCore):
            return QomNode(obj.path, obj.type_name, Kind.CORE, obj=obj, payload=payload)
        if isinstance(payload, VcpuThread):
            fixed = tuple((g, "irq", _NONE) for g in self._gpio_names())
            return QomNode(
                obj.path, obj.type_name, Kind.THREAD, obj=obj, payload=payload, fixed=fixed
            )
        if isinstance(payload, DRC):
            return QomNode(obj.path, obj.type_name, Kind.DRC, obj=obj, payload=payload)
        if obj.type_name == "spapr-pci-host-bridge":
            return QomNode(
                obj.path,
                obj.type_name,
                Kind.PHB,
                obj=obj,
                fixed=_phb_parts(mmio64=self._mmio64, ddw=self._ddw),
            )
        if obj.type_name == "spapr-xive":
            return QomNode(
                obj.path, obj.type_name, Kind.XIVE, obj=obj, payload=obj.payload, fixed=_XIVE_PARTS
            )
        if obj.type_name == "spapr-vio-bridge":
            return QomNode(
                obj.path, obj.type_name, Kind.VIO_BRIDGE, obj=obj, fixed=_VIO_BRIDGE_PARTS
            )
        if obj.type_name in ("icp", "xive-tctx"):
            return QomNode(obj.path, obj.type_name, Kind.PRESENTER, obj=obj)
        return QomNode(obj.path, obj.type_name, Kind.CONTAINER, obj=obj)

    def children(self, node: QomNode) -> list[QomNode]:
        """The node's children (``child<>`` properties), fixed parts first, then modelled ones."""
        out = [
            QomNode(f"{node.path}/{name}", type_name, Kind.FIXED, fixed=sub)
            for name, type_name, sub in node.fixed
        ]
        if node.obj is not None:
            out.extend(self._node_for(child) for child in node.obj.children.values())
        if node.kind is Kind.PHB:
            for drc in self._pci_drcs():
                out.append(
                    QomNode(
                        f"{node.path}/{drc.qom_child_name}", _drc_type(drc), Kind.DRC, payload=drc
                    )
                )
        return out

    def _pci_drcs(self) -> list[DRC]:
        if not self.machine.setup.machine.has_pci_drcs:
            return []  # "dynamic-reconfiguration" off: pseries <= 2.3 has no PCI connectors
        return sorted(
            (d for d in self.machine.drcs if d.type is DrcType.PCI), key=lambda d: d.index
        )

    def child(self, node: QomNode, name: str) -> QomNode | None:
        """The child called ``name``, or the target of the link ``name`` (None if neither)."""
        if node.obj is not None and name in node.obj.children:
            return self._node_for(node.obj.children[name])
        for sub in node.fixed:
            if sub[0] == name:
                return QomNode(f"{node.path}/{name}", sub[1], Kind.FIXED, fixed=sub[2])
        if node.kind is Kind.PHB and name.startswith("dr-connector["):
            for drc in self._pci_drcs():
                if drc.qom_child_name == name:
                    return QomNode(f"{node.path}/{name}", _drc_type(drc), Kind.DRC, payload=drc)
        target = self._link_target(node, name)
        if isinstance(target, QomNode):
            return target
        return None

    def _link_target(self, node: QomNode, name: str) -> QomNode | None:
        if node.kind is Kind.DRC_LINKS and node.obj is not None:
            link = node.obj.links.get(name)
            if link is not None and isinstance(link[1], QomObject):
                return self._node_for(link[1])
            phb = self._phb_node()
            for drc in self._pci_drcs():
                if phb is not None and drc.container_link_name == name:
                    return self.child(phb, drc.qom_child_name)
        if node.kind is Kind.DRC and name == "device":
            return self._drc_device_node(node.payload)
        path = self._intc_link(node, name)
        return None if path is None else self.resolve(path)

    def _intc_link(self, node: QomNode, name: str) -> str | None:
        """Where an interrupt controller's link points: the fabric (the machine), the
        XIVE router, the presenter's vCPU thread, a region's container; None if not one.
        """
        links = {n: t for klass in _DEVICE_CHAINS.get(node.type_name, []) for n, t in klass}
        if node.type_name == "memory-region":
            region = self._xive_regions().get(node.path)
            return None if region is None or name != "container" else region[0]
        if not links.get(name, "").startswith("link<"):
            return None
        if name in ("xive-fabric", "xics"):
            return "/machine"
        if name == "cpu":
            return node.path.rsplit("/", 1)[0]
        xive = self._xive_path()
        return xive if name in ("xive", "presenter") else None

    def _xive_path(self) -> str | None:
        """The spapr-xive device's path, if the machine has one."""
        for obj in self.machine.qom.unattached.children.values():
            if obj.type_name == "spapr-xive":
                return obj.path
        return None

    def _xive_regions(self) -> dict[str, tuple[str, int, int]]:
        """The XIVE controller's memory regions by path: (container, address, size)."""
        xive, path = self.machine.xive, self._xive_path()
        if xive is None or path is None:
            return {}
        esb = f"{path}/source/xive.esb[0]"
        return {
            f"{path}/xive.tima[0]": (SYSTEM_MEMORY, xive.tm_base, xive.tima_length),
            esb: (SYSTEM_MEMORY, xive.vc_base, xive.esb_length),
            f"{path}/source/xive.esb-emulated[0]": (esb, 0, xive.esb_length),
            f"{path}/end_source/xive.end[0]": (SYSTEM_MEMORY, xive.end_base, xive.end_esb_length),
        }

    def _drc_device_node(self, drc: DRC) -> QomNode | None:
        device = drc.device
        if isinstance(device, SpaprCpuCore):
            obj = self.machine.qom.resolve(device.qom_path)
            return None if obj is None else self._node_for(obj)
        if drc.type is DrcType.PHB and drc.id == 0:
            return self._phb_node()
        return None

    def _phb_node(self) -> QomNode | None:
        for obj in self.machine.qom.unattached.children.values():
            if obj.type_name == "spapr-pci-host-bridge":
                return self._node_for(obj)
        return None

    def resolve(self, path: str) -> QomNode | None:
        """object_resolve_path: absolute, or a partial path matching exactly one object."""
        parts = [p for p in path.split("/") if p]
        if path.startswith("/"):
            return self._resolve_from(self.root, parts)
        matches = self._partial_matches(parts)
        return matches[0] if len(matches) == 1 else None

    def ambiguous(self, path: str) -> bool:
        """Whether a partial path matches more than one object."""
        if path.startswith("/"):
            return False
        return len(self._partial_matches([p for p in path.split("/") if p])) > 1

    def _partial_matches(self, parts: Sequence[str]) -> list[QomNode]:
        """The objects a partial path names (two at most: more changes nothing).

        The empty path has no components, so it names every object (checked
        against QEMU 7.2: ``qom-list ""`` is ambiguous).
        """
        matches: list[QomNode] = []
        self._partial(self.root, parts, matches)
        return matches

    def _resolve_from(self, node: QomNode, parts: Sequence[str]) -> QomNode | None:
        cur: QomNode | None = node
        for part in parts:
            if cur is None:
                return None
            cur = self.child(cur, part)
        return cur

    def _partial(self, node: QomNode, parts: Sequence[str], out: list[QomNode]) -> None:
        """object_resolve_partial_path: ``parts`` below any object (no parts: every object)."""
        found = self._resolve_from(node, parts)
        if found is not None and all(found.path != m.path for m in out):
            out.append(found)
        for child in self.children(node):
            if len(out) > 1:
                return
            self._partial(child, parts, out)

    # ------------------------------------------------------------ properties

    def _instance_sequence(self, node: QomNode) -> list[str]:
        """Instance property names in the order QEMU adds them."""
        kind = node.kind
        if kind is Kind.MACHINE:
            return self._machine_sequence()
        if kind is Kind.THREAD:
            seq = self._gpio_names()
            assert node.obj is not None
            seq += [name for name in node.obj.children if name not in seq]
            return seq
        if kind is Kind.DRC:
            seq = [name for name, _ in DRC_INSTANCE]
            if self._drc_attached(node.payload):
                seq.append("device")
            return seq
        if kind is Kind.DRC_LINKS:
            assert node.obj is not None
            return list(node.obj.links) + [d.container_link_name for d in self._pci_drcs()]
        if node.type_name == "memory-region":
            return [name for name, _ in MEMORY_REGION_INSTANCE]
        return [n.name for n in self.children(node)]

    def _gpio_names(self) -> list[str]:
        return [f"unnamed-gpio-in[{i}]" for i in range(self._gpio_inputs)]

    def _numa_ram_container(self) -> bool:
        """NUMA nodes take their memory from -object memory backends (checked against QEMU 7.2)."""
        setup = self.machine.setup
        return bool(setup.numa_node_mem) and bool(setup.memory_backends)

    def _machine_sequence(self) -> list[str]:
        mtype = self.machine.setup.machine
        seq = ["peripheral", "peripheral-anon"]
        if mtype.nvdimm_supported:
            seq += ["nvdimm", "nvdimm-persistence"]
        seq += ["hmat"]
        seq += ["kvm-type", "modern-hotplug-events", "max-cpu-compat", "resize-hpt", "vsmt"]
        seq += ["vfio-no-msix-emulation", "kernel-addr", "x-vof", "ic-mode", "host-model"]
        seq += ["host-serial", "unattached"]
        if self._numa_ram_container():
            seq += [_NUMA_RAM_PARTS[0][0]]  # board init: numa_complete_configuration
        if self.machine.has_xics:
            seq += ["ics"]
        drcs = [
            obj
            for obj in self.machine.qom.machine.children.values()
            if isinstance(obj.payload, DRC)
        ]
        seq += [obj.name for obj in drcs if obj.payload.type is DrcType.CPU]
        seq += ["rtc", "rtc-time"]
        seq += [obj.name for obj in drcs if obj.payload.type is DrcType.PHB]
        seq += ["wdt1", "wdt2", "wdt3", "wdt4"]
        return seq

    def _class_chain(self, node: QomNode) -> list[tuple[tuple[str, str], ...]]:
        kind = node.kind
        if kind is Kind.MACHINE:
            return [(), SPAPR_MACHINE_CLASS, MACHINE_CLASS, OBJECT_CLASS]
        if kind is Kind.CORE:
            return [(), SPAPR_CORE_CLASS, CPU_CORE_CLASS, DEVICE_CLASS, OBJECT_CLASS]
        if kind is Kind.THREAD:
            return [(), (), PPC64_CPU_CLASS, CPU_CLASS, DEVICE_CLASS, OBJECT_CLASS]
        if node.type_name in _DEVICE_CHAINS:
            return _DEVICE_CHAINS[node.type_name]
        if kind in (Kind.DRC, Kind.PRESENTER, Kind.PHB, Kind.XIVE, Kind.VIO_BRIDGE):
            return [(), DEVICE_CLASS, OBJECT_CLASS]
        return [(), OBJECT_CLASS]

    def _instance_types(self, node: QomNode) -> dict[str, str]:
        types = {c.name: f"child<{c.type_name}>" for c in self.children(node)}
        if node.kind is Kind.MACHINE:
            types.update(MACHINE_INSTANCE_TYPES)
        elif node.type_name == "memory-region":
            types.update(dict(MEMORY_REGION_INSTANCE))
        elif node.kind is Kind.DRC:
            types.update(dict(DRC_INSTANCE))
            target = self._drc_device_node(node.payload)
            if target is not None:
                types["device"] = f"link<{target.type_name}>"
        elif node.kind is Kind.DRC_LINKS and node.obj is not None:
            types.update({d.container_link_name: f"link<{_drc_type(d)}>" for d in self._pci_drcs()})
            types.update({name: link[0] for name, link in node.obj.links.items()})
        return types

    @staticmethod
    def _drc_attached(drc: DRC) -> bool:
        """A core is attached, or it is PHB 0's connector (the host bridge is cold-plugged)."""
        return drc.device is not None or (drc.type is DrcType.PHB and drc.id == 0)

    def _table_for(self, node: QomNode) -> GHashTableModel:
        if node.obj is not None:
            table = self._tables.get(node.obj)
            if table is None:
                table = GHashTableModel.from_keys(self._instance_sequence(node))
                self._tables[node.obj] = table
            return table
        table = self._fixed_tables.get(node.path)
        if table is None:
            table = GHashTableModel.from_keys(self._instance_sequence(node))
            self._fixed_tables[node.path] = table
        return table

    def _update(self, node: QomNode) -> None:
        """Bring the node's live table in line with its current instance properties."""
        wanted = tuple(self._instance_sequence(node))
        if node.obj is not None and self._synced.get(node.obj) == wanted:
            return
        table = self._table_for(node)
        wanted_set = set(wanted)
        for name in list(table):
            if name not in wanted_set:
                table.remove(name)
        for name in wanted:
            if name not in table:
                table.insert(name)
        if node.obj is not None:
            self._synced[node.obj] = wanted

    def _quick_sequence(self, obj: QomObject) -> tuple[str, ...]:
        """What :meth:`_instance_sequence` gives for a container or a DRC, cheaply."""
        payload = obj.payload
        if isinstance(payload, DRC):
            return self._drc_base + (("device",) if self._drc_attached(payload) else ())
        fixed = _UNATTACHED_PARTS if obj is self.machine.qom.unattached else ()
        return tuple(name for name, _, _ in fixed) + tuple(obj.children)

    def sync(self) -> None:
        """Record additions and removals since the last call (containers, CPU DRC links).

        Of the connectors, only those the machine's table reports as touched since the
        previous sync are looked at (all of them the first time).
        """
        touched = self._drc_watch.take()
        if touched is None:
            objects = self._dynamic
        else:
            drc_objects = self._drc_objects
            objects = self._containers + [
                obj for drc in touched if (obj := drc_objects.get(drc)) is not None
            ]
        synced = self._synced
        for obj in objects:
            wanted = self._quick_sequence(obj)
            previous = synced.get(obj)
            if previous != wanted and not self._update_small(obj, previous, wanted):
                self._update(self._node_for(obj))

    def _update_small(
        self, obj: QomObject, previous: tuple[str, ...] | None, wanted: tuple[str, ...]
    ) -> bool:
        """:meth:`_update` for at most one name gone and one come (a device plugged or
        unplugged): the same table operations in the same order, without building the
        node's children. False (nothing done) when the change is bigger.
        """
        table = self._tables.get(obj)
        if previous is None or table is None:
            return False
        before, after = set(previous), set(wanted)
        gone, come = before - after, after - before
        if len(gone) > 1 or len(come) > 1:
            return False
        for name in gone:
            table.remove(name)
        for name in come:
            table.insert(name)
        self._synced[obj] = wanted
        return True

    def qom_list(self, node: QomNode) -> list[dict[str, str]]:
        """qom-list's answer: [{"name", "type"}] in QEMU's order."""
        if node.obj is not None and node.kind in (Kind.CONTAINER, Kind.DRC):
            self._update(node)
        instance = self._table_for(node)
        chain = self._class_chain(node)
        names = qom_list_order(
            instance, [GHashTableModel.from_keys(n for n, _ in c) for c in chain]
        )
        types = self._instance_types(node)
        for klass in chain:
            types.update(dict(klass))
        return [{"name": name, "type": types.get(name, "unknown")} for name in names]

    def qom_get(self, node: QomNode, prop: str) -> Any:
        """qom-get: the property's value, or QemuError with QEMU's text."""
        names = {entry["name"] for entry in self.qom_list(node)}
        if prop not in names:
            raise QemuError(f"Property '{node.type_name}.{prop}' not found")
        if prop == "type":
            return node.type_name
        child = self.child(node, prop)
        types = self._instance_types(node)
        if types.get(prop, "").startswith(("child<", "link<")):
            return "" if child is None else child.path
        if child is not None:  # a class link whose target is modelled
            return child.path
        value = self._value(node, prop)
        if value is _UNMODELLED:
            raise QemuError(f"Property '{node.type_name}.{prop}' is not modelled by this emulator")
        return value

    def _value(self, node: QomNode, prop: str) -> Any:
        kind = node.kind
        if prop == "parent_bus":
            return SYSBUS if kind is Kind.XIVE else ""
        if prop.startswith("legacy-"):
            raise QemuError(f"Property '{node.type_name}.{prop}' is not readable")
        if prop == "realized":
            return True
        if prop == "hotpluggable":
            return True
        if kind is Kind.DRC:
            drc: DRC = node.payload
            if prop == "hotplugged":
                return False
            if prop == "id":
                return drc.id
            if prop == "index":
                return drc.index
            if prop == "fdt":
                return None if drc.fragment is None else fdt_struct(drc.fragment)
        if kind is Kind.CORE:
            core: SpaprCpuCore = node.payload
            values: dict[str, Any] = {
                "hotplugged": core.hotplugged,
                "core-id": core.core_id,
                "nr-threads": core.nr_threads,
                "node-id": core.node_id,
                "pre-3.0-migration": False,
            }
            if prop in values:
                return values[prop]
        if kind is Kind.THREAD:
            if prop == "hotplugged":
                return self._thread_hotplugged(node.path)
            if prop == "memory":
                return "/machine/unattached/system[0]"
            if prop == "start-powered-off":
                return True
            if prop.startswith("pre-"):
                return False
        if kind is Kind.PRESENTER and prop == "hotplugged":
            return self._thread_hotplugged(node.path.rsplit("/", 1)[0])
        if kind in (Kind.PHB, Kind.XIVE, Kind.VIO_BRIDGE) and prop == "hotplugged":
            return False
        if kind is Kind.MACHINE:
            return self._machine_value(prop)
        return self._intc_value(node, prop)

    def _thread_hotplugged(self, thread_path: str) -> bool:
        """Whether the thread at ``thread_path`` (and so its presenters) was hot-plugged."""
        core = self.resolve(thread_path.rsplit("/", 1)[0])
        payload = None if core is None else core.payload
        return isinstance(payload, SpaprCpuCore) and payload.hotplugged

    def _intc_value(self, node: QomNode, prop: str) -> Any:
        """The interrupt controllers' numbers, read from the machine's own controllers."""
        xive, kind = self.machine.xive, node.type_name
        if kind in ("xive-source", "xive-end-source", "ics-spapr") and prop == "hotplugged":
            return False
        if kind == "memory-region":
            region = self._xive_regions().get(node.path)
            if region is not None and prop in ("addr", "size", "priority"):
                return {"addr": region[1], "size": region[2], "priority": 0}[prop]
        if kind == "ics-spapr" and prop == "nr-irqs":
            return self.machine.xics.ics.nr_irqs
        if xive is None:
            return _UNMODELLED
        values: dict[str, dict[str, Any]] = {
            "spapr-xive": {
                "nr-irqs": xive.nr_irqs,
                "nr-ends": xive.nr_ends,
                "vc-base": xive.vc_base,
                "tm-base": xive.tm_base,
                "hv-prio": xive.hv_prio,
            },
            "xive-source": {
                "nr-irqs": xive.source.nr_irqs,
                "shift": ESB_SHIFT,
                "flags": SOURCE_ESB_FLAGS,
            },
            "xive-end-source": {"nr-ends": xive.end_esb_count, "shift": END_ESB_SHIFT},
        }
        return values.get(kind, {}).get(prop, _UNMODELLED)

    def _machine_value(self, prop: str) -> Any:
        setup = self.machine.setup
        values: dict[str, Any] = {
            "vsmt": self.machine.topology.vsmt,
            "ic-mode": setup.ic_mode,
            "resize-hpt": setup.resize_hpt,
            "modern-hotplug-events": setup.modern_hotplug_events,
        }
        return values.get(prop, _UNMODELLED)

    # ------------------------------------------------------------ info qom-tree

    def composition(self, node: QomNode, indent: int = 0) -> Iterator[str]:
        """print_qom_composition: ``/name (type)`` lines, children sorted by name."""
        yield f"{' ' * indent}/{node.name} ({node.type_name})"
        for child in sorted(self.children(node), key=lambda c: c.name.encode()):
            yield from self.composition(child, indent + 2)


_UNMODELLED = object()


def _drc_type(drc: DRC) -> str:
    return drc.type.qom_type or f"spapr-drc-{drc.type.name.lower()}"
