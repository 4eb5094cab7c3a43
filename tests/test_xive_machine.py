"""The machine's interrupt-controller modes (QEMU 7.2's ic-mode) with XIVE modelled.

ic-mode=xics has only XICS; ic-mode=xive only XIVE (active from the start, no XICS
RTAS services or hcalls); dual (the default on POWER9/POWER10) has both, XICS active
until CAS negotiates XIVE exploitation, and a reset returns to XICS.
"""

from __future__ import annotations

import io
from typing import Any

from machine.board.build import build_machine
from rtas.hcalls import MMIO_LOAD, Hcall, HcallReturn
from spapr.ovec import OV5_HP_EVT, OV5_XIVE_EXPLOIT
from spapr.xive import SPAPR_XIVE_TM_BASE


def machine(ic_mode: str | None, cpu: str = "POWER9") -> Any:
    mode = f",ic-mode={ic_mode}" if ic_mode else ""
    argv = ["-M", f"pseries{mode}", "-cpu", cpu, "-smp", "1,cores=4,threads=1,maxcpus=4"]
    m = build_machine([*argv, "-m", "1G", "-nodefaults", "-guest", "none"], io.StringIO())
    m.reset()
    return m


def test_dual_is_xics_until_cas_and_after_reset() -> None:
    m = machine(None)
    assert m.has_xics and m.xive is not None and not m.xive_active
    assert "interrupt-controller" in [c.name for c in m.device_tree(reset=False).root.children]
    m.ov5_cas.set(OV5_XIVE_EXPLOIT)
    m._set_active_intc(xive=True)
    assert m.xive_active and m.xive.exploited
    names = [c.name for c in m.device_tree(reset=False).root.children]
    assert "interrupt-controller@60302031b0000" in names
    m.reset()
    assert not m.xive_active and not m.xive.exploited


def test_xics_only_and_xive_only_hcalls() -> None:
    xics = machine("xics")
    assert xics.xive is None
    assert xics._hcall(0, Hcall.H_INT_RESET, (0,)) == HcallReturn.H_FUNCTION
    xive = machine("xive")
    assert xive.xive_active and not xive.has_xics
    assert xive._hcall(0, Hcall.H_CPPR, (0xFF,)) == HcallReturn.H_FUNCTION
    assert xive._hcall(0, Hcall.H_INT_RESET, (0,)) == HcallReturn.H_FUNCTION, "before CAS"
    ack = SPAPR_XIVE_TM_BASE + (2 << 16) + 0xC10
    assert xive._hcall(0, MMIO_LOAD, (ack, 2)) == 0x00, "the TIMA answers vCPU 0"
    assert [p for t in xive.iter_threads() for p in t.presenters] == ["xive-tctx"]


def test_power8_has_no_xive() -> None:
    m = machine(None, "POWER8")
    assert m.xive is None and not m.xive_active


def test_hotplug_event_pulses_the_xive_source_as_the_power9_recording() -> None:
    """With XIVE negotiated, device_add pulses LISN 0x1001 as QEMU's trace shows it."""
    m = machine(None)
    m.ov5_cas.set(OV5_XIVE_EXPLOIT)
    m.ov5_cas.set(OV5_HP_EVT)
    m.events.hp_evt_negotiated = True
    m._set_active_intc(xive=True)
    m.trace.clear()
    m.device_add({"driver": "power9_v2.0-spapr-cpu-core", "core-id": 1, "id": "c1"})
    lines = [ln for ln in m.trace.qemu_lines() if ln.startswith(("spapr_xive", "xics_"))]
    assert lines == [
        "spapr_xive_set_irq lisn=0x1001 val=1",
        "spapr_xive_set_irq lisn=0x1001 val=0",
    ]
    assert "xive-tctx" in [p for t in m.iter_threads() for p in t.presenters]
    assert len(m.xive.tctxs) == 2, "the new vCPU has its thread context"
