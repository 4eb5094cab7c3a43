"""QMP sessions with real QEMU 7.2 and with this emulator, step by step, and their transcripts.

A differential run sends the same requests to both and compares what comes back.
:class:`QemuSession` starts ``qemu-system-ppc64`` with a QMP UNIX socket in a
scratch directory and speaks QMP over it as any client does (one JSON object per
line back, requests sent compact); :class:`EmulatorSession` drives this emulator's
own QMP connection object in-process (the same sans-IO
:class:`~machine.monitor.qmp_protocol.QmpConnection` its socket server uses), so it
is deterministic and fast. Both return a :class:`Exchange` per request: the events
that arrived before the response, and the response. :func:`normalize` drops what
differs between any two runs (timestamps, host thread ids), and :class:`Transcript`
prints a session as QMP lines a user can replay by hand against either program.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_protocol import QmpConnection

#: Options every differential run adds, as the oracle's QEMU runs did (no guest code runs).
ORACLE_OPTIONS: tuple[str, ...] = (
    "-nographic",
    "-display",
    "none",
    "-nodefaults",
    "-S",
    "-seed",
    "1",
)
#: The emulator's reference guest is off: QEMU sits in SLOF, nothing answers hotplug events.
NO_GUEST: tuple[str, ...] = ("-guest", "none")
#: Longest wait for one QMP response from QEMU before the run is declared hung.
RESPONSE_TIMEOUT_S = 20.0

_TID = re.compile(r"thread_id=\d+")


def qemu_binary() -> str | None:
    """``qemu-system-ppc64`` on PATH, or None."""
    return shutil.which("qemu-system-ppc64")


def normalize(message: Any) -> Any:
    """A QMP message without what differs between runs: timestamps and host thread ids.

    ``thread-id`` members (query-cpus-fast) and ``thread_id=N`` in HMP text are host
    thread numbers; event ``timestamp`` members are wall-clock times.
    """
    if isinstance(message, dict):
        return {
            key: ("<tid>" if key in ("thread-id", "thread_id") else normalize(value))
            for key, value in message.items()
            if key != "timestamp"
        }
    if isinstance(message, list):
        return [normalize(value) for value in message]
    if isinstance(message, str):
        return _TID.sub("thread_id=<tid>", message)
    return message


def compact(message: Any) -> str:
    """A message as one compact JSON line (what is sent, and what is compared: key order kept)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class Exchange:
    """One request and what came back: the events before the response, and the response.

    ``response`` is None when the program died (or hung) instead of answering.
    """

    request: Any
    events: tuple[dict[str, Any], ...]
    response: dict[str, Any] | None

    def normalized(self) -> tuple[str, str]:
        """(events, response) as compact JSON without run-dependent values, key order kept."""
        return (
            compact(normalize(list(self.events))),
            compact(normalize(self.response)),
        )


class QmpSession(Protocol):
    """What a differential run needs of either side."""

    def execute(self, request: Any) -> Exchange:
        """Send one request; the events before its response, and the response."""
        ...

    def idle(self, seconds: float) -> tuple[dict[str, Any], ...]:
        """Let time pass with no request; the events that arrived meanwhile."""
        ...

    def close(self) -> None:
        """End the session (the program exits)."""
        ...


class QemuUnresponsive(TimeoutError):
    """QEMU neither answered nor died within the session's timeout."""


class QemuExited(Exception):
    """QEMU closed the monitor (it exited or crashed) instead of answering."""

    def __init__(self, returncode: int | None, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"QEMU exited ({describe_exit(returncode)}): {stderr.strip()[-400:]}")


def describe_exit(returncode: int | None) -> str:
    """``exit status 1``, ``SIGABRT``, ``SIGSEGV``... for a process's return code."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class QemuSession:
    """Real ``qemu-system-ppc64`` with a QMP UNIX socket, negotiated and ready for commands.

    ``argv`` is the machine's command line without the program name and without
    ``-qmp``; :data:`ORACLE_OPTIONS` are added unless ``oracle_options`` is False.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        binary: str | None = None,
        oracle_options: bool = True,
        timeout: float = RESPONSE_TIMEOUT_S,
    ) -> None:
        found = binary or qemu_binary()
        if found is None:
            raise FileNotFoundError("qemu-system-ppc64 is not installed")
        self.binary = found
        self.timeout = timeout
        self._dir = Path(tempfile.mkdtemp(prefix="conformance-qemu-"))
        self.socket_path = self._dir / "qmp.sock"
        extra = ORACLE_OPTIONS if oracle_options else ()
        self.argv = [*argv, *extra]
        self._stderr_file = open(self._dir / "stderr", "w+b")  # noqa: SIM115 (kept for the run)
        self.process = subprocess.Popen(
            [self.binary, *self.argv, "-qmp", f"unix:{self.socket_path},server=on,wait=off"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr_file,
            cwd=self._dir,
        )
        self._sock: socket.socket | None = None
        self._buffer = b""
        self.greeting: dict[str, Any] | None = None
        try:
            self._connect()
            self.greeting = self._read_message()
            negotiated = self.execute({"execute": "qmp_capabilities"})
            if negotiated.response != {"return": {}}:
                raise RuntimeError(f"QMP negotiation failed: {negotiated.response}")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ plumbing

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise QemuExited(self.process.returncode, self.stderr())
            if self.socket_path.exists():
                sock = socket.socket(socket.AF_UNIX)
                try:
                    sock.connect(str(self.socket_path))
                except OSError:
                    sock.close()
                else:
                    self._sock = sock
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("QEMU's QMP socket did not appear")
            time.sleep(0.002)

    def stderr(self) -> str:
        """What QEMU printed on stderr so far."""
        self._stderr_file.flush()
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode(errors="replace")

    def _read_line(self, deadline: float) -> bytes | None:
        """One line (without CR LF), or None at the deadline; QemuExited at EOF."""
        assert self._sock is not None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._sock], [], [], remaining)
            if not ready:
                return None
            chunk = self._sock.recv(65536)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
                raise QemuExited(self.process.poll(), self.stderr())
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def _read_message(self, deadline: float | None = None) -> dict[str, Any]:
        line = self._read_line(deadline if deadline is not None else time.monotonic() + 20)
        if line is None:
            raise QemuUnresponsive("QEMU did not answer")
        message: dict[str, Any] = json.loads(line)
        return message

    # ------------------------------------------------------------ commands

    def send_bytes(self, data: bytes) -> None:
        """Send raw bytes (requests are usually sent through :meth:`execute`)."""
        assert self._sock is not None
        self._sock.sendall(data)

    def execute(self, request: Any) -> Exchange:
        """Send ``request`` as compact JSON; collect events until the response.

        Raises :class:`QemuExited` when QEMU dies first (the crash is the caller's to
        judge) and :class:`QemuUnresponsive` when it neither answers nor dies.
        """
        self.send_bytes(compact(request).encode())
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.timeout
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise QemuUnresponsive(f"QEMU did not answer {compact(request)}")
            message = json.loads(line)
            if isinstance(message, dict) and "event" in message:
                events.append(message)
                continue
            return Exchange(request, tuple(events), message)

    def idle(self, seconds: float) -> tuple[dict[str, Any], ...]:
        """Wait ``seconds`` of wall time; the events that arrived."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (line := self._read_line(deadline)) is not None:
            events.append(json.loads(line))
        return tuple(events)

    def close(self) -> None:
        """Kill QEMU and remove the scratch directory."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._stderr_file.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def returncode(self) -> int | None:
        """QEMU's exit status once it has exited."""
        return self.process.poll()

    def __enter__(self) -> QemuSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmulatorSession:
    """This emulator, built from the same command line, with one in-process QMP connection.

    ``guest`` is the ``-guest`` value (``none`` by default: QEMU in SLOF runs no OS
    either). Nothing here uses sockets or threads; virtual time moves only in
    :meth:`idle` while the VM runs a guest.
    """

    def __init__(
        self, argv: Sequence[str], *, guest: str = "none", oracle_options: bool = True
    ) -> None:
        self.stderr = io.StringIO()
        extra = ORACLE_OPTIONS if oracle_options else ()
        self.argv = [*argv, *extra, "-guest", guest]
        self.machine = build_machine(self.argv, self.stderr)
        self.machine.reset()
        self.control = MachineControl(self.machine, warn=lambda line: print(line, file=self.stderr))
        self.connection = QmpConnection(QmpCommands(self.control))
        self.control.sinks.append(self.connection.event)
        self.connection.connected()
        self.greeting = self._messages()[0]
        negotiated = self.execute({"execute": "qmp_capabilities"})
        assert negotiated.response == {"return": {}}, negotiated

    def _messages(self) -> list[dict[str, Any]]:
        data = self.connection.data_to_send()
        return [json.loads(line) for line in data.split(b"\r\n") if line]

    def execute(self, request: Any) -> Exchange:
        """Feed ``request`` (as compact JSON bytes, as a client sends it); events and response."""
        self.connection.receive_data(compact(request).encode())
        messages = self._messages()
        events = [m for m in messages if isinstance(m, dict) and "event" in m]
        responses = [m for m in messages if not (isinstance(m, dict) and "event" in m)]
        response = responses[0] if responses else None
        return Exchange(request, tuple(events), response)

    def idle(self, seconds: float) -> tuple[dict[str, Any], ...]:
        """Let ``seconds`` of virtual time pass (only a running VM with a guest moves)."""
        control = self.control
        if control.runstate.running and control.guest_loaded:
            self.machine.sched.run_for(round(seconds * 1e9))
        return tuple(m for m in self._messages() if "event" in m)

    def close(self) -> None:
        """Nothing to release (kept for symmetry with :class:`QemuSession`)."""
        self.control.sinks.clear()

    def __enter__(self) -> EmulatorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.frozen
class Transcript:
    """A QMP session as lines to replay by hand: ``->`` requests, ``<-`` events and responses."""

    argv: tuple[str, ...]
    exchanges: tuple[Exchange, ...]
    #: A note printed after the last exchange (a crash, a mismatch).
    note: str = ""

    def lines(self) -> list[str]:
        """The transcript, one message per line, after the command lines of both programs."""
        qemu = " ".join(["qemu-system-ppc64", *self.argv, *ORACLE_OPTIONS])
        emu = " ".join(["python -m spapr", *self.argv, *ORACLE_OPTIONS, *NO_GUEST])
        out = [
            f"# QEMU:     {qemu} -qmp unix:qmp.sock,server=on,wait=off",
            f"# emulator: {emu} -qmp unix:qmp.sock,server=on,wait=off",
            "-> " + compact({"execute": "qmp_capabilities"}),
            "<- " + compact({"return": {}}),
        ]
        for exchange in self.exchanges:
            out.append("-> " + compact(exchange.request))
            out.extend("<- " + compact(normalize(e)) for e in exchange.events)
            if exchange.response is not None:
                out.append("<- " + compact(normalize(exchange.response)))
        if self.note:
            out.extend("# " + line for line in self.note.splitlines())
        return out

    def text(self) -> str:
        """:meth:`lines` joined, ending in a newline."""
        return "\n".join(self.lines()) + "\n"


@contextlib.contextmanager
def both(argv: Sequence[str]) -> Iterator[tuple[QemuSession, EmulatorSession]]:
    """A QEMU session and an emulator session on the same command line."""
    with QemuSession(argv) as qemu, EmulatorSession(argv) as emulator:
        yield qemu, emulator


def environment_cpu_count() -> int:
    """Cores this process may use (for ``-j auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
