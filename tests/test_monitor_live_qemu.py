"""Live differential tests: real qemu-system-ppc64 7.2 and the emulator, same commands and answers.

Both start with the same command line; qemu.qmp drives both through the same
request sequences (queries, adds, deletes, errors, resets, qom-list/qom-get, HMP
text, run-state changes) and every response (member order included) and the
events before it must match, timestamps and host thread ids aside. No listing is
filtered: the emulator reproduces the PCI host bridge's and other unmodelled
objects' entries in ``qom-list``/``info qom-tree``. The emulator runs ``-guest none``:
QEMU has no operating system either, so nothing answers hotplug events in both.
Each QEMU session adds at most ``maxcpus - boot cores`` cores (QEMU 7.2 under TCG
aborts once more vCPUs than maxcpus have existed: contexts are not recycled), and
no session resets after a completed unplug (QEMU 7.2 crashes on that).

Skipped when qemu-system-ppc64 is not installed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oracle_tools import QEMU
from test_qmp_harness import NO_GUEST, GreetedClient, emulator, normalize, qmp_client

pytestmark = [
    pytest.mark.qemu,
]
COMMON = ["-nographic", "-display", "none", "-nodefaults", "-S", "-seed", "1"]
P8E = ["-M", "pseries", "-cpu", "POWER8E", "-smp", "2,cores=4,threads=1,maxcpus=4", "-m", "1G"]
P9 = ["-M", "pseries", "-cpu", "POWER9", "-smp", "2,cores=4,threads=1,maxcpus=4", "-m", "1G"]


class QemuDied(Exception):
    """The real QEMU ended by itself mid-session (QEMU 7.2 crashes now and then after a
    quick device_del: conformance.campaign.KNOWN_CRASHES["cpu-unplug-race"])."""


#: Runs of the real-QEMU side of a differential test before its crash counts: only
#: QEMU's own exit is retried, never a differing answer.
QEMU_ATTEMPTS = 5


@contextlib.contextmanager
def real_qemu(argv: list[str]) -> Iterator[Path]:
    """qemu-system-ppc64 with a QMP UNIX socket; yields the socket path."""
    assert QEMU is not None
    tmp = Path(tempfile.mkdtemp())
    sock = tmp / "qmp.sock"
    proc = subprocess.Popen(
        [QEMU, *argv, *COMMON, "-qmp", f"unix:{sock},server=on,wait=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None, "QEMU exited"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        try:
            yield sock
        except Exception as exc:
            if proc.poll() is not None and proc.returncode < 0:  # killed by a signal: its own crash
                raise QemuDied(f"qemu-system-ppc64 exited ({proc.returncode})") from exc
            raise
    finally:
        proc.kill()
        proc.wait()


def hmp(line: str) -> dict[str, Any]:
    return {"execute": "human-monitor-command", "arguments": {"command-line": line}}


def qom_get(path: str, prop: str) -> dict[str, Any]:
    return {"execute": "qom-get", "arguments": {"path": path, "property": prop}}


def qom_list(path: str) -> dict[str, Any]:
    return {"execute": "qom-list", "arguments": {"path": path}}


def add(driver: str, dev_id: str | None, core_id: Any, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"driver": driver, "core-id": core_id, **extra}
    if dev_id is not None:
        args["id"] = dev_id
    return {"execute": "device_add", "arguments": args}


def delete(dev_id: str) -> dict[str, Any]:
    return {"execute": "device_del", "arguments": {"id": dev_id}}


def run(client: GreetedClient, requests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for request in requests:
        response = client.cmd_obj(request)
        events = client.get_events(wait=False)
        client.clear_events()
        out.append((json.dumps(normalize(events)), json.dumps(normalize(response))))
    return out


def differential(argv: list[str], requests: list[dict[str, Any]], tmp_path: Path) -> None:
    for attempt in range(QEMU_ATTEMPTS):
        try:
            with real_qemu(argv) as sock, qmp_client(sock) as qemu:
                expected = run(qemu, requests)
            break
        except QemuDied:
            if attempt == QEMU_ATTEMPTS - 1:
                raise
    with emulator([*argv, *COMMON, *NO_GUEST], tmp_path) as emu, qmp_client(emu.sock_path) as ours:
        got = run(ours, requests)
    for request, want, have in zip(requests, expected, got):
        assert have == want, json.dumps(request)


P8E_CORE = "power8e_v2.1-spapr-cpu-core"
P9_CORE = "power9_v2.0-spapr-cpu-core"


def test_hotplug_errors_and_reset_p8e(tmp_path: Path) -> None:
    """Resets come before any completed unplug: QEMU 7.2 crashes on a reset after one."""
    drc2 = "/machine/dr-connector[268435458]"
    requests = [
        {"execute": "query-hotpluggable-cpus"},
        {"execute": "query-cpus-fast"},
        add(P9_CORE, "x", 3),
        add(P8E_CORE, "x", 3, **{"node-id": 2}),
        add(P8E_CORE, "x", "0x3", **{"nr-threads": 2}),
        add(P8E_CORE, "x", 9),
        add(P8E_CORE, "x", 1),
        {"execute": "device_add", "arguments": {"driver": P8E_CORE, "bogus": 1, "id": "y"}},
        delete("/machine/unattached/device[1]"),
        delete("/machine/unattached/device[1]"),
        delete("/machine/unattached/device[0]"),
        delete("/machine/peripheral"),
        delete("nosuch"),
        {"execute": "query-hotpluggable-cpus"},
        {"execute": "system_reset"},
        {"execute": "query-hotpluggable-cpus"},
        qom_list("/machine/unattached"),
        add(P8E_CORE, None, 1),
        qom_list("/machine/peripheral-anon"),
        qom_list("/machine/unattached"),
        add(P8E_CORE, "core2", 2),
        add(P8E_CORE, "core2", 3),
        qom_list(drc2),
        *[qom_get(drc2, p) for p in ("device", "fdt", "id", "index", "hotplugged")],
        qom_list("/machine/peripheral/core2"),
        qom_get("/machine/peripheral/core2", "hotplugged"),
        hmp("info hotpluggable-cpus"),
        hmp("info cpus"),
        hmp("info qom-tree"),
        {"execute": "query-cpus-fast"},
        delete("core2"),
        delete("core2"),
        qom_list(drc2),
        qom_list("/machine/peripheral"),
        {"execute": "quit"},
    ]
    differential(P8E, requests, tmp_path)


def test_run_states_and_hmp_text_p9(tmp_path: Path) -> None:
    requests = [
        {"execute": "query-status"},
        {"execute": "stop"},
        {"execute": "cont"},
        {"execute": "cont"},
        {"execute": "query-status"},
        {"execute": "stop"},
        hmp("info status"),
        {"execute": "system_reset"},
        {"execute": "query-status"},
        add(P9_CORE, "core3", 3),
        qom_list("/machine/peripheral/core3/thread[0]"),
        hmp("info qtree"),
        hmp("info qom-tree /machine/peripheral/core3"),
        hmp("device_del core3"),
        hmp("device_add power9_v2.0-spapr-cpu-core,id=c1,core-id=1"),
        hmp("info status extra"),
        hmp("help device_del"),
        hmp("nope"),
        {
            "execute": "human-monitor-command",
            "arguments": {"command-line": "info cpus", "cpu-index": 1},
        },
        {
            "execute": "human-monitor-command",
            "arguments": {"command-line": "info cpus", "cpu-index": 9},
        },
        {"execute": "query-migrate"},
        {"execute": "migrate", "arguments": {"uri": "bogus:"}},
        {"execute": "migrate-incoming", "arguments": {"uri": "tcp:127.0.0.1:1"}},
        {"execute": "qom-get", "arguments": {"path": "/machine", "property": "nope"}},
        {"execute": "qom-list", "arguments": {"path": "nope"}},
        {"execute": "quit"},
    ]
    differential(P9, requests, tmp_path)


def test_powerdown_and_jobs_without_an_os_p9(tmp_path: Path) -> None:
    """system_powerdown: POWERDOWN at once, in prelaunch too; with no OS nothing answers the
    EPOW request, so the machine runs on. query-jobs (libvirt's reconnection) is empty.
    The empty QOM path: a partial path of no parts matches every object (ambiguous)."""
    requests = [
        {"execute": "system_powerdown"},
        {"execute": "query-status"},
        {"execute": "cont"},
        {"execute": "system_powerdown"},
        hmp("system_powerdown"),
        hmp("help system_powerdown"),
        {"execute": "query-status"},
        {"execute": "query-jobs"},
        qom_list(""),  # a partial path of no parts matches every object
        qom_get("", "type"),
        {"execute": "system_powerdown", "arguments": {"now": True}},
        {"execute": "quit"},
    ]
    differential(P9, requests, tmp_path)


def test_incoming_defer_behaves_like_the_command_line(tmp_path: Path) -> None:
    requests = [
        {"execute": "query-status"},
        add(P8E_CORE, "core2", 2),
        delete("core2"),
        {"execute": "query-hotpluggable-cpus"},
        {"execute": "stop"},
        {"execute": "cont"},
        {"execute": "query-status"},
        {"execute": "quit"},
    ]
    differential([*P8E, "-incoming", "defer"], requests, tmp_path)


RAW = [
    b"}",
    b'{"execute":"qmp_capabilities","id":1}',
    b'{"execute":"stop","arguments":{"b":1,"a":2},"id":{"x":[1]}}',
    b'@@@ [1,2] \'str\' {"execute":"nope","id":null}',
    b'{"execute":"query-status","exec-oob":"x"}',
    b'{"execute":"qom-list","arguments":{"path":"/machine/unattached/device[0]"}}',
]


def raw_session(path: Path) -> list[Any]:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    sock.settimeout(1.0)
    answers: list[Any] = []

    def read() -> list[Any]:
        buf = b""
        with contextlib.suppress(socket.timeout):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if buf.endswith(b"\r\n"):
                    sock.settimeout(0.3)
        return [json.loads(x) for x in buf.split(b"\r\n") if x]

    greeting = read()
    answers.append(greeting[0]["QMP"]["version"]["qemu"])
    sock.sendall(b'{"execute":"query-status"}{"execute":"qmp_capabilities"}')
    answers.append(read())
    for data in RAW:
        sock.sendall(data)
        answers.append(read())
    sock.close()
    return answers


def test_raw_protocol_answers_match(tmp_path: Path) -> None:
    with real_qemu(P8E) as sock:
        expected = raw_session(sock)
    with emulator([*P8E, *COMMON, *NO_GUEST], tmp_path) as emu:
        got = raw_session(emu.sock_path)
    assert json.dumps(got) == json.dumps(expected)


def test_captures_file_still_matches_this_qemu() -> None:
    """Spot-check tests/data/qmp/qemu72_captures.json against the installed QEMU."""
    captures = json.loads(
        (Path(__file__).parent / "data" / "qmp" / "qemu72_captures.json").read_text()
    )
    config = "-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G"
    with real_qemu(config.split()) as sock, qmp_client(sock) as qemu:
        assert (
            qemu.cmd_raw("qom-list", {"path": "/machine"})["return"]
            == (captures["configs"][config]["/machine"])
        )
        tree = qemu.cmd_raw("human-monitor-command", {"command-line": "info qom-tree"})
        assert tree["return"] == captures["configs"][config]["info qom-tree"]
