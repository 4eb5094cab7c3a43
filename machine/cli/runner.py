"""Running a machine after start-up: its monitors, QMP servers, virtual clock and scenarios.

After the first reset the machine is ``prelaunch`` (with ``-S``: nothing runs until
``cont``), ``inmigrate`` (``-incoming``) or running. The runner serves every
``-qmp`` socket and the ``-monitor stdio`` prompt from one asyncio loop; while the
VM runs, virtual time follows wall time in small steps, so a guest answers hotplug
events between commands, and ``stop`` freezes it. A scripted (piped) monitor
instead lets the machine settle after each command, deterministically.

Project options, taken out of the command line before QEMU's options are parsed
(:func:`split_runner_options`): ``-scenario NAME|FILE`` runs a scenario file (its
first line holds the machine's arguments, every further line is an HMP command,
``#`` starts a comment) and echoes it like a monitor session; ``-allow-remote-qmp``
lets ``-qmp tcp:`` listen on other than loopback addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import attrs

from machine.board.pseries import PseriesMachine, QmpEvent
from machine.cli.signals import SignalWatch
from machine.config.cmdline import PROG
from machine.monitor.control import MachineControl
from machine.monitor.hmp import HmpMonitor
from machine.monitor.hmp_stdio import PROMPT, StdioMonitor, banner
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_server import (
    QmpEndpoint,
    QmpServer,
    chardev_endpoints,
    parse_qmp_endpoint,
)
from spapr.errors import QemuError

#: Where named scenarios live (package data).
SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIO_SUFFIX = ".hmp"
#: Wall-clock period of the virtual-clock pacing.
TICK_S = 0.01


@attrs.frozen
class RunnerOptions:
    """The runner's own command-line options."""

    scenario: str | None = None
    allow_remote_qmp: bool = False


@attrs.frozen
class Scenario:
    """A scenario file: the machine's arguments and the HMP commands to run."""

    name: str
    args: tuple[str, ...]
    commands: tuple[str, ...]


def split_runner_options(argv: Sequence[str]) -> tuple[RunnerOptions, list[str]]:
    """Take the runner's options out of ``argv``; the rest is QEMU's command line."""
    scenario: str | None = None
    allow_remote = False
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        name = "-" + word.lstrip("-") if word.startswith("-") else word
        if name == "-scenario":
            if i + 1 >= len(argv):
                raise QemuError("requires an argument", location="-scenario")
            scenario = argv[i + 1]
            i += 2
            continue
        if name == "-allow-remote-qmp":
            allow_remote = True
            i += 1
            continue
        rest.append(word)
        i += 1
    return RunnerOptions(scenario, allow_remote), rest


def available_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    return sorted(p.stem for p in SCENARIO_DIR.glob(f"*{SCENARIO_SUFFIX}"))


def parse_scenario(name: str, text: str) -> Scenario:
    """First non-comment line: machine arguments; the other lines: HMP commands."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise QemuError(f"scenario '{name}' has no machine arguments line")
    return Scenario(name, tuple(shlex.split(lines[0])), tuple(lines[1:]))


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario file by path, or by name from the package's scenarios."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SCENARIO_DIR / f"{name_or_path}{SCENARIO_SUFFIX}"
    if not path.is_file():
        have = ", ".join(available_scenarios()) or "none"
        raise QemuError(f"scenario '{name_or_path}' not found (have: {have})", location="-scenario")
    return parse_scenario(path.stem, path.read_text())


def run_scenario(control: MachineControl, scenario: Scenario, *, out: TextIO, err: TextIO) -> int:
    """Run the commands like a scripted monitor session, echoing each after the prompt.

    An HMP session does not show QMP events; a scenario prints each one (a
    project addition) as a ``# event NAME {data}`` line where it happened, so a
    reader sees DEVICE_DELETED arrive when the guest finished an unplug.
    """
    hmp = HmpMonitor(control, stderr=lambda line: print(line, file=err))
    events: list[QmpEvent] = []
    control.machine.event_listeners.append(events.append)

    def show_events() -> None:
        for event in events:
            out.write(f"# event {event.name} {json.dumps(dict(event.data))}\n")
        events.clear()

    out.write(banner() + "\n")
    control.settle()
    show_events()
    for command in scenario.commands:
        out.write(PROMPT + command + "\n")
        out.write(hmp.execute(command))
        control.settle()
        show_events()
        out.flush()
        if control.quit_requested:
            break
    return 0


def run_machine(
    machine: PseriesMachine,
    *,
    out: TextIO,
    err: TextIO,
    options: RunnerOptions | None = None,
    scenario: Scenario | None = None,
    stdin: TextIO | None = None,
    incoming_runstate: str | None = None,
    signals: SignalWatch | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Serve the machine's monitors until quit (or a terminating signal); the exit status.

    With ``signals`` (the command line's watch on SIGTERM/SIGINT/SIGHUP) a signal
    ends the run as QEMU's does: whatever runs stops at its next step, QMP clients
    get SHUTDOWN (``host-signal``), stderr QEMU's "terminating on signal" line, the
    sockets are removed and the status is 0.
    """
    options = options if options is not None else RunnerOptions()
    try:
        control = MachineControl(
            machine,
            warn=lambda line: print(line, file=err, flush=True),
            incoming_runstate=incoming_runstate,
        )
    except QemuError as exc:  # -incoming unix:/tcp:/exec: could not start
        print(exc.report(PROG), file=err)
        return 1
    control.host_thread_id = threading.get_native_id()
    if signals is not None:
        # called from the watch's thread: only a flag every loop of the runner checks
        signals.on_signal = lambda _termination: setattr(control, "quit_requested", True)
        if signals.received is not None:
            control.quit_requested = True
    if scenario is not None:
        status = run_scenario(control, scenario, out=out, err=err)
        if signals is not None and signals.received is not None:
            print(signals.received.report(PROG), file=err, flush=True)
        return status
    config = machine.setup.config
    try:
        endpoints = [
            parse_qmp_endpoint(spec, allow_remote=options.allow_remote_qmp) for spec in config.qmp
        ]
        endpoints += chardev_endpoints(config.process)
        for spec in config.monitors:
            if spec != "stdio":
                raise QemuError(
                    "only '-monitor stdio' is modeled by this emulator", location=f"-monitor {spec}"
                )
    except QemuError as exc:
        print(exc.report(PROG), file=err)
        return 1
    if not endpoints and not config.monitors:
        print(f"{PROG}: no monitor configured (use -monitor stdio or -qmp)", file=err)
        return 1
    source = stdin if stdin is not None else sys.stdin
    try:
        status = asyncio.run(
            _serve(control, endpoints, bool(config.monitors), source, out, err, signals, on_ready)
        )
    except KeyboardInterrupt:
        print(f"{PROG}: terminating on signal 2", file=err)
        return 0
    finally:
        control.close()
    return status or control.exit_status


async def _serve(
    control: MachineControl,
    endpoints: list[QmpEndpoint],
    stdio: bool,
    stdin: TextIO,
    out: TextIO,
    err: TextIO,
    signals: SignalWatch | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    stop = asyncio.Event()

    def check_quit() -> None:
        if control.quit_requested:
            stop.set()

    commands = QmpCommands(control, hmp_stderr=lambda line: print(line, file=err))
    servers = [QmpServer(e, commands, on_command=check_quit) for e in endpoints]
    for server in servers:
        try:
            await server.start()
        except QemuError as exc:
            print(exc.report(PROG), file=err)
            for started in servers:
                await started.close()
            return 1
        except OSError as exc:
            print(
                f"{PROG}: -qmp {server.endpoint.spec}: Failed to bind socket: {exc.strerror}",
                file=err,
            )
            for started in servers:
                await started.close()
            return 1
    for server in servers:
        if server.endpoint.wait:
            print(
                f"{PROG}: -qmp {server.endpoint.spec}: info: QEMU waiting for connection on: "
                f"disconnected:{server.endpoint.spec}",
                file=err,
                flush=True,
            )
            await server.wait_for_client()
    control.chardevs = [s.chardev_info() for s in servers if s.endpoint.chardev is not None]
    if on_ready is not None:
        on_ready()
    interactive = stdio and stdin.isatty()
    tasks: list[asyncio.Task[None]] = []
    if stdio:
        monitor = StdioMonitor(
            control,
            stdin=stdin,
            stdout=out,
            stderr=lambda line: print(line, file=err),
            interactive=interactive,
        )

        async def stdio_session() -> None:
            await monitor.run()
            if not servers or control.quit_requested:
                stop.set()

        tasks.append(asyncio.create_task(stdio_session()))
    if not (stdio and not interactive):
        tasks.append(asyncio.create_task(_pace(control, stop)))
    if control.incoming is not None or control.runstate.state.value == "inmigrate":
        tasks.append(asyncio.create_task(_incoming(control, stop)))
    tasks.append(asyncio.create_task(_watch_quit(control, stop)))
    failures: list[BaseException] = []

    def task_done(task: asyncio.Task[None]) -> None:
        # a task that died must end the run, never leave the loop waiting for ever
        if not task.cancelled() and (exc := task.exception()) is not None:
            failures.append(exc)
            stop.set()

    for task in tasks:
        task.add_done_callback(task_done)
    await stop.wait()
    if signals is not None and signals.received is not None:
        print(signals.received.report(PROG), file=err, flush=True)
        control.machine.emit_event("SHUTDOWN", {"guest": False, "reason": "host-signal"})
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for server in servers:
        await server.close()
    if failures:
        raise failures[0]
    return 0


async def _watch_quit(control: MachineControl, stop: asyncio.Event) -> None:
    """End the run once something asked to quit (a monitor, the guest, a signal)."""
    while not stop.is_set():
        if control.quit_requested:
            stop.set()
            return
        await asyncio.sleep(TICK_S)


async def _incoming(control: MachineControl, stop: asyncio.Event) -> None:
    """Resume an incoming migration (unix:, tcp:, exec:) as soon as its stream is in."""
    while not stop.is_set():
        control.poll_incoming()
        if control.quit_requested:
            stop.set()
            return
        await asyncio.sleep(TICK_S)


async def _pace(control: MachineControl, stop: asyncio.Event) -> None:
    """Let virtual time follow wall time while the VM runs; notice a quit."""
    while not stop.is_set():
        control.advance_to_wall(time.monotonic())
        if control.quit_requested:
            stop.set()
            return
        await asyncio.sleep(TICK_S)
