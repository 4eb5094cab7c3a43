"""One QMP connection as a sans-IO state machine: bytes in, response and event lines out.

The transport calls :meth:`QmpConnection.connected` (queues the greeting),
:meth:`~QmpConnection.receive_data` with whatever arrived, :meth:`~QmpConnection.event`
for each event, and sends :meth:`~QmpConnection.data_to_send` after each call.
The connection starts in capabilities negotiation, where only ``qmp_capabilities``
exists and every "command not found" reads "Expecting capabilities negotiation
with 'qmp_capabilities'"; events are only sent once negotiation is complete.
Requests are checked in QEMU's order (monitor/qmp.c, qapi/qmp-dispatch.c), each
response echoes the request's ``id`` verbatim, and every line ends in ``\\r\\n``.
A message over the size bound gets its error and then the connection closes.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from machine.monitor.qapi_args import visit_arguments
from machine.monitor.qmp_commands import CAPABILITIES, CommandTable, version_info
from machine.monitor.qmp_json import (
    DEFAULT_MAX_MESSAGE_BYTES,
    JsonMessageStream,
    qdict_keys,
    to_json,
)
from spapr.errors import QemuError

NEGOTIATION_HINT = "Expecting capabilities negotiation with 'qmp_capabilities'"


class QmpPhase(enum.Enum):
    """Where a connection is: negotiating capabilities, in command mode, or closing."""

    NEGOTIATION = "negotiation"
    COMMAND = "command"
    CLOSING = "closing"


def greeting(capabilities: tuple[str, ...] = CAPABILITIES) -> dict[str, Any]:
    """The greeting QEMU sends on connect."""
    return {"QMP": {"version": version_info(), "capabilities": list(capabilities)}}


def error_response(err: QemuError) -> dict[str, Any]:
    """qmp_error_response: class and desc."""
    return {"error": {"class": err.error_class, "desc": err.message}}


@attrs.define
class QmpConnection:
    """The protocol state of one client."""

    commands: CommandTable
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    phase: QmpPhase = QmpPhase.NEGOTIATION
    #: Capabilities the client enabled with qmp_capabilities.
    enabled: tuple[str, ...] = ()
    _stream: JsonMessageStream = attrs.field(init=False)
    _out: list[bytes] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self._stream = JsonMessageStream(self.max_bytes)

    @property
    def closing(self) -> bool:
        """The transport should close the connection once the queued data is sent."""
        return self.phase is QmpPhase.CLOSING

    def connected(self) -> None:
        """CHR_EVENT_OPENED: queue the greeting."""
        self._send(greeting())

    def data_to_send(self) -> bytes:
        """Everything queued since the last call."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def event(self, message: dict[str, Any]) -> None:
        """Queue an event (only for connections past negotiation)."""
        if self.phase is QmpPhase.COMMAND:
            self._send(message)

    def receive_data(self, data: bytes) -> None:
        """Feed received bytes; complete requests are answered at once, in order."""
        if self.phase is QmpPhase.CLOSING:
            return
        for message in self._stream.feed(data):
            if message.error is not None:
                self._send(error_response(QemuError(message.error)))
                if message.fatal:
                    self.phase = QmpPhase.CLOSING
                    return
                continue
            self._send(self.dispatch(message.value))
            if self.closing:
                return

    def close(self) -> None:
        """Stop taking requests (quit, or the transport is going away)."""
        self.phase = QmpPhase.CLOSING

    # ------------------------------------------------------------ dispatch

    def dispatch(self, request: Any) -> dict[str, Any]:
        """qmp_dispatch for one parsed request; the response (with the id echoed)."""
        if not isinstance(request, dict):
            return error_response(QemuError("QMP input must be a JSON object"))
        has_id = "id" in request
        try:
            name = self._check_request(request)
            result = self._execute(name, request.get("arguments", {}))
            response: dict[str, Any] = {"return": result}
        except QemuError as err:
            if self.phase is QmpPhase.NEGOTIATION and err.error_class == "CommandNotFound":
                err = QemuError(NEGOTIATION_HINT, "CommandNotFound")
            response = error_response(err)
        except Exception as exc:  # a bug must not take the monitor down
            response = error_response(QemuError(f"internal error in the emulator: {exc!r}"))
        if has_id:
            response["id"] = request["id"]
        return response

    @staticmethod
    def _check_request(request: dict[str, Any]) -> str:
        """qmp_dispatch_check_obj: members checked in QDict order (exec-oob not offered)."""
        for key in qdict_keys(request):
            value = request[key]
            if key == "execute":
                if not isinstance(value, str):
                    raise QemuError("QMP input member 'execute' must be a string")
            elif key == "arguments":
                if not isinstance(value, dict):
                    raise QemuError("QMP input member 'arguments' must be an object")
            elif key != "id":
                raise QemuError(f"QMP input member '{key}' is unexpected")
        if "execute" not in request:
            raise QemuError("QMP input lacks member 'execute'")
        name: str = request["execute"]
        return name

    def _execute(self, name: str, args: dict[str, Any]) -> Any:
        negotiating = self.phase is QmpPhase.NEGOTIATION
        if name == "qmp_capabilities":
            checked = visit_arguments(args, self.commands.table[name].args or ())
            if not negotiating:
                raise QemuError(
                    "Capabilities negotiation is already complete, command ignored",
                    "CommandNotFound",
                )
            wanted = checked.get("enable", [])
            unavailable = [cap for cap in wanted if cap not in CAPABILITIES]
            if unavailable:
                raise QemuError(f"Capability {', '.join(unavailable)} not available")
            self.enabled = tuple(wanted)
            self.phase = QmpPhase.COMMAND
            return {}
        if negotiating or name not in self.commands:
            raise QemuError(f"The command {name} has not been found", "CommandNotFound")
        if name == "query-commands":
            visit_arguments(args, ())
            return [{"name": n} for n in self.commands.names()]
        return self.commands.execute(name, args)

    def _send(self, message: dict[str, Any]) -> None:
        self._out.append(to_json(message).encode("ascii") + b"\r\n")
