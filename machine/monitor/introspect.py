"""What the monitor says about the emulator itself: types, machines, CPU models, options.

These are the answers a management tool (libvirt) asks for before it starts a
domain: ``query-target``, ``query-kvm``, ``qom-list-types``,
``device-list-properties``, ``qom-list-properties``, ``query-machines``,
``query-cpu-definitions``, ``query-command-line-options`` and the migration
capabilities. They do not depend on a running machine (QEMU answers them under
``-machine none`` too), and every one is derived from the emulator's own tables —
the machine versions (``machine.config.machine_types``), the CPU models with an
sPAPR core (``spapr.cpu_models``), the QOM class tables (``machine.monitor.qom_props``),
the command line's option lists — so what is listed is what this emulator has. The
formats, and the names QEMU gives the parents of each type, are QEMU 7.2's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from machine.config.machine_types import MACHINE_TYPES, MachineType
from machine.config.numa import MEMORY_BACKEND_TYPES
from machine.monitor.qom_props import (
    CPU_CLASS,
    CPU_CORE_CLASS,
    DEVICE_CLASS,
    MACHINE_CLASS,
    MACHINE_INSTANCE_TYPES,
    OBJECT_CLASS,
    PPC64_CPU_CLASS,
    SPAPR_CORE_CLASS,
    SPAPR_MACHINE_CLASS,
)
from spapr.cpu_models import CPU_MODELS, CPU_TYPE_SUFFIX, CpuModel
from spapr.cpu_names import CPU_ALIASES
from spapr.errors import QemuError

#: ``query-target``: this is qemu-system-ppc64.
TARGET_ARCH = "ppc64"
#: The ``none`` machine: no CPU unless asked, one at most, RAM id "ram" (QEMU 7.2's values).
NONE_MACHINE = "none"


@attrs.frozen
class QomType:
    """A QOM type: its name, its parent and whether it is abstract."""

    name: str
    parent: str | None
    abstract: bool = False


def _family_type(model: CpuModel) -> str:
    return f"{model.family}-family-powerpc64-cpu"


def _type_table() -> tuple[QomType, ...]:
    """Every QOM type this emulator creates objects of, with its ancestors."""
    types = [
        QomType("object", None, True),
        QomType("device", "object", True),
        QomType("machine", "object", True),
        QomType("spapr-machine", "machine", True),
        QomType("none-machine", "machine"),
        QomType("container", "object"),
        QomType("cpu-core", "device", True),
        QomType("spapr-cpu-core", "cpu-core", True),
        QomType("cpu", "device", True),
        QomType("powerpc64-cpu", "cpu", True),
        QomType("spapr-dr-connector", "device", True),
        QomType("spapr-drc-logical", "spapr-dr-connector", True),
        QomType("spapr-drc-physical", "spapr-dr-connector", True),
        QomType("spapr-drc-cpu", "spapr-drc-logical"),
        QomType("spapr-drc-phb", "spapr-drc-logical"),
        QomType("spapr-drc-pci", "spapr-drc-physical"),
        QomType("icp", "device"),
        QomType("ics", "device", True),
        QomType("ics-spapr", "ics"),
        QomType("xive-tctx", "device"),
        QomType("xive-source", "device"),
        QomType("xive-end-source", "device"),
        QomType("sys-bus-device", "device", True),
        QomType("xive-router", "sys-bus-device", True),
        QomType("spapr-xive", "xive-router"),
        QomType("spapr-vio-bridge", "sys-bus-device"),
        QomType("bus", "object", True),
        QomType("spapr-vio-bus", "bus"),
        QomType("vio-spapr-device", "device", True),
        QomType("spapr-nvram", "vio-spapr-device"),
        QomType("pci-host-bridge", "sys-bus-device", True),
        QomType("spapr-pci-host-bridge", "pci-host-bridge"),
        QomType("spapr-tce-table", "device"),
        QomType("spapr-rtc", "device"),
        QomType("spapr-wdt", "device"),
        QomType("memory-region", "object"),
        QomType("iommu-memory-region", "memory-region", True),
        QomType("spapr-iommu-memory-region", "iommu-memory-region"),
        QomType("irq", "object"),
        QomType("memory-backend", "object", True),
        QomType("memory-backend-ram", "memory-backend"),
        QomType("memory-backend-file", "memory-backend"),
        QomType("memory-backend-memfd", "memory-backend"),
        QomType("secret_common", "object", True),
        QomType("secret", "secret_common"),
        QomType("accel", "object", True),
        QomType("tcg-accel", "accel"),
        QomType("kvm-accel", "accel"),  # the modeled KVM (machine.config.accel)
    ]
    types += [QomType(m.qom_type, "spapr-machine") for m in MACHINE_TYPES]
    families = sorted({_family_type(m) for m in CPU_MODELS})
    types += [QomType(f, "powerpc64-cpu", True) for f in families]
    types += [QomType(m.cpu_type + CPU_TYPE_SUFFIX, _family_type(m)) for m in CPU_MODELS]
    types += [QomType(m.core_type, "spapr-cpu-core") for m in CPU_MODELS]
    return tuple(types)


QOM_TYPES: tuple[QomType, ...] = _type_table()
_BY_NAME: dict[str, QomType] = {t.name: t for t in QOM_TYPES}


def ancestors(name: str) -> Iterator[str]:
    """The type and its parents, nearest first."""
    current: str | None = name
    while current is not None:
        yield current
        current = _BY_NAME[current].parent


def qom_list_types(implements: str | None = None, abstract: bool = False) -> list[dict[str, Any]]:
    """``qom-list-types``: concrete types (and abstract ones if asked), optionally of one kind."""
    out: list[dict[str, Any]] = []
    if implements is not None and implements not in _BY_NAME:
        return out
    for t in QOM_TYPES:
        if t.abstract and not abstract:
            continue
        if implements is not None and implements not in ancestors(t.name):
            continue
        entry: dict[str, Any] = {"name": t.name}
        if t.abstract:
            entry["abstract"] = True
        if t.parent is not None:
            entry["parent"] = t.parent
        out.append(entry)
    return out


def _props(*tables: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [{"name": name, "type": kind} for table in tables for name, kind in table]


#: device-list-properties of a core type: its qdev properties (QEMU's format).
CORE_DEVICE_PROPERTIES: tuple[dict[str, Any], ...] = (
    {"name": "node-id", "type": "int32", "default-value": -1},
    {"name": "pre-3.0-migration", "type": "bool", "default-value": False},
    {"name": "core-id", "type": "int"},
    {"name": "nr-threads", "type": "int"},
)
_MEMORY_BACKEND_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("size", "int"),
    ("merge", "bool"),
    ("dump", "bool"),
    ("host-nodes", "int"),
    ("policy", "HostMemPolicy"),
    ("prealloc", "bool"),
    ("prealloc-threads", "int"),
    ("share", "bool"),
    ("reserve", "bool"),
)
_SECRET_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("loaded", "bool"),
    ("format", "QCryptoSecretFormat"),
    ("keyid", "string"),
    ("iv", "string"),
    ("data", "string"),
    ("file", "string"),
)


def _check_type(typename: str) -> QomType:
    t = _BY_NAME.get(typename)
    if t is None:
        raise QemuError(f"Class '{typename}' not found", "DeviceNotFound")
    return t


def device_list_properties(typename: str) -> list[dict[str, Any]]:
    """``device-list-properties``: the properties of a device ``-device`` can create.

    Only CPU cores can be created with ``-device``/``device_add`` here; for any other
    type the answer is the one ``-device`` gives, that there is no such device model.
    """
    t = _BY_NAME.get(typename)
    if t is not None and t.abstract and "device" in ancestors(typename):
        raise QemuError("Parameter 'typename' expects a non-abstract device type")
    if t is None or "spapr-cpu-core" not in ancestors(typename):
        raise QemuError(f"Device '{typename}' not found", "DeviceNotFound")
    return [dict(p) for p in CORE_DEVICE_PROPERTIES]


def qom_list_properties(typename: str) -> list[dict[str, Any]]:
    """``qom-list-properties``: a class's properties (machines, cores, CPUs, backends)."""
    _check_type(typename)
    chain = list(ancestors(typename))
    if "machine" in chain:
        tables = [OBJECT_CLASS, MACHINE_CLASS]
        if "spapr-machine" in chain:
            tables.append(SPAPR_MACHINE_CLASS)
            # rtc-time is the RTC's, aliased onto the machine when it is built: not listed
            tables.append(
                tuple((k, v) for k, v in MACHINE_INSTANCE_TYPES.items() if k != "rtc-time")
            )
        return _props(*tables)
    if "spapr-cpu-core" in chain:
        return _props(OBJECT_CLASS, DEVICE_CLASS, CPU_CORE_CLASS, SPAPR_CORE_CLASS)
    if "powerpc64-cpu" in chain:
        return _props(OBJECT_CLASS, DEVICE_CLASS, CPU_CLASS, PPC64_CPU_CLASS)
    if "memory-backend" in chain:
        own = MEMORY_BACKEND_TYPES.get(typename, ())
        return _props(OBJECT_CLASS, _MEMORY_BACKEND_PROPERTIES, own)
    if "secret_common" in chain:
        return _props(OBJECT_CLASS, _SECRET_PROPERTIES)
    raise QemuError(f"the properties of class '{typename}' are not modeled by this emulator")


def _machine_entry(m: MachineType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "hotpluggable-cpus": m.has_hotpluggable_cpus,
        "name": m.name,
        "numa-mem-supported": m.numa_mem_supported,
        "default-cpu-type": m.default_cpu_type + CPU_TYPE_SUFFIX,
    }
    if m.is_default:
        entry["is-default"] = True
    entry.update({"cpu-max": _max_cpus(), "deprecated": False, "default-ram-id": m.default_ram_id})
    if m.alias is not None:
        entry["alias"] = m.alias
    return entry


def _max_cpus() -> int:
    from machine.config.machine_types import SPAPR_MAX_CPUS

    return SPAPR_MAX_CPUS


def query_machines() -> list[dict[str, Any]]:
    """``query-machines``: every pseries version, then ``none``."""
    out = [_machine_entry(m) for m in MACHINE_TYPES]
    out.append(
        {
            "hotpluggable-cpus": False,
            "name": NONE_MACHINE,
            "numa-mem-supported": False,
            "cpu-max": 1,
            "deprecated": False,
            "default-ram-id": "ram",
        }
    )
    return out


def query_cpu_definitions() -> list[dict[str, Any]]:
    """``query-cpu-definitions``: the CPU models with an sPAPR core and their aliases."""
    out = []
    for model in CPU_MODELS:
        out.append(_cpu_def(model.cpu_type, model.cpu_type))
    for alias, target in CPU_ALIASES.items():
        if any(m.cpu_type == target for m in CPU_MODELS):
            out.append(_cpu_def(alias, target))
    return out


def _cpu_def(name: str, cpu_type: str) -> dict[str, Any]:
    return {
        "name": name,
        "typename": cpu_type + CPU_TYPE_SUFFIX,
        "static": False,
        "deprecated": False,
    }


def query_kvm(is_kvm: bool) -> dict[str, bool]:
    """``query-kvm``: the modeled KVM is always there; enabled when the machine uses it."""
    return {"enabled": is_kvm, "present": True}


#: QEMU 7.2's migration capabilities, in its order (names are QEMU's).
MIGRATION_CAPABILITIES = (
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress", "events",
    "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
    "late-block-activate", "x-ignore-shared", "validate-uuid", "background-snapshot",
    "zero-copy-send", "postcopy-preempt",
)  # fmt: skip
#: The capabilities this emulator's migration honours when set (the others are refused).
SETTABLE_MIGRATION_CAPABILITIES = frozenset(["events"])


__all__ = [
    "MIGRATION_CAPABILITIES",
    "NONE_MACHINE",
    "QOM_TYPES",
    "SETTABLE_MIGRATION_CAPABILITIES",
    "TARGET_ARCH",
    "QomType",
    "ancestors",
    "device_list_properties",
    "qom_list_properties",
    "qom_list_types",
    "query_cpu_definitions",
    "query_kvm",
    "query_machines",
]
