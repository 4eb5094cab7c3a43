"""QEMU's JSON dialect: the streaming lexer/parser and the writer (machine/monitor/qmp_json.py).

Expected texts are QEMU 7.2's (json-lexer.c, json-parser.c, json-writer.c); the
recorded end-to-end answers are checked in test_qmp_protocol.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machine.monitor.qmp_json import (
    JsonMessage,
    JsonMessageStream,
    decode_string,
    qdict_keys,
    quote_string,
    to_json,
)


def parse_all(data: bytes) -> list[JsonMessage]:
    return JsonMessageStream().feed(data)


def one_value(data: bytes) -> Any:
    (msg,) = parse_all(data)
    assert msg.error is None, msg.error
    return msg.value


def one_error(data: bytes) -> str:
    (msg,) = parse_all(data)
    assert msg.error is not None
    return msg.error


#: Text QEMU's JSON parser accepts: no surrogates and no Unicode noncharacters
#: (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF), which it rejects as invalid code points.
qemu_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(0xFDD0, 0xFDF0)],
    ).filter(lambda ch: (ord(ch) & 0xFFFE) != 0xFFFE),
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | qemu_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(qemu_text.filter(lambda t: len(t) <= 6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(values)
def test_written_json_is_valid_and_reads_back(value: Any) -> None:
    text = to_json(value)
    assert text.isascii()
    assert json.loads(text) == value
    assert one_value(f"[{text}]".encode()) == [value]


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=10), st.integers(), max_size=12))
def test_object_members_come_out_in_qdict_order(obj: dict[str, int]) -> None:
    out = json.loads(to_json(obj))
    assert list(out) == list(qdict_keys(obj))
    assert sorted(out) == sorted(obj)


def test_qdict_order_examples_from_qemu() -> None:
    slot = {"type": "t", "vcpus-count": 1, "props": {"node-id": 0, "core-id": 3}, "qom-path": "/p"}
    assert to_json(slot) == (
        '{"props": {"core-id": 3, "node-id": 0}, "vcpus-count": 1, "qom-path": "/p", "type": "t"}'
    )
    assert to_json({"return": {}, "id": 7}) == '{"return": {}, "id": 7}'
    assert to_json({"error": {"class": "C", "desc": "d"}, "id": 7}) == (
        '{"id": 7, "error": {"class": "C", "desc": "d"}}'
    )
    # StatusInfo's members in schema order; "status" and "singlestep" share a bucket,
    # where the newest insertion comes first.
    assert to_json({"running": False, "singlestep": False, "status": "prelaunch"}) == (
        '{"status": "prelaunch", "singlestep": false, "running": false}'
    )
    assert to_json({"running": False, "status": "prelaunch", "singlestep": False}) == (
        '{"singlestep": false, "status": "prelaunch", "running": false}'
    )


def test_strings_are_escaped_as_qemu_writes_them() -> None:
    assert quote_string('a"b\\c\n\r\t\b\f') == '"a\\"b\\\\c\\n\\r\\t\\b\\f"'
    assert quote_string("caf\u00e9") == '"caf\\u00E9"'
    assert quote_string("\x7f\x01") == '"\\u007F\\u0001"'
    assert quote_string("\U0001f600") == '"\\uD83D\\uDE00"'
    assert to_json(0.1) == "0.10000000000000001"
    assert to_json(2**64 - 1) == "18446744073709551615"


def test_numbers_follow_qemus_types() -> None:
    assert one_value(b"[9223372036854775807, 18446744073709551615, -9223372036854775808]") == [
        2**63 - 1,
        2**64 - 1,
        -(2**63),
    ]
    assert one_value(b"[18446744073709551616, -9223372036854775809]") == [2.0**64, -(2.0**63)]
    assert one_value(b"[1.5e3, -0, 0.25]") == [1500.0, 0, 0.25]


def test_qemu_extensions_single_quotes_and_escaped_apostrophe() -> None:
    assert one_value(b"{'a': 'it\\'s', \"b\": \"say \\'hi\\'\"}") == {"a": "it's", "b": "say 'hi'"}


def test_unicode_rules() -> None:
    assert decode_string(b'"\\u00e9\\ud83d\\ude00"') == "\u00e9\U0001f600"
    assert decode_string(b'"caf\xc3\xa9"') == "caf\u00e9"
    assert decode_string(b'"\xc0\x80"') == "\x00"  # modified UTF-8's NUL
    assert one_error(b'["\\uFFFE"]') == "JSON parse error, \\uFFFE is not a valid Unicode character"
    assert (
        one_error(b'["\\ud800x"]') == "JSON parse error, \\ud800 is not a valid Unicode character"
    )
    assert one_error(b'["\xc1\xbf"]') == "JSON parse error, invalid UTF-8 sequence in string"
    assert one_error(b'["\\q"]') == "JSON parse error, invalid escape sequence in string"


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (b"}", ["JSON parse error, expecting value"]),
        (b"]", ["JSON parse error, expecting value"]),
        (b"@ ", ["JSON parse error, stray '@'"]),
        (b'{"a" 1} ', ["JSON parse error, missing : in object pair"]),
        (b"{1: 2} ", ["JSON parse error, key is not a string in object"]),
        (b'{"a": 1 "b": 2} ', ["JSON parse error, expected separator in dict"]),
        (b"[1 2] ", ["JSON parse error, expected separator in list"]),
        (b"[1,] ", ["JSON parse error, expecting value"]),
        (b'{"a":} ', ["JSON parse error, expecting value"]),
        (b"[tru] ", ["JSON parse error, invalid keyword 'tru'"]),
        (b"01 ", ["JSON parse error, stray '01'"]),
        (b"1e ", ["JSON parse error, stray '1e '"]),
        (b"- ", ["JSON parse error, stray '- '"]),
        (b'{"a":1,"a":2}', ["JSON parse error, duplicate key"]),
    ],
)
def test_parse_errors(data: bytes, errors: list[str]) -> None:
    assert [m.error for m in parse_all(data)] == errors


def test_recovery_skips_to_the_next_structural_character() -> None:
    msgs = parse_all(b'@garbage here{"a":1}')
    assert [m.error for m in msgs] == ["JSON parse error, stray '@'", None]
    assert msgs[1].value == {"a": 1}


def test_a_scalar_at_top_level_ends_at_the_next_delimiter() -> None:
    stream = JsonMessageStream()
    assert stream.feed(b"12") == []
    assert stream.pending
    assert [m.value for m in stream.feed(b" ")] == [12]
    assert not stream.pending


@settings(max_examples=200)
@given(st.lists(values, min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=10))
def test_chunking_never_changes_the_messages(items: list[Any], cuts: list[int]) -> None:
    data = b"".join(to_json({"v": item}).encode() + b"\r\n" for item in items)
    whole = [m.value for m in parse_all(data)]
    assert whole == [{"v": item} for item in items]
    stream = JsonMessageStream()
    got: list[Any] = []
    prev = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        got.extend(m.value for m in stream.feed(data[prev:cut]))
        prev = cut
    assert got == whole


def test_size_bound_applies_to_tokens_and_messages() -> None:
    stream = JsonMessageStream(max_bytes=64)
    (msg,) = stream.feed(b'"' + b"x" * 100)
    assert msg.error == "JSON token size limit exceeded" and msg.fatal
    stream = JsonMessageStream(max_bytes=64)
    msgs = stream.feed(b"[" + b"1," * 40)
    assert msgs[0].error == "JSON token size limit exceeded" and msgs[0].fatal
