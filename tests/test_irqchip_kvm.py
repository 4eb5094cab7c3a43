"""KVM's in-kernel interrupt controller (``kernel-irqchip``) as QEMU 7.2 uses it on pseries.

Facts from QEMU 7.2 (hw/ppc/spapr_irq.c, hw/intc/spapr_xive.c, spapr_xive_kvm.c,
xics.c, hw/ppc/spapr.c): under KVM with kernel-irqchip not ``off`` the active
controller is connected to KVM's device (spapr_irq_init_kvm); ``info pic`` then ends
``irqchip: in-kernel`` (spapr_pic_print_info prints kvm_irqchip_in_kernel()). The
kernel owns the sources, the routing, the ESB and TIMA pages and, for XICS, the
presenter hcalls and interrupt RTAS calls, so none of QEMU's ``xics_*`` or
``xive_*`` events appear; ``spapr_xive_set_irq`` and the ``H_INT_*`` hcall events stay
(QEMU's code, before the KVM branch). kvmppc_xive_connect traces
``kvm_xive_cpu_connect`` for each vCPU in the CPU list, then ``kvm_xive_source_reset``
for each allocated source in LISN order; a vCPU created later is connected when its
thread context is realized, unless KVM had it already (a core plugged again); a
disconnect (a reset back to XICS in dual mode) forgets them all.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from typing import Any

import pytest

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.hmp import HmpMonitor

S = 1_000_000_000
KVM = ["-enable-kvm", "-cpu", "host"]
TCG = ["-cpu", "POWER9"]
SMP = ["-smp", "4,cores=4,threads=1,maxcpus=8", "-m", "1G", "-nodefaults"]
CORE = {
    "host": "host-spapr-cpu-core",
    "POWER9": "power9_v2.0-spapr-cpu-core",
    "POWER8": "power8_v2.0-spapr-cpu-core",
}
#: QEMU's event names of the emulated controllers' internals (not the hcall layer).
EMULATED_ONLY = re.compile(r"^(xics_|xive_)")


class Session:
    """A booted machine with the reference guest, its monitor and its trace."""

    def __init__(self, argv: list[str], guest: str = "linux") -> None:
        self.machine: Any = build_machine([*argv, *SMP, "-guest", guest], io.StringIO())
        self.machine.reset()
        self.control = MachineControl(self.machine)
        self.hmp = HmpMonitor(self.control, stderr=lambda line: None)
        self.machine.sched.run_for(3 * S)
        assert self.machine.guest is not None and self.machine.guest.booted
        self.core = CORE[argv[argv.index("-cpu") + 1]]

    def run(self, line: str) -> str:
        text = self.hmp.execute(line)
        self.control.settle()
        return text

    def events(self, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
        return [(e.name, dict(e.fields)) for e in self.machine.trace.events[start:]]

    def mark(self) -> int:
        return len(self.machine.trace.events)

    def plug(self, core_id: int, dev_id: str) -> None:
        assert self.run(f"device_add {self.core},core-id={core_id},id={dev_id}") == ""

    def pic_lisns(self) -> list[int]:
        """The LISNs ``info pic`` lists (QEMU prints every allocated source)."""
        rows = self.run("info pic").splitlines()
        at = rows.index("  LISN         PQ    EISN     CPU/PRIO EQ")
        return [int(r.split()[0], 16) for r in rows[at + 1 :] if r.startswith("  0")]


def last_line(session: Session) -> str:
    return session.run("info pic").splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (TCG, "irqchip: emulated"),
        (KVM, "irqchip: in-kernel"),
        (["-accel", "kvm,kernel-irqchip=on", "-cpu", "host"], "irqchip: in-kernel"),
        (["-accel", "kvm,kernel-irqchip=off", "-cpu", "host"], "irqchip: emulated"),
        (["-M", "pseries,kernel_irqchip=off", *KVM], "irqchip: emulated"),
        # -accel's own properties are set after the -machine sugar: they win
        (
            ["-M", "pseries,kernel-irqchip=off", "-accel", "kvm,kernel-irqchip=on", "-cpu", "host"],
            "irqchip: in-kernel",
        ),
        (["-M", "pseries,ic-mode=xics", *KVM], "irqchip: in-kernel"),
        (["-M", "pseries,ic-mode=xive", *KVM], "irqchip: in-kernel"),
    ],
)
def test_info_pic_says_whether_the_controller_is_the_kernels(argv: list[str], want: str) -> None:
    if "-M" not in argv:
        argv = ["-M", "pseries", *argv]
    assert last_line(Session(argv)) == want


def test_the_xics_guest_under_kvm_is_in_kernel_too() -> None:
    session = Session(["-M", "pseries", *KVM], guest="linux+xive=off")
    rows = session.run("info pic").splitlines()
    assert rows[-1] == "irqchip: in-kernel"
    assert not any(r.startswith("  LISN") for r in rows), "XICS stays active"


def test_xive_in_kernel_connects_each_vcpu_then_each_source_at_cas() -> None:
    session = Session(["-M", "pseries", *KVM])
    names = [n for n, _ in session.events()]
    cas = names.index("spapr_cas_pvr")
    after = session.events(cas)
    connects = [f["id"] for n, f in after if n == "kvm_xive_cpu_connect"]
    resets = [f["srcno"] for n, f in after if n == "kvm_xive_source_reset"]
    assert connects == [0, 1, 2, 3], "the boot vCPUs, in CPU order"
    assert resets == session.pic_lisns(), "every allocated source, in LISN order"
    first_reset = next(i for i, (n, _) in enumerate(after) if n == "kvm_xive_source_reset")
    last_connect = max(i for i, (n, _) in enumerate(after) if n == "kvm_xive_cpu_connect")
    assert last_connect < first_reset
    assert not [n for n, _ in session.events()[:cas] if n.startswith("kvm_xive")], (
        "dual mode: XICS until CAS"
    )


def test_hotplug_under_in_kernel_xive_traces_the_source_but_not_the_routing() -> None:
    """The same device_add/device_del under TCG and under KVM: the handshake is the same,
    QEMU's trace loses what the kernel does."""
    runs = {}
    for name, argv in (("tcg", TCG), ("kvm", KVM)):
        session = Session(["-M", "pseries", *argv])
        start = session.mark()
        session.plug(4, "c1")
        assert session.run("device_del c1") == ""
        runs[name] = (session, session.events(start))
    tcg, kvm = runs["tcg"][1], runs["kvm"][1]
    pulses = [("spapr_xive_set_irq", {"lisn": 0x1001, "val": v}) for v in (1, 0)] * 2
    for events in (tcg, kvm):
        assert [(n, f) for n, f in events if n == "spapr_xive_set_irq"] == pulses
    assert any(EMULATED_ONLY.match(n) for n, _ in tcg), "the check can see them"
    assert not [n for n, _ in kvm if EMULATED_ONLY.match(n)]
    assert [f["id"] for n, f in kvm if n == "kvm_xive_cpu_connect"] == [4]
    assert not [n for n, _ in tcg if n.startswith("kvm_")]
    # the handshake itself is the same: the RTAS calls the guest made, in order
    calls = {k: [f["name"] for n, f in ev if n == "rtas_call"] for k, (_, ev) in runs.items()}
    assert calls["kvm"] == calls["tcg"] and "ibm,configure-connector" in calls["kvm"]


def test_a_core_plugged_again_is_not_connected_again_until_a_disconnect() -> None:
    session = Session(["-M", "pseries", *KVM])
    session.plug(4, "c1")
    assert session.run("device_del c1") == ""
    start = session.mark()
    session.plug(4, "c2")
    assert not [n for n, _ in session.events(start) if n == "kvm_xive_cpu_connect"]
    assert "CPU(s):              5" in session.run("guest lscpu")
    # a reset returns dual mode to XICS (the XIVE device goes) and the guest's CAS
    # brings XIVE back: every vCPU of the CPU list is connected afresh
    start = session.mark()
    session.run("system_reset")
    session.machine.sched.run_for(3 * S)
    connects = [f["id"] for n, f in session.events(start) if n == "kvm_xive_cpu_connect"]
    assert connects == [0, 1, 2, 3, 4]
    assert last_line(session) == "irqchip: in-kernel"


def test_xive_only_connects_at_init_and_each_new_source_on_claim() -> None:
    session = Session(["-M", "pseries,ic-mode=xive", *KVM])
    events = session.events()
    first_cpu = next(i for i, (n, _) in enumerate(events) if n == "kvm_xive_cpu_connect")
    resets = [f["srcno"] for n, f in events[:first_cpu] if n == "kvm_xive_source_reset"]
    claims = [f["lisn"] for n, f in events[:first_cpu] if n == "spapr_xive_claim_irq"]
    # the IPIs are claimed before the device is connected and reset with it; the
    # event sources claimed after that are reset one by one as they are claimed
    assert resets == claims and resets == session.pic_lisns()[: len(resets)]
    for i, (name, fields) in enumerate(events[:first_cpu]):
        if name == "spapr_xive_claim_irq" and fields["lisn"] >= 0x1000:
            assert events[i + 1] == ("kvm_xive_source_reset", {"srcno": fields["lisn"]})
    assert [f["id"] for n, f in events if n == "kvm_xive_cpu_connect"] == [0, 1, 2, 3]
    start = session.mark()
    session.run("system_reset")
    session.machine.sched.run_for(3 * S)
    assert not [n for n, _ in session.events(start) if n.startswith("kvm_xive")], (
        "XIVE-only: the device stays connected over a reset"
    )


def test_in_kernel_xics_traces_nothing_of_the_interrupt_path() -> None:
    runs = {}
    for name, argv in (("tcg", ["-cpu", "POWER8"]), ("kvm", ["-enable-kvm", "-cpu", "host"])):
        extra = ["-host-cpu", "POWER8", "-M", "pseries,cap-ccf-assist=off"] if name == "kvm" else []
        session = Session(["-M", "pseries", *argv, *extra])
        start = session.mark()
        session.plug(4, "c1")
        assert "CPU(s):              5" in session.run("guest lscpu")
        runs[name] = session.events(start)
    assert any(n.startswith("xics_") for n, _ in runs["tcg"])
    assert not [n for n, _ in runs["kvm"] if n.startswith(("xics_", "xive_", "kvm_"))]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-accel", "kvm,kernel-irqchip=foo"],
            "qemu-system-ppc64: -accel kvm,kernel-irqchip=foo: "
            "Parameter 'kernel-irqchip' does not accept value 'foo'",
        ),
        (
            ["-enable-kvm", "-M", "pseries,kernel_irqchip=yes"],
            "qemu-system-ppc64: can't apply global kvm-accel.kernel-irqchip=yes: "
            "Parameter 'kernel-irqchip' does not accept value 'yes'",
        ),
        (
            ["-accel", "kvm,kernel-irqchip=split"],
            "qemu-system-ppc64: kernel_irqchip split mode not supported on pseries",
        ),
    ],
)
def test_kernel_irqchip_values_are_checked(args: list[str], message: str) -> None:
    argv = [sys.executable, "-m", "spapr", "-M", "pseries", "-cpu", "host", *args]
    done = subprocess.run([*argv, "-S"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == message


def test_the_sugar_is_ignored_under_tcg_as_qemu_does() -> None:
    """Real QEMU 7.2 starts with ``-machine pseries,kernel_irqchip=foo`` under TCG (the
    value is a property of the KVM accelerator only)."""
    assert last_line(Session(["-M", "pseries,kernel_irqchip=foo", *TCG])) == "irqchip: emulated"
