"""The reference guest in XIVE exploitation mode on POWER9/POWER10, as Linux drives it.

Expected values come from the recording of a real Linux 6.12 guest under QEMU 7.2
on POWER9 (tests/data/guest_oracle and its console: "xive: Using IRQ range [0-3]",
priority 6, 64 KiB queues, the event sources as Linux interrupts 17 and 23), and
from Linux's sysdev/xive and QEMU's spapr_xive.c as facts: which hcall, which ESB
offset (0xc00 sets PQ=00 and unmasks, 0xd00 sets PQ=01 and masks), which TIMA
access (a 2-byte load at 0xc10 acknowledges, a 1-byte store at 0x11 sets the
CPPR), in which order around start-cpu and stop-self.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from guest import LinuxGuest
from guest.cas import OV5_XIVE_EXPLOIT, ov5_byte, ov5_mask
from machine.board import build as cli
from machine.migration import replay as mig
from machine.migration import vmstate
from rtas.hcalls import MMIO_LOAD, MMIO_STORE, Hcall
from rtas.tokens import service_name
from rtas.xive_abi import ESB_SET_PQ_00, ESB_SET_PQ_01, TM_SPC_ACK_OS_REG
from spapr.trace import TraceEvent
from spapr.xive import (
    EAS_END_DATA_MASK,
    EAS_MASKED,
    EAS_VALID,
    END_W0_UCOND_NOTIFY,
    END_W0_VALID,
    ESB_SHIFT,
    XIVE_HCALLS,
)

S = 1_000_000_000
COMMON = "-m 1G -nodefaults -S -seed 1".split()
ONE_OF_FOUR = "-smp 1,cores=4,threads=1,maxcpus=4".split()
EPOW, HOTPLUG = 0x1000, 0x1001
#: Linux interrupt numbers of the event sources in the recorded POWER9 guest
#: (/proc/interrupts: "17: XIVE-IRQ 4096 Edge RAS_EPOW", "23: XIVE-IRQ 4097 Edge RAS_HOTPLUG").
EPOW_VIRQ, HOTPLUG_VIRQ = 17, 23
#: Linux's priority: the highest QEMU does not reserve (ibm,plat-res-int-priorities 7..).
PRIORITY = 6
#: The recorded guest's console lines of its XIVE driver, in order.
RECORDED_XIVE_LINES = [
    "xive: Using IRQ range [0-3]",
    "xive: Interrupt handling initialized with spapr backend",
    "xive: Using priority 6 for all interrupts",
    "xive: Using 64kB queues",
]


def boot(cpu: str, guest: LinuxGuest, smp: list[str] = ONE_OF_FOUR) -> Any:
    argv = ["-M", "pseries", "-cpu", cpu, *smp, *COMMON, "-guest", "none"]
    machine = cli.build_machine(argv, io.StringIO())
    machine.load_guest(guest)
    machine.reset()
    machine.sched.run_for(3 * S)
    assert guest.booted
    return machine


Op = tuple[Any, ...]


def record(machine: Any) -> list[tuple[int, Op]]:
    """Every platform operation the guest makes from now on, with the vCPU making it.

    Wraps the machine's hypercall entry (what the scheduler calls for a vCPU's hcalls
    and loads and stores to device pages) and names each operation: an H_INT_* hcall
    with its arguments, an ESB or TIMA access by LISN or TIMA offset, an RTAS call by
    its service name.
    """
    ops: list[tuple[int, Op]] = []
    xive = machine.xive
    inner = machine.sched._hcall

    def named(number: int, args: tuple[Any, ...]) -> Op | None:
        a = [int(x) for x in args]
        if number == Hcall.KVMPPC_H_RTAS:
            return ("rtas", service_name(machine.memory.ld32(a[0])))
        if number in (MMIO_LOAD, MMIO_STORE):
            kind = "load" if number == MMIO_LOAD else "store"
            last = a[1] if number == MMIO_LOAD else a[2]
            if xive.tm_base <= a[0] < xive.tm_base + xive.tima_length:
                return (f"tima_{kind}", (a[0] - xive.tm_base) & 0xFFF, last)
            offset = a[0] - xive.vc_base
            return (f"esb_{kind}", offset >> ESB_SHIFT, offset & 0xFFF)
        if number in XIVE_HCALLS:
            return (Hcall(number).name, *a)
        return None

    def hcall(vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        op = named(number, args)
        if op is not None:
            ops.append((vcpu_id, op))
        return inner(vcpu_id, number, args)

    machine.sched._hcall = hcall
    return ops


def on(ops: list[tuple[int, Op]], vcpu: int) -> list[Op]:
    """The operations one vCPU made."""
    return [op for v, op in ops if v == vcpu]


def eas(machine: Any, lisn: int) -> tuple[bool, bool, int, int]:
    """(valid, masked, END index, EISN) of a source."""
    word = machine.xive.eat[lisn]
    return (
        bool(word & EAS_VALID),
        bool(word & EAS_MASKED),
        (word >> 32) & 0xFF_FFFF,
        word & EAS_END_DATA_MASK,
    )


TIMA_CPPR = 0x10 + 1  # the OS ring's CPPR byte
GET_QUEUE_INFO = Hcall.H_INT_GET_QUEUE_INFO.name
SET_QUEUE_CONFIG = Hcall.H_INT_SET_QUEUE_CONFIG.name
GET_SOURCE_INFO = Hcall.H_INT_GET_SOURCE_INFO.name
SET_SOURCE_CONFIG = Hcall.H_INT_SET_SOURCE_CONFIG.name


@pytest.mark.parametrize("cpu", ["POWER9", "POWER10"])
def test_cas_asks_for_xive_and_the_guest_sets_it_up(cpu: str) -> None:
    guest = LinuxGuest()
    machine = boot(cpu, guest)
    assert guest.features.xive and machine.xive_active and machine.xive.exploited
    vec5 = guest.kernel.features.ov5
    assert vec5[ov5_byte(OV5_XIVE_EXPLOIT)] & 0xC0 == ov5_mask(OV5_XIVE_EXPLOIT)
    dmesg = [line.split("] ", 1)[1] for line in guest.dmesg()]
    assert [ln for ln in dmesg if ln.startswith("xive: ")] == RECORDED_XIVE_LINES
    # the event sources: routed to CPU 0's END at priority 6, with Linux's numbers as EISN
    end0 = 0 * 8 + PRIORITY
    assert eas(machine, EPOW) == (True, False, end0, EPOW_VIRQ)
    assert eas(machine, HOTPLUG) == (True, False, end0, HOTPLUG_VIRQ)
    assert machine.xive.source.pq[EPOW] == machine.xive.source.pq[HOTPLUG] == 0b00
    # the boot CPU's queue (always notify, 64 KiB) and its IPI: the first LISN of the range
    end = machine.xive.endt[end0]
    assert end[0] & END_W0_VALID and end[0] & END_W0_UCOND_NOTIFY
    assert eas(machine, 0)[:3] == (True, False, end0)
    assert machine.xive.source.pq[0] == 0b00
    assert machine.xive.tctxs[0].cppr == 0xFF
    # and no XICS RTAS call (the recording of the real POWER9 guest has none)
    assert not any(r.service.startswith("ibm,") and "xive" in r.service for r in guest.rtas_trace)


@pytest.mark.parametrize("cpu", ["POWER9", "POWER10"])
def test_xive_off_keeps_xics(cpu: str) -> None:
    guest = LinuxGuest(xive_off=True)
    machine = boot(cpu, guest)
    assert not guest.features.xive and not machine.xive_active
    services = [r.service for r in guest.rtas_trace]
    assert services.count("ibm,int-on") == 2  # EPOW and hot-plug, through XICS
    assert not any(line for line in guest.dmesg() if "xive:" in line)


def test_power8_stays_xics() -> None:
    guest = LinuxGuest()
    machine = boot("POWER8", guest)
    assert not guest.features.xive and machine.xive is None
    assert [r.service for r in guest.rtas_trace].count("ibm,int-on") == 2


def test_hot_plugged_cpu_gets_queue_and_ipi_before_start_cpu() -> None:
    guest = LinuxGuest()
    machine = boot("POWER9", guest)
    ops = record(machine)
    machine.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1})
    machine.sched.run_for(S)
    assert guest.online_cpus() == [0, 1]
    cpu0 = on(ops, 0)
    start = cpu0.index(("rtas", "start-cpu"))
    at = cpu0.index((GET_QUEUE_INFO, 0, 1, PRIORITY))
    ipi = 1  # the next free LISN of "Using IRQ range [0-3]"
    qpage = cpu0[at + 1][4]
    # xive_smp_prepare_cpu, then smp_startup_cpu's two RTAS calls
    assert cpu0[at:start] == [
        (GET_QUEUE_INFO, 0, 1, PRIORITY),
        (SET_QUEUE_CONFIG, 1, 1, PRIORITY, qpage, 16),  # always notify, 64 KiB
        (GET_SOURCE_INFO, 0, ipi),
        (SET_SOURCE_CONFIG, 2, ipi, 1, PRIORITY, guest.kernel.xive.ipi_virq),  # SET_EISN
        ("esb_load", ipi, ESB_SET_PQ_00),  # unmask
        ("rtas", "query-cpu-stopped-state"),
    ]
    assert qpage % (1 << 16) == 0, "a naturally aligned queue page"
    # the new CPU's first operation: CPPR 0xff (xive_smp_setup_cpu)
    assert on(ops, 1)[0] == ("tima_store", TIMA_CPPR, 0xFF)
    assert eas(machine, ipi)[:3] == (True, False, 1 * 8 + PRIORITY)
    assert machine.xive.tctxs[1].cppr == 0xFF


def test_hot_plug_interrupt_goes_through_xive() -> None:
    """Pulse, END, presenter; the guest acknowledges, reads the queue, EOIs, CPPR 0xff."""
    guest = LinuxGuest()
    machine = boot("POWER9", guest)
    events: list[TraceEvent] = []
    machine.trace.subscribe(events.append, ["spapr_xive_set_irq", "xive_*", "rtas_call"])
    ops = record(machine)
    machine.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1})
    machine.sched.run_for(S)
    assert [e.name for e in events[:6]] == [
        "spapr_xive_set_irq",  # val=1: the hot-plug source triggers (PQ 00 -> 10)
        "xive_router_end_notify",  # EAS -> END 0/6: the EISN goes into the queue
        "xive_presenter_notify",  # the NVT of vCPU 0
        "xive_tctx_notify",  # IPB, PIPR 6 < CPPR 0xff: the line rises
        "spapr_xive_set_irq",  # val=0
        "xive_tctx_accept",  # the guest acknowledges (below)
    ]
    assert events[1].fields["end_data"] == HOTPLUG_VIRQ
    cpu0 = on(ops, 0)
    check = cpu0.index(("rtas", "check-exception"))
    assert cpu0[: check + 3] == [
        ("tima_load", TM_SPC_ACK_OS_REG, 2),  # acknowledge
        ("rtas", "check-exception"),  # the handler
        ("esb_load", HOTPLUG, ESB_SET_PQ_00),  # EOI: PQ 10 -> 00
        ("tima_store", TIMA_CPPR, 0xFF),  # the queue is empty: CPPR back to 0xff
    ]
    ack = next(e for e in events if e.name == "xive_tctx_tm_read")
    assert ack.fields["val"] == 0x8000 | PRIORITY  # NSR: OS exception; CPPR 6
    assert machine.xive.source.pq[HOTPLUG] == 0b00


def test_offline_cpu_tears_down_before_stop_self() -> None:
    guest = LinuxGuest()
    machine = boot("POWER9", guest)
    machine.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1})
    machine.sched.run_for(S)
    ops = record(machine)
    machine.device_del("core1")
    machine.sched.run_for(S)
    assert guest.online_cpus() == [0]
    dying = [op for op in on(ops, 1) if op[0] != "tima_load"]
    ipi, ipi_virq = 1, guest.kernel.xive.ipi_virq
    stop = dying.index(("rtas", "stop-self"))
    # (before: the stopper's wake-up IPI, taken and EOId on this CPU)
    assert dying[stop - 8 : stop + 1] == [
        ("tima_store", TIMA_CPPR, 0),  # xive_smp_disable_cpu: CPPR 0
        ("tima_store", TIMA_CPPR, 0xFF),  # the flush finds the queue empty
        ("tima_store", TIMA_CPPR, 0xFF),  # and CPPR is re-enabled
        ("esb_store", 0, 0),  # "dead": an IPI to CPU 0 (a store to LISN 0's trigger page)
        ("tima_store", TIMA_CPPR, 0),  # xive_teardown_cpu: CPPR 0
        ("esb_load", ipi, ESB_SET_PQ_01),  # mask the IPI
        (SET_SOURCE_CONFIG, 2, ipi, 1, 0xFF, ipi_virq),  # unroute it
        (SET_QUEUE_CONFIG, 0, 1, PRIORITY, 0, 0),  # reset the queue
        ("rtas", "stop-self"),
    ]
    assert eas(machine, ipi)[:2] == (True, True)
    assert not machine.xive.endt[1 * 8 + PRIORITY][0] & END_W0_VALID
    assert 1 not in machine.xive.tctxs
    # the LISN is free again: the next CPU to come gets it
    machine.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1})
    machine.sched.run_for(S)
    assert guest.online_cpus() == [0, 1]
    assert eas(machine, ipi)[:3] == (True, False, 1 * 8 + PRIORITY)


def test_event_source_on_a_dying_cpu_moves() -> None:
    """Two CPUs at boot: Linux's target picking puts the hot-plug source on CPU 1."""
    guest = LinuxGuest()
    machine = boot("POWER9", guest, smp="-smp 2,cores=4,threads=1,maxcpus=4".split())
    assert eas(machine, EPOW)[2] == 0 * 8 + PRIORITY
    assert eas(machine, HOTPLUG)[2] == 1 * 8 + PRIORITY
    ops = record(machine)
    guest.request_cpu_offline(1)  # echo 0 > /sys/devices/system/cpu/cpu1/online
    machine.sched.run_for(2 * S)
    assert guest.online_cpus() == [0]
    # the dying CPU moved it (xive_irq_set_affinity) before anything else
    moves = [op for op in on(ops, 1) if op[0] == SET_SOURCE_CONFIG]
    assert moves[0] == (SET_SOURCE_CONFIG, 2, HOTPLUG, 0, PRIORITY, HOTPLUG_VIRQ)
    assert eas(machine, HOTPLUG)[:3] == (True, False, 0 * 8 + PRIORITY)
    machine.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core2", "core-id": 2})
    machine.sched.run_for(S)
    assert 2 in guest.online_cpus()


@pytest.mark.parametrize("after_ns", [5_000, 30_000, 70_000])
def test_migration_mid_handshake_in_xive_mode_continues(after_ns: int) -> None:
    """Migrated part-way through an add (XIVE state in the stream), the target finishes it."""
    argv = ["-M", "pseries", "-cpu", "POWER9", *ONE_OF_FOUR, "-m", "1G", "-nodefaults"]
    argv += ["-seed", "1", "-guest", "linux+event-scan=off"]
    source = cli.build_machine(argv, io.StringIO())
    source.reset()
    source.sched.run_for(3 * S)
    source.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1})
    source.sched.run_for(after_ns)
    assert source.guest.online_cpus() == [0], "still mid-handshake"
    stream = mig.capture(source)
    assert "spapr-xive" in vmstate.state_sections(source)
    target = mig.replay(stream, stream.argv)
    vmstate.verify(stream, target)
    assert target.xive_active
    target.sched.run_for(S)
    source.sched.run_for(S)
    assert target.guest.online_cpus() == source.guest.online_cpus() == [0, 1]
    assert vmstate.state_sections(target) == vmstate.state_sections(source)
    assert eas(target, 1)[:3] == (True, False, 1 * 8 + PRIORITY)
