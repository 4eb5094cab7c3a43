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
