"""User space of the older guest: rtas_errd and drmgr (ppc64-diag, powerpc-utils).

The kernel logs every RTAS event it takes to /proc/powerpc/rtas/error_log;
rtas_errd reads it and, for a hotplug event (type 0xE5) about a CPU, runs
``drmgr -c cpu -a|-r -s 0x<drc index>``. On a kernel without in-kernel DLPAR
(no /sys/kernel/dlpar, no cpu probe/release files) drmgr does the whole RTAS
sequence itself through librtas: get-sensor-state (must be UNUSABLE),
set-indicator allocation USABLE, set-indicator UNISOLATE, the configure-connector
loop, the new nodes through /proc/ppc64/ofdt, then each thread onlined through
sysfs; removal offlines the threads, senses, ISOLATEs, sets UNUSABLE, senses
again, and removes the node. A small shell task runs sysfs requests made through
the guest's API.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from guest import topology
from guest.connector import (
    CcAction,
    ConnectorError,
    ConnectorWalk,
    busy_delay_ms,
    initial_work_area,
)
from guest.dlpar import ABANDONED, Abandoned
from guest.kernel import EBUSY, EINVAL, ENOENT, Gen
from guest.log import LogLevel
from guest.state import DrcOutcome
from guest.tasks import Block, Reschedule, Sleep, TaskBody
from rtas import EventLogError, HotplugAction, HotplugIdType, HotplugResource, decode_event_log
from rtas.codes import (
    CC_WORK_AREA_SIZE,
    AllocationState,
    ConfigureConnector,
    EntitySense,
    IsolationState,
    SensorType,
)

if TYPE_CHECKING:
    import fdt
    from guest.kernel import Kernel

RTAS_ERRD = "rtas_errd"
DRMGR = "drmgr"
SHELL = "sh"
_U32 = 0xFFFF_FFFF
_MS = 1_000_000
_ERRNO_TEXT = {
    EBUSY: "Device or resource busy",
    EINVAL: "Invalid argument",
    ENOENT: "No such file or directory",
}


def _say(k: Kernel, level: LogLevel, text: str, source: str = DRMGR) -> None:
    k.printk(level, text, source)


# ---------------------------------------------------------------------- rtas_errd


def rtas_errd(k: Kernel) -> TaskBody:
    """Read logged RTAS events; hand CPU hotplug events to drmgr."""
    while True:
        while not k.rtas_log:
            yield Block(k.rtas_log_wq)
        raw = k.rtas_log.popleft()
        yield from k.execute(k.current, k.timing.userspace_step_ns)
        try:
            log = decode_event_log(raw)
        except EventLogError:
            continue
        hp = log.hotplug
        if log.event_type != 0xE5 or hp is None:
            continue
        if hp.resource is not HotplugResource.CPU:
            _say(k, LogLevel.INFO, f"{hp.resource.name} hotplug events are not handled", RTAS_ERRD)
            continue
        flag = "-a" if hp.action is HotplugAction.ADD else "-r"
        if hp.id_type is HotplugIdType.DRC_INDEX and hp.drc_index is not None:
            target = f"-s 0x{hp.drc_index:x}"
        elif hp.count is not None:
            target = f"-q {hp.count}"
        else:
            continue
        if k.misbehavior.ignore_unplug and hp.action is HotplugAction.REMOVE:
            index = hp.drc_index if hp.drc_index is not None else 0
            _say(k, LogLevel.WARNING, f"ignoring drmgr -c cpu {flag} {target}", RTAS_ERRD)
            k.record_drc(index, "remove", DrcOutcome.IGNORED)
            continue
        _say(k, LogLevel.INFO, f"drmgr -c cpu {flag} {target}", RTAS_ERRD)
        if hp.drc_index is None or hp.id_type is not HotplugIdType.DRC_INDEX:
            continue
        k.in_dlpar = True
        if hp.action is HotplugAction.ADD:
            rc = yield from drmgr_add_cpu(k, hp.drc_index)
            outcome = DrcOutcome.ADDED if rc == 0 else DrcOutcome.ADD_FAILED
            if rc is None:
                outcome, rc = DrcOutcome.ABANDONED, 0
            k.record_drc(hp.drc_index, "add", outcome, rc)
        else:
            rc = yield from drmgr_remove_cpu(k, hp.drc_index)
            k.record_drc(
                hp.drc_index,
                "remove",
                DrcOutcome.REMOVED if rc == 0 else DrcOutcome.REMOVE_FAILED,
                rc,
            )
        k.in_dlpar = False


# -------------------------------------------------------------------------- librtas


def _librtas(
    k: Kernel, service: str, args: list[int], nret: int
) -> Generator[Any, Any, tuple[int, int]]:
    """A librtas call (busy statuses retried inside): (status, first output)."""
    result = yield from k.rtas_call_busy(k.current, service, args, nret)
    return result.status, result.out(0)


def dr_entity_sense(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """The entity-sense state, or the failing status."""
    status, state = yield from _librtas(k, "get-sensor-state", [SensorType.ENTITY_SENSE, index], 2)
    _say(k, LogLevel.DEBUG, f"get-sensor for {index:x}: {status}, {state}")
    return state if status >= 0 else status


def _set_indicator(k: Kernel, indicator: int, index: int, value: int) -> Generator[Any, Any, int]:
    status, _ = yield from _librtas(k, "set-indicator", [indicator, index, value], 1)
    return status


def acquire_drc(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """drmgr acquire_drc: sense UNUSABLE, allocation USABLE, UNISOLATE."""
    _say(k, LogLevel.DEBUG, f"Acquiring drc index 0x{index:x}")
    sense = yield from dr_entity_sense(k, index)
    if sense != EntitySense.UNUSABLE:
        _say(k, LogLevel.ERR, f"Entity sense failed for drc {index:x} with {sense}")
        return -1
    rc = yield from _set_indicator(k, SensorType.ALLOCATION_STATE, index, AllocationState.USABLE)
    if rc:
        _say(k, LogLevel.ERR, f"Allocation failed for drc {index:x} with {rc}")
        return -1
    rc = yield from _set_indicator(k, SensorType.ISOLATION_STATE, index, IsolationState.UNISOLATED)
    if rc:
        rc = -1
        _say(k, LogLevel.ERR, f"Unisolate failed for drc {index:x} with {rc}")
        ret = yield from _set_indicator(
            k, SensorType.ALLOCATION_STATE, index, AllocationState.UNUSABLE
        )
        if ret:
            _say(
                k,
                LogLevel.ERR,
                f"Failed recovery to unusable state after unisolate failure for drc {index:x} "
                f"with {ret}",
            )
    return rc


def release_drc(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """drmgr release_drc: sense, ISOLATE, UNUSABLE (re-UNISOLATE on failure), sense."""
    _say(k, LogLevel.DEBUG, f"Releasing drc index 0x{index:x}")
    sense = yield from dr_entity_sense(k, index)
    if sense != EntitySense.PRESENT:
        _say(k, LogLevel.DEBUG, f"drc_index {index:x} sensor-state: {sense}")
    rc = yield from _set_indicator(k, SensorType.ISOLATION_STATE, index, IsolationState.ISOLATED)
    if rc:
        _say(k, LogLevel.ERR, f"Isolation failed for {index:x} with {rc}")
        return -1
    rc = yield from _set_indicator(k, SensorType.ALLOCATION_STATE, index, AllocationState.UNUSABLE)
    if rc:
        _say(k, LogLevel.ERR, f"Unable to un-allocate drc {index:x} from the partition ({rc})")
        rc = yield from _set_indicator(
            k, SensorType.ISOLATION_STATE, index, IsolationState.UNISOLATED
        )
        _say(k, LogLevel.DEBUG, f"UNISOLATE for drc {index:x}, rc = {rc}")
        return -1
    sense = yield from dr_entity_sense(k, index)
    _say(k, LogLevel.DEBUG, f"drc_index {index:x} sensor-state: {sense}")
    return 0


def configure_connector(
    k: Kernel, index: int
) -> Generator[Any, Any, list[fdt.Node] | Abandoned | None]:
    """drmgr configure_connector through librtas's work-area copy; None on failure."""
    _say(k, LogLevel.DEBUG, f"Configuring connector for drc index {index:x}")
    if k.librtas_rmo is None:
        k.librtas_rmo = k.alloc(CC_WORK_AREA_SIZE, CC_WORK_AREA_SIZE)
    rmo = k.librtas_rmo
    wa_index = k.wrong_drc_index(index)
    data = initial_work_area(wa_index)
    walk = ConnectorWalk(index)
    calls = 0
    limit = k.misbehavior.abandon_configure_after
    rc = 0
    while True:
        if limit is not None and calls >= limit:
            _say(
                k,
                LogLevel.WARNING,
                f"misbehaving guest: abandoning configure-connector for drc index {index:x} "
                f"after {calls} calls",
            )
            return ABANDONED
        k.memory.write(rmo, data)
        result = yield from k.rtas_call(k.current, "ibm,configure-connector", [rmo & _U32, 0], 1)
        data = bytearray(k.memory.read(rmo, CC_WORK_AREA_SIZE))
        calls += 1
        rc = result.status
        delay = busy_delay_ms(rc)
        if delay is not None:
            yield Sleep(delay * _MS) if delay else Reschedule()
            continue
        action = ConnectorWalk.action(rc)
        if action is CcAction.DONE:
            break
        if action is CcAction.NODE:
            try:
                walk.step(rc, bytes(data))
                continue
            except ConnectorError as exc:
                _say(k, LogLevel.ERR, str(exc))
                break
        if rc == ConfigureConnector.MORE_MEMORY:
            _say(k, LogLevel.ERR, "Configure_connector called with insufficient memory.")
        elif rc == ConfigureConnector.NOT_CONFIGURABLE:
            _say(
                k,
                LogLevel.ERR,
                "This adapter is currently unusable, available for exchange or available "
                "for recovery",
            )
        elif rc == ConfigureConnector.ERROR:
            _say(k, LogLevel.ERR, "Hardware error. You must correct this error before")
        else:
            _say(k, LogLevel.ERR, f"Unexpected error ({rc}) returned from configure_connector")
        break
    if rc:
        _say(k, LogLevel.ERR, f"Configure_connector failed for drc index {index:x}")
        return None
    try:
        return walk.nodes()
    except ConnectorError as exc:
        _say(k, LogLevel.ERR, str(exc))
        return None


# --------------------------------------------------------------------- drmgr cpu


def _drc_name(cpus: fdt.Node | None, index: int) -> str:
    indexes = topology.drc_indexes(cpus)
    prop = cpus.get("ibm,drc-names") if cpus is not None else None
    if prop is None or index not in indexes:
        return f"0x{index:x}"
    names = prop.value[4:].split(b"\0")
    position = indexes.index(index)
    return names[position].decode("latin-1") if position < len(names) else f"0x{index:x}"


def _owned_cpus(k: Kernel) -> dict[int, fdt.Node]:
    cpus = k.tree.find("/cpus")
    owned: dict[int, fdt.Node] = {}
    if cpus is None:
        return owned
    for child in cpus.children:
        index = topology.cell(child, "ibm,my-drc-index")
        if topology.string(child, "device_type") == "cpu" and index is not None:
            owned[index] = child
    return owned


def set_thread_state(k: Kernel, hwid: int, online: bool) -> Generator[Any, Any, int]:
    """Write /sys/devices/system/cpu/cpuN/online and check the result, as drmgr does."""
    cpu = k.cpu_by_hwid(hwid)
    if cpu is None:
        _say(k, LogLevel.ERR, f"Could not find thread with physical id {hwid}")
        return -1
    path = f"/sys/devices/system/cpu/cpu{cpu.logical}/online"
    _say(k, LogLevel.DEBUG, f"{'On' if online else 'Off'}lining thread id {cpu.logical}")
    yield from k.lock_device_hotplug()
    if online:
        yield from k.device_online(cpu)
    else:
        yield from k.device_offline(cpu)
    yield from k.unlock_device_hotplug()
    if cpu.online != online:
        _say(k, LogLevel.ERR, f"Failure setting thread state for {path}")
        return -1
    return 0


def _node_threads(node: fdt.Node) -> tuple[int, ...]:
    return topology.cells(node, "ibm,ppc-interrupt-server#s") or ()


def online_cpu(k: Kernel, node: fdt.Node) -> Generator[Any, Any, int]:
    """drmgr online_cpu: online every thread of the node through sysfs."""
    rc = 0
    for hwid in _node_threads(node):
        rc |= yield from set_thread_state(k, hwid, True)
    return rc


def offline_cpu(k: Kernel, node: fdt.Node) -> Generator[Any, Any, int]:
    """drmgr offline_cpu: offline every online thread of the node through sysfs."""
    rc = 0
    for hwid in _node_threads(node):
        cpu = k.cpu_by_hwid(hwid)
        if cpu is not None and cpu.online:
            rc |= yield from set_thread_state(k, hwid, False)
    return rc


def drmgr_add_cpu(k: Kernel, index: int) -> Generator[Any, Any, int | None]:
    """drmgr -c cpu -a -s 0x<index> on a kernel without CPU probe support."""
    cpus = k.tree.find("/cpus")
    if index not in topology.drc_indexes(cpus):
        _say(k, LogLevel.ERR, f"Could not locate CPU with drc index {index:x}")
        return -1
    if index in _owned_cpus(k):
        _say(k, LogLevel.ERR, f"Requested CPU with drc index {index:x} is already present.")
        return -1
    name = _drc_name(cpus, index)
    yield from k.execute(k.current, k.timing.userspace_step_ns)
    rc = yield from acquire_drc(k, index)
    if rc:
        _say(k, LogLevel.DEBUG, f"Unable to acquire CPU with drc index {index:x}")
        return rc
    nodes = yield from configure_connector(k, index)
    if isinstance(nodes, Abandoned):
        return None
    if nodes is None:
        _say(k, LogLevel.ERR, f"Call to configure_connector failed for {name}")
        yield from release_drc(k, index)
        return -1
    for node in nodes:
        rc = k.attach_cpu_node(node)
        if rc:
            k.printk(LogLevel.ERR, f"Failed to add device node /cpus/{node.name}")
            _say(k, LogLevel.ERR, f"Failure to add device tree nodes for {name}")
            yield from release_drc(k, index)
            return rc
    rc = yield from online_cpu(k, nodes[0])
    if rc:
        _say(k, LogLevel.ERR, f"Unable to online {name}")
        yield from offline_cpu(k, nodes[0])
        yield from _release_cpu(k, index, nodes[0], name)
        return rc
    return 0


def _release_cpu(k: Kernel, index: int, node: fdt.Node, name: str) -> Generator[Any, Any, int]:
    rc = yield from offline_cpu(k, node)
    if rc:
        _say(k, LogLevel.ERR, f"Could not offline cpu {name}")
        return rc
    rc = yield from release_drc(k, index)
    if rc:
        _say(k, LogLevel.ERR, f"Could not release drc resources for {node.name}")
        return rc
    rc = k.detach_cpu_node(node)
    if rc:
        _say(k, LogLevel.ERR, f"Could not remove device tree nodes {node.name}")
    return rc


def drmgr_remove_cpu(k: Kernel, index: int) -> Generator[Any, Any, int]:
    """drmgr -c cpu -r -s 0x<index>: refuse the last CPU, release, re-online on failure."""
    owned = _owned_cpus(k)
    if len(owned) == 1:
        _say(k, LogLevel.WARNING, "Cannot remove the last CPU")
        return -1
    cpus = k.tree.find("/cpus")
    node = owned.get(index)
    if node is None:
        if index in topology.drc_indexes(cpus):
            _say(k, LogLevel.ERR, f"Requested CPU with drc index {index:x} is not present.")
        else:
            _say(k, LogLevel.ERR, f"Could not locate CPU with drc index {index:x}")
        return -1
    name = _drc_name(cpus, index)
    yield from k.execute(k.current, k.timing.userspace_step_ns)
    rc = yield from _release_cpu(k, index, node, name)
    if rc:
        yield from online_cpu(k, node)
    return rc


# ---------------------------------------------------------------------------- shell


def shell(k: Kernel) -> TaskBody:
    """Run sysfs requests made through the guest API, polling for new ones."""
    period = k.timing.user_poll_ns
    while True:
        while k.user_requests:
            request = k.user_requests.popleft()
            yield from request(k)
        if period is None:
            yield Block(k.user_waitq)
        else:
            yield Sleep(period)


def sysfs_cpu_online(logical: int, online: bool) -> Any:
    """A request: ``echo 1|0 > /sys/devices/system/cpu/cpuN/online``."""

    def run(k: Kernel) -> Gen:
        """Write the value and report a failing write as the shell would."""
        value = 1 if online else 0
        path = f"/sys/devices/system/cpu/cpu{logical}/online"
        cpu = k.cpus.get(logical)
        if cpu is None or not cpu.present:
            _say(k, LogLevel.ERR, f"echo {value} > {path}: No such file or directory", SHELL)
            return
        yield from k.lock_device_hotplug()
        rc = yield from (k.device_online(cpu) if online else k.device_offline(cpu))
        yield from k.unlock_device_hotplug()
        if rc < 0:
            text = _ERRNO_TEXT.get(-rc, f"error {-rc}")
            _say(k, LogLevel.ERR, f"echo {value} > {path}: {text}", SHELL)

    return run
