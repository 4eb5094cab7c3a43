"""The runner: -monitor stdio sessions, scenarios, option pre-filtering, the real process.

Piped sessions are scripted: each line is echoed after ``(qemu) `` and the machine
settles after each command, so the transcript is deterministic. Two tests start
the emulator as a real process (``python -m machine.cli.runner``-style entry) and talk
to it through qemu.qmp's asynchronous client and through qmp-shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from oracle_tools import QMP_SHELL
from qemu.qmp import ConnectError, EventListener, QMPClient
from test_qmp_harness import P8E

from machine.board.build import build_machine
from machine.cli import main as cli
from machine.cli.runner import (
    RunnerOptions,
    available_scenarios,
    load_scenario,
    parse_scenario,
    run_machine,
    split_runner_options,
)
from spapr.errors import QemuError

REPO = Path(__file__).resolve().parent.parent
BANNER = "QEMU 7.2.22 monitor - type 'help' for more information"


def run_piped(argv: list[str], script: str) -> tuple[int, str, str]:
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    out, err = io.StringIO(), io.StringIO()
    rc = run_machine(machine, out=out, err=err, stdin=io.StringIO(script), options=RunnerOptions())
    return rc, out.getvalue(), err.getvalue()


def test_piped_stdio_session_echoes_commands_and_stops_at_quit() -> None:
    rc, out, _ = run_piped(
        [*P8E, "-monitor", "stdio"],
        "info status\ndevice_del nosuchdev\nquit\ninfo status\n",
    )
    assert rc == 0
    assert out.splitlines() == [
        BANNER,
        "(qemu) info status",
        "VM status: paused (prelaunch)",
        "(qemu) device_del nosuchdev",
        "Error: Device 'nosuchdev' not found",
        "(qemu) quit",
    ]


def test_piped_session_ends_at_end_of_input() -> None:
    rc, out, _ = run_piped([*P8E, "-monitor", "stdio"], "cont\ninfo status")
    assert rc == 0
    assert out.splitlines()[-2:] == ["(qemu) info status", "VM status: running"]


def test_no_monitor_is_an_error() -> None:
    machine = build_machine(P8E, io.StringIO())
    err = io.StringIO()
    assert run_machine(machine, out=io.StringIO(), err=err, options=RunnerOptions()) == 1
    assert "no monitor configured" in err.getvalue()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "tcp:0.0.0.0:4444,server=on,wait=off",
            "refusing to listen on non-loopback address '0.0.0.0'",
        ),
        ("tcp::4444,server=on,wait=off", "non-loopback address 'all interfaces'"),
        ("unix:/tmp/x", "only listening QMP sockets (server=on)"),
        ("stdio", "only unix: and tcp: QMP sockets"),
    ],
)
def test_refused_qmp_endpoints(spec: str, message: str) -> None:
    machine = build_machine([*P8E, "-qmp", spec], io.StringIO())
    err = io.StringIO()
    assert run_machine(machine, out=io.StringIO(), err=err, options=RunnerOptions()) == 1
    assert err.getvalue().startswith(f"qemu-system-ppc64: -qmp {spec}: ")
    assert message in err.getvalue()


def test_runner_options_are_taken_out_of_the_command_line() -> None:
    options, rest = split_runner_options(
        ["-scenario", "x", "-M", "pseries", "--allow-remote-qmp", "-S"]
    )
    assert options == RunnerOptions("x", True)
    assert rest == ["-M", "pseries", "-S"]
    with pytest.raises(QemuError, match="requires an argument"):
        split_runner_options(["-scenario"])


def test_scenario_files() -> None:
    assert "example" in available_scenarios()
    scenario = load_scenario("example")
    assert scenario.args[:2] == ("-M", "pseries") and "-S" in scenario.args
    assert scenario.commands[0] == "info status"
    parsed = parse_scenario("t", "# comment\n\n-M pseries -S\ninfo status\n# note\nquit\n")
    assert parsed.args == ("-M", "pseries", "-S") and parsed.commands == ("info status", "quit")
    with pytest.raises(QemuError, match="scenario 'nope' not found"):
        load_scenario("nope")


def test_example_scenario_runs_like_a_monitor_session(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-scenario", "example"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == BANNER
    assert out[1:3] == ["(qemu) info status", "VM status: paused (prelaunch)"]
    assert "(qemu) device_add power9_v2.0-spapr-cpu-core,id=core2,core-id=2" in out
    tail = out[out.index("(qemu) system_reset") :]
    # the boot core's pending unplug completes during the reset (QMP events shown)
    assert tail[1:4] == [
        '# event DEVICE_DELETED {"path": "/machine/unattached/device[2]/thread[0]/icp"}',
        '# event DEVICE_DELETED {"path": "/machine/unattached/device[2]/thread[0]/xive-tctx"}',
        '# event DEVICE_DELETED {"path": "/machine/unattached/device[2]/thread[0]"}',
    ]
    assert tail[4:7] == [
        '# event DEVICE_DELETED {"path": "/machine/unattached/device[2]"}',
        '# event RESET {"guest": false, "reason": "host-qmp-system-reset"}',
        "(qemu) info cpus",
    ]
    # the host thread that runs the vCPUs, as query-cpus-fast names it (QEMU: a host tid)
    assert tail[7] == f"* CPU #0: thread_id={threading.get_native_id()}"


def test_guest_scenario_shows_the_guest_answering_between_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["-scenario", "guest-hotplug"]) == 0
    out = capsys.readouterr().out.splitlines()
    onlines = [out[i + 1] for i, line in enumerate(out) if line.endswith("system/cpu/online")]
    # boot, after add, after del, stopped add, after cont, after reset (core3 cold-plugged)
    assert onlines == ["0-1", "0-2", "0-1", "0-1", "0-2", "0-2"]
    assert "CPU(s):              3" in out


def test_scenario_from_a_file_with_extra_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.hmp"
    path.write_text(
        "-M pseries -cpu POWER8E -smp 1,maxcpus=2 -m 1G -S -guest none\ninfo hotpluggable-cpus\n"
    )
    assert cli.main(["-scenario", str(path), "-smp", "2,maxcpus=2"]) == 0
    out = capsys.readouterr().out
    assert out.count('qom_path: "/machine/unattached/device[') == 2


# ---------------------------------------------------------------- the real process


def spawn(args: list[str], **kw: object) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = "import sys; from machine.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kw)  # type: ignore[call-overload]


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_process_with_wait_on_waits_for_the_async_client(tmp_path: Path) -> None:
    sock = tmp_path / "qmp.sock"
    proc = spawn([*P8E, "-qmp", f"unix:{sock},server=on"], stderr=subprocess.PIPE)
    try:
        wait_for(sock)

        async def session() -> list[object]:
            client = QMPClient("test")
            for attempt in range(100):  # the file exists a moment before listen()
                try:
                    await client.connect(str(sock))
                    break
                except ConnectError:
                    if attempt == 99:
                        raise
                    await asyncio.sleep(0.02)
            results: list[object] = [client.greeting is not None]
            results.append(await client.execute("query-status"))
            await client.execute(
                "device_add", {"driver": "power8e_v2.1-spapr-cpu-core", "id": "c2", "core-id": 2}
            )
            listener = EventListener()
            with client.listen(listener):
                await client.execute("device_del", {"id": "c2"})
                with contextlib.suppress(asyncio.TimeoutError):
                    while True:
                        event = await asyncio.wait_for(listener.get(), 0.5)
                        results.append(event["event"])
                        if event.get("data", {}).get("device") == "c2":
                            break
            await client.execute("quit")
            with contextlib.suppress(EOFError):  # the server hangs up after quit, as QEMU does
                await client.disconnect()
            return results

        results = asyncio.run(session())
        assert results[0] is True
        assert results[1] == {"status": "prelaunch", "singlestep": False, "running": False}
        assert results[2:] == ["DEVICE_DELETED"] * 3
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert f"info: QEMU waiting for connection on: disconnected:unix:{sock},server=on" in err


@pytest.mark.qmp_shell
def test_qmp_shell_drives_the_emulator(tmp_path: Path) -> None:
    sock = tmp_path / "qmp.sock"
    proc = spawn([*P8E, "-qmp", f"unix:{sock},server=on,wait=off"], stderr=subprocess.DEVNULL)
    shell = QMP_SHELL
    assert shell is not None
    try:
        wait_for(sock)
        time.sleep(0.2)  # qmp-shell does not retry a connection refused before listen()
        qmp = subprocess.run(
            [shell, str(sock)],
            input=b"query-status\ndevice_add driver=power8e_v2.1-spapr-cpu-core id=c3 core-id=3\n",
            capture_output=True,
            timeout=20,
        )
        assert b"Connected to QEMU 7.2.22" in qmp.stdout
        assert b'"status": "prelaunch"' in qmp.stdout
        hmp = subprocess.run(
            [shell, "-H", str(sock)],
            input=b"info hotpluggable-cpus\nquit\n",
            capture_output=True,
            timeout=20,
        )
        assert b'qom_path: "/machine/peripheral/c3"' in hmp.stdout
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
