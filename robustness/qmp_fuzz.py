"""Area 1: generated QMP and HMP input against a running server.

Every case is sent on a connection of its own (so clients come in turn, thousands
of them): the greeting is read, capabilities are negotiated (except for the
cases about what happens before), the case's bytes are written (whole, split at
random points or byte by byte), the client half-closes and reads until the
server closes. The rules:

* the server answers within the time limit and then closes (no hang), and stays
  up for the next client (no crash);
* every reply is a JSON object, either ``{"return": ...}`` or ``{"error": {"class":
  C, "desc": D}}`` with a class QEMU uses and a text that is not an internal
  error; a request's ``id`` comes back verbatim;
* after a case whose every reply was an error, ``query-hotpluggable-cpus``,
  ``qom-list`` and ``query-cpus-fast`` (asked on a separate connection) answer
  exactly as before.

Case kinds: malformed (mutated) and truncated JSON, nesting around and far past
QEMU's 1024 levels, huge strings and numbers, wrong types for every argument of
every command, unknown commands and arguments, commands before
``qmp_capabilities``, ``exec-oob``, batches, byte-split writes, disconnects in
mid-message, clients at once, a client that never reads, and HMP command lines
through ``human-monitor-command`` and on a ``-monitor stdio`` prompt. A sample of
the cases is also sent to real qemu-system-ppc64 7.2 (:mod:`robustness.live`) and
the replies must be the same (class and text).
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_json import DEFAULT_MAX_MESSAGE_BYTES, iter_messages, to_json
from robustness.harness import P9, P9_CORE, ServedMachine, served
from robustness.report import AreaReport, Progress

#: Error classes QEMU 7.2's QMP uses.
QEMU_CLASSES = frozenset(
    {"GenericError", "CommandNotFound", "DeviceNotFound", "DeviceNotActive", "KVMMissingCap"}
)
#: Texts that give away an emulator bug rather than QEMU's refusal.
BUG_MARKERS = ("internal error", "Traceback", "object has no attribute", "NoneType", "Error(")
#: Doubles QEMU writes with printf's %.17g that are not JSON (an id of 1e400 comes back so).
_C_DOUBLES = re.compile(rb"(?<=[:\[,] )(-?inf|-?nan)(?=[,}\]])")
#: Seconds a case may take before it counts as a hang.
CASE_TIMEOUT_S = 10.0
#: Commands whose success changes the machine (a "return" from one re-baselines).
STATE_CHANGING = frozenset(
    {"device_add", "device_del", "system_reset", "system_powerdown", "stop", "cont"}
    | {"human-monitor-command"}
)
#: Valid-looking values for each argument, so one wrong argument is the only fault.
GOOD_VALUES: dict[str, Any] = {
    "uri": "unix:/nonexistent/campaign-migration.sock",
    "path": "/machine/peripheral",
    "property": "type",
    "id": "nosuch",
    "command-line": "info status",
    "cpu-index": 0,
    "enable": [],
    "blk": False,
    "inc": False,
    "detach": True,
    "resume": False,
}
WRONG_VALUES: list[Any] = [
    0,
    -1,
    2**63,
    -(2**63) - 1,
    2**64,
    1.5,
    -0.0,
    True,
    False,
    None,
    "",
    "x",
    "0x10",
    [],
    [1, "a"],
    {},
    {"a": 1},
    "\u00e9\u20ac",
    "a" * 300,
]
HMP_WORDS = [
    "info",
    "status",
    "cpus",
    "hotpluggable-cpus",
    "qtree",
    "qom-tree",
    "pic",
    "drc",
    "events",
    "pending",
    "migrate",
    "version",
    "help",
    "device_add",
    "device_del",
    "guest",
    "lscpu",
    "dt",
    "show",
    "trace",
    "diagram",
    "vcpu",
    "rtas",
    "check-exception",
    "nosuch",
    "-h",
    "?",
]


@attrs.frozen
class Case:
    """One generated input: its kind, the bytes (in the writes to make) and how it is sent."""

    kind: str
    chunks: tuple[bytes, ...]
    negotiate: bool = True
    #: Send each chunk with a short pause, so the server sees separate reads.
    paced: bool = False

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def describe(self) -> str:
        text = self.data.decode("utf-8", "backslashreplace")
        return f"{self.kind} ({len(self.chunks)} writes, negotiate={self.negotiate}): {text}"


@attrs.frozen
class Outcome:
    """What came back for a case: reply lines, whether the server closed, problems seen."""

    replies: tuple[Any, ...]
    closed: bool
    problems: tuple[str, ...]


# ------------------------------------------------------------------ the client side


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def _read_line(sock: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


#: What :func:`run_case` sends after a case instead of ending its input (``marked``):
#: a byte no JSON state accepts (the stream reports it and starts afresh, whatever
#: the case left half-read), then a request whose reply, carrying :data:`END_ID`,
#: is the last line of the case's answer.
END_ID = "end-of-case"
END_MARK = b'\xff{"execute":"query-status","id":"' + END_ID.encode() + b'"}'


def run_case(
    path: str, case: Case, timeout: float = CASE_TIMEOUT_S, *, marked: bool = False
) -> Outcome:
    """Send ``case`` on a fresh connection; every reply until the server closes.

    With ``marked`` the client does not end its input but sends :data:`END_MARK`
    and reads up to the mark's reply (or until the server closes). QEMU closes
    on a client's end of input and drops the replies it has not yet written, so
    only a marked case gets QEMU's whole answer however long it takes to give.
    """
    problems: list[str] = []
    buf = bytearray()
    deadline = time.monotonic() + timeout
    end_line = b'"id": "' + END_ID.encode() + b'"'
    try:
        sock = _connect(path, timeout)
    except OSError as exc:
        return Outcome((), False, (f"cannot connect: {exc}",))
    with sock:
        try:
            greeting = _read_line(sock, buf)
            if greeting is None or b'"QMP"' not in greeting:
                return Outcome((), False, (f"no greeting: {greeting!r}",))
            if case.negotiate:
                sock.sendall(b'{"execute":"qmp_capabilities"}')
                if _read_line(sock, buf) != b'{"return": {}}':
                    problems.append("negotiation failed")
            for chunk in case.chunks:
                sock.sendall(chunk)
                if case.paced:
                    time.sleep(0.0005)
            if marked:
                sock.sendall(END_MARK)
            else:
                sock.shutdown(socket.SHUT_WR)
            while True:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if marked and buf.endswith(b"\r\n"):
                    before = buf.rfind(b"\r\n", 0, len(buf) - 2)
                    last = 0 if before < 0 else before + 2
                    if end_line in buf[last:]:
                        del buf[last:]  # the mark's reply is not the case's
                        break
        except TimeoutError:
            what = "no reply to the end mark" if marked else "hang: no close"
            return Outcome(_parse(bytes(buf), problems), False, (*problems, what))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed first (an oversized message): what it sent still counts
    return Outcome(_parse(bytes(buf), problems), True, tuple(problems))


def _parse(data: bytes, problems: list[str]) -> tuple[Any, ...]:
    out = []
    parsed: dict[bytes, Any] = {}  # thousands of equal error lines are parsed once
    for line in data.split(b"\r\n"):
        if not line:
            continue
        if line in parsed:
            out.append(parsed[line])
            continue
        # QEMU's JSON, parsed without recursion (an echoed id may nest 1024 levels);
        # QEMU prints an infinite double as C does ("inf"), which no JSON parser takes.
        # A reply has no size bound (HMP's "trace show" after a long run is megabytes
        # long): the stream's bound, meant for requests, is lifted to the line's size.
        text = _C_DOUBLES.sub(rb'"\1"', line)
        messages = list(iter_messages(text, max(DEFAULT_MAX_MESSAGE_BYTES, len(text) + 1)))
        if len(messages) != 1 or messages[0].error is not None:
            problems.append(f"a reply is not one JSON value: {line[:200]!r}")
            continue
        parsed[line] = messages[0].value
        out.append(messages[0].value)
    return tuple(out)


def check_replies(case: Case, outcome: Outcome) -> list[str]:
    """The rules every reply keeps (see the module docstring)."""
    problems = list(outcome.problems)
    for reply in outcome.replies:
        if not isinstance(reply, dict):
            problems.append(f"a reply is not an object: {to_json(reply)[:200]}")
            continue
        if "event" in reply:
            continue
        if "error" in reply:
            error = reply["error"]
            if not isinstance(error, dict) or set(error) != {"class", "desc"}:
                problems.append(f"malformed error: {to_json(reply)[:200]}")
                continue
            if error["class"] not in QEMU_CLASSES:
                problems.append(f"error class {error['class']!r} is not QEMU's")
            desc = error["desc"]
            if not isinstance(desc, str) or not desc or any(m in desc for m in BUG_MARKERS):
                problems.append(f"not a QEMU error text: {desc!r:.300}")
        elif "return" not in reply:
            problems.append(f"neither return nor error: {to_json(reply)[:200]}")
    return problems


def only_errors(outcome: Outcome) -> bool:
    return all("error" in r for r in outcome.replies if isinstance(r, dict) and "event" not in r)


class Observer:
    """A negotiated connection asking the three queries the rules compare."""

    QUERIES = (
        b'{"execute":"query-hotpluggable-cpus"}',
        b'{"execute":"qom-list","arguments":{"path":"/machine/peripheral"}}',
        b'{"execute":"qom-list","arguments":{"path":"/machine/unattached"}}',
        b'{"execute":"query-cpus-fast"}',
    )

    def __init__(self, path: str) -> None:
        self.sock = _connect(path, CASE_TIMEOUT_S)
        self.buf = bytearray()
        _read_line(self.sock, self.buf)
        self.sock.sendall(b'{"execute":"qmp_capabilities"}')
        _read_line(self.sock, self.buf)

    def state(self) -> tuple[Any, ...]:
        """The queries' answers (thread ids and events set aside)."""
        self.sock.sendall(b"".join(self.QUERIES))
        answers: list[Any] = []
        while len(answers) < len(self.QUERIES):
            line = _read_line(self.sock, self.buf)
            if line is None:
                raise ConnectionError("the observer's connection closed")
            reply = json.loads(line)
            if "event" not in reply:
                answers.append(_without_thread_ids(reply))
        return tuple(answers)

    def close(self) -> None:
        self.sock.close()


def _without_thread_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_thread_ids(v) for k, v in value.items() if k != "thread-id"}
    if isinstance(value, list):
        return [_without_thread_ids(v) for v in value]
    return value


# ------------------------------------------------------------------ generation


def _schema(commands: QmpCommands) -> dict[str, list[tuple[str, bool]]]:
    """Every command with its arguments (name, optional); device_add's are its properties."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for name, cmd in commands.table.items():
        if cmd.args is None:
            out[name] = [("driver", False), ("id", True), ("core-id", True), ("node-id", True)]
        else:
            out[name] = [(a.name, a.optional) for a in cmd.args]
    return out


def _good_args(command: str, schema: list[tuple[str, bool]]) -> dict[str, Any]:
    if command == "device_add":
        return {"driver": P9_CORE, "id": "fz", "core-id": 99}  # out of range: refused
    return {name: GOOD_VALUES.get(name, "x") for name, optional in schema if not optional}


def _request(command: str, args: dict[str, Any] | None, rid: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = {"execute": command}
    if args is not None:
        request["arguments"] = args
    if rid is not None:
        request["id"] = rid
    return request


def _valid_messages(schema: dict[str, list[tuple[str, bool]]]) -> list[bytes]:
    """Harmless valid requests (queries), used as seeds for mutation and batches."""
    out = [
        b'{"execute":"query-status"}',
        b'{"execute":"query-hotpluggable-cpus","id":"q1"}',
        b'{"execute":"qom-list","arguments":{"path":"/machine"}}',
        b'{"execute":"qom-get","arguments":{"path":"/machine","property":"type"}}',
        b'{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}',
        b"{'execute':'query-version','id':7}",
    ]
    out += [
        to_json(_request(c, _good_args(c, schema[c]), rid=i)).encode() for i, c in enumerate(schema)
    ]
    return [m for m in out if b'"quit"' not in m and b'"migrate"' not in m]


def generate(seed: int, count: int, commands: QmpCommands) -> Iterator[Case]:
    """``count`` cases, deterministic for ``seed``, cycling through the kinds."""
    rng = random.Random(seed)
    schema = _schema(commands)
    seeds = _valid_messages(schema)
    makers = [
        _malformed,
        _truncated,
        _deep,
        _huge,
        _wrong_type,
        _unknown,
        _before_capabilities,
        _exec_oob,
        _batch,
        _split,
        _wrong_type,
        _malformed,
    ]
    for n in range(count):
        maker = makers[n % len(makers)]
        yield maker(rng, schema, seeds)


def _malformed(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            del data[min(pos, len(data) - 1)]
        elif op == 1:
            data[pos:pos] = bytes([rng.choice(b"{}[]:,\"'\\ \t\n\x00\x1f\x7f\xc0\xfe\xff0-eE.tfn")])
        elif op == 2 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        else:
            data[pos:pos] = rng.choice(
                [b"\\u0000", b"\\ud800", b"\xed\xa0\x80", b"\xc0\x80", b"1e"]
            )
    return Case("malformed", (bytes(data),))


def _truncated(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    data = rng.choice(seeds)
    return Case("truncated", (data[: rng.randrange(1, len(data))],))


def _deep(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    depth = rng.choice([1023, 1024, 1025, 1026, 2048, 1024, 1025, 1023, 2048, 1026, 1024, 20000])
    shape = rng.randrange(3)
    if shape == 0:
        body = b"[" * depth + b"]" * depth
    elif shape == 1:
        body = b'{"a":' * depth + b"1" + b"}" * depth
    else:  # inside a request, as its id
        inner = b"[" * (depth - 1) + b"]" * (depth - 1)
        body = b'{"execute":"query-status","id":' + inner + b"}"
    return Case("deep", (body,))


#: Pieces :func:`stream_case` strings together: nesting near QEMU's limit, strings
#: with invalid (modified) UTF-8 and bad escapes, bytes the lexer refuses, numbers
#: and keywords the lexer half-accepts, separators, whitespace and whole requests.
STREAM_PIECES: tuple[bytes, ...] = (
    *(b * n for b in (b"[", b"]", b"{", b"}") for n in (1, 2, 3, 1023, 1024, 1025)),
    b'{"a":' * 1023,
    b'{"a":' * 1025,
    b'"abc"',
    b"'abc'",
    b'"a\\u00e9"',
    b'"\\ud800"',
    b'"\\ud800\\udc00"',
    b'"\\u12"',
    b'"\\x"',
    b'"\xed\xa0\x80"',
    b'"\xc0\x80"',
    b'"\xc3"',
    b'"ab',
    b"'ab",
    b"\x00",
    b"\x01",
    b"\x1f",
    b"\x7f",
    b"\xfe",
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"@",
    b"\\",
    b"0",
    b"-0",
    b"01",
    b"1e",
    b"1.5e+3",
    b"-",
    b"1.",
    b"18446744073709551616",
    b"true",
    b"nul",
    b"nullx",
    b"x",
    b",",
    b":",
    b" ",
    b"\n",
    b"\t",
    b"\r",
    b'{"execute":"query-status"}',
    b'{"execute":"query-status","id":[1,{"a":null}]}',
    b'{"execute":"qom-list","arguments":{"path":"/machine"}}',
    b'{"execute":"query-hotpluggable-cpus"',
    b'"execute"',
    b'{"execute":',
)


def stream_case(rng: random.Random) -> Case:
    """Pieces strung together: how the streamer recovers after each error, as QEMU's does."""
    data = b"".join(rng.choice(STREAM_PIECES) for _ in range(rng.randint(1, 12)))
    return Case("stream", (data,))


def _stream(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    return stream_case(rng)


def _huge(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    kind = rng.randrange(3)
    if kind == 0:
        size = rng.choice([1000, 65536, 300_000, (1 << 20) - 100, (1 << 20) + 100])
        text = b"a" * size
        body = b'{"execute":"qom-get","arguments":{"path":"' + text + b'","property":"x"}}'
        return Case("huge-string", (body,))
    number = rng.choice(
        [
            b"1e400",
            b"-1e400",
            b"18446744073709551616",
            b"18446744073709551615",
            b"-9223372036854775809",
            b"9223372036854775808",
            b"1" * 400,
            b"0.0000000000000000000000000001e-400",
            b"-0",
            b"1.5",
            b"01",
            b"-",
            b"1e",
        ]
    )
    where = rng.randrange(3)
    if where == 0:
        body = (
            b'{"execute":"human-monitor-command","arguments":'
            b'{"command-line":"info status","cpu-index":' + number + b"}}"
        )
    elif where == 1:
        body = (
            b'{"execute":"device_add","arguments":{"driver":"'
            + P9_CORE.encode()
            + b'","core-id":'
            + number
            + b"}}"
        )
    else:
        body = b'{"execute":"query-status","id":' + number + b"}"
    return Case("huge-number", (body,))


def _wrong_type(rng: random.Random, schema: dict[str, list[tuple[str, bool]]], seeds: Any) -> Case:
    command = rng.choice([c for c in schema if schema[c]] or list(schema))
    args = _good_args(command, schema[command])
    name, _optional = rng.choice(schema[command])
    args[name] = rng.choice(WRONG_VALUES)
    if command == "migrate" and name != "uri":
        args["uri"] = 7  # never a string: the request must not start a migration
    rid = rng.choice([None, 1, "x", [1], {"k": None}])
    return Case("wrong-type", (to_json(_request(command, args, rid)).encode(),))


def _unknown(rng: random.Random, schema: dict[str, list[tuple[str, bool]]], seeds: Any) -> Case:
    if rng.random() < 0.5:
        name = rng.choice(["nosuch", "query-block", "x" * 200, "", "Query-Status", "device-add"])
        return Case(
            "unknown-command", (to_json(_request(name, None, rng.choice([None, 3]))).encode(),)
        )
    command = rng.choice([c for c in schema if c not in ("quit",)])
    args = _good_args(command, schema[command])
    if command == "migrate":
        args["uri"] = 7
    args[rng.choice(["nosuch", "Path", "id2", "", "x" * 100])] = rng.choice(WRONG_VALUES)
    return Case("unknown-argument", (to_json(_request(command, args)).encode(),))


def _before_capabilities(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    body = rng.choice(
        [
            *seeds[:4],
            b'{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
            b'{"execute":"qmp_capabilities","arguments":{"enable":["nosuch"]}}',
            b'{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}',
            b'{"execute":"qmp_capabilities","id":1}{"execute":"qmp_capabilities"}',
            b'{"execute":"quit"}',
        ]
    )
    return Case("before-capabilities", (body,), negotiate=False)


def _exec_oob(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    body = rng.choice(
        [
            b'{"exec-oob":"query-status"}',
            b'{"exec-oob":"query-status","id":1}',
            b'{"exec-oob":"qmp_capabilities"}',
            b'{"exec-oob":5}',
            b'{"execute":"query-status","exec-oob":"query-status"}',
            b'{"exec-oob":"nosuch","id":"a"}',
        ]
    )
    return Case("exec-oob", (body,), negotiate=rng.random() < 0.8)


def _batch(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    parts = [rng.choice(seeds) for _ in range(rng.randint(2, 40))]
    if rng.random() < 0.5:
        parts.insert(rng.randrange(len(parts)), _malformed(rng, schema, seeds).data)
    return Case("batch", (rng.choice([b"", b"\n", b" "]).join(parts),))


def _split(rng: random.Random, schema: Any, seeds: list[bytes]) -> Case:
    data = rng.choice([*seeds, _malformed(rng, schema, seeds).data])
    if rng.random() < 0.3:
        chunks = tuple(data[i : i + 1] for i in range(len(data)))
    else:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 5))))
        chunks = tuple(data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)]))
    return Case("split", chunks, paced=True)


# ------------------------------------------------------------------ the area


def run(report: AreaReport, count: int, seed: int, *, progress: Progress | None = None) -> None:
    """Send ``count`` generated QMP cases, then the connection-level and HMP cases."""
    with (
        tempfile.TemporaryDirectory(prefix="campaign-qmp-") as tmp,
        served(P9, Path(tmp) / "qmp.sock") as server,
    ):
        if True:
            path = str(server.sock_path)
            observer = Observer(path)
            baseline = observer.state()
            commands = QmpCommands(server.control)
            spent: dict[str, float] = {}
            for n, case in enumerate(generate(seed, count, commands), 1):
                report.count(case.kind)
                started = time.monotonic()
                outcome = run_case(path, case)
                spent[case.kind] = spent.get(case.kind, 0.0) + time.monotonic() - started
                problems = check_replies(case, outcome)
                if not server.alive:
                    problems.append("the server thread died")
                try:
                    state = observer.state()
                except (OSError, ConnectionError, ValueError) as exc:
                    problems.append(f"the observer lost the server: {exc}")
                    observer = Observer(path)
                    state = observer.state()
                if only_errors(outcome) and state != baseline:
                    problems.append("the machine changed after a rejected message")
                baseline = state
                problems += server.problems
                server.problems.clear()
                if problems:
                    report.fail(case.kind, case.describe(), "; ".join(problems))
                if progress is not None:
                    progress.step(n)
            ranked = sorted(spent.items(), key=lambda kv: -kv[1])[:4]
            slowest = ", ".join(f"{k} {v:.1f} s" for k, v in ranked)
            report.note(f"time per kind (slowest): {slowest}")
            _connection_cases(report, server, observer)
            _hmp_over_qmp(report, server, observer, random.Random(seed), max(20, count // 10))
            observer.close()
    _hmp_on_stdio(report, random.Random(seed + 1), max(10, count // 50))


def _connection_cases(report: AreaReport, server: ServedMachine, observer: Observer) -> None:
    """Disconnects mid-message, many clients at once, and a client that never reads."""
    path = str(server.sock_path)
    baseline = observer.state()
    for cut in (1, 5, 17, 30):
        report.count("disconnect")
        sock = _connect(path, CASE_TIMEOUT_S)
        sock.sendall(b'{"execute":"qmp_capabilities"}{"execute":"query-hotpl'[: cut + 30])
        sock.close()
        if observer.state() != baseline or not server.alive:
            report.fail("disconnect", f"cut at {cut}", "the machine or server changed")
    results: list[Outcome] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        case = Case("at-once", (b'{"execute":"query-status","id":%d}' % i,) * 20)
        outcome = run_case(path, case)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CASE_TIMEOUT_S * 2)
    report.count("clients-at-once", len(threads))
    bad = [o for o in results if o.problems or len(o.replies) != 20]
    if len(results) != len(threads) or bad:
        report.fail("clients-at-once", "24 clients x 20 requests", f"{len(bad)} clients failed")
    report.count("never-reads")
    lazy = _connect(path, CASE_TIMEOUT_S)
    lazy.sendall(b'{"execute":"qmp_capabilities"}')
    try:
        lazy.settimeout(0.5)
        lazy.sendall(b'{"execute":"query-hotpluggable-cpus"}' * 60_000)
    except (TimeoutError, OSError):
        pass  # the server stopped reading a client that does not read: as it should
    started = time.monotonic()
    ok = observer.state() == baseline and time.monotonic() - started < CASE_TIMEOUT_S
    buffered = server.inspect(
        lambda _c: sum(
            cl.transport.get_write_buffer_size()
            for cl in (server.server.clients if server.server else [])
            if cl.transport is not None
        )
    )
    lazy.close()
    if not ok:
        report.fail("never-reads", "60000 requests, never reading", "other clients were blocked")
    report.note(f"a client that never reads: {buffered >> 10} KiB of replies held for it")
    if buffered > 32 << 20:
        report.fail("never-reads", "60000 requests", f"{buffered} bytes buffered: unbounded")


#: HMP lines whose whole output is QEMU's (refusals of commands the emulator models).
HMP_LIVE_LINES = (
    "nosuch",
    "",
    "device_del",
    "device_del nosuch",
    "device_add",
    "device_add nosuch",
    f"device_add {P9_CORE}",
    f"device_add {P9_CORE},core-id=9",
    f"device_add {P9_CORE},core-id=1,id=9x",
    "info status extra",
    "info status",
    "info hotpluggable-cpus",
    "help device_del",
    "stop x",
    "system_reset now",
)


def hmp_case(line: str, cpu_index: int | None = None) -> Case:
    """A human-monitor-command request for ``line``."""
    args: dict[str, Any] = {"command-line": line}
    if cpu_index is not None:
        args["cpu-index"] = cpu_index
    return Case("hmp", (to_json(_request("human-monitor-command", args)).encode(),))


def _hmp_line(rng: random.Random) -> str:
    words = [rng.choice(HMP_WORDS) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.3:
        words.append(
            rng.choice(["0x10000001", "-1", "99999999999999999999", "core1", "\u00e9", "a=b,c"])
        )
    if rng.random() < 0.05:
        words.append("x" * rng.choice([1000, 100_000]))
    line = " ".join(words)
    if rng.random() < 0.1:
        line += rng.choice(["\t", "\x00", "\x1b[A", "\\", '"', "'"])
    # nothing that ends the run, writes files or starts a migration
    for word in ("quit", "migrate", "draw"):
        line = line.replace(word, "info")
    return line


def _hmp_over_qmp(
    report: AreaReport, server: ServedMachine, observer: Observer, rng: random.Random, count: int
) -> None:
    path = str(server.sock_path)
    baseline = observer.state()
    for _ in range(count):
        line = _hmp_line(rng)
        cpu = rng.choice([0, 1, 7, -1, 2**40]) if rng.random() < 0.2 else None
        case = hmp_case(line, cpu)
        report.count("hmp-over-qmp")
        outcome = run_case(path, case)
        problems = check_replies(case, outcome)
        for reply in outcome.replies:
            text = reply.get("return") if isinstance(reply, dict) else None
            if isinstance(text, str) and any(m in text for m in BUG_MARKERS):
                problems.append(f"HMP printed an internal error: {text[:300]!r}")
        state = observer.state()
        changing = any(w in line.split()[:1] for w in ("device_add", "device_del", "vcpu", "rtas"))
        if state != baseline and not changing:
            problems.append("the machine changed after an HMP line that cannot change it")
        baseline = state
        if problems:
            report.fail("hmp-over-qmp", repr(line), "; ".join(problems))


def _hmp_on_stdio(report: AreaReport, rng: random.Random, count: int) -> None:
    """Generated lines piped into ``-monitor stdio``: every line echoed, no traceback, exit 0."""
    lines = [_hmp_line(rng).replace("\x00", " ") for _ in range(count)]
    script = "\n".join([*lines, "quit"]) + "\n"
    argv = [sys.executable, "-m", "spapr", *P9, "-S", "-guest", "none", "-monitor", "stdio"]
    report.count("hmp-on-stdio", count)
    try:
        done = subprocess.run(
            argv, input=script.encode(), capture_output=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        report.fail("hmp-on-stdio", f"{count} lines", "hang: the prompt did not finish")
        return
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    if done.returncode != 0 or "Traceback" in err or "Traceback" in out:
        report.fail("hmp-on-stdio", script[:2000], f"status {done.returncode}: {err[-500:]}")
    elif out.count("(qemu) ") < count:
        report.fail("hmp-on-stdio", script[:2000], "not every line reached the prompt")
