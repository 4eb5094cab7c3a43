"""Linux's XIVE exploitation-mode interrupt driver on pseries (sysdev/xive, spapr backend).

When CAS negotiated XIVE, the tree the guest reads back has an
``ibm,power-ivpe`` node instead of XICS's, and Linux drives interrupts with the
H_INT_* hypercalls and with loads and stores to two kinds of device pages: each
source's ESB page (mask, unmask, EOI by PQ bits) and the OS page of the thread
interrupt management area (acknowledge, CPPR). Nothing here uses RTAS: the
ibm,set-xive / ibm,int-on calls of XICS do not happen (the recording of a real
Linux 6.12 guest under QEMU 7.2 has none).

What Linux does where (sysdev/xive/common.c and spapr.c):

* init (xive_spapr_init, xive_core_init): read the node's TIMA page, the LISN
  ranges (the IPI numbers it may allocate) and queue sizes, and from
  ``/ibm,plat-res-int-priorities`` the priority it uses (the highest number the
  hypervisor does not reserve: 6 on QEMU); then prepare the boot CPU: its event
  queue (H_INT_GET_QUEUE_INFO, H_INT_SET_QUEUE_CONFIG with always-notify), CPPR
  0xff; xive_smp_probe then gives it an IPI.
* a CPU coming up (xive_smp_prepare_cpu, before start-cpu): its queue, then its
  IPI: a LISN from the ranges, H_INT_GET_SOURCE_INFO, H_INT_SET_SOURCE_CONFIG
  (target, priority, the IPI's Linux interrupt number as EISN), unmask with a load
  of the ESB page at 0xc00 (PQ=00); on the CPU itself, CPPR 0xff.
* an interrupt (xive_get_irq): acknowledge (2-byte TIMA load at 0xc10), read the
  queue (entries whose generation bit differs from the queue's toggle), run the
  handler, EOI at the source (ESB load at 0xc00, re-trigger if Q was set), look
  at the queue again and set CPPR 0xff when it is empty.
* a CPU going offline: its interrupts moved to an online CPU
  (H_INT_SET_SOURCE_CONFIG), CPPR 0 then 0xff (xive_smp_disable_cpu); as it stops
  (xive_teardown_cpu): CPPR 0, mask its IPI (ESB 0xd00) and unroute it (priority
  0xff), free the LISN, reset the queue (H_INT_SET_QUEUE_CONFIG size 0).

The driver runs on the guest's kernel (:class:`guest.kernel.Kernel`, seen as a
:class:`KernelSide`): every platform access is a generator yielding the operation
from the CPU running it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

import attrs

import fdt
from guest import topology
from guest.log import LogLevel
from guest.state import LogicalCpu
from rtas import GuestMemory
from rtas.hcalls import MMIO_LOAD, MMIO_STORE, Hcall, HcallReturn
from rtas.xive_abi import (
    END_ALWAYS_NOTIFY,
    EQ_DATA_MASK,
    ESB_LOAD_EOI,
    ESB_SET_PQ_00,
    ESB_SET_PQ_01,
    ESB_SET_PQ_10,
    ESB_SET_PQ_11,
    ESB_STORE,
    ESB_STORE_EOI,
    ESB_VAL_P,
    ESB_VAL_Q,
    PRIORITY_MASKED,
    SRC_H_INT_ESB,
    SRC_LSI,
    SRC_SET_EISN,
    SRC_STORE_EOI,
    SRC_TRIGGER,
    TM_CPPR,
    TM_QW1_NSR_EO,
    TM_QW1_OS,
    TM_SPC_ACK_OS_REG,
)

Gen = Generator[Any, Any, Any]


class KernelSide(Protocol):
    """What the driver uses of the kernel it runs in (:class:`guest.kernel.Kernel`)."""

    memory: GuestMemory
    cpus: dict[int, LogicalCpu]
    boot_cpuid: int

    @property
    def tree(self) -> fdt.Node: ...

    def hcall(self, cpu: LogicalCpu, *op: int) -> Generator[Any, Any, Any]: ...

    def alloc(self, size: int, align: int = 16) -> int: ...

    def printk(self, level: LogLevel, text: str, source: str = ...) -> None: ...


#: The compatible string of the XIVE presenter node (the guest searches for it).
IVPE_COMPATIBLE = "ibm,power-ivpe"
#: Linux's PAGE_SHIFT on a 64 KiB-page ppc64le kernel: the queue size it prefers.
PAGE_SHIFT = 16
#: XIVE_BAD_IRQ: no interrupt (also "no IPI yet").
XIVE_BAD_IRQ = 0
#: XIVE_INVALID_TARGET.
XIVE_INVALID_TARGET = -1
#: The most priorities a XIVE presenter has (0..7).
XIVE_MAX_PRIORITIES = 8
#: Linux's NR_IRQS_LEGACY: interrupt numbers 0..15 are preallocated.
NR_IRQS_LEGACY = 16
#: nr_irqs of the recorded guest ("NR_IRQS: 512, nr_irqs: 512").
NR_IRQS = 512
#: Linux interrupt numbers the recorded guest (Linux 6.12 under QEMU 7.2, POWER9)
#: gave devices the model does not have (its console among them), between the EPOW
#: and the hot-plug event sources: with them taken, the event sources get the
#: numbers that guest showed in /proc/interrupts (17 and 23).
UNMODELLED_DEVICE_VIRQS = range(18, 23)


@attrs.define
class IrqData:
    """A source as the driver knows it (struct xive_irq_data)."""

    hw_irq: int
    flags: int
    eoi_page: int
    trig_page: int
    esb_shift: int
    #: Logical CPU the source is routed to, or XIVE_INVALID_TARGET.
    target: int = XIVE_INVALID_TARGET
    saved_p: bool = False
    stale_p: bool = False


@attrs.define
class EventQueue:
    """One CPU's event queue as the driver reads it (struct xive_q)."""

    qpage: int | None = None
    msk: int = 0
    idx: int = 0
    toggle: int = 0
    #: Interrupts routed to this queue (xive_try_pick_target's accounting).
    count: int = 0
    pending_count: int = 0


@attrs.define
class XiveCpu:
    """Per-CPU state (struct xive_cpu): its IPI, its queue, pending priorities, CPPR."""

    hw_ipi: int = XIVE_BAD_IRQ
    ipi_data: IrqData | None = None
    queue: EventQueue = attrs.field(factory=EventQueue)
    pending_prio: int = 0
    cppr: int = 0


@attrs.frozen
class XiveTree:
    """What xive_spapr_init reads from the device tree."""

    #: Physical address of the TIMA's OS page (the node's second ``reg`` entry).
    tima: int
    #: The priority Linux uses for every interrupt.
    priority: int
    #: (base, count) of each ``ibm,xive-lisn-ranges`` pair: the IPI numbers.
    lisn_ranges: tuple[tuple[int, int], ...]
    #: log2 of the queue size (from ``ibm,xive-eq-sizes``).
    queue_shift: int

    @classmethod
    def read(cls, root: fdt.Node) -> XiveTree | str:
        """The node's facts, or the error Linux prints when one is missing."""
        node = next((n for _p, n in root.iter_nodes() if _compatible(n, IVPE_COMPATIBLE)), None)
        if node is None:
            return "not found"
        reg = _u64s(node.get("reg"))
        if len(reg) < 4:
            return "Failed to get thread mgmnt area resource"
        prio_cells = topology.cells(root, "ibm,plat-res-int-priorities") or ()
        if not prio_cells:
            return "Failed to read 'ibm,plat-res-int-priorities' property"
        if len(prio_cells) % 2:
            return "invalid 'ibm,plat-res-int-priorities' property"
        found = PRIORITY_MASKED
        for prio in range(XIVE_MAX_PRIORITIES):
            reserved = any(
                base <= prio < base + count
                for base, count in zip(prio_cells[::2], prio_cells[1::2], strict=True)
            )
            if not reserved:
                found = prio
        if found == PRIORITY_MASKED:
            return "no valid priority found in 'ibm,plat-res-int-priorities'"
        ranges = topology.cells(node, "ibm,xive-lisn-ranges") or ()
        if not ranges:
            return "Failed to read 'ibm,xive-lisn-ranges' property"
        if len(ranges) % 2:
            return "invalid 'ibm,xive-lisn-ranges' property"
        shift = 0
        for size in topology.cells(node, "ibm,xive-eq-sizes") or ():
            shift = size
            if size == PAGE_SHIFT:
                break
        return cls(
            tima=reg[2],
            priority=found,
            lisn_ranges=tuple(zip(ranges[::2], ranges[1::2], strict=True)),
            queue_shift=shift,
        )


def _compatible(node: fdt.Node, name: str) -> bool:
    """of_device_is_compatible: ``name`` is one of the node's compatible strings."""
    prop = node.get("compatible")
    return prop is not None and name.encode() in prop.value.split(b"\0")


def _u64s(prop: fdt.Property | None) -> list[int]:
    if prop is None:
        return []
    data = prop.value
    return [int.from_bytes(data[i : i + 8], "big") for i in range(0, len(data) - 7, 8)]


def _status(result: Any) -> int:
    if isinstance(result, tuple | list):
        return int(result[0]) if result else 0
    return 0 if result is None else int(result)


def _values(result: Any) -> tuple[int, ...]:
    if isinstance(result, tuple | list):
        return tuple(int(v) for v in result[1:])
    return ()


class XiveDriver:
    """The XIVE driver of one boot; :meth:`probe` makes it when the tree offers XIVE."""

    def __init__(self, kernel: KernelSide, tree: XiveTree) -> None:
        self.k = kernel
        self.tree = tree
        self.priority = tree.priority
        #: Free IPI numbers (xive_irq_bitmap): one set of taken LISNs per range.
        self._lisns_taken: list[set[int]] = [set() for _ in tree.lisn_ranges]
        self.cpus: dict[int, XiveCpu] = {}
        #: Mapped sources by Linux interrupt number, and the reverse.
        self.irqs: dict[int, IrqData] = {}
        self.virq_of: dict[int, int] = {}
        #: Linux interrupt numbers in use (the preallocated ones and the unmodelled devices').
        self._virqs_taken: set[int] = set(range(NR_IRQS_LEGACY)) | set(UNMODELLED_DEVICE_VIRQS)
        #: The IPI's Linux interrupt number (one per NUMA node in Linux; one node here).
        self.ipi_virq = XIVE_BAD_IRQ
        #: xive_pick_irq_target's static fuzz.
        self._fuzz = 0
        #: Queue pages by logical CPU: Linux frees a CPU's page when it goes offline and
        #: allocates one when it returns; the model's bump allocator cannot free, so a CPU
        #: gets its page back.
        self._pages: dict[int, int] = {}

    @classmethod
    def probe(cls, kernel: KernelSide, *, disabled: bool) -> XiveDriver | None:
        """xive_spapr_init: None when ``xive=off`` or the tree has no XIVE node."""
        if disabled:
            return None
        found = XiveTree.read(kernel.tree)
        if isinstance(found, str):
            if found != "not found":
                kernel.printk(LogLevel.ERR, f"xive: {found}")
            return None
        for base, count in found.lisn_ranges:
            kernel.printk(LogLevel.INFO, f"xive: Using IRQ range [{base:x}-{base + count - 1:x}]")
        return cls(kernel, found)

    # ------------------------------------------------------------------ helpers

    def _hcall(self, cpu: LogicalCpu, *op: int) -> Gen:
        return (yield from self.k.hcall(cpu, *op))

    def _tima_cppr(self, cpu: LogicalCpu, xc: XiveCpu, cppr: int) -> Gen:
        """out_8(TIMA + OS ring + CPPR), remembering it."""
        xc.cppr = cppr
        yield from self._hcall(cpu, MMIO_STORE, self.tree.tima + TM_QW1_OS + TM_CPPR, 1, cppr)

    def hwid(self, logical: int) -> int:
        """get_hard_smp_processor_id."""
        target = self.k.cpus.get(logical)
        return target.hwid if target is not None and target.hwid is not None else 0

    def _xc(self, logical: int) -> XiveCpu:
        return self.cpus.setdefault(logical, XiveCpu())

    # -------------------------------------------------------------- ESB access

    def esb_read(self, cpu: LogicalCpu, xd: IrqData, offset: int) -> Gen:
        """xive_esb_read: a load from the source's management page (or H_INT_ESB)."""
        if offset == ESB_SET_PQ_10 and xd.flags & SRC_STORE_EOI:
            offset |= 0x200  # XIVE_ESB_LD_ST_MO: never offered by QEMU 7.2
        if xd.flags & SRC_H_INT_ESB:
            result = yield from self._hcall(cpu, Hcall.H_INT_ESB, 0, xd.hw_irq, offset, 0)
            if _status(result) != int(HcallReturn.H_SUCCESS):
                self.k.printk(
                    LogLevel.ERR,
                    f"xive: H_INT_ESB lisn={xd.hw_irq} offset={offset} returned {_status(result)}",
                )
                return 0xFF
            return (_values(result) or (0,))[0] & 0xFF
        value = yield from self._hcall(cpu, MMIO_LOAD, xd.eoi_page + offset, 8)
        return int(value or 0) & 0xFF

    def esb_write(self, cpu: LogicalCpu, xd: IrqData, offset: int, data: int) -> Gen:
        """xive_esb_write."""
        if xd.flags & SRC_H_INT_ESB:
            yield from self._hcall(cpu, Hcall.H_INT_ESB, ESB_STORE, xd.hw_irq, offset, data)
            return
        yield from self._hcall(cpu, MMIO_STORE, xd.eoi_page + offset, 8, data)

    def source_eoi(self, cpu: LogicalCpu, xd: IrqData) -> Gen:
        """xive_do_source_eoi: Store EOI, LSI load EOI, or PQ=00 and re-trigger if Q."""
        xd.stale_p = False
        if xd.flags & SRC_STORE_EOI:
            yield from self.esb_write(cpu, xd, ESB_STORE_EOI, 0)
            return
        if xd.flags & SRC_LSI:
            yield from self.esb_read(cpu, xd, ESB_LOAD_EOI)
            return
        eoi_val = yield from self.esb_read(cpu, xd, ESB_SET_PQ_00)
        if eoi_val & ESB_VAL_Q and xd.trig_page:
            yield from self._hcall(cpu, MMIO_STORE, xd.trig_page, 8, 0)

    def set_mask(self, cpu: LogicalCpu, xd: IrqData, mask: bool) -> Gen:
        """xive_do_source_set_mask: PQ=01 to mask, PQ=00 (or 10 if P was saved) to unmask."""
        if mask:
            val = yield from self.esb_read(cpu, xd, ESB_SET_PQ_01)
            if not xd.stale_p and val & ESB_VAL_P:
                xd.saved_p = True
            xd.stale_p = False
        elif xd.saved_p:
            yield from self.esb_read(cpu, xd, ESB_SET_PQ_10)
            xd.saved_p = False
        else:
            yield from self.esb_read(cpu, xd, ESB_SET_PQ_00)
            xd.stale_p = False

    # ---------------------------------------------------------------- hcalls

    def populate_irq_data(self, cpu: LogicalCpu, hw_irq: int) -> Gen:
        """xive_spapr_populate_irq_data: H_INT_GET_SOURCE_INFO; None if it fails."""
        result = yield from self._hcall(cpu, Hcall.H_INT_GET_SOURCE_INFO, 0, hw_irq)
        rc = _status(result)
        if rc != int(HcallReturn.H_SUCCESS):
            self.k.printk(LogLevel.ERR, f"xive: H_INT_GET_SOURCE_INFO lisn={hw_irq} failed {rc}")
            return None
        flags, eoi_page, trig_page, esb_shift = (_values(result) + (0, 0, 0, 0))[:4]
        if flags & SRC_TRIGGER:
            trig_page = eoi_page
        return IrqData(hw_irq, flags, eoi_page, trig_page, esb_shift)

    def configure_irq(
        self, cpu: LogicalCpu, hw_irq: int, target_hwid: int, prio: int, sw_irq: int
    ) -> Gen:
        """xive_spapr_configure_irq: H_INT_SET_SOURCE_CONFIG with the EISN; 0 or -ENXIO."""
        result = yield from self._hcall(
            cpu, Hcall.H_INT_SET_SOURCE_CONFIG, SRC_SET_EISN, hw_irq, target_hwid, prio, sw_irq
        )
        rc = _status(result)
        if rc != int(HcallReturn.H_SUCCESS):
            self.k.printk(
                LogLevel.ERR,
                f"xive: H_INT_SET_SOURCE_CONFIG lisn={hw_irq} target={target_hwid:x} "
                f"prio={prio:x} failed {rc}",
            )
            return -6  # -ENXIO
        return 0

    def setup_queue(self, cpu: LogicalCpu, logical: int, xc: XiveCpu) -> Gen:
        """xive_spapr_setup_queue: a zeroed page, H_INT_GET_QUEUE_INFO, H_INT_SET_QUEUE_CONFIG."""
        order = self.tree.queue_shift
        size = 1 << order
        page = self._pages.get(logical)
        if page is None:
            page = self.k.alloc(size, size)
            self._pages[logical] = page
        self.k.memory.write(page, bytes(size))
        q = xc.queue
        q.msk = (1 << (order - 2)) - 1 if order else 0
        q.idx = 0
        q.toggle = 0
        target = self.hwid(logical)
        result = yield from self._hcall(cpu, Hcall.H_INT_GET_QUEUE_INFO, 0, target, self.priority)
        rc = _status(result)
        if rc != int(HcallReturn.H_SUCCESS):
            self.k.printk(
                LogLevel.ERR,
                f"xive: Error {rc} getting queue info CPU {target} prio {self.priority}",
            )
            return -5  # -EIO
        result = yield from self._hcall(
            cpu, Hcall.H_INT_SET_QUEUE_CONFIG, END_ALWAYS_NOTIFY, target, self.priority, page, order
        )
        rc = _status(result)
        if rc != int(HcallReturn.H_SUCCESS):
            self.k.printk(
                LogLevel.ERR,
                f"xive: Error {rc} setting queue for CPU {target} prio {self.priority}",
            )
            return -5
        q.qpage = page
        return 0

    def _queue_error(self, what: str, target: int) -> None:
        self.k.printk(LogLevel.ERR, f"xive: {what} CPU {target} prio {self.priority}")

    def cleanup_queue(self, cpu: LogicalCpu, logical: int, xc: XiveCpu) -> Gen:
        """xive_spapr_cleanup_queue: H_INT_SET_QUEUE_CONFIG(0, cpu, prio, 0, 0), page freed."""
        target = self.hwid(logical)
        result = yield from self._hcall(
            cpu, Hcall.H_INT_SET_QUEUE_CONFIG, 0, target, self.priority, 0, 0
        )
        rc = _status(result)
        if rc != int(HcallReturn.H_SUCCESS):
            self.k.printk(
                LogLevel.ERR,
                f"xive: Error {rc} setting queue for CPU {target} prio {self.priority}",
            )
        xc.queue.qpage = None

    # ------------------------------------------------------------- CPUs and IPIs

    def core_init(self, cpu: LogicalCpu) -> Gen:
        """xive_core_init on the boot CPU: its queue and CPPR, then the banner."""
        yield from self.prepare_cpu(cpu, cpu.logical)
        yield from self.setup_cpu(cpu)
        self.k.printk(LogLevel.INFO, "xive: Interrupt handling initialized with spapr backend")
        self.k.printk(LogLevel.INFO, f"xive: Using priority {self.priority} for all interrupts")
        self.k.printk(LogLevel.INFO, f"xive: Using {1 << (self.tree.queue_shift - 10)}kB queues")

    def smp_probe(self, cpu: LogicalCpu) -> Gen:
        """xive_smp_probe: the IPI's interrupt number, then the boot CPU's IPI."""
        self.ipi_virq = self._alloc_virq(1)
        yield from self.setup_cpu_ipi(cpu, cpu.logical)

    def prepare_cpu(self, cpu: LogicalCpu, logical: int) -> Gen:
        """xive_prepare_cpu: per-CPU data and the queue, unless already there."""
        xc = self._xc(logical)
        if xc.queue.qpage is None:
            return (yield from self.setup_queue(cpu, logical, xc))
        return 0

    def smp_prepare_cpu(self, cpu: LogicalCpu, logical: int) -> Gen:
        """xive_smp_prepare_cpu (before start-cpu): queue, then IPI; 0 or a negative errno."""
        rc = yield from self.prepare_cpu(cpu, logical)
        if rc:
            return rc
        return (yield from self.setup_cpu_ipi(cpu, logical))

    def setup_cpu(self, cpu: LogicalCpu) -> Gen:
        """xive_setup_cpu on the CPU itself: CPPR 0xff lets interrupts in."""
        yield from self._tima_cppr(cpu, self._xc(cpu.logical), PRIORITY_MASKED)

    def smp_setup_cpu(self, cpu: LogicalCpu) -> Gen:
        """xive_smp_setup_cpu: as setup_cpu, except on the boot CPU (done at init)."""
        if cpu.logical != self.k.boot_cpuid:
            yield from self.setup_cpu(cpu)

    def _get_ipi(self) -> int:
        """xive_irq_bitmap_alloc: the first free LISN of the ranges, or -ENOMEM."""
        for (base, count), taken in zip(self.tree.lisn_ranges, self._lisns_taken, strict=True):
            for lisn in range(base, base + count):
                if lisn not in taken:
                    taken.add(lisn)
                    return lisn
        return -12

    def _put_ipi(self, lisn: int) -> None:
        for (base, count), taken in zip(self.tree.lisn_ranges, self._lisns_taken, strict=True):
            if base <= lisn < base + count:
                taken.discard(lisn)
                return

    def setup_cpu_ipi(self, cpu: LogicalCpu, logical: int) -> Gen:
        """xive_setup_cpu_ipi: a LISN, its source info, routed to the CPU, unmasked."""
        xc = self._xc(logical)
        if xc.hw_ipi != XIVE_BAD_IRQ:
            return 0
        lisn = self._get_ipi()
        if lisn < 0:
            self.k.printk(LogLevel.ERR, f"xive: Failed to allocate IPI on CPU {logical}")
            return -5
        xc.hw_ipi = lisn
        xd = yield from self.populate_irq_data(cpu, lisn)
        if xd is None:
            self.k.printk(LogLevel.ERR, f"xive: Failed to populate IPI data on CPU {logical}")
            return -5
        xc.ipi_data = xd
        rc = yield from self.configure_irq(
            cpu, lisn, self.hwid(logical), self.priority, self.ipi_virq
        )
        if rc:
            self.k.printk(LogLevel.ERR, f"xive: Failed to map IPI CPU {logical}")
            return -5
        yield from self.set_mask(cpu, xd, False)
        return 0

    def cleanup_cpu_ipi(self, cpu: LogicalCpu, xc: XiveCpu) -> Gen:
        """xive_cleanup_cpu_ipi: mask, unroute (priority 0xff), give the LISN back."""
        if xc.hw_ipi == XIVE_BAD_IRQ:
            return
        if xc.ipi_data is not None:
            yield from self.set_mask(cpu, xc.ipi_data, True)
        yield from self.configure_irq(
            cpu, xc.hw_ipi, self.hwid(cpu.logical), PRIORITY_MASKED, self.ipi_virq
        )
        self._put_ipi(xc.hw_ipi)
        xc.hw_ipi = XIVE_BAD_IRQ

    def cause_ipi(self, cpu: LogicalCpu, target: LogicalCpu) -> Gen:
        """xive_cause_ipi: a store to the target CPU's IPI trigger page."""
        xc = self.cpus.get(target.logical)
        if xc is None or xc.ipi_data is None or not xc.ipi_data.trig_page:
            return
        yield from self._hcall(cpu, MMIO_STORE, xc.ipi_data.trig_page, 8, 0)

    # -------------------------------------------------------------- sources

    def _alloc_virq(self, hint: int) -> int:
        """irq_domain_alloc_descs: the first free Linux interrupt number from ``hint``."""
        for virq in (*range(max(1, hint), NR_IRQS), *range(1, max(1, hint))):
            if virq not in self._virqs_taken:
                self._virqs_taken.add(virq)
                return virq
        return 0

    def map_irq(self, cpu: LogicalCpu, hw_irq: int) -> Gen:
        """irq_create_mapping -> xive_irq_alloc_data: source info, then PQ=01; 0 on failure."""
        virq = self.virq_of.get(hw_irq)
        if virq is not None:
            return virq
        xd = yield from self.populate_irq_data(cpu, hw_irq)
        if xd is None:
            return 0
        virq = self._alloc_virq(hw_irq % NR_IRQS)
        self.irqs[virq] = xd
        self.virq_of[hw_irq] = virq
        yield from self.esb_read(cpu, xd, ESB_SET_PQ_01)
        return virq

    def _find_target(self, fuzz: int) -> int:
        """xive_find_target_in_mask over every possible CPU, starting ``fuzz`` in."""
        possible = max(self.k.cpus, default=0) + 1
        first = fuzz % possible
        cpu = first
        while True:
            target = self.k.cpus.get(cpu)
            if target is not None and target.online and self._try_pick(cpu):
                return cpu
            cpu = cpu + 1 if cpu + 1 < possible else 0
            if cpu == first:
                return XIVE_INVALID_TARGET

    def _try_pick(self, logical: int) -> bool:
        q = self._xc(logical).queue
        if q.count >= q.msk:
            return False
        q.count += 1
        return True

    def _pick_target(self) -> int:
        """xive_pick_irq_target: no chip ids on sPAPR, so the whole affinity mask."""
        target = self._find_target(self._fuzz)
        self._fuzz += 1
        return target

    def irq_startup(self, cpu: LogicalCpu, virq: int) -> Gen:
        """xive_irq_startup: pick a target, route with the Linux number as EISN, unmask."""
        xd = self.irqs[virq]
        xd.saved_p = xd.stale_p = False
        target = self._pick_target()
        if target == XIVE_INVALID_TARGET:
            return -6
        xd.target = target
        rc = yield from self.configure_irq(cpu, xd.hw_irq, self.hwid(target), self.priority, virq)
        if rc:
            return rc
        yield from self.set_mask(cpu, xd, False)
        return 0

    def request_irq(self, cpu: LogicalCpu, hw_irq: int) -> Gen:
        """irq_of_parse_and_map then request_irq's startup (the affinity keeps its target)."""
        virq = yield from self.map_irq(cpu, hw_irq)
        if not virq:
            return 0
        rc = yield from self.irq_startup(cpu, virq)
        if rc:
            self.k.printk(LogLevel.ERR, f"xive: request_irq {virq} failed {rc}")
        return virq

    def _set_affinity_all(self, cpu: LogicalCpu, virq: int, xd: IrqData) -> Gen:
        """xive_irq_set_affinity to every CPU: only a source whose target is offline moves."""
        current = self.k.cpus.get(xd.target)
        if xd.target != XIVE_INVALID_TARGET and current is not None and current.online:
            return
        target = self._pick_target()
        if target == XIVE_INVALID_TARGET:
            return
        rc = yield from self.configure_irq(cpu, xd.hw_irq, self.hwid(target), self.priority, virq)
        if rc:
            self.k.printk(LogLevel.ERR, f"xive: Error {rc} reconfiguring irq {virq}")
            return
        old, xd.target = xd.target, target
        if old != XIVE_INVALID_TARGET:
            self._xc(old).queue.pending_count += 1

    # ------------------------------------------------------------- the interrupt

    def _read_eq(self, q: EventQueue, just_peek: bool) -> int:
        """xive_read_eq: the next entry's EISN if its generation bit is new, else 0."""
        if q.qpage is None:
            return 0
        cur = self.k.memory.ld32(q.qpage + 4 * q.idx)
        if cur >> 31 == q.toggle:
            return 0
        if not just_peek:
            q.idx = (q.idx + 1) & q.msk
            if q.idx == 0:
                q.toggle ^= 1
        return cur & EQ_DATA_MASK

    def scan_interrupts(self, cpu: LogicalCpu, xc: XiveCpu, just_peek: bool) -> Gen:
        """xive_scan_interrupts: the most favoured queued interrupt; CPPR follows it."""
        irq = 0
        prio = 0
        while xc.pending_prio:
            prio = (xc.pending_prio & -xc.pending_prio).bit_length() - 1
            irq = self._read_eq(xc.queue, just_peek)
            if irq:
                if just_peek or irq in self.irqs or irq == self.ipi_virq:
                    break
                self.k.printk(LogLevel.CRIT, f"xive: got interrupt {irq} without descriptor")
                continue
            xc.pending_prio &= ~(1 << prio)
            q = xc.queue
            if q.pending_count:
                q.count = max(0, q.count - q.pending_count)
                q.pending_count = 0
        if irq == 0:
            prio = PRIORITY_MASKED
        if prio != xc.cppr:
            yield from self._tima_cppr(cpu, xc, prio)
        return irq

    def get_irq(self, cpu: LogicalCpu) -> Gen:
        """xive_get_irq: acknowledge at the TIMA, then scan the queue; 0 if nothing."""
        xc = self._xc(cpu.logical)
        ack = yield from self._hcall(cpu, MMIO_LOAD, self.tree.tima + TM_SPC_ACK_OS_REG, 2)
        ack = int(ack or 0) & 0xFFFF
        cppr, nsr = ack & 0xFF, ack >> 8
        if nsr & TM_QW1_NSR_EO and cppr != PRIORITY_MASKED:
            xc.pending_prio |= 1 << cppr
            if cppr >= xc.cppr:
                self.k.printk(
                    LogLevel.ERR, f"xive: CPU {cpu.logical} odd ack CPPR, got {cppr} at {xc.cppr}"
                )
            xc.cppr = cppr
        return (yield from self.scan_interrupts(cpu, xc, False))

    def queue_eoi(self, cpu: LogicalCpu) -> Gen:
        """xive_do_queue_eoi: True if more is queued (Linux replays the interrupt)."""
        xc = self._xc(cpu.logical)
        found = yield from self.scan_interrupts(cpu, xc, True)
        return found != 0

    def irq_eoi(self, cpu: LogicalCpu, virq: int) -> Gen:
        """xive_irq_eoi: EOI at the source, then look at the queue again."""
        xd = self.irqs.get(virq)
        if xd is not None:
            yield from self.source_eoi(cpu, xd)
            xd.saved_p = False
        return (yield from self.queue_eoi(cpu))

    def ipi_eoi(self, cpu: LogicalCpu) -> Gen:
        """xive_ipi_eoi: EOI this CPU's IPI source, then the queue."""
        xc = self.cpus.get(cpu.logical)
        if xc is None or xc.ipi_data is None:
            return False
        yield from self.source_eoi(cpu, xc.ipi_data)
        return (yield from self.queue_eoi(cpu))

    # ---------------------------------------------------------- CPU offline

    def smp_disable_cpu(self, cpu: LogicalCpu) -> Gen:
        """xive_smp_disable_cpu: move interrupts off this CPU, CPPR 0, flush, CPPR 0xff."""
        for virq, xd in list(self.irqs.items()):
            if xd.target != XIVE_INVALID_TARGET:
                yield from self._set_affinity_all(cpu, virq, xd)
        xc = self._xc(cpu.logical)
        yield from self._tima_cppr(cpu, xc, 0)
        yield from self._flush_queue(cpu, xc)
        yield from self._tima_cppr(cpu, xc, PRIORITY_MASKED)

    def _flush_queue(self, cpu: LogicalCpu, xc: XiveCpu) -> Gen:
        """xive_flush_cpu_queue: re-send what is still queued here to its new target."""
        while True:
            irq = yield from self.scan_interrupts(cpu, xc, False)
            if not irq:
                return
            xd = self.irqs.get(irq)
            if xd is None:
                continue  # an IPI: dropped
            xd.saved_p = False
            if xd.flags & SRC_LSI:
                yield from self.source_eoi(cpu, xd)
            else:
                yield from self.esb_read(cpu, xd, ESB_SET_PQ_11)
                yield from self.source_eoi(cpu, xd)

    def teardown_cpu(self, cpu: LogicalCpu) -> Gen:
        """xive_teardown_cpu (the CPU stopping itself): CPPR 0, IPI away, queue reset."""
        xc = self._xc(cpu.logical)
        yield from self._tima_cppr(cpu, xc, 0)
        yield from self.cleanup_cpu_ipi(cpu, xc)
        if xc.queue.qpage is not None:
            yield from self.cleanup_queue(cpu, cpu.logical, xc)
