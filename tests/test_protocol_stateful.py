"""Hypothesis: host actions interleaved with arbitrary guest RTAS calls never break the machine.

The state machine drives a real pseries machine with device_add / device_del /
system_reset / CAS from the host side and any RTAS call a buggy or hostile guest
could make (random tokens, argument counts, DRC indexes, sensor types, values,
configure-connector steps out of order, check-exception masks, start-cpu and
stop-self). After every step it checks the invariants of the protocol core:
every connector in a legal state, no core lost or duplicated, every removed core
announced exactly once, only PAPR codes returned, and no queued event naming a
connector that does not exist.
"""

from __future__ import annotations

import io
from collections.abc import Generator
from typing import Any

import hypothesis.strategies as st
from guest_calls import ScriptedGuest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from machine.board.build import build_machine
from rtas import decode_event_log
from rtas.hcalls import EXECUTE, Hcall, HcallReturn
from rtas.tokens import RTAS_SERVICE_NAMES, RtasToken
from spapr.drc import DRCState, DrcType
from spapr.errors import QemuError

ARGV = (
    "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 -m 1G "
    "-nographic -display none -nodefaults -S -seed 1 -guest none"
).split()
CORE = "power8e_v2.1-spapr-cpu-core"
MAX_CORES = 4
BOOT_CORE_PATHS = ("/machine/unattached/device[0]", "/machine/unattached/device[1]")
#: Statuses a QEMU 7.2 RTAS call can leave in rets[0] (configure-connector codes included).
PAPR_STATUSES = {0, 1, 2, 3, 4, -1, -2, -3, -9002, -9003, -9005, -9999}
LOGICAL_STATES = {
    DRCState.LOGICAL_UNUSABLE,
    DRCState.LOGICAL_AVAILABLE,
    DRCState.LOGICAL_UNISOLATE,
    DRCState.LOGICAL_CONFIGURED,
}
PHYSICAL_STATES = {
    DRCState.PHYSICAL_POWERON,
    DRCState.PHYSICAL_UNISOLATE,
    DRCState.PHYSICAL_CONFIGURED,
}
CPU_INDEXES = [0x10000000 | i for i in range(4)]
INDEXES = st.one_of(
    st.sampled_from(CPU_INDEXES),
    st.sampled_from([0x20000000, 0x20000001, 0x40000000, 0x4000006D]),
    st.integers(0, 0xFFFFFFFF),
)
ENTRY = 0x4000


def idle_program(vcpu: int, entry: int, r3: int) -> Generator[Any, Any, None]:
    while True:
        yield (EXECUTE, 500)
        yield (Hcall.H_CEDE, 10_000)


class HotplugProtocol(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine = build_machine(ARGV, io.StringIO())
        self.machine.guest_program_factory = idle_program
        self.machine.reset()
        self.guest = ScriptedGuest(self.machine)
        self.deleted_paths: list[str] = []
        self.machine.event_listeners.append(self._on_event)
        self.live_cores: dict[str, int] = {}
        # The test's own model of the host side: present cores by QOM path, ids by name.
        self.present: dict[str, int] = {BOOT_CORE_PATHS[0]: 0, BOOT_CORE_PATHS[1]: 1}
        self.ids: dict[str, str] = {}

    def _on_event(self, event: Any) -> None:
        if event.name == "DEVICE_DELETED" and "/thread[" not in event.data["path"]:
            path = event.data["path"]
            self.deleted_paths.append(path)
            self.present.pop(path, None)
            self.ids = {dev_id: p for dev_id, p in self.ids.items() if p != path}

    def expected_add_error(self, core_id: int, dev_id: str | None) -> str | None:
        """QEMU 7.2's refusal of this device_add, in its order (tests/data/errors/qmp_errors.json).

        qdev_device_add sets the id before realize, so a duplicate id comes first; then
        the core's realize and spapr_core_pre_plug check the core-id.
        """
        if dev_id is not None and dev_id in self.ids:
            return f"Duplicate device ID '{dev_id}'"
        if core_id < 0:
            return f"Invalid core id {core_id}"
        if core_id >= MAX_CORES:
            return f"core id {core_id} out of range"
        if core_id in self.present.values():
            return f"core {core_id} already populated"
        return None

    def expected_del_error(self, target: str) -> tuple[str, str] | None:
        """QEMU 7.2's refusal of this device_del as (class, text), or None when accepted.

        A pending unplug is accepted again (recorded: "device_del boot-time core 1 again
        while pending").
        """
        path = target if target.startswith("/") else self.ids.get(target)
        if path is None or path not in self.present:
            return "DeviceNotFound", f"Device '{target}' not found"
        if self.present[path] == 0:
            return "GenericError", "Boot CPU core may not be unplugged"
        return None

    # ------------------------------------------------------------- host side

    @rule(core_id=st.integers(-2, 6), dev_id=st.sampled_from(["c1", "c2", "c3", None]))
    def device_add(self, core_id: int, dev_id: str | None) -> None:
        args: dict[str, Any] = {"driver": CORE, "core-id": core_id}
        if dev_id is not None:
            args["id"] = dev_id
        expected = self.expected_add_error(core_id, dev_id)
        try:
            core = self.machine.device_add(args)
        except QemuError as err:
            assert (err.error_class, err.message) == ("GenericError", expected)
            return
        assert expected is None, f"device_add accepted; QEMU refuses it: {expected}"
        self.live_cores[core.qom_path] = core.core_id
        self.present[core.qom_path] = core_id
        if dev_id is not None:
            self.ids[dev_id] = core.qom_path

    @rule(target_id=st.sampled_from(["c1", "c2", "c3", "nope", "/machine/unattached/device[1]",
                                     "/machine/unattached/device[0]",
                                     "/machine/peripheral-anon/device[0]"]))  # fmt: skip
    def device_del(self, target_id: str) -> None:
        expected = self.expected_del_error(target_id)
        try:
            self.machine.device_del(target_id)
        except QemuError as err:
            assert (err.error_class, err.message) == expected
            return
        assert expected is None, f"device_del accepted; QEMU refuses it: {expected}"

    @rule()
    def system_reset(self) -> None:
        self.machine.system_reset()

    @rule(hp_evt=st.booleans())
    def cas(self, hp_evt: bool) -> None:
        from test_protocol_handshake import cas_vector

        from spapr.ovec import OV5_HP_EVT, OptionVector

        ov5 = OptionVector({OV5_HP_EVT} if hp_evt else set())
        cas_vector(self.machine.memory, ov5, [(0xFFFFFFFF, self.machine.model.pvr)])
        from guest_calls import CAS_FDT_BUF, CAS_VECTOR

        self.machine._hcall(0, Hcall.KVMPPC_H_CAS, (CAS_VECTOR, CAS_FDT_BUF, 0x100000))

    @rule(ns=st.integers(0, 200_000))
    def run(self, ns: int) -> None:
        self.machine.sched.run_for(ns)

    # ------------------------------------------------------------- guest side

    def _status(self, rets: tuple[int, ...]) -> None:
        if rets:
            assert rets[0] in PAPR_STATUSES, rets

    @rule(
        sensor=st.sampled_from([9001, 9002, 9003, 9, 0, 0xFFFFFFFF]),
        index=INDEXES,
        value=st.sampled_from([0, 1, 2, 3, 7, 0xFFFFFFFF]),
        nargs=st.sampled_from([3, 2, 4]),
    )
    def set_indicator(self, sensor: int, index: int, value: int, nargs: int) -> None:
        args = [sensor, index, value, 0][:nargs]
        self._status(self.guest.rtas("set-indicator", args, 1))

    @rule(sensor=st.sampled_from([9003, 9001, 9]), index=INDEXES, nret=st.sampled_from([2, 1, 3]))
    def get_sensor_state(self, sensor: int, index: int, nret: int) -> None:
        self._status(self.guest.rtas("get-sensor-state", [sensor, index], nret))

    @rule(index=INDEXES, steps=st.integers(1, 40))
    def configure_connector(self, index: int, steps: int) -> None:
        from guest_calls import WORK_AREA

        self.machine.memory.st32(WORK_AREA, index)
        for _ in range(steps):
            rets = self.guest.rtas("ibm,configure-connector", [WORK_AREA, 0], 1)
            self._status(rets)
            if rets[0] not in (2, 3, 4):
                break

    @rule(mask=st.sampled_from([0x10000000, 0x40000000, 0x50000000, 0, 0xFFFFFFFF]))
    def check_exception(self, mask: int) -> None:
        status, log = self.guest.check_exception(mask)
        assert status in (0, 1)
        if status == 0:
            decoded = decode_event_log(log)
            assert decoded.hotplug is not None
            assert self.machine.drcs.get(decoded.hotplug.drc_index) is not None

    @rule(vcpu=st.integers(0, 5))
    def start_cpu(self, vcpu: int) -> None:
        self._status(self.guest.rtas("start-cpu", [vcpu, ENTRY, vcpu], 1))

    @rule(vcpu=st.integers(0, 5))
    def stop_self(self, vcpu: int) -> None:
        if self.machine.sched.find_vcpu(vcpu) is not None:
            ScriptedGuest(self.machine, vcpu).rtas("stop-self", [], 1)

    @rule(vcpu=st.integers(0, 5))
    def query_stopped(self, vcpu: int) -> None:
        rets = self.guest.rtas("query-cpu-stopped-state", [vcpu], 2)
        self._status(rets)
        if rets[0] == 0:
            assert rets[1] in (0, 2)

    @rule(
        token=st.one_of(st.sampled_from(list(RtasToken)), st.integers(0, 0xFFFFFFFF)),
        args=st.lists(st.integers(0, 0xFFFFFFFF), max_size=8),
        nret=st.integers(0, 4),
    )
    def arbitrary_call(self, token: int, args: list[int], nret: int) -> None:
        if token in (RtasToken.STOP_SELF, RtasToken.IBM_OS_TERM, RtasToken.POWER_OFF,
                     RtasToken.SYSTEM_REBOOT):  # fmt: skip
            return
        name = RTAS_SERVICE_NAMES.get(token, "unknown")  # type: ignore[call-overload]
        rets = self.guest.rtas(
            name if name != "unknown" else "display-character", args, nret, token=token
        )
        self._status(rets)

    # ------------------------------------------------------------- invariants

    @invariant()
    def connectors_in_legal_states(self) -> None:
        for drc in self.machine.drcs:
            legal = PHYSICAL_STATES if drc.type is DrcType.PCI else LOGICAL_STATES
            assert drc.state in legal
            if drc.state == DRCState.LOGICAL_UNUSABLE and drc.type is DrcType.CPU:
                continue
            if drc.type is DrcType.CPU and drc.state != DRCState.LOGICAL_UNUSABLE:
                assert drc.device is not None

    @invariant()
    def cores_neither_lost_nor_duplicated(self) -> None:
        machine = self.machine
        slotted = [s.core for s in machine.slots if s.core is not None]
        assert len(slotted) == len(set(map(id, slotted))) == len(machine.cores)
        assert set(map(id, slotted)) == set(map(id, machine.cores))
        for slot in machine.slots:
            drc = machine._drc_for_core_id(slot.core_id)
            assert drc is not None
            assert drc.device is slot.core
            if slot.core is not None:
                assert machine.qom.resolve(slot.core.qom_path) is not None
                for thread in slot.core.threads:
                    assert machine.sched.find_vcpu(thread.vcpu_id) is not None
        live = {c.qom_path for c in machine.cores}
        for path in list(self.live_cores):
            if path not in live:
                assert path in self.deleted_paths, f"{path} vanished without DEVICE_DELETED"
                self.deleted_paths.remove(path)
                del self.live_cores[path]
        assert not self.deleted_paths or all(p.startswith("/machine/") for p in self.deleted_paths)

    @invariant()
    def queued_events_name_existing_connectors(self) -> None:
        for entry in self.machine.events:
            decoded = decode_event_log(entry.to_bytes())
            assert decoded.hotplug is not None
            assert self.machine.drcs.get(decoded.hotplug.drc_index) is not None

    @invariant()
    def hcall_status_is_papr(self) -> None:
        from guest_calls import ARGS_ADDR

        from rtas import encode_call

        encode_call(self.machine.memory, ARGS_ADDR, 0x9999, [], 1)
        assert self.machine._hcall(0, Hcall.KVMPPC_H_RTAS, (ARGS_ADDR,)) == HcallReturn.H_PARAMETER


HotplugProtocol.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestHotplugProtocol = HotplugProtocol.TestCase
