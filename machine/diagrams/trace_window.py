"""Reading a recorded trace and choosing the part of it a picture shows.

A trace is what ``-trace-json FILE`` writes: one JSON object per line with ``t``
(virtual ns), ``event`` and the event's fields. A window is a range of it: by
default from the first host command on (the boot is rarely of interest); ``op``
picks the Nth host operation (from its command to the next one); ``since_ms`` /
``until_ms`` bound it in virtual milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import attrs

from spapr.trace import TraceEvent

#: The trace event of a host operation (a monitor command that changes the machine).
HOST_COMMAND = "host_command"


class TraceFileError(ValueError):
    """A line of a trace file that is not one trace event."""


def load_trace(lines: Iterable[str]) -> list[TraceEvent]:
    """The events of a JSON-lines trace, in file order (blank lines skipped)."""
    events: list[TraceEvent] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            fields = {k: v for k, v in record.items() if k not in ("t", "event")}
            events.append(TraceEvent(int(record["t"]), str(record["event"]), fields))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise TraceFileError(f"line {number}: not a trace event ({err})") from None
    return events


@attrs.frozen
class TraceWindow:
    """Which part of a trace to draw (all None: from the first host command to the end)."""

    #: The Nth host operation (1-based): from its command to the next command.
    op: int | None = None
    since_ms: float | None = None
    until_ms: float | None = None


def host_operations(events: Sequence[TraceEvent]) -> list[int]:
    """Indexes of the host commands, in order."""
    return [i for i, e in enumerate(events) if e.name == HOST_COMMAND]


def window_bounds(events: Sequence[TraceEvent], window: TraceWindow) -> tuple[int, int]:
    """The window as a range ``[start, end)`` of event indexes; ValueError if it is empty."""
    start, end = 0, len(events)
    ops = host_operations(events)
    if window.op is not None:
        if not 1 <= window.op <= len(ops):
            raise ValueError(f"no host operation {window.op}: the trace has {len(ops)}")
        start = ops[window.op - 1]
        end = ops[window.op] if window.op < len(ops) else len(events)
    elif window.since_ms is None:
        start = ops[0] if ops else 0
    if window.since_ms is not None:
        since = round(window.since_ms * 1_000_000)
        start = max(start, next((i for i, e in enumerate(events) if e.t >= since), end))
    if window.until_ms is not None:
        until = round(window.until_ms * 1_000_000)
        end = min(end, next((i for i, e in enumerate(events) if e.t > until), len(events)))
    if start >= end:
        raise ValueError("the chosen window holds no trace event")
    return start, end
