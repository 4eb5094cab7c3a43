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


@attrs.define
class Migration:
    """Migration state of one machine: status, the incoming-started latch, the backend."""

    backend: MigrationBackend = attrs.field(factory=UnsupportedMigration)
    status: MigrationStatus = MigrationStatus.NONE
    incoming_started: bool = False
    #: Called with the new status (the control layer mirrors it into the machine).
    on_status: list[Any] = attrs.field(factory=list)

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATES

    def set_status(self, status: MigrationStatus) -> None:
        """The backend reports progress; listeners see every change."""
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

    def query(self) -> dict[str, Any]:
        """query-migrate: ``{}`` before any migration, else at least the status."""
        if self.status is MigrationStatus.NONE:
            return {}
        return {"status": self.status.value}
