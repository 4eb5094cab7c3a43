"""The running machine as every monitor sees it: run state, events, virtual time, guest views.

:class:`MachineControl` is shared by all monitors (each QMP connection, the HMP
prompt, scenarios). It owns the run-state machine, the QOM view, the migration
front end and the list of event sinks, and it decides when virtual time moves:
never while the VM is stopped; while it runs, whether or not a guest program is
loaded (QEMU's virtual clock runs while SLOF sits idle too), with wall time when
someone is watching interactively (:meth:`advance_to_wall`), or, for scripted
sessions, until the machine has been quiet for :data:`QUIET_PERIOD_NS` after each
command (:meth:`settle`), which keeps them deterministic. So a command, a guest
view and a trace event all happen at one virtual time, the one ``trace diagram``
prints. Events get their wall-clock timestamp here, at the edge.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from machine.board.pseries import PseriesMachine, QmpEvent
from machine.config.cmdline import PROG
from machine.config.startup import reset_warnings
from machine.config.version import PACKAGE as PACKAGE
from machine.config.version import QEMU_VERSION as QEMU_VERSION
from machine.monitor.hmp_memory import DumpFormat
from machine.monitor.introspect import MIGRATION_CAPABILITIES
from machine.monitor.migrate_commands import (
    Migration,
    MigrationBackend,
    MigrationStats,
    MigrationStatus,
    UnsupportedMigration,
)
from machine.monitor.qom_props import Kind, QomView
from machine.monitor.runstate import RunState, RunStateMachine
from machine.sched import VcpuState
from spapr.errors import QemuError

#: Default bound on virtual time spent settling after one scripted command.
SETTLE_LIMIT_NS = 10_000_000_000
SETTLE_STEP_NS = 10_000_000
#: The machine must look quiet for this long (virtual) to count as settled.
QUIET_PERIOD_NS = 50_000_000
#: Most virtual time one wall-clock tick may run (a slow host falls behind, never floods).
MAX_TICK_NS = 100_000_000

EventSink = Callable[[dict[str, Any]], None]


class GuestViews(Protocol):
    """What the monitor's ``guest`` commands read from the reference guest."""

    def lscpu(self) -> list[str]: ...

    def numactl_hardware(self) -> list[str]: ...

    def sys_cpu_online(self) -> str: ...


def event_message(name: str, data: Mapping[str, Any] | None, when: float) -> dict[str, Any]:
    """A QMP event as sent: timestamp, name and (unless the event has none) data."""
    seconds, micro = divmod(round(when * 1_000_000), 1_000_000)
    message: dict[str, Any] = {
        "event": name,
        "timestamp": {"seconds": seconds, "microseconds": micro},
    }
    if data is not None:
        message["data"] = dict(data)
    return message


class StreamMigration:
    """The migration backend: the stream (machine.migration) over the URI's transport.

    Outgoing: setup, active, the stream captured and sent over ``file:``, ``unix:``,
    ``tcp:`` or ``exec:`` (machine.migration.transport), completed; the source then
    stops in ``postmigrate`` as QEMU's does. A socket or command that cannot be
    reached fails the migration as QEMU does (status failed, the reason on stderr),
    not the command; ``file:`` errors and the model's refusals fail the command.
    Incoming: ``file:`` is read at once; the others listen (or run the command)
    and :meth:`MachineControl.poll_incoming` resumes the stream once it has come.
    Other schemes QEMU knows (``fd:``, ``vsock:``, ``rdma:``) are refused plainly.
    """

    def __init__(self, control: MachineControl) -> None:
        self.control = control

    def start_outgoing(self, migration: Migration, uri: str) -> None:
        from machine.migration.replay import stream_bytes
        from machine.migration.transport import CARRIED_SCHEMES, parse_uri, send_stream

        if not uri.startswith(CARRIED_SCHEMES):
            UnsupportedMigration().start_outgoing(migration, uri)
        target = parse_uri(uri)
        control = self.control
        before = control.runstate.state.value
        started = time.monotonic()
        migration.set_status(MigrationStatus.SETUP)
        migration.set_status(MigrationStatus.ACTIVE)
        # the VM is stopped from here on: capturing and sending are the downtime
        sending = time.monotonic()
        try:
            data = stream_bytes(control.machine, runstate=before)
        except QemuError:
            migration.set_status(MigrationStatus.FAILED)
            raise
        try:
            send_stream(target, data)
        except QemuError as exc:
            if target.scheme == "file":
                migration.set_status(MigrationStatus.FAILED)
                raise
            migration.fail(exc.message)
            control.warn(exc.report(PROG))
            return
        done = time.monotonic()
        migration.stats = MigrationStats(
            total_time_ms=round((done - started) * 1000),
            setup_time_ms=round((sending - started) * 1000),
            downtime_ms=round((done - sending) * 1000),
            transferred=len(data),
            ram_size=control.machine.setup.ram_size,
        )
        migration.set_status(MigrationStatus.COMPLETED)
        control.enter_postmigrate()

    def start_incoming(self, migration: Migration, uri: str) -> None:
        from machine.migration.replay import load_stream, resume
        from machine.migration.transport import CARRIED_SCHEMES, IncomingChannel, parse_uri

        if not uri.startswith(CARRIED_SCHEMES):
            UnsupportedMigration().start_incoming(migration, uri)
        control = self.control
        if uri.startswith("file:"):
            migration.set_status(MigrationStatus.ACTIVE)
            try:
                stream = load_stream(parse_uri(uri).path)
                machine = resume(stream, control.machine, io.StringIO())
            except QemuError:
                migration.set_status(MigrationStatus.FAILED)
                raise
            control.swap_machine(machine)
            control.finish_incoming()
            return
        control.incoming = IncomingChannel(parse_uri(uri))
        migration.listening = control.incoming.socket_addresses()


def guest_of(machine: PseriesMachine) -> Any:
    """The machine's reference guest: the loaded one, or the owner of its program factory."""
    if machine.guest is not None:
        return machine.guest
    factory = machine.guest_program_factory
    return getattr(factory, "__self__", None) if factory is not None else None


class MachineControl:
    """Run state, events and time of one machine, shared by its monitors."""

    def __init__(
        self,
        machine: PseriesMachine,
        *,
        guest: Any = None,
        migration_backend: MigrationBackend | None = None,
        wall_clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
        incoming_runstate: str | None = None,
    ) -> None:
        self.machine = machine
        self.guest = guest if guest is not None else guest_of(machine)
        self.wall_clock = wall_clock
        self.warn = warn if warn is not None else (lambda _line: None)
        self.view = QomView(machine)
        backend = migration_backend if migration_backend is not None else StreamMigration(self)
        self.migration = Migration(backend)
        self.migration.on_status.append(self._migration_status)
        self.sinks: list[EventSink] = []
        #: Human monitors opened on this machine so far (each traces its commands under
        #: its number, where QEMU's ``handle_hmp_command`` prints the monitor's address).
        self.hmp_monitors = 0
        #: ``xp``'s last ``/fmt``, shared by every human monitor as QEMU's globals are.
        self.hmp_dump_format = DumpFormat()
        #: The host thread that runs every vCPU when a real process serves the machine
        #: (set by the runner); query-cpus-fast then names it, as QEMU names each
        #: vCPU's thread. None: the scheduler's own thread numbers are shown.
        self.host_thread_id: int | None = None
        #: query-chardev's answer: the monitors' character devices (the runner fills it).
        self.chardevs: list[dict[str, Any]] = []
        #: Migration capabilities as set by migrate-set-capabilities (all off at start).
        self.migration_caps: dict[str, bool] = dict.fromkeys(MIGRATION_CAPABILITIES, False)
        self.quit_requested = False
        #: The process's exit status once it quits (1 after a failed incoming migration).
        self.exit_status = 0
        #: An incoming migration waiting for its stream (unix:, tcp:, exec:).
        self.incoming: Any = None
        self._boot_pending = True
        self._wall_base: float | None = None
        self._virt_base = 0
        config = machine.setup.config
        if config.incoming is not None:
            self.runstate = RunStateMachine(RunState.INMIGRATE, autostart=not config.freeze)
        elif config.freeze:
            self.runstate = RunStateMachine(RunState.PRELAUNCH, autostart=False)
        else:
            self.runstate = RunStateMachine(RunState.PRELAUNCH)
            self.runstate.set(RunState.RUNNING)
        self._mirror_runstate()
        machine.event_listeners.append(self._machine_event)
        if incoming_runstate is not None:
            self._incoming_done(RunState(incoming_runstate))
        elif config.incoming not in (None, "defer"):
            self._listen_at_startup(config.incoming)
        self._maybe_boot()

    # ------------------------------------------------------------ events

    def emit(self, name: str, data: Mapping[str, Any] | None) -> None:
        """Send an event to every sink, stamped with the wall clock now."""
        message = event_message(name, data, self.wall_clock())
        for sink in list(self.sinks):
            sink(message)

    def _machine_event(self, event: QmpEvent) -> None:
        self.view.sync()
        self.emit(event.name, event.data)
        if event.name == "SHUTDOWN":
            self.runstate.shutdown()
            self._mirror_runstate()
            if event.data.get("guest") and self.machine.setup.config.process.no_shutdown:
                # -no-shutdown: a guest power-off stops the VM; the process stays
                self.emit("STOP", None)
            else:
                self.quit_requested = True
        elif event.name == "DEVICE_UNPLUG_GUEST_ERROR" and "device" in event.data:
            # drc_unisolate_logical's error_report (no monitor is current: it goes to stderr)
            self.warn(
                f"{PROG}: Device hotunplug rejected by the guest for device {event.data['device']}"
            )
        elif event.name == "RESET":
            self._boot_pending = True
            if str(event.data.get("reason", "")).startswith("guest"):
                self.machine.sched.call_later(0, self._maybe_boot)

    def _migration_status(self, status: MigrationStatus) -> None:
        self.machine.migrating = self.migration.running
        if self.migration_caps.get("events"):
            self.emit("MIGRATION", {"status": status.value})

    def _mirror_runstate(self) -> None:
        self.machine.runstate = self.runstate.state.value

    # ------------------------------------------------------------ VM control

    @property
    def guest_loaded(self) -> bool:
        return self.machine.guest_program_factory is not None

    def _maybe_boot(self) -> None:
        """Start the boot vCPU after a reset if the machine did not (a bare program factory).

        A guest loaded with ``load_guest`` is booted by every machine reset; its boot
        thread then simply waits until the VM runs, as QEMU's firmware does with -S.
        """
        if self.machine.guest is not None:
            self._boot_pending = False
            return
        if not (self._boot_pending and self.runstate.running and self.guest_loaded):
            return
        self._boot_pending = False
        entry = getattr(self.guest, "entry_point", 0x100)
        self.machine.boot(int(entry))

    def query_cpus_fast(self) -> list[dict[str, Any]]:
        """query-cpus-fast, with the host thread that really runs the vCPUs if known."""
        cpus = self.machine.query_cpus_fast()
        if self.host_thread_id is not None:
            for cpu in cpus:
                cpu["thread-id"] = self.host_thread_id
        return cpus

    def query_status(self) -> dict[str, Any]:
        """query-status (singlestep is never on here)."""
        return {
            "running": self.runstate.running,
            "singlestep": False,
            "status": self.runstate.state.value,
        }

    def stop(self) -> None:
        """stop: pause the VM (and the virtual clock)."""
        for name in self.runstate.stop():
            self.emit(name, None)
        self._mirror_runstate()

    def cont(self) -> None:
        """cont: resume (or arm autostart while an incoming migration is awaited)."""
        events = self.runstate.cont()
        self._mirror_runstate()
        self._wall_base = None
        for name in events:
            self.emit(name, None)
        self._maybe_boot()

    def system_reset(self, reason: str = "host-qmp-system-reset") -> None:
        """system_reset: reset now (pending unplugs complete), RESET, prelaunch if stopped."""
        for warning in reset_warnings(self.machine.setup):
            self.warn(warning.report())
        self.machine.system_reset(reason)
        self.runstate.after_reset()
        self._mirror_runstate()
        self.view.sync()
        self._maybe_boot()

    def system_powerdown(self) -> None:
        """system_powerdown: POWERDOWN now (even in prelaunch), then the board's EPOW request."""
        self.emit("POWERDOWN", None)
        self.machine.system_powerdown()
        self.view.sync()

    def quit(self) -> None:
        """quit: SHUTDOWN (host-qmp-quit); the transports then close and the process exits."""
        self.machine.emit_event("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
        self.quit_requested = True

    def device_add(self, args: Mapping[str, Any]) -> None:
        """device_add of a CPU core (QemuError with QEMU's text on refusal)."""
        try:
            self.machine.device_add(args)
        finally:
            self.view.sync()

    def device_del(self, dev_id: str) -> None:
        """device_del by id (relative to /machine/peripheral) or QOM path.

        As QEMU's find_device_state: an id is a path relative to /machine/peripheral
        and empty path components are skipped (so ``""`` names /machine/peripheral
        itself and ``c1/`` the core c1). The devices of /machine/unattached that are
        not cores answer as in QEMU 7.2 (checked live): the XIVE controller and the
        VIO bridge sit on the system bus, whose handler (the machine) ignores their
        unplug request; NVRAM sits on the VIO bus, which has no hotplug.
        """
        try:
            path = dev_id if dev_id.startswith("/") else f"/machine/peripheral/{dev_id}"
            node = self.view.resolve(path) if ("/" in dev_id or not dev_id) else None
            if node is not None and node.kind in (Kind.XIVE, Kind.VIO_BRIDGE):
                return
            if node is not None and node.type_name == "spapr-nvram":
                raise QemuError("Bus 'spapr-vio' does not support hotplugging")
            if dev_id.startswith("/"):
                if node is not None and node.kind is Kind.FIXED:
                    raise QemuError(f"{dev_id} is not a hotpluggable device")
                self.machine.device_del(dev_id)
            elif "/" in dev_id or not dev_id:
                if node is None:
                    raise QemuError(f"Device '{dev_id}' not found", "DeviceNotFound")
                if node.kind is not Kind.CORE:
                    raise QemuError(f"{dev_id} is not a hotpluggable device")
                self.machine.device_del(node.path)
            else:
                self.machine.device_del(dev_id)
        finally:
            self.view.sync()

    def swap_machine(self, machine: PseriesMachine) -> None:
        """Serve ``machine`` from now on (an incoming migration built a new one)."""
        old = self.machine
        if self._machine_event in old.event_listeners:
            old.event_listeners.remove(self._machine_event)
        self.machine = machine
        self.guest = guest_of(machine)
        self.view = QomView(machine)
        machine.event_listeners.append(self._machine_event)
        self._mirror_runstate()
        self._boot_pending = False

    def migrate(self, uri: str, *, resume: bool = False) -> None:
        """migrate: the front end's checks, then the backend."""
        self.migration.migrate(
            uri,
            inmigrate=self.runstate.state is RunState.INMIGRATE,
            postmigrate=self.runstate.state is RunState.POSTMIGRATE,
            resume=resume,
        )

    def migrate_incoming(self, uri: str) -> None:
        """migrate-incoming (needs -incoming defer)."""
        self.migration.migrate_incoming(uri, inmigrate=self.runstate.state is RunState.INMIGRATE)

    def _listen_at_startup(self, uri: str) -> None:
        """``-incoming URI`` (not defer, not the file: main.py already loaded): start now.

        QemuError names the option, as QEMU's start-up refusal does.
        """
        try:
            self.migration.migrate_incoming(uri, inmigrate=True)
        except QemuError as err:
            err.location = f"-incoming {uri}"
            raise

    def poll_incoming(self) -> None:
        """Resume the incoming stream if it has arrived (the transports call this often).

        The target takes the run state the stream implies (running unless -S, or the
        source's paused state). A stream that does not load ends the process with
        status 1, as QEMU's "load of migration failed" does.
        """
        channel = self.incoming
        if channel is None:
            return
        from machine.migration.replay import parse_stream, resume, runstate_after_incoming

        try:
            data = channel.poll()
            if data is None:
                return
            self.incoming = None
            self.migration.listening = []
            self.migration.set_status(MigrationStatus.ACTIVE)
            stream = parse_stream(data, f"the stream from {channel.uri.text}")
            machine = resume(stream, self.machine, io.StringIO())
        except QemuError as err:
            self.incoming = None
            self.migration.listening = []
            self.migration.fail(err.message)
            self.warn(f"{PROG}: load of migration failed: {err.message}")
            self.exit_status = 1
            self.quit_requested = True
            return
        self.swap_machine(machine)
        state = runstate_after_incoming(stream, self.runstate.autostart)
        if state == RunState.RUNNING.value:
            self.finish_incoming()
        else:
            self._incoming_done(RunState(state))

    def close(self) -> None:
        """The process is quitting: stop waiting for an incoming stream."""
        if self.incoming is not None:
            self.incoming.close()
            self.incoming = None

    def _incoming_done(self, state: RunState) -> None:
        """``-incoming file:`` loaded at start-up: take the run state the stream implies."""
        self.migration.incoming_started = True
        self.migration.set_status(MigrationStatus.COMPLETED)
        self.runstate.set(state)
        self._mirror_runstate()
        if state is RunState.RUNNING:
            self.emit("RESUME", None)

    def enter_postmigrate(self) -> None:
        """After an outgoing migration completed: the source VM stops (STOP if it ran)."""
        was_running = self.runstate.running
        self.runstate.set(RunState.FINISH_MIGRATE)
        self.runstate.set(RunState.POSTMIGRATE)
        self._mirror_runstate()
        if was_running:
            self.emit("STOP", None)

    def finish_incoming(self) -> None:
        """The migration backend loaded the state: run if autostart (RESUME), else pause.

        process_incoming_migration_bh: ``cont`` or the absence of ``-S`` set autostart.
        """
        self.migration.set_status(MigrationStatus.COMPLETED)
        if self.runstate.autostart:
            self.runstate.set(RunState.RUNNING)
            self._mirror_runstate()
            self._wall_base = None
            self.emit("RESUME", None)
            self._maybe_boot()
        else:
            self.runstate.set(RunState.PAUSED)
            self._mirror_runstate()

    # ------------------------------------------------------------ virtual time

    def advance_to_wall(self, monotonic_now: float) -> None:
        """Let virtual time follow wall time while the VM runs (called by the transport loop).

        With or without a guest: the clock is the VM's, not the guest's, so the
        trace of a machine without a guest gets the times its commands came at.
        """
        if not self.runstate.running:
            self._wall_base = None
            return
        sched = self.machine.sched
        if self._wall_base is None:
            self._wall_base, self._virt_base = monotonic_now, sched.now
            return
        target = self._virt_base + round((monotonic_now - self._wall_base) * 1e9)
        if target - sched.now > MAX_TICK_NS:
            target = sched.now + MAX_TICK_NS
            self._wall_base, self._virt_base = monotonic_now, target
        if target > sched.now:
            sched.run_until(target)

    def quiet(self) -> bool:
        """No runnable vCPU, no queued event, every CPU connector at rest, no thread waiting.

        Without guest code that acts on its own (``-guest none``: queued events stay
        queued, nothing will take them; ``-guest manual``: nothing moves until the
        person at the prompt acts), quiet means only that no vCPU is runnable.
        """
        machine = self.machine
        if not self.guest_loaded or getattr(self.guest, "waits_for_prompt", False):
            return not machine.sched.runnable_count()
        if machine.sched.runnable_count() or len(machine.events):
            return False
        # kept by the machine as connectors change: no walk over every slot
        return machine.cpu_connectors_at_rest()

    def settle(self, limit_ns: int = SETTLE_LIMIT_NS) -> bool:
        """Run a running VM until it has been quiet for a while (bounded); True if it settled.

        This is the virtual time that passes between two commands of a scripted
        session: at least :data:`QUIET_PERIOD_NS` (checked every
        :data:`SETTLE_STEP_NS`), at most ``limit_ns`` when the machine never gets
        quiet (an unplug the guest ignores stays requested). A stopped VM's clock
        stands still; a running one moves with or without a guest.
        """
        if not self.runstate.running:
            return True
        sched = self.machine.sched
        deadline = sched.now + limit_ns
        quiet_since: int | None = None
        while not self.quit_requested:
            if self.quiet():
                if quiet_since is None:
                    quiet_since = sched.now
                elif sched.now - quiet_since >= QUIET_PERIOD_NS:
                    return True
            else:
                quiet_since = None
            if sched.now >= deadline:
                return False
            sched.run_until(min(sched.now + SETTLE_STEP_NS, deadline))
        return True

    # ------------------------------------------------------------ queries

    def current_cpu_index(self) -> int | None:
        """The monitor's default CPU: the first one (QEMU's first_cpu)."""
        first = next(self.machine.iter_threads(), None)
        return None if first is None else first.cpu_index

    def has_cpu(self, cpu_index: int) -> bool:
        """qemu_get_cpu: a thread with this cpu-index exists."""
        return any(t.cpu_index == cpu_index for t in self.machine.iter_threads())

    def vcpu_state(self, vcpu_id: int) -> VcpuState:
        return self.machine.sched.state(vcpu_id)
