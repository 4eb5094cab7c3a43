"""Area 8: listeners bind only where told; nothing from a client or a guest reaches a shell.

Dynamic checks:

* a ``-qmp unix:`` socket is created with the permissions the process umask gives
  (``0777 & ~umask``, as QEMU's bind does: compared live with qemu-system-ppc64 when
  installed) and removed at exit;
* ``-qmp tcp:`` binds exactly the address it names; an address other than loopback
  (``tcp::PORT`` is every interface, as QEMU binds it) is refused unless
  ``-allow-remote-qmp`` says so, and then bound as QEMU binds it.

A static check reads every module with ``ast`` and lists where the program touches
files, processes or code: ``eval``, ``exec``, ``compile``, ``pickle``,
``os.system``, ``shell=True`` must not occur at all; ``open``, ``os.unlink``,
``subprocess`` may occur only in the modules of :data:`SINKS`, each of which takes
its path or command from the command line or the monitor — the user's own control
channel, as in QEMU (``migrate exec:CMD`` runs ``/bin/sh -c CMD`` there by design,
``trace draw FILE`` writes where the person at the prompt says). The guest-facing
layers (``fdt``, ``rtas``, ``spapr``, ``guest``, the scheduler, the board) hold none,
so no value a guest passes can reach a path, a shell or an interpreter.
"""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_server import QmpServer, parse_qmp_endpoint
from robustness.harness import P9, new_control, until_serving, wait_for
from robustness.live import qemu_binary
from robustness.report import AreaReport, Progress
from spapr.errors import QemuError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fdt", "rtas", "spapr", "guest", "machine")
#: Calls that must not occur anywhere: code or commands from data.
FORBIDDEN = frozenset(
    {"eval", "exec", "compile", "os.system", "os.popen", "pickle.loads", "pickle.load"}
)
#: Calls that touch files or start processes.
SINK_CALLS = frozenset(
    {
        "open",
        "os.open",
        "os.unlink",
        "os.remove",
        "os.rename",
        "shutil.rmtree",
        "subprocess.Popen",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_output",
        "tempfile.TemporaryFile",
    }
)
#: The modules allowed to hold sinks, and where their paths and commands come from.
SINKS: dict[str, str] = {
    "machine.board.trace_sinks": "command line: -trace events=FILE, -D FILE, -trace-json "
    "FILE; an anonymous temporary file for -trace-html",
    "machine.board.journal": "an anonymous temporary file (the journal's older entries)",
    "machine.cli.main": "command line: -M dumpdtb=FILE",
    "machine.cli.daemon": "command line: -pidfile FILE (created, locked, removed at exit), "
    "-daemonize (/dev/null for the standard streams)",
    "machine.config.objects": "command line: -object secret,file=FILE (read)",
    "machine.cli.streams": "/dev/null, once a reader has gone",
    "machine.cli.signals": "/proc/PID/cmdline of a signal's sender (the kernel's number)",
    "machine.cli.trace_tools": "command line: spapr trace-draw/trace-report files, -trace-html",
    "machine.monitor.hmp": "monitor: trace draw FILE",
    "machine.monitor.qmp_server": "command line: -qmp unix:PATH (replaced, then removed)",
    "machine.migration.replay": "command line -incoming file:PATH; monitor migrate file:PATH",
    "machine.migration.transport": "monitor and command line: migrate/-incoming file:, unix: "
    "and exec: (/bin/sh -c CMD, by design, as QEMU)",
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def scan() -> tuple[list[str], dict[str, list[str]]]:
    """(forbidden uses, sinks by module) of every module of the program."""
    forbidden: list[str] = []
    sinks: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = _name(node.func)
                where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                shell = any(
                    k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value
                    for k in node.keywords
                )
                if name in FORBIDDEN or shell:
                    forbidden.append(where + (" shell=True" if shell else ""))
                elif name in SINK_CALLS:
                    sinks.setdefault(module, []).append(where)
    return forbidden, sinks


def _static(report: AreaReport) -> None:
    forbidden, sinks = scan()
    report.count("static scan", sum(len(v) for v in sinks.values()) + len(forbidden))
    for where in forbidden:
        report.fail("static scan", where, "code or a shell command built from data")
    for module, places in sinks.items():
        if module not in SINKS:
            report.fail("static scan", "; ".join(places), f"{module} touches files or processes")
    report.note(f"file and process sinks: {len(sinks)} modules, each fed by the user only")


def _socket_mode(binary: list[str], umask: int, tmp: Path, name: str) -> int | None:
    sock = tmp / f"{name}.sock"
    argv = [*binary, *P9, "-S", "-qmp", f"unix:{sock},server=on,wait=off"]
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f'umask {umask:03o}; exec "$@"', "sh", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for(sock.exists, 30):
            return None
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        until_serving(sock)  # the signal handlers are set late in QEMU's start-up
        return mode
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _unix_modes(report: AreaReport) -> None:
    qemu = qemu_binary()
    with tempfile.TemporaryDirectory(prefix="campaign-security-") as tmp:
        for umask in (0o022, 0o077):
            report.count("unix socket mode")
            ours = _socket_mode([sys.executable, "-m", "spapr"], umask, Path(tmp), f"emu{umask}")
            want = 0o777 & ~umask
            if ours != want:
                report.fail(
                    "unix socket mode", f"umask {umask:03o}", f"mode {ours!r}, not {want:o}"
                )
            if qemu is not None:
                qemu_argv = [qemu, "-display", "none"]
                theirs = _socket_mode(qemu_argv, umask, Path(tmp), f"qemu{umask}")
                if theirs != ours:
                    report.fail(
                        "unix socket mode", f"umask {umask:03o}", f"QEMU {theirs}, us {ours}"
                    )
        left = [p.name for p in Path(tmp).glob("emu*.sock")]
        if left:
            report.fail("unix socket mode", "after SIGTERM", f"left behind: {left}")


def _tcp(report: AreaReport) -> None:
    control = new_control(P9, guest="none")
    commands = QmpCommands(control)

    async def bound(spec: str, allow: bool) -> str:
        server = QmpServer(parse_qmp_endpoint(spec, allow_remote=allow), commands)
        await server.start()
        try:
            listener = server._server
            assert isinstance(listener, asyncio.Server) and listener.sockets
            return str(listener.sockets[0].getsockname()[0])
        finally:
            await server.close()

    for spec, allow, want in (
        ("tcp:127.0.0.1:0,server=on,wait=off", False, "127.0.0.1"),
        ("tcp:localhost:0,server=on,wait=off", False, "127.0.0.1"),
        ("tcp::0,server=on,wait=off", True, "0.0.0.0"),
    ):
        report.count("tcp bind")
        try:
            host = asyncio.run(bound(spec, allow))
        except OSError as exc:
            report.note(f"{spec}: not bindable here ({exc.strerror})")
            continue
        if host not in (want, "::" if want == "0.0.0.0" else want, "::1"):
            report.fail("tcp bind", spec, f"bound {host}, not {want}")
    for spec in ("tcp::4444,server=on", "tcp:0.0.0.0:4444,server=on", "tcp:10.0.0.1:1,server=on"):
        report.count("tcp refused")
        try:
            parse_qmp_endpoint(spec)
        except QemuError:
            continue
        report.fail("tcp refused", spec, "a non-loopback listener without -allow-remote-qmp")


def run(report: AreaReport, rounds: int, seed: int, *, progress: Progress | None = None) -> None:
    _static(report)
    _tcp(report)
    _unix_modes(report)
    if shutil.which("sh") is None:
        report.note("no /bin/sh: the socket mode checks could not start")
