"""The machine's input journal: every host input with its virtual time, in memory bounded.

Migration carries the journal in place of RAM (``machine.migration.replay``), so it
must hold every input since the machine was created, and a machine that runs for
days takes millions. :class:`Journal` keeps the latest :data:`JOURNAL_KEEP` entries
in memory and moves older ones, as JSON lines, to an anonymous temporary file
(unlinked at creation: nothing is left behind however the process ends); iterating
reads them back in order. Memory stays flat; the file grows by some 80 bytes per
input, as a ``-trace-json`` file does.

What a client sends is journaled as given, except that JSON containers nested
deeper than :data:`MAX_ARG_DEPTH` are cut there (:func:`journal_args`): only
``device_add`` takes arbitrary values, and it ignores every non-scalar property
(QEMU's ``qemu_opts_from_qdict`` drops them), so a replay sees the same command
while no encoder (the journal's, the stream's, ``-trace-json``'s) meets a value as
deep as QEMU's 1024-level JSON limit allows.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import attrs

#: Entries kept in memory; older ones live in the journal's temporary file.
JOURNAL_KEEP = 1024
#: Container depth kept of a journaled argument (deeper containers are emptied).
MAX_ARG_DEPTH = 32
#: Characters of a string argument a trace event keeps.
MAX_TRACED_TEXT = 256


@attrs.frozen
class JournalEntry:
    """One host input (a monitor command or a guest-console request) at virtual time ``t``."""

    t: int
    command: str
    args: Mapping[str, Any]


def bounded_depth(value: Any, depth: int = MAX_ARG_DEPTH) -> Any:
    """A copy of a JSON value whose containers below ``depth`` levels are emptied."""
    if isinstance(value, dict):
        if depth <= 0:
            return {}
        return {k: bounded_depth(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if depth <= 0:
            return []
        return [bounded_depth(v, depth - 1) for v in value]
    return value


def journal_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as journaled (a fresh dict, depth bounded)."""
    return {key: bounded_depth(value, MAX_ARG_DEPTH - 1) for key, value in args.items()}


def traced_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the ``host_command`` trace event shows them.

    Depth bounded as journaled, and a string longer than :data:`MAX_TRACED_TEXT`
    shortened (with its length): the trace keeps thousands of recent events in
    memory, and a client may send megabyte-long values.
    """
    return {key: _short_texts(value) for key, value in journal_args(args).items()}


def _short_texts(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TRACED_TEXT:
        return f"{value[:MAX_TRACED_TEXT]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _short_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_texts(v) for v in value]
    return value


class Journal:
    """Every host input in order: the latest in memory, the rest in a temporary file."""

    def __init__(self, keep: int = JOURNAL_KEEP) -> None:
        self.keep = max(1, keep)
        self._recent: list[JournalEntry] = []
        self._file: IO[str] | None = None
        self._spilled = 0

    def append(self, entry: JournalEntry) -> None:
        """Add an input; past the bound, the older half of memory moves to the file."""
        self._recent.append(entry)
        if len(self._recent) >= 2 * self.keep:
            self._spill(self._recent[: self.keep])
            del self._recent[: self.keep]

    def _spill(self, entries: list[JournalEntry]) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._file.seek(0, 2)
        for entry in entries:
            self._file.write(json.dumps([entry.t, entry.command, dict(entry.args)]) + "\n")
        self._spilled += len(entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        """Oldest first. The file's lines are read at once, so iterations may overlap."""
        spilled: list[str] = []
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            spilled = self._file.read().splitlines()
        recent = list(self._recent)
        for line in spilled:
            t, command, args = json.loads(line)
            yield JournalEntry(t, command, args)
        yield from recent

    def __len__(self) -> int:
        return self._spilled + len(self._recent)

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def in_memory(self) -> int:
        """How many entries are held in memory."""
        return len(self._recent)
