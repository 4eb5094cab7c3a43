"""An in-process emulator serving QMP on a UNIX socket, for the monitor tests (and its tests).

:class:`EmulatorServer` builds the machine from a qemu-system-ppc64 command line
(its own ``-qmp`` options are replaced by a socket in a temporary directory) and
runs the real asyncio transport in a background thread, so tests talk to it
through the public ``qemu.qmp`` client exactly as they would to QEMU.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from qemu.qmp import ConnectError
from qemu.qmp.legacy import QEMUMonitorProtocol

from machine.board.build import build_machine
from machine.cli.runner import _pace
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_server import QmpEndpoint, QmpServer

DATA = Path(__file__).parent / "data"
QMP_DATA = DATA / "qmp"
MANIFEST = json.loads((QMP_DATA / "manifest.json").read_text())["files"]
T = TypeVar("T")


def strip_qmp_options(argv: list[str]) -> list[str]:
    """A command line without its program name, ``-qmp``/``-monitor`` and ``-D`` options.

    ``-D NAME.trace`` would make the emulator write QEMU's trace log into the
    current directory; the trace comparisons live in test_machine_trace.
    """
    out: list[str] = []
    words = argv[1:] if argv and not argv[0].startswith("-") else argv
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("-qmp", "-monitor", "-D"):
            skip = True
            continue
        out.append(word)
    return out


#: QEMU ran no operating system in any oracle session (nothing answers hotplug events).
NO_GUEST = ["-guest", "none"]


def oracle_argv(name: str) -> list[str]:
    """The QEMU command line of an oracle file (``qmp/x.jsonl``), for the emulator (no guest)."""
    return strip_qmp_options(MANIFEST[name]["argv"]) + NO_GUEST


class EmulatorServer:
    """The emulator's QMP server on ``sock_path``, served from a background thread."""

    def __init__(
        self, argv: list[str], sock_path: Path, *, machine_hook: Any = None, tcp: bool = False
    ) -> None:
        self.argv = argv
        self.sock_path = sock_path
        self.tcp = tcp
        self.stderr = io.StringIO()
        self.machine = build_machine(argv, self.stderr)
        self.machine.reset()
        if machine_hook is not None:
            machine_hook(self.machine)
        self.control = MachineControl(self.machine, warn=lambda line: print(line, file=self.stderr))
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self.server: QmpServer | None = None
        self._thread = threading.Thread(target=self._run, name="emulator", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        stop = self._stop

        def check_quit() -> None:
            if self.control.quit_requested:
                stop.set()

        commands = QmpCommands(self.control)
        if self.tcp:
            endpoint = QmpEndpoint("tcp:127.0.0.1:0", "tcp", host="127.0.0.1", port=0, wait=False)
        else:
            endpoint = QmpEndpoint(
                f"unix:{self.sock_path},server=on,wait=off",
                "unix",
                path=str(self.sock_path),
                wait=False,
            )
        self.server = QmpServer(endpoint, commands, on_command=check_quit)
        await self.server.start()
        pace = asyncio.create_task(_pace(self.control, stop))
        self._started.set()
        await stop.wait()
        pace.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pace
        await self.server.close()
        await asyncio.sleep(0)

    def start(self) -> EmulatorServer:
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        return self

    @property
    def address(self) -> str | tuple[str, int]:
        """Where clients connect: the socket path, or (host, port) for TCP."""
        if self.tcp:
            assert self.server is not None
            return ("127.0.0.1", self.server.port)
        return str(self.sock_path)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_exit(self, timeout: float = 5.0) -> bool:
        """Wait for the server to stop by itself (after quit)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def inspect(self, fn: Callable[[MachineControl], T]) -> T:
        """Run ``fn(control)`` in the server's thread (safe while clients are active)."""

        async def call() -> T:
            return fn(self.control)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def emulator(argv: list[str], tmp_path: Path, **kw: Any) -> Iterator[EmulatorServer]:
    """An emulator for one test."""
    server = EmulatorServer(argv, tmp_path / "qmp.sock", **kw)
    with server:
        yield server


class GreetedClient(QEMUMonitorProtocol):  # type: ignore[misc]
    """The legacy qemu.qmp client, keeping the greeting it was sent."""

    greeting: dict[str, Any] | None = None

    def connect(self, negotiate: bool = True) -> Any:
        self.greeting = super().connect(negotiate)
        return self.greeting


@contextlib.contextmanager
def qmp_client(address: Path | str | tuple[str, int]) -> Iterator[GreetedClient]:
    """A negotiated qemu.qmp legacy client."""
    client = GreetedClient(str(address) if isinstance(address, Path) else address)
    for attempt in range(200):  # a UNIX socket file exists a moment before listen()
        try:
            client.connect()
            break
        except ConnectError:
            if attempt == 199:
                raise
            time.sleep(0.01)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


_TID = re.compile(r"thread_id=\d+")


def normalize(msg: Any) -> Any:
    """Drop what differs between runs: timestamps, host thread ids (also in HMP text)."""
    if isinstance(msg, dict):
        return {
            k: ("<tid>" if k in ("thread-id", "thread_id") else normalize(v))
            for k, v in msg.items()
            if k != "timestamp"
        }
    if isinstance(msg, list):
        return [normalize(v) for v in msg]
    if isinstance(msg, str):
        return _TID.sub("thread_id=<tid>", msg)
    return msg


def transcript(path: Path) -> tuple[dict[str, Any], list[tuple[dict[str, Any], list[Any], Any]]]:
    """(greeting, [(request, events before its response, response or None)]) of a .jsonl."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    greeting = entries[0]["msg"]
    steps: list[tuple[dict[str, Any], list[Any], Any]] = []
    for entry in entries[1:]:
        msg = entry["msg"]
        if entry["dir"] == "out":
            steps.append((msg, [], None))
        elif "event" in msg:
            steps[-1][1].append(msg)
        else:
            request, events, _ = steps[-1]
            steps[-1] = (request, events, msg)
    return greeting, steps


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---------------------------------------------------------------- the harness itself

P8E = oracle_argv("qmp/query_p8e_classic.jsonl")


def test_strip_qmp_options_keeps_the_machine_arguments() -> None:
    argv = [
        "qemu-system-ppc64",
        "-M",
        "pseries",
        "-qmp",
        "unix:x,server=on",
        "-S",
        "-monitor",
        "stdio",
    ]
    assert strip_qmp_options(argv) == ["-M", "pseries", "-S"]
    assert "-qmp" not in P8E and P8E[:2] == ["-M", "pseries"]


def test_harness_serves_the_public_client_and_stops_on_quit(tmp_path: Path) -> None:
    with emulator(P8E, tmp_path) as emu, qmp_client(emu.sock_path) as qmp:
        assert qmp.cmd_raw("query-status") == {
            "return": {"status": "prelaunch", "singlestep": False, "running": False}
        }
        assert emu.inspect(lambda c: c.runstate.state.value) == "prelaunch"
        assert qmp.cmd_raw("quit") == {"return": {}}
        assert emu.wait_exit()
        assert not emu.sock_path.exists()


def test_transcript_reader_pairs_events_with_their_command() -> None:
    _, steps = transcript(QMP_DATA / "hotplug_unplug_p8e.jsonl")
    deletes = [s for s in steps if s[0].get("execute") == "device_del"]
    assert [len(s[1]) for s in deletes] == [3, 0]
    assert deletes[1][2]["error"]["class"] == "DeviceNotFound"
    quit_step = steps[-1]
    assert quit_step[0] == {"execute": "quit"} and quit_step[1][0]["event"] == "SHUTDOWN"


def test_normalize_drops_only_run_dependent_values() -> None:
    msg = {
        "timestamp": {"seconds": 1},
        "event": "X",
        "data": {"thread-id": 5, "a": "thread_id=42 x"},
    }
    assert normalize(msg) == {
        "event": "X",
        "data": {"thread-id": "<tid>", "a": "thread_id=<tid> x"},
    }


@pytest.mark.parametrize("name", sorted(k for k in MANIFEST if k.endswith(".jsonl")))
def test_every_transcript_has_a_command_line(name: str) -> None:
    argv = oracle_argv(name)
    assert argv[0] == "-M" and "-S" in argv
