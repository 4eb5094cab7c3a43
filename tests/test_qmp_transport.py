"""The socket transport: several clients, loopback TCP, and hostile or careless clients.

Each case ends by checking the machine is as it was (the same query answers) and
that the server still serves a fresh qemu.qmp client.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_qmp_harness import P8E, EmulatorServer, emulator, qmp_client, wait_until

ADD = {"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2}


def state(emu: EmulatorServer) -> Any:
    def read(control: Any) -> Any:
        return (
            control.machine.query_hotpluggable_cpus(),
            control.machine.query_cpus_fast(),
            control.query_status(),
            sorted(control.machine.qom.peripheral.children),
        )

    return emu.inspect(read)


def raw_socket(emu: EmulatorServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(emu.sock_path))
    sock.settimeout(2)
    return sock


def read_lines(sock: socket.socket, count: int) -> list[Any]:
    buf = b""
    while buf.count(b"\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return [json.loads(line) for line in buf.split(b"\r\n") if line]


def test_several_clients_share_the_machine_and_its_events(tmp_path: Path) -> None:
    with emulator(P8E, tmp_path) as emu:
        with qmp_client(emu.sock_path) as a, qmp_client(emu.sock_path) as b:
            late = raw_socket(emu)
            assert "QMP" in read_lines(late, 1)[0]
            assert a.cmd_raw("device_add", ADD) == {"return": {}}
            slots = b.cmd_raw("query-hotpluggable-cpus")["return"]
            assert slots[1]["qom-path"] == "/machine/peripheral/core2"
            assert b.cmd_raw("device_del", {"id": "core2"}) == {"return": {}}
            assert [e["event"] for e in b.get_events()] == ["DEVICE_DELETED"] * 3
            assert wait_until(lambda: len(a.get_events(wait=False)) == 3)
            # The client still negotiating got no events; its first answer is the greeting's.
            late.sendall(b'{"execute":"query-status"}')
            assert read_lines(late, 1)[0]["error"]["class"] == "CommandNotFound"
            late.close()
        assert wait_until(lambda: emu.inspect(lambda c: len(c.sinks)) == 0)


def test_client_vanishing_mid_command_leaves_no_trace(tmp_path: Path) -> None:
    with emulator(P8E, tmp_path) as emu:
        before = state(emu)
        sock = raw_socket(emu)
        read_lines(sock, 1)
        sock.sendall(
            b'{"execute":"qmp_capabilities"}{"execute":"device_add","arguments":{"driver":'
        )
        read_lines(sock, 1)
        sock.close()
        assert wait_until(lambda: emu.inspect(lambda c: len(c.sinks)) == 0)
        assert state(emu) == before
        with qmp_client(emu.sock_path) as qmp:
            assert qmp.cmd_raw("device_add", ADD) == {"return": {}}


def test_huge_message_gets_an_error_and_a_clean_close(tmp_path: Path) -> None:
    with emulator(P8E, tmp_path) as emu:
        before = state(emu)
        sock = raw_socket(emu)
        read_lines(sock, 1)
        sock.sendall(b'{"execute":"qmp_capabilities"}')
        read_lines(sock, 1)
        payload = b'{"execute":"device_add","arguments":{"driver":"' + b"x" * (2 << 20) + b'"}}'
        with contextlib.suppress(OSError):  # the server may close while we are still writing
            sock.sendall(payload)
        answers = read_lines(sock, 1)
        assert answers == [
            {"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}
        ]
        assert wait_until(lambda: sock.recv(65536) == b"")
        sock.close()
        assert state(emu) == before


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with EmulatorServer(P8E, tmp_path_factory.mktemp("qmp") / "qmp.sock") as emu:
        yield emu


@settings(max_examples=25, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=2000))
def test_garbage_over_the_socket(shared_emulator: EmulatorServer, garbage: bytes) -> None:
    emu = shared_emulator
    before = state(emu)
    sock = raw_socket(emu)
    read_lines(sock, 1)
    sock.sendall(
        b'{"execute":"qmp_capabilities"}' + garbage + b'\xff\n{"execute":"query-status","id":"end"}'
    )
    answers = read_lines(sock, 2)
    while answers and answers[-1].get("id") != "end":
        more = read_lines(sock, 1)
        if not more:
            break
        answers += more
    sock.close()
    assert answers[-1] == {
        "return": {"status": "prelaunch", "singlestep": False, "running": False},
        "id": "end",
    }
    assert all(set(a) <= {"return", "error", "id"} for a in answers)
    assert state(emu) == before


def test_loopback_tcp_with_the_legacy_client(tmp_path: Path) -> None:
    with emulator(P8E, tmp_path, tcp=True) as emu:
        address = emu.address
        assert isinstance(address, tuple) and address[0] == "127.0.0.1"
        with qmp_client(address) as qmp:
            assert qmp.cmd_raw("query-version")["return"]["qemu"]["major"] == 7
            assert qmp.cmd_raw("quit") == {"return": {}}
        assert emu.wait_exit()


def test_quit_closes_every_client(tmp_path: Path) -> None:
    with emulator(P8E, tmp_path) as emu:
        other = raw_socket(emu)
        read_lines(other, 1)
        other.sendall(b'{"execute":"qmp_capabilities"}')
        read_lines(other, 1)
        with qmp_client(emu.sock_path) as qmp:
            assert qmp.cmd_raw("quit") == {"return": {}}
        shutdown = read_lines(other, 1)
        assert shutdown[0]["event"] == "SHUTDOWN"
        assert wait_until(lambda: other.recv(65536) == b"")
        assert emu.wait_exit()
