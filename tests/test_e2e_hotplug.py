"""End to end: device_add until the CPUs are online in the guest, device_del until DEVICE_DELETED.

SMT1 under TCG (the oracle configurations), SMT4 and SMT8 under the modeled KVM
(QEMU 7.2 refuses SMT under TCG), NUMA configurations and several cores in a row.
Once the machine is quiet the guest's view and the machine's must agree: every
plugged core's DRC is configured and all its threads are online in the guest with
the right hardware ids and NUMA node; every empty slot's DRC is unusable and
unknown to the guest; query-cpus-fast lists exactly the machine's threads.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from guest import GuestTiming, LinuxGuest
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from machine.monitor.control import MachineControl
from spapr.drc import DRCState

S = 1_000_000_000
COMMON = "-m 1G -nographic -display none -nodefaults -seed 1 -guest none".split()
CONFIGS = {
    "smt1-p9": ("-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4", 1),
    "smt1-p8e": ("-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4", 1),
    "smt4-kvm": ("-enable-kvm -M pseries -cpu host -smp 4,cores=4,threads=4,maxcpus=16", 4),
    "smt8-kvm-p9": ("-enable-kvm -M pseries -cpu host -smp 8,cores=2,threads=8,maxcpus=16", 8),
    # A POWER8 KVM host lacks the count-cache flush assist QEMU 7.2 asks for by default.
    "smt8-kvm-p8": (
        "-enable-kvm -host-cpu POWER8 -M pseries,cap-ccf-assist=off -cpu host "
        "-smp 8,cores=2,threads=8,maxcpus=16",
        8,
    ),
    "numa": (
        "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 "
        "-object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M "
        "-numa node,nodeid=0,cpus=0,cpus=2,memdev=m0 -numa node,nodeid=1,cpus=1,cpus=3,memdev=m1",
        1,
    ),
}


def boot(config: str) -> tuple[PseriesMachine, LinuxGuest]:
    argv, _threads = CONFIGS[config]
    machine = build_machine(argv.split() + COMMON, io.StringIO())
    guest = LinuxGuest(timing=GuestTiming(event_scan=False))
    machine.load_guest(guest)
    machine.reset()
    machine.sched.run_for(3 * S)
    assert guest.booted
    return machine, guest


def views_agree(machine: PseriesMachine, guest: LinuxGuest) -> None:
    """The quiet-state agreement between the machine and the guest."""
    machine_hwids = sorted(t.vcpu_id for t in machine.iter_threads())
    guest_hwids = sorted(guest.hwids()[cpu] for cpu in guest.online_cpus())
    assert guest_hwids == machine_hwids
    assert sorted(e["cpu-index"] for e in machine.query_cpus_fast()) == sorted(
        t.cpu_index for t in machine.iter_threads()
    )
    for slot in machine.slots:
        drc = machine._drc_for_core_id(slot.core_id)
        assert drc is not None
        if slot.core is None:
            assert drc.state == DRCState.LOGICAL_UNUSABLE
            continue
        assert drc.state == DRCState.LOGICAL_CONFIGURED
        thread0 = slot.core.threads[0]
        node = guest.tree.find(f"/cpus/{slot.core.model.fw_name}@{thread0.vcpu_id:x}")
        assert node is not None
        assert node["ibm,my-drc-index"].cells() == (drc.index,)
        for thread in slot.core.threads:
            assert not machine.sched.is_halted(thread.vcpu_id) or thread.vcpu_id in guest_hwids
    occupied = [e for e in machine.query_hotpluggable_cpus() if "qom-path" in e]
    assert len(occupied) == len(machine.cores)


def core_type(machine: PseriesMachine) -> str:
    return machine.core_type


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_add_then_remove_each_free_slot(config: str) -> None:
    machine, guest = boot(config)
    _argv, threads = CONFIGS[config]
    views_agree(machine, guest)
    free = [s.core_id for s in machine.slots if s.core is None]
    assert free
    before = set(guest.online_cpus())
    for n, core_id in enumerate(free):
        machine.device_add({"driver": core_type(machine), "id": f"hot{n}", "core-id": core_id})
        machine.sched.run_for(2 * S)
        views_agree(machine, guest)
    assert len(guest.online_cpus()) == len(before) + threads * len(free)
    machine.qmp_events.clear()
    for n in reversed(range(len(free))):
        machine.device_del(f"hot{n}")
        machine.sched.run_for(2 * S)
        views_agree(machine, guest)
    deleted = [e.data for e in machine.qmp_events if e.name == "DEVICE_DELETED"]
    cores_deleted = [d for d in deleted if "device" in d]
    assert [d["device"] for d in cores_deleted] == [f"hot{n}" for n in reversed(range(len(free)))]
    # per thread: its interrupt presenters (ICP, plus XIVE's TCTX in dual mode) and
    # the thread itself; then the core
    presenters = 2 if machine._xive_enabled() else 1
    assert len(deleted) == len(free) * (threads * (presenters + 1) + 1)
    assert set(guest.online_cpus()) == before


def test_smt4_add_makes_each_thread_online_in_kernel_order() -> None:
    machine, guest = boot("smt4-kvm")
    mark = len(guest.rtas_trace)
    machine.device_add({"driver": "host-spapr-cpu-core", "id": "core4", "core-id": 12})
    machine.sched.run_for(2 * S)
    calls = [(r.service, r.args, r.rets) for r in guest.rtas_trace[mark:]]
    x = 0x1000000C
    assert calls[0][0] == "check-exception"
    rest = [c for c in calls[1:] if c[0] != "ibm,configure-connector"]
    assert rest[:3] == [
        ("get-sensor-state", (9003, x), (0, 2)),
        ("set-indicator", (9003, x, 1), (0,)),
        ("set-indicator", (9001, x, 1), (0,)),
    ]
    starts = rest[3:]
    assert [(s[0], s[1][0]) for s in starts] == [
        item
        for hwid in (12, 13, 14, 15)
        for item in (("query-cpu-stopped-state", hwid), ("start-cpu", hwid))
    ]
    assert all(s[2][0] == 0 for s in starts)
    lscpu = guest.lscpu()
    assert "CPU(s):              8" in lscpu
    assert "On-line CPU(s) list: 0-7" in lscpu
    assert "Thread(s) per core:  4" in lscpu
    assert "Core(s) per socket:  2" in lscpu


def test_numa_hot_added_core_lands_on_its_node() -> None:
    machine, guest = boot("numa")
    machine.device_add({"driver": core_type(machine), "id": "core3", "core-id": 3})
    machine.sched.run_for(2 * S)
    lines = guest.numactl_hardware()
    assert "node 1 cpus: 1 2" in lines
    added = [t for t in machine.iter_threads() if t.vcpu_id == 3]
    assert added and added[0].node_id == 1


def run_scenario() -> tuple[Any, ...]:
    machine, guest = boot("smt1-p8e")
    machine.device_add({"driver": core_type(machine), "id": "core2", "core-id": 2})
    machine.sched.run_for(2 * S)
    machine.device_del("core2")
    machine.sched.run_for(2 * S)
    return machine.trace.to_jsonl(), guest.dmesg()


def test_trace_is_identical_for_identical_runs() -> None:
    first, second = run_scenario(), run_scenario()
    assert first == second
    assert '"event":"rtas_call"' in first[0]


def boot_with(argv: str, guest_option: str) -> tuple[PseriesMachine, Any]:
    machine = build_machine(argv.split() + COMMON[:-2] + ["-guest", guest_option], io.StringIO())
    machine.reset()
    machine.sched.run_for(3 * S)
    assert machine.guest is not None and machine.guest.booted
    return machine, machine.guest


def test_guest_abandoning_a_walk_leaves_the_connector_isolated_and_the_machine_running() -> None:
    machine, guest = boot_with(CONFIGS["smt1-p8e"][0], "linux+abandon-configure=5+event-scan=off")
    x = 0x10000002
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    machine.sched.run_for(2 * S)
    walk = [r for r in guest.rtas_trace if r.service == "ibm,configure-connector"]
    assert [r.rets[0] for r in walk] == [2, 3, 3, 3, 3]
    assert machine.drcs.get(x).state == DRCState.LOGICAL_UNISOLATE
    assert guest.online_cpus() == [0, 1]
    # The REMOVE finds no node in the guest's tree ("Cannot find CPU"), so Linux signals
    # the failure by UNISOLATE on the isolated connector: QEMU takes it as a rejection.
    machine.qmp_events.clear()
    machine.device_del("core2")
    machine.sched.run_for(2 * S)
    assert [(e.name, dict(e.data)) for e in machine.qmp_events] == [
        ("DEVICE_UNPLUG_GUEST_ERROR", {"device": "core2", "path": "/machine/peripheral/core2"})
    ]
    assert not machine.drcs.get(x).unplug_requested
    # The machine keeps running; at reset the attached core becomes ready (as if
    # cold-plugged) and the rebooted guest brings it up with the boot CPUs.
    machine.system_reset()
    assert machine.drcs.get(x).state == DRCState.LOGICAL_CONFIGURED
    machine.sched.run_for(3 * S)
    assert guest.booted and guest.online_cpus() == [0, 1, 2]


def test_guest_with_wrong_indices_gets_qemus_codes_and_nothing_changes() -> None:
    machine, guest = boot_with(CONFIGS["smt1-p8e"][0], "linux+wrong-indices+event-scan=off")
    before = [(d.index, d.state, d.device is not None) for d in machine.drcs]
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    machine.sched.run_for(2 * S)
    wrong = [r for r in guest.rtas_trace if r.args and r.args[-1] == 0x10000102]
    assert wrong and all(r.rets[0] == -3 for r in wrong)
    # the core's own connector was never acquired: still unusable, device attached
    drc = machine.drcs.get(0x10000002)
    assert drc.state == DRCState.LOGICAL_UNUSABLE and drc.device is not None
    others = [
        (d.index, d.state, d.device is not None) for d in machine.drcs if d.index != drc.index
    ]
    assert others == [b for b in before if b[0] != drc.index]
    machine.device_del("core2")  # never acquired: released at once
    assert [e.data.get("device") for e in machine.qmp_events if e.name == "DEVICE_DELETED"][
        -1
    ] == "core2"


def test_a_rejected_unplug_is_reported_on_stderr_as_qemu_does() -> None:
    """drc_unisolate_logical: error_report "Device hotunplug rejected by the guest for device
    ID" (to stderr: no monitor is current during a guest's RTAS call), only for a device with
    an id, beside the DEVICE_UNPLUG_GUEST_ERROR event (QEMU 7.2 hw/ppc/spapr_drc.c)."""
    machine, _ = boot_with(CONFIGS["smt1-p8e"][0], "linux+abandon-configure=5+event-scan=off")
    stderr: list[str] = []
    control = MachineControl(machine, warn=stderr.append)
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "core-id": 3})
    machine.sched.run_for(2 * S)
    control.device_del("core2")
    control.device_del(machine.cores[-1].qom_path)
    machine.sched.run_for(2 * S)
    rejected = [e for e in machine.qmp_events if e.name == "DEVICE_UNPLUG_GUEST_ERROR"]
    assert len(rejected) == 2
    assert stderr == ["qemu-system-ppc64: Device hotunplug rejected by the guest for device core2"]
