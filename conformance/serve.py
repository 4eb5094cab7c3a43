"""This emulator behind a real QMP socket, served from a background thread.

For users who drive the emulator with a QMP client (``qemu.qmp``, libvirt-like
code, their own tools) exactly as they drive QEMU: :class:`EmulatorQmpServer`
builds the machine from a command line, serves QMP on a UNIX socket in a scratch
directory with the emulator's own asyncio transport, and lets virtual time follow
wall time while the VM runs a guest, as ``spapr -qmp ...`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_server import QmpEndpoint, QmpServer

T = TypeVar("T")
#: How often virtual time catches up with wall time (seconds).
PACE_S = 0.01


class EmulatorQmpServer:
    """The emulator for ``argv`` (no program name, no ``-qmp``), QMP on :attr:`socket_path`."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.stderr = io.StringIO()
        self._dir = Path(tempfile.mkdtemp(prefix="conformance-emulator-"))
        self.socket_path = self._dir / "qmp.sock"
        self.machine = build_machine(self.argv, self.stderr)
        self.machine.reset()
        self.control = MachineControl(self.machine, warn=lambda line: print(line, file=self.stderr))
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="spapr-qmp", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        stop = asyncio.Event()
        self._stop = stop
        endpoint = QmpEndpoint(
            f"unix:{self.socket_path},server=on,wait=off", "unix", path=str(self.socket_path)
        )
        server = QmpServer(endpoint, QmpCommands(self.control))
        await server.start()
        self._ready.set()
        while not stop.is_set() and not self.control.quit_requested:
            self.control.advance_to_wall(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PACE_S)
        await server.close()

    def start(self) -> EmulatorQmpServer:
        """Start serving; returns when the socket listens."""
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def inspect(self, fn: Callable[[MachineControl], T]) -> T:
        """Run ``fn(control)`` in the server's thread (safe while clients talk to it)."""

        async def call() -> T:
            return fn(self.control)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    @property
    def running(self) -> bool:
        """The server still serves (no ``quit`` yet)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving and remove the scratch directory."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmulatorQmpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
