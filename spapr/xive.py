"""XIVE, the interrupt controller a POWER9/POWER10 pseries guest negotiates at CAS.

QEMU 7.2's emulated sPAPR XIVE (hw/intc/spapr_xive.c over hw/intc/xive.c) as a
sans-IO model, beside :mod:`spapr.xics`:

* the **source** (:class:`XiveSource`): one PQ pair per logical interrupt source
  number (LISN), the LSI bitmap and the asserted bits, with the ESB state machine
  (trigger, EOI, set/get PQ) behind two 64 KiB ESB pages per LISN (trigger page,
  then management page);
* the **router** tables: the EAS per LISN (valid, masked, END index, EISN) and the
  END per (vCPU, priority) pair (valid, enqueue, always-notify, queue address,
  size, index and generation, NVT, priority); a notification walks EAS -> END,
  writes the EISN into the guest's event queue and notifies the NVT;
* one **thread context** (:class:`ThreadContext`, QEMU's ``xive-tctx``) per vCPU:
  the four rings of the thread interrupt management area (TIMA) with NSR, CPPR,
  IPB, PIPR and CAM word; a pending OS-ring interrupt raises the vCPU's line;
* the sPAPR **hcalls** (H_INT_*) with QEMU's checks and return codes, and the ESB
  and TIMA pages as device regions the guest loads from and stores to
  (:meth:`SpaprXive.esb_region`, :meth:`SpaprXive.tima_region`).

The machine supplies ``raise_external(vcpu_id, asserted)`` (the OS ring's output
line) and the guest memory the event queues live in; the ``xive_*`` and
``spapr_xive_*`` trace events carry QEMU's names and texts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from rtas.hcalls import Hcall, HcallReturn
from rtas.memory import GuestMemory
from rtas.xive_abi import (
    END_ALWAYS_NOTIFY,
    END_DEBUG,
    ESB_GET,
    ESB_INJECT,
    ESB_SET_PQ_00,
    ESB_STORE,
    ESB_STORE_EOI,
    SRC_H_INT_ESB,
    SRC_LSI,
    SRC_MASK,
    SRC_SET_EISN,
    TM_ACK_CNT,
    TM_AGE,
    TM_CPPR,
    TM_INC,
    TM_IPB,
    TM_LSMFB,
    TM_NSR,
    TM_OS_PAGE,
    TM_PIPR,
    TM_QW0_USER,
    TM_QW1_NSR_EO,
    TM_QW1_OS,
    TM_QW2_HV_POOL,
    TM_QW3_HV_PHYS,
    TM_SHIFT,
    TM_SPC_ACK_OS_REG,
    TM_SPC_SET_OS_PENDING,
    TM_SPECIAL_OP,
    TM_USER_PAGE,
    TM_WORD2,
)
from spapr.errors import QemuError
from spapr.trace import TraceRecorder

_T = TypeVar("_T")

# -- QEMU 7.2's sPAPR XIVE layout ------------------------------------------------

#: Where the source ESB pages are mapped (SPAPR_XIVE_VC_BASE).
SPAPR_XIVE_VC_BASE = 0x0006_0100_0000_0000
#: Where the thread interrupt management area is mapped (SPAPR_XIVE_TM_BASE).
SPAPR_XIVE_TM_BASE = 0x0006_0302_0318_0000
#: NVT numbers are the vCPU id plus this (SPAPR_XIVE_NVT_BASE); never shown to the OS.
SPAPR_XIVE_NVT_BASE = 0x400
#: The one XIVE block of a pseries machine (SPAPR_XIVE_BLOCK_ID).
SPAPR_XIVE_BLOCK_ID = 0
#: First LISN of the per-vCPU IPIs (SPAPR_IRQ_IPI); one per possible vcpu id.
SPAPR_IRQ_IPI = 0x0
#: Priorities from this one up are the hypervisor's (the hv-prio property's default).
HV_PRIO = 7
#: Largest priority a thread context takes as a CPPR; above it the CPPR is 0xff.
XIVE_PRIORITY_MAX = 7
#: ESB pages: two 64 KiB pages per source (XIVE_ESB_64K_2PAGE).
ESB_SHIFT = 17
#: The END ESB pages (not used by a pseries guest): one 64 KiB page pair per END.
END_ESB_SHIFT = 16
#: The source's ESB flags (the xive-source's ``flags``): no Store EOI offered.
SOURCE_ESB_FLAGS = 0
#: Each vCPU has one END per priority: END index = vcpu id << END_PRIORITY_BITS | priority.
END_PRIORITY_BITS = 3
#: The one event-queue size QEMU advertises (ibm,xive-eq-sizes): 64 KiB.
EQ_SIZES = (16,)
#: Event-queue sizes H_INT_SET_QUEUE_CONFIG takes (log2 bytes); 0 resets the queue.
EQ_SIZES_ACCEPTED = (12, 16, 21, 24)

# -- PQ states (the ESB offsets are rtas.xive_abi's) --------------------------------


class Pq(enum.IntEnum):
    """The two ESB state bits of a source (P: an event is pending, Q: one more queued)."""

    RESET = 0b00
    OFF = 0b01
    PENDING = 0b10
    QUEUED = 0b11


def esb_trigger(pq: int) -> tuple[int, bool]:
    """An event arrives: the new PQ and whether to notify the router (xive_esb_trigger)."""
    if pq == Pq.RESET:
        return Pq.PENDING, True
    if pq == Pq.PENDING:
        return Pq.QUEUED, False
    return pq, False  # OFF stays off, QUEUED stays queued


def esb_eoi(pq: int) -> tuple[int, bool]:
    """The OS ends the event: the new PQ and whether a queued one notifies (xive_esb_eoi)."""
    if pq == Pq.PENDING:
        return Pq.RESET, False
    if pq == Pq.QUEUED:
        return Pq.PENDING, True
    return pq, False


# -- EAS and END words (hw/ppc/xive_regs.h, PPC bit numbering) --------------------

EAS_VALID = 1 << 63
EAS_END_BLOCK_SHIFT, EAS_END_BLOCK_MASK = 56, 0xF
EAS_END_INDEX_SHIFT, EAS_END_INDEX_MASK = 32, 0xFF_FFFF
EAS_MASKED = 1 << 31
EAS_END_DATA_MASK = 0x7FFF_FFFF

END_W0_VALID = 0x8000_0000
END_W0_ENQUEUE = 0x4000_0000
END_W0_UCOND_NOTIFY = 0x2000_0000
END_W0_QSIZE_SHIFT, END_W0_QSIZE_MASK = 16, 0xF
END_W1_ESN_Q = 0x4000_0000
END_W1_ESE_Q = 0x1000_0000
END_W1_GENERATION = 0x0040_0000
END_W1_PAGE_OFF_MASK = 0x003F_FFFF
END_W2_OP_DESC_HI_MASK = 0x0FFF_FFFF
END_W6_NVT_BLOCK_SHIFT, END_W6_NVT_BLOCK_MASK = 19, 0xF
END_W6_NVT_INDEX_MASK = 0x0007_FFFF
END_W7_F0_PRIORITY_SHIFT = 16
#: An END after reset: both its ESBs (escalation, notification) switched off.
END_RESET_W1 = END_W1_ESE_Q | END_W1_ESN_Q
#: The eight words of an END after reset.
END_RESET = (0, END_RESET_W1, 0, 0, 0, 0, 0, 0)


@attrs.frozen
class EndQueue:
    """What an END's words say of its event queue and of whom it notifies."""

    #: Guest address of the queue.
    addr: int
    #: log2 of the queue's size in bytes (the QSIZE field + 12).
    shift: int
    #: Next entry to write, and the generation bit it gets.
    index: int
    generation: int
    #: The vCPU notified (the NVT less SPAPR_XIVE_NVT_BASE, as 32 bits) and the priority.
    target: int
    priority: int

    @classmethod
    def of(cls, end: Sequence[int]) -> EndQueue:
        """Decode an END's words (xive_end_queue_* and the W6/W7 fields)."""
        return cls(
            addr=((end[2] & END_W2_OP_DESC_HI_MASK) << 32) | end[3],
            shift=((end[0] >> END_W0_QSIZE_SHIFT) & END_W0_QSIZE_MASK) + 12,
            index=end[1] & END_W1_PAGE_OFF_MASK,
            generation=1 if end[1] & END_W1_GENERATION else 0,
            target=((end[6] & END_W6_NVT_INDEX_MASK) - SPAPR_XIVE_NVT_BASE) & 0xFFFF_FFFF,
            priority=(end[7] >> END_W7_F0_PRIORITY_SHIFT) & 0xFF,
        )

    @property
    def entries(self) -> int:
        """How many 4-byte entries the queue holds."""
        return 1 << (self.shift - 2)


# -- thread interrupt management area (hw/ppc/xive_regs.h) ------------------------

TM_QW1W2_VO = 0x8000_0000
RING_NAMES = {TM_QW0_USER: "USER", TM_QW1_OS: "OS", TM_QW2_HV_POOL: "POOL", TM_QW3_HV_PHYS: "PHYS"}
#: What the OS page may read (bit 1) and write (bit 2... here 3 = both) per TIMA byte
#: (QEMU's xive_tm_os_view): the user ring's byte 0 and CAM word, the OS ring's
#: state bytes (only the CPPR writable).
_OS_VIEW = bytes(
    [3, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 0, 0, 0, 0]
    + [2, 3, 2, 2, 2, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
    + [0] * 32
)


#: The XIVE hcalls, in QEMU's registration order.
XIVE_HCALLS = (
    Hcall.H_INT_GET_SOURCE_INFO,
    Hcall.H_INT_SET_SOURCE_CONFIG,
    Hcall.H_INT_GET_SOURCE_CONFIG,
    Hcall.H_INT_GET_QUEUE_INFO,
    Hcall.H_INT_SET_QUEUE_CONFIG,
    Hcall.H_INT_GET_QUEUE_CONFIG,
    Hcall.H_INT_SET_OS_REPORTING_LINE,
    Hcall.H_INT_GET_OS_REPORTING_LINE,
    Hcall.H_INT_ESB,
    Hcall.H_INT_SYNC,
    Hcall.H_INT_RESET,
)

#: An hcall's outcome: (return code in r3, values returned in r4, r5, ...).
HcallResult = tuple[int, tuple[int, ...]]
#: The machine's hook on a thread context's OS-ring output line: (vcpu id, asserted).
RaiseExternal = Callable[[int, bool], None]

_U64 = (1 << 64) - 1
_MINUS_ONE = _U64
_H_SUCCESS = int(HcallReturn.H_SUCCESS)
_H_HARDWARE = int(HcallReturn.H_HARDWARE)
_H_FUNCTION = int(HcallReturn.H_FUNCTION)
_H_PARAMETER = int(HcallReturn.H_PARAMETER)
_H_P2 = int(HcallReturn.H_P2)
_H_P3 = int(HcallReturn.H_P3)
_H_P4 = int(HcallReturn.H_P4)
_H_P5 = int(HcallReturn.H_P5)


def priority_to_ipb(priority: int) -> int:
    """The IPB bit of a priority (xive_priority_to_ipb); none above the maximum."""
    return 0 if priority > XIVE_PRIORITY_MAX else 0x80 >> priority


def end_target(end_idx: int) -> tuple[int, int]:
    """The (vcpu id, priority) an END serves (spapr_xive_end_to_target)."""
    return end_idx >> END_PRIORITY_BITS, end_idx & ((1 << END_PRIORITY_BITS) - 1)


def ipb_to_pipr(ipb: int) -> int:
    """The most favoured pending priority of an IPB, or 0xff (ipb_to_pipr)."""
    return 8 - ipb.bit_length() if ipb else 0xFF


def _as_int32(value: int) -> int:
    """A target as QEMU's ``int vcpu_id`` parameter sees it (low 32 bits, signed)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def nvt_cam_line(nvt_blk: int, nvt_idx: int) -> int:
    """The CAM line of an NVT (xive_nvt_cam_line)."""
    return (nvt_blk << 19) | nvt_idx


# -- the source ------------------------------------------------------------------


@attrs.define(eq=False)
class XiveSource:
    """The sources of the machine (QEMU's xive-source): PQ bits, LSI and asserted bitmaps."""

    nr_irqs: int
    pq: bytearray = attrs.field(init=False)
    lsi: set[int] = attrs.field(init=False, factory=set)
    asserted: set[int] = attrs.field(init=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self.pq = bytearray([Pq.OFF]) * self.nr_irqs

    def reset(self) -> None:
        """Every source off (PQ=01); the LSI bitmap stays (xive_source_reset)."""
        self.pq[:] = bytes([Pq.OFF]) * self.nr_irqs
        self.asserted.clear()

    def is_lsi(self, srcno: int) -> bool:
        return srcno in self.lsi

    def esb_set(self, srcno: int, pq: int) -> int:
        """Set a source's PQ; returns the old one."""
        old = self.pq[srcno]
        self.pq[srcno] = pq & 0x3
        return old

    def trigger(self, srcno: int) -> bool:
        """An event on the source (xive_source_esb_trigger)."""
        self.pq[srcno], notify = esb_trigger(self.pq[srcno])
        return notify

    def lsi_trigger(self, srcno: int) -> bool:
        """An LSI asserted: it notifies only from PQ=00 (xive_source_lsi_trigger)."""
        self.asserted.add(srcno)
        if self.pq[srcno] == Pq.RESET:
            self.pq[srcno] = Pq.PENDING
            return True
        return False

    def eoi(self, srcno: int) -> bool:
        """The OS ends an event; an LSI still asserted fires again (xive_source_esb_eoi)."""
        self.pq[srcno], notify = esb_eoi(self.pq[srcno])
        if srcno in self.lsi and srcno in self.asserted:
            notify = self.lsi_trigger(srcno)
        return notify


# -- the thread context ------------------------------------------------------------


@attrs.define(eq=False)
class ThreadContext:
    """One vCPU's thread interrupt context (QEMU's xive-tctx): four 16-byte rings."""

    vcpu_id: int
    cpu_index: int
    regs: bytearray = attrs.field(factory=lambda: bytearray(64))
    #: Level of the OS ring's line to the vCPU.
    output: bool = False

    def reset(self) -> None:
        """xive_tctx_reset, then the OS CAM line the sPAPR hypervisor pushes."""
        self.regs[:] = bytes(64)
        os = TM_QW1_OS
        self.regs[os + TM_LSMFB] = 0xFF
        self.regs[os + TM_ACK_CNT] = 0xFF
        self.regs[os + TM_AGE] = 0xFF
        self.regs[os + TM_PIPR] = ipb_to_pipr(self.regs[os + TM_IPB])
        self.regs[TM_QW3_HV_PHYS + TM_PIPR] = ipb_to_pipr(self.regs[TM_QW3_HV_PHYS + TM_IPB])
        cam = TM_QW1W2_VO | nvt_cam_line(SPAPR_XIVE_BLOCK_ID, SPAPR_XIVE_NVT_BASE + self.vcpu_id)
        self.regs[os + TM_WORD2 : os + TM_WORD2 + 4] = cam.to_bytes(4, "big")

    def ring(self, ring: int) -> bytearray:
        return self.regs[ring : ring + 16]

    @property
    def os_cam(self) -> int:
        """The OS ring's CAM word (W2)."""
        return int.from_bytes(self.regs[TM_QW1_OS + TM_WORD2 : TM_QW1_OS + TM_WORD2 + 4], "big")

    @property
    def cppr(self) -> int:
        return self.regs[TM_QW1_OS + TM_CPPR]

    @property
    def pipr(self) -> int:
        return self.regs[TM_QW1_OS + TM_PIPR]

    @property
    def ipb(self) -> int:
        return self.regs[TM_QW1_OS + TM_IPB]

    @property
    def nsr(self) -> int:
        return self.regs[TM_QW1_OS + TM_NSR]

    def pic_lines(self) -> list[str]:
        """``info pic``'s lines for this context (xive_tctx_pic_print_info)."""
        head = f"CPU[{self.cpu_index:04x}]:"
        out = [f"{head}   QW   NSR CPPR IPB LSMFB ACK# INC AGE PIPR  W2"]
        for ring, name in RING_NAMES.items():
            r = self.regs[ring : ring + 16]
            w2 = int.from_bytes(r[TM_WORD2 : TM_WORD2 + 4], "big")
            out.append(
                f"{head} {name:>4s}    {r[TM_NSR]:02x}   {r[TM_CPPR]:02x}  {r[TM_IPB]:02x}    "
                f"{r[TM_LSMFB]:02x}   {r[TM_ACK_CNT]:02x}  {r[TM_INC]:02x}  {r[TM_AGE]:02x}   "
                f"{r[TM_PIPR]:02x}  {w2:08x}"
            )
        return out


def _no_output(vcpu_id: int, asserted: bool) -> None:
    return None


# -- the controller ------------------------------------------------------------------


class SpaprXive:
    """The sPAPR XIVE controller: sources, EAS and END tables, thread contexts, hcalls.

    ``nr_irqs`` is QEMU's ``nr-irqs`` (SPAPR_XIRQ_BASE + the machine's source count),
    ``nr_servers`` the machine's vcpu-id space (``nr-ends``: one END per priority each).
    ``memory`` holds the guests' event queues. :attr:`exploited` is what CAS
    negotiated (OV5_XIVE_EXPLOIT): without it every hcall answers H_FUNCTION.
    """

    def __init__(
        self,
        *,
        nr_irqs: int,
        nr_servers: int,
        memory: GuestMemory,
        trace: TraceRecorder | None = None,
        raise_external: RaiseExternal | None = None,
        vc_base: int = SPAPR_XIVE_VC_BASE,
        tm_base: int = SPAPR_XIVE_TM_BASE,
        hv_prio: int = HV_PRIO,
    ) -> None:
        if nr_irqs <= 0 or nr_servers <= 0:
            raise ValueError("Number of interrupt needs to be greater 0")
        self.nr_irqs = nr_irqs
        self.nr_servers = nr_servers
        self.nr_ends = nr_servers << END_PRIORITY_BITS
        self.memory = memory
        self.trace = trace if trace is not None else TraceRecorder(keep=False)
        self.raise_external: RaiseExternal = (
            raise_external if raise_external is not None else _no_output
        )
        self.vc_base = vc_base
        self.tm_base = tm_base
        self.hv_prio = hv_prio
        self.end_base = vc_base + self.esb_length
        self.source = XiveSource(nr_irqs)
        #: The EAS table: one 64-bit word per LISN.
        self.eat: list[int] = [0] * nr_irqs
        #: The END table: eight 32-bit words per END, END index = vcpu id * 8 + priority.
        self.endt: list[list[int]] = [list(END_RESET) for _ in range(self.nr_ends)]
        #: Thread contexts by vcpu id, in plug order (QEMU's CPU list: ``info pic``).
        self.tctxs: dict[int, ThreadContext] = {}
        #: CAS negotiated XIVE exploitation mode (the hcalls work only then).
        self.exploited = False
        #: The guest's ESB and TIMA pages are reachable (the controller is active).
        self.mmio_enabled = False
        #: Connected to KVM's in-kernel XIVE device (kvmppc_xive_connect): the ESB and
        #: TIMA pages are the host kernel's and it routes and presents the events, so
        #: QEMU traces none of that. This model still does the work, silently.
        self.in_kernel = False
        #: vCPUs whose presenter KVM has connected (QEMU's kvm_enabled_cpus): a core
        #: unplugged and plugged again keeps them, a disconnect forgets them all.
        self.kvm_vcpus: set[int] = set()
        self._device_depth = 0

    # -- names -------------------------------------------------------------------

    @property
    def nodename(self) -> str:
        """The device-tree node name: the TIMA user page's address."""
        return f"interrupt-controller@{self.tm_base + (TM_USER_PAGE << TM_SHIFT):x}"

    @property
    def esb_length(self) -> int:
        return self.nr_irqs << ESB_SHIFT

    @property
    def end_esb_count(self) -> int:
        """END ESB page pairs mapped at :attr:`end_base` (the END source's ``nr-ends``).

        QEMU sizes that region by the source count, not by :attr:`nr_ends`.
        """
        return self.nr_irqs

    @property
    def end_esb_length(self) -> int:
        return self.end_esb_count << (END_ESB_SHIFT + 1)

    @property
    def tima_length(self) -> int:
        return 4 << TM_SHIFT

    def _emit(self, name: str, **fields: Any) -> None:
        if not self._device_depth:
            self.trace.emit(name, **fields)

    def _in_device(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run what the device does (not QEMU's hcall layer): untraced while in-kernel."""
        if not self.in_kernel:
            return fn(*args)
        self._device_depth += 1
        try:
            return fn(*args)
        finally:
            self._device_depth -= 1

    # -- KVM's in-kernel device ---------------------------------------------------------

    def connect_kvm(self) -> None:
        """kvmppc_xive_connect: each vCPU's presenter, then every allocated source."""
        if self.in_kernel:
            return  # the device is in use already (a reset under XIVE-only)
        for vcpu_id in self.tctxs:
            self._cpu_connect(vcpu_id)
        for lisn, eas in enumerate(self.eat):
            if eas & EAS_VALID:
                self._emit("kvm_xive_source_reset", srcno=lisn)
        self.in_kernel = True

    def disconnect_kvm(self) -> None:
        """kvmppc_xive_disconnect: the device goes, and with it the connected vCPUs."""
        self.in_kernel = False
        self.kvm_vcpus.clear()

    def _cpu_connect(self, vcpu_id: int) -> None:
        """kvmppc_xive_cpu_connect (nothing for a vCPU plugged again)."""
        if vcpu_id not in self.kvm_vcpus:
            self._emit("kvm_xive_cpu_connect", id=vcpu_id)
            self.kvm_vcpus.add(vcpu_id)

    def _guest_error(self, message: str) -> None:
        """QEMU's qemu_log_mask(LOG_GUEST_ERROR, ...) (``-d guest_errors``)."""
        self._emit("guest_error", message=message)

    # -- allocation (spapr_irq_claim / spapr_irq_free) ----------------------------

    def claim(self, lisn: int, lsi: bool = False) -> None:
        """Allocate ``lisn``: its EAS becomes valid and masked; QemuError if taken."""
        if not 0 <= lisn < self.nr_irqs:
            raise ValueError(f"LISN 0x{lisn:x} outside 0..0x{self.nr_irqs - 1:x}")
        self._emit("spapr_xive_claim_irq", lisn=lisn, lsi=int(lsi))
        if self.eat[lisn] & EAS_VALID:
            raise QemuError(f"IRQ {lisn} is not free")
        self.eat[lisn] |= EAS_VALID | EAS_MASKED
        if lsi:
            self.source.lsi.add(lisn)
        if self.in_kernel:
            self._emit("kvm_xive_source_reset", srcno=lisn)

    def free(self, lisn: int) -> None:
        """Release ``lisn`` (only its EAS's valid bit goes)."""
        self._emit("spapr_xive_free_irq", lisn=lisn)
        self.eat[lisn] &= ~EAS_VALID

    def claimed(self, lisn: int) -> bool:
        return 0 <= lisn < self.nr_irqs and bool(self.eat[lisn] & EAS_VALID)

    # -- thread contexts -----------------------------------------------------------

    def add_tctx(self, vcpu_id: int, cpu_index: int | None = None) -> ThreadContext:
        """Create a new vCPU's thread context, reset (its OS CAM line set)."""
        if vcpu_id in self.tctxs:
            raise ValueError(f"vCPU {vcpu_id} already has a thread context")
        tctx = ThreadContext(vcpu_id, vcpu_id if cpu_index is None else cpu_index)
        tctx.reset()
        self.tctxs[vcpu_id] = tctx
        if self.in_kernel:
            self._cpu_connect(vcpu_id)
        return tctx

    def remove_tctx(self, vcpu_id: int) -> None:
        """Destroy a vCPU's thread context (core unplug)."""
        del self.tctxs[vcpu_id]

    def reset_tctx(self, vcpu_id: int) -> None:
        """CPU reset of one thread context; its line drops."""
        tctx = self.tctxs[vcpu_id]
        tctx.reset()
        self._set_output(tctx, False)

    def _set_output(self, tctx: ThreadContext, level: bool) -> None:
        if tctx.output != level:
            tctx.output = level
            self.raise_external(tctx.vcpu_id, level)

    # -- device side -----------------------------------------------------------------

    def set_irq(self, lisn: int, val: int) -> None:
        """Drive source ``lisn`` (spapr_xive_set_irq, then xive_source_set_irq)."""
        self._emit("spapr_xive_set_irq", lisn=lisn, val=val)
        src = self.source
        if src.is_lsi(lisn):
            if val:
                notify = src.lsi_trigger(lisn)
            else:
                src.asserted.discard(lisn)
                notify = False
        else:
            notify = bool(val) and src.trigger(lisn)
        if notify:
            self._in_device(self.notify, lisn)

    def pulse(self, lisn: int) -> None:
        """Raise then lower ``lisn`` (qemu_irq_pulse: how the spapr event sources signal)."""
        self.set_irq(lisn, 1)
        self.set_irq(lisn, 0)

    # -- router ----------------------------------------------------------------------

    def notify(self, lisn: int) -> None:
        """Route an event of ``lisn``: EAS, then END, then the NVT (xive_router_notify)."""
        if not 0 <= lisn < self.nr_irqs:
            self._guest_error(f"XIVE: Unknown LISN {lisn:x}")
            return
        eas = self.eat[lisn]
        if not eas & EAS_VALID:
            self._guest_error(f"XIVE: invalid LISN {lisn:x}")
            return
        if eas & EAS_MASKED:
            return
        end_blk = (eas >> EAS_END_BLOCK_SHIFT) & EAS_END_BLOCK_MASK
        end_idx = (eas >> EAS_END_INDEX_SHIFT) & EAS_END_INDEX_MASK
        end_data = eas & EAS_END_DATA_MASK
        self._end_notify(end_blk, end_idx, end_data)

    def _end_notify(self, end_blk: int, end_idx: int, end_data: int) -> None:
        if end_idx >= self.nr_ends:
            self._guest_error(f"XIVE: No END {end_blk:x}/{end_idx:x}")
            return
        end = self.endt[end_idx]
        self._emit("xive_router_end_notify", end_blk=end_blk, end_idx=end_idx, end_data=end_data)
        if not end[0] & END_W0_VALID:
            self._guest_error(f"XIVE: END {end_blk:x}/{end_idx:x} is invalid")
            return
        if end[0] & END_W0_ENQUEUE:
            self._enqueue(end, end_data)
        if not end[0] & END_W0_UCOND_NOTIFY:
            pq = (end[1] >> 30) & 0x3
            new, notify = esb_trigger(pq)
            end[1] = (end[1] & ~0xC000_0000) | (new << 30)
            if not notify:
                return
        nvt_blk = (end[6] >> END_W6_NVT_BLOCK_SHIFT) & END_W6_NVT_BLOCK_MASK
        nvt_idx = end[6] & END_W6_NVT_INDEX_MASK
        priority = (end[7] >> END_W7_F0_PRIORITY_SHIFT) & 0xFF
        self._presenter_notify(nvt_blk, nvt_idx, priority)

    def _enqueue(self, end: list[int], data: int) -> None:
        """Write ``data`` with the generation bit into the guest's queue (xive_end_enqueue)."""
        queue = EndQueue.of(end)
        qindex, qgen, qentries = queue.index, queue.generation, queue.entries
        qaddr = queue.addr + (qindex << 2)
        qdata = ((qgen << 31) | (data & 0x7FFF_FFFF)) & 0xFFFF_FFFF
        if not 0 <= qaddr <= self.memory.size - 4:
            self._guest_error(f"XIVE: failed to write END data @0x{qaddr:x}")
            return
        self.memory.st32(qaddr, qdata)
        qindex = (qindex + 1) & (qentries - 1)
        if qindex == 0:
            qgen ^= 1
        w1 = end[1] & ~(END_W1_PAGE_OFF_MASK | END_W1_GENERATION)
        end[1] = w1 | qindex | (END_W1_GENERATION if qgen else 0)

    def _presenter_notify(self, nvt_blk: int, nvt_idx: int, priority: int) -> bool:
        """Find the thread dispatched with this NVT and post the priority to its IPB."""
        cam = TM_QW1W2_VO | nvt_cam_line(nvt_blk, nvt_idx)
        for tctx in self.tctxs.values():
            if tctx.os_cam == cam:
                self._emit(
                    "xive_presenter_notify", nvt_blk=nvt_blk, nvt_idx=nvt_idx, ring=TM_QW1_OS
                )
                self._ipb_update(tctx, priority_to_ipb(priority))
                return True
        return False  # no thread: the sPAPR ENDs escalate nowhere

    def _ipb_update(self, tctx: ThreadContext, ipb: int) -> None:
        regs, os = tctx.regs, TM_QW1_OS
        regs[os + TM_IPB] |= ipb
        regs[os + TM_PIPR] = ipb_to_pipr(regs[os + TM_IPB])
        self._tctx_notify(tctx)

    def _tctx_notify(self, tctx: ThreadContext) -> None:
        """Signal the OS ring's exception if its PIPR beats its CPPR (xive_tctx_notify)."""
        regs, os = tctx.regs, TM_QW1_OS
        if regs[os + TM_PIPR] < regs[os + TM_CPPR]:
            regs[os + TM_NSR] |= TM_QW1_NSR_EO
            self._emit_os_ring("xive_tctx_notify", tctx)
            self._set_output(tctx, True)

    def _emit_os_ring(self, event: str, tctx: ThreadContext, cppr: int | None = None) -> None:
        """A thread-context trace event with the OS ring's state (``cppr``: the one being set)."""
        self._emit(
            event,
            target=tctx.cpu_index,
            ring=TM_QW1_OS,
            ipb=tctx.ipb,
            pipr=tctx.pipr,
            cppr=tctx.cppr if cppr is None else cppr,
            nsr=tctx.nsr,
        )

    # -- thread context operations ----------------------------------------------------

    def set_os_cppr(self, tctx: ThreadContext, cppr: int) -> None:
        """Store to the OS CPPR (xive_tctx_set_cppr)."""
        regs, os = tctx.regs, TM_QW1_OS
        cppr &= 0xFF
        self._emit_os_ring("xive_tctx_set_cppr", tctx, cppr)
        regs[os + TM_CPPR] = 0xFF if cppr > XIVE_PRIORITY_MAX else cppr
        self._tctx_notify(tctx)

    def accept_os(self, tctx: ThreadContext) -> int:
        """Load of the OS acknowledge register: ``NSR << 8 | CPPR`` (xive_tctx_accept)."""
        regs, os = tctx.regs, TM_QW1_OS
        nsr = regs[os + TM_NSR]
        self._set_output(tctx, False)
        if nsr & TM_QW1_NSR_EO:
            cppr = regs[os + TM_PIPR]
            regs[os + TM_CPPR] = cppr
            regs[os + TM_IPB] &= ~priority_to_ipb(cppr) & 0xFF
            regs[os + TM_PIPR] = ipb_to_pipr(regs[os + TM_IPB])
            regs[os + TM_NSR] &= ~TM_QW1_NSR_EO & 0xFF
            self._emit_os_ring("xive_tctx_accept", tctx)
        return (nsr << 8) | regs[os + TM_CPPR]

    # -- the TIMA pages -----------------------------------------------------------------

    def tima_read(self, vcpu_id: int, offset: int, size: int) -> int:
        """A load from the TIMA by vCPU ``vcpu_id`` (xive_tctx_tm_read); -1 when refused."""
        tctx = self.tctxs.get(vcpu_id)
        page, op = (offset >> TM_SHIFT) & 0x3, offset & 0xFFF
        value = _MINUS_ONE & ((1 << (8 * size)) - 1)
        if tctx is None:
            self._guest_error(f"XIVE: no thread context for vCPU {vcpu_id}")
        elif op == TM_SPC_ACK_OS_REG and size == 2 and page <= TM_OS_PAGE:
            value = self.accept_os(tctx)
        elif op & TM_SPECIAL_OP:
            self._guest_error(f"XIVE: invalid read access to special op @{offset:x}")
        else:
            value = self._tm_raw_read(tctx, page, op, size, value)
        self._emit("xive_tctx_tm_read", offset=offset, size=size, val=value)
        return value

    def _tm_raw_read(self, tctx: ThreadContext, page: int, op: int, size: int, refused: int) -> int:
        ring = op & 0x30
        reg = op & 0x3F
        if size < 4 or ring == TM_QW0_USER or page < TM_OS_PAGE or reg + size > 64:
            # the HW and HV pages are the hypervisor's; the model gives the OS page only
            self._guest_error(f"XIVE: invalid TIMA load @{op:x} size {size}")
            return refused
        view = _OS_VIEW if page == TM_OS_PAGE else bytes(64)
        data = bytes(tctx.regs[reg + i] if view[reg + i] & 0x2 else 0 for i in range(size))
        if not any(view[reg : reg + size]):
            self._guest_error(f"XIVE: invalid TIMA load @{op:x} size {size}")
            return refused
        return int.from_bytes(data, "big")

    def tima_write(self, vcpu_id: int, offset: int, size: int, value: int) -> None:
        """A store to the TIMA by vCPU ``vcpu_id`` (xive_tctx_tm_write)."""
        self._emit("xive_tctx_tm_write", offset=offset, size=size, val=value)
        tctx = self.tctxs.get(vcpu_id)
        page, op = (offset >> TM_SHIFT) & 0x3, offset & 0xFFF
        if tctx is None:
            self._guest_error(f"XIVE: no thread context for vCPU {vcpu_id}")
        elif op == TM_QW1_OS + TM_CPPR and size == 1 and page <= TM_OS_PAGE:
            self.set_os_cppr(tctx, value & 0xFF)
        elif op == TM_SPC_SET_OS_PENDING and size == 1 and page <= TM_OS_PAGE:
            self._ipb_update(tctx, priority_to_ipb(value & 0xFF))
        else:
            # raw stores reach only the hypervisor's rings, which the OS page cannot
            self._guest_error(f"XIVE: invalid write access at TIMA @{offset:x}")

    def tima_region(self) -> _TimaPages:
        """The TIMA as a device region for :meth:`rtas.GuestMemory.map_mmio`."""
        return _TimaPages(self)

    # -- the ESB pages ---------------------------------------------------------------------

    def esb_read(self, addr: int, size: int = 8) -> int:
        """A load from the source ESB region at offset ``addr`` (xive_source_esb_read)."""
        offset = addr & 0xFFF
        srcno = addr >> ESB_SHIFT
        value = _MINUS_ONE
        if not (addr >> (ESB_SHIFT - 1)) & 1:
            self._guest_error(f"XIVE: invalid load on IRQ {srcno} trigger page at 0x{addr:x}")
            return value & ((1 << (8 * size)) - 1)
        if offset < ESB_GET:
            value = int(self.source.eoi(srcno))
            if value:
                self.notify(srcno)
        elif offset < ESB_SET_PQ_00:
            if offset < ESB_GET + 0x400:
                value = self.source.pq[srcno]
            else:
                self._guest_error(f"XIVE: invalid ESB load addr {offset:x}")
        else:
            value = self.source.esb_set(srcno, (offset >> 8) & 0x3)
        self._emit("xive_source_esb_read", addr=addr, srcno=srcno, val=value)
        return value & ((1 << (8 * size)) - 1)

    def esb_write(self, addr: int, value: int, size: int = 8) -> None:
        """A store to the source ESB region at offset ``addr`` (xive_source_esb_write)."""
        offset = addr & 0xFFF
        srcno = addr >> ESB_SHIFT
        self._emit("xive_source_esb_write", addr=addr, srcno=srcno, val=value)
        notify = False
        if not (addr >> (ESB_SHIFT - 1)) & 1 or offset < ESB_STORE_EOI:
            notify = self.source.trigger(srcno)
        elif offset < ESB_INJECT:
            # QEMU's pseries sources do not offer Store EOI
            self._guest_error(f"XIVE: invalid Store EOI for IRQ {srcno}")
            return
        elif offset < ESB_INJECT + 0x400:
            notify = True
        elif offset >= ESB_SET_PQ_00:
            self.source.esb_set(srcno, (offset >> 8) & 0x3)
        if notify:
            self.notify(srcno)

    def esb_region(self) -> _EsbPages:
        """The source ESB pages as a device region for :meth:`rtas.GuestMemory.map_mmio`."""
        return _EsbPages(self)

    def esb_mgmt_page(self, lisn: int) -> int:
        """Offset of ``lisn``'s management page in the ESB region (odd page)."""
        return (lisn << ESB_SHIFT) + (1 << (ESB_SHIFT - 1))

    def esb_trigger_page(self, lisn: int) -> int:
        """Offset of ``lisn``'s trigger page in the ESB region (even page)."""
        return lisn << ESB_SHIFT

    # -- hcalls ----------------------------------------------------------------------------

    def _enter(self, event: str, accepted_flags: int, **fields: int) -> int | None:
        """What every H_INT_* hcall does first: its trace event, then H_FUNCTION unless
        CAS negotiated XIVE exploitation, H_PARAMETER for a flag it does not take.
        None: go on.
        """
        self._emit(event, **fields)
        if not self.exploited:
            return _H_FUNCTION
        if fields["flags"] & ~accepted_flags:
            return _H_PARAMETER
        return None

    def _enter_lisn(self, event: str, accepted_flags: int, **fields: int) -> int | None:
        """:meth:`_enter`, then the checks of the LISN ``fields["lisn"]``; None: go on."""
        rc = self._enter(event, accepted_flags, **fields)
        return rc if rc is not None else self._lisn_ok(fields["lisn"])

    def _enter_queue(self, event: str, accepted_flags: int, **fields: int) -> tuple[int, int]:
        """:meth:`_enter`, then the checks of an event queue's target and priority:
        (H_SUCCESS, the END's index) to go on, else (the refusal, 0).
        """
        rc = self._enter(event, accepted_flags, **fields)
        if rc is not None:
            return rc, 0
        return self._queue_checks(fields["target"], fields["priority"])

    def _lisn_ok(self, lisn: int) -> int | None:
        """QEMU's two LISN checks: H_P2 for unknown or unclaimed, else None."""
        if lisn >= self.nr_irqs:
            self._guest_error(f"XIVE: Unknown LISN {lisn:x}")
            return _H_P2
        if not self.eat[lisn] & EAS_VALID:
            self._guest_error(f"XIVE: Invalid LISN {lisn:x}")
            return _H_P2
        return None

    def _reserved(self, priority: int) -> bool:
        return (priority & 0xFF) >= self.hv_prio

    def _end_index(self, target: int, priority: int) -> int | None:
        """The END of (target vCPU, priority), or None if no such vCPU (spapr_find_cpu)."""
        vcpu_id = _as_int32(target)
        if vcpu_id not in self.tctxs:
            return None
        return (vcpu_id << END_PRIORITY_BITS) + (priority & 0xFF)

    def h_int_get_source_info(self, args: Sequence[int]) -> HcallResult:
        flags, lisn = args[0], args[1]
        rc = self._enter_lisn("spapr_xive_get_source_info", 0, flags=flags, lisn=lisn)
        if rc is not None:
            return rc, ()
        out_flags = 0  # two ESB pages, no Store EOI (SOURCE_ESB_FLAGS)
        if self.source.is_lsi(lisn):
            out_flags |= SRC_H_INT_ESB | SRC_LSI
        if out_flags & SRC_H_INT_ESB:
            mgmt = trig = _MINUS_ONE
        else:
            mgmt = self.vc_base + self.esb_mgmt_page(lisn)
            trig = self.vc_base + self.esb_trigger_page(lisn)
        return _H_SUCCESS, (out_flags, mgmt, trig, ESB_SHIFT - 1)

    def h_int_set_source_config(self, args: Sequence[int]) -> HcallResult:
        flags, lisn, target, priority, eisn = args[0], args[1], args[2], args[3], args[4]
        rc = self._enter_lisn(
            "spapr_xive_set_source_config",
            SRC_SET_EISN | SRC_MASK,
            flags=flags,
            lisn=lisn,
            target=target,
            priority=priority,
            eisn=eisn,
        )
        if rc is not None:
            return rc, ()
        eas = self.eat[lisn]
        if priority == 0xFF:
            self.eat[lisn] = EAS_VALID | EAS_MASKED
            return _H_SUCCESS, ()
        new = eas | EAS_MASKED if flags & SRC_MASK else eas & ~EAS_MASKED
        if self._reserved(priority):
            self._guest_error(f"XIVE: priority {priority} is reserved")
            return _H_P4, ()
        end_idx = self._end_index(target, priority)
        if end_idx is None:
            return _H_P3, ()
        new &= ~(
            (EAS_END_BLOCK_MASK << EAS_END_BLOCK_SHIFT)
            | (EAS_END_INDEX_MASK << EAS_END_INDEX_SHIFT)
        )
        new |= SPAPR_XIVE_BLOCK_ID << EAS_END_BLOCK_SHIFT
        new |= (end_idx & EAS_END_INDEX_MASK) << EAS_END_INDEX_SHIFT
        if flags & SRC_SET_EISN:
            new = (new & ~EAS_END_DATA_MASK) | (eisn & EAS_END_DATA_MASK)
        self.eat[lisn] = new
        return _H_SUCCESS, ()

    def h_int_get_source_config(self, args: Sequence[int]) -> HcallResult:
        flags, lisn = args[0], args[1]
        rc = self._enter_lisn("spapr_xive_get_source_config", 0, flags=flags, lisn=lisn)
        if rc is not None:
            return rc, ()
        eas = self.eat[lisn]
        end_idx = (eas >> EAS_END_INDEX_SHIFT) & EAS_END_INDEX_MASK
        if end_idx >= self.nr_ends:  # QEMU asserts; only a migrated-in table could do it
            return _H_HARDWARE, ()
        queue = EndQueue.of(self.endt[end_idx])
        priority = 0xFF if eas & EAS_MASKED else queue.priority
        return _H_SUCCESS, (queue.target, priority, eas & EAS_END_DATA_MASK)

    def _queue_checks(self, target: int, priority: int) -> tuple[int, int]:
        """Reserved priority -> H_P3, unknown target -> H_P2; else (H_SUCCESS, END index)."""
        if self._reserved(priority):
            self._guest_error(f"XIVE: priority {priority} is reserved")
            return _H_P3, 0
        end_idx = self._end_index(target, priority)
        if end_idx is None:
            return _H_P2, 0
        return _H_SUCCESS, end_idx

    def h_int_get_queue_info(self, args: Sequence[int]) -> HcallResult:
        flags, target, priority = args[0], args[1], args[2]
        rc, end_idx = self._enter_queue(
            "spapr_xive_get_queue_info", 0, flags=flags, target=target, priority=priority
        )
        if rc != _H_SUCCESS:
            return rc, ()
        end = self.endt[end_idx]
        page = self.end_base + (1 << (END_ESB_SHIFT + 1)) * end_idx
        size = EndQueue.of(end).shift if end[0] & END_W0_ENQUEUE else 0
        return _H_SUCCESS, (page, size)

    def h_int_set_queue_config(self, args: Sequence[int]) -> HcallResult:
        flags, target, priority, qpage, qsize = args[0], args[1], args[2], args[3], args[4]
        rc, end_idx = self._enter_queue(
            "spapr_xive_set_queue_config",
            END_ALWAYS_NOTIFY,
            flags=flags,
            target=target,
            priority=priority,
            qpage=qpage,
            qsize=qsize,
        )
        if rc != _H_SUCCESS:
            return rc, ()
        end = list(self.endt[end_idx])
        if qsize == 0:
            self.endt[end_idx] = list(END_RESET)
            return _H_SUCCESS, ()
        if qsize not in EQ_SIZES_ACCEPTED:
            self._guest_error(f"XIVE: invalid EQ size {qsize:x}")
            return _H_P5, ()
        if qpage & ((1 << qsize) - 1):
            self._guest_error(f"XIVE: EQ @0x{qpage:x} is not naturally aligned with {1 << qsize:x}")
            return _H_P4, ()
        if qpage + (1 << qsize) > self.memory.size:
            self._guest_error(f"XIVE: failed to map EQ @0x{qpage:x}")
            return _H_P4, ()
        end[2] = (qpage >> 32) & END_W2_OP_DESC_HI_MASK
        end[3] = qpage & 0xFFFF_FFFF
        end[0] |= END_W0_ENQUEUE
        end[0] = (end[0] & ~(END_W0_QSIZE_MASK << END_W0_QSIZE_SHIFT)) | (
            (qsize - 12) << END_W0_QSIZE_SHIFT
        )
        vcpu_id = _as_int32(target)
        end[6] = (SPAPR_XIVE_BLOCK_ID << END_W6_NVT_BLOCK_SHIFT) | (
            (SPAPR_XIVE_NVT_BASE + vcpu_id) & END_W6_NVT_INDEX_MASK
        )
        end[7] = (priority & 0xFF) << END_W7_F0_PRIORITY_SHIFT
        if flags & END_ALWAYS_NOTIFY:
            end[0] |= END_W0_UCOND_NOTIFY
        else:
            end[0] &= ~END_W0_UCOND_NOTIFY
        end[1] = END_W1_GENERATION
        end[0] |= END_W0_VALID
        self.endt[end_idx] = end
        return _H_SUCCESS, ()

    def h_int_get_queue_config(self, args: Sequence[int]) -> HcallResult:
        flags, target, priority = args[0], args[1], args[2]
        rc, end_idx = self._enter_queue(
            "spapr_xive_get_queue_config",
            END_DEBUG,
            flags=flags,
            target=target,
            priority=priority,
        )
        if rc != _H_SUCCESS:
            return rc, ()
        end = self.endt[end_idx]
        queue = EndQueue.of(end)
        out_flags = END_ALWAYS_NOTIFY if end[0] & END_W0_UCOND_NOTIFY else 0
        if end[0] & END_W0_ENQUEUE:
            qaddr, qsize = queue.addr, queue.shift
        else:
            qaddr = qsize = 0
        qindex = 0
        if flags & END_DEBUG:
            out_flags |= queue.generation << 62
            qindex = queue.index
        return _H_SUCCESS, (out_flags, qaddr, qsize, qindex)

    def h_int_set_os_reporting_line(self, args: Sequence[int]) -> HcallResult:
        self._emit("spapr_xive_set_os_reporting_line", flags=args[0])
        return _H_FUNCTION, ()  # not implemented by QEMU 7.2, in either mode

    def h_int_get_os_reporting_line(self, args: Sequence[int]) -> HcallResult:
        self._emit("spapr_xive_get_os_reporting_line", flags=args[0])
        return _H_FUNCTION, ()

    def h_int_esb(self, args: Sequence[int]) -> HcallResult:
        flags, lisn, offset, data = args[0], args[1], args[2], args[3]
        rc = self._enter_lisn(
            "spapr_xive_esb", ESB_STORE, flags=flags, lisn=lisn, offset=offset, data=data
        )
        if rc is not None:
            return rc, ()
        if offset > (1 << ESB_SHIFT):
            return _H_P3, ()
        return self._in_device(self._esb_access, flags, lisn, offset, data)

    def _esb_access(self, flags: int, lisn: int, offset: int, data: int) -> HcallResult:
        addr = self.esb_mgmt_page(lisn) + offset
        if addr + 8 > self.esb_length:
            self._guest_error(f"XIVE: failed to access ESB @0x{self.vc_base + addr:x}")
            return _H_HARDWARE, ()
        if flags & ESB_STORE:
            self.esb_write(addr, data, 8)
            return _H_SUCCESS, (_MINUS_ONE,)
        return _H_SUCCESS, (self.esb_read(addr, 8),)

    def h_int_sync(self, args: Sequence[int]) -> HcallResult:
        flags, lisn = args[0], args[1]
        rc = self._enter_lisn("spapr_xive_sync", 0, flags=flags, lisn=lisn)
        if rc is not None:
            return rc, ()
        return _H_SUCCESS, ()

    def h_int_reset(self, args: Sequence[int]) -> HcallResult:
        flags = args[0]
        rc = self._enter("spapr_xive_reset", 0, flags=flags)
        if rc is not None:
            return rc, ()
        self.reset()
        return _H_SUCCESS, ()

    def hcall(self, opcode: int, args: Sequence[int]) -> HcallResult:
        """Run XIVE hcall ``opcode`` with r4.. = ``args`` (missing ones read as 0)."""
        handler = _HANDLERS.get(opcode)
        if handler is None:
            raise ValueError(f"hcall 0x{opcode:x} is not a XIVE hcall")
        regs = [int(a) & _U64 for a in args[:5]] + [0] * max(0, 5 - len(args))
        return handler(self, regs)

    # -- reset -------------------------------------------------------------------------

    def reset(self) -> None:
        """Device reset: sources off, valid EASs masked, every END cleared (spapr_xive_reset)."""
        self.source.reset()
        self.eat = [EAS_VALID | EAS_MASKED if w & EAS_VALID else 0 for w in self.eat]
        self.endt = [list(END_RESET) for _ in range(self.nr_ends)]

    # -- monitor -----------------------------------------------------------------------

    def info_pic(self) -> str:
        """HMP ``info pic`` with XIVE active: each thread context, then every valid source."""
        out: list[str] = []
        for tctx in self.tctxs.values():
            out += tctx.pic_lines()
        out.append("  LISN         PQ    EISN     CPU/PRIO EQ")
        for lisn, eas in enumerate(self.eat):
            if not eas & EAS_VALID:
                continue
            pq = self.source.pq[lisn]
            line = (
                f"  {lisn:08x} {'LSI' if self.source.is_lsi(lisn) else 'MSI'} "
                f"{'P' if pq & 2 else '-'}{'Q' if pq & 1 else '-'}"
                f"{'A' if lisn in self.source.asserted else ' '} "
                f"{'M' if eas & EAS_MASKED else ' '} {eas & EAS_END_DATA_MASK:08x} "
            )
            if not eas & EAS_MASKED:
                end_idx = (eas >> EAS_END_INDEX_SHIFT) & EAS_END_INDEX_MASK
                if end_idx < self.nr_ends and self.endt[end_idx][0] & END_W0_VALID:
                    line += self._end_pic(self.endt[end_idx])
            out.append(line)
        return "".join(f"{ln}\n" for ln in out)

    def _end_pic(self, end: list[int]) -> str:
        queue = EndQueue.of(end)
        qaddr, qindex, qentries = queue.addr, queue.index, queue.entries
        text = (
            f"{_c_int(queue.target):3d}/{queue.priority:d} {qindex: 6d}/{qentries:5d} "
            f"@{qaddr:x} ^{queue.generation:d}"
        )
        text += " [ "
        width = 6
        index = (qindex - (width - 1)) & (qentries - 1)
        for i in range(width):
            at = qaddr + (index << 2)
            if not 0 <= at <= self.memory.size - 4:
                return text
            text += f"{'^' if i == width - 1 else ''}{self.memory.ld32(at):08x} "
            index = (index + 1) & (qentries - 1)
        return text + "]"

    # -- migration ---------------------------------------------------------------------

    def vmstate(self) -> dict[str, Any]:
        """The ``spapr-xive`` section (EAT, ENDT), ``xive-source`` (PQ) and each ``xive-tctx``."""
        return {
            "nr_irqs": self.nr_irqs,
            "eat": list(self.eat),
            "endt": [list(e) for e in self.endt],
            "source": {
                "pq": bytes(self.source.pq).hex(),
                "lsi": sorted(self.source.lsi),
                "asserted": sorted(self.source.asserted),
            },
            "tctxs": [
                {"vcpu_id": t.vcpu_id, "cpu_index": t.cpu_index, "regs": bytes(t.regs).hex()}
                for t in self.tctxs.values()
            ],
            "exploited": self.exploited,
        }

    def load_vmstate(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`vmstate` output into a same-shaped controller; lines follow the NSRs."""
        if state["nr_irqs"] != self.nr_irqs:
            raise QemuError(f"{state['nr_irqs']} != {self.nr_irqs}")
        if len(state["endt"]) != self.nr_ends:
            raise QemuError(f"{len(state['endt'])} != {self.nr_ends}")
        for entry in state["tctxs"]:
            if entry["vcpu_id"] not in self.tctxs:
                raise QemuError(
                    f"Unknown savevm section or instance 'xive-tctx' {entry['cpu_index']}. "
                    "Make sure that your current VM setup matches your saved VM setup, "
                    "including any hotplugged devices"
                )
        self.eat = [int(w) & _U64 for w in state["eat"]]
        self.endt = [[int(w) & 0xFFFF_FFFF for w in e[:8]] for e in state["endt"]]
        pq = bytes.fromhex(state["source"]["pq"])
        self.source.pq[:] = bytes(b & 0x3 for b in pq[: self.nr_irqs])
        self.source.lsi = {int(x) for x in state["source"]["lsi"] if 0 <= int(x) < self.nr_irqs}
        self.source.asserted = {
            int(x) for x in state["source"]["asserted"] if 0 <= int(x) < self.nr_irqs
        }
        for entry in state["tctxs"]:
            tctx = self.tctxs[entry["vcpu_id"]]
            tctx.regs[:] = bytes.fromhex(entry["regs"])[:64].ljust(64, b"\0")
        self.exploited = bool(state.get("exploited", False))
        for tctx in self.tctxs.values():
            self._set_output(tctx, bool(tctx.nsr & TM_QW1_NSR_EO))


#: The hcall table (QEMU's spapr_xive_hcall_init).
_HANDLERS: dict[int, Callable[[SpaprXive, Sequence[int]], HcallResult]] = {
    Hcall.H_INT_GET_SOURCE_INFO: SpaprXive.h_int_get_source_info,
    Hcall.H_INT_SET_SOURCE_CONFIG: SpaprXive.h_int_set_source_config,
    Hcall.H_INT_GET_SOURCE_CONFIG: SpaprXive.h_int_get_source_config,
    Hcall.H_INT_GET_QUEUE_INFO: SpaprXive.h_int_get_queue_info,
    Hcall.H_INT_SET_QUEUE_CONFIG: SpaprXive.h_int_set_queue_config,
    Hcall.H_INT_GET_QUEUE_CONFIG: SpaprXive.h_int_get_queue_config,
    Hcall.H_INT_SET_OS_REPORTING_LINE: SpaprXive.h_int_set_os_reporting_line,
    Hcall.H_INT_GET_OS_REPORTING_LINE: SpaprXive.h_int_get_os_reporting_line,
    Hcall.H_INT_ESB: SpaprXive.h_int_esb,
    Hcall.H_INT_SYNC: SpaprXive.h_int_sync,
    Hcall.H_INT_RESET: SpaprXive.h_int_reset,
}


def _c_int(value: int) -> int:
    """A 32-bit value as C's ``%d`` prints it."""
    return value - (1 << 32) if value & 0x8000_0000 else value


@attrs.define(eq=False)
class _EsbPages:
    """The source ESB pages as guest memory sees them (loads and stores by offset)."""

    xive: SpaprXive

    def mmio_read(self, cpu: int, offset: int, size: int) -> int:
        return self.xive._in_device(self.xive.esb_read, offset, size)

    def mmio_write(self, cpu: int, offset: int, size: int, value: int) -> None:
        self.xive._in_device(self.xive.esb_write, offset, value, size)


@attrs.define(eq=False)
class _TimaPages:
    """The four TIMA pages: each access is the calling vCPU's own thread context."""

    xive: SpaprXive

    def mmio_read(self, cpu: int, offset: int, size: int) -> int:
        return self.xive._in_device(self.xive.tima_read, cpu, offset, size)

    def mmio_write(self, cpu: int, offset: int, size: int, value: int) -> None:
        self.xive._in_device(self.xive.tima_write, cpu, offset, size, value)
