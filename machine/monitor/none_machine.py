"""The monitor of ``-machine none``: a process with no board, only asked about itself.

libvirt probes an emulator with ``-machine none,accel=kvm:tcg``: no machine is
built, and the monitor answers what the emulator is (version, schema, types,
machines, CPU models, options) from the same tables as under a pseries machine,
with the same command table, so ``query-commands`` and ``query-qmp-schema`` read
the same. Commands that need a board answer as QEMU's ``none`` machine does: it has
no CPUs (``query-cpus-fast`` is empty) and no CPU hotplug.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from machine.monitor.control import EventSink, event_message
from machine.monitor.qmp_commands import (
    COMMAND_SPECS,
    Handler,
    MonitorHost,
    QmpCommand,
    TableCommands,
    introspection_commands,
    new_migration_caps,
    ordered_table,
    version_info,
)
from spapr.errors import QemuError


class NoneMachineHost:
    """Run state and event sinks of a board-less process."""

    def __init__(self, *, freeze: bool, is_kvm: bool, warn: Callable[[str], None]) -> None:
        self.sinks: list[EventSink] = []
        self.warn = warn
        self.is_kvm = is_kvm
        self.status = "prelaunch" if freeze else "running"
        self.quit_requested = False
        self.chardevs: list[dict[str, Any]] = []

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Send an event to every connected client."""
        message = event_message(name, data, time.time())
        for sink in list(self.sinks):
            sink(message)

    def query_status(self) -> dict[str, Any]:
        return {"running": self.status == "running", "singlestep": False, "status": self.status}

    def stop(self) -> None:
        if self.status == "running":
            self.status = "paused"
            self.emit("STOP")

    def cont(self) -> None:
        if self.status != "running":
            self.status = "running"
            self.emit("RESUME")

    def quit(self) -> None:
        self.emit("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
        self.quit_requested = True


def _refuse(message: str, error_class: str = "GenericError") -> Handler:
    def handler(args: dict[str, Any]) -> Any:
        raise QemuError(message, error_class)

    return handler


def _not_here(args: dict[str, Any]) -> Any:
    raise AssertionError("answered by the protocol layer")


class NoneMachineCommands(TableCommands):
    """The QMP command table of ``-machine none`` (same names and arguments as a board's)."""

    def __init__(self, host: NoneMachineHost) -> None:
        self._host = host
        self.migration_caps = new_migration_caps()
        handlers: dict[str, Handler] = {
            "query-status": lambda a: host.query_status(),
            "query-migrate": lambda a: {},
            "qmp_capabilities": _not_here,
            "query-commands": _not_here,
            "query-version": lambda a: version_info(),
            "quit": lambda a: host.quit(),
            "stop": lambda a: host.stop(),
            "cont": lambda a: host.cont(),
            "query-cpus-fast": lambda a: [],
            "query-hotpluggable-cpus": _refuse("machine does not support hot-plugging CPUs"),
            "query-chardev": lambda a: list(host.chardevs),
            "query-iothreads": lambda a: [],
            "query-block": lambda a: [],
            "query-named-block-nodes": lambda a: [],
            "query-jobs": lambda a: [],
            "system_powerdown": lambda a: host.emit("POWERDOWN"),  # no board to notify
        }
        no_board = _refuse("with -machine none there is no board to act on (not modeled)")
        self.table: dict[str, QmpCommand] = {
            c.name: c
            for c in ordered_table(
                [QmpCommand(n, a, handlers.get(n, no_board), r) for n, a, r in COMMAND_SPECS],
                introspection_commands(lambda: host.is_kvm, self.schema, self.migration_caps),
            )
        }

    @property
    def host(self) -> MonitorHost:
        """The process, as the transports see it."""
        return self._host


__all__ = ["NoneMachineCommands", "NoneMachineHost"]
