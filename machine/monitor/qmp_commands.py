"""The QMP command table, free of any transport: name -> argument schema -> handler.

Each command checks its arguments as QEMU's generated marshaller would
(machine/monitor/qapi_args.py) and runs against the shared
:class:`~machine.monitor.control.MachineControl`. ``qmp_capabilities`` and
``query-commands`` depend on the connection and are answered by the protocol
layer; they are listed here so ``query-commands`` shows them. ``device_add`` takes
its arguments unchecked, as QEMU's (``'gen': false``) does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from machine.monitor.control import PACKAGE, QEMU_VERSION, MachineControl
from machine.monitor.hmp import HmpMonitor, crlf
from machine.monitor.qapi_args import Arg, ArgType, invalid_value, visit_arguments
from spapr.errors import QemuError

#: QMP capabilities this server can offer (no exec-oob: commands run in order).
CAPABILITIES: tuple[str, ...] = ()
#: QMPCapability values the schema knows (an unknown one is a type error, an unoffered one refused).
KNOWN_CAPABILITIES = ("oob",)

Handler = Callable[[dict[str, Any]], Any]


@attrs.frozen
class QmpCommand:
    """A command: name, argument schema (None: passed through), handler, whether it returns.

    A command without ``returns`` in QEMU's schema answers ``{}`` whatever the handler gives.
    """

    name: str
    args: tuple[Arg, ...] | None
    handler: Handler
    returns: bool = True


def version_info() -> dict[str, Any]:
    """query-version's answer (also the greeting's ``version``)."""
    major, minor, micro = QEMU_VERSION
    return {"qemu": {"major": major, "minor": minor, "micro": micro}, "package": PACKAGE}


class QmpCommands:
    """The commands every QMP connection of one machine shares."""

    def __init__(
        self, control: MachineControl, hmp_stderr: Callable[[str], None] | None = None
    ) -> None:
        self.control = control
        self.hmp = HmpMonitor(control, stderr=hmp_stderr or control.warn)
        s, i, b = ArgType.STR, ArgType.INT, ArgType.BOOL
        table = [
            # Registered in QEMU's order; query-commands lists them newest first.
            QmpCommand("query-status", (), lambda a: control.query_status()),
            QmpCommand("query-migrate", (), lambda a: control.migration.query()),
            QmpCommand(
                "migrate",
                (
                    Arg("uri", s),
                    Arg("blk", b, True),
                    Arg("inc", b, True),
                    Arg("detach", b, True),
                    Arg("resume", b, True),
                ),
                self._migrate,
                returns=False,
            ),
            QmpCommand(
                "migrate-incoming",
                (Arg("uri", s),),
                lambda a: control.migrate_incoming(a["uri"]),
                returns=False,
            ),
            QmpCommand(
                "qmp_capabilities",
                (Arg("enable", ArgType.ENUM_LIST, True, KNOWN_CAPABILITIES),),
                self._not_here,
            ),
            QmpCommand("query-version", (), lambda a: version_info()),
            QmpCommand("query-commands", (), self._not_here),
            QmpCommand("quit", (), lambda a: control.quit(), returns=False),
            QmpCommand("qom-list", (Arg("path", s),), self._qom_list),
            QmpCommand("qom-get", (Arg("path", s), Arg("property", s)), self._qom_get),
            QmpCommand(
                "device_del", (Arg("id", s),), lambda a: control.device_del(a["id"]), returns=False
            ),
            QmpCommand("query-cpus-fast", (), lambda a: control.machine.query_cpus_fast()),
            QmpCommand("system_reset", (), lambda a: control.system_reset(), returns=False),
            QmpCommand(
                "query-hotpluggable-cpus", (), lambda a: control.machine.query_hotpluggable_cpus()
            ),
            QmpCommand("stop", (), lambda a: control.stop(), returns=False),
            QmpCommand("cont", (), lambda a: control.cont(), returns=False),
            QmpCommand(
                "human-monitor-command",
                (Arg("command-line", s), Arg("cpu-index", i, True)),
                self._human_monitor_command,
            ),
            QmpCommand("device_add", None, lambda a: control.device_add(a), returns=False),
        ]
        self.table: dict[str, QmpCommand] = {c.name: c for c in table}

    def names(self) -> list[str]:
        """query-commands order (QEMU prepends each registered command)."""
        return list(reversed(self.table))

    def __contains__(self, name: object) -> bool:
        return name in self.table

    def execute(self, name: str, args: Mapping[str, Any]) -> Any:
        """Run a command; its return value (None means ``{}``), or QemuError."""
        cmd = self.table.get(name)
        if cmd is None:
            raise QemuError(f"The command {name} has not been found", "CommandNotFound")
        checked = dict(args) if cmd.args is None else visit_arguments(args, cmd.args)
        result = cmd.handler(checked)
        return result if cmd.returns else {}

    # ------------------------------------------------------------ handlers

    @staticmethod
    def _not_here(args: dict[str, Any]) -> Any:
        raise AssertionError("answered by the protocol layer")

    def _migrate(self, args: dict[str, Any]) -> None:
        self.control.migrate(args["uri"], resume=args.get("resume", False))

    def _qom_list(self, args: dict[str, Any]) -> list[dict[str, str]]:
        view = self.control.view
        path = args["path"]
        node = view.resolve(path)
        if node is None:
            if view.ambiguous(path):
                raise QemuError(f"Path '{path}' is ambiguous")
            raise QemuError(f"Device '{path}' not found", "DeviceNotFound")
        return view.qom_list(node)

    def _qom_get(self, args: dict[str, Any]) -> Any:
        view = self.control.view
        node = view.resolve(args["path"])
        if node is None:
            raise QemuError(f"Device '{args['path']}' not found", "DeviceNotFound")
        return view.qom_get(node, args["property"])

    def _human_monitor_command(self, args: dict[str, Any]) -> str:
        cpu_index = args.get("cpu-index")
        if cpu_index is not None and not self.control.has_cpu(cpu_index):
            raise invalid_value("cpu-index", "a CPU number")
        return crlf(self.hmp.execute(args["command-line"], cpu_index))
