"""The migration stream file: one versioned JSON object, encoded and checked here.

The stream carries what the target needs to become the source (see
:mod:`machine.migration.replay` for why it has this shape):

* ``source``: the command line the source machine was built from, the virtual time
  ``time_ns`` of the migration, and the run state QEMU's ``globalstate`` section
  would carry;
* ``journal``: every host input the source applied, with its virtual time (the
  stand-in for guest RAM and CPU registers);
* ``sections``: the hotplug state as QEMU's vmstate sections name it, which the
  target recomputes after the replay and must find equal.

Encoding is deterministic: the same machine state gives the same bytes. Anything
that is not a well-formed stream of :data:`FORMAT` version :data:`VERSION` is
refused with a :class:`QemuError` naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from machine.board.journal import JournalEntry
from spapr.errors import QemuError

#: The ``format`` member every stream starts with.
FORMAT = "spapr-hotplug-migration"
#: The only stream version this emulator writes and reads.
VERSION = 1


def _malformed(origin: str, what: str) -> QemuError:
    return QemuError(f"migration: {origin} is not a valid migration stream: {what}")


def journal_to_json(entry: JournalEntry) -> dict[str, Any]:
    """One journal entry as the stream spells it."""
    return {"t": entry.t, "command": entry.command, "args": dict(entry.args)}


def _words(words: Iterable[str]) -> tuple[str, ...]:
    return tuple(words)


def _entries(entries: Iterable[JournalEntry]) -> tuple[JournalEntry, ...]:
    return tuple(entries)


@attrs.frozen
class MigrationStream:
    """A decoded stream: the source's command line, time, run state, journal and sections."""

    argv: tuple[str, ...] = attrs.field(converter=_words)
    time_ns: int
    runstate: str
    journal: tuple[JournalEntry, ...] = attrs.field(converter=_entries)
    sections: Mapping[str, Any]

    FORMAT: ClassVar[str] = FORMAT
    VERSION: ClassVar[int] = VERSION

    def to_json(self) -> str:
        """The stream's text: one compact JSON object and a newline (deterministic)."""
        document = {
            "format": FORMAT,
            "version": VERSION,
            "source": {"argv": list(self.argv), "time_ns": self.time_ns, "runstate": self.runstate},
            "journal": [journal_to_json(e) for e in self.journal],
            "sections": self.sections,
        }
        try:
            text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise QemuError(f"migration: the machine state cannot be encoded: {exc}") from None
        return text + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str = "the stream") -> MigrationStream:
        """Decode and check a stream; QemuError (naming ``origin``) for anything else."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise _malformed(origin, f"truncated or not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise QemuError(f"migration: {origin} is not a migration stream of this emulator")
        version = document.get("version")
        if version != VERSION:
            raise QemuError(
                f"migration: {origin} has stream version {version!r}; "
                f"this emulator reads version {VERSION} only"
            )
        source = _member(document, "source", dict, origin)
        argv = _member(source, "argv", list, origin)
        if not all(isinstance(word, str) for word in argv):
            raise _malformed(origin, "'argv' must be a list of strings")
        time_ns = _member(source, "time_ns", int, origin)
        runstate = _member(source, "runstate", str, origin)
        if time_ns < 0:
            raise _malformed(origin, "'time_ns' is negative")
        journal = [
            _journal_entry(item, origin) for item in _member(document, "journal", list, origin)
        ]
        last = 0
        for entry in journal:
            if not last <= entry.t <= time_ns:
                raise _malformed(
                    origin, f"journal entry '{entry.command}' at {entry.t} ns is out of order"
                )
            last = entry.t
        sections = _member(document, "sections", dict, origin)
        return cls(argv, time_ns, runstate, journal, sections)


def _member(obj: Mapping[str, Any], name: str, kind: type, origin: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _malformed(origin, f"'{name}' is missing or not a JSON {kind.__name__}")
    return value


def _journal_entry(item: object, origin: str) -> JournalEntry:
    if not isinstance(item, dict):
        raise _malformed(origin, "a journal entry is not an object")
    return JournalEntry(
        _member(item, "t", int, origin),
        _member(item, "command", str, origin),
        _member(item, "args", dict, origin),
    )


def journal_json(journal: Iterable[JournalEntry]) -> list[dict[str, Any]]:
    """A journal in its JSON form (what a replay is compared by)."""
    return json.loads(json.dumps([journal_to_json(e) for e in journal]))
