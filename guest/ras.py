"""Boot-time initcalls, the event-source interrupt handlers, and rtasd's event-scan.

Linux 6.1 (pseries/ras.c, kernel/rtasd.c): the EPOW handler reads sensor 9 and calls
check-exception with the EPOW mask, logs the raw event (which rtas_errd reads) and
acts on an "EP" section; the hot-plug-events handler calls check-exception with the
hotplug mask -- without looking at its status -- finds the "HP" section and queues
CPU/memory/PMEM requests on the ordered "pseries hotplug workqueue". rtasd calls
event-scan 1 s after boot on the first CPU, then on each next online CPU, then every
30 s / rtas-event-scan-rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guest import dlpar, userspace
from guest.kernel import RTAS_VECTOR_EXTERNAL_INTERRUPT, Gen
from guest.log import LogLevel
from guest.options import GuestMode
from guest.state import DrcOutcome, LogicalCpu
from guest.tasks import Block, Sleep, TaskBody
from rtas import EventLogError, HotplugAction, HotplugResource, decode_event_log
from rtas.codes import EventMask
from rtas.errlog import EpowAction

if TYPE_CHECKING:
    from guest.kernel import Kernel

#: Sensor Linux's EPOW handler reads first (token 9, index 0).
EPOW_SENSOR_TOKEN = 9
EPOW_SENSOR_INDEX = 0
#: event-scan's mask: all event classes.
RTAS_EVENT_SCAN_ALL_EVENTS = 0xFFFFFFFF
#: Entries rtasd keeps for /proc/powerpc/rtas/error_log.
LOG_NUMBER = 64
RTAS_TYPE_PRRN = 0xA0

_RTAS_TYPES = (
    "Unknown",
    "Retry",
    "TCE Error",
    "Internal Device Failure",
    "Timeout",
    "Data Parity",
    "Address Parity",
    "Cache Parity",
    "Address Invalid",
    "ECC Uncorrected",
    "ECC Corrupted",
)
_RTAS_NAMED_TYPES = {
    0x40: "EPOW",
    0xE0: "Platform Error",
    0xE1: "I/O Event",
    0xE2: "Platform Information Event",
    0xE3: "Resource Deallocation Event",
    0xE4: "Dump Notification Event",
    RTAS_TYPE_PRRN: "Platform Resource Reassignment Event",
    0xE5: "Hotplug Event",
}


def rtas_event_type(event_type: int) -> str:
    """rtasd's name for an event type byte."""
    if 0 < event_type < 11:
        return _RTAS_TYPES[event_type]
    return _RTAS_NAMED_TYPES.get(event_type, _RTAS_TYPES[0])


# ---------------------------------------------------------------------------- init


def init_task(k: Kernel) -> TaskBody:
    """kernel_init: bring up the secondaries, then the initcalls in level order."""
    k.printk(LogLevel.INFO, "smp: Bringing up secondary CPUs ...")
    for cpu in k.present_cpus():
        if cpu.logical != k.boot_cpuid and not cpu.online:
            yield from k.cpu_up(cpu, booting=True)
    ncpus = k.num_online_cpus()
    nodes = len(k.online_nodes)
    k.printk(
        LogLevel.INFO,
        f"smp: Brought up {nodes} node{'s' if nodes != 1 else ''}, "
        f"{ncpus} CPU{'s' if ncpus != 1 else ''}",
    )
    # arch_initcall: rtas_event_scan_init
    start_event_scan(k)
    # subsys_initcall: init_ras_IRQ
    yield from init_ras_irq(k)
    # late initcall: init_ras_hotplug_IRQ (Linux >= 4.x only)
    if k.mode is GuestMode.IN_KERNEL_DLPAR:
        yield from init_ras_hotplug_irq(k)
    k.booted = True
    boot_cpu = k.current
    if k.mode is GuestMode.RTAS_ERRD_DRMGR:
        k.spawn("rtas_errd", userspace.rtas_errd(k), boot_cpu)
    k.spawn("sh", userspace.shell(k), boot_cpu)


def _event_source_irqs(k: Kernel, path: str) -> list[int]:
    node = k.tree.find(path)
    if node is None:
        return []
    prop = node.get("interrupts")
    if prop is None:
        return []
    parent = k.tree.find("/event-sources")
    size = 2
    if parent is not None and (value := parent.get("#interrupt-cells")) is not None:
        size = max(1, int.from_bytes(value.value[:4], "big"))
    words = [int.from_bytes(prop.value[i : i + 4], "big") for i in range(0, len(prop.value) - 3, 4)]
    return [words[i] for i in range(0, len(words) - size + 1, size)]


def init_ras_irq(k: Kernel) -> Gen:
    """Request the internal-errors and EPOW interrupts."""
    for hwirq in _event_source_irqs(k, "/event-sources/internal-errors"):
        yield from k.request_irq(k.current, hwirq, lambda cpu, vec: error_interrupt(k, cpu, vec))
    for hwirq in _event_source_irqs(k, "/event-sources/epow-events"):
        yield from k.request_irq(k.current, hwirq, lambda cpu, vec: epow_interrupt(k, cpu, vec))


def init_ras_hotplug_irq(k: Kernel) -> Gen:
    """Create the hotplug workqueue and request the hot-plug-events interrupt."""
    irqs = _event_source_irqs(k, "/event-sources/hot-plug-events")
    if not irqs and k.tree.find("/event-sources/hot-plug-events") is None:
        return
    k.spawn("kworker/u:pseries-hotplug", hotplug_worker(k), k.current)
    for hwirq in irqs:
        yield from k.request_irq(k.current, hwirq, lambda cpu, vec: hotplug_interrupt(k, cpu, vec))


# ------------------------------------------------------------------------ handlers


def _check_exception(k: Kernel, cpu: LogicalCpu, vec: int, mask: int, critical: int) -> Gen:
    yield from k.rtas_call(
        cpu,
        "check-exception",
        [RTAS_VECTOR_EXTERNAL_INTERRUPT, vec, mask, critical, k.ras_log_buf, k.error_log_max],
        1,
    )


def hotplug_interrupt(k: Kernel, cpu: LogicalCpu, vec: int) -> Gen:
    """ras_hotplug_interrupt: check-exception, find "HP", queue CPU/MEM/PMEM work."""
    yield from k.spin_lock(cpu, k.ras_log_lock)
    yield from _check_exception(k, cpu, vec, EventMask.HOT_PLUG, 0)
    raw = k.memory.read(k.ras_log_buf, k.error_log_max)
    k.ras_log_lock.release()
    try:
        hp = decode_event_log(raw).hotplug
    except EventLogError as exc:
        hp = None
        k.printk(LogLevel.ERR, f"ras_hotplug_interrupt: unreadable RTAS error log ({exc})")
    if hp is None:
        k.printk(LogLevel.ERR, "ras_hotplug_interrupt: no hotplug section in the RTAS error log")
        return
    if hp.resource in (HotplugResource.MEMORY, HotplugResource.CPU, HotplugResource.PMEM):
        if k.misbehavior.ignore_unplug and hp.action is HotplugAction.REMOVE:
            index = hp.drc_index if hp.drc_index is not None else 0
            k.printk(
                LogLevel.WARNING,
                f"misbehaving guest: ignoring hotplug REMOVE request for drc index {index:x}",
            )
            k.record_drc(index, "remove", DrcOutcome.IGNORED)
            return
        k.hp_queue.append(hp)
        yield from k.wake(cpu, k.hp_waitq, prefer=cpu)
    else:
        yield from log_error(k, cpu, raw)


def epow_interrupt(k: Kernel, cpu: LogicalCpu, vec: int) -> Gen:
    """ras_epow_interrupt: sensor 9, check-exception (EPOW mask), log, parse "EP"."""
    sensor = yield from k.rtas_call(
        cpu, "get-sensor-state", [EPOW_SENSOR_TOKEN, EPOW_SENSOR_INDEX], 2
    )
    critical = 1 if sensor.out(0) > 3 else 0
    yield from k.spin_lock(cpu, k.ras_log_lock)
    yield from _check_exception(k, cpu, vec, EventMask.EPOW, critical)
    raw = k.memory.read(k.ras_log_buf, k.error_log_max)
    yield from log_error(k, cpu, raw)
    yield from parse_epow(k, cpu, raw)
    k.ras_log_lock.release()


def error_interrupt(k: Kernel, cpu: LogicalCpu, vec: int) -> Gen:
    """ras_error_interrupt: check-exception (internal errors, critical), log."""
    yield from k.spin_lock(cpu, k.ras_log_lock)
    yield from _check_exception(k, cpu, vec, EventMask.INTERNAL_ERRORS, 1)
    raw = k.memory.read(k.ras_log_buf, k.error_log_max)
    yield from log_error(k, cpu, raw)
    k.ras_log_lock.release()
    k.printk(LogLevel.ERR, "Recoverable hardware error detected")


def log_error(k: Kernel, cpu: LogicalCpu, raw: bytes) -> Gen:
    """pSeries_log_error: count, print the event line, keep it for rtas_errd."""
    summary = int.from_bytes(raw[0:4], "big")
    extended = int.from_bytes(raw[4:8], "big")
    length = 8
    if summary & 0x0004_0000 and extended:
        length += extended
    length = min(length, k.error_log_max)
    k.error_log_cnt += 1
    event_type = summary & 0xFF
    severity = (summary >> 21) & 0x7
    k.printk(
        LogLevel.DEBUG,
        f"RTAS: event: {k.error_log_cnt}, Type: {rtas_event_type(event_type)} ({event_type}), "
        f"Severity: {severity}",
    )
    if k.rtas_logging:
        k.rtas_log.append(bytes(raw[:length]))
        while len(k.rtas_log) > LOG_NUMBER:
            k.rtas_log.popleft()
        yield from k.wake(cpu, k.rtas_log_wq)


def parse_epow(k: Kernel, cpu: LogicalCpu, raw: bytes) -> Gen:
    """rtas_parse_epow_errlog: act on an "EP" section (a hotplug log has none)."""
    try:
        epow = decode_event_log(raw).epow
    except EventLogError:
        return
    if epow is None:
        return
    action = epow.sensor_value & 0xF
    modifier = epow.event_modifier & 0xF
    if action == EpowAction.RESET:
        if k.num_epow_events:
            k.printk(LogLevel.INFO, "Non critical power/cooling issue cleared")
            k.num_epow_events -= 1
    elif action == EpowAction.WARN_COOLING:
        k.printk(
            LogLevel.INFO, "Non-critical cooling issue detected. Check RTAS error log for details"
        )
    elif action == EpowAction.WARN_POWER:
        k.printk(
            LogLevel.INFO, "Non-critical power issue detected. Check RTAS error log for details"
        )
    elif action == EpowAction.SYSTEM_SHUTDOWN:
        yield from _system_shutdown(k, cpu, modifier)
    elif action == EpowAction.SYSTEM_HALT:
        k.printk(
            LogLevel.EMERG,
            "Critical power/cooling issue detected. Check RTAS error log for details. "
            "Powering off.",
        )
        _orderly_poweroff(k, cpu)
    elif action in (EpowAction.MAIN_ENCLOSURE, EpowAction.POWER_OFF):
        k.printk(
            LogLevel.EMERG,
            "System about to lose power. Check RTAS error log  for details. "
            "Powering off immediately.",
        )
        _orderly_poweroff(k, cpu)
    else:
        k.printk(LogLevel.ERR, f"Unknown power/cooling event (action code  = {action})")
    if action != EpowAction.RESET:
        k.num_epow_events += 1


def _system_shutdown(k: Kernel, cpu: LogicalCpu, modifier: int) -> Gen:
    if modifier == 1:
        k.printk(LogLevel.EMERG, "Power off requested")
        _orderly_poweroff(k, cpu)
    elif modifier == 2:
        k.printk(
            LogLevel.EMERG,
            "Loss of system power detected. System is running on UPS/battery. "
            "Check RTAS error log for details",
        )
    elif modifier in (3, 4):
        k.printk(
            LogLevel.EMERG,
            "Loss of system critical functions detected. Check RTAS error log for details"
            if modifier == 3
            else "High ambient temperature detected. Check RTAS error log for details",
        )
        _orderly_poweroff(k, cpu)
    else:
        k.printk(LogLevel.ERR, f"Unknown power/cooling shutdown event (modifier = {modifier})")
    yield from ()


def _orderly_poweroff(k: Kernel, cpu: LogicalCpu) -> None:
    if not k.poweroff_started:
        k.poweroff_started = True
        k.spawn("poweroff", poweroff(k), cpu)


def poweroff(k: Kernel) -> TaskBody:
    """orderly_poweroff -> kernel_power_off -> RTAS power-off(-1, -1)."""
    yield Sleep(100_000_000)
    k.printk(LogLevel.EMERG, "reboot: Power down")
    k.powered_off = True
    yield from k.rtas_call(k.current, "power-off", [0xFFFFFFFF, 0xFFFFFFFF], 1)
    while True:
        yield Block(k.halt_waitq)


# ---------------------------------------------------------------------- workqueue


def hotplug_worker(k: Kernel) -> TaskBody:
    """The single worker of the ordered pseries hotplug workqueue."""
    while True:
        while not k.hp_queue:
            yield Block(k.hp_waitq)
        hp = k.hp_queue.popleft()
        yield from dlpar.handle_dlpar_errorlog(k, hp)


# -------------------------------------------------------------------------- rtasd


def start_event_scan(k: Kernel) -> None:
    """rtas_event_scan_init: needs event-scan and a non-zero rtas-event-scan-rate."""
    if "event-scan" not in k.tokens:
        k.printk(LogLevel.INFO, "rtasd: No event-scan on system")
        return
    rate = k.tokens.get("rtas-event-scan-rate")
    if rate is None:
        k.printk(LogLevel.ERR, "rtasd: no rtas-event-scan-rate on system")
        return
    if rate == 0:
        k.printk(LogLevel.DEBUG, "rtasd: scan rate is 0, not scanning")
        return
    k.rtas_logging = True
    k.printk(LogLevel.DEBUG, "RTAS daemon started")
    first = k.first_online()
    if k.timing.event_scan and first is not None:
        k.spawn("rtasd", rtasd(k, rate), first)


def rtasd(k: Kernel, rate: int) -> TaskBody:
    """The event-scan delayed work, moving from CPU to CPU."""
    period = k.timing.event_scan_period_ns or 30_000_000_000 // rate
    delay = k.timing.event_scan_first_ns
    first_pass = True
    first = k.first_online()
    target = first.logical if first is not None else 0
    while True:
        yield Sleep(delay, cpu=target)
        yield from do_event_scan(k)
        here = k.current.logical
        online = [c.logical for c in k.online_cpus()]
        later = [c for c in online if c > here]
        if later:
            target = later[0]
        else:
            target = online[0] if online else here
            if first_pass:
                first_pass = False
                delay = period


def do_event_scan(k: Kernel) -> Gen:
    """event-scan(all events, 0, logdata, max) until it reports nothing."""
    while True:
        cpu = k.current
        k.memory.write(k.rtasd_logdata, bytes(k.error_log_max))
        result = yield from k.rtas_call(
            cpu,
            "event-scan",
            [RTAS_EVENT_SCAN_ALL_EVENTS, 0, k.rtasd_logdata, k.error_log_max],
            1,
        )
        if result.status == -1:
            k.printk(LogLevel.ERR, "event-scan failed")
            return
        if result.status != 0:
            return
        raw = k.memory.read(k.rtasd_logdata, k.error_log_max)
        if raw[3] != RTAS_TYPE_PRRN:
            yield from log_error(k, k.current, raw)
        else:
            k.printk(LogLevel.INFO, "Platform resource reassignment ignored.")
