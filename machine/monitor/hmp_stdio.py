"""``-monitor stdio``: the ``(qemu)`` prompt on the terminal, or a scripted session from a pipe.

On a terminal the prompt reads lines with GNU readline (history, editing) in a
helper thread, so the event loop keeps serving QMP clients and the virtual clock
while the user types. From a pipe each line is echoed after the prompt, like a
session transcript, and after each command the machine runs until it is quiet
(bounded), which makes scripted sessions deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TextIO

from machine.monitor.control import QEMU_VERSION, MachineControl
from machine.monitor.hmp import HmpMonitor

PROMPT = "(qemu) "


def banner() -> str:
    """The line QEMU prints when a human monitor opens."""
    major, minor, micro = QEMU_VERSION
    return f"QEMU {major}.{minor}.{micro} monitor - type 'help' for more information"


def _enable_readline() -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (importing it gives input() line editing and history)


class StdioMonitor:
    """The human monitor on stdin/stdout."""

    def __init__(
        self,
        control: MachineControl,
        *,
        stdin: TextIO,
        stdout: TextIO,
        stderr: Callable[[str], None],
        interactive: bool,
    ) -> None:
        self.control = control
        self.stdin = stdin
        self.stdout = stdout
        self.interactive = interactive
        self.hmp = HmpMonitor(control, stderr=stderr)

    def run_line(self, line: str) -> str:
        """Execute one line; scripted sessions then let the machine settle."""
        text = self.hmp.execute(line)
        if not self.interactive:
            self.control.settle()
        return text

    def _read_line(self) -> str | None:
        if self.interactive:
            try:
                return input(PROMPT)
            except EOFError:
                return None
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\r\n")

    def _reader(
        self,
        loop: asyncio.AbstractEventLoop,
        lines: asyncio.Queue[str | None],
        ready: threading.Event,
    ) -> None:
        """Helper thread: read lines for the loop.

        At a terminal it reads (and prompts for) the next line only once the previous
        one's output is out. From a pipe or file it reads ahead, without waiting to be
        asked: the loop echoes each line when it runs it, so the transcript is the
        same, and a scripted session does not pay two thread hand-offs per line
        (which on a busy host made it markedly slower than the same ``-scenario``).
        """
        while True:
            if self.interactive:
                ready.wait()
                ready.clear()
            line = self._read_line()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:
                return  # the run has ended (its loop is closed): a line read late is dropped
            if line is None:
                return

    async def run(self) -> None:
        """Serve until quit or end of input."""
        loop = asyncio.get_running_loop()
        if self.interactive:
            _enable_readline()
        self.stdout.write(banner() + "\n")
        self.stdout.flush()
        if not self.interactive:
            self.control.settle()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        ready = threading.Event()
        # A daemon thread: a prompt blocked in input() must not keep the process alive.
        threading.Thread(
            target=self._reader, args=(loop, lines, ready), name="hmp-stdin", daemon=True
        ).start()
        ready.set()
        while True:
            line = await lines.get()
            if line is None:
                return
            if not self.interactive:
                self.stdout.write(PROMPT + line + "\n")
            self.stdout.write(self.run_line(line))
            self.stdout.flush()
            if self.control.quit_requested:
                return
            ready.set()
