"""The core of the Linux 6.1 pseries model: boot, CPUs, interrupts, RTAS, tasks.

:class:`Kernel` is one boot of the guest. Each hardware thread the machine runs
gets a program (a generator) from :meth:`Kernel.boot_program` or
:meth:`Kernel.secondary_program`; every online CPU then loops in
:meth:`Kernel.cpu_main`: take pending interrupts (H_XIRR, handler, H_EOI), run the
stopper if the CPU is going offline, run queued tasks, else H_CEDE until the next
timer. Everything the guest does to the machine goes through a platform operation
its program yields; the guest reads the device tree, RTAS results and event logs
only from guest memory.

What Linux does where (for readers coming from the kernel sources):
boot and CAS -- prom_init.c/setup-common.c; CPU bring-up -- kernel/smp.c
__cpu_up and pseries/smp.c smp_startup_cpu; CPU offline -- pseries/hotplug-cpu.c
pseries_cpu_disable/offline_self/die and sysdev/xics; the device-tree notifier
that marks hot-added threads present -- pseries_add_processor.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple

import attrs

import fdt
from guest import topology
from guest.cas import CAS_RESPONSE_HEADER_SIZE, CasRequest, NegotiatedFeatures, PlatformSupport
from guest.connector import busy_delay_ms
from guest.log import KERNEL, GuestLog, LogLevel
from guest.memory_map import GuestRegions, OutOfGuestMemory
from guest.options import (
    GuestMode,
    GuestTiming,
    Misbehavior,
)
from guest.state import CpuState, DrcAction, DrcOutcome, LogicalCpu, RtasRecord
from guest.tasks import Block, Mutex, Reschedule, Sleep, SpinLock, Task, TaskBody, WaitQueue
from guest.xive import XiveDriver
from rtas import GuestMemory, encode_call, read_rets
from rtas.codes import CC_WORK_AREA_SIZE, RTAS_ERROR_LOG_MAX, CpuStoppedState
from rtas.errlog import HotplugSection
from rtas.hcalls import EXECUTE, Hcall, HcallReturn

#: Where the machine starts the boot thread (r3 = device-tree blob address).
BOOT_ENTRY = 0x0001_0000
#: Where start-cpu sends secondary threads (Linux's generic_secondary_smp_init).
SECONDARY_ENTRY = 0x0001_0060

# XICS numbers Linux uses.
XICS_IRQ_SPURIOUS = 0
XICS_IPI = 2
IPI_PRIORITY = 4
DEFAULT_PRIORITY = 5
LOWEST_PRIORITY = 0xFF
#: check-exception's vector argument for an external interrupt.
RTAS_VECTOR_EXTERNAL_INTERRUPT = 0x500
#: H_REGISTER_VPA subfunctions (shifted by H_VPA_FUNC_SHIFT).
H_VPA_FUNC_SHIFT = 45
H_VPA_REG_VPA = 1
H_VPA_REG_SLB = 3
H_VPA_DEREG_SLB = 7
#: First virq number handed to event-source interrupts.
FIRST_VIRQ = 16

# errno values the kernel paths return.
EPERM = 1
ENOENT = 2
EIO = 5
ENOMEM = 12
EFAULT = 14
EBUSY = 16
EEXIST = 17
ENODEV = 19
EINVAL = 22
ENOSPC = 28
ERANGE = 34

_H_SUCCESS = int(HcallReturn.H_SUCCESS)
_H_RTAS = Hcall.KVMPPC_H_RTAS
_H_CEDE = Hcall.H_CEDE
_H_XIRR = Hcall.H_XIRR
_H_IPI = Hcall.H_IPI
_H_EOI = Hcall.H_EOI
_U32 = 0xFFFF_FFFF
_FDT_MAGIC = 0xD00DFEED
_MS = 1_000_000
_S = 1_000_000_000
#: Spins of a busy kernel wait (spin_until_cond) before the model gives up.
_SPIN_LIMIT = 1_000_000
#: Interrupts taken in one go before the CPU returns to its loop.
_IRQ_DRAIN_LIMIT = 64

Gen = Generator[Any, Any, None]
IrqHandler = Callable[[LogicalCpu, int], Gen]


def hcall_status(result: Any) -> int:
    """The r3 status of an hcall result (a bare int or the first of a tuple)."""
    if isinstance(result, tuple | list):
        return int(result[0]) if result else _H_SUCCESS
    return _H_SUCCESS if result is None else int(result)


def hcall_value(result: Any, index: int = 1) -> int:
    """A value an hcall returned beside its status (r4 is index 1)."""
    if isinstance(result, tuple | list) and len(result) > index:
        return int(result[index])
    return 0


def rtas_error_rc(status: int) -> int:
    """Linux's rtas_error_rc: an RTAS error status as a negative errno."""
    return {-1: -EIO, -3: -EINVAL, -9000: -EFAULT, -9001: -EEXIST, -9002: -ENODEV}.get(
        status, -ERANGE
    )


class RtasResult(NamedTuple):
    """The rets of an RTAS call (``status`` = rets[0]; -1 if the service is unknown).

    (An immutable named tuple: one per call, cheaper to build than a frozen attrs class.)
    """

    status: int
    rets: tuple[int, ...] = ()

    def out(self, i: int) -> int:
        """Linux's outputs[i] = rets[i + 1] (0 when the platform wrote fewer)."""
        return self.rets[i + 1] if i + 1 < len(self.rets) else 0


@attrs.frozen
class KernelConfig:
    """Everything a boot needs from the guest's owner."""

    memory: GuestMemory
    mode: GuestMode
    misbehavior: Misbehavior
    timing: GuestTiming
    clock: Callable[[], int] | None
    nr_cpus: int
    register_vpa: bool
    #: Builds the init task's body (the initcalls) for a booted kernel.
    init: Callable[[Kernel], TaskBody]
    #: The kernel command line's ``xive=off``: stay with XICS even where XIVE is offered.
    xive_off: bool = False


#: RTAS calls a kernel keeps in ``rtas_trace`` (about 130 hotplug cycles' worth).
RTAS_TRACE_KEEP = 4096


class Kernel:
    """One boot of the guest: its state and the code every vCPU program runs."""

    def __init__(self, config: KernelConfig, log: GuestLog) -> None:
        self.config = config
        self.memory = config.memory
        self.timing = config.timing
        self.misbehavior = config.misbehavior
        self.mode = config.mode
        self.log = log
        #: The latest RTAS calls (bounded: see :meth:`record_rtas`), and how many were made.
        self.rtas_trace: list[RtasRecord] = []
        #: (block size, start): blocks of that size below start are taken (see
        #: :meth:`_free_cpu_block`).
        self._free_block_hint = (0, 0)
        self.rtas_calls = 0
        self.drc_actions: dict[int, DrcAction] = {}
        self.tree: fdt.Node = fdt.Node("")
        self.boot_tree: fdt.Node | None = None
        self.features = NegotiatedFeatures()
        self.cas_status: int | None = None
        self.tokens: dict[str, int] = {}
        self.cpus: dict[int, LogicalCpu] = {}
        self._by_hwid: dict[int, int] = {}
        self.nr_cpu_ids = max(1, config.nr_cpus)
        self.boot_cpuid = 0
        self.boot_hwid = 0
        self.threads_per_core = 1
        self.domain_index: int | None = None
        self.numa_nodes_possible = 1
        self.online_nodes: set[int] = {0}
        self.node_recorded_ids: dict[int, set[int]] = {}
        self.booted = False
        self.powered_off = False
        self.panicked: str | None = None
        self._time_estimate = 0
        # Memory.
        self.regions: GuestRegions | None = None
        self.fdt_size = 0
        self._rtas_args: dict[int, int] = {}
        self._vpa: dict[int, tuple[int, int]] = {}
        self.ras_log_buf = 0
        self.rtas_data_buf = 0
        #: drmgr's librtas work-area copy (allocated on first use).
        self.librtas_rmo: int | None = None
        self.rtasd_logdata = 0
        self.error_log_max = RTAS_ERROR_LOG_MAX
        self.event_scan_rate = 0
        self.ras_log_lock = SpinLock("ras_log_buf_lock")
        #: lock_device_hotplug: DLPAR work and sysfs online/offline writes take turns.
        self.hotplug_lock = Mutex("device_hotplug_lock")
        self.rtas_data_lock = SpinLock("rtas_data_buf_lock")
        # Interrupts.
        self.irq_handlers: dict[int, IrqHandler] = {}
        self.irq_order: list[int] = []
        self.virqs: dict[int, int] = {}
        self.xics_default_server = 0xFF
        self.xics_default_distrib_server = 0
        #: The XIVE driver when CAS gave XIVE (Linux's xive_enabled()), else None: XICS.
        self.xive: XiveDriver | None = None
        # Work.
        self.hp_queue: deque[HotplugSection] = deque()
        self.hp_waitq = WaitQueue("pseries hotplug workqueue")
        self.rtas_log: deque[bytes] = deque()
        self.rtas_log_wq = WaitQueue("rtas_log_wait")
        self.error_log_cnt = 0
        #: rtasd is up: logged events are kept for /proc/powerpc/rtas/error_log.
        self.rtas_logging = False
        self.num_epow_events = 0
        self.poweroff_started = False
        self.halt_waitq = WaitQueue("halted")
        self.user_requests: deque[Callable[[Kernel], Gen]] = deque()
        self.user_waitq = WaitQueue("shell")
        #: DR work may use wrong indices (only inside DLPAR operations).
        self.in_dlpar = False
        self._current: LogicalCpu | None = None
        self._printed_once: set[str] = set()

    # ------------------------------------------------------------------ basics

    def now(self) -> int:
        """Virtual time in ns (the machine's timebase, or the guest's own estimate)."""
        clock = self.config.clock
        return clock() if clock is not None else self._time_estimate

    def printk(self, level: LogLevel, text: str, source: str = KERNEL) -> None:
        """Print a line to the guest log."""
        self.log.emit(self.now(), level, text, source)

    def printk_once(self, level: LogLevel, text: str) -> None:
        """printk_once: only the first time this text is printed."""
        if text not in self._printed_once:
            self._printed_once.add(text)
            self.printk(level, text)

    @property
    def current(self) -> LogicalCpu:
        """The CPU whose code is running (valid in task code between yields)."""
        if self._current is None:
            raise RuntimeError("no CPU is running guest code")
        return self._current

    def cpu_by_hwid(self, hwid: int) -> LogicalCpu | None:
        """The present logical CPU backed by hardware thread ``hwid``."""
        logical = self._by_hwid.get(hwid)
        cpu = self.cpus.get(logical) if logical is not None else None
        if cpu is None or not cpu.present or cpu.hwid != hwid:
            return None
        return cpu

    def _set_hwid(self, cpu: LogicalCpu, hwid: int | None) -> None:
        if cpu.hwid is not None and self._by_hwid.get(cpu.hwid) == cpu.logical:
            del self._by_hwid[cpu.hwid]
        cpu.hwid = hwid
        if hwid is not None:
            self._by_hwid[hwid] = cpu.logical

    def online_cpus(self) -> list[LogicalCpu]:
        """Online logical CPUs in id order."""
        return [c for c in sorted(self.cpus.values(), key=lambda c: c.logical) if c.online]

    def present_cpus(self) -> list[LogicalCpu]:
        """Present logical CPUs in id order."""
        return [c for c in sorted(self.cpus.values(), key=lambda c: c.logical) if c.present]

    def num_online_cpus(self) -> int:
        """num_online_cpus()."""
        return sum(1 for c in self.cpus.values() if c.online)

    def first_online(self) -> LogicalCpu | None:
        """The lowest-numbered online CPU (cpumask_first of the online mask)."""
        online = self.online_cpus()
        return online[0] if online else None

    def record_drc(
        self, drc_index: int, action: str, outcome: DrcOutcome, rc: int = 0, detail: str = ""
    ) -> None:
        """Remember the last thing done with a DRC (for tests and views)."""
        self.drc_actions[drc_index] = DrcAction(self.now(), action, outcome, rc, detail)

    def alloc(self, size: int, align: int = 16) -> int:
        """A buffer in the guest's own RAM (see memory_map)."""
        if self.regions is None:
            raise OutOfGuestMemory("guest memory regions are not set up")
        return self.regions.alloc(size, align)

    # ------------------------------------------------------------ platform ops

    def execute(self, cpu: LogicalCpu, ns: int, *, irqs: bool = True) -> Generator[Any, Any, int]:
        """Run guest code for ``ns``; take interrupts that arrive if ``irqs``.

        Returns the ns left undone (0 normally; > 0 only when the platform keeps
        interrupting without letting time pass).
        """
        remaining = max(0, int(ns))
        stalls = 0
        while remaining > 0:
            self._current = cpu
            # Code running with interrupts disabled asks not to be cut short.
            left = yield (EXECUTE, remaining) if irqs else (EXECUTE, remaining, False)
            self._current = cpu
            left = max(0, int(left or 0))
            self._time_estimate += remaining - left
            if left == 0:
                return 0
            stalls = stalls + 1 if left >= remaining else 0
            cpu.irq_check = True
            if irqs and not cpu.in_irq:
                yield from self.handle_interrupts(cpu)
            if stalls >= 2:
                return left
            remaining = left
        return 0

    def hcall(self, cpu: LogicalCpu, *op: int) -> Generator[Any, Any, Any]:
        """Make one hypercall from ``cpu`` and return the platform's result."""
        self._current = cpu
        result = yield tuple(op)
        self._current = cpu
        return result

    def rtas_buffer(self, hwid: int) -> int:
        """The RTAS argument buffer of a hardware thread (Linux's per-CPU rtas_args)."""
        addr = self._rtas_args.get(hwid)
        if addr is None:
            addr = self.alloc(64, 64)
            self._rtas_args[hwid] = addr
        return addr

    def record_rtas(self, record: RtasRecord) -> None:
        """Note one RTAS call; only the latest :data:`RTAS_TRACE_KEEP` (to 1.5x) are kept.

        The record is the model's instrumentation, not guest state: a guest that
        runs for days must not grow. ``rtas_calls`` counts them all.
        """
        self.rtas_calls += 1
        trace = self.rtas_trace
        trace.append(record)
        if len(trace) >= RTAS_TRACE_KEEP + RTAS_TRACE_KEEP // 2:
            del trace[: len(trace) - RTAS_TRACE_KEEP]

    def rtas_call(
        self, cpu: LogicalCpu, service: str, args: Sequence[int], nret: int
    ) -> Generator[Any, Any, RtasResult]:
        """Call an RTAS service by its /rtas name (rtas_call); -1 if the token is unknown."""
        token = self.tokens.get(service)
        if token is None:
            return RtasResult(-1)
        wrong = self.misbehavior.wrong_indices is not None
        if wrong:
            args = self._corrupt(service, list(args))
        hwid = cpu.hwid
        addr = self._rtas_args.get(hwid if hwid is not None else 0)
        if addr is None:
            addr = self.rtas_buffer(hwid if hwid is not None else 0)
        encode_call(self.memory, addr, token, args, nret)
        # (Kernel.hcall inlined: the hot path of every call)
        self._current = cpu
        hret = yield (_H_RTAS, addr)
        self._current = cpu
        rets = read_rets(self.memory, addr)
        self.record_rtas(
            RtasRecord(
                self.now(),
                hwid if hwid is not None else -1,
                service,
                token,
                tuple([int(a) & _U32 for a in args]),
                rets,
                hcall_status(hret),
            )
        )
        status = rets[0] if rets else 0
        if wrong and self._wrong_index_applies(service, args):
            self.printk(
                LogLevel.WARNING,
                f"wrong-index guest: {service}"
                f"({', '.join(hex(a & _U32) for a in args)}) returned {status}",
            )
        return RtasResult(status, rets)

    def rtas_call_busy(
        self, cpu: LogicalCpu, service: str, args: Sequence[int], nret: int
    ) -> Generator[Any, Any, RtasResult]:
        """rtas_call in a ``while (rtas_busy_delay(rc))`` loop (sleeps between tries)."""
        while True:
            result = yield from self.rtas_call(cpu, service, args, nret)
            delay = busy_delay_ms(result.status)
            if delay is None:
                return result
            if delay:
                yield Sleep(delay * _MS)
                cpu = self.current
            else:
                yield Reschedule()
                cpu = self.current

    def rtas_get_sensor(self, sensor: int, index: int) -> Generator[Any, Any, tuple[int, int]]:
        """rtas_get_sensor: (rc as Linux returns it, state); -ENOENT without the service."""
        if "get-sensor-state" not in self.tokens:
            return -ENOENT, 0
        result = yield from self.rtas_call_busy(
            self.current, "get-sensor-state", [sensor, index], 2
        )
        rc = result.status if result.status >= 0 else rtas_error_rc(result.status)
        if result.status < 0 and rc == -ERANGE:
            self.printk(LogLevel.ERR, f"rtas_error_rc: unexpected RTAS error {result.status}")
        return rc, result.out(0)

    def rtas_set_indicator(
        self, indicator: int, index: int, value: int
    ) -> Generator[Any, Any, int]:
        """rtas_set_indicator: 0, a positive status, or a negative errno (-ENOENT without
        the service, as Linux checks its token first)."""
        if "set-indicator" not in self.tokens:
            return -ENOENT
        result = yield from self.rtas_call_busy(
            self.current, "set-indicator", [indicator, index, value], 1
        )
        if result.status < 0:
            rc = rtas_error_rc(result.status)
            if rc == -ERANGE:
                self.printk(LogLevel.ERR, f"rtas_error_rc: unexpected RTAS error {result.status}")
            return rc
        return result.status

    # -------------------------------------------------------- misbehaviour hook

    def _wrong_index_applies(self, service: str, args: Sequence[int]) -> bool:
        wrong = self.misbehavior.wrong_indices
        if wrong is None or not self.in_dlpar or service not in wrong.services:
            return False
        if service in ("get-sensor-state", "set-indicator"):
            return len(args) >= 2 and args[0] in (9001, 9003)
        # configure-connector carries the index in its work area (see wrong_drc_index).
        return service != "ibm,configure-connector"

    def _corrupt(self, service: str, args: list[int]) -> list[int]:
        wrong = self.misbehavior.wrong_indices
        if wrong is None or not self._wrong_index_applies(service, args):
            return args
        if service in ("get-sensor-state", "set-indicator"):
            args[1] = (args[1] + wrong.drc_index_delta) & _U32
        elif service == "start-cpu":
            args[0] = (args[0] + wrong.hwid_delta) & _U32
            args[2] = (args[2] + wrong.hwid_delta) & _U32
        elif service == "query-cpu-stopped-state":
            args[0] = (args[0] + wrong.hwid_delta) & _U32
        return args

    def wrong_drc_index(self, drc_index: int) -> int:
        """The index a wrong-index guest writes into the configure-connector work area."""
        wrong = self.misbehavior.wrong_indices
        if wrong is None or not self.in_dlpar or "ibm,configure-connector" not in wrong.services:
            return drc_index
        return (drc_index + wrong.drc_index_delta) & _U32

    # ------------------------------------------------------------- scheduling

    def spawn(self, name: str, body: TaskBody, cpu: LogicalCpu) -> Task:
        """Create a task runnable on ``cpu``."""
        task = Task(name, body, cpu.logical)
        cpu.runqueue.append(task)
        return task

    def kick(self, cpu: LogicalCpu, target: LogicalCpu) -> Gen:
        """Wake ``target`` with an IPI (smp_send_reschedule) unless it is ``cpu`` itself."""
        if target is cpu or target.hwid is None:
            return
        if target.state not in (CpuState.ONLINE, CpuState.DYING):
            return
        if self.xive is not None:
            yield from self.xive.cause_ipi(cpu, target)
            return
        yield from self.hcall(cpu, Hcall.H_IPI, target.hwid, IPI_PRIORITY)

    def wake(self, cpu: LogicalCpu, waitq: WaitQueue, prefer: LogicalCpu | None = None) -> Gen:
        """Wake every waiter: each goes to ``prefer``, else its last CPU, else the first online."""
        targets: list[LogicalCpu] = []
        for task in waitq.take_all():
            target = self._placement(task, prefer)
            target.runqueue.append(task)
            task.cpu = target.logical
            if target not in targets:
                targets.append(target)
        for target in targets:
            yield from self.kick(cpu, target)

    def _placement(self, task: Task, prefer: LogicalCpu | None) -> LogicalCpu:
        if prefer is not None and prefer.online:
            return prefer
        if task.cpu is not None:
            last = self.cpus.get(task.cpu)
            if last is not None and last.online:
                return last
        first = self.first_online()
        if first is None:
            raise RuntimeError("no online CPU to run a task on")
        return first

    def run_task(self, cpu: LogicalCpu, task: Task) -> Gen:
        """Run ``task`` on ``cpu`` until it sleeps, blocks, reschedules or ends."""
        task.cpu = cpu.logical
        value = task.resume_value
        task.resume_value = None
        while True:
            self._current = cpu
            try:
                op = task.body.send(value)
            except StopIteration:
                task.done = True
                return
            if isinstance(op, Sleep):
                target = cpu
                if op.cpu is not None:
                    wanted = self.cpus.get(op.cpu)
                    target = wanted if wanted is not None and wanted.online else cpu
                task.cpu = target.logical
                target.add_timer(self.now() + max(0, op.ns), task)
                yield from self.kick(cpu, target)
                return
            if isinstance(op, Block):
                op.waitq.add(task)
                return
            if isinstance(op, Reschedule):
                if cpu.runqueue or cpu.irq_check or cpu.state is CpuState.DYING:
                    cpu.runqueue.append(task)
                    return
                value = None
                continue
            if op[0] == EXECUTE:
                value = yield from self.execute(cpu, op[1])
            else:
                # (Kernel.hcall inlined: a task's every hypercall passes here)
                self._current = cpu
                value = yield tuple(op)
                self._current = cpu

    def cpu_main(self, cpu: LogicalCpu) -> Gen:
        """What an online CPU does forever: interrupts, stopper, tasks, idle."""
        while True:
            self._current = cpu
            if cpu.irq_check:
                cpu.irq_check = False
                yield from self.handle_interrupts(cpu)
            if cpu.state is CpuState.DYING:
                yield from self.cpu_die(cpu)
                return
            for task in cpu.pop_expired(self.now()):
                cpu.runqueue.append(task)
            if cpu.runqueue:
                yield from self.run_task(cpu, cpu.runqueue.popleft())
                continue
            deadline = cpu.next_deadline()
            # (Kernel.hcall inlined for the idle loop's H_CEDE)
            if deadline is None:
                self._current = cpu
                yield (_H_CEDE,)
                self._current = cpu
            else:
                wait = deadline - self.now()
                if wait <= 0:
                    continue
                self._current = cpu
                yield (_H_CEDE, wait)
                self._current = cpu
                if self.config.clock is None:
                    self._time_estimate = max(self._time_estimate, deadline)
            cpu.irq_check = True

    def park(self, cpu: LogicalCpu | None, hwid: int) -> Gen:
        """A thread the kernel does not use: cede forever (never comes online)."""
        stand_in = cpu if cpu is not None else LogicalCpu(-1, hwid)
        while True:
            yield from self.hcall(stand_in, Hcall.H_CEDE)

    # -------------------------------------------------------------- interrupts

    def handle_interrupts(self, cpu: LogicalCpu) -> Gen:
        """Take every pending interrupt: H_XIRR, the handler, H_EOI (icp-hv); or XIVE's."""
        if cpu.in_irq:
            return
        if self.xive is not None:
            yield from self._handle_xive_interrupts(cpu, self.xive)
            return
        cpu.in_irq = True
        for _ in range(_IRQ_DRAIN_LIMIT):
            self._current = cpu  # (Kernel.hcall inlined)
            result = yield (_H_XIRR,)
            self._current = cpu
            if hcall_status(result) != _H_SUCCESS:
                break
            xirr = hcall_value(result) & _U32
            vec = xirr & 0x00FF_FFFF
            if vec == XICS_IRQ_SPURIOUS:
                break
            yield from self._dispatch(cpu, vec, xirr)
        cpu.in_irq = False

    def _handle_xive_interrupts(self, cpu: LogicalCpu, xive: XiveDriver) -> Gen:
        """The external exception with XIVE: one interrupt, then each replay the EOI asks."""
        cpu.in_irq = True
        for _ in range(_IRQ_DRAIN_LIMIT):
            virq = yield from xive.get_irq(cpu)
            if not virq:
                break
            if virq == xive.ipi_virq:
                # xive_muxed_ipi_action: the scheduler looks at its queues (cpu_main)
                replay = yield from xive.ipi_eoi(cpu)
            else:
                xd = xive.irqs.get(virq)
                handler = self.irq_handlers.get(xd.hw_irq) if xd is not None else None
                if xd is not None and handler is not None:
                    yield from self.execute(cpu, self.timing.irq_handler_ns, irqs=False)
                    yield from handler(cpu, xd.hw_irq)
                replay = yield from xive.irq_eoi(cpu, virq)
            if not replay:
                break
        cpu.in_irq = False

    def _dispatch(self, cpu: LogicalCpu, vec: int, xirr: int) -> Gen:
        eoi = (LOWEST_PRIORITY << 24) | vec
        if vec == XICS_IPI:
            # icp_hv_ipi_action: clear our MFRR, then the scheduler looks at its queues.
            self._current = cpu  # (Kernel.hcall inlined, twice)
            yield (_H_IPI, cpu.hwid if cpu.hwid is not None else 0, 0xFF)
            self._current = cpu
            yield (_H_EOI, eoi)
            self._current = cpu
            return
        handler = self.irq_handlers.get(vec)
        if handler is None:
            self.printk(LogLevel.ERR, f"Interrupt 0x{vec:x} (real) is invalid, disabling it.")
            yield from self.rtas_call(cpu, "ibm,int-off", [vec], 1)
            yield from self.rtas_call(
                cpu, "ibm,set-xive", [vec, self.xics_default_server, LOWEST_PRIORITY], 1
            )
            yield from self.hcall(cpu, Hcall.H_EOI, xirr)
            return
        yield from self.execute(cpu, self.timing.irq_handler_ns, irqs=False)
        yield from handler(cpu, vec)
        self._current = cpu  # (Kernel.hcall inlined)
        yield (_H_EOI, eoi)
        self._current = cpu

    def lock_device_hotplug(self) -> Gen:
        """Take the device-hotplug mutex (task context: sleeps while another task holds it)."""
        while self.hotplug_lock.locked:
            yield Block(self.hotplug_lock.waitq)
        self.hotplug_lock.locked = True

    def unlock_device_hotplug(self) -> Gen:
        """Release the device-hotplug mutex and wake its waiters."""
        self.hotplug_lock.locked = False
        yield from self.wake(self.current, self.hotplug_lock.waitq)

    def spin_lock(self, cpu: LogicalCpu, lock: SpinLock) -> Gen:
        """Take a spinlock, spinning (executing) while another CPU holds it."""
        spins = 0
        while not lock.try_acquire(cpu.logical):
            spins += 1
            if spins > _SPIN_LIMIT or lock.owner == cpu.logical:
                lock.owner = cpu.logical
                return
            yield from self.execute(cpu, 1_000, irqs=False)

    def xics_update_irq_servers(self) -> None:
        """Default server = boot CPU's thread; distribution server from its gserver pair."""
        boot = self.cpus.get(self.boot_cpuid)
        if boot is None or boot.hwid is None:
            return
        self.xics_default_server = self.xics_default_distrib_server = boot.hwid
        node = self.tree.find(boot.node_path) if boot.node_path else None
        gservers = topology.cells(node, "ibm,ppc-interrupt-gserver#s") or ()
        for j in range(0, len(gservers) - 1, 2):
            if gservers[j] == boot.hwid:
                self.xics_default_distrib_server = gservers[j + 1]
                break

    def xics_get_irq_server(self) -> int:
        """The server for an interrupt with affinity to all CPUs."""
        online = {c.logical for c in self.cpus.values() if c.online}
        present = {c.logical for c in self.cpus.values() if c.present}
        if online == present:
            return self.xics_default_distrib_server
        return self.xics_default_server

    def request_irq(self, cpu: LogicalCpu, hwirq: int, handler: IrqHandler) -> Gen:
        """request_irq: irq_startup unmasks the source, then applies its default affinity.

        Unmasking (ics_rtas_unmask_irq) is ibm,set-xive to a server and ibm,int-on;
        the affinity (irq_setup_affinity -> ics_rtas_set_affinity) follows whether or
        not they succeeded: four RTAS calls per source, as a real guest makes them.
        """
        if self.xive is not None:
            self.irq_handlers[hwirq] = handler
            virq = yield from self.xive.request_irq(cpu, hwirq)
            if virq and hwirq not in self.irq_order:
                self.irq_order.append(hwirq)
                self.virqs[hwirq] = virq
            return
        if hwirq in (XICS_IPI, XICS_IRQ_SPURIOUS):
            return
        self.irq_handlers[hwirq] = handler
        if hwirq not in self.irq_order:
            self.irq_order.append(hwirq)
            self.virqs[hwirq] = FIRST_VIRQ + len(self.virqs)
        yield from self._ics_rtas_unmask_irq(cpu, hwirq)
        yield from self.ics_rtas_set_affinity(cpu, hwirq)

    def _ics_rtas_unmask_irq(self, cpu: LogicalCpu, hwirq: int) -> Gen:
        """ibm,set-xive to a server at the default priority, then ibm,int-on."""
        server = self.xics_get_irq_server()
        result = yield from self.rtas_call(
            cpu, "ibm,set-xive", [hwirq, server, DEFAULT_PRIORITY], 1
        )
        if result.status != 0:
            self.printk(
                LogLevel.ERR,
                f"ics_rtas_unmask_irq: ibm_set_xive irq {hwirq} server {server:x} "
                f"returned {result.status}",
            )
            return
        result = yield from self.rtas_call(cpu, "ibm,int-on", [hwirq], 1)
        if result.status != 0:
            self.printk(
                LogLevel.ERR,
                f"ics_rtas_unmask_irq: ibm_int_on irq={hwirq} returned {result.status}",
            )

    def ics_rtas_set_affinity(self, cpu: LogicalCpu, hwirq: int) -> Gen:
        """Route a source to the server for all CPUs, keeping its priority (ibm,get-xive first)."""
        current = yield from self.rtas_call(cpu, "ibm,get-xive", [hwirq], 3)
        if current.status != 0:
            self.printk(
                LogLevel.ERR,
                f"ics_rtas_set_affinity: ibm,get-xive irq={hwirq} returns {current.status}",
            )
            return
        server = self.xics_get_irq_server()
        moved = yield from self.rtas_call(cpu, "ibm,set-xive", [hwirq, server, current.out(1)], 1)
        if moved.status != 0:
            self.printk(
                LogLevel.ERR,
                f"ics_rtas_set_affinity: ibm,set-xive irq={hwirq} returns {moved.status}",
            )

    def xics_migrate_irqs_away(self, cpu: LogicalCpu) -> Gen:
        """Move interrupts routed to the dying CPU elsewhere (xics_migrate_irqs_away)."""
        if cpu.hwid == self.xics_default_server:
            self.xics_update_irq_servers()
        yield from self.hcall(cpu, Hcall.H_CPPR, 0)
        for hwirq in list(self.irq_order):
            virq = self.virqs[hwirq]
            result = yield from self.rtas_call(cpu, "ibm,get-xive", [hwirq], 3)
            if result.status != 0:
                self.printk(
                    LogLevel.ERR,
                    f"xics_migrate_irqs_away: Can't find server for irq {virq}/{hwirq:x}",
                )
                continue
            if result.out(0) != cpu.hwid:
                continue
            # irq_set_affinity(virq, cpu_all_mask)
            yield from self.ics_rtas_set_affinity(cpu, hwirq)
        yield from self.execute(cpu, 5 * _MS, irqs=False)  # mdelay(5)
        yield from self.hcall(cpu, Hcall.H_CPPR, DEFAULT_PRIORITY)

    # -------------------------------------------------------------------- boot

    def boot_program(self, hwid: int, fdt_addr: int) -> Gen:
        """The boot thread: read the tree, CAS, set up CPUs, start init, then idle."""
        self.boot_hwid = hwid
        stand_in = LogicalCpu(0, hwid, present=True, online=True, state=CpuState.ONLINE)
        self._current = stand_in
        yield from self.execute(stand_in, self.timing.boot_ns, irqs=False)
        tree = self._read_blob(fdt_addr)
        if tree is None:
            self.panic(f"no valid device tree at {fdt_addr:#x}")
            yield from self.park(stand_in, hwid)
            return
        self.boot_tree = tree.root
        self.tree = tree.root.copy()
        self.tokens = self._read_tokens(self.tree)
        self._setup_memory(fdt_addr, tree)
        yield from self._client_architecture_support(stand_in)
        self._setup_cpu_maps()
        cpu = self.cpus.get(self.boot_cpuid)
        if cpu is None:
            self.panic("no boot CPU in the device tree")
            yield from self.park(stand_in, hwid)
            return
        cpu.online = True
        cpu.state = CpuState.ONLINE
        cpu.callin = True
        self._current = cpu
        # init_IRQ -> pseries_init_irq: XIVE if the tree offers it (and xive=off is not
        # given), else XICS.
        self.xive = XiveDriver.probe(self, disabled=self.config.xive_off)
        if self.xive is not None:
            yield from self.xive.core_init(cpu)
        else:
            self.xics_update_irq_servers()
            # xics_init -> xics_setup_cpu on the boot CPU.
            yield from self.hcall(cpu, Hcall.H_CPPR, LOWEST_PRIORITY)
        yield from self.vpa_init(cpu)
        if self.xive is not None:
            # smp_prepare_cpus -> xive_smp_probe: the IPI, and the boot CPU's
            yield from self.xive.smp_probe(cpu)
        self.spawn("init", self.config.init(self), cpu)
        yield from self.cpu_main(cpu)

    def panic(self, reason: str) -> None:
        """Record a kernel panic (the CPU then parks)."""
        self.panicked = reason
        self.printk(LogLevel.EMERG, f"Kernel panic - not syncing: {reason}")

    def _read_blob(self, addr: int) -> fdt.DeviceTree | None:
        try:
            magic, totalsize = struct.unpack(">II", self.memory.read(addr, 8))
            if magic != _FDT_MAGIC:
                return None
            return fdt.from_dtb(self.memory.read(addr, totalsize))
        except (fdt.FdtError, Exception):
            return None

    @staticmethod
    def _read_tokens(root: fdt.Node) -> dict[str, int]:
        rtas = root.find("/rtas")
        tokens: dict[str, int] = {}
        if rtas is None:
            return tokens
        for prop in rtas.properties:
            if len(prop.value) == 4:
                tokens[prop.name] = struct.unpack(">I", prop.value)[0]
        return tokens

    def _setup_memory(self, fdt_addr: int, blob: fdt.DeviceTree) -> None:
        ranges = topology.memory_ranges(blob.root)
        ram = max((base + size for base, size in ranges), default=self.memory.size)
        ram = min(ram, self.memory.size)
        self.fdt_size = self.memory.ld32(fdt_addr + 4)
        reserved = [(fdt_addr, self.fdt_size), *blob.reserve_map]
        self.regions = GuestRegions.for_ram(ram, reserved)
        rtas = blob.root.find("/rtas")
        self.error_log_max = topology.cell(rtas, "rtas-error-log-max") or RTAS_ERROR_LOG_MAX
        self.error_log_max = min(self.error_log_max, RTAS_ERROR_LOG_MAX)
        self.event_scan_rate = topology.cell(rtas, "rtas-event-scan-rate") or 0
        self.ras_log_buf = self.alloc(RTAS_ERROR_LOG_MAX, 16)
        self.rtasd_logdata = self.alloc(RTAS_ERROR_LOG_MAX, 16)
        self.rtas_data_buf = self.alloc(CC_WORK_AREA_SIZE, CC_WORK_AREA_SIZE)

    def _client_architecture_support(self, cpu: LogicalCpu) -> Gen:
        """prom_send_capabilities: build the vector, H_CAS, re-read the returned tree."""
        boot_nodes = list(topology.iter_nodes_by_type(self.tree, "cpu"))
        threads = len(topology.interrupt_servers(boot_nodes[0][1])) if boot_nodes else 1
        request = CasRequest(
            hp_evt=self.mode is GuestMode.IN_KERNEL_DLPAR,
            platform=PlatformSupport.from_chosen(
                self.tree.find("/chosen"), xive_disabled=self.config.xive_off
            ),
            threads_per_core=threads,
            nr_cpus=self.nr_cpu_ids,
        )
        self.printk(
            LogLevel.INFO,
            f"Max number of cores passed to firmware: {request.max_cores} "
            f"(NR_CPUS = {self.nr_cpu_ids})",
        )
        table = request.table()
        vec_addr = self.alloc(len(table), 16)
        self.memory.write(vec_addr, table)
        size = max(1 << 20, 4 * self.fdt_size)
        try:
            buf = self.alloc(size, 4096)
        except OutOfGuestMemory:
            size = max(64 << 10, 2 * self.fdt_size)
            buf = self.alloc(size, 4096)
        result = yield from self.hcall(cpu, Hcall.KVMPPC_H_CAS, vec_addr, buf, size)
        self.cas_status = hcall_status(result)
        if self.cas_status != _H_SUCCESS:
            self.printk(LogLevel.WARNING, "WARNING: ibm,client-architecture-support call FAILED!")
        else:
            self.printk(LogLevel.INFO, "Calling ibm,client-architecture-support... done")
            blob = self._read_blob(buf + CAS_RESPONSE_HEADER_SIZE)
            if blob is None:
                self.printk(LogLevel.WARNING, "ibm,client-architecture-support: unreadable tree")
            else:
                self.tree = blob.root
                self.tokens = self._read_tokens(self.tree) or self.tokens
        self.features = NegotiatedFeatures.from_tree(self.tree)

    def _setup_cpu_maps(self) -> None:
        """smp_setup_cpu_maps: logical ids in tree order, possible ids from lrdr-capacity."""
        self.domain_index = topology.primary_domain_index(self.tree)
        logical = 0
        nthreads = 1
        for path, node in topology.iter_nodes_by_type(self.tree, "cpu"):
            servers = topology.interrupt_servers(node) or (logical,)
            nthreads = len(servers)
            status = topology.string(node, "status")
            available = status is None or status in ("okay", "ok")
            nid = topology.associativity_node(node, self.domain_index)
            for hwid in servers:
                if logical >= self.nr_cpu_ids:
                    break
                cpu = LogicalCpu(
                    logical,
                    present=available,
                    node=0 if nid == topology.NUMA_NO_NODE else nid,
                    node_path=path,
                    chip_id=topology.cell(node, "ibm,chip-id"),
                )
                self.cpus[logical] = cpu
                if available:
                    self._set_hwid(cpu, hwid)
                logical += 1
            if logical >= self.nr_cpu_ids:
                break
        self.threads_per_core = nthreads
        cores = topology.lrdr_max_cores(self.tree)
        if cores is not None:
            maxcpus = cores * nthreads
            if maxcpus > self.nr_cpu_ids:
                self.printk(
                    LogLevel.WARNING,
                    f"Partition configured for {maxcpus} cpus, operating system maximum "
                    f"is {self.nr_cpu_ids}.",
                )
                maxcpus = self.nr_cpu_ids
            else:
                self.printk(LogLevel.INFO, f"Partition configured for {maxcpus} cpus.")
            for i in range(maxcpus):
                self.cpus.setdefault(i, LogicalCpu(i))
        boot = next(
            (c.logical for c in self.cpus.values() if c.present and c.hwid == self.boot_hwid), 0
        )
        self.boot_cpuid = boot
        self.numa_nodes_possible = topology.max_numa_nodes(self.tree, self.domain_index)
        memory_nodes = set(topology.memory_nodes(self.tree, self.domain_index))
        cpu_nodes = {c.node for c in self.cpus.values() if c.present}
        self.online_nodes = (memory_nodes | cpu_nodes) or {0}
        highest = max(self.online_nodes | {self.numa_nodes_possible - 1})
        self.numa_nodes_possible = highest + 1
        self.node_recorded_ids = {n: set() for n in range(self.numa_nodes_possible)}
        for c in self.cpus.values():
            if c.present:
                self.node_recorded_ids.setdefault(c.node, set()).add(c.logical)

    def vpa_init(self, cpu: LogicalCpu) -> Gen:
        """Register the thread's VPA (and SLB shadow under hash MMU), if enabled."""
        if not self.config.register_vpa or cpu.hwid is None:
            return
        hwid = cpu.hwid
        if hwid not in self._vpa:
            vpa = self.alloc(0x400, 0x400)
            slb = self.alloc(0x400, 0x400)
            self.memory.st16(vpa + 4, 0x400)  # lppaca size
            self.memory.st32(slb + 4, 0x200)  # slb_shadow buffer_length
            self._vpa[hwid] = (vpa, slb)
        vpa, slb = self._vpa[hwid]
        result = yield from self.hcall(
            cpu, Hcall.H_REGISTER_VPA, H_VPA_REG_VPA << H_VPA_FUNC_SHIFT, hwid, vpa
        )
        cpu.vpa_registered = hcall_status(result) == _H_SUCCESS
        if not cpu.vpa_registered:
            self.printk(
                LogLevel.ERR,
                f"WARNING: VPA registration for cpu {cpu.logical} (hw {hwid}) of area "
                f"{vpa:x} failed with {hcall_status(result)}",
            )
        if not self.features.radix:
            result = yield from self.hcall(
                cpu, Hcall.H_REGISTER_VPA, H_VPA_REG_SLB << H_VPA_FUNC_SHIFT, hwid, slb
            )
            cpu.slb_shadow_registered = hcall_status(result) == _H_SUCCESS

    # ------------------------------------------------------- CPU online/offline

    def secondary_program(self, hwid: int) -> Gen:
        """A thread sent to SECONDARY_ENTRY by start-cpu: call in, set up, go idle."""
        cpu = self.cpu_by_hwid(hwid)
        if cpu is None or not cpu.cpu_start:
            # generic_secondary_smp_init finds no paca waiting for this thread.
            yield from self.park(cpu, hwid)
            return
        self._current = cpu
        yield from self.execute(cpu, self.timing.secondary_start_ns, irqs=False)
        cpu.callin = True
        # smp_setup_cpu -> xive_smp_setup_cpu, or xics_setup_cpu (not on the boot CPU),
        # then vpa_init.
        if self.xive is not None:
            yield from self.xive.smp_setup_cpu(cpu)
        elif cpu.logical != self.boot_cpuid:
            yield from self.hcall(cpu, Hcall.H_CPPR, LOWEST_PRIORITY)
        yield from self.vpa_init(cpu)
        cpu.online = True
        cpu.state = CpuState.ONLINE
        cpu.cpu_start = False
        cpu.irq_check = True
        self.online_nodes.add(cpu.node)
        yield from self.cpu_main(cpu)

    def smp_query_cpu_stopped(self, cpu: LogicalCpu, pcpu: int) -> Generator[Any, Any, int]:
        """smp_query_cpu_stopped: the thread's stopped state, or a failing RTAS status."""
        if "query-cpu-stopped-state" not in self.tokens:
            self.printk_once(LogLevel.INFO, "Firmware doesn't support query-cpu-stopped-state")
            return -1
        result = yield from self.rtas_call(cpu, "query-cpu-stopped-state", [pcpu], 2)
        if result.status != 0:
            self.printk(LogLevel.ERR, f"RTAS query-cpu-stopped-state failed: {result.status}")
            return result.status
        return result.out(0)

    def _startup_cpu(self, cpu: LogicalCpu, target: LogicalCpu) -> Generator[Any, Any, bool]:
        """smp_startup_cpu: query-cpu-stopped-state, then start-cpu(hwid, entry, hwid)."""
        pcpu = target.hwid if target.hwid is not None else 0
        state = yield from self.smp_query_cpu_stopped(cpu, pcpu)
        if state == CpuStoppedState.NOT_STOPPED:
            return True  # already out of firmware: assume it spins waiting for us
        if "start-cpu" not in self.tokens:
            return True
        result = yield from self.rtas_call(cpu, "start-cpu", [pcpu, SECONDARY_ENTRY, pcpu], 1)
        if result.status != 0:
            self.printk(LogLevel.ERR, f"start-cpu failed: {result.status}")
            return False
        return True

    def cpu_up(self, target: LogicalCpu, *, booting: bool = False) -> Generator[Any, Any, int]:
        """cpu_up -> __cpu_up: kick the thread, wait for it to call in and come online."""
        if not target.present or target.hwid is None:
            return -EINVAL
        if target.online:
            return 0
        target.callin = False
        target.cpu_start = True
        target.state = CpuState.STARTING
        cpu = self.current
        if self.xive is not None:
            # smp_ops->prepare_cpu (pseries_smp_prepare_cpu): the new CPU's queue and IPI
            rc = yield from self.xive.smp_prepare_cpu(cpu, target.logical)
            cpu = self.current
            if rc:
                target.cpu_start = False
                target.state = CpuState.OFFLINE
                return int(rc)
        started = yield from self._startup_cpu(cpu, target)
        cpu = self.current
        if not started:
            target.cpu_start = False
            target.state = CpuState.OFFLINE
            self.printk(LogLevel.ERR, f"smp: failed starting cpu {target.logical} (rc {-ENOENT})")
            return -ENOENT
        deadline = self.now() + (5 * _S if booting else _MS)
        while not target.callin and self.now() < deadline:
            yield from self.execute(cpu, self.timing.callin_spin_ns)
        if not target.callin and not booting:
            deadline = self.now() + 100 * _S
            while not target.callin and self.now() < deadline:
                yield Sleep(10 * _MS)
                cpu = self.current
        if not target.callin:
            target.cpu_start = False
            target.state = CpuState.OFFLINE
            self.printk(LogLevel.ERR, f"Processor {target.logical} is stuck.")
            return -ENOENT
        spins = 0
        while not target.online and spins < _SPIN_LIMIT:
            spins += 1
            yield from self.execute(self.current, self.timing.callin_spin_ns)
        return 0 if target.online else -ENOENT

    def device_online(self, target: LogicalCpu) -> Generator[Any, Any, int]:
        """device_online of a CPU device: 1 if already online, else cpu_up's result."""
        if target.online:
            return 1
        if target.logical >= self.nr_cpu_ids:
            return -EINVAL
        return (yield from self.cpu_up(target))

    def device_offline(self, target: LogicalCpu) -> Generator[Any, Any, int]:
        """device_offline of a CPU device: 1 if already offline, else cpu_down's result."""
        if not target.online:
            return 1
        return (yield from self.cpu_down(target))

    def cpu_down(self, target: LogicalCpu) -> Generator[Any, Any, int]:
        """cpu_down: have the CPU's stopper take it down, then wait for it to stop."""
        if not target.online:
            return 0
        if self.num_online_cpus() == 1 or self.misbehavior.refuse_unplug:
            return -EBUSY
        target.state = CpuState.DYING
        target.reported_dead = False
        cpu = self.current
        target.irq_check = True
        yield from self.kick(cpu, target)
        while not target.reported_dead:
            yield Block(target.dead_wq)
        yield from self._pseries_cpu_die(target)
        return 0

    def _pseries_cpu_die(self, target: LogicalCpu) -> Gen:
        """pseries_cpu_die: poll query-cpu-stopped-state until the thread is stopped."""
        pcpu = target.hwid if target.hwid is not None else 0
        timeout = self.now() + 120 * _S
        while True:
            status = yield from self.smp_query_cpu_stopped(self.current, pcpu)
            if status in (CpuStoppedState.STOPPED, -1):
                break
            if self.now() > timeout:
                self.printk(
                    LogLevel.WARNING,
                    f"pseries-hotplug-cpu: CPU {target.logical} (hwid {pcpu}) didn't die "
                    "after 120 seconds",
                )
                timeout = self.now() + 120 * _S
            yield from self.execute(self.current, self.timing.die_poll_ns)
            yield Reschedule()
        if status == -1:
            self.printk(
                LogLevel.WARNING,
                f"pseries-hotplug-cpu: CPU {target.logical} (hwid {pcpu}) reported error "
                "while dying",
            )
        target.state = CpuState.OFFLINE
        target.cpu_start = False

    def cpu_die(self, cpu: LogicalCpu) -> Gen:
        """The dying CPU: disable (migrate IRQs), hand off work, report, stop-self."""
        # take_cpu_down -> pseries_cpu_disable
        cpu.online = False
        if cpu.logical == self.boot_cpuid:
            first = self.first_online()
            if first is not None:
                self.boot_cpuid = first.logical
        if self.xive is not None:
            yield from self.xive.smp_disable_cpu(cpu)
        else:
            yield from self.xics_migrate_irqs_away(cpu)
        # sched: migrate this CPU's tasks and timers.
        first = self.first_online()
        if first is not None:
            moved = False
            while cpu.runqueue:
                task = cpu.runqueue.popleft()
                task.cpu = first.logical
                first.runqueue.append(task)
                moved = True
            for deadline, task in cpu.take_timers():
                task.cpu = first.logical
                first.add_timer(deadline, task)
                moved = True
            if moved:
                yield from self.kick(cpu, first)
        # cpuhp_report_idle_dead: the controlling task may now look for the corpse.
        cpu.reported_dead = True
        yield from self.wake(cpu, cpu.dead_wq)
        # pseries_cpu_offline_self: xive_teardown_cpu, or xics_teardown_cpu
        if self.xive is not None:
            yield from self.xive.teardown_cpu(cpu)
        else:
            yield from self.hcall(cpu, Hcall.H_CPPR, 0)
            yield from self.hcall(cpu, Hcall.H_IPI, cpu.hwid if cpu.hwid is not None else 0, 0xFF)
        if cpu.slb_shadow_registered:
            yield from self.hcall(
                cpu, Hcall.H_REGISTER_VPA, H_VPA_DEREG_SLB << H_VPA_FUNC_SHIFT, cpu.hwid or 0, 0
            )
            cpu.slb_shadow_registered = False
        cpu.state = CpuState.DEAD
        yield from self.rtas_stop_self(cpu)

    def rtas_stop_self(self, cpu: LogicalCpu) -> Gen:
        """stop-self (nargs 0, nret 1): never returns; if it does, Linux panics."""
        token = self.tokens.get("stop-self")
        if token is not None:
            addr = self.rtas_buffer(cpu.hwid if cpu.hwid is not None else 0)
            encode_call(self.memory, addr, token, [], 1)
            self.record_rtas(
                RtasRecord(
                    self.now(),
                    cpu.hwid if cpu.hwid is not None else -1,
                    "stop-self",
                    token,
                    (),
                    (),
                    None,
                )
            )
            yield from self.hcall(cpu, Hcall.KVMPPC_H_RTAS, addr)
        self.printk(LogLevel.EMERG, "Kernel panic - not syncing: Alas, I survived.")
        yield from self.park(cpu, cpu.hwid if cpu.hwid is not None else 0)

    # --------------------------------------------------- device tree (OF) changes

    def attach_cpu_node(self, node: fdt.Node) -> int:
        """Attach a node under /cpus (at the front, as of_attach_node) and notify.

        The notifier is pseries_add_processor: it marks the node's threads present
        with fresh logical ids. On failure the node is taken out again.
        """
        cpus = self.tree.find("/cpus")
        if cpus is None:
            return -ENODEV
        try:
            cpus.add_subnode(node)
        except fdt.FdtError:
            return -EEXIST
        rc = self.pseries_add_processor(node, f"/cpus/{node.name}")
        if rc:
            cpus.remove_subnode(node.name)
        return rc

    def detach_cpu_node(self, node: fdt.Node) -> int:
        """Detach a cpu node from /cpus and notify (pseries_remove_processor)."""
        cpus = self.tree.find("/cpus")
        if cpus is None or cpus.subnode(node.name) is not node:
            return -EINVAL
        cpus.remove_subnode(node.name)
        self.pseries_remove_processor(node)
        return 0

    def _free_cpu_block(self, nthreads: int, excluded: set[int]) -> range | None:
        """find_cpu_id_range over the possible ids: the first ``nthreads``-aligned block
        of ids that are possible, not present and not ``excluded`` (None: no block).

        What :func:`guest.topology.find_cpu_id_range` answers, found by looking at the
        blocks in order until one fits, as Linux does, instead of first building the
        sets of every possible and present id (thousands on a big machine).
        """
        if nthreads < 1:
            return None
        cpus = self.cpus
        # Blocks below the hint were seen taken (an id present or not possible) by an
        # earlier search with this block size; nothing frees an id without resetting it
        # (pseries_remove_processor), so a machine filling up is not scanned from 0 again.
        hint_size, hint = self._free_block_hint
        start = hint if hint_size == nthreads else 0
        advance = True
        while start + nthreads <= self.nr_cpu_ids:
            taken = False
            for logical in range(start, start + nthreads):
                cpu = cpus.get(logical)
                if cpu is None or cpu.present:
                    taken = True
                    break
                if logical in excluded:
                    break
            else:
                if advance:
                    self._free_block_hint = (nthreads, start)
                return range(start, start + nthreads)
            if not taken:
                advance = False  # (free but for the exclusions: not known taken)
            elif advance:
                self._free_block_hint = (nthreads, start + nthreads)
            start += nthreads
        return None

    def pseries_add_processor(self, node: fdt.Node, path: str) -> int:
        """Mark a new cpu node's threads present with Linux's logical-id assignment."""
        servers = topology.cells(node, "ibm,ppc-interrupt-server#s")
        if not servers:
            return 0
        nthreads = len(servers)
        nid = topology.associativity_node(node, self.domain_index)
        if nid < 0 or nid >= self.numa_nodes_possible:
            nid = min(self.online_nodes) if self.online_nodes else 0
        assigned = nid
        others = set().union(
            *(
                ids
                for n, ids in self.node_recorded_ids.items()
                if n != assigned and n in self.online_nodes
            )
        )
        block = self._free_cpu_block(nthreads, others)
        reused = False
        if block is None and self.numa_nodes_possible > 1:
            block = self._free_cpu_block(nthreads, set())
            reused = block is not None
        if block is None:
            self.printk(
                LogLevel.ERR,
                f"pseries-hotplug-cpu: Cannot add cpu {path}; this system configuration "
                f"supports {len(self.cpus)} logical cpus.",
            )
            return -ENOSPC
        chip = topology.cell(node, "ibm,chip-id")
        for logical, hwid in zip(block, servers):
            cpu = self.cpus.setdefault(logical, LogicalCpu(logical))
            cpu.present = True
            self._set_hwid(cpu, hwid)
            cpu.node = assigned
            cpu.node_path = path
            cpu.chip_id = chip
            cpu.state = CpuState.OFFLINE
        self.node_recorded_ids.setdefault(assigned, set()).update(block)
        if reused:
            self.printk(
                LogLevel.WARNING,
                f"pseries-hotplug-cpu: Reusing free CPU ids {block[0]}-{block[-1]} "
                "from another node",
            )
            for n, ids in self.node_recorded_ids.items():
                if n != assigned:
                    ids.difference_update(block)
        return 0

    def pseries_remove_processor(self, node: fdt.Node) -> None:
        """Mark a departing cpu node's threads not present (hard id -1)."""
        servers = topology.cells(node, "ibm,ppc-interrupt-server#s")
        if not servers:
            return
        for hwid in servers:
            cpu = self.cpu_by_hwid(hwid)
            if cpu is None:
                self.printk(
                    LogLevel.WARNING, f"Could not find cpu to remove with physical id 0x{hwid:x}"
                )
                continue
            cpu.present = False
            self._free_block_hint = (0, 0)  # an id is free again: search from the start
            self._set_hwid(cpu, None)
            cpu.node_path = None
            cpu.chip_id = None
            cpu.state = CpuState.OFFLINE
