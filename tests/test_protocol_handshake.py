"""The whole DR handshake through guest memory, call by call, on a real machine object.

A scripted guest makes the RTAS calls of protocol.md §7.1 and §7.2 (what Linux 6.1
does) and the test checks every status and every state QEMU 7.2 would produce, the
116-byte event logs, the configure-connector walk (which must rebuild the node QEMU
builds for a cold-plugged core, from the oracle dumps), the DEVICE_DELETED events
of the release, CAS routing, and the defect sequences that crash QEMU 7.2 itself.
"""

from __future__ import annotations

import io
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from guest_calls import CAS_FDT_BUF, CAS_VECTOR, ScriptedGuest

from fdt import from_dtb
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from rtas import decode_event_log
from rtas.codes import ConfigureConnector, EventMask
from rtas.errlog import HotplugAction, HotplugResource
from rtas.hcalls import EXECUTE, Hcall
from spapr.drc import DRCState
from spapr.errors import QemuError
from spapr.ovec import OV5_HP_EVT, OptionVector

DATA = Path(__file__).parent / "data"
COMMON = "-m 1G -nographic -display none -nodefaults -S -seed 1 -guest none".split()
P8E = "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4".split()
P9 = "-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4".split()
ENTRY = 0x4000


def idle_program(vcpu: int, entry: int, r3: int) -> Generator[Any, Any, None]:
    """A started thread that computes a little, then idles in H_CEDE forever."""
    yield (EXECUTE, 1000)
    while True:
        yield (Hcall.H_CEDE,)


def make_machine(argv: list[str]) -> PseriesMachine:
    machine = build_machine(argv + COMMON, io.StringIO())
    machine.guest_program_factory = idle_program
    machine.reset()
    return machine


def cas_vector(memory: Any, ov5: OptionVector, pvrs: list[tuple[int, int]]) -> None:
    """Write a CAS table: (mask, pvr) pairs, a terminator, then option vectors 1..5."""
    addr = CAS_VECTOR
    for mask, pvr in pvrs:
        memory.st32(addr, mask)
        memory.st32(addr + 4, pvr)
        addr += 8
    memory.st32(addr, 0)
    memory.st32(addr + 4, 0xFFFFFFFF)  # ~mask & pvr != 0: terminator
    addr += 8
    vectors = [bytes([0x80, 0x00, 0x80]), b"\0", b"\0", b"\0", ov5.to_bytes()]
    memory.st8(addr, len(vectors) - 1)
    addr += 1
    for data in vectors:
        memory.st8(addr, len(data) - 1)
        memory.write(addr + 1, data)
        addr += 1 + len(data)


def negotiate_hp_evt(machine: PseriesMachine) -> int:
    ov5 = OptionVector()
    ov5.set(OV5_HP_EVT)
    pvr = machine.model.pvr
    cas_vector(machine.memory, ov5, [(0xFFFFFFFF, pvr)])
    return int(machine._hcall(0, Hcall.KVMPPC_H_CAS, (CAS_VECTOR, CAS_FDT_BUF, 0x100000)))


def hotplug_log(log: bytes) -> tuple[HotplugResource, HotplugAction, int]:
    decoded = decode_event_log(log)
    assert decoded.hotplug is not None
    hp = decoded.hotplug
    return hp.resource, hp.action, hp.drc_index


def acquire_and_configure(guest: ScriptedGuest, index: int) -> tuple[list[int], Any]:
    assert guest.rtas("get-sensor-state", [9003, index], 2) == (0, 2)
    assert guest.status("set-indicator", [9003, index, 1]) == 0
    assert guest.status("set-indicator", [9001, index, 1]) == 0
    return guest.configure_connector(index)


@pytest.mark.parametrize(
    ("argv", "oracle", "core_type", "core_id"),
    [
        (P8E, "p8e_coldplug_core2", "power8e_v2.1-spapr-cpu-core", 2),
        (P9, "p9_coldplug_core3", "power9_v2.0-spapr-cpu-core", 3),
    ],
)
def test_hot_add_walk_rebuilds_qemus_cold_plugged_node(
    argv: list[str], oracle: str, core_type: str, core_id: int
) -> None:
    machine = make_machine(argv)
    guest = ScriptedGuest(machine)
    index = 0x10000000 | core_id
    machine.device_add({"driver": core_type, "id": f"core{core_id}", "core-id": core_id})
    # Before CAS the hotplug entry travels through the EPOW source.
    assert guest.check_exception(EventMask.HOT_PLUG)[0] == 1
    status, log = guest.check_exception(EventMask.EPOW)
    assert status == 0
    assert hotplug_log(log) == (HotplugResource.CPU, HotplugAction.ADD, index)
    codes, node = acquire_and_configure(guest, index)
    assert codes[0] == ConfigureConnector.NEXT_CHILD
    assert codes[-1] == ConfigureConnector.SUCCESS
    assert set(codes[1:-1]) == {ConfigureConnector.NEXT_PROPERTY}
    assert machine.drcs.get(index).state == DRCState.LOGICAL_CONFIGURED
    qemu_root = from_dtb((DATA / "dtb" / f"{oracle}.dtb").read_bytes()).root
    qemu_node = qemu_root.find(f"/cpus/{node.name}")
    assert qemu_node is not None
    # QEMU 6.0+ adds "name" (the full node name) to the fragment only; it comes first.
    assert node.properties[0].name == "name"
    assert node.properties[0].value == node.name.encode() + b"\0"
    node.remove_property("name")
    assert node == qemu_node


def test_full_add_then_remove_with_qemus_codes() -> None:
    machine = make_machine(P8E)
    guest = ScriptedGuest(machine)
    assert negotiate_hp_evt(machine) == 0
    index = 0x10000002
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    status, log = guest.check_exception(EventMask.HOT_PLUG)
    assert status == 0
    assert hotplug_log(log) == (HotplugResource.CPU, HotplugAction.ADD, index)
    codes, _node = acquire_and_configure(guest, index)
    assert codes[-1] == 0
    # The new thread is halted until start-cpu; QEMU reports 0 (STOPPED).
    assert guest.rtas("query-cpu-stopped-state", [2], 2) == (0, 0)
    assert guest.status("start-cpu", [2, ENTRY, 2]) == 0
    assert guest.rtas("query-cpu-stopped-state", [2], 2) == (0, 2)
    assert guest.status("start-cpu", [2, ENTRY, 2]) == -1  # not halted
    machine.sched.run_for(10_000)

    machine.qmp_events.clear()
    machine.device_del("core2")
    assert machine.qmp_events == []  # pending: the guest owns the core
    status, log = guest.check_exception(EventMask.HOT_PLUG)
    assert hotplug_log(log) == (HotplugResource.CPU, HotplugAction.REMOVE, index)
    ScriptedGuest(machine, vcpu=2).rtas("stop-self", [], 1)
    assert guest.rtas("query-cpu-stopped-state", [2], 2) == (0, 0)
    assert guest.rtas("get-sensor-state", [9003, index], 2) == (0, 1)
    assert guest.status("set-indicator", [9001, index, 0]) == 0
    assert machine.drcs.get(index).state == DRCState.LOGICAL_AVAILABLE
    assert guest.status("set-indicator", [9003, index, 0]) == 0
    assert [(e.name, dict(e.data)) for e in machine.qmp_events] == [
        ("DEVICE_DELETED", {"path": "/machine/peripheral/core2/thread[0]/icp"}),
        ("DEVICE_DELETED", {"path": "/machine/peripheral/core2/thread[0]"}),
        ("DEVICE_DELETED", {"device": "core2", "path": "/machine/peripheral/core2"}),
    ]
    drc = machine.drcs.get(index)
    assert drc.state == DRCState.LOGICAL_UNUSABLE and drc.device is None
    assert guest.rtas("get-sensor-state", [9003, index], 2) == (0, 2)
    assert guest.rtas("query-cpu-stopped-state", [2], 2)[0] == -3  # thread gone
    assert "qom-path" not in machine.query_hotpluggable_cpus()[1]


def test_guest_rejection_emits_unplug_guest_error_and_retry_resends() -> None:
    machine = make_machine(P8E)
    guest = ScriptedGuest(machine)
    negotiate_hp_evt(machine)
    index = 0x10000002
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    guest.check_exception(EventMask.HOT_PLUG)
    acquire_and_configure(guest, index)
    machine.device_del("core2")
    guest.check_exception(EventMask.HOT_PLUG)
    machine.qmp_events.clear()
    # Linux >= 5.13 signals a failed removal by UNISOLATE on the configured DRC.
    assert guest.status("set-indicator", [9001, index, 1]) == 0
    assert [(e.name, dict(e.data)) for e in machine.qmp_events] == [
        ("DEVICE_UNPLUG_GUEST_ERROR", {"device": "core2", "path": "/machine/peripheral/core2"})
    ]
    assert not machine.drcs.get(index).unplug_requested
    # A repeated device_del re-sends the REMOVE event (QEMU >= 6.0).
    machine.device_del("core2")
    machine.device_del("core2")
    assert [hotplug_log(guest.check_exception(EventMask.HOT_PLUG)[1])[1] for _ in range(2)] == [
        HotplugAction.REMOVE,
        HotplugAction.REMOVE,
    ]
    assert guest.check_exception(EventMask.HOT_PLUG)[0] == 1


def test_cas_drops_pending_hotplug_events_and_resets_connectors() -> None:
    machine = make_machine(P8E)
    guest = ScriptedGuest(machine)
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    assert len(machine.events) == 1
    assert machine.drcs.get(0x10000002).state == DRCState.LOGICAL_UNUSABLE
    assert negotiate_hp_evt(machine) == 0
    assert len(machine.events) == 0
    # The unconfigured hot-added core is now ready, as if cold-plugged.
    assert machine.drcs.get(0x10000002).state == DRCState.LOGICAL_CONFIGURED
    assert guest.check_exception(EventMask.EPOW | EventMask.HOT_PLUG)[0] == 1
    tree = from_dtb(machine.memory.read(CAS_FDT_BUF + 4, 0x10000)).root
    assert tree.find("/cpus/PowerPC,POWER8@2") is not None
    assert (
        tree.find("/chosen")["ibm,architecture-vec-5"].value
        == OptionVector({OV5_HP_EVT}).dt_value()
    )


def test_cas_refused_while_other_threads_run() -> None:
    machine = make_machine(P8E)
    guest = ScriptedGuest(machine)
    assert guest.status("start-cpu", [1, ENTRY, 1]) == 0
    assert negotiate_hp_evt(machine) == -9005


def test_remove_of_never_acquired_core_completes_at_once() -> None:
    machine = make_machine(P8E)
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    machine.qmp_events.clear()
    machine.device_del("core2")
    assert [e.name for e in machine.qmp_events] == ["DEVICE_DELETED"] * 3
    with pytest.raises(QemuError, match="Device 'core2' not found"):
        machine.device_del("core2")
    # Both ADD and REMOVE stay queued; the guest fails the ADD later (protocol §9.6).
    guest = ScriptedGuest(machine)
    assert guest.check_exception(EventMask.EPOW)[0] == 0
    assert guest.status("set-indicator", [9003, 0x10000002, 1]) == -3


def test_defect_add_del_reset_does_not_crash() -> None:
    """QEMU 7.2 segfaults at this reset; the emulator completes it."""
    machine = make_machine(P8E)
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    machine.device_del("core2")
    machine.qmp_events.clear()
    machine.system_reset()
    assert [e.name for e in machine.qmp_events] == ["RESET"]
    assert machine.drcs.get(0x10000002).state == DRCState.LOGICAL_UNUSABLE
    machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})


def test_defect_device_del_of_a_thread_path_is_refused() -> None:
    """QEMU 7.2 aborts (assertion hotplug_ctrl); the emulator refuses the request."""
    machine = make_machine(P8E)
    path = "/machine/unattached/device[1]/thread[0]"
    with pytest.raises(QemuError, match=r"is not a hotpluggable device") as err:
        machine.device_del(path)
    assert err.value.message == f"{path} is not a hotpluggable device"
    with pytest.raises(QemuError, match="is not a hotpluggable device"):
        machine.device_del(path + "/icp")


def test_defect_vcpu_slots_are_reused_beyond_maxcpus() -> None:
    """QEMU 7.2's TCG aborts once more vCPUs have existed than maxcpus; slots are reused."""
    machine = make_machine(P8E)
    for _ in range(10):
        machine.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
        machine.device_del("core2")
    assert machine.query_hotpluggable_cpus()[1].get("qom-path") is None
    core = machine.device_add(
        {"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2}
    )
    assert [t.vcpu_id for t in core.threads] == [2]


def test_pending_unplug_completes_at_reset_before_the_reset_event() -> None:
    machine = build_machine(
        P8E + ["-device", "power8e_v2.1-spapr-cpu-core,id=core2,core-id=2"] + COMMON, io.StringIO()
    )
    machine.reset()
    machine.device_del("core2")
    machine.device_del("core2")
    assert machine.qmp_events == []
    machine.system_reset()
    assert [e.name for e in machine.qmp_events] == ["DEVICE_DELETED"] * 3 + ["RESET"]
    assert len(machine.events) == 0


def test_cas_refuses_a_buffer_too_small_for_the_tree() -> None:
    machine = make_machine(P8E)
    ov5 = OptionVector({OV5_HP_EVT})
    cas_vector(machine.memory, ov5, [(0xFFFFFFFF, machine.model.pvr)])
    status = machine._hcall(0, Hcall.KVMPPC_H_CAS, (CAS_VECTOR, CAS_FDT_BUF, 64))
    assert status == -4  # H_PARAMETER (QEMU exits here)
    assert machine.ov5_cas.test(OV5_HP_EVT)  # negotiated before the tree was built
