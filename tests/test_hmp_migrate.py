"""HMP migration as QEMU 7.2 has it, over ``unix:``, ``tcp:`` (loopback) and ``exec:``.

Texts against QEMU 7.2's (tests/data/hmp/qemu72_migrate.json: ``help migrate``,
``help migrate_incoming``, ``info migrate`` before a migration, on a source and
its target, after a refused connection, the parse errors), the migration globals
of old machine types, and the stream carried over each transport from a source to
a target that resumes it with the source's hot-plugged core: in one process and,
end to end, between two emulator processes driven through QMP.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from oracle_tools import QEMU
from test_migration_cli import emulator, hmp, wait_for

from machine.board.build import build_machine
from machine.cli.main import main
from machine.config.machine_types import find_machine
from machine.monitor.control import MachineControl
from machine.monitor.hmp import HmpMonitor
from machine.monitor.hmp_migrate import migration_globals

DATA = json.loads((Path(__file__).parent / "data" / "hmp" / "qemu72_migrate.json").read_text())
ARGS = "-M pseries -cpu POWER9 -smp 1,maxcpus=2 -S -nodefaults -display none -seed 1"
CORE = "power9_v2.0-spapr-cpu-core"
DEVICE = ["-device", f"{CORE},id=core1,core-id=1"]
#: info migrate lines whose values are times, rates or sizes of this run.
VARYING = (
    "total time",
    "downtime",
    "setup",
    "transferred ram",
    "throughput",
    "duplicate",
    "normal",
    "normal bytes",
    "downtime ram",
)


class Node:
    """One machine with its HMP monitor; stderr lines collected."""

    def __init__(self, extra: list[str] | None = None, args: str = ARGS) -> None:
        self.stderr: list[str] = []
        machine = build_machine(args.split() + (extra or []), io.StringIO())
        machine.reset()
        self.control = MachineControl(machine, warn=self.stderr.append)
        self.hmp = HmpMonitor(self.control, stderr=self.stderr.append)

    def __call__(self, line: str) -> str:
        text = self.hmp.execute(line)
        self.control.settle()
        return text

    def wait_incoming(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.control.incoming is not None:
            assert time.monotonic() < deadline, "no stream arrived"
            self.control.poll_incoming()
            time.sleep(0.01)


def steps(session: str) -> list[tuple[str, str]]:
    return [(c, o) for c, o in DATA[session]["steps"]]


def shape(text: str) -> list[str]:
    """info migrate with this run's times, rates and sizes blanked out."""
    out = []
    for line in text.splitlines():
        key = line.split(":")[0]
        out.append(f"{key}: N" if key in VARYING else line)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- QEMU's texts -------------------------------------------------------------------


def test_help_info_migrate_and_parse_errors_are_qemus() -> None:
    node = Node()
    for command, expected in steps("source_texts"):
        assert node(command) == expected, command


def test_a_refused_connection_fails_the_migration_as_qemu_does() -> None:
    node = Node()
    (migrate, out), (info, expected) = steps("connect_refused")
    assert node(migrate) == out == ""
    assert node.stderr == DATA["connect_refused"]["stderr"]  # reported twice without -d
    assert node(info) == expected
    detached = Node()
    assert detached("migrate -d tcp:127.0.0.1:1") == ""
    assert detached.stderr == DATA["connect_refused"]["stderr"][:1]


def test_a_unix_migration_reads_like_qemus_on_both_ends(tmp_path: Path) -> None:
    path = tmp_path / "m.sock"
    target = Node(["-incoming", f"unix:{path}"])
    recorded_path = DATA["unix_target"]["argv"][-1].removeprefix("unix:")
    (info1, listening), (info2, done), (status, state) = steps("unix_target")
    assert target(info1) == listening.replace(recorded_path, str(path))
    source = Node()
    (_, out), (info, expected), (status_src, state_src) = steps("unix_source")
    assert source(f"migrate unix:{path}") == out == ""
    target.wait_incoming()
    assert shape(source(info)) == shape(expected)
    assert source(status_src) == state_src == "VM status: paused (postmigrate)\n"
    assert target(info2) == done
    assert target(status) == state  # the source sat in prelaunch (-S): so does the target


@pytest.mark.parametrize(
    ("machine", "store", "decompress"),
    [("pseries-2.3", "off", "off"), ("pseries-2.4", "on", "off"), ("pseries-2.12", "on", "off")]
    + [("pseries-3.0", "on", "on"), ("pseries-7.2", "on", "on")],
)
def test_migration_globals_follow_the_machine_type(
    machine: str, store: str, decompress: str
) -> None:
    """As QEMU 7.2 prints them for these machine types (hw_compat 2.3 and 2.12)."""
    got = dict(migration_globals(find_machine(machine)))
    assert got == {
        "store-global-state": store,
        "only-migratable": "off",
        "send-configuration": store,
        "send-section-footer": store,
        "decompress-error-check": decompress,
        "clear-bitmap-shift": "18",
    }


# -- carried over each transport --------------------------------------------------------


def _source_with_a_core() -> Node:
    source = Node(args=ARGS.replace(" -S", ""))
    assert source(f"device_add {CORE},id=core1,core-id=1") == ""
    return source


def _check_resumed(target: Node) -> None:
    assert "Migration status: completed" in target("info migrate")
    assert target("info status") == "VM status: running\n"
    assert 'qom_path: "/machine/peripheral/core1"' in target("info hotpluggable-cpus")
    assert target.control.migration.query() == {"status": "completed"}


@pytest.mark.parametrize("transport", ["unix", "tcp", "exec"])
def test_the_stream_goes_over_each_transport(transport: str, tmp_path: Path) -> None:
    source = _source_with_a_core()
    if transport == "exec":
        stream = tmp_path / "stream"
        assert source(f'migrate "exec:cat > {stream}"') == ""
        target = Node(DEVICE + ["-incoming", f"exec:cat {stream}"], args=ARGS.replace(" -S", ""))
    else:
        uri = (
            f"unix:{tmp_path / 'm.sock'}" if transport == "unix" else f"tcp:127.0.0.1:{free_port()}"
        )
        target = Node(DEVICE + ["-incoming", uri], args=ARGS.replace(" -S", ""))
        socket_line = "\t" + uri
        assert socket_line in target("info migrate").splitlines()
        assert source(f"migrate -d {uri}") == ""
    target.wait_incoming()
    assert source.control.migration.query()["status"] == "completed"
    assert source("info status") == "VM status: paused (postmigrate)\n"
    _check_resumed(target)


def test_migrate_incoming_after_defer_listens_then_resumes(tmp_path: Path) -> None:
    source = _source_with_a_core()
    target = Node(DEVICE + ["-incoming", "defer"], args=ARGS.replace(" -S", ""))
    uri = f"tcp:localhost:{free_port()}"
    assert target(f"migrate_incoming {uri}") == ""
    assert target(f"migrate_incoming {uri}").startswith(
        "Error: The incoming migration has already been started"
    )
    assert source(f"migrate {uri}") == ""
    target.wait_incoming()
    _check_resumed(target)


def test_block_flags_are_accepted_with_nothing_to_copy(tmp_path: Path) -> None:
    source = Node()
    assert source(f"migrate -d -b -i file:{tmp_path / 's'}") == ""
    assert source.control.migration.query()["status"] == "completed"


@pytest.mark.parametrize("uri", ["tcp:192.0.2.1:4444", "tcp::4444", "tcp:0.0.0.0:4444"])
def test_tcp_stays_on_loopback(uri: str) -> None:
    source = Node()
    assert "limited to loopback addresses" in source(f"migrate {uri}")
    assert source.control.migration.query() == {}


def test_a_garbled_stream_ends_the_target_as_qemus_failed_load_does(tmp_path: Path) -> None:
    target = Node(["-incoming", "exec:echo not-a-stream"])
    target.wait_incoming()
    assert target.control.quit_requested and target.control.exit_status == 1
    assert target.stderr[-1].startswith("qemu-system-ppc64: load of migration failed: ")
    assert "Migration status: failed" in target("info migrate")


def test_a_machine_played_by_hand_is_not_migrated(tmp_path: Path) -> None:
    node = Node(["-guest", "manual"], args=ARGS.replace(" -S", ""))
    text = node(f"migrate file:{tmp_path / 's'}")
    assert text.startswith("Error: migration: a machine whose guest is played at the prompt")


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("unix:/nonexistent/dir/x.sock", "Failed to bind socket to /nonexistent/dir/x.sock: "),
        ("foo:bar", "unknown migration protocol: foo:bar"),
        ("tcp:192.0.2.1:4444", "limited to loopback addresses"),
    ],
)
def test_incoming_that_cannot_start_refuses_to_start(uri: str, message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*ARGS.split(), "-incoming", uri, "-monitor", "stdio"])
    assert rc == 1
    assert err.getvalue().splitlines()[-1].startswith(f"qemu-system-ppc64: -incoming {uri}: ")
    assert message in err.getvalue()


def test_between_two_processes_over_unix(tmp_path: Path) -> None:
    """The lab's way: a target started with -incoming unix:, `migrate` typed at the source."""
    args = ARGS.replace(" -S", "").split() + ["-guest", "linux+event-scan=off"]
    path = tmp_path / "mig.sock"
    with emulator(args + DEVICE + ["-incoming", f"unix:{path}"], tmp_path / "t.qmp") as target:
        assert f"\tunix:{path}" in hmp(target, "info migrate").splitlines()
        with emulator(args, tmp_path / "s.qmp") as source:
            source.cmd_raw("device_add", {"driver": CORE, "id": "core1", "core-id": 1})
            wait_for(lambda: hmp(source, "guest cat /sys/devices/system/cpu/online") == "0-1\r\n")
            assert hmp(source, f"migrate unix:{path}") == ""
            assert "Migration status: completed" in hmp(source, "info migrate")
        wait_for(lambda: "Migration status: completed" in hmp(target, "info migrate"))
        assert target.cmd_raw("query-status")["return"]["status"] == "running"
        assert hmp(target, "guest cat /sys/devices/system/cpu/online") == "0-1\r\n"


# -- live QEMU ---------------------------------------------------------------------------------


def _qemu_info_migrate(machine: str) -> str:
    assert QEMU is not None
    proc = subprocess.run(
        [QEMU, "-M", machine, "-cpu", "power8", "-S", "-nodefaults", "-display", "none"]
        + ["-monitor", "stdio"],
        input="info migrate\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stdout).replace("\r", "")
    chunk = text.split("(qemu) ")[1]
    return chunk.split("\n", 1)[1]


@pytest.mark.qemu
@pytest.mark.parametrize("machine", ["pseries-2.12", "pseries-4.0", "pseries"])
def test_live_info_migrate_globals(machine: str) -> None:
    node = Node(args=f"-M {machine} -cpu power8 -S -nodefaults -display none")
    assert node("info migrate") == _qemu_info_migrate(machine)


@pytest.mark.qemu
def test_live_help_texts() -> None:
    assert QEMU is not None
    commands = ["help migrate", "help migrate_incoming", "help info migrate", "migrate -x u"]
    proc = subprocess.run(
        [QEMU, *ARGS.split(), "-monitor", "stdio"],
        input="\n".join([*commands, "quit"]) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stdout).replace("\r", "")
    live = [c.split("\n", 1)[1] for c in text.split("(qemu) ")[1 : len(commands) + 1]]
    node = Node()
    assert [node(c) for c in commands] == live
