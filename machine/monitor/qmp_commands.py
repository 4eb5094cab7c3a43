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
from typing import Any, Protocol

import attrs

from machine.config.cmdline import command_line_options
from machine.monitor import introspect
from machine.monitor.control import PACKAGE, QEMU_VERSION, EventSink, MachineControl
from machine.monitor.hmp import HmpMonitor, crlf
from machine.monitor.qapi_args import Arg, ArgType, invalid_value, visit_arguments
from machine.monitor.qmp_schema import build_schema
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


_S, _I, _B = ArgType.STR, ArgType.INT, ArgType.BOOL
#: The commands that act on the machine: name, checked arguments (None: unchecked), and
#: whether QEMU's schema gives a return value; in QEMU's registration order
#: (query-commands lists them newest first). Every machine's table has them all.
COMMAND_SPECS: tuple[tuple[str, tuple[Arg, ...] | None, bool], ...] = (
    ("query-status", (), True),
    ("query-migrate", (), True),
    (
        "migrate",
        (
            Arg("uri", _S),
            Arg("blk", _B, True),
            Arg("inc", _B, True),
            Arg("detach", _B, True),
            Arg("resume", _B, True),
        ),
        False,
    ),
    ("migrate-incoming", (Arg("uri", _S),), False),
    ("qmp_capabilities", (Arg("enable", ArgType.ENUM_LIST, True, KNOWN_CAPABILITIES),), True),
    ("query-version", (), True),
    ("query-commands", (), True),
    ("quit", (), False),
    ("qom-list", (Arg("path", _S),), True),
    ("qom-get", (Arg("path", _S), Arg("property", _S)), True),
    ("device_del", (Arg("id", _S),), False),
    ("query-cpus-fast", (), True),
    ("system_reset", (), False),
    ("system_powerdown", (), False),
    ("query-hotpluggable-cpus", (), True),
    ("stop", (), False),
    ("cont", (), False),
    ("human-monitor-command", (Arg("command-line", _S), Arg("cpu-index", _I, True)), True),
    ("device_add", None, False),
    ("query-chardev", (), True),
    ("query-iothreads", (), True),
    ("query-block", (), True),
    ("query-named-block-nodes", (Arg("flat", _B, True),), True),
    ("query-jobs", (), True),
)


class MonitorHost(Protocol):
    """What a QMP transport needs of whatever runs behind it: event sinks and stderr."""

    sinks: list[EventSink]
    warn: Callable[[str], None]


class CommandTable(Protocol):
    """A QMP command table as the protocol and the transports use it."""

    table: dict[str, QmpCommand]

    @property
    def host(self) -> MonitorHost: ...

    def names(self) -> list[str]: ...

    def __contains__(self, name: object) -> bool: ...

    def execute(self, name: str, args: Mapping[str, Any]) -> Any: ...


def introspection_commands(
    is_kvm: Callable[[], bool],
    schema: Callable[[], list[dict[str, Any]]],
    migration_caps: dict[str, bool],
) -> list[QmpCommand]:
    """The commands that describe the emulator itself (the same under every machine)."""
    s, b = ArgType.STR, ArgType.BOOL

    def set_caps(args: dict[str, Any]) -> None:
        set_migration_capabilities(migration_caps, args.get("capabilities"))

    return [
        QmpCommand("query-target", (), lambda a: {"arch": introspect.TARGET_ARCH}),
        QmpCommand("query-qmp-schema", (), lambda a: schema()),
        QmpCommand("query-kvm", (), lambda a: introspect.query_kvm(is_kvm())),
        QmpCommand(
            "qom-list-types",
            (Arg("implements", s, True), Arg("abstract", b, True)),
            lambda a: introspect.qom_list_types(a.get("implements"), a.get("abstract", False)),
        ),
        QmpCommand(
            "device-list-properties",
            (Arg("typename", s),),
            lambda a: introspect.device_list_properties(a["typename"]),
        ),
        QmpCommand(
            "qom-list-properties",
            (Arg("typename", s),),
            lambda a: introspect.qom_list_properties(a["typename"]),
        ),
        QmpCommand("query-machines", (), lambda a: introspect.query_machines()),
        QmpCommand("query-cpu-definitions", (), lambda a: introspect.query_cpu_definitions()),
        QmpCommand(
            "query-command-line-options",
            (Arg("option", s, True),),
            lambda a: query_command_line_options(a.get("option")),
        ),
        QmpCommand(
            "query-migrate-capabilities",
            (),
            lambda a: [{"state": v, "capability": k} for k, v in migration_caps.items()],
        ),
        QmpCommand("migrate-set-capabilities", (CAPABILITY_LIST,), set_caps, False),
    ]


def ordered_table(machine: list[QmpCommand], introspection: list[QmpCommand]) -> list[QmpCommand]:
    """QEMU's registration order: device_add last (query-commands lists it first)."""
    last = [c for c in machine if c.name == "device_add"]
    return [c for c in machine if c.name != "device_add"] + introspection + last


def query_command_line_options(option: str | None) -> list[dict[str, Any]]:
    """``query-command-line-options``: the option lists this emulator parses, QEMU's format."""
    out = []
    for name, params in command_line_options():
        if option is not None and name != option:
            continue
        out.append(
            {"parameters": [{"name": p, "type": t} for p, t in reversed(params)], "option": name}
        )
    if option is not None and not out:
        raise QemuError(f"invalid option name: {option}")
    return out


#: migrate-set-capabilities' argument: a MigrationCapabilityStatus list, visited as
#: QEMU's marshaller does (errors name the element: 'capabilities[1].state').
CAPABILITY_LIST = Arg(
    "capabilities",
    ArgType.STRUCT_LIST,
    members=(
        Arg("capability", ArgType.ENUM, values=tuple(introspect.MIGRATION_CAPABILITIES)),
        Arg("state", ArgType.BOOL),
    ),
)


def set_migration_capabilities(caps: dict[str, bool], value: Any) -> None:
    """``migrate-set-capabilities`` once visited: only ``events`` is modeled; others are refused."""
    wanted: dict[str, bool] = {}
    for item in value:
        name, state = item["capability"], item["state"]
        if state and name not in introspect.SETTABLE_MIGRATION_CAPABILITIES:
            raise QemuError(f"migration capability '{name}' is not modeled by this emulator")
        wanted[name] = state
    caps.update(wanted)


def new_migration_caps() -> dict[str, bool]:
    """Every migration capability, off (QEMU's order)."""
    return dict.fromkeys(introspect.MIGRATION_CAPABILITIES, False)


def version_info() -> dict[str, Any]:
    """query-version's answer (also the greeting's ``version``)."""
    major, minor, micro = QEMU_VERSION
    return {"qemu": {"major": major, "minor": minor, "micro": micro}, "package": PACKAGE}


class TableCommands:
    """A QMP command table and how a request runs through it (the marshaller's part);
    what :class:`CommandTable` asks for, but the ``host``.

    Subclasses fill :attr:`table` (name -> :class:`QmpCommand`, registration order).
    """

    table: dict[str, QmpCommand]

    def schema(self) -> list[dict[str, Any]]:
        """``query-qmp-schema``: this table's commands, QEMU's format."""
        return build_schema((c.name, c.args) for c in self.table.values())

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


class QmpCommands(TableCommands):
    """The commands every QMP connection of one machine shares."""

    def __init__(
        self, control: MachineControl, hmp_stderr: Callable[[str], None] | None = None
    ) -> None:
        self.control = control
        self.hmp = HmpMonitor(control, stderr=hmp_stderr or control.warn)
        handlers: dict[str, Handler] = {
            "query-status": lambda a: control.query_status(),
            "query-migrate": lambda a: control.migration.query(),
            "migrate": self._migrate,
            "migrate-incoming": lambda a: control.migrate_incoming(a["uri"]),
            "qmp_capabilities": self._not_here,
            "query-version": lambda a: version_info(),
            "query-commands": self._not_here,
            "quit": lambda a: control.quit(),
            "qom-list": self._qom_list,
            "qom-get": self._qom_get,
            "device_del": lambda a: control.device_del(a["id"]),
            "query-cpus-fast": lambda a: control.query_cpus_fast(),
            "system_reset": lambda a: control.system_reset(),
            "system_powerdown": lambda a: control.system_powerdown(),
            "query-hotpluggable-cpus": lambda a: control.machine.query_hotpluggable_cpus(),
            "stop": lambda a: control.stop(),
            "cont": lambda a: control.cont(),
            "human-monitor-command": self._human_monitor_command,
            "device_add": lambda a: control.device_add(a),
            "query-chardev": lambda a: list(control.chardevs),
            "query-iothreads": lambda a: [],
            "query-block": lambda a: [],
            "query-named-block-nodes": lambda a: [],
            "query-jobs": lambda a: [],
        }
        table = ordered_table(
            [QmpCommand(n, args, handlers[n], returns) for n, args, returns in COMMAND_SPECS],
            introspection_commands(
                lambda: control.machine.setup.accel.is_kvm, self.schema, control.migration_caps
            ),
        )
        self.table: dict[str, QmpCommand] = {c.name: c for c in table}

    @property
    def host(self) -> MonitorHost:
        """The machine's control, as the transports see it."""
        return self.control

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
