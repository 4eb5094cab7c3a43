"""The stream file format: one versioned JSON object, decoded strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machine.board.journal import JournalEntry
from machine.migration.stream import FORMAT, VERSION, MigrationStream
from spapr.errors import QemuError


def stream(**changes: Any) -> MigrationStream:
    values: dict[str, Any] = {
        "argv": ["-M", "pseries", "-smp", "1,maxcpus=2"],
        "time_ns": 5_000,
        "runstate": "running",
        "journal": [
            JournalEntry(10, "device_add", {"driver": "x", "id": "core1", "core-id": 1}),
            JournalEntry(4_000, "device_del", {"id": "core1"}),
        ],
        "sections": {"spapr_drc": [{"instance_id": 0x10000001, "state": 3}], "guest": None},
    }
    values.update(changes)
    return MigrationStream(**values)


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(stream().to_json())
    doc.update(changes)
    return doc


def test_round_trip_and_layout() -> None:
    original = stream()
    text = original.to_json()
    assert text.endswith("\n") and text.count("\n") == 1
    doc = json.loads(text)
    assert list(doc) == ["format", "version", "source", "journal", "sections"]
    assert (doc["format"], doc["version"]) == (FORMAT, VERSION) == (MigrationStream.FORMAT, 1)
    assert doc["source"] == {"argv": list(original.argv), "time_ns": 5_000, "runstate": "running"}
    assert doc["journal"][1] == {"t": 4_000, "command": "device_del", "args": {"id": "core1"}}
    assert MigrationStream.from_json(text) == original


@given(
    argv=st.lists(st.text(max_size=8), max_size=5),
    times=st.lists(st.integers(0, 1 << 40), max_size=5),
    runstate=st.sampled_from(["running", "paused", "prelaunch"]),
)
def test_round_trip_is_exact_and_deterministic(
    argv: list[str], times: list[int], runstate: str
) -> None:
    times.sort()
    journal = [JournalEntry(t, "system_reset", {"reason": "host-qmp-system-reset"}) for t in times]
    original = stream(argv=argv, journal=journal, time_ns=max(times, default=0), runstate=runstate)
    text = original.to_json()
    assert (
        stream(argv=argv, journal=journal, time_ns=original.time_ns, runstate=runstate).to_json()
        == text
    )
    assert MigrationStream.from_json(text) == original


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (document(source={"argv": "-M pseries", "time_ns": 1, "runstate": "x"}), "'argv'"),
        (document(source={"argv": [], "time_ns": True, "runstate": "x"}), "'time_ns'"),
        (document(source={"argv": [], "time_ns": -1, "runstate": "x"}), "negative"),
        (document(journal={}), "'journal'"),
        (document(journal=[[1, "device_add", {}]]), "a journal entry is not an object"),
        (document(journal=[{"t": 9_999, "command": "device_del", "args": {}}]), "out of order"),
        (document(sections=[]), "'sections'"),
    ],
    ids=["argv", "bool-time", "negative-time", "journal", "entry", "late-entry", "sections"],
)
def test_malformed_members_are_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(QemuError) as exc:
        MigrationStream.from_json(json.dumps(doc), "'f'")
    assert exc.value.message.startswith("migration: 'f' is not a valid migration stream: ")
    assert message in exc.value.message


def test_not_a_stream() -> None:
    for text in ("[]", "{}", '{"format": "other", "version": 1}', "null"):
        with pytest.raises(QemuError, match="is not a migration stream of this emulator"):
            MigrationStream.from_json(text)
    with pytest.raises(QemuError, match="has stream version '1'; this emulator reads version 1"):
        MigrationStream.from_json(json.dumps(document(version="1")))


def test_unencodable_state_is_a_clear_error() -> None:
    bad = stream(journal=[JournalEntry(0, "device_add", {"driver": object()})])
    with pytest.raises(QemuError, match="machine state cannot be encoded"):
        bad.to_json()
