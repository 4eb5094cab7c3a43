"""In-kernel CPU DLPAR as Linux 6.1 does it (pseries/dlpar.c and hotplug-cpu.c).

Add by DRC index: check /cpus (no node with that index yet; index listed in
``ibm,drc-indexes``), acquire the DRC (entity sense must be UNUSABLE, then
allocation USABLE, then UNISOLATE), walk ibm,configure-connector into new nodes,
attach them under /cpus (the notifier marks the threads present), online each
thread (query-cpu-stopped-state, start-cpu). Remove by DRC index: find the node,
offline each online thread (refusing the last online CPU), release the DRC
(entity sense must be PRESENT, then ISOLATE, then UNUSABLE), detach the node.
Any failed removal is signalled back by UNISOLATE when the DRC still senses
PRESENT (Linux >= 5.13).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from guest import topology
from guest.connector import (
    CcAction,
    ConnectorError,
    ConnectorWalk,
    busy_delay_ms,
    initial_work_area,
)
from guest.kernel import EBUSY, EINVAL, ENODEV, Gen
from guest.log import LogLevel
from guest.state import DrcOutcome
from guest.tasks import Reschedule, Sleep
from rtas import HotplugAction, HotplugIdType, HotplugResource
from rtas.codes import CC_WORK_AREA_SIZE, AllocationState, EntitySense, IsolationState, SensorType
from rtas.errlog import HotplugSection

if TYPE_CHECKING:
    from collections.abc import Generator

    import fdt
    from guest.kernel import Kernel

HOTPLUG_CPU = "pseries-hotplug-cpu: "
DLPAR = "dlpar: "
_U32 = 0xFFFF_FFFF
_MS = 1_000_000


class Abandoned:
    """The configure-connector walk was dropped on purpose (misbehaving guest)."""


ABANDONED = Abandoned()


def handle_dlpar_errorlog(k: Kernel, hp: HotplugSection) -> Gen:
    """pseries_hp_work_fn -> handle_dlpar_errorlog: dispatch by resource."""
    if hp.resource is HotplugResource.CPU:
        yield from k.lock_device_hotplug()
        k.in_dlpar = True
        yield from dlpar_cpu(k, hp)
        k.in_dlpar = False
        yield from k.unlock_device_hotplug()
    elif hp.resource in (HotplugResource.MEMORY, HotplugResource.PMEM):
        k.printk(LogLevel.INFO, f"{DLPAR}{hp.resource.name.lower()} DLPAR is not modelled")
    else:
        k.printk(LogLevel.WARNING, f"{DLPAR}Invalid resource ({int(hp.resource)}) specified")


def dlpar_cpu(k: Kernel, hp: HotplugSection) -> Generator[Any, Any, int]:
    """dlpar_cpu: ADD or REMOVE by DRC index (other id types are -EINVAL)."""
    index = hp.drc_index if hp.drc_index is not None else 0
    by_index = hp.id_type is HotplugIdType.DRC_INDEX
    if hp.action is HotplugAction.REMOVE:
        if not by_index:
            return -EINVAL
        rc = yield from dlpar_cpu_remove_by_index(k, index)
        if rc == 0:
            k.record_drc(index, "remove", DrcOutcome.REMOVED)
            return 0
        signalled = yield from dlpar_unisolate_drc(k, index)
        outcome = DrcOutcome.REMOVE_REFUSED if signalled == 0 else DrcOutcome.REMOVE_FAILED
        k.record_drc(index, "remove", outcome, rc)
        return rc
    if hp.action is HotplugAction.ADD:
        if not by_index:
            return -EINVAL
        added = yield from dlpar_cpu_add(k, index)
        if added is None:
            k.record_drc(index, "add", DrcOutcome.ABANDONED)
            return 0
        if added == 0:
            k.record_drc(index, "add", DrcOutcome.ADDED)
        else:
            k.record_drc(index, "add", DrcOutcome.ADD_FAILED, added)
        return added
    k.printk(LogLevel.ERR, f"{HOTPLUG_CPU}Invalid action ({int(hp.action)}) specified")
    return -EINVAL


# ------------------------------------------------------------------ DRC helpers


def dlpar_acquire_drc(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """Entity sense must be UNUSABLE; then allocation USABLE and UNISOLATE."""
    rc, state = yield from k.rtas_get_sensor(SensorType.ENTITY_SENSE, index)
    if rc or state != EntitySense.UNUSABLE:
        return -1
    rc = yield from k.rtas_set_indicator(SensorType.ALLOCATION_STATE, index, AllocationState.USABLE)
    if rc:
        return rc
    rc = yield from k.rtas_set_indicator(
        SensorType.ISOLATION_STATE, index, IsolationState.UNISOLATED
    )
    if rc:
        yield from k.rtas_set_indicator(
            SensorType.ALLOCATION_STATE, index, AllocationState.UNUSABLE
        )
        return rc
    return 0


def dlpar_release_drc(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """Entity sense must be PRESENT; then ISOLATE and UNUSABLE (re-UNISOLATE on failure)."""
    rc, state = yield from k.rtas_get_sensor(SensorType.ENTITY_SENSE, index)
    if rc or state != EntitySense.PRESENT:
        return -1
    rc = yield from k.rtas_set_indicator(SensorType.ISOLATION_STATE, index, IsolationState.ISOLATED)
    if rc:
        return rc
    rc = yield from k.rtas_set_indicator(
        SensorType.ALLOCATION_STATE, index, AllocationState.UNUSABLE
    )
    if rc:
        yield from k.rtas_set_indicator(
            SensorType.ISOLATION_STATE, index, IsolationState.UNISOLATED
        )
        return rc
    return 0


def dlpar_unisolate_drc(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """The hint that a removal failed: UNISOLATE if the DRC still senses PRESENT."""
    rc, state = yield from k.rtas_get_sensor(SensorType.ENTITY_SENSE, index)
    if rc or state != EntitySense.PRESENT:
        return -1
    yield from k.rtas_set_indicator(SensorType.ISOLATION_STATE, index, IsolationState.UNISOLATED)
    return 0


def dlpar_configure_connector(
    k: Kernel, index: int
) -> Generator[Any, Any, list[fdt.Node] | Abandoned | None]:
    """Call ibm,configure-connector until it completes; None on any failure.

    The 4 KiB work area is kept in the caller's own copy and copied into
    ``rtas_data_buf`` before each call and back after it, as Linux does.
    """
    if "ibm,configure-connector" not in k.tokens:
        return None
    wa_index = k.wrong_drc_index(index)
    data = initial_work_area(wa_index)
    walk = ConnectorWalk(index)
    calls = 0
    limit = k.misbehavior.abandon_configure_after
    while True:
        if limit is not None and calls >= limit:
            k.printk(
                LogLevel.WARNING,
                f"misbehaving guest: abandoning configure-connector for drc index {index:x} "
                f"after {calls} calls",
            )
            return ABANDONED
        cpu = k.current
        yield from k.spin_lock(cpu, k.rtas_data_lock)
        k.memory.write(k.rtas_data_buf, data)
        result = yield from k.rtas_call(
            cpu, "ibm,configure-connector", [k.rtas_data_buf & _U32, 0], 1
        )
        data = bytearray(k.memory.read(k.rtas_data_buf, CC_WORK_AREA_SIZE))
        k.rtas_data_lock.release()
        calls += 1
        rc = result.status
        if wa_index != index:
            k.printk(
                LogLevel.WARNING,
                f"wrong-index guest: ibm,configure-connector on drc index {wa_index:x} "
                f"returned {rc}",
            )
        delay = busy_delay_ms(rc)
        if delay is not None:
            yield Sleep(delay * _MS) if delay else Reschedule()
            continue
        action = ConnectorWalk.action(rc)
        try:
            if action is CcAction.DONE:
                return walk.nodes()
            if action is CcAction.NODE:
                walk.step(rc, bytes(data))
                continue
        except ConnectorError as exc:
            k.printk(LogLevel.ERR, f"{DLPAR}bad configure-connector answer: {exc}")
            return None
        k.printk(LogLevel.ERR, f"Unexpected Error ({rc}) returned from configure-connector")
        return None


# ------------------------------------------------------------------------- add


def _drc_info_valid_index(info: bytes, index: int) -> bool:
    """drc_info_valid_index over an ``ibm,drc-info`` value (stops at the first non-CPU entry)."""
    if len(info) < 4:
        return False
    (count,) = struct.unpack_from(">I", info)
    pos = 4
    for _ in range(count):
        strings = []
        for _s in range(2):
            end = info.find(b"\0", pos)
            if end < 0:
                return False
            strings.append(info[pos:end].decode("latin-1"))
            pos = end + 1
        if pos + 20 > len(info):
            return False
        start, _suffix, elems, inc, _domain = struct.unpack_from(">IIIII", info, pos)
        pos += 20
        if not strings[0].startswith("CPU"):
            break
        if elems == 0 or index > start + (elems - 1) * inc:
            continue
        if any(index == start + j * inc for j in range(elems)):
            return True
    return False


def valid_cpu_drc_index(parent: fdt.Node, index: int) -> bool:
    """Whether /cpus lists the index (``ibm,drc-info`` if present, else ``ibm,drc-indexes``)."""
    info = parent.get("ibm,drc-info")
    if info is not None:
        return _drc_info_valid_index(info.value, index)
    return index in topology.drc_indexes(parent)


def dlpar_cpu_exists(parent: fdt.Node, index: int) -> bool:
    """A child of /cpus already carries this ``ibm,my-drc-index``.

    (Each child's first cell is compared as bytes: the same test as reading it with
    :func:`guest.topology.cell`, at C speed, since /cpus grows with every core.)
    """
    if not 0 <= index <= _U32:
        return any(topology.cell(child, "ibm,my-drc-index") == index for child in parent.children)
    want = index.to_bytes(4, "big")
    for child in parent.children:
        prop = child.get("ibm,my-drc-index")
        if prop is not None and prop.value[:4] == want:
            return True
    return False


def dlpar_cpu_add(k: Kernel, index: int) -> Generator[Any, Any, int | None]:
    """dlpar_cpu_add: checks, acquire, configure-connector, attach, online.

    Returns 0 or a negative errno; None when a misbehaving guest abandoned the walk.
    """
    yield from k.execute(k.current, k.timing.dlpar_step_ns)
    parent = k.tree.find("/cpus")
    if parent is None:
        k.printk(LogLevel.WARNING, f'{HOTPLUG_CPU}Failed to find CPU root node "/cpus"')
        return -ENODEV
    if dlpar_cpu_exists(parent, index):
        k.printk(LogLevel.WARNING, f"{HOTPLUG_CPU}CPU with drc index {index:x} already exists")
        return -EINVAL
    if not valid_cpu_drc_index(parent, index):
        k.printk(LogLevel.WARNING, f"{HOTPLUG_CPU}Cannot find CPU (drc index {index:x}) to add.")
        return -EINVAL
    rc = yield from dlpar_acquire_drc(k, index)
    if rc:
        k.printk(
            LogLevel.WARNING,
            f"{HOTPLUG_CPU}Failed to acquire DRC, rc: {rc}, drc index: {index:x}",
        )
        return -EINVAL
    nodes = yield from dlpar_configure_connector(k, index)
    if isinstance(nodes, Abandoned):
        return None
    if not nodes:
        k.printk(
            LogLevel.WARNING,
            f"{HOTPLUG_CPU}Failed call to configure-connector, drc index: {index:x}",
        )
        yield from dlpar_release_drc(k, index)
        return -EINVAL
    attached: list[fdt.Node] = []
    rc = 0
    for node in nodes:
        rc = k.attach_cpu_node(node)
        if rc:
            break
        attached.append(node)
    dn = nodes[0]
    name = topology.unit_name(dn.name)
    if rc:
        for node in attached:
            k.detach_cpu_node(node)
        k.printk(
            LogLevel.WARNING,
            f"{HOTPLUG_CPU}Failed to attach node {name}, rc: {rc}, drc index: {index:x}",
        )
        yield from dlpar_release_drc(k, index)
        return rc
    rc = yield from dlpar_online_cpu(k, dn)
    if rc:
        k.printk(
            LogLevel.WARNING,
            f"{HOTPLUG_CPU}Failed to online cpu {name}, rc: {rc}, drc index: {index:x}",
        )
        if k.detach_cpu_node(dn) == 0:
            yield from dlpar_release_drc(k, index)
        return rc
    return 0


def dlpar_online_cpu(k: Kernel, dn: fdt.Node) -> Generator[Any, Any, int]:
    """device_online every thread of the node; on failure offline them again."""
    servers = topology.cells(dn, "ibm,ppc-interrupt-server#s")
    if not servers:
        return -EINVAL
    for hwid in servers:
        cpu = k.cpu_by_hwid(hwid)
        if cpu is None:
            k.printk(LogLevel.WARNING, f"Could not find cpu to online with physical id 0x{hwid:x}")
            continue
        rc = yield from k.device_online(cpu)
        if rc:
            yield from dlpar_offline_cpu(k, dn)
            return rc
    return 0


# ---------------------------------------------------------------------- remove


def dlpar_offline_cpu(k: Kernel, dn: fdt.Node) -> Generator[Any, Any, int]:
    """device_offline every online thread of the node, refusing the last online CPU."""
    servers = topology.cells(dn, "ibm,ppc-interrupt-server#s")
    if not servers:
        return -EINVAL
    for hwid in servers:
        cpu = k.cpu_by_hwid(hwid)
        if cpu is None:
            k.printk(
                LogLevel.WARNING,
                f"{HOTPLUG_CPU}Could not find cpu to offline with physical id 0x{hwid:x}",
            )
            continue
        if not cpu.online:
            continue
        if k.num_online_cpus() == 1:
            k.printk(
                LogLevel.WARNING,
                f"{HOTPLUG_CPU}Unable to remove last online CPU {topology.unit_name(dn.name)}",
            )
            return -EBUSY
        rc = yield from k.device_offline(cpu)
        if rc:
            return rc
    return 0


def cpu_drc_index_to_dn(k: Kernel, index: int) -> fdt.Node | None:
    """The first ``device_type = "cpu"`` node (tree order) with this ``ibm,my-drc-index``."""
    for _path, node in topology.iter_nodes_by_type(k.tree, "cpu"):
        if topology.cell(node, "ibm,my-drc-index") == index:
            return node
    return None


def dlpar_cpu_remove_by_index(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """Find the node, then dlpar_cpu_remove."""
    yield from k.execute(k.current, k.timing.dlpar_step_ns)
    dn = cpu_drc_index_to_dn(k, index)
    if dn is None:
        k.printk(LogLevel.WARNING, f"{HOTPLUG_CPU}Cannot find CPU (drc index {index:x}) to remove")
        return -ENODEV
    return (yield from dlpar_cpu_remove(k, dn, index))


def dlpar_cpu_remove(k: Kernel, dn: fdt.Node, index: int) -> Generator[Any, Any, int]:
    """Offline the threads, release the DRC, detach the node."""
    name = topology.unit_name(dn.name)
    rc = yield from dlpar_offline_cpu(k, dn)
    if rc:
        k.printk(LogLevel.WARNING, f"{HOTPLUG_CPU}Failed to offline CPU {name}, rc: {rc}")
        return -EINVAL
    rc = yield from dlpar_release_drc(k, index)
    if rc:
        k.printk(
            LogLevel.WARNING,
            f"{HOTPLUG_CPU}Failed to release drc ({index:x}) for CPU {name}, rc: {rc}",
        )
        yield from dlpar_online_cpu(k, dn)
        return rc
    rc = k.detach_cpu_node(dn)
    if rc:
        k.printk(LogLevel.WARNING, f"{HOTPLUG_CPU}Failed to detach CPU {name}, rc: {rc}")
        if (yield from dlpar_acquire_drc(k, index)) == 0:
            yield from dlpar_online_cpu(k, dn)
        return rc
    return 0
