"""Edge cases of protocol.md §9 as the guest lives them, EPOW, CAS failure, determinism."""

from __future__ import annotations

from test_guest_handshake import check_exception_ok
from test_guest_platform import (
    CONFIGURED,
    CPU_DRC_BASE,
    IRQ_EPOW,
    IRQ_HOTPLUG,
    MASK_EPOW,
    UNUSABLE,
    Call,
    FakePlatform,
    booted,
    build_tree,
    oracle_tree,
)

from guest import SECONDARY_ENTRY, DrcOutcome, GuestTiming, LinuxGuest, RtasRecord
from rtas.hcalls import HcallReturn

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)
X2 = CPU_DRC_BASE | 2


def quiet(**kwargs: object) -> LinuxGuest:
    return LinuxGuest(timing=QUIET, **kwargs)  # type: ignore[arg-type]


def test_edge6_add_then_del_before_the_guest_acquired() -> None:
    platform, guest = booted(quiet(), build_tree(slots=4, boot_cores=1))
    platform.plug_core(2)
    platform.unplug_core(2)  # the DRC was still U: released at once
    assert "DEVICE_DELETED core 2" in platform.events
    mark = len(platform.calls)
    platform.run(S)
    calls = [c.short() for c in platform.calls[mark:] if c.name != "check-exception"]
    assert calls == [
        ("get-sensor-state", (9003, X2), (0, 2)),
        ("set-indicator", (9003, X2, 1), (-3,)),
        ("get-sensor-state", (9003, X2), (0, 2)),
    ]
    texts = guest.log.texts()
    assert "pseries-hotplug-cpu: Failed to acquire DRC, rc: -22, drc index: 10000002" in texts
    assert "pseries-hotplug-cpu: Cannot find CPU (drc index 10000002) to remove" in texts
    assert guest.drc_actions[X2].outcome is DrcOutcome.REMOVE_FAILED


def test_edge15_more_cores_than_the_guest_has_logical_ids() -> None:
    platform, guest = booted(quiet(nr_cpus=2), build_tree(slots=4, boot_cores=2))
    assert guest.log.contains("Partition configured for 4 cpus, operating system maximum is 2.")
    assert guest.possible_cpus() == [0, 1]
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    tail = [c.short() for c in platform.calls[mark:] if c.name != "ibm,configure-connector"]
    assert tail[-3:] == [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (0,)),
        ("set-indicator", (9003, X2, 0), (0,)),
    ]
    texts = guest.log.texts()
    assert (
        "pseries-hotplug-cpu: Cannot add cpu /cpus/PowerPC,POWER9@2; this system configuration "
        "supports 2 logical cpus."
    ) in texts
    assert (
        "pseries-hotplug-cpu: Failed to attach node PowerPC,POWER9, rc: -28, drc index: 10000002"
        in texts
    )
    assert guest.tree.find("/cpus/PowerPC,POWER9@2") is None
    assert platform.drc(2).state == UNUSABLE and platform.drc(2).core is not None


def test_edge14_only_the_listed_threads_are_onlined() -> None:
    platform, guest = booted(
        quiet(), build_tree(slots=4, boot_cores=1, threads=4), threads=4, interrupt_servers_limit=2
    )
    mark = len(platform.calls)
    platform.plug_core(4)
    platform.run(S)
    starts = [c.args for c in platform.calls[mark:] if c.name == "start-cpu"]
    assert starts == [(4, SECONDARY_ENTRY, 4), (5, SECONDARY_ENTRY, 5)]
    assert guest.online_cpus() == [0, 1, 2, 3, 4, 5]
    assert platform.vcpus[6].program is None and platform.vcpus[7].program is None


def test_edge22_spurious_pulse_reparses_the_stale_log() -> None:
    platform, guest = booted(quiet(), build_tree(slots=4, boot_cores=1))
    platform.plug_core(2)
    platform.run(S)
    mark = len(platform.calls)
    platform.spurious_pulse(IRQ_HOTPLUG)
    platform.run(S)
    calls = platform.calls[mark:]
    assert [c.short()[0::2] for c in calls] == [("check-exception", (1,))]
    assert guest.log.contains("CPU with drc index 10000002 already exists")
    assert guest.online_cpus() == [0, 1]


def test_hot_add_before_cas_appears_cold_plugged() -> None:
    guest = quiet()
    platform = FakePlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.plug_core(2)  # queued on EPOW (nothing negotiated yet), IRQ masked
    platform.boot()
    platform.run(2 * S)
    assert platform.drc(2).state == CONFIGURED
    assert guest.online_cpus() == [0, 1]
    # The pulse stayed masked-pending in the ICS; unmasking EPOW delivers it, but CAS
    # dropped the hotplug entry, so check-exception finds nothing.
    checks = [c.short() for c in platform.calls if c.name == "check-exception"]
    assert [(name, rets) for name, _args, rets in checks] == [("check-exception", (1,))]


def test_powerdown_request_powers_the_guest_off() -> None:
    platform, guest = booted(quiet(), build_tree(slots=2, boot_cores=1))
    mark = len(platform.calls)
    platform.powerdown()
    platform.run(S)
    calls = platform.calls[mark:]
    assert calls[0].short() == ("get-sensor-state", (9, 0), (-3, 0))
    check_exception_ok(calls[1], IRQ_EPOW, MASK_EPOW)
    assert calls[-1].short() == ("power-off", (0xFFFFFFFF, 0xFFFFFFFF), (0,))
    assert platform.powered_off and guest.powered_off
    assert "Power off requested" in guest.log.texts()


def test_failed_cas_leaves_hotplug_events_on_epow_where_linux_only_logs_them() -> None:
    platform, guest = booted(
        quiet(), build_tree(slots=4, boot_cores=1), cas_status=HcallReturn.H_FUNCTION
    )
    assert guest.log.contains("WARNING: ibm,client-architecture-support call FAILED!")
    assert not guest.features.hp_evt
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    calls = platform.calls[mark:]
    assert [c.name for c in calls] == ["get-sensor-state", "check-exception"]
    assert guest.log.contains("Type: Hotplug Event (229)")
    assert guest.online_cpus() == [0]


def test_threads_started_elsewhere_just_idle() -> None:
    guest = quiet()
    program = guest.program_factory(5, 0xDEAD0000, 0)
    assert next(program)[0] == 0xE0  # H_CEDE


def run_scenario() -> tuple[list[Call], list[str], list[RtasRecord]]:
    platform, guest = booted(LinuxGuest(), oracle_tree("p9_classic"), seconds=3)
    platform.plug_core(2)
    platform.run(S)
    platform.plug_core(3)
    platform.unplug_core(2)
    platform.run(40 * S)
    return list(platform.calls), guest.dmesg(), list(guest.rtas_trace)


def test_same_inputs_give_the_same_trace() -> None:
    first = run_scenario()
    second = run_scenario()
    assert first == second
    calls, _dmesg, trace = first
    # The guest's own record and the platform's agree call for call.
    assert [(r.service, r.args) for r in trace] == [(c.name, c.args) for c in calls]
