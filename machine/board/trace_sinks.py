"""The machine's trace recorder with the sinks ``-trace``/``-D`` and ``-trace-json`` ask for.

As in QEMU, ``-trace PATTERN`` (or ``events=FILE`` listing patterns) selects
events for the log, which goes to ``-D FILE`` or else to stderr, one ``name
message`` line each; ``-trace-json FILE`` writes every event as JSON lines.
"""

from __future__ import annotations

import json
from typing import TextIO

from machine.config.cmdline import MachineConfig
from spapr.errors import QemuError
from spapr.trace import TraceEvent, TraceRecorder


def trace_recorder(config: MachineConfig, err: TextIO) -> TraceRecorder:
    """A recorder feeding the files ``config`` names (QemuError when one cannot be opened)."""
    recorder = TraceRecorder()
    patterns: list[str] = []
    for spec in config.traces:
        if spec.enable:
            patterns.append(spec.enable)
        if spec.events:
            try:
                with open(spec.events) as f:
                    patterns += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
            except OSError as exc:
                raise QemuError(
                    f"could not open trace events file '{spec.events}': {exc.strerror}",
                    location=spec.location,
                ) from None
    if patterns:
        log: TextIO = err
        if config.log_file:
            try:
                log = open(config.log_file, "w", buffering=1)  # noqa: SIM115 (lives with the run)
            except OSError as exc:
                raise QemuError(f"could not open '{config.log_file}': {exc.strerror}") from None

        def write_log(event: TraceEvent) -> None:
            log.write(event.qemu_line() + "\n")

        recorder.subscribe(write_log, patterns)
    if config.trace_json:
        try:
            jsonl = open(config.trace_json, "w", buffering=1)  # noqa: SIM115
        except OSError as exc:
            raise QemuError(f"could not open '{config.trace_json}': {exc.strerror}") from None

        def write_json(event: TraceEvent) -> None:
            jsonl.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")

        recorder.subscribe(write_json)
    return recorder
