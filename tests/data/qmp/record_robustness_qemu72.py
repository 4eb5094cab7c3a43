# ruff: noqa: E501
"""Regenerate robustness_qemu72.json: real qemu-system-ppc64 7.2's replies to the robustness campaign's findings.

Run from the repository root with QEMU 7.2 installed:
``python tests/data/qmp/record_robustness_qemu72.py > tests/data/qmp/robustness_qemu72.json``.

QEMU runs as the campaign runs it (robustness/live.py: ``-M pseries -cpu POWER9
-smp 1,maxcpus=4 -m 1G -nodefaults -display none -S -seed 1`` and a QMP UNIX
socket); each case is sent as the campaign's live comparison sends it
(robustness/qmp_fuzz.py's ``run_case(..., marked=True)``): a fresh connection,
``qmp_capabilities``, the case's bytes, then the end mark (a 0xFF byte, which
QEMU reports as a stray token, and a request with the id ``end-of-case``), reading
up to the mark's reply (QEMU drops unwritten replies when a client ends its
input, so the client does not). The group's ``setup`` requests go first, once.
Every reply line QEMU wrote but events and the mark's own reply is recorded as
written (the 0xFF byte's error included), runs of equal lines as ``[line, count]``. Inputs are stored as text whose characters are the bytes
(latin-1), since many are not UTF-8.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from robustness import live, qmp_fuzz  # noqa: E402
from robustness.harness import P9, P9_CORE  # noqa: E402

ADD_CORE1 = (
    b'{"execute":"device_add","arguments":{"driver":"%s","id":"core1","core-id":1}}'
    % P9_CORE.encode()
)

#: Invalid and modified UTF-8 in member names, escapes, strings and stray tokens.
UTF8 = {
    "member-c080-first": b'{"excute": "human-monitor-command", "arguments\xc0\x80": {"command-line": "info status"}, "id": 16}',
    "member-c080-vs-idf": b'{"execute": "query-i\xc0\x80othreads", "arguments\xc0\x80": {}, "idf": 18}',
    "member-escaped-nul": b'{"execute":"query-status","arguments\\u0000":1,"excute":1}',
    "member-non-ascii": b'{"execute":"query-status","\xc3\xa9t\xc3\xa9":1}',
    "hex-escape-c080": b'{"execute":"human-monitor-command","arguments":{"command-\\u00\xc0\x8000line":"info sta\\u0\\u0000000tus"}}',
    "stray-surrogate": b'{"execute": "migrate-incoming", "arguments": {"uri": "unix:/nonex\xed\xa0\x80istent/\x19x"}, "id": 3}',
    "stray-c080-fe": b'{"execute": "query-ma\xc0\x80ch\xc0\x80ines\xfe", "arguments\x85: {}, "id": 27}',
    "stray-surrogate-newline": b'{"id": 30\xed\xa0\x80}\n',
    "stray-truncated-3byte": b'["a\xe2\x82\x19"]',
    "stray-4byte": b'["\xf0\x9f\x98\x80\x01"]',
    "stray-noncharacter": b'["\xef\xbf\xbe\x01"]',
    "stray-5byte": b'["\xf8\x88\x80\x80\x80\x01"]',
    "stray-6byte": b'["\xfc\x84\x80\x80\x80\x80\x01"]',
    "stray-continuations": b'["\x80\x80\x01"]',
    "stray-overlong-2": b'["\xc0\xaf\x01"]',
    "stray-overlong-3": b'["\xe0\x80\xaf\x01"]',
    "stray-lead-then-control": b'["\xc3\x01"]',
    "stray-lead-then-ascii": b'["\xc3a\x01"]',
    "stray-beyond-range": b'["\xf4\x90\x80\x80\x01"]',
    "string-surrogate": b'{"execute":"qom-list","arguments":{"path":"\xed\xa0\x80"}}',
    "string-overlong": b'{"execute":"qom-list","arguments":{"path":"\xc0\xaf"}}',
    "string-c080-path": b'{"execute":"qom-list","arguments":{"path":"/mach\xc0\x80ine"}}',
    "string-escaped-nul-path": b'{"execute":"qom-list","arguments":{"path":"/mach\\u0000ine"}}',
    "string-bad-escape-bytes": b'{"execute":"qom-list","arguments":{"path":"\\u\xe2\x82\xac12"}}',
    "keyword-bytes": b"[tru\xc3\xa9]",
}
#: Partial QOM paths (object_resolve_path), one core at boot and core1 plugged.
QOM_PATHS = [
    "",
    "core1",
    "thread[0]",
    "thread[1]",
    "icp",
    "device",
    "peripheral",
    "machine",
    "machine/",
    "a/",
    "x",
    "/",
    "//",
    "40000000",
    "core1/thread[0]",
    "device[0]/thread[0]",
]
#: How many generated ``stream`` cases are recorded, and from which seed.
STREAM_SEED, STREAM_COUNT = 7, 40


def _requests() -> list[tuple[str, str, list[bytes], bytes]]:
    """(group, name, setup, input) for every recorded case."""
    out: list[tuple[str, str, list[bytes], bytes]] = []
    out += [("utf8", name, [], data) for name, data in UTF8.items()]
    for path in QOM_PATHS:
        for command in ("qom-list", "qom-get"):
            args: dict[str, Any] = {"path": path}
            if command == "qom-get":
                args["property"] = "type"
            data = json.dumps({"execute": command, "arguments": args}).encode()
            out.append(("qom-path", f"{command} {path!r}", [ADD_CORE1], data))
    for option in ("x", "nosuch-option"):
        data = json.dumps(
            {"execute": "query-command-line-options", "arguments": {"option": option}}
        ).encode()
        out.append(("command-line-options", f"query-command-line-options {option!r}", [], data))
    out.append(("query-block", "query-block", [], b'{"execute": "query-block"}'))
    out.append(("query-block", "query-block with id", [], b'{"execute": "query-block", "id": 3}'))
    rng = random.Random(STREAM_SEED)
    for n in range(STREAM_COUNT):
        out.append(("stream", f"stream {STREAM_SEED}/{n}", [], qmp_fuzz.stream_case(rng).data))
    return out


def _runs(lines: list[str]) -> list[Any]:
    """Consecutive equal lines as [line, count]; single lines as themselves."""
    out: list[Any] = []
    for line in lines:
        if out and isinstance(out[-1], list) and out[-1][0] == line:
            out[-1][1] += 1
        elif out and out[-1] == line:
            out[-1] = [line, 2]
        else:
            out.append(line)
    return out


def exchange(path: Path, data: bytes) -> list[str]:
    """Negotiate, send ``data`` and the end mark; QEMU's reply lines up to the mark's (events left out)."""
    end = ('"id": "' + qmp_fuzz.END_ID + '"').encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(str(path))
        stream = sock.makefile("rb")
        stream.readline()  # the greeting
        sock.sendall(b'{"execute":"qmp_capabilities"}')
        assert stream.readline() == b'{"return": {}}\r\n'
        sock.sendall(data + qmp_fuzz.END_MARK)
        lines: list[str] = []
        while True:
            line = stream.readline()
            assert line.endswith(b"\r\n"), "QEMU closed before the end mark's reply"
            if end in line:
                break
            lines.append(line[:-2].decode("latin-1"))
    return [line for line in lines if not line.startswith('{"timestamp": ')]


def main() -> None:
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "qemu.sock"
        setup_done: set[bytes] = set()
        with live.live_qemu(P9, sock):
            for group, name, setup, data in _requests():
                for request in setup:
                    if request not in setup_done:
                        exchange(sock, request)
                        setup_done.add(request)
                records.append(
                    {
                        "group": group,
                        "name": name,
                        "setup": [s.decode() for s in setup],
                        "input": data.decode("latin-1"),
                        "replies": _runs(exchange(sock, data)),
                    }
                )
    doc = {
        "qemu": "qemu-system-ppc64 7.2 (Debian 1:7.2+dfsg-7+deb12u18)",
        "argv": [*P9, *live.QEMU_COMMON],
        "how": __doc__.split("\n\n")[2].replace("\n", " "),
        "cases": records,
    }
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
