"""The sans-IO QMP connection: framing, negotiation, id echo and QEMU's answers to mistakes.

QEMU 7.2's answers come from tests/data/qmp/qemu72_captures.json (``raw``: bytes
written on a fresh connection and every line QEMU sent back; regenerate with
tests/data/qmp/capture_qemu72.py) and from the table in wire-facts.md. The
connection is driven directly — bytes in, lines out — with no socket.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_qmp_harness import P8E, QMP_DATA

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_json import to_json
from machine.monitor.qmp_protocol import NEGOTIATION_HINT, QmpConnection, QmpPhase

CAPTURES = json.loads((QMP_DATA / "qemu72_captures.json").read_text())
RAW_CASES = {case["case"]: case for case in CAPTURES["raw"]}


def new_commands(argv: list[str] = P8E) -> QmpCommands:
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    return QmpCommands(MachineControl(machine))


@pytest.fixture(scope="module")
def shared_commands() -> QmpCommands:
    """One machine for tests that do not change it."""
    return new_commands()


def lines(conn: QmpConnection) -> list[Any]:
    data = conn.data_to_send()
    assert data == b"" or data.endswith(b"\r\n")
    return [json.loads(line) for line in data.split(b"\r\n") if line]


def negotiated(commands: QmpCommands) -> QmpConnection:
    conn = QmpConnection(commands)
    conn.connected()
    conn.receive_data(b'{"execute":"qmp_capabilities"}')
    assert lines(conn)[-1] == {"return": {}}
    return conn


# ---------------------------------------------------------------- QEMU's captured answers


@pytest.mark.parametrize("name", sorted(RAW_CASES))
def test_answers_match_qemu(name: str) -> None:
    """Same lines, same member order, for every recorded protocol mistake and framing case."""
    case = RAW_CASES[name]
    commands = new_commands()
    conn = QmpConnection(commands)
    conn.connected()
    lines(conn)
    if case["negotiate"]:
        conn.receive_data(b'{"execute":"qmp_capabilities"}')
        lines(conn)
    for chunk, expected in zip(case["chunks"], case["answers"]):
        conn.receive_data(chunk.encode("latin-1"))
        assert json.dumps(lines(conn)) == json.dumps(expected), chunk


def test_every_wire_facts_mistake_is_covered() -> None:
    """wire-facts.md's table of protocol mistakes, all among the captured cases."""
    answers = {
        name: case["answers"][0][0] for name, case in RAW_CASES.items() if case["answers"][0]
    }
    assert answers["before negotiation"]["error"] == {
        "class": "CommandNotFound",
        "desc": NEGOTIATION_HINT,
    }
    assert answers["capabilities twice"]["error"]["desc"] == (
        "Capabilities negotiation is already complete, command ignored"
    )
    assert answers["unexpected argument"]["error"]["desc"] == "Parameter 'bogus' is unexpected"
    assert answers["stray brace"]["error"]["desc"] == "JSON parse error, expecting value"
    assert answers["exec-oob without oob"]["error"]["desc"] == (
        "QMP input member 'exec-oob' is unexpected"
    )
    assert RAW_CASES["array split over writes"]["answers"][1][0]["error"]["desc"] == (
        "QMP input must be a JSON object"
    )


# ---------------------------------------------------------------- greeting and negotiation


def test_greeting_is_one_crlf_line_with_a_mapping_version_and_no_oob(
    shared_commands: QmpCommands,
) -> None:
    conn = QmpConnection(shared_commands)
    conn.connected()
    data = conn.data_to_send()
    assert data.count(b"\r\n") == 1 and data.endswith(b"\r\n")
    greeting = json.loads(data)
    assert list(greeting) == ["QMP"]
    assert greeting["QMP"]["version"]["qemu"] == {"micro": 22, "minor": 2, "major": 7}
    assert "spapr" in greeting["QMP"]["version"]["package"]
    assert greeting["QMP"]["capabilities"] == []
    assert data.startswith(b'{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}')


def test_oob_cannot_be_enabled_because_it_is_not_offered(shared_commands: QmpCommands) -> None:
    conn = QmpConnection(shared_commands)
    conn.receive_data(b'{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":1}')
    assert lines(conn) == [
        {"id": 1, "error": {"class": "GenericError", "desc": "Capability oob not available"}}
    ]
    assert conn.phase is QmpPhase.NEGOTIATION


def test_events_reach_only_negotiated_connections(shared_commands: QmpCommands) -> None:
    waiting = QmpConnection(shared_commands)
    ready = negotiated(shared_commands)
    event = {"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}
    waiting.event(event)
    ready.event(event)
    assert waiting.data_to_send() == b""
    assert lines(ready) == [{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}]


def test_query_commands_lists_the_table_newest_first(shared_commands: QmpCommands) -> None:
    conn = negotiated(shared_commands)
    conn.receive_data(b'{"execute":"query-commands"}')
    names = [c["name"] for c in lines(conn)[0]["return"]]
    assert names[0] == "device_add" and names[-1] == "query-status"
    assert set(names) >= {"qmp_capabilities", "query-hotpluggable-cpus", "qom-get", "migrate"}


# ---------------------------------------------------------------- ids


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_any_id_is_echoed_verbatim(ident: Any) -> None:
    conn = negotiated(_COMMANDS)
    conn.receive_data(to_json({"execute": "query-status", "id": ident}).encode())
    (response,) = lines(conn)
    assert response["id"] == ident and "return" in response
    conn.receive_data(to_json({"execute": "nope", "id": ident}).encode())
    (response,) = lines(conn)
    assert response["id"] == ident and response["error"]["class"] == "CommandNotFound"


_COMMANDS = new_commands()


# ---------------------------------------------------------------- framing


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=12))
def test_splitting_the_stream_anywhere_gives_the_same_answers(cuts: list[int]) -> None:
    stream = (
        b'{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}\n'
        b'  {"execute":"query-version","id":"v"} {"execute":"nope","id":[2]}'
        b'{"execute":"qom-get","arguments":{"path":"/machine","property":"type"},"id":3}'
    )
    whole = QmpConnection(_COMMANDS)
    whole.receive_data(stream)
    expected = whole.data_to_send()
    split = QmpConnection(_COMMANDS)
    previous = 0
    out = b""
    for cut in sorted(c % (len(stream) + 1) for c in cuts) + [len(stream)]:
        split.receive_data(stream[previous:cut])
        out += split.data_to_send()
        previous = cut
    assert out == expected
    assert out.count(b"\r\n") == 5


def test_half_a_message_waits_for_the_rest(shared_commands: QmpCommands) -> None:
    conn = negotiated(shared_commands)
    conn.receive_data(b'{"execute": "query-sta')
    assert conn.data_to_send() == b""
    conn.receive_data(b'tus", "id": 9}')
    assert lines(conn)[0]["id"] == 9


def test_a_message_over_the_size_bound_is_refused_and_closes(shared_commands: QmpCommands) -> None:
    conn = QmpConnection(shared_commands, max_bytes=4096)
    conn.receive_data(b'{"execute":"qmp_capabilities"}')
    lines(conn)
    conn.receive_data(b'{"execute":"qom-get","arguments":{"path":"' + b"a" * 10_000)
    assert lines(conn) == [
        {"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}
    ]
    assert conn.closing
    conn.receive_data(b'"}}{"execute":"query-status"}')
    assert conn.data_to_send() == b""


def test_many_small_tokens_over_the_bound_are_refused_too(shared_commands: QmpCommands) -> None:
    conn = QmpConnection(shared_commands, max_bytes=4096)
    conn.receive_data(b"[" + b"1," * 5000)
    assert lines(conn)[0]["error"]["desc"] == "JSON token size limit exceeded"
    assert conn.closing


def test_nesting_deeper_than_qemus_limit_is_refused(shared_commands: QmpCommands) -> None:
    conn = negotiated(shared_commands)
    conn.receive_data(b"[" * 1025)
    assert lines(conn)[0]["error"]["desc"] == "JSON nesting depth limit exceeded"


# ---------------------------------------------------------------- robustness


def machine_state(commands: QmpCommands) -> str:
    conn = negotiated(commands)
    for cmd in ("query-hotpluggable-cpus", "query-cpus-fast", "query-status"):
        conn.receive_data(to_json({"execute": cmd}).encode())
    conn.receive_data(b'{"execute":"qom-list","arguments":{"path":"/machine/peripheral"}}')
    return conn.data_to_send().decode()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_gets_error_lines_and_leaves_the_machine_alone(garbage: bytes) -> None:
    commands = _COMMANDS
    before = machine_state(commands)
    conn = negotiated(commands)
    conn.receive_data(garbage)
    for line in conn.data_to_send().split(b"\r\n"):
        if line:
            msg = json.loads(line)
            assert set(msg) <= {"return", "error", "id"}
    assert machine_state(commands) == before


_printable_mistakes = st.lists(
    st.sampled_from(
        [
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b'"execute"',
            b'"arguments"',
            b'"id"',
            b'"query-status"',
            b'"nope"',
            b"1",
            b"-0.5e3",
            b"true",
            b"null",
            b"nul",
            b"'x'",
            b" ",
            b"\n",
            b"@",
        ]
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_printable_mistakes)
def test_token_soup_never_breaks_the_connection(parts: list[bytes]) -> None:
    """Whatever came before, an impossible byte (0xFF) resynchronises QEMU's lexer."""
    conn = negotiated(_COMMANDS)
    conn.receive_data(b"".join(parts))
    conn.receive_data(b'\xff\n{"execute":"query-status","id":"probe"}')
    answers = [json.loads(line) for line in conn.data_to_send().split(b"\r\n") if line]
    assert answers[-1]["id"] == "probe" and answers[-1]["return"]["status"] == "prelaunch"
    assert all(set(a) <= {"return", "error", "id"} for a in answers)
    assert not conn.closing
