# ruff: noqa: E501
"""Regenerate qemu72_captures.json: answers of the real qemu-system-ppc64 7.2 (facts for tests).

Run from the repository root with QEMU 7.2 installed:
``python tests/data/qmp/capture_qemu72.py > tests/data/qmp/qemu72_captures.json``.
Every run uses ``-nographic -display none -nodefaults -S -seed 1`` and a QMP UNIX
socket; ``raw`` cases (text whose characters are the bytes, latin-1) are sent as bytes on a fresh connection (``qmp_capabilities``
first unless the case says otherwise) and record every line QEMU sends back
within half a second.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

COMMON = ["-nographic", "-display", "none", "-nodefaults", "-S", "-seed", "1"]
VERSIONS = [
    "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "2.9", "2.10", "2.11", "2.12",
    "2.12-sxxm", "3.0", "3.1", "4.0", "4.1", "4.2", "5.0", "5.1", "5.2", "6.0", "6.1", "6.2",
    "7.0", "7.1", "7.2",
]  # fmt: skip
CONFIGS = [
    "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 -m 1G",
    "-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G",
    "-M pseries,ic-mode=xics -cpu POWER9 -smp 2,maxcpus=4 -m 1G",
    "-M pseries -cpu POWER10 -smp 2,maxcpus=4 -m 1G",
    "-M pseries,vsmt=8 -cpu POWER8E -smp 2,maxcpus=4 -m 1G",
    "-M pseries -cpu POWER9 -smp 2,sockets=2,cores=2,threads=1,maxcpus=4 -m 1G",
    "-M pseries -cpu POWER9 -smp 2,maxcpus=64 -m 1G",
]
CLASSIC = CONFIGS[0]
HMP_LINES = [
    "help", "info", "help info", "help device_add", "help help", "help quit", "help q",
    "help stop", "help cont", "help system_reset", "help device_del", "help info status",
    "help info cpus", "help info qom-tree", "help nope", "help info nope", "help device_add extra",
    "nope", "info nope", "device_add", "device_del", "device_del a b", "info cpus extra",
    "system_reset x", "quit x", "q x", "info hotpluggable-cpus x", "info qom-tree /machine extra",
    "  info   status  ", 'device_del "c2', 'device_del "c\\x"', "device_add ,foo",
    "device_add help", "device_add power8e_v2.1-spapr-cpu-core,help",
    "device_add power8e_v2.1-spapr-cpu-core,id=c3,core-id=3,node-id=x",
    "device_add power9_v2.0-spapr-cpu-core,id=c3,core-id=3",
    "info qom-tree /machine/peripheral", "info qom-tree /nope",
    "info qom-tree /machine/unattached/device[0]", "info qom-tree machine",
    "info status", "stop", "info status", "cont", "info status", "stop", "info status",
    "system_reset", "info status", "cont", "cont", "system_reset", "info status", "stop",
]  # fmt: skip
RAW = [
    ["before negotiation", False, ['{"execute":"query-status"}']],
    ["unknown before negotiation", False, ['{"execute":"nope","id":1}']],
    ["stray brace", True, ["}"]],
    ["stray bytes, then a command, then a number", True, ['@@ {"execute":"nope"} 12 ']],
    ["control character in a string", True, ['"abc\n']],
    ["capabilities twice", True, ['{"execute":"qmp_capabilities","id":7}']],
    ["unexpected member", True, ['{"execute":"query-status","id":1,"foo":2}']],
    ["no execute", True, ['{"id":3}']],
    ["execute not a string", True, ['{"execute":5}']],
    ["arguments not an object", True, ['{"execute":"stop","arguments":[]}']],
    ["exec-oob without oob", True, ['{"exec-oob":"stop"}']],
    ["single quotes", True, ["{'execute':'query-status'}"]],
    ["duplicate key", True, ['{"execute":"query-status","execute":"x"}']],
    ["short unicode escape", True, ['{"a":"\\u12"}']],
    ["array split over writes", True, ["[1", "]"]],
    ["float id", True, ['{"execute":"query-status", "id": 0.1}']],
    ["structured id", True, ['{"execute":"query-status","id":[1,{"a":null}]}']],
    ["null id", True, ['{"execute":"query-status","id":null}']],
    ["invalid byte then a command", True, ['\xff{"execute":"query-status"}']],
    ["two commands in one write", True, ['{"execute":"query-status"}{"execute":"query-status","id":"x"}']],
    ["a command split in three", True, ['{"exec', 'ute":"query-st', 'atus"}']],
    ["unexpected argument", True, ['{"execute":"query-status","arguments":{"bogus":1}}']],
    ["two unexpected arguments", True, ['{"execute":"stop","arguments":{"b":1,"a":2}}']],
    ["wrong argument type", True, ['{"execute":"qom-list","arguments":{"path":5}}']],
    ["missing argument", True, ['{"execute":"qom-get","arguments":{"path":"/machine"}}']],
    ["bool for an int", True, ['{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":true}}']],
    ["bad cpu-index", True, ['{"execute":"human-monitor-command","arguments":{"command-line":"info cpus","cpu-index":7}}']],
    ["unknown capability", False, ['{"execute":"qmp_capabilities","arguments":{"enable":["nope"]}}']],
    ["capability not a list", False, ['{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}']],
    ["invalid keyword", True, ["{\"execute\": nope}"]],
    ["number with leading zero", True, ["{\"execute\": 01}"]],
    ["non-ASCII in a string", True, ['{"execute":"caf\\u00e9"}']],
    ["raw UTF-8 in a string", True, ['{"execute":"caf\xc3\xa9"}']],
    ["qom-get unknown path", True, ['{"execute":"qom-get","arguments":{"path":"/nope","property":"type"}}']],
    ["qom-list ambiguous", True, ['{"execute":"qom-list","arguments":{"path":"icp"}}']],
    ["qom-get missing property", True, ['{"execute":"qom-get","arguments":{"path":"/machine","property":"nope"}}']],
    ["query-migrate", True, ['{"execute":"query-migrate"}']],
    ["migrate-incoming without -incoming", True, ['{"execute":"migrate-incoming","arguments":{"uri":"tcp:127.0.0.1:4444"}}']],
    ["migrate bad uri", True, ['{"execute":"migrate","arguments":{"uri":"bogus:x"}}']],
    ["device_del no id", True, ['{"execute":"device_del"}']],
]  # fmt: skip


class Qemu:
    """One qemu-system-ppc64 with a QMP UNIX socket."""

    def __init__(self, args: str) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "qmp.sock")
        self.proc = subprocess.Popen(
            [
                "qemu-system-ppc64",
                *args.split(),
                *COMMON,
                "-qmp",
                f"unix:{self.path},server=on,wait=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):
            if os.path.exists(self.path):
                break
            time.sleep(0.025)

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        for _ in range(100):
            try:
                sock.connect(self.path)
                break
            except OSError:
                time.sleep(0.02)
        sock.settimeout(0.5)
        return sock

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def lines(sock: socket.socket) -> list[Any]:
    buf = b""
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    except TimeoutError:
        pass
    return [json.loads(x) for x in buf.split(b"\r\n") if x]


def command(sock: socket.socket, cmd: dict[str, Any]) -> Any:
    sock.sendall(json.dumps(cmd).encode())
    buf = b""
    while True:
        buf += sock.recv(1 << 20)
        for line in buf.split(b"\r\n"):
            if line:
                msg = json.loads(line)
                if "return" in msg or "error" in msg:
                    return msg
        continue


def session(args: str, cmds: list[dict[str, Any]]) -> list[Any]:
    qemu = Qemu(args)
    try:
        sock = qemu.connect()
        lines(sock)
        command(sock, {"execute": "qmp_capabilities"})
        return [command(sock, c) for c in cmds]
    finally:
        qemu.close()


def hmp(line: str) -> dict[str, Any]:
    return {"execute": "human-monitor-command", "arguments": {"command-line": line}}


def main() -> None:
    out: dict[str, Any] = {
        "qtree_versions": {},
        "qom_versions": {},
        "configs": {},
        "raw": [],
        "hmp": [],
    }
    for v in VERSIONS:
        args = f"-M pseries-{v},cap-htm=off -cpu POWER8E -smp 2 -m 1G"
        r = session(args, [hmp("info qtree"), hmp("info qom-tree"),
                           {"execute": "qom-list", "arguments": {"path": "/machine"}},
                           {"execute": "qom-list", "arguments": {"path": "/machine/unattached"}}])  # fmt: skip
        out["qtree_versions"][v] = r[0]["return"]
        out["qom_versions"][v] = {
            "args": args,
            "info qom-tree": r[1]["return"],
            "/machine": r[2]["return"],
            "/machine/unattached": r[3]["return"],
        }
    for args in CONFIGS:
        paths = [
            "/machine",
            "/machine/unattached",
            "/machine/unattached/device[1]/thread[0]",
            "/dr-connector",
        ]
        r = session(args, [hmp("info qom-tree"), hmp("info qtree")]
                    + [{"execute": "qom-list", "arguments": {"path": p}} for p in paths])  # fmt: skip
        out["configs"][args] = {
            "info qom-tree": r[0]["return"],
            "info qtree": r[1]["return"],
            **{p: r[2 + i]["return"] for i, p in enumerate(paths)},
        }
    for name, negotiate, chunks in RAW:
        qemu = Qemu(CLASSIC)
        try:
            sock = qemu.connect()
            lines(sock)
            if negotiate:
                sock.sendall(b'{"execute":"qmp_capabilities"}')
                lines(sock)
            answers = []
            for chunk in chunks:
                data = chunk.encode("latin-1")
                sock.sendall(data)
                answers.append(lines(sock))
            out["raw"].append(
                {"case": name, "negotiate": negotiate, "chunks": chunks, "answers": answers}
            )
        finally:
            qemu.close()
    r = session(CLASSIC, [hmp(line) for line in HMP_LINES])
    out["hmp"] = [[line, resp] for line, resp in zip(HMP_LINES, r)]
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
