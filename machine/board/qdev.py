"""The generic device layer of device_add / device_del (QEMU's qdev-monitor), for cores.

Before the machine's hotplug handler sees a core, QEMU validates the request in a
fixed order: the ``id`` syntax, the ``driver`` (known, a device, not abstract), the
migration state, the duplicate id, then each property through the keyval visitor
(strings parsed as C integers, so ``"3"`` and ``"0x3"`` work and 2**40 wraps to a C
int). This module reproduces that order and those texts and yields a
:class:`~spapr.cpu_core.SpaprCpuCore` ready for pre-plug.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from machine.config.qemu_opts import id_wellformed, qdict_order, strtoi64
from spapr.cpu_core import NODE_ID_UNSET, SpaprCpuCore, wrap_int32
from spapr.cpu_models import ABSTRACT_CORE_TYPE, CPU_TYPE_SUFFIX, CpuModel, by_core_type
from spapr.cpu_names import KNOWN_CPU_TYPES
from spapr.errors import QemuError

#: Properties a spapr core accepts from device_add (cpu-core's and spapr-cpu-core's own).
CORE_PROPERTIES = ("core-id", "nr-threads", "node-id", "pre-3.0-migration")
#: Device properties every qdev has but device_add may not set (``realized`` is
#: writable: off is a no-op, on realizes the device there and then -- see
#: :func:`realize_requested`).
READ_ONLY_PROPERTIES = ("hotplugged", "hotpluggable", "parent_bus", "type")
#: Keys of a device_add request that are not properties.
_NON_PROPERTY_KEYS = ("driver", "bus", "id")


def qmp_value_to_opt(value: Any) -> str | None:
    """qemu_opts_from_qdict: scalars become option strings; others are refused (None).

    A JSON number that is not an integer (``2.0``, ``1e3``, or an integer too large
    for 64 bits) is a double in QEMU and becomes ``%.17g`` text (qnum_to_string), so
    ``"core-id": 2.0`` reads as core-id 2 and ``2.5`` is refused as not an integer.
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.17g}"
    if isinstance(value, str):
        return value
    return None


def parse_keyval_bool(name: str, text: str) -> bool:
    """The keyval visitor's bool parsing."""
    if text in ("on", "yes", "true", "y"):
        return True
    if text in ("off", "no", "false", "n"):
        return False
    raise QemuError(f"Parameter '{name}' expects 'on' or 'off'")


@attrs.frozen
class CoreRequest:
    """A validated device_add of a spapr core, before the hotplug handler's checks."""

    driver: str
    model: CpuModel
    dev_id: str | None
    properties: tuple[tuple[str, str], ...]


def parse_device_add(
    args: Mapping[str, Any],
    *,
    legacy_core_names: bool = False,
    migrating: bool = False,
    existing_ids: frozenset[str] | set[str] = frozenset(),
    machine_core_types: Mapping[str, CpuModel] | None = None,
) -> CoreRequest:
    """Validate a device_add request (QMP arguments or parsed -device/HMP options)."""
    options: list[tuple[str, str]] = []
    for key in qdict_order(list(args)):
        if key == "id" and not isinstance(args[key], str):
            continue  # qemu_opts_from_qdict takes the id with qdict_get_try_str: a string or none
        text = qmp_value_to_opt(args[key])
        if text is None:
            continue  # qemu_opts_from_qdict drops lists and dictionaries silently
        options.append((key, text))
    opts = dict(options)
    dev_id = opts.get("id")
    if dev_id is not None and not id_wellformed(dev_id):
        raise QemuError("Parameter 'id' expects an identifier")
    driver = opts.get("driver")
    if driver is None:
        raise QemuError("Parameter 'driver' is missing")
    model = by_core_type(driver, legacy_names=legacy_core_names)
    if model is None and machine_core_types:
        model = machine_core_types.get(driver)
    if model is None:
        if driver == ABSTRACT_CORE_TYPE:
            raise QemuError("Parameter 'driver' expects a non-abstract device type")
        if driver.endswith(CPU_TYPE_SUFFIX) and driver[: -len(CPU_TYPE_SUFFIX)] in KNOWN_CPU_TYPES:
            raise QemuError("Parameter 'driver' expects a pluggable device type")
        raise QemuError(f"'{driver}' is not a valid device model name")
    if "bus" in opts:
        raise QemuError(f"Bus '{opts['bus']}' not found")
    if migrating:
        raise QemuError("device_add not allowed while migrating")
    if dev_id is not None and dev_id in existing_ids:
        raise QemuError(f"Duplicate device ID '{dev_id}'")
    props = tuple((k, v) for k, v in options if k not in _NON_PROPERTY_KEYS)
    return CoreRequest(driver, model, dev_id, props)


def realize_requested(request: CoreRequest) -> bool:
    """The request sets ``realized=on`` (QEMU's setter then realizes the core at once).

    QEMU 7.2 runs the hotplug checks and realize right in the setter: a refusal
    comes back as usual, but a success is followed by qdev_device_add's own
    realize, which asserts (``!dev->realized``) and aborts QEMU. The machine gives
    QEMU's refusal when there is one, and a clear refusal instead of the abort.
    """
    return any(
        name == "realized" and parse_keyval_bool(name, text) for name, text in request.properties
    )


def build_core(request: CoreRequest, *, smp_threads: int, hotplugged: bool) -> SpaprCpuCore:
    """Create the core object and set its properties in order (QEMU's qdev_new + setters)."""
    core = SpaprCpuCore(
        type_name=request.driver if request.driver.startswith("host-") else request.model.core_type,
        model=request.model,
        core_id=0,
        nr_threads=smp_threads,
        node_id=NODE_ID_UNSET,
        dev_id=request.dev_id,
        hotplugged=hotplugged,
    )
    for name, text in request.properties:
        # QEMU names the object's own type (host-spapr-cpu-core under KVM's -cpu host).
        if name in READ_ONLY_PROPERTIES:
            raise QemuError(f"Property '{core.type_name}.{name}' is not writable")
        if name in ("pre-3.0-migration", "realized"):
            parse_keyval_bool(name, text)
            continue
        if name not in CORE_PROPERTIES:
            raise QemuError(f"Property '{core.type_name}.{name}' not found")
        value = strtoi64(text)
        if value is None:
            raise QemuError(f"Parameter '{name}' expects integer")
        if name == "core-id":
            if value < 0:
                raise QemuError(f"Invalid core id {value}")
            core.core_id = wrap_int32(value)
        elif name == "nr-threads":
            core.nr_threads = wrap_int32(value)
        else:  # node-id, an int32 property
            if not -(1 << 31) <= value < (1 << 31):
                raise QemuError(f"Parameter '{name}' expects int32_t")
            core.node_id = value
    return core
