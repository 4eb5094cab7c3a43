"""XICS, the interrupt controller a pseries guest takes its hotplug and EPOW interrupts through.

QEMU 7.2's emulated XICS as a sans-IO model. The source layer (:class:`Ics`, one
for the machine, sources 0x1000..0x1fff) turns device pulses into deliveries and
holds each source's server, priority and status flags; the presentation layer
(:class:`Icp`, one per vCPU, numbered by vcpu id) keeps the XIRR (CPPR and XISR),
the pending priority and the MFRR, presents, rejects, accepts and ends interrupts.
:class:`Xics` is the fabric joining them: it finds an ICP by server, owns the RTAS
services (ibm,set-xive, ibm,get-xive, ibm,int-off, ibm,int-on) and the hcalls
(H_CPPR, H_IPI, H_XIRR, H_XIRR_X, H_EOI, H_IPOLL), and emits QEMU's ``xics_*``
trace events on the paths where QEMU emits them.

The machine supplies one output hook, ``raise_external(server, asserted)``, called
whenever an ICP's line to its vCPU changes level (QEMU's qemu_irq_raise/lower on
the CPU's external-interrupt input); raising it is what wakes a ceded vCPU.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from rtas.codes import RtasStatus
from rtas.hcalls import Hcall, HcallReturn
from rtas.tokens import RTAS_SERVICE_NAMES, RtasToken
from spapr.errors import QemuError
from spapr.trace import QEMU_TRACE_FORMATS, TraceRecorder

#: Source number of the inter-processor interrupt an ICP presents from its MFRR.
XICS_IPI = 0x2
#: First global interrupt number of the sPAPR ICS (XICS_IRQ_BASE = SPAPR_XIRQ_BASE).
XICS_IRQ_BASE = 0x1000
#: Number of ICS sources of pseries >= 3.1 (SPAPR_NR_XIRQS).
SPAPR_NR_XIRQS = 0x1000
#: Number of ICS sources of pseries <= 3.0 (legacy IRQ allocation).
SPAPR_NR_XIRQS_LEGACY = 0x400
#: Priority 0xff: the source is masked (and, as a CPPR, the most permissive value).
PRIORITY_MASKED = 0xFF

XISR_MASK = 0x00FF_FFFF
CPPR_SHIFT = 24
_CPPR_MASK = 0xFF00_0000
_U32 = 0xFFFF_FFFF

#: Message formats of QEMU 7.2's ``xics_*`` trace events (hw/intc/trace-events).
#: ``xics_ics_set_irq_msi`` and ``xics_masked_pending`` are also in
#: ``spapr.trace.QEMU_TRACE_FORMATS``; the others are to be merged there.
#: The xics_* subset of QEMU's trace formats (one table, in spapr.trace).
XICS_TRACE_FORMATS: dict[str, str] = {
    name: fmt for name, fmt in QEMU_TRACE_FORMATS.items() if name.startswith("xics_")
}

#: Stand-in for the host pointers ``info pic`` prints.
ICS_ADDRESS = 0x5555_5555_0000

#: This project's event for a delivery to a server that has no ICP (QEMU 7.2
#: dereferences a NULL presenter there; the model rejects the interrupt instead).
TRACE_NO_PRESENTER = "xics_icp_irq_no_presenter"

#: An hcall's outcome: (return code in r3, values returned in r4, r5, ...).
HcallResult = tuple[int, tuple[int, ...]]
#: The machine's hook on an ICP's output line: (server, asserted).
RaiseExternal = Callable[[int, bool], None]

_H_SUCCESS = int(HcallReturn.H_SUCCESS)
_H_PARAMETER = int(HcallReturn.H_PARAMETER)
_RTAS_SUCCESS = int(RtasStatus.SUCCESS)
_RTAS_PARAM_ERROR = int(RtasStatus.PARAM_ERROR)


class SourceStatus(enum.IntFlag):
    """Per-source status bits (XICS_STATUS_*); PRESENTED and QUEUED are XIVE-era, unused here."""

    ASSERTED = 0x1
    SENT = 0x2
    REJECTED = 0x4
    MASKED_PENDING = 0x8
    PRESENTED = 0x10
    QUEUED = 0x20


class SourceFlags(enum.IntFlag):
    """Per-source type bits (XICS_FLAGS_IRQ_*); neither bit set means the source is free."""

    LSI = 0x1
    MSI = 0x2


_NO_STATUS = SourceStatus(0)
_NO_FLAGS = SourceFlags(0)
# Plain-int bits for tests on the hot path (an IntFlag ``&`` builds a new flag member).
_LSI_BIT = int(SourceFlags.LSI)
_REJECTED_BIT = int(SourceStatus.REJECTED)
_ASSERTED_BIT = int(SourceStatus.ASSERTED)


class RtasCallLike(Protocol):
    """What an RTAS handler here reads and writes (``rtas.RtasCall`` fits)."""

    @property
    def nargs(self) -> int: ...

    @property
    def nret(self) -> int: ...

    @property
    def args(self) -> tuple[int, ...]: ...

    def set_ret(self, i: int, value: int) -> None: ...


RtasHandlerLike = Callable[[RtasCallLike], None]
RtasRegister = Callable[[int, str, RtasHandlerLike], None]


def _as_int32(value: int) -> int:
    """``value`` as QEMU's ``int`` server argument sees it (low 32 bits, signed)."""
    value &= _U32
    return value - (1 << 32) if value & 0x8000_0000 else value


@attrs.define
class IcsSource:
    """One ICS source (QEMU's ICSIRQState): target server, priorities, status and type."""

    server: int = 0
    priority: int = PRIORITY_MASKED
    saved_priority: int = PRIORITY_MASKED
    status: SourceStatus = _NO_STATUS
    flags: SourceFlags = _NO_FLAGS

    @property
    def lsi(self) -> bool:
        """Level-sensitive; anything else (MSI or a free source) takes the MSI paths."""
        return bool(int(self.flags) & _LSI_BIT)

    @property
    def claimed(self) -> bool:
        """Allocated to a device (QEMU's ``!ics_irq_free``)."""
        return bool(self.flags)

    @property
    def masked(self) -> bool:
        """Priority 0xff: a pulse only sets MASKED_PENDING."""
        return self.priority == PRIORITY_MASKED

    def vmstate(self) -> dict[str, int]:
        """The ``ics/irq`` migration fields."""
        return {
            "server": self.server,
            "priority": self.priority,
            "saved_priority": self.saved_priority,
            "status": int(self.status),
            "flags": int(self.flags),
        }


class Ics:
    """The sPAPR interrupt source controller: sources ``offset .. offset + nr_irqs - 1``.

    Device-facing: :meth:`claim`, :meth:`set_irq`, :meth:`pulse`. Guest-facing (through
    RTAS): :meth:`write_xive` and the ``rtas_*`` handlers. ICP-facing: :meth:`reject`,
    :meth:`eoi`, :meth:`resend`.
    """

    def __init__(
        self, xics: Xics, nr_irqs: int = SPAPR_NR_XIRQS, offset: int = XICS_IRQ_BASE
    ) -> None:
        if nr_irqs <= 0:
            raise ValueError("Number of interrupts needs to be greater 0")
        self.xics = xics
        self.nr_irqs = nr_irqs
        self.offset = offset
        self.sources: list[IcsSource] = [IcsSource() for _ in range(nr_irqs)]
        # Sources ics_resend can act on (REJECTED, or LSI and ASSERTED), so that a
        # resend need not walk all nr_irqs sources as QEMU does; same effect.
        self._resend_candidates: set[int] = set()

    # -- lookups -------------------------------------------------------------

    def valid_irq(self, nr: int) -> bool:
        """Whether global interrupt number ``nr`` belongs to this ICS (ics_valid_irq)."""
        return self.offset <= nr < self.offset + self.nr_irqs

    def srcno(self, nr: int) -> int:
        """Source number of global interrupt ``nr``; ValueError if it is not ours."""
        if not self.valid_irq(nr):
            raise ValueError(
                f"irq 0x{nr:x} outside ICS 0x{self.offset:x}..0x{self.offset + self.nr_irqs - 1:x}"
            )
        return nr - self.offset

    def source(self, nr: int) -> IcsSource:
        """The source state of global interrupt ``nr``."""
        return self.sources[self.srcno(nr)]

    def _set_status(self, srcno: int, status: SourceStatus) -> None:
        src = self.sources[srcno]
        src.status = status
        bits = int(status)
        if bits & _REJECTED_BIT or (int(src.flags) & _LSI_BIT and bits & _ASSERTED_BIT):
            self._resend_candidates.add(srcno)
        else:
            self._resend_candidates.discard(srcno)

    def _emit(self, name: str, **fields: Any) -> None:
        self.xics.emit(name, **fields)

    # -- allocation ----------------------------------------------------------

    def claim(self, irq: int, lsi: bool = False) -> None:
        """Allocate source ``irq`` as LSI or MSI (spapr_irq_claim); QemuError if taken."""
        src = self.source(irq)
        if src.claimed:
            raise QemuError(f"IRQ {irq} is not free")
        src.flags = SourceFlags.LSI if lsi else SourceFlags.MSI

    def free(self, irq: int) -> None:
        """Release source ``irq``: QEMU zeroes the whole entry (priority 0 included)."""
        srcno = self.srcno(irq)
        self.sources[srcno] = IcsSource(priority=0, saved_priority=0)
        self._resend_candidates.discard(srcno)

    def find_free(self, num: int = 1, align: bool = False) -> int:
        """First free block of ``num`` sources (legacy IRQ allocation, spapr_irq_find)."""
        step = num if align else 1
        for first in range(0, self.nr_irqs, step):
            if num > self.nr_irqs - first:
                break
            if not any(s.claimed for s in self.sources[first : first + num]):
                return first + self.offset
        raise QemuError(f"can't find a free {num}-IRQ block")

    # -- device side ---------------------------------------------------------

    def set_irq(self, irq: int, level: int) -> None:
        """Drive source ``irq``'s input to ``level`` (ics_set_irq)."""
        srcno = self.srcno(irq)
        if self.sources[srcno].lsi:
            self._set_irq_lsi(srcno, level)
        else:
            self._set_irq_msi(srcno, level)

    def pulse(self, irq: int) -> None:
        """Raise then lower source ``irq`` (qemu_irq_pulse, how spapr events signal)."""
        self.set_irq(irq, 1)
        self.set_irq(irq, 0)

    def _set_irq_msi(self, srcno: int, level: int) -> None:
        src = self.sources[srcno]
        self._emit("xics_ics_set_irq_msi", srcno=srcno, nr=srcno + self.offset)
        if not level:
            return
        if src.priority == PRIORITY_MASKED:
            self._set_status(srcno, src.status | SourceStatus.MASKED_PENDING)
            self._emit("xics_masked_pending")
        else:
            self.xics.icp_irq(self, src.server, srcno + self.offset, src.priority)

    def _set_irq_lsi(self, srcno: int, level: int) -> None:
        src = self.sources[srcno]
        self._emit("xics_ics_set_irq_lsi", srcno=srcno, nr=srcno + self.offset)
        if level:
            self._set_status(srcno, src.status | SourceStatus.ASSERTED)
        else:
            self._set_status(srcno, src.status & ~SourceStatus.ASSERTED)
        self._resend_lsi(srcno)

    # -- guest side (RTAS) ---------------------------------------------------

    def write_xive(self, srcno: int, server: int, priority: int, saved_priority: int) -> None:
        """Set a source's server and priorities; unmasking re-delivers a masked pulse."""
        src = self.sources[srcno]
        src.server = server
        src.priority = priority
        src.saved_priority = saved_priority
        self._emit(
            "xics_ics_write_xive",
            nr=self.offset + srcno,
            srcno=srcno,
            server=server,
            priority=priority,
        )
        if src.lsi:
            self._resend_lsi(srcno)
        elif src.status & SourceStatus.MASKED_PENDING and src.priority != PRIORITY_MASKED:
            self._set_status(srcno, src.status & ~SourceStatus.MASKED_PENDING)
            self.xics.icp_irq(self, src.server, srcno + self.offset, src.priority)

    def rtas_set_xive(self, call: RtasCallLike) -> None:
        """ibm,set-xive (irq, server, priority) -> status."""
        if call.nargs != 3 or call.nret != 1:
            call.set_ret(0, _RTAS_PARAM_ERROR)
            return
        nr, server, priority = call.args[0], call.args[1], call.args[2]
        if (
            not self.valid_irq(nr)
            or self.xics.icp_get(_as_int32(server)) is None
            or priority > PRIORITY_MASKED
        ):
            call.set_ret(0, _RTAS_PARAM_ERROR)
            return
        self.write_xive(nr - self.offset, server, priority, priority)
        call.set_ret(0, _RTAS_SUCCESS)

    def rtas_get_xive(self, call: RtasCallLike) -> None:
        """ibm,get-xive (irq) -> status, server, priority."""
        if call.nargs != 1 or call.nret != 3:
            call.set_ret(0, _RTAS_PARAM_ERROR)
            return
        nr = call.args[0]
        if not self.valid_irq(nr):
            call.set_ret(0, _RTAS_PARAM_ERROR)
            return
        src = self.sources[nr - self.offset]
        call.set_ret(0, _RTAS_SUCCESS)
        call.set_ret(1, src.server)
        call.set_ret(2, src.priority)

    def rtas_int_off(self, call: RtasCallLike) -> None:
        """ibm,int-off (irq) -> status: mask, saving the current priority."""
        srcno = self._one_irq_call(call)
        if srcno is not None:
            src = self.sources[srcno]
            self.write_xive(srcno, src.server, PRIORITY_MASKED, src.priority)
            call.set_ret(0, _RTAS_SUCCESS)

    def rtas_int_on(self, call: RtasCallLike) -> None:
        """ibm,int-on (irq) -> status: restore the priority int-off saved."""
        srcno = self._one_irq_call(call)
        if srcno is not None:
            src = self.sources[srcno]
            self.write_xive(srcno, src.server, src.saved_priority, src.saved_priority)
            call.set_ret(0, _RTAS_SUCCESS)

    def _one_irq_call(self, call: RtasCallLike) -> int | None:
        """Checks shared by int-off/int-on (1 arg, 1 ret, a valid irq): srcno or None."""
        if call.nargs != 1 or call.nret != 1:
            call.set_ret(0, _RTAS_PARAM_ERROR)
            return None
        nr = call.args[0]
        if not self.valid_irq(nr):
            call.set_ret(0, _RTAS_PARAM_ERROR)
            return None
        return nr - self.offset

    def register_rtas(self, register: RtasRegister) -> None:
        """Register the four XICS RTAS services through ``register(token, name, handler)``."""
        for token, handler in (
            (RtasToken.IBM_SET_XIVE, self.rtas_set_xive),
            (RtasToken.IBM_GET_XIVE, self.rtas_get_xive),
            (RtasToken.IBM_INT_OFF, self.rtas_int_off),
            (RtasToken.IBM_INT_ON, self.rtas_int_on),
        ):
            register(int(token), RTAS_SERVICE_NAMES[token], handler)

    # -- presenter side ------------------------------------------------------

    def reject(self, nr: int) -> None:
        """An ICP turned ``nr`` away: remember to resend it (ics_reject)."""
        srcno = nr - self.offset
        src = self.sources[srcno]
        self._emit("xics_ics_reject", nr=nr, srcno=srcno)
        if src.flags & SourceFlags.MSI:
            self._set_status(srcno, src.status | SourceStatus.REJECTED)
        elif src.flags & SourceFlags.LSI:
            self._set_status(srcno, src.status & ~SourceStatus.SENT)

    def eoi(self, nr: int) -> None:
        """The guest ended ``nr`` (ics_eoi): an LSI may be sent again."""
        srcno = nr - self.offset
        src = self.sources[srcno]
        self._emit("xics_ics_eoi", nr=nr)
        if src.lsi:
            self._set_status(srcno, src.status & ~SourceStatus.SENT)

    def resend(self) -> None:
        """Offer every rejected MSI and every asserted, unsent LSI again, in source order."""
        cursor = 0
        while self._resend_candidates:
            pending = [s for s in self._resend_candidates if s >= cursor]
            if not pending:
                break
            srcno = min(pending)
            if self.sources[srcno].lsi:
                self._resend_lsi(srcno)
            else:
                self._resend_msi(srcno)
            cursor = srcno + 1

    def _resend_msi(self, srcno: int) -> None:
        src = self.sources[srcno]
        if src.status & SourceStatus.REJECTED:
            self._set_status(srcno, src.status & ~SourceStatus.REJECTED)
            # A rejected MSI resent while masked is dropped, as in QEMU.
            if src.priority != PRIORITY_MASKED:
                self.xics.icp_irq(self, src.server, srcno + self.offset, src.priority)

    def _resend_lsi(self, srcno: int) -> None:
        src = self.sources[srcno]
        if (
            src.priority != PRIORITY_MASKED
            and src.status & SourceStatus.ASSERTED
            and not src.status & SourceStatus.SENT
        ):
            self._set_status(srcno, src.status | SourceStatus.SENT)
            self.xics.icp_irq(self, src.server, srcno + self.offset, src.priority)

    # -- reset and migration -------------------------------------------------

    def reset(self) -> None:
        """Machine reset: every source masked, server 0, no status; types kept."""
        for i, src in enumerate(self.sources):
            self.sources[i] = IcsSource(flags=src.flags)
        self._resend_candidates.clear()

    def vmstate(self) -> dict[str, Any]:
        """The ``ics`` migration section: nr_irqs and every source."""
        return {"nr_irqs": self.nr_irqs, "irqs": [s.vmstate() for s in self.sources]}

    def load_vmstate(self, state: Mapping[str, Any]) -> None:
        """Load an ``ics`` section; ValueError (QEMU's text) if nr_irqs differs."""
        if state["nr_irqs"] != self.nr_irqs:
            raise ValueError(f"{state['nr_irqs']} != {self.nr_irqs}")
        irqs = state["irqs"]
        if len(irqs) != self.nr_irqs:
            raise ValueError(f"{len(irqs)} != {self.nr_irqs}")
        self._resend_candidates.clear()
        for srcno, fields in enumerate(irqs):
            src = IcsSource(
                server=fields["server"] & _U32,
                priority=fields["priority"] & 0xFF,
                saved_priority=fields["saved_priority"] & 0xFF,
                flags=SourceFlags(fields["flags"] & 0xFF),
            )
            self.sources[srcno] = src
            self._set_status(srcno, SourceStatus(fields["status"] & 0xFF))


@attrs.define(eq=False)
class Icp:
    """One interrupt presenter (one per vCPU): XIRR = CPPR << 24 | XISR, pending priority, MFRR.

    ``cpu_index`` is only what QEMU prints in some trace events (it equals the vcpu
    id unless vsmt spreads the ids).
    """

    xics: Xics = attrs.field(repr=False)
    server: int
    cpu_index: int
    xirr: int = 0
    pending_priority: int = PRIORITY_MASKED
    mfrr: int = PRIORITY_MASKED
    #: The ICS whose source is in XISR (None for the IPI; QEMU does not migrate it).
    xirr_owner: Ics | None = attrs.field(default=None, repr=False)
    #: Level of the line to the vCPU's external-interrupt input.
    output: bool = False

    @property
    def cppr(self) -> int:
        """Current processor priority: only interrupts more favoured (lower) get in."""
        return self.xirr >> CPPR_SHIFT

    @property
    def xisr(self) -> int:
        """Source presented and not yet accepted (0: none, 2: the IPI)."""
        return self.xirr & XISR_MASK

    def sync_output(self) -> None:
        """Drive the line from the XISR (after a migration load: the CPU keeps its own copy)."""
        self._set_output(self.xisr != 0)

    def _set_output(self, level: bool) -> None:
        if level != self.output:
            self.output = level
            self.xics.raise_external(self.server, level)

    def _emit(self, name: str, **fields: Any) -> None:
        self.xics.emit(name, **fields)

    def irq(self, ics: Ics, nr: int, priority: int) -> None:
        """Offer source ``nr`` at ``priority``: present it or have ``ics`` reject it (icp_irq)."""
        xisr = self.xisr
        if priority >= self.cppr or (xisr and self.pending_priority <= priority):
            ics.reject(nr)
            return
        if xisr and self.xirr_owner is not None:
            self.xirr_owner.reject(xisr)
            self.xirr_owner = None
        self.xirr = (self.xirr & ~XISR_MASK) | (nr & XISR_MASK)
        self.xirr_owner = ics
        self.pending_priority = priority
        self._emit("xics_icp_raise", xirr=self.xirr, pending_priority=self.pending_priority)
        self._set_output(True)

    def check_ipi(self) -> None:
        """Present the IPI if the MFRR beats what is pending (icp_check_ipi)."""
        xisr = self.xisr
        if xisr and self.pending_priority <= self.mfrr:
            return
        self._emit("xics_icp_check_ipi", server=self.cpu_index, mfrr=self.mfrr)
        if xisr and self.xirr_owner is not None:
            self.xirr_owner.reject(xisr)
        self.xirr = (self.xirr & ~XISR_MASK) | XICS_IPI
        self.pending_priority = self.mfrr
        self.xirr_owner = None
        self._set_output(True)

    def resend(self) -> None:
        """The ICP can take more: re-check the IPI, then have the ICS resend (icp_resend)."""
        if self.mfrr < self.cppr:
            self.check_ipi()
        self.xics.ics_resend()

    def set_cppr(self, cppr: int) -> None:
        """H_CPPR: a more favoured CPPR rejects what it now blocks; a less favoured one resends."""
        cppr &= 0xFF
        old_cppr = self.cppr
        self.xirr = (self.xirr & ~_CPPR_MASK) | (cppr << CPPR_SHIFT)
        if cppr < old_cppr:
            old_xisr = self.xisr
            if old_xisr and cppr <= self.pending_priority:
                self.xirr &= ~XISR_MASK
                self.pending_priority = PRIORITY_MASKED
                self._set_output(False)
                if self.xirr_owner is not None:
                    self.xirr_owner.reject(old_xisr)
                    self.xirr_owner = None
        elif not self.xisr:
            self.resend()

    def set_mfrr(self, mfrr: int) -> None:
        """H_IPI on this ICP: store the MFRR; present the IPI if it beats the CPPR."""
        self.mfrr = mfrr & 0xFF
        if self.mfrr < self.cppr:
            self.check_ipi()

    def accept(self) -> int:
        """H_XIRR: hand out the XIRR; the CPPR becomes the accepted priority (icp_accept)."""
        xirr = self.xirr
        self._set_output(False)
        self.xirr = self.pending_priority << CPPR_SHIFT
        self.pending_priority = PRIORITY_MASKED
        self.xirr_owner = None
        self._emit("xics_icp_accept", old_xirr=xirr, new_xirr=self.xirr)
        return xirr

    def ipoll(self) -> tuple[int, int]:
        """H_IPOLL: (XIRR, MFRR) without accepting anything."""
        return self.xirr, self.mfrr

    def eoi(self, xirr: int) -> None:
        """H_EOI: restore the CPPR from ``xirr``, end its source, resend if XISR is free."""
        xirr &= _U32
        self.xirr = (self.xirr & ~_CPPR_MASK) | (xirr & _CPPR_MASK)
        self._emit("xics_icp_eoi", server=self.cpu_index, xirr=xirr, new_xirr=self.xirr)
        nr = xirr & XISR_MASK
        ics = self.xics.ics_get(nr)
        if ics is not None:
            ics.eoi(nr)
        if not self.xisr:
            self.resend()

    def reset(self) -> None:
        """vCPU reset: XIRR 0 (CPPR 0 blocks everything until the guest opens it), MFRR 0xff."""
        self.xirr = 0
        self.pending_priority = PRIORITY_MASKED
        self.mfrr = PRIORITY_MASKED
        self.xirr_owner = None
        self._set_output(False)

    def vmstate(self) -> dict[str, int]:
        """The ``icp/server`` migration fields."""
        return {"xirr": self.xirr, "pending_priority": self.pending_priority, "mfrr": self.mfrr}

    def load_vmstate(self, state: Mapping[str, int]) -> None:
        """Load ``icp/server`` fields; the XISR's owner is not part of them."""
        self.xirr = state["xirr"] & _U32
        self.pending_priority = state["pending_priority"] & 0xFF
        self.mfrr = state["mfrr"] & 0xFF
        self.xirr_owner = None


def _no_output(server: int, asserted: bool) -> None:
    return None


class Xics:
    """The XICS fabric: the machine's ICS, one ICP per server, the RTAS services and hcalls.

    ``raise_external(server, asserted)`` is told of every level change of an ICP's
    output line; ``trace`` receives the ``xics_*`` events.
    """

    def __init__(
        self,
        *,
        nr_irqs: int = SPAPR_NR_XIRQS,
        trace: TraceRecorder | None = None,
        raise_external: RaiseExternal | None = None,
    ) -> None:
        self.trace = trace if trace is not None else TraceRecorder(keep=False)
        self.raise_external: RaiseExternal = (
            raise_external if raise_external is not None else _no_output
        )
        self.ics = Ics(self, nr_irqs)
        #: ICPs by server, in plug order (QEMU's CPU list order: resend and ``info pic``).
        self.icps: dict[int, Icp] = {}
        #: Connected to KVM's in-kernel XICS device (xics_kvm_connect): the sources, the
        #: presenters' hcalls and the interrupt RTAS calls are the host kernel's, so QEMU
        #: traces none of them. This model still does the work, silently, in its place.
        self.in_kernel = False

    def emit(self, name: str, **fields: Any) -> None:
        """A trace event of the emulated controller (none while the kernel's is in use)."""
        if not self.in_kernel:
            self.trace.emit(name, **fields)

    # -- presenters ----------------------------------------------------------

    def add_icp(self, server: int, cpu_index: int | None = None) -> Icp:
        """Create the ICP of a new vCPU (``server`` = vcpu id), in its reset state."""
        if server in self.icps:
            raise ValueError(f"server {server} already has an ICP")
        icp = Icp(self, server, server if cpu_index is None else cpu_index)
        self.icps[server] = icp
        return icp

    def remove_icp(self, server: int) -> None:
        """Destroy a vCPU's ICP (core unplug). Whatever it held in XISR is gone with it."""
        icp = self.icps.pop(server)
        icp.xirr_owner = None

    def icp_get(self, server: int) -> Icp | None:
        """The ICP of ``server``, or None (xics_icp_get)."""
        return self.icps.get(server)

    def ics_get(self, nr: int) -> Ics | None:
        """The ICS owning global interrupt ``nr``, or None (the IPI, numbers below 0x1000)."""
        return self.ics if self.ics.valid_irq(nr) else None

    def ics_resend(self) -> None:
        """Have every ICS resend what it holds back."""
        self.ics.resend()

    def icp_irq(self, ics: Ics, server: int, nr: int, priority: int) -> None:
        """Deliver ``nr`` from ``ics`` to ``server``'s ICP (icp_irq).

        QEMU 7.2 crashes on a server without ICP (NULL presenter); the model rejects
        the interrupt, so it is resent once the guest retargets it.
        """
        self.emit("xics_icp_irq", server=server, nr=nr, priority=priority)
        icp = self.icps.get(_as_int32(server))
        if icp is None:
            self.emit(TRACE_NO_PRESENTER, server=server, nr=nr)
            ics.reject(nr)
            return
        icp.irq(ics, nr, priority)

    # -- device side ---------------------------------------------------------

    def claim(self, irq: int, lsi: bool = False) -> None:
        """Allocate source ``irq`` (spapr_irq_claim)."""
        self.ics.claim(irq, lsi)

    def set_irq(self, irq: int, level: int) -> None:
        """Drive source ``irq`` to ``level``."""
        self.ics.set_irq(irq, level)

    def pulse(self, irq: int) -> None:
        """Pulse source ``irq`` (what the spapr event sources do)."""
        self.ics.pulse(irq)

    # -- RTAS ----------------------------------------------------------------

    def register_rtas(self, register: RtasRegister) -> None:
        """Register ibm,set-xive, ibm,get-xive, ibm,int-off and ibm,int-on."""
        self.ics.register_rtas(register)

    # -- hcalls (``server`` is the calling vCPU's) ---------------------------

    def _caller(self, server: int) -> Icp:
        icp = self.icps.get(server)
        if icp is None:
            raise LookupError(f"calling vCPU {server} has no ICP")
        return icp

    def h_cppr(self, server: int, cppr: int) -> HcallResult:
        """H_CPPR(cppr) on the caller's ICP."""
        self._caller(server).set_cppr(cppr)
        return _H_SUCCESS, ()

    def h_ipi(self, server: int, target: int, mfrr: int) -> HcallResult:
        """H_IPI(target server, mfrr): H_PARAMETER if ``target`` has no ICP."""
        self._caller(server)
        icp = self.icps.get(_as_int32(target))
        if icp is None:
            return _H_PARAMETER, ()
        icp.set_mfrr(mfrr)
        return _H_SUCCESS, ()

    def h_xirr(self, server: int) -> HcallResult:
        """H_XIRR: accept; returns (XIRR,)."""
        return _H_SUCCESS, (self._caller(server).accept(),)

    def h_xirr_x(self, server: int, timebase: int = 0) -> HcallResult:
        """H_XIRR_X: accept; returns (XIRR, timebase) (QEMU's host ticks; here the virtual one)."""
        return _H_SUCCESS, (self._caller(server).accept(), timebase)

    def h_eoi(self, server: int, xirr: int) -> HcallResult:
        """H_EOI(xirr) on the caller's ICP."""
        self._caller(server).eoi(xirr)
        return _H_SUCCESS, ()

    def h_ipoll(self, server: int, target: int) -> HcallResult:
        """H_IPOLL(target server): (XIRR, MFRR), or H_PARAMETER if ``target`` has no ICP."""
        self._caller(server)
        icp = self.icps.get(_as_int32(target))
        if icp is None:
            return _H_PARAMETER, ()
        return _H_SUCCESS, icp.ipoll()

    def hcall(
        self, server: int, opcode: int, args: Sequence[int], *, timebase: int = 0
    ) -> HcallResult:
        """Run XICS hcall ``opcode`` with r4.. = ``args`` (missing ones read as 0)."""
        a = [*args, 0, 0][:2]
        if opcode == Hcall.H_CPPR:
            return self.h_cppr(server, a[0])
        if opcode == Hcall.H_IPI:
            return self.h_ipi(server, a[0], a[1])
        if opcode == Hcall.H_XIRR:
            return self.h_xirr(server)
        if opcode == Hcall.H_XIRR_X:
            return self.h_xirr_x(server, timebase)
        if opcode == Hcall.H_EOI:
            return self.h_eoi(server, a[0])
        if opcode == Hcall.H_IPOLL:
            return self.h_ipoll(server, a[0])
        raise ValueError(f"hcall 0x{opcode:x} is not an XICS hcall")

    # -- monitor ---------------------------------------------------------------

    def info_pic(self) -> str:
        """HMP ``info pic`` with XICS active, QEMU's text (the machine adds the irqchip line).

        QEMU prints host pointers (the XISR owner, the ICS); :data:`ICS_ADDRESS`
        stands in for them.
        """
        out = []
        for icp in self.icps.values():
            owner = "(nil)" if icp.xirr_owner is None else f"0x{ICS_ADDRESS:x}"
            out.append(
                f"CPU {icp.cpu_index} XIRR={icp.xirr:08x} ({owner}) "
                f"PP={icp.pending_priority:02x} MFRR={icp.mfrr:02x}\n"
            )
        ics = self.ics
        out.append(f"ICS {ics.offset:4x}..{ics.offset + ics.nr_irqs - 1:4x} 0x{ICS_ADDRESS:x}\n")
        for srcno, src in enumerate(ics.sources):
            if src.claimed:
                kind = "LSI" if src.lsi else "MSI"
                out.append(
                    f"  {ics.offset + srcno:4x} {kind} {src.priority:02x} {int(src.status):02x}\n"
                )
        return "".join(out)

    # -- reset and migration -------------------------------------------------

    def reset(self) -> None:
        """Machine reset of the ICS and every ICP."""
        self.ics.reset()
        for icp in self.icps.values():
            icp.reset()

    def vmstate(self) -> dict[str, Any]:
        """Migration state: the ``ics`` section and one ``icp/server`` per ICP, by server."""
        return {
            "ics": self.ics.vmstate(),
            "icps": [
                {"server": icp.server, "cpu_index": icp.cpu_index, **icp.vmstate()}
                for icp in self.icps.values()
            ],
        }

    def load_vmstate(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`vmstate` output into this (same-shaped) machine, then resend as QEMU does.

        A section for a server without ICP here fails with QEMU's message (as a
        QemuError). Afterwards each ICP's line follows its XISR and every ICP resends.
        """
        for entry in state["icps"]:
            if entry["server"] not in self.icps:
                raise QemuError(
                    f"Unknown savevm section or instance 'icp/server' {entry['cpu_index']}. "
                    "Make sure that your current VM setup matches your saved VM setup, "
                    "including any hotplugged devices"
                )
        self.ics.load_vmstate(state["ics"])
        for entry in state["icps"]:
            self.icps[entry["server"]].load_vmstate(entry)
        for icp in self.icps.values():
            icp.sync_output()
        for icp in self.icps.values():
            icp.resend()
