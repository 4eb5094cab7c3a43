"""The sPAPR XIVE controller (spapr/xive.py) against QEMU 7.2's facts.

QEMU's texts are recorded in tests/data/xive (README there): ``info pic`` of a
POWER9 ``ic-mode=xive`` machine before any guest ran, and the trace formats compiled
into qemu-system-ppc64 7.2. The hcall return codes follow hw/intc/spapr_xive.c
(v7.2.0): H_FUNCTION before CAS negotiated XIVE exploitation, then H_PARAMETER for
reserved flag bits, H_P2/H_P3/H_P4/H_P5 for the argument in that register.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtas.hcalls import Hcall, HcallReturn
from rtas.memory import GuestMemory
from rtas.xive_abi import ESB_GET, ESB_SET_PQ_00, ESB_SET_PQ_01
from spapr.trace import QEMU_TRACE_FORMATS, TraceRecorder
from spapr.xive import (
    XIVE_HCALLS,
    Pq,
    SpaprXive,
    esb_eoi,
    esb_trigger,
)

DATA = Path(__file__).parent / "data" / "xive"
H = HcallReturn
OS_PAGE = 2 << 16
ACK_OS_REG = OS_PAGE | 0xC10
OS_CPPR = OS_PAGE | 0x11
QPAGE = 0x10000
HOTPLUG, EPOW, VIO = 0x1001, 0x1000, 0x1100


def machine_like(nr_servers: int = 4, vcpus: tuple[int, ...] = (0,)) -> SpaprXive:
    """A controller claimed as QEMU 7.2's POWER9 pseries claims it (IPIs, events, VIO, PCI)."""
    xive = SpaprXive(
        nr_irqs=0x2000, nr_servers=nr_servers, memory=GuestMemory(1 << 24), trace=TraceRecorder()
    )
    for i in range(nr_servers):
        xive.claim(i)
    for lisn in (EPOW, HOTPLUG, VIO):
        xive.claim(lisn)
    for lisn in range(0x1200, 0x1204):
        xive.claim(lisn, lsi=True)
    for vcpu in vcpus:
        xive.add_tctx(vcpu)
    return xive


def negotiated(xive: SpaprXive) -> SpaprXive:
    xive.exploited = True
    return xive


def rc(xive: SpaprXive, hcall: Hcall, *args: int) -> int:
    return xive.hcall(hcall, list(args))[0]


def routed(xive: SpaprXive, lisn: int = HOTPLUG, eisn: int = 23) -> SpaprXive:
    """What Linux does for a source: a queue for vCPU 0 at priority 6, route, unmask, CPPR."""
    negotiated(xive)
    assert rc(xive, Hcall.H_INT_SET_QUEUE_CONFIG, 1, 0, 6, QPAGE, 16) == H.H_SUCCESS
    assert rc(xive, Hcall.H_INT_SET_SOURCE_CONFIG, 2, lisn, 0, 6, eisn) == H.H_SUCCESS
    xive.esb_read(xive.esb_mgmt_page(lisn) + ESB_SET_PQ_00)
    xive.tima_write(0, OS_CPPR, 1, 0xFF)
    return xive


# ------------------------------------------------------------------ QEMU's texts


def test_info_pic_matches_qemu_before_any_guest() -> None:
    assert (
        negotiated(machine_like()).info_pic() + "irqchip: emulated\n"
        == (DATA / "info_pic_p9_ic-mode-xive.txt").read_text()
    )


def test_trace_formats_are_qemus() -> None:
    """Every XIVE event QEMU 7.2 has, with its text (printf conversions as Python's)."""
    for line in (DATA / "trace_formats.txt").read_text().splitlines():
        name, qemu_format = line.split(" ", 1)
        ours = QEMU_TRACE_FORMATS[name]
        as_printf = re.sub(r"\{\w+:(0?\d*)[xd]\}", lambda m: f"%{m.group(1)}_", ours)
        qemu = re.sub(r"%(0?\d*)l?[xd]", lambda m: f"%{m.group(1)}_", qemu_format)
        assert as_printf == qemu, name


def test_trace_line_of_a_pulse_is_the_recordings() -> None:
    """The real POWER9 recording's lines for the hot-plug source, field for field."""
    xive = machine_like()
    xive.pulse(HOTPLUG)
    lines = [ln for ln in xive.trace.qemu_lines() if ln.startswith("spapr_xive_set_irq")]
    assert lines == ["spapr_xive_set_irq lisn=0x1001 val=1", "spapr_xive_set_irq lisn=0x1001 val=0"]


# ---------------------------------------------------------------------- PQ bits


def test_esb_state_machine() -> None:
    assert esb_trigger(Pq.RESET) == (Pq.PENDING, True)
    assert esb_trigger(Pq.PENDING) == (Pq.QUEUED, False)
    assert esb_trigger(Pq.QUEUED) == (Pq.QUEUED, False)
    assert esb_trigger(Pq.OFF) == (Pq.OFF, False)
    assert esb_eoi(Pq.PENDING) == (Pq.RESET, False)
    assert esb_eoi(Pq.QUEUED) == (Pq.PENDING, True)
    assert esb_eoi(Pq.OFF) == (Pq.OFF, False)
    assert esb_eoi(Pq.RESET) == (Pq.RESET, False)


def test_esb_pages_load_and_store() -> None:
    xive = machine_like()
    mgmt = xive.esb_mgmt_page(HOTPLUG)
    assert xive.esb_read(mgmt + ESB_GET) == Pq.OFF
    assert xive.esb_read(mgmt + ESB_SET_PQ_00) == Pq.OFF  # returns the old PQ
    assert xive.esb_read(mgmt + ESB_GET) == Pq.RESET
    xive.esb_write(xive.esb_trigger_page(HOTPLUG), 0)  # a store on the trigger page
    assert xive.source.pq[HOTPLUG] == Pq.PENDING
    assert xive.esb_read(xive.esb_trigger_page(HOTPLUG)) == (1 << 64) - 1  # no loads there
    assert xive.esb_read(mgmt) == 0  # load EOI: P cleared, nothing queued
    assert xive.source.pq[HOTPLUG] == Pq.RESET
    xive.esb_read(mgmt + ESB_SET_PQ_01)
    xive.pulse(HOTPLUG)
    assert xive.source.pq[HOTPLUG] == Pq.OFF, "a source turned off drops events"


# --------------------------------------------------------------- the whole path


def test_pulse_is_queued_presented_accepted_and_ended() -> None:
    xive = routed(machine_like())
    lines: list[str] = []
    xive.trace.subscribe(lambda ev: lines.append(ev.qemu_line()))
    xive.pulse(HOTPLUG)
    assert xive.memory.ld32(QPAGE) == 0x8000_0017, "generation 1, EISN 23"
    tctx = xive.tctxs[0]
    assert (tctx.nsr, tctx.ipb, tctx.pipr, tctx.output) == (0x80, 0x02, 6, True)
    assert [ln.split(" ", 1)[0] for ln in lines] == [
        "spapr_xive_set_irq",
        "xive_router_end_notify",
        "xive_presenter_notify",
        "xive_tctx_notify",
        "spapr_xive_set_irq",
    ]
    assert xive.tima_read(0, ACK_OS_REG, 2) == 0x8006
    assert (tctx.nsr, tctx.cppr, tctx.ipb, tctx.pipr, tctx.output) == (0, 6, 0, 0xFF, False)
    assert xive.esb_read(xive.esb_mgmt_page(HOTPLUG)) == 0
    xive.tima_write(0, OS_CPPR, 1, 0xFF)
    assert "00001001 MSI --    00000017   0/6      1/16384 @10000 ^1 [" in xive.info_pic()


def test_event_while_pending_is_queued_and_renotified_at_eoi() -> None:
    xive = routed(machine_like())
    xive.pulse(HOTPLUG)
    xive.pulse(HOTPLUG)
    assert xive.source.pq[HOTPLUG] == Pq.QUEUED
    assert xive.memory.ld32(QPAGE + 4) == 0, "only one entry until the EOI"
    assert xive.esb_read(xive.esb_mgmt_page(HOTPLUG)) == 1
    assert xive.memory.ld32(QPAGE + 4) == 0x8000_0017


def test_masked_eas_drops_the_event_and_cppr_blocks_presentation() -> None:
    xive = routed(machine_like())
    xive.tima_write(0, OS_CPPR, 1, 0)
    xive.pulse(HOTPLUG)
    assert xive.tctxs[0].ipb == 0x02 and not xive.tctxs[0].output
    xive.tima_write(0, OS_CPPR, 1, 0xFF)
    assert xive.tctxs[0].output, "opening the CPPR presents what is pending"
    assert rc(xive, Hcall.H_INT_SET_SOURCE_CONFIG, 1, EPOW, 0, 6, 0) == H.H_SUCCESS
    xive.esb_read(xive.esb_mgmt_page(EPOW) + ESB_SET_PQ_00)
    xive.pulse(EPOW)
    assert xive.memory.ld32(QPAGE + 4) == 0


# ---------------------------------------------------------------- hcall checks


def test_every_hcall_is_h_function_before_cas() -> None:
    xive = machine_like()
    for hcall in XIVE_HCALLS:
        assert rc(xive, hcall, 0, 0, 0, 0, 0) == H.H_FUNCTION, hcall.name


@pytest.mark.parametrize(
    ("hcall", "args", "code"),
    [
        (Hcall.H_INT_GET_SOURCE_INFO, (1, HOTPLUG), H.H_PARAMETER),
        (Hcall.H_INT_GET_SOURCE_INFO, (0, 0x2000), H.H_P2),
        (Hcall.H_INT_GET_SOURCE_INFO, (0, 0x1500), H.H_P2),
        (Hcall.H_INT_SET_SOURCE_CONFIG, (4, HOTPLUG, 0, 6, 0), H.H_PARAMETER),
        (Hcall.H_INT_SET_SOURCE_CONFIG, (0, 1 << 63, 0, 6, 0), H.H_P2),
        (Hcall.H_INT_SET_SOURCE_CONFIG, (0, HOTPLUG, 0, 7, 0), H.H_P4),
        (Hcall.H_INT_SET_SOURCE_CONFIG, (0, HOTPLUG, 3, 6, 0), H.H_P3),
        (Hcall.H_INT_SET_SOURCE_CONFIG, (0, HOTPLUG, 3, 0xFF, 0), H.H_SUCCESS),
        (Hcall.H_INT_GET_SOURCE_CONFIG, (2, HOTPLUG), H.H_PARAMETER),
        (Hcall.H_INT_GET_SOURCE_CONFIG, (0, 0x1FFF), H.H_P2),
        (Hcall.H_INT_GET_QUEUE_INFO, (1, 0, 6), H.H_PARAMETER),
        (Hcall.H_INT_GET_QUEUE_INFO, (0, 0, 7), H.H_P3),
        (Hcall.H_INT_GET_QUEUE_INFO, (0, 9, 6), H.H_P2),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (2, 0, 6, QPAGE, 16), H.H_PARAMETER),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (0, 0, 0xF8, QPAGE, 16), H.H_P3),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (0, 1, 6, QPAGE, 16), H.H_P2),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (0, 0, 6, QPAGE + 0x1000, 16), H.H_P4),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (0, 0, 6, 1 << 40, 16), H.H_P4),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (0, 0, 6, QPAGE, 17), H.H_P5),
        (Hcall.H_INT_SET_QUEUE_CONFIG, (0, 0, 6, 0, 0), H.H_SUCCESS),
        (Hcall.H_INT_GET_QUEUE_CONFIG, (2, 0, 6), H.H_PARAMETER),
        (Hcall.H_INT_GET_QUEUE_CONFIG, (0, 0, 8), H.H_P3),
        (Hcall.H_INT_GET_QUEUE_CONFIG, (0, -1, 6), H.H_P2),
        (Hcall.H_INT_SET_OS_REPORTING_LINE, (0, QPAGE), H.H_FUNCTION),
        (Hcall.H_INT_GET_OS_REPORTING_LINE, (0, 0, QPAGE), H.H_FUNCTION),
        (Hcall.H_INT_ESB, (2, HOTPLUG, 0, 0), H.H_PARAMETER),
        (Hcall.H_INT_ESB, (0, 0x3000, 0, 0), H.H_P2),
        (Hcall.H_INT_ESB, (0, HOTPLUG, (1 << 17) + 1, 0), H.H_P3),
        (Hcall.H_INT_ESB, (0, 0x1FFF, 1 << 17, 0), H.H_P2),
        (Hcall.H_INT_SYNC, (1, HOTPLUG), H.H_PARAMETER),
        (Hcall.H_INT_SYNC, (0, 0x1400), H.H_P2),
        (Hcall.H_INT_SYNC, (0, HOTPLUG), H.H_SUCCESS),
        (Hcall.H_INT_RESET, (1,), H.H_PARAMETER),
        (Hcall.H_INT_RESET, (0,), H.H_SUCCESS),
    ],
)
def test_hcall_checks(hcall: Hcall, args: tuple[int, ...], code: HcallReturn) -> None:
    assert rc(negotiated(machine_like()), hcall, *args) == code


def test_source_info_of_msi_and_lsi() -> None:
    xive = negotiated(machine_like())
    status, (flags, mgmt, trig, shift) = xive.hcall(Hcall.H_INT_GET_SOURCE_INFO, [0, HOTPLUG])
    assert (status, flags, shift) == (0, 0, 16)
    assert (mgmt, trig) == (0x6010000000000 + 0x1001 * 0x20000 + 0x10000, 0x6010020020000)
    status, values = xive.hcall(Hcall.H_INT_GET_SOURCE_INFO, [0, 0x1200])
    assert values == (0xC, (1 << 64) - 1, (1 << 64) - 1, 16), "LSIs go through H_INT_ESB"


def test_queue_and_source_config_read_back() -> None:
    xive = routed(machine_like())
    assert xive.hcall(Hcall.H_INT_GET_SOURCE_CONFIG, [0, HOTPLUG]) == (0, (0, 6, 23))
    assert xive.hcall(Hcall.H_INT_GET_QUEUE_CONFIG, [0, 0, 6]) == (0, (1, QPAGE, 16, 0))
    xive.pulse(HOTPLUG)
    debug = xive.hcall(Hcall.H_INT_GET_QUEUE_CONFIG, [1, 0, 6])
    assert debug == (0, (1 | 1 << 62, QPAGE, 16, 1))
    assert xive.hcall(Hcall.H_INT_GET_QUEUE_INFO, [0, 0, 6]) == (
        0,
        (0x6010000000000 + (0x2000 << 17) + 6 * 0x20000, 16),
    )
    assert rc(xive, Hcall.H_INT_ESB, 0, HOTPLUG, ESB_GET, 0) == 0
    assert xive.hcall(Hcall.H_INT_ESB, [0, HOTPLUG, ESB_GET, 0])[1] == (Pq.PENDING,)
    assert xive.hcall(Hcall.H_INT_ESB, [1, HOTPLUG, ESB_SET_PQ_01, 0])[1] == ((1 << 64) - 1,)
    assert xive.source.pq[HOTPLUG] == Pq.OFF
    assert rc(xive, Hcall.H_INT_RESET, 0) == H.H_SUCCESS
    assert xive.hcall(Hcall.H_INT_GET_SOURCE_CONFIG, [0, HOTPLUG])[1][1] == 0xFF


def test_reset_and_migration_round_trip() -> None:
    xive = routed(machine_like(vcpus=(0, 1)))
    xive.pulse(HOTPLUG)
    copy = machine_like(vcpus=(0, 1))
    copy.memory.write(QPAGE, xive.memory.read(QPAGE, 8))
    copy.load_vmstate(xive.vmstate())
    assert copy.info_pic() == xive.info_pic()
    assert copy.tctxs[0].output
    xive.reset()
    assert xive.eat[HOTPLUG] == (1 << 63) | (1 << 31)
    assert all(pq == Pq.OFF for pq in xive.source.pq)


def test_tima_refuses_what_the_os_page_cannot_do() -> None:
    xive = machine_like()
    assert xive.tima_read(0, OS_PAGE | 0x10, 1) == 0xFF, "1-byte raw loads are refused"
    # NSR CPPR IPB LSMFB ACK# INC AGE PIPR: the OS page does not show AGE
    assert xive.tima_read(0, OS_PAGE | 0x10, 8) == 0x0000_00FF_FF00_00FF
    assert xive.tima_read(5, ACK_OS_REG, 2) == 0xFFFF, "no thread context: all ones"
    xive.tima_write(0, OS_PAGE | 0x18, 4, 0)  # the CAM word is the hypervisor's
    assert xive.tctxs[0].os_cam == 0x8000_0400


@settings(max_examples=300, deadline=None)
@given(
    hcall=st.sampled_from(XIVE_HCALLS),
    args=st.lists(st.integers(min_value=-(1 << 64), max_value=1 << 65), min_size=0, max_size=6),
)
def test_hostile_hcalls_only_return_codes(hcall: Hcall, args: list[int]) -> None:
    xive = negotiated(machine_like())
    status, values = xive.hcall(hcall, args)
    assert status in {int(c) for c in HcallReturn}
    assert all(0 <= v < 1 << 64 for v in values)


@settings(max_examples=300, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=(0x2000 << 17) - 8),
    size=st.sampled_from([1, 2, 4, 8]),
    store=st.booleans(),
)
def test_hostile_esb_and_tima_accesses(offset: int, size: int, store: bool) -> None:
    xive = routed(machine_like())
    if store:
        xive.esb_write(offset, 0, size)
        xive.tima_write(0, offset & 0x3FFFF, size, 0xFF)
    else:
        assert 0 <= xive.esb_read(offset, size) < 1 << (8 * size)
        assert 0 <= xive.tima_read(0, offset & 0x3FFFF, size) < 1 << (8 * size)
