"""HMP migration as QEMU 7.2 has it: ``migrate [-d] [-b] [-i] [-r] uri``, ``migrate_incoming uri``,
``info migrate``.

The commands run the same front end as QMP (``MachineControl.migrate``, whose
backend carries the stream over ``file:``, ``unix:``, ``tcp:`` or ``exec:``) and
print QEMU 7.2's texts: nothing on success; ``Error: ...`` when QEMU's QMP
command fails; for a migration that fails after it started (a socket nobody
listens on), QEMU's non-detached ``migrate`` waits for the end and reports the
reason on stderr once more. ``info migrate`` formats query-migrate the way QEMU's
hmp_info_migrate does, after the migration globals of the machine type.
``-b``/``-i`` (block migration) have no disks to carry here and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from machine.config.cmdline import PROG
from machine.config.machine_types import MachineType
from machine.monitor.control import MachineControl
from machine.monitor.migrate_commands import MigrationStatus, socket_uri

#: ``clear-bitmap-shift`` of every machine type (the migration object's default).
CLEAR_BITMAP_SHIFT = 18


def migration_globals(machine: MachineType) -> list[tuple[str, str]]:
    """The migration object's properties as the machine type's compat settings leave them.

    pseries-2.3 and older turn off the global state, the configuration section and
    section footers (hw_compat_2_3); pseries-2.12 and older the decompression
    error check (hw_compat_2_12).
    """
    old_stream = machine.version <= (2, 3)

    def on(flag: bool) -> str:
        return "on" if flag else "off"

    return [
        ("store-global-state", on(not old_stream)),
        ("only-migratable", "off"),
        ("send-configuration", on(not old_stream)),
        ("send-section-footer", on(not old_stream)),
        ("decompress-error-check", on(machine.version > (2, 12))),
        ("clear-bitmap-shift", str(CLEAR_BITMAP_SHIFT)),
    ]


def info_migrate(control: MachineControl) -> list[str]:
    """``info migrate``: the globals, then the status, RAM and socket-address blocks."""
    info = control.migration.query()
    lines = ["globals:"]
    lines += [
        f"{name}: {value}" for name, value in migration_globals(control.machine.setup.machine)
    ]
    status = info.get("status")
    if status is not None:
        text = f"Migration status: {status}"
        if status == MigrationStatus.FAILED.value and "error-desc" in info:
            text += f" ({info['error-desc']})"
        lines.append(text)
        lines.append(f"total time: {info.get('total-time', 0)} ms")
        if "expected-downtime" in info:
            lines.append(f"expected downtime: {info['expected-downtime']} ms")
        if "downtime" in info:
            lines.append(f"downtime: {info['downtime']} ms")
        if "setup-time" in info:
            lines.append(f"setup: {info['setup-time']} ms")
    ram: dict[str, Any] | None = info.get("ram")
    if ram is not None:
        lines += [
            f"transferred ram: {ram['transferred'] >> 10} kbytes",
            f"throughput: {ram['mbps']:0.2f} mbps",
            f"remaining ram: {ram['remaining'] >> 10} kbytes",
            f"total ram: {ram['total'] >> 10} kbytes",
            f"duplicate: {ram['duplicate']} pages",
            f"skipped: {ram['skipped']} pages",
            f"normal: {ram['normal']} pages",
            f"normal bytes: {ram['normal-bytes'] >> 10} kbytes",
            f"dirty sync count: {ram['dirty-sync-count']}",
            f"page size: {ram['page-size'] >> 10} kbytes",
            f"multifd bytes: {ram['multifd-bytes'] >> 10} kbytes",
            f"pages-per-second: {ram['pages-per-second']}",
        ]
        if ram.get("downtime-bytes"):
            lines.append(f"downtime ram: {ram['downtime-bytes'] >> 10} kbytes")
    addresses = info.get("socket-address")
    if addresses:
        lines.append("socket address: [")
        lines += [f"\t{socket_uri(a)}" for a in addresses]
        lines.append("]")
    return lines


def migrate(control: MachineControl, args: dict[str, Any], warn: Callable[[str], None]) -> None:
    """``migrate [-d] [-b] [-i] [-r] uri``: QEMU's migrate; QemuError prints ``Error: ...``.

    Without ``-d`` QEMU waits for the end and reports a failure's reason on stderr
    (after the copy migration itself printed there).
    """
    control.migrate(args["uri"], resume=bool(args.get("resume")))
    migration = control.migration
    failed = migration.status is MigrationStatus.FAILED and migration.error_desc is not None
    if failed and not args.get("detach"):
        warn(f"{PROG}: {migration.error_desc}")


def migrate_incoming(control: MachineControl, args: dict[str, Any]) -> None:
    """``migrate_incoming uri``: start listening on (or reading from) ``uri``."""
    control.migrate_incoming(args["uri"])
