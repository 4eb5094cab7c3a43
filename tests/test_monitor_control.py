"""Run state, events, migration front end and virtual time of MachineControl.

Rules from QEMU 7.2's softmmu/runstate.c, softmmu/cpus.c and monitor/qmp-cmds.c
(stop only pauses a running VM, cont emits RESUME, a reset leaves a stopped VM in
prelaunch, cont after shutdown needs a reset), migration.c's checks, and the
captured QEMU session (``stop``/``cont``/``system_reset`` and ``info status``).
With the reference guest loaded, a scripted session settles after each command:
the guest onlines a hot-added CPU and releases a removed one between commands.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
from test_qmp_harness import P8E

from guest import LinuxGuest
from machine.board.build import build_machine
from machine.monitor.control import QUIET_PERIOD_NS, MachineControl, event_message
from machine.monitor.hmp import HmpMonitor
from machine.monitor.migrate_commands import Migration, MigrationStatus
from machine.monitor.runstate import TRANSITIONS, InvalidTransition, RunState, RunStateMachine
from rtas.errlog import decode_event_log
from spapr.errors import QemuError

P9_RUNNING = "-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -seed 1".split()
WITH_GUEST = [*P9_RUNNING, "-guest", "linux"]


def control_for(argv: list[str]) -> MachineControl:
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    clock = itertools.count(1_700_000_000)
    return MachineControl(machine, wall_clock=lambda: float(next(clock)) + 0.25)


def recorder(control: MachineControl) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    control.sinks.append(events.append)
    return events


# ---------------------------------------------------------------- run state


@pytest.mark.parametrize(
    ("start", "op", "end", "events"),
    [
        (RunState.PRELAUNCH, "stop", RunState.PRELAUNCH, []),
        (RunState.PRELAUNCH, "cont", RunState.RUNNING, ["RESUME"]),
        (RunState.RUNNING, "cont", RunState.RUNNING, []),
        (RunState.RUNNING, "stop", RunState.PAUSED, ["STOP"]),
        (RunState.PAUSED, "stop", RunState.PAUSED, []),
        (RunState.PAUSED, "cont", RunState.RUNNING, ["RESUME"]),
        (RunState.INMIGRATE, "cont", RunState.INMIGRATE, []),
        (RunState.INMIGRATE, "stop", RunState.INMIGRATE, []),
        (RunState.SUSPENDED, "cont", RunState.SUSPENDED, []),
    ],
)
def test_stop_and_cont(start: RunState, op: str, end: RunState, events: list[str]) -> None:
    machine = RunStateMachine(start)
    assert getattr(machine, op)() == events
    assert machine.state is end


def test_inmigrate_stop_and_cont_only_change_autostart() -> None:
    machine = RunStateMachine(RunState.INMIGRATE, autostart=True)
    machine.stop()
    assert not machine.autostart
    machine.cont()
    assert machine.autostart


@pytest.mark.parametrize("state", [RunState.SHUTDOWN, RunState.INTERNAL_ERROR])
def test_cont_after_shutdown_needs_a_reset(state: RunState) -> None:
    machine = RunStateMachine(state)
    with pytest.raises(QemuError, match="Resetting the Virtual Machine is required"):
        machine.cont()
    machine.after_reset()
    assert machine.state is RunState.PRELAUNCH
    assert machine.cont() == ["RESUME"]


@pytest.mark.parametrize("state", list(RunState))
def test_reset_leaves_only_running_and_migration_states(state: RunState) -> None:
    machine = RunStateMachine(state)
    if (state, RunState.PRELAUNCH) not in TRANSITIONS and state not in (
        RunState.RUNNING,
        RunState.INMIGRATE,
        RunState.FINISH_MIGRATE,
        RunState.PRELAUNCH,
    ):
        with pytest.raises(InvalidTransition):
            machine.after_reset()
        return
    machine.after_reset()
    stays = (RunState.RUNNING, RunState.INMIGRATE, RunState.FINISH_MIGRATE)
    assert machine.state is (state if state in stays else RunState.PRELAUNCH)


def test_invalid_transition_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        RunStateMachine(RunState.PRELAUNCH).set(RunState.PAUSED)


def test_control_runstate_follows_the_command_line() -> None:
    assert control_for(P8E).runstate.state is RunState.PRELAUNCH
    incoming = control_for([*P8E, "-incoming", "defer"])
    assert (
        incoming.runstate.state is RunState.INMIGRATE and incoming.machine.runstate == "inmigrate"
    )
    running = control_for([w for w in P8E if w != "-S"])
    assert running.query_status() == {"running": True, "singlestep": False, "status": "running"}


def test_stop_cont_reset_events_and_status_as_captured_from_qemu() -> None:
    control = control_for(P8E)
    events = recorder(control)
    hmp = HmpMonitor(control)
    script = ["stop", "cont", "stop", "system_reset", "cont", "cont", "system_reset", "stop"]
    statuses = []
    for line in script:
        hmp.execute(line)
        statuses.append(hmp.execute("info status").strip())
    assert statuses == [
        "VM status: paused (prelaunch)",
        "VM status: running",
        "VM status: paused",
        "VM status: paused (prelaunch)",
        "VM status: running",
        "VM status: running",
        "VM status: running",
        "VM status: paused",
    ]
    assert [e["event"] for e in events] == ["RESUME", "STOP", "RESET", "RESUME", "RESET", "STOP"]
    assert "data" not in events[0] and events[2]["data"] == {
        "guest": False,
        "reason": "host-qmp-system-reset",
    }


def test_events_are_stamped_with_the_wall_clock() -> None:
    msg = event_message("STOP", None, 1795635417.254840)
    assert msg == {"event": "STOP", "timestamp": {"seconds": 1795635417, "microseconds": 254840}}
    control = control_for(P8E)
    events = recorder(control)
    control.cont()
    assert events[0]["timestamp"]["microseconds"] == 250000


def test_reset_prints_qemus_warnings() -> None:
    machine = build_machine(P8E, io.StringIO())
    machine.reset()
    lines: list[str] = []
    control = MachineControl(machine, warn=lines.append)
    control.system_reset()
    assert lines == [
        f"qemu-system-ppc64: warning: TCG doesn't support requested feature, cap-{cap}"
        for cap in ("cfpc=workaround", "sbbc=workaround", "ibs=workaround", "ccf-assist=on")
    ]


def test_quit_emits_shutdown_and_requests_exit() -> None:
    control = control_for(P8E)
    events = recorder(control)
    control.quit()
    assert control.quit_requested
    assert events[0]["event"] == "SHUTDOWN"
    assert events[0]["data"] == {"guest": False, "reason": "host-qmp-quit"}


# ---------------------------------------------------------------- migration


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def start_outgoing(self, migration: Migration, uri: str) -> None:
        self.calls.append(("out", uri))
        migration.set_status(MigrationStatus.ACTIVE)

    def start_incoming(self, migration: Migration, uri: str) -> None:
        self.calls.append(("in", uri))


def test_migration_defaults_refuse_clearly() -> None:
    control = control_for(P8E)
    assert control.migration.query() == {}
    with pytest.raises(QemuError, match="Parameter 'uri' expects a valid migration protocol"):
        control.migrate("bogus:x")
    with pytest.raises(QemuError, match="not supported by this build"):
        control.migrate("rdma:127.0.0.1:4444")  # tcp:, unix:, exec:, file: are carried
    with pytest.raises(QemuError, match="'-incoming' was not specified on the command line"):
        control.migrate_incoming("tcp:127.0.0.1:4444")


def test_migration_hooks_drive_the_state_and_block_hotplug() -> None:
    control = control_for(P8E)
    backend = FakeBackend()
    control.migration.backend = backend
    control.migrate("unix:/tmp/x")
    assert backend.calls == [("out", "unix:/tmp/x")]
    assert control.migration.query() == {"status": "active"} and control.machine.migrating
    with pytest.raises(QemuError, match="There's a migration process in progress"):
        control.migrate("unix:/tmp/x")
    with pytest.raises(QemuError, match="device_add not allowed while migrating"):
        control.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "c", "core-id": 2})
    control.migration.set_status(MigrationStatus.COMPLETED)
    assert not control.machine.migrating


@pytest.mark.parametrize(
    ("freeze", "cont", "state"),
    [
        (True, False, RunState.PAUSED),
        (True, True, RunState.RUNNING),
        (False, False, RunState.RUNNING),
    ],
)
def test_finished_incoming_migration_runs_only_with_autostart(
    freeze: bool, cont: bool, state: RunState
) -> None:
    argv = [*P8E, "-incoming", "defer"]
    control = control_for(argv if freeze else [w for w in argv if w != "-S"])
    events = recorder(control)
    if cont:
        control.cont()
    control.finish_incoming()
    assert control.runstate.state is state and control.machine.runstate == state.value
    assert [e["event"] for e in events] == (["RESUME"] if state is RunState.RUNNING else [])
    assert control.migration.query() == {"status": "completed"}


def test_incoming_migration_is_started_once() -> None:
    control = control_for([*P8E, "-incoming", "defer"])
    control.migration.backend = FakeBackend()
    with pytest.raises(QemuError, match="unknown migration protocol: nope"):
        control.migrate_incoming("nope")
    with pytest.raises(QemuError, match="Guest is waiting for an incoming migration"):
        control.migrate("tcp:127.0.0.1:1")
    control.migrate_incoming("tcp:127.0.0.1:4444")
    with pytest.raises(QemuError, match="The incoming migration has already been started"):
        control.migrate_incoming("tcp:127.0.0.1:4444")


# ---------------------------------------------------------------- with the reference guest


def test_without_a_guest_the_running_vms_clock_still_moves() -> None:
    """QEMU's virtual clock runs while the VM runs, OS or not (SLOF idling counts).

    A scripted command is followed by exactly the quiet period (nothing can happen
    without guest code, so the machine is quiet at once, even with an event queued
    that nobody will take); the wall-clock pacing moves it too.
    """
    control = control_for([w for w in P8E if w != "-S"])
    assert control.guest is None and control.runstate.running
    assert control.settle() and control.machine.sched.now == QUIET_PERIOD_NS
    control.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    assert len(control.machine.events) == 1  # queued for a guest that is not there
    assert control.settle() and control.machine.sched.now == 2 * QUIET_PERIOD_NS
    control.advance_to_wall(10.0)
    control.advance_to_wall(10.02)
    assert control.machine.sched.now == 2 * QUIET_PERIOD_NS + 20_000_000


def test_without_a_guest_a_stopped_vms_clock_stands_still() -> None:
    control = control_for(P8E)  # -S: prelaunch
    assert not control.runstate.running
    assert control.settle() and control.machine.sched.now == 0
    control.advance_to_wall(10.0)
    control.advance_to_wall(20.0)
    assert control.machine.sched.now == 0


def test_scripted_hotplug_with_the_guest_settles_between_commands() -> None:
    control = control_for(WITH_GUEST)
    guest: LinuxGuest = control.guest
    assert isinstance(guest, LinuxGuest)
    events = recorder(control)
    hmp = HmpMonitor(control)
    assert control.settle() and guest.booted
    assert hmp.execute("guest cat /sys/devices/system/cpu/online") == "0-1\n"
    assert hmp.execute("device_add power9_v2.0-spapr-cpu-core,id=core2,core-id=2") == ""
    assert control.settle()
    assert hmp.execute("guest cat /sys/devices/system/cpu/online") == "0-2\n"
    assert "CPU(s):              3" in hmp.execute("guest lscpu")
    assert hmp.execute("device_del core2") == ""
    assert events == []  # the guest has not released it yet
    assert control.settle()
    assert [e["data"]["path"] for e in events][-1] == "/machine/peripheral/core2"
    assert hmp.execute("guest cat /sys/devices/system/cpu/online") == "0-1\n"
    assert "node 0 cpus: 0 1" in hmp.execute("guest numactl -H")


def test_stop_freezes_the_guest() -> None:
    control = control_for(WITH_GUEST)
    guest: LinuxGuest = control.guest
    control.settle()
    control.stop()
    now = control.machine.sched.now
    control.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core3", "core-id": 3})
    assert control.settle() and control.machine.sched.now == now
    control.advance_to_wall(1.0)
    control.advance_to_wall(2.0)
    assert control.machine.sched.now == now
    assert guest.online_cpus() == [0, 1]
    control.cont()
    control.settle()
    assert guest.online_cpus() == [0, 1, 2]


def test_wall_clock_pacing_runs_the_guest() -> None:
    control = control_for(WITH_GUEST)
    control.advance_to_wall(100.0)
    control.advance_to_wall(100.05)
    assert control.machine.sched.now == 50_000_000
    control.advance_to_wall(105.0)  # a long gap runs at most one tick's worth
    assert control.machine.sched.now == 150_000_000


@pytest.mark.parametrize("no_shutdown", [True, False])
def test_system_powerdown_the_guest_powers_off(no_shutdown: bool) -> None:
    """system_powerdown -> POWERDOWN and an EPOW "system shutdown, normal" log (QEMU's
    spapr_powerdown_req); Linux's ras_epow_interrupt logs "Power off requested", powers
    off through RTAS power-off, and QEMU's rtas_power_off raises SHUTDOWN guest-shutdown:
    -no-shutdown stops the VM (STOP, state shutdown), otherwise the process quits."""
    control = control_for([*WITH_GUEST, *(["-no-shutdown"] if no_shutdown else [])])
    guest: LinuxGuest = control.guest
    assert control.settle() and guest.booted
    events = recorder(control)
    control.system_powerdown()
    epow = decode_event_log(control.machine.events.pending[-1].to_bytes()).epow
    assert epow is not None  # PAPR: action 3 is system shutdown, modifier 1 normal
    assert (epow.sensor_value & 0xF, epow.event_modifier & 0xF) == (3, 1)
    assert [e["event"] for e in events] == ["POWERDOWN"] and "data" not in events[0]
    assert control.query_status()["status"] == "running"
    sched = control.machine.sched
    sched.run_until(sched.now + 1_000_000_000)  # orderly_poweroff takes its time
    names = [e["event"] for e in events]
    assert names == ["POWERDOWN", "SHUTDOWN", *(["STOP"] if no_shutdown else [])]
    assert events[1]["data"] == {"guest": True, "reason": "guest-shutdown"}
    assert control.quit_requested is not no_shutdown
    if no_shutdown:
        assert control.query_status() == {"running": False, "singlestep": False,
                                          "status": "shutdown"}  # fmt: skip
    dmesg = "\n".join(guest.dmesg())
    assert "Power off requested" in dmesg and "reboot: Power down" in dmesg


def test_a_guest_refusing_unplug_gives_the_drc_back() -> None:
    """-guest linux+refuse-unplug: cpu_down fails (-EBUSY), Linux's dlpar_cpu_remove logs
    "Failed to offline CPU" and unisolates the DRC; QEMU 7.2's drc_unisolate_logical
    then emits DEVICE_UNPLUG_GUEST_ERROR and the core stays."""
    control = control_for([*P9_RUNNING, "-guest", "linux+refuse-unplug"])
    guest: LinuxGuest = control.guest
    assert control.settle()
    control.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "core2", "core-id": 2})
    assert control.settle() and guest.online_cpus() == [0, 1, 2]
    events = recorder(control)
    control.device_del("core2")
    control.settle()
    assert [(e["event"], e["data"]) for e in events] == [
        ("DEVICE_UNPLUG_GUEST_ERROR", {"device": "core2", "path": "/machine/peripheral/core2"})
    ]
    assert guest.online_cpus() == [0, 1, 2]
    assert any("Failed to offline CPU" in line for line in guest.dmesg())


def test_info_cpus_names_the_threads_query_cpus_fast_names() -> None:
    """QEMU's hmp_info_cpus prints query-cpus-fast's thread-id (seen live: both said 8601 for
    CPU #0 of a libvirt domain); with the runner's host thread known, both name it."""
    control = control_for(P9_RUNNING)
    control.host_thread_id = 4242
    text = HmpMonitor(control).execute("info cpus")
    assert [c["thread-id"] for c in control.query_cpus_fast()] == [4242, 4242]
    assert text == "* CPU #0: thread_id=4242\n  CPU #1: thread_id=4242\n"
