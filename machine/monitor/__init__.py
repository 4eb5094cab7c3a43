"""The monitor: QMP that real clients drive, HMP text, and their transports.

Layers, each usable on its own:

* :class:`MachineControl` — run state, events (wall-clock stamped), virtual time
  and guest views of one machine, shared by every monitor;
* :class:`QmpCommands` — the transport-free QMP command table;
* :class:`QmpConnection` — one QMP connection as a sans-IO state machine (QEMU's
  JSON stream, negotiation, ``id`` echo, errors);
* :class:`HmpMonitor` — HMP parsing and QEMU's texts;
* :class:`QmpServer` / :class:`StdioMonitor` — the asyncio transports.
"""

from machine.monitor.control import PACKAGE, QEMU_VERSION, GuestViews, MachineControl
from machine.monitor.hmp import HmpMonitor
from machine.monitor.hmp_stdio import StdioMonitor
from machine.monitor.migration import Migration, MigrationBackend, MigrationStatus
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_json import JsonMessageStream, to_json
from machine.monitor.qmp_protocol import QmpConnection, QmpPhase
from machine.monitor.qmp_server import QmpEndpoint, QmpServer, parse_qmp_endpoint
from machine.monitor.qom_props import QomView
from machine.monitor.runstate import RunState, RunStateMachine

__all__ = [
    "PACKAGE",
    "QEMU_VERSION",
    "GuestViews",
    "HmpMonitor",
    "JsonMessageStream",
    "MachineControl",
    "Migration",
    "MigrationBackend",
    "MigrationStatus",
    "QmpCommands",
    "QmpConnection",
    "QmpEndpoint",
    "QmpPhase",
    "QmpServer",
    "QomView",
    "RunState",
    "RunStateMachine",
    "StdioMonitor",
    "parse_qmp_endpoint",
    "to_json",
]
