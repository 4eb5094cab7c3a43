"""QEMU's JSON as QMP speaks it: the streaming lexer, the message splitter, the parser, the writer.

Sans-IO. :class:`JsonMessageStream` takes bytes in any chunking and yields one
:class:`JsonMessage` per complete top-level value (or per error), exactly where
QEMU 7.2's ``json-lexer``/``json-streamer``/``json-parser`` would: the lexer is the
same deterministic automaton (single-quoted strings accepted, error recovery that
skips to the next structural or control character), a message ends when the
brace/bracket depth returns to zero, and the errors carry QEMU's texts ("JSON parse
error, stray '@'", "JSON parse error, expecting value", ...). The size bound is ours
(QEMU uses 64 MiB); exceeding it gives QEMU's "JSON token size limit exceeded".
Nesting deeper than QEMU's MAX_NESTING (1024) is refused with QEMU's "JSON nesting
depth limit exceeded" and, as in QEMU, the stream carries on with the next token:
the connection stays open. The parser and the writer keep their own stacks instead
of recursing, so a value as deep as QEMU accepts never meets Python's recursion limit.

:func:`to_json` writes values as QEMU's ``qobject_to_json`` does: ``", "`` and
``": "`` separators, non-ASCII as upper-case ``\\uXXXX``, and the members of every
object in QDict iteration order (``tdb_hash`` buckets), which is why QEMU prints
``{"props": ..., "vcpus-count": ..., "type": ...}`` and not the schema order.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Generator, Iterator
from functools import lru_cache
from typing import Any

import attrs

from machine.config.qemu_opts import qdict_bucket

#: QEMU's own limits (json-streamer.c); the byte bound is configurable per stream.
QEMU_MAX_TOKEN_SIZE = 64 << 20
MAX_TOKEN_COUNT = 2 << 20
MAX_NESTING = 1 << 10
#: Our default bound on one message (and one token), far above any real command.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20

TOKEN_SIZE_ERROR = "JSON token size limit exceeded"


class Tok(enum.IntEnum):
    """Token types the lexer hands to the message splitter."""

    ERROR = 0
    LCURLY = 100
    RCURLY = 101
    LSQUARE = 102
    RSQUARE = 103
    COLON = 104
    COMMA = 105
    INTEGER = 106
    FLOAT = 107
    KEYWORD = 108
    STRING = 109


class Lex(enum.IntEnum):
    """Lexer states (json-lexer.c's automaton)."""

    RECOVERY = 1
    DQ_ESCAPE = 2
    DQ_STRING = 3
    SQ_ESCAPE = 4
    SQ_STRING = 5
    ZERO = 6
    EXP_DIGITS = 7
    EXP_SIGN = 8
    EXP_E = 9
    MANTISSA = 10
    MANTISSA_DIGITS = 11
    DIGITS = 12
    SIGN = 13
    KEYWORD = 14
    START = 15


#: A transition: (next state or token type, the byte is looked ahead and not consumed).
_Step = tuple[int, bool]
_ERR: _Step = (Tok.ERROR, False)


def _build_table() -> dict[int, list[_Step]]:
    """The automaton, one 256-entry row per state; unlisted bytes lead to ERROR."""
    table: dict[int, list[_Step]] = {}

    def row(default: _Step = _ERR) -> list[_Step]:
        return [default] * 256

    def span(r: list[_Step], lo: int, hi: int, step: _Step) -> None:
        for b in range(lo, hi + 1):
            r[b] = step

    # Recovery: skip until a structural or control character, or 0xFE/0xFF.
    r = row((Lex.RECOVERY, False))
    span(r, 0x00, 0x1F, (Lex.START, True))
    span(r, 0xFE, 0xFF, (Lex.START, True))
    r[ord("\t")] = (Lex.RECOVERY, False)
    for ch in "[]{}:,":
        r[ord(ch)] = (Lex.START, True)
    table[Lex.RECOVERY] = r

    for quote, string, escape in (
        ('"', Lex.DQ_STRING, Lex.DQ_ESCAPE),
        ("'", Lex.SQ_STRING, Lex.SQ_ESCAPE),
    ):
        r = row()
        span(r, 0x20, 0xFD, (string, False))
        table[escape] = r
        r = row()
        span(r, 0x20, 0xFD, (string, False))
        r[ord("\\")] = (escape, False)
        r[ord(quote)] = (Tok.STRING, False)
        table[string] = r

    r = row((Tok.INTEGER, True))
    span(r, ord("0"), ord("9"), _ERR)
    r[ord(".")] = (Lex.MANTISSA, False)
    table[Lex.ZERO] = r

    r = row((Tok.FLOAT, True))
    span(r, ord("0"), ord("9"), (Lex.EXP_DIGITS, False))
    table[Lex.EXP_DIGITS] = r

    r = row()
    span(r, ord("0"), ord("9"), (Lex.EXP_DIGITS, False))
    table[Lex.EXP_SIGN] = r

    r = row()
    r[ord("-")] = r[ord("+")] = (Lex.EXP_SIGN, False)
    span(r, ord("0"), ord("9"), (Lex.EXP_DIGITS, False))
    table[Lex.EXP_E] = r

    r = row((Tok.FLOAT, True))
    span(r, ord("0"), ord("9"), (Lex.MANTISSA_DIGITS, False))
    r[ord("e")] = r[ord("E")] = (Lex.EXP_E, False)
    table[Lex.MANTISSA_DIGITS] = r

    r = row()
    span(r, ord("0"), ord("9"), (Lex.MANTISSA_DIGITS, False))
    table[Lex.MANTISSA] = r

    r = row((Tok.INTEGER, True))
    span(r, ord("0"), ord("9"), (Lex.DIGITS, False))
    r[ord("e")] = r[ord("E")] = (Lex.EXP_E, False)
    r[ord(".")] = (Lex.MANTISSA, False)
    table[Lex.DIGITS] = r

    r = row()
    r[ord("0")] = (Lex.ZERO, False)
    span(r, ord("1"), ord("9"), (Lex.DIGITS, False))
    table[Lex.SIGN] = r

    r = row((Tok.KEYWORD, True))
    span(r, ord("a"), ord("z"), (Lex.KEYWORD, False))
    table[Lex.KEYWORD] = r

    r = row()
    r[ord('"')] = (Lex.DQ_STRING, False)
    r[ord("'")] = (Lex.SQ_STRING, False)
    r[ord("0")] = (Lex.ZERO, False)
    span(r, ord("1"), ord("9"), (Lex.DIGITS, False))
    r[ord("-")] = (Lex.SIGN, False)
    r[ord("{")] = (Tok.LCURLY, False)
    r[ord("}")] = (Tok.RCURLY, False)
    r[ord("[")] = (Tok.LSQUARE, False)
    r[ord("]")] = (Tok.RSQUARE, False)
    r[ord(",")] = (Tok.COMMA, False)
    r[ord(":")] = (Tok.COLON, False)
    span(r, ord("a"), ord("z"), (Lex.KEYWORD, False))
    for ch in " \t\r\n":
        r[ord(ch)] = (Lex.START, False)
    table[Lex.START] = r
    return table


_TABLE = _build_table()
#: Runs of bytes that keep a string (or recovery) in its state, for a fast path.
_FAST_RUN: dict[int, re.Pattern[bytes]] = {
    Lex.DQ_STRING: re.compile(rb"[\x20\x21\x23-\x5b\x5d-\xfd]+"),
    Lex.SQ_STRING: re.compile(rb"[\x20-\x26\x28-\x5b\x5d-\xfd]+"),
    Lex.RECOVERY: re.compile(rb"[\x09\x20-\x2b\x2d-\x39\x3b-\x5a\x5c\x5e-\x7a\x7c\x7e-\xfd]+"),
    Lex.START: re.compile(rb"[ \t\r\n]+"),
}
_TOKEN_TYPES = frozenset(t.value for t in Tok if t is not Tok.ERROR)


@attrs.frozen
class JsonToken:
    """One lexed token: its type and raw bytes."""

    type: Tok
    text: bytes


@attrs.frozen
class JsonMessage:
    """A complete top-level value or an error, as the monitor receives it.

    ``fatal`` marks a size-limit error after which the stream is not trusted
    (the transport closes the connection).
    """

    value: Any = None
    error: str | None = None
    fatal: bool = False


class JsonParseError(Exception):
    """A parse error with QEMU's text (without the "JSON parse error, " prefix)."""


class JsonMessageStream:
    """QEMU's ``JSONMessageParser``: bytes in, :class:`JsonMessage` out."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._state: int = Lex.START
        self._token = bytearray()
        self._tokens: list[JsonToken] = []
        self._token_size = 0
        self._braces = 0
        self._brackets = 0
        self._out: list[JsonMessage] = []

    @property
    def pending(self) -> bool:
        """Whether part of a message (or of a token) has been received."""
        return bool(self._tokens or self._token) or self._state not in (Lex.START, Lex.RECOVERY)

    def feed(self, data: bytes) -> list[JsonMessage]:
        """Lex ``data``; return the messages it completed, in order."""
        state = self._state
        token = self._token
        i, n = 0, len(data)
        while i < n:
            fast = _FAST_RUN.get(state)
            if fast is not None:
                m = fast.match(data, i)
                if m is not None:
                    if state in (Lex.DQ_STRING, Lex.SQ_STRING):
                        token += m.group()
                    i = m.end()
                    if len(token) > self.max_bytes:
                        state = self._oversized_token(state)
                    continue
            byte = data[i]
            nxt, lookahead = _TABLE[state][byte]
            if not lookahead:
                token.append(byte)
                i += 1
            if nxt in _TOKEN_TYPES:
                self._process(Tok(nxt), bytes(token))
                token.clear()
                state = Lex.START
            elif nxt == Lex.START:
                token.clear()
                state = Lex.START
            elif nxt == Tok.ERROR:
                self._process(Tok.ERROR, bytes(token))
                token.clear()
                state = Lex.RECOVERY
            elif nxt == Lex.RECOVERY:
                token.clear()
                state = Lex.RECOVERY
            else:
                state = nxt
            if len(token) > self.max_bytes:
                state = self._oversized_token(state)
        self._state = state
        out, self._out = self._out, []
        return out

    def _oversized_token(self, state: int) -> int:
        """json-lexer.c: a token over the bound is handed on as is and refused."""
        self._token.clear()
        self._emit(None, TOKEN_SIZE_ERROR, fatal=True)
        return Lex.START

    def _emit(self, value: Any, error: str | None, *, fatal: bool = False) -> None:
        self._braces = 0
        self._brackets = 0
        self._tokens = []
        self._token_size = 0
        self._out.append(JsonMessage(value, error, fatal))

    def _process(self, kind: Tok, text: bytes) -> None:
        """json_message_process_token: count nesting, bound sizes, parse at depth zero."""
        if kind is Tok.LCURLY:
            self._braces += 1
        elif kind is Tok.RCURLY:
            self._braces -= 1
        elif kind is Tok.LSQUARE:
            self._brackets += 1
        elif kind is Tok.RSQUARE:
            self._brackets -= 1
        elif kind is Tok.ERROR:
            self._emit(None, f"JSON parse error, stray '{_c_text(text)}'")
            return
        if self._token_size + len(text) + 1 > self.max_bytes:
            self._emit(None, TOKEN_SIZE_ERROR, fatal=True)
            return
        if len(self._tokens) + 1 > MAX_TOKEN_COUNT:
            self._emit(None, "JSON token count limit exceeded", fatal=True)
            return
        if self._brackets + self._braces > MAX_NESTING:
            # not fatal: QEMU answers and carries on with the next token
            self._emit(None, "JSON nesting depth limit exceeded")
            return
        self._tokens.append(JsonToken(kind, text))
        self._token_size += len(text)
        if (self._braces > 0 or self._brackets > 0) and self._braces >= 0 and self._brackets >= 0:
            return
        try:
            value = _Parser(self._tokens).parse()
        except JsonParseError as err:
            self._emit(None, f"JSON parse error, {err}")
            return
        self._emit(value, None)


def _c_text(raw: bytes) -> str:
    """Bytes QEMU prints with %s into an error text, as its JSON writer then shows them.

    The text ends at the first NUL byte; the writer reads the rest as modified
    UTF-8 (C0 80 is U+0000) and shows each invalid sequence, as far as
    :func:`_mod_utf8_codepoint` reaches, as one U+FFFD (so a UTF-8 surrogate,
    three bytes, is one replacement character, not three).
    """
    raw = raw.split(b"\0", 1)[0]
    if raw.isascii():
        return raw.decode("ascii")
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        cp, pos = _mod_utf8_codepoint(raw, pos)
        out.append("\ufffd" if cp < 0 else chr(cp))
    return "".join(out)


#: A parsing step: a generator that yields the sub-steps it needs and returns its value.
_ParseStep = Generator["_ParseStep", Any, Any]


class _Parser:
    """json-parser.c's recursive descent over one message's tokens, without recursion.

    Each rule is a generator that *yields* the rule it would call and receives its
    value; :meth:`parse` runs them on an explicit stack, so nesting as deep as
    QEMU's limit (1024) costs list entries, not Python frames. The rules, their
    order and their first-error-wins texts are json-parser.c's.
    """

    def __init__(self, tokens: list[JsonToken]) -> None:
        self._tokens = tokens
        self._pos = 0

    def parse(self) -> Any:
        stack: list[_ParseStep] = [self._value()]
        value: Any = None
        while stack:
            try:
                step = stack[-1].send(value)
            except StopIteration as done:
                stack.pop()
                value = done.value
                continue
            stack.append(step)
            value = None
        return value

    def _peek(self) -> JsonToken | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _pop(self) -> JsonToken | None:
        tok = self._peek()
        if tok is not None:
            self._pos += 1
        return tok

    def _value(self) -> _ParseStep:
        tok = self._peek()
        if tok is None:
            raise JsonParseError("premature EOI")
        if tok.type is Tok.LCURLY:
            return (yield self._object())
        if tok.type is Tok.LSQUARE:
            return (yield self._array())
        if tok.type in (Tok.INTEGER, Tok.FLOAT, Tok.STRING):
            self._pos += 1
            return _literal(tok)
        if tok.type is Tok.KEYWORD:
            self._pos += 1
            return _keyword(tok)
        raise JsonParseError("expecting value")

    def _object(self) -> _ParseStep:
        self._pop()
        result: dict[str, Any] = {}
        peek = self._peek()
        if peek is None:
            raise JsonParseError("premature EOI")
        if peek.type is Tok.RCURLY:
            self._pop()
            return result
        yield self._pair(result)
        while True:
            tok = self._pop()
            if tok is None:
                raise JsonParseError("premature EOI")
            if tok.type is Tok.RCURLY:
                return result
            if tok.type is not Tok.COMMA:
                raise JsonParseError("expected separator in dict")
            yield self._pair(result)

    def _pair(self, result: dict[str, Any]) -> _ParseStep:
        if self._peek() is None:
            raise JsonParseError("premature EOI")
        key = yield self._value()
        if not isinstance(key, str):
            raise JsonParseError("key is not a string in object")
        tok = self._pop()
        if tok is None:
            raise JsonParseError("premature EOI")
        if tok.type is not Tok.COLON:
            raise JsonParseError("missing : in object pair")
        value = yield self._value()
        if key in result:
            raise JsonParseError("duplicate key")
        result[key] = value

    def _array(self) -> _ParseStep:
        self._pop()
        result: list[Any] = []
        peek = self._peek()
        if peek is None:
            raise JsonParseError("premature EOI")
        if peek.type is Tok.RSQUARE:
            self._pop()
            return result
        result.append((yield self._value()))
        while True:
            tok = self._pop()
            if tok is None:
                raise JsonParseError("premature EOI")
            if tok.type is Tok.RSQUARE:
                return result
            if tok.type is not Tok.COMMA:
                raise JsonParseError("expected separator in list")
            result.append((yield self._value()))


def _keyword(tok: JsonToken) -> Any:
    word = tok.text
    if word == b"true":
        return True
    if word == b"false":
        return False
    if word == b"null":
        return None
    raise JsonParseError(f"invalid keyword '{_c_text(word)}'")


INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


def _literal(tok: JsonToken) -> Any:
    if tok.type is Tok.STRING:
        return decode_string(tok.text)
    text = tok.text.decode("ascii")
    if tok.type is Tok.INTEGER:
        value = int(text)
        if INT64_MIN <= value <= UINT64_MAX:
            return value
    return float(text)


_ESCAPES = {
    ord('"'): '"',
    ord("'"): "'",
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def valid_codepoint(cp: int) -> bool:
    """QEMU's is_valid_codepoint: in range, not a surrogate, not a noncharacter."""
    if cp < 0 or cp > 0x10FFFF:
        return False
    if 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE:
        return False
    return not 0xD800 <= cp <= 0xDFFF


def _mod_utf8_codepoint(raw: bytes, pos: int) -> tuple[int, int]:
    """One code point of modified UTF-8 (``\\xC0\\x80`` is U+0000); (-1, next) if invalid."""
    byte = raw[pos]
    if byte < 0x80:
        return byte, pos + 1
    if byte >= 0xFE or not byte & 0x40:
        return -1, pos + 1
    length = 0
    mask = 0x80
    while byte & mask:
        length += 1
        mask >>= 1
    cp = byte & (mask - 1)
    pos += 1
    for _ in range(1, length):
        nxt = raw[pos] if pos < len(raw) else 0
        if nxt & 0xC0 != 0x80:
            return -1, pos
        pos += 1
        cp = (cp << 6) | (nxt & 0x3F)
    minimum = (0x80, 0x800, 0x10000, 0x200000, 0x4000000)[length - 2]
    if not valid_codepoint(cp) or (cp < minimum and not (cp == 0 and length == 2)):
        return -1, pos
    return cp, pos


def decode_string(raw: bytes) -> str:
    """parse_string: a quoted token's bytes to text, with QEMU's escapes and checks."""
    body = raw[1:-1]
    if b"\\" not in body and body.isascii():
        return body.decode("ascii")
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        byte = body[i]
        if byte == 0x5C:  # backslash
            start = i
            esc = body[i + 1]
            i += 2
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                continue
            if esc != ord("u"):
                raise JsonParseError("invalid escape sequence in string")
            cp = _hex4(body, i)
            i += 4
            if 0xD800 <= cp <= 0xDBFF and body[i : i + 2] == b"\\u":
                trailing = _hex4(body, i + 2)
                if 0xDC00 <= trailing <= 0xDFFF:
                    cp = 0x10000 + ((cp & 0x3FF) << 10) | (trailing & 0x3FF)
                    i += 6
                else:
                    cp = -1
            if not valid_codepoint(cp):
                shown = _c_text(raw[1 + start : 1 + i])
                raise JsonParseError(f"{shown} is not a valid Unicode character")
            out.append(chr(cp))
            continue
        cp, i = _mod_utf8_codepoint(body, i)
        if cp < 0:
            raise JsonParseError("invalid UTF-8 sequence in string")
        out.append(chr(cp))
    return "".join(out)


def _hex4(body: bytes, pos: int) -> int:
    digits = body[pos : pos + 4]
    if len(digits) < 4 or any(d not in _HEX for d in digits):
        return -1
    return int(digits, 16)


# ---------------------------------------------------------------------- writer


@lru_cache(maxsize=4096)
def _bucket(key: str) -> int:
    return qdict_bucket(key)


def qdict_keys(obj: dict[str, Any]) -> tuple[str, ...]:
    """A dict's keys in QDict iteration order (its insertion order is QEMU's)."""
    return _qdict_order(tuple(obj))


@lru_cache(maxsize=4096)
def _qdict_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    keyed = sorted((_bucket(k), -i, k) for i, k in enumerate(keys))
    return tuple(k for _, _, k in keyed)


_STR_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_PLAIN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*\Z")


def quote_string(text: str) -> str:
    """json-writer.c's quoted_str: escapes, and \\uXXXX (upper case) outside printable ASCII."""
    if _PLAIN.match(text):
        return f'"{text}"'
    parts = ['"']
    for ch in text:
        esc = _STR_ESCAPES.get(ch)
        if esc is not None:
            parts.append(esc)
            continue
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xFFFD
        if cp > 0xFFFF:
            cp -= 0x10000
            parts.append(f"\\u{0xD800 + (cp >> 10):04X}\\u{0xDC00 + (cp & 0x3FF):04X}")
        elif cp < 0x20 or cp >= 0x7F:
            parts.append(f"\\u{cp:04X}")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _format_double(value: float) -> str:
    """printf's %.17g (inf and nan as C prints them)."""
    if value != value:
        return "nan" if str(value)[0] != "-" else "-nan"
    return f"{value:.17g}"


class _Text(str):
    """Text already written out (a separator or a closing bracket) on the writer's stack."""


def _write(value: Any, out: list[str]) -> None:
    """qobject_to_json with an explicit stack: containers push their members, last first."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Text:
            out.append(item)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Text("}"))
            for n, key in reversed(list(enumerate(qdict_keys(item)))):
                stack.append(item[key])
                stack.append(_Text(("" if n == 0 else ", ") + quote_string(key) + ": "))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            stack.append(_Text("]"))
            for n in range(len(item) - 1, -1, -1):
                stack.append(item[n])
                if n:
                    stack.append(_Text(", "))
        else:
            _write_scalar(item, out)


def _write_scalar(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_format_double(value))
    elif isinstance(value, str):
        out.append(quote_string(value))
    else:
        raise TypeError(f"not a QObject: {value!r}")


def to_json(value: Any) -> str:
    """Compact JSON exactly as QEMU prints it (QDict member order)."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def iter_messages(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Iterator[JsonMessage]:
    """The messages of a complete byte string (a convenience for tests and scripts)."""
    yield from JsonMessageStream(max_bytes).feed(data)
