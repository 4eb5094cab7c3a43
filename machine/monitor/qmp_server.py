"""QMP over sockets: ``-qmp unix:PATH,server=on[,wait=off]`` and ``-qmp tcp:HOST:PORT,...``.

A thin asyncio transport around :class:`~machine.monitor.qmp_protocol.QmpConnection`:
each accepted client gets its own connection (several may be connected at once,
which QEMU's single-client chardev does not allow), requests are answered in the
event loop thread as they complete, and events reach every negotiated client the
moment the machine emits them. TCP listens on loopback addresses only unless the
runner was told to allow others.

One client cannot hurt the others or the machine: an unexpected exception while
serving it (a bug) is reported on stderr and closes that connection only; a client
that does not read its replies stops being read once :data:`OUTPUT_HIGH_WATER`
bytes wait for it (its requests then wait in its socket, so at most one read's
worth of requests is ever answered ahead), and is dropped if events alone pile up
past :data:`OUTPUT_LIMIT` bytes. A UNIX socket is created with the permissions the
process umask gives, as QEMU's is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

import attrs

from machine.config.cmdline import PROG
from machine.config.process_options import ProcessOptions
from machine.monitor.qmp_commands import CommandTable, MonitorHost
from machine.monitor.qmp_json import DEFAULT_MAX_MESSAGE_BYTES
from machine.monitor.qmp_protocol import QmpConnection
from spapr.errors import QemuError

#: How long a refused client may keep sending before its connection is dropped.
LINGER_S = 5.0
#: Output waiting for a client above which its requests are no longer read.
OUTPUT_HIGH_WATER = 256 << 10
#: Output waiting for a client (events it never reads) above which it is dropped.
OUTPUT_LIMIT = 16 << 20
_BOOL_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


@attrs.frozen
class QmpEndpoint:
    """Where a QMP server listens, parsed from its ``-qmp`` text."""

    spec: str
    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0
    wait: bool = True
    #: A listening socket inherited as this file descriptor (``-chardev socket,fd=N``).
    fd: int | None = None
    #: The ``-chardev`` id when the monitor is ``-mon chardev=ID,mode=control``.
    chardev: str | None = None


def chardev_endpoints(process: ProcessOptions) -> list[QmpEndpoint]:
    """The QMP monitors of ``-mon chardev=ID,mode=control``, on their socket chardevs."""
    out = []
    for mon in process.mons:
        dev = next(c for c in process.chardevs if c.id == mon.chardev)
        if dev.fd is not None:
            out.append(QmpEndpoint(dev.location, "unix", fd=dev.fd, wait=False, chardev=dev.id))
        else:
            path = dev.path or ""
            out.append(QmpEndpoint(dev.location, "unix", path=path, wait=False, chardev=dev.id))
    return out


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_qmp_endpoint(spec: str, *, allow_remote: bool = False) -> QmpEndpoint:
    """Read a ``-qmp`` value (QemuError with ``-qmp <spec>`` as location on refusal)."""
    location = f"-qmp {spec}"
    head, *options = spec.split(",")
    flags: dict[str, bool] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep:
            name, value = (name[2:], "off") if name.startswith("no") else (name, "on")
        if name not in ("server", "wait") or value not in _BOOL_WORDS:
            raise QemuError(f"option '{option}' is not modeled by this emulator", location=location)
        flags[name] = _BOOL_WORDS[value]
    if not head.startswith(("unix:", "tcp:")):
        raise QemuError(
            "only unix: and tcp: QMP sockets are modeled by this emulator", location=location
        )
    if not flags.get("server", False):
        raise QemuError(
            "only listening QMP sockets (server=on) are modeled by this emulator", location=location
        )
    wait = flags.get("wait", True)
    if head.startswith("unix:"):
        path = head[len("unix:") :]
        if not path:
            raise QemuError("UNIX socket path must not be empty", location=location)
        return QmpEndpoint(spec, "unix", path=path, wait=wait)
    if head.startswith("tcp:"):
        host, sep, port_text = head[len("tcp:") :].rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise QemuError(f"port number missing or invalid in '{head}'", location=location)
        if not is_loopback(host) and not allow_remote:
            shown = host or "all interfaces"
            raise QemuError(
                f"refusing to listen on non-loopback address '{shown}' (the monitor has no "
                "authentication; use -allow-remote-qmp to permit it)",
                location=location,
            )
        return QmpEndpoint(spec, "tcp", host=host, port=int(port_text), wait=wait)
    raise QemuError(
        "only unix: and tcp: QMP sockets are modeled by this emulator", location=location
    )


def inherited_socket(endpoint: QmpEndpoint) -> socket.socket:
    """The listening socket passed as ``fd=N`` (QemuError as QEMU's if it is none)."""
    assert endpoint.fd is not None
    try:
        sock = socket.socket(fileno=endpoint.fd)
    except OSError:
        raise QemuError(
            f"File descriptor '{endpoint.fd}' is not a socket", location=endpoint.spec
        ) from None
    sock.setblocking(False)
    return sock


class _QmpClient(asyncio.Protocol):
    """One accepted socket: feeds the sans-IO connection and writes what it produces."""

    def __init__(self, server: QmpServer) -> None:
        self.server = server
        self.conn = QmpConnection(server.commands, max_bytes=server.max_bytes)
        self.transport: asyncio.Transport | None = None
        self._half_closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=OUTPUT_HIGH_WATER)
        self.server.clients.append(self)
        self.server.control.sinks.append(self.on_event)
        self.conn.connected()
        self.flush()
        self.server.client_connected()

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
            self.flush()
        except Exception as exc:  # a bug must cost this connection only, never the server
            self._internal_error(exc)
        self.server.after_command()

    def on_event(self, message: dict[str, Any]) -> None:
        try:
            self.conn.event(message)
            self.flush()
        except Exception as exc:
            self._internal_error(exc)

    def pause_writing(self) -> None:
        """The client is not reading: stop reading its requests until it catches up."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _internal_error(self, exc: Exception) -> None:
        self.server.report(f"QMP client dropped after an internal error: {exc!r}")
        self.conn.close()
        if self.transport is not None:
            self.transport.abort()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if data:
            transport.write(data)
            if transport.get_write_buffer_size() > OUTPUT_LIMIT:
                self.server.report(
                    f"QMP client dropped: {OUTPUT_LIMIT >> 20} MiB of output it does not read"
                )
                self.conn.close()
                transport.abort()
                return
        if self.conn.closing and not self._half_closed:
            # Half-close: the client reads our last line and EOF; whatever it is still
            # sending is read and dropped (closing with unread input would reset the
            # connection and could lose the error). Give up on it after a while.
            self._half_closed = True
            if transport.can_write_eof():
                transport.write_eof()
                asyncio.get_running_loop().call_later(LINGER_S, transport.close)
            else:
                transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.close()
        with contextlib.suppress(ValueError):
            self.server.control.sinks.remove(self.on_event)
        with contextlib.suppress(ValueError):
            self.server.clients.remove(self)


class QmpServer:
    """A listening QMP socket and its clients."""

    def __init__(
        self,
        endpoint: QmpEndpoint,
        commands: CommandTable,
        *,
        max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        on_command: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.commands = commands
        self.control: MonitorHost = commands.host
        self.max_bytes = max_bytes
        self.on_command = on_command
        #: Where the server's own problems go (the machine's warning printer: stderr).
        self.report: Callable[[str], None] = lambda text: self.control.warn(f"{PROG}: {text}")
        self.clients: list[_QmpClient] = []
        self._server: asyncio.AbstractServer | None = None
        self._first_client = asyncio.Event()

    async def start(self) -> None:
        """Bind and listen (a stale UNIX socket file is replaced, as QEMU does)."""
        loop = asyncio.get_running_loop()
        if self.endpoint.fd is not None:
            self._server = await loop.create_unix_server(
                lambda: _QmpClient(self), sock=inherited_socket(self.endpoint)
            )
        elif self.endpoint.kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint.path)
            self._server = await loop.create_unix_server(
                lambda: _QmpClient(self), self.endpoint.path
            )
        else:
            self._server = await loop.create_server(
                lambda: _QmpClient(self), self.endpoint.host or None, self.endpoint.port
            )

    def chardev_info(self) -> dict[str, Any]:
        """This monitor's chardev as query-chardev shows it."""
        server = self._server
        assert isinstance(server, asyncio.Server) and server.sockets
        path = server.sockets[0].getsockname()
        return {
            "frontend-open": True,
            "filename": f"unix:{path},server=on",
            "label": self.endpoint.chardev,
        }

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        server = self._server
        assert isinstance(server, asyncio.Server) and server.sockets
        return int(server.sockets[0].getsockname()[1])

    def client_connected(self) -> None:
        self._first_client.set()

    async def wait_for_client(self) -> None:
        """wait=on: block until the first client connects."""
        await self._first_client.wait()

    def after_command(self) -> None:
        if self.on_command is not None:
            self.on_command()

    def close_clients(self) -> None:
        """Close every client once its pending output is written."""
        for client in list(self.clients):
            client.conn.close()
            if client.transport is not None:
                client.transport.write(client.conn.data_to_send())
                client.transport.close()

    async def close(self) -> None:
        """Stop listening, close the clients and remove the socket file."""
        self.close_clients()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.endpoint.kind == "unix" and self.endpoint.fd is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint.path)
