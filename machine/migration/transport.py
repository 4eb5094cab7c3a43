"""Carrying a migration stream over QEMU 7.2's ``unix:``, ``tcp:``, ``exec:`` and the own ``file:``.

The stream is the bytes :func:`machine.migration.replay.capture` produces; this
module only moves them. The source sends them whole and closes (:func:`send_stream`);
the target listens or reads (:class:`IncomingChannel`) until the sender closes,
then hands the bytes over. That is all QEMU's channels do with a stream, too:

``unix:PATH``   the target listens on a Unix socket (an old socket file is replaced,
                as QEMU does); the source connects and writes
``tcp:HOST:PORT``  the same over TCP, here on loopback addresses only: the stream
                is not authenticated, and a lab runs both ends on one host
``exec:CMD``    the source pipes the stream into ``/bin/sh -c CMD``; the target reads
                the stream from that command's standard output
``file:PATH``   the emulator's own: written to and read from a file

Errors carry QEMU's texts where QEMU has one ("Failed to connect to '...': ...",
"Failed to bind socket to ...: ...", "Failed to find an available port: ...").
The target's waiting happens on a helper thread, so a monitor keeps answering
while it listens; :meth:`IncomingChannel.poll` gives the stream to the caller's
thread once it has arrived.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator

import attrs

from spapr.errors import QemuError

#: Schemes this module carries.
CARRIED_SCHEMES = ("file:", "unix:", "tcp:", "exec:")
#: How long a source waits to connect and to hand the stream over.
SEND_TIMEOUT_S = 30.0
_SHELL = "/bin/sh"


@attrs.frozen
class MigrationUri:
    """A parsed migration URI."""

    text: str
    scheme: str  # "file", "unix", "tcp" or "exec"
    path: str = ""
    host: str = ""
    port: int = 0
    command: str = ""

    @property
    def socket_address(self) -> str:
        """QEMU's ``socket_uri`` spelling (``info migrate``'s socket address list)."""
        if self.scheme == "tcp":
            return f"tcp:{self.host}:{self.port}"
        return f"unix:{self.path}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_uri(uri: str) -> MigrationUri:
    """Read a URI of a carried scheme; QemuError for what this emulator does not carry."""
    scheme, sep, rest = uri.partition(":")
    if not sep or f"{scheme}:" not in CARRIED_SCHEMES:
        raise QemuError(f"migration over '{scheme}:' is not modeled by this emulator")
    if scheme in ("file", "unix"):
        if not rest:
            raise QemuError(f"unknown migration protocol: {uri}")
        return MigrationUri(uri, scheme, path=rest)
    if scheme == "exec":
        if not rest:
            raise QemuError(f"unknown migration protocol: {uri}")
        return MigrationUri(uri, scheme, command=rest)
    if "," in rest:
        raise QemuError(f"options of tcp: migration are not modeled by this emulator: {uri}")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise QemuError(f"address resolution failed for {rest}: port number missing or invalid")
    host = host.strip("[]")
    if not is_loopback(host):
        shown = host or "all interfaces"
        raise QemuError(
            f"tcp: migration is limited to loopback addresses by this emulator, not "
            f"'{shown}' (the stream is not authenticated)"
        )
    return MigrationUri(uri, scheme, host=host, port=int(port_text))


@contextlib.contextmanager
def _default_signal_mask() -> Iterator[None]:
    """Start a child with no signal blocked (the command line's runner blocks SIGTERM,
    SIGINT and SIGHUP in its threads to learn their sender; a child inherits the mask
    of the thread that starts it, and ``/bin/sh -c CMD`` must stop on them as usual).
    """
    old_mask = signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _strerror(exc: OSError) -> str:
    return exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))


# ------------------------------------------------------------------------------ sending


def send_stream(uri: MigrationUri, data: bytes, timeout: float = SEND_TIMEOUT_S) -> None:
    """Deliver ``data`` to ``uri``; QemuError with QEMU's text when it cannot."""
    if uri.scheme == "file":
        _write_file(uri.path, data)
    elif uri.scheme == "exec":
        _send_exec(uri.command, data, timeout)
    else:
        _send_socket(uri, data, timeout)


def _write_file(path: str, data: bytes) -> None:
    try:
        f = open(path, "wb")  # noqa: SIM115 (the write error is reported apart)
    except OSError as exc:
        raise QemuError(f"Failed to open file '{path}': {exc.strerror}") from None
    with f:
        try:
            f.write(data)
        except OSError as exc:
            raise QemuError(f"Failed to write to file '{path}': {exc.strerror}") from None


def _send_socket(uri: MigrationUri, data: bytes, timeout: float) -> None:
    where = uri.path if uri.scheme == "unix" else f"{uri.host}:{uri.port}"
    try:
        if uri.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(uri.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
    except OSError as exc:
        raise QemuError(f"Failed to connect to '{where}': {_strerror(exc)}") from None
    with sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            # wait until the target has read everything and closed its end
            while sock.recv(4096):
                pass
        except OSError as exc:
            raise QemuError(f"Unable to write to socket: {_strerror(exc)}") from None


def _send_exec(command: str, data: bytes, timeout: float) -> None:
    try:
        with _default_signal_mask():
            proc = subprocess.Popen([_SHELL, "-c", command], stdin=subprocess.PIPE)
    except OSError as exc:
        raise QemuError(f"Failed to execute '{command}': {_strerror(exc)}") from None
    try:
        proc.communicate(data, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        proc.kill()
        proc.wait()
        raise QemuError(f"Unable to write to command '{command}': {exc}") from None


# ------------------------------------------------------------------------------ receiving


class IncomingChannel:
    """A target waiting for a stream on ``uri``: listening (unix, tcp) or reading (exec, file).

    Created listening (QemuError with QEMU's text if it cannot); a helper thread
    accepts one connection (or runs the command) and reads until end of stream.
    """

    def __init__(self, uri: MigrationUri) -> None:
        self.uri = uri
        self._listener: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._done = threading.Event()
        self._data = b""
        self._error: str | None = None
        self._closed = False
        if uri.scheme == "file":
            self._read_file()
            return
        if uri.scheme == "exec":
            try:
                with _default_signal_mask():
                    self._proc = subprocess.Popen(
                        [_SHELL, "-c", uri.command], stdout=subprocess.PIPE
                    )
            except OSError as exc:
                raise QemuError(f"Failed to execute '{uri.command}': {_strerror(exc)}") from None
        else:
            self._listener = self._listen(uri)
        threading.Thread(target=self._receive, name="migration-incoming", daemon=True).start()

    @staticmethod
    def _listen(uri: MigrationUri) -> socket.socket:
        if uri.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with contextlib.suppress(FileNotFoundError):
                if os.path.exists(uri.path) and not os.path.isdir(uri.path):
                    os.unlink(uri.path)
            try:
                sock.bind(uri.path)
                sock.listen(1)
            except OSError as exc:
                sock.close()
                raise QemuError(f"Failed to bind socket to {uri.path}: {_strerror(exc)}") from None
            return sock
        try:
            infos = socket.getaddrinfo(uri.host, uri.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise QemuError(f"address resolution failed for {uri.host}:{uri.port}: {exc}") from None
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(1)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise QemuError(f"Failed to find an available port: {_strerror(exc)}") from None
            raise QemuError(f"Failed to bind socket: {_strerror(exc)}") from None
        return sock

    def _read_file(self) -> None:
        try:
            with open(self.uri.path, "rb") as f:
                self._data = f.read()
        except OSError as exc:
            raise QemuError(f"Failed to open file '{self.uri.path}': {exc.strerror}") from None
        self._done.set()

    def _receive(self) -> None:
        chunks: list[bytes] = []
        try:
            if self._proc is not None:
                assert self._proc.stdout is not None
                chunks.append(self._proc.stdout.read())
                self._proc.wait()
            else:
                assert self._listener is not None
                conn, _ = self._listener.accept()
                with conn:
                    while chunk := conn.recv(1 << 16):
                        chunks.append(chunk)
        except OSError as exc:
            if not self._closed:
                self._error = _strerror(exc)
        finally:
            self._data = b"".join(chunks)
            self._close_listener()
            self._done.set()

    @property
    def listening(self) -> bool:
        """Still waiting for a sender."""
        return not self._done.is_set()

    def socket_addresses(self) -> list[str]:
        """Where it listens, for ``info migrate`` (sockets only, while waiting)."""
        if self.uri.scheme in ("unix", "tcp") and self.listening:
            return [self.uri.socket_address]
        return []

    def poll(self) -> bytes | None:
        """The stream once it has arrived whole, else None; QemuError if receiving failed."""
        if not self._done.is_set():
            return None
        if self._error is not None:
            raise QemuError(self._error)
        return self._data

    def wait(self, timeout: float) -> bytes:
        """Block until the stream has arrived (tests and scripted targets)."""
        if not self._done.wait(timeout):
            raise QemuError(f"no migration stream arrived on {self.uri.text} in {timeout} s")
        data = self.poll()
        assert data is not None
        return data

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
            if self.uri.scheme == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(self.uri.path)

    def close(self) -> None:
        """Stop waiting (the process is quitting)."""
        self._closed = True
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        self._close_listener()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
