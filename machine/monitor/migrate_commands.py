"""The migration commands' front end: argument rules, status, and a pluggable backend.

``migrate``, ``migrate-incoming`` and ``query-migrate`` check what QEMU 7.2 checks
before anything moves (a URI with a known scheme, no migration already running,
not waiting for an incoming one, ``-incoming`` given, once only) and then hand the
work to a :class:`MigrationBackend`. The default backend refuses with a plain
"not supported by this build" text; the migration stream itself is another
module's job, which plugs in here and reports progress with :meth:`Migration.set_status`.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

import attrs

from spapr.errors import QemuError

#: URI schemes QEMU 7.2 knows (migration.c, qemu_start_incoming_migration), plus this
#: emulator's ``file:`` (QEMU 7.2 itself refuses it; later QEMU added it).
URI_SCHEMES = ("tcp:", "unix:", "vsock:", "rdma:", "exec:", "fd:", "file:")


class MigrationStatus(enum.Enum):
    """QEMU's MigrationStatus values (query-migrate ``status``)."""

    NONE = "none"
    SETUP = "setup"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    ACTIVE = "active"
    POSTCOPY_ACTIVE = "postcopy-active"
    POSTCOPY_PAUSED = "postcopy-paused"
    POSTCOPY_RECOVER = "postcopy-recover"
    COMPLETED = "completed"
    FAILED = "failed"
    COLO = "colo"
    PRE_SWITCHOVER = "pre-switchover"
    DEVICE = "device"
    WAIT_UNPLUG = "wait-unplug"


#: States in which a migration "is running" (migration_is_running).
RUNNING_STATES = frozenset(
    {
        MigrationStatus.SETUP,
        MigrationStatus.ACTIVE,
        MigrationStatus.POSTCOPY_ACTIVE,
        MigrationStatus.POSTCOPY_PAUSED,
        MigrationStatus.POSTCOPY_RECOVER,
        MigrationStatus.COLO,
        MigrationStatus.PRE_SWITCHOVER,
        MigrationStatus.DEVICE,
        MigrationStatus.WAIT_UNPLUG,
        MigrationStatus.CANCELLING,
    }
)


class MigrationBackend(Protocol):
    """Moves the machine's state; called after the front end's checks passed."""

    def start_outgoing(self, migration: Migration, uri: str) -> None:
        """Begin sending to ``uri`` (QemuError to refuse)."""
        ...

    def start_incoming(self, migration: Migration, uri: str) -> None:
        """Begin listening on ``uri`` (QemuError to refuse)."""
        ...


class UnsupportedMigration:
    """The default backend: this build has no migration stream."""

    def start_outgoing(self, migration: Migration, uri: str) -> None:
        raise QemuError(f"Migration to '{uri}' is not supported by this build of the emulator")

    def start_incoming(self, migration: Migration, uri: str) -> None:
        raise QemuError(
            f"Incoming migration from '{uri}' is not supported by this build of the emulator"
        )


@attrs.frozen
class MigrationStats:
    """What a completed outgoing migration reports (query-migrate's times and ``ram``).

    The stream stands in for guest RAM (the target rebuilds RAM by replay), so
    ``transferred`` is the stream's size, sent as the "normal" pages, and every
    other page of guest RAM counts as a duplicate (QEMU's zero pages). One pass,
    the VM stopped: two bitmap syncs, everything sent during the downtime.
    """

    total_time_ms: int
    setup_time_ms: int
    downtime_ms: int
    transferred: int
    ram_size: int
    page_size: int = 4096

    def ram(self) -> dict[str, Any]:
        """query-migrate's ``ram`` member."""
        pages = -(-self.transferred // self.page_size)
        seconds = self.total_time_ms / 1000
        mbps = self.transferred * 8 / 1e6 / seconds if seconds else 0.0
        return {
            "transferred": self.transferred,
            "remaining": 0,
            "total": self.ram_size,
            "duplicate": max(0, self.ram_size // self.page_size - pages),
            "skipped": 0,
            "normal": pages,
            "normal-bytes": pages * self.page_size,
            "dirty-pages-rate": 0,
            "mbps": mbps,
            "dirty-sync-count": 2,
            "postcopy-requests": 0,
            "page-size": self.page_size,
            "multifd-bytes": 0,
            "pages-per-second": 0,
            "precopy-bytes": 0,
            "downtime-bytes": self.transferred,
            "postcopy-bytes": 0,
        }


@attrs.define
class Migration:
    """Migration state of one machine: status, the incoming-started latch, the backend."""

    backend: MigrationBackend = attrs.field(factory=UnsupportedMigration)
    status: MigrationStatus = MigrationStatus.NONE
    incoming_started: bool = False
    #: Called with the new status (the control layer mirrors it into the machine).
    on_status: list[Any] = attrs.field(factory=list)
    #: Why the last migration failed (query-migrate's ``error-desc``).
    error_desc: str | None = None
    #: The completed outgoing migration's report.
    stats: MigrationStats | None = None
    #: Where an incoming migration listens (``unix:PATH``, ``tcp:HOST:PORT``), while it does.
    listening: list[str] = attrs.field(factory=list)

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATES

    def set_status(self, status: MigrationStatus) -> None:
        """The backend reports progress; listeners see every change."""
        if status is MigrationStatus.SETUP:
            self.error_desc, self.stats = None, None
        self.status = status
        for listener in list(self.on_status):
            listener(status)

    def migrate(
        self, uri: str, *, inmigrate: bool, postmigrate: bool, resume: bool = False
    ) -> None:
        """qmp_migrate: migrate_prepare's checks, the URI scheme, then the backend."""
        if resume and self.status is not MigrationStatus.POSTCOPY_PAUSED:
            raise QemuError("Cannot resume if there is no paused migration")
        if not resume and self.running:
            raise QemuError("There's a migration process in progress")
        if inmigrate:
            raise QemuError("Guest is waiting for an incoming migration")
        if postmigrate:
            raise QemuError("Can't migrate the vm that was paused due to previous migration")
        if not uri.startswith(URI_SCHEMES):
            # migrate_prepare already set the state to setup; the unknown scheme fails it
            # (query-migrate then says "failed", with no error-desc: checked against QEMU 7.2).
            self.set_status(MigrationStatus.SETUP)
            self.set_status(MigrationStatus.FAILED)
            raise QemuError("Parameter 'uri' expects a valid migration protocol")
        self.backend.start_outgoing(self, uri)

    def migrate_incoming(self, uri: str, *, inmigrate: bool) -> None:
        """qmp_migrate_incoming: once, only with -incoming, a known scheme, then the backend."""
        if self.incoming_started:
            raise QemuError("The incoming migration has already been started")
        if not inmigrate:
            raise QemuError("'-incoming' was not specified on the command line")
        if not uri.startswith(URI_SCHEMES):
            raise QemuError(f"unknown migration protocol: {uri}")
        self.backend.start_incoming(self, uri)
        self.incoming_started = True

    def fail(self, reason: str) -> None:
        """The migration failed for ``reason`` (status failed, error-desc set)."""
        self.error_desc = reason
        self.set_status(MigrationStatus.FAILED)

    def query(self) -> dict[str, Any]:
        """query-migrate: ``{}`` before any migration, else at least the status.

        A completed outgoing migration adds its times and ``ram``; a failed one its
        ``error-desc``; a target still listening its ``socket-address`` list.
        """
        out: dict[str, Any] = {}
        if self.status is not MigrationStatus.NONE:
            out["status"] = self.status.value
        if self.stats is not None and self.status is MigrationStatus.COMPLETED:
            stats = self.stats
            out.update(
                {
                    "setup-time": stats.setup_time_ms,
                    "downtime": stats.downtime_ms,
                    "total-time": stats.total_time_ms,
                    "ram": stats.ram(),
                }
            )
        if self.error_desc is not None and self.status is MigrationStatus.FAILED:
            out["error-desc"] = self.error_desc
        if self.listening:
            out["socket-address"] = [_socket_address(a) for a in self.listening]
        return out


def _socket_address(uri: str) -> dict[str, str]:
    """QMP's SocketAddress for ``unix:PATH`` / ``tcp:HOST:PORT``."""
    scheme, _, rest = uri.partition(":")
    if scheme == "unix":
        return {"type": "unix", "path": rest}
    host, _, port = rest.rpartition(":")
    return {"type": "inet", "host": host, "port": port}


def socket_uri(address: dict[str, str]) -> str:
    """QEMU's socket_uri: a SocketAddress as ``unix:PATH`` / ``tcp:HOST:PORT``."""
    if address.get("type") == "unix":
        return f"unix:{address.get('path', '')}"
    return f"tcp:{address.get('host', '')}:{address.get('port', '')}"
