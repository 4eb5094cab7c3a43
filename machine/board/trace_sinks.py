"""The machine's trace recorder with the sinks ``-trace``/``-D`` and ``-trace-json`` ask for.

As in QEMU, ``-trace PATTERN`` (or ``events=FILE`` listing patterns) selects
events for the log, which goes to ``-D FILE`` or else to stderr, one ``name
message`` line each; ``-trace-json FILE`` writes every event as JSON lines.

The recorder itself keeps only the recent events in memory (a bounded ring). The
one reader that needs a whole run is ``-trace-html``'s page, written at quit: for
it every event also goes, as the same JSON lines ``-trace-json`` writes, to a
:class:`RunArchive`, an anonymous temporary file (unlinked at creation, so nothing
is left behind however the process ends), read back when the page is drawn.
"""

from __future__ import annotations

import json
import tempfile
import weakref
from collections.abc import Iterator
from typing import IO, TextIO

import attrs

from machine.config.cmdline import MachineConfig
from spapr.errors import QemuError
from spapr.trace import TraceEvent, TraceRecorder


@attrs.define
class RunArchive:
    """Every event of a run as JSON lines in an anonymous temporary file (for -trace-html)."""

    file: IO[str] = attrs.field(
        factory=lambda: tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (lives with the run)
    )
    count: int = 0

    def write(self, event: TraceEvent) -> None:
        """Append one event (the recorder's sink)."""
        self.file.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
        self.count += 1

    def lines(self) -> Iterator[str]:
        """The archived lines, first to last."""
        self.file.flush()
        self.file.seek(0)
        yield from self.file
        self.file.seek(0, 2)


_ARCHIVES: weakref.WeakKeyDictionary[TraceRecorder, RunArchive] = weakref.WeakKeyDictionary()


def attach_run_archive(recorder: TraceRecorder) -> RunArchive:
    """Archive every later event of ``recorder`` (once; the same archive if already)."""
    archive = _ARCHIVES.get(recorder)
    if archive is None:
        archive = _ARCHIVES[recorder] = RunArchive()
        recorder.subscribe(archive.write)
    return archive


def run_archive(recorder: TraceRecorder) -> RunArchive | None:
    """The archive of ``recorder``'s run, if ``-trace-html`` asked for one."""
    return _ARCHIVES.get(recorder)


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
    if config.trace_html:
        attach_run_archive(recorder)
    return recorder
