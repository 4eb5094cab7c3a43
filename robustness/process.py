"""Area 5: output and signals — the process ends promptly and cleanly, as QEMU's does.

Each case runs ``python -m spapr`` as a process:

* its stdout (or stderr) is closed by the reader after a few lines (``| head``);
* its stdout is a pipe nobody reads while it prints a lot (a full pipe);
* SIGTERM, SIGINT or SIGHUP arrives in the middle of a hotplug handshake, with a
  QMP client connected, ``-trace-json`` and ``-D`` files open, and once more while
  its stdout is a full pipe.

The rules: it ends within the time limit (no hang) with QEMU's status (0: QEMU
ignores SIGPIPE and runs its input to ``quit``; it exits 0 on those signals); on a
signal stderr's last line is QEMU's ``qemu-system-ppc64: terminating on signal N
from pid P (NAME)``, the QMP client gets SHUTDOWN with reason ``host-signal``, the
socket file is gone and every line of the trace files is whole. With
qemu-system-ppc64 installed, QEMU gets the same signal and its line and status
are compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robustness.harness import P9, P9_CORE, until_serving, wait_for
from robustness.live import qemu_binary
from robustness.report import AreaReport, Progress

SPAPR = [sys.executable, "-m", "spapr"]
LIMIT_S = 20.0
SCRIPT = f"device_add {P9_CORE},id=core1,core-id=1\ndevice_del core1\nquit\n"
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _finish(proc: subprocess.Popen[bytes], limit: float = LIMIT_S) -> int | None:
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _reader_goes_away(report: AreaReport, which: str) -> None:
    """stdout or stderr read for a few lines, then closed."""
    report.count(f"{which} closed")
    argv = [*SPAPR, *P9, "-monitor", "stdio", "-trace", "xics*"]
    to_stdout = which == "stdout"
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE if to_stdout else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if to_stdout else subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(SCRIPT.encode())
    proc.stdin.close()
    stream = proc.stdout if to_stdout else proc.stderr
    assert stream is not None
    for _ in range(5):
        stream.readline()
    stream.close()
    status = _finish(proc)
    if status != 0:
        report.fail(f"{which} closed", SCRIPT, f"status {status} (None: hung)")


def _full_pipe(report: AreaReport) -> None:
    """Lots of output into a pipe nobody reads: the run still ends, promptly."""
    report.count("full pipe")
    lines = "info qom-tree\ninfo pic\n" * 150 + SCRIPT
    proc = subprocess.Popen(
        [*SPAPR, *P9, "-monitor", "stdio", "-trace", "xics*"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None
    proc.stdin.write(lines.encode())
    proc.stdin.close()
    status = _finish(proc)
    if proc.stdout is not None:
        proc.stdout.close()
    if status != 0:
        report.fail("full pipe", "info qom-tree x150, never read", f"status {status}")


def _read_to_end(client: socket.socket) -> tuple[bytes, bool]:
    """What the server sent until it closed, and whether it closed with a reset.

    A process that ends with a client's input still unread in its socket (QEMU as well
    as the emulator: a command the signal came before) resets the connection; the
    kernel hands over everything queued before the reset, so nothing sent is lost.
    """
    data = bytearray()
    while True:
        try:
            chunk = client.recv(65536)
        except ConnectionResetError:
            return bytes(data), True
        if not chunk:
            return bytes(data), False
        data += chunk


def _signal_mid_handshake(report: AreaReport, signo: int, *, full_pipe: bool = False) -> None:
    name = f"{signal.Signals(signo).name} mid-handshake" + (", full pipe" if full_pipe else "")
    report.count("signal")
    with tempfile.TemporaryDirectory(prefix="campaign-signal-") as tmp_name:
        tmp = Path(tmp_name)
        sock, jsonl, log = tmp / "qmp.sock", tmp / "run.jsonl", tmp / "run.log"
        argv = [*SPAPR, *P9, "-monitor", "stdio", "-qmp", f"unix:{sock},server=on,wait=off"]
        argv += ["-trace-json", str(jsonl), "-D", str(log), "-trace", "*"]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if full_pipe else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        problems: list[str] = []
        try:
            assert proc.stdin is not None
            if full_pipe:
                proc.stdin.write(b"info qom-tree\n" * 300)
                proc.stdin.flush()
            if not wait_for(sock.exists, LIMIT_S):
                problems.append("the QMP socket never appeared")
                return
            # (a greeting lost to a reset, seen once in 6 CI runs with stdout's pipe full,
            # is connected again; the rule here is how the process ends on a signal)
            for _ in range(5):
                client = socket.socket(socket.AF_UNIX)
                for _ in range(100):
                    with contextlib.suppress(OSError):
                        client.connect(str(sock))
                        break
                    time.sleep(0.02)
                client.settimeout(LIMIT_S)
                stream = client.makefile("rb")
                try:
                    stream.readline()
                    break
                except ConnectionResetError:
                    client.close()
                    time.sleep(0.1)
            client.sendall(b'{"execute":"qmp_capabilities"}')
            stream.readline()
            add = {"driver": P9_CORE, "id": "core1", "core-id": 1}
            client.sendall(json.dumps({"execute": "device_add", "arguments": add}).encode())
            time.sleep(0.05)  # the handshake is under way: the guest is making its calls
            sent = time.monotonic()
            proc.send_signal(signo)
            status = _finish(proc)
            took = time.monotonic() - sent
            rest, reset = _read_to_end(client)
            client.close()
            if status != 0:
                problems.append(f"status {status} (None: hung)")
            elif took > 10:
                problems.append(f"took {took:.1f} s to end")
            if b'"reason": "host-signal"' not in rest:
                why = " (the connection was reset)" if reset else ""
                problems.append(f"no SHUTDOWN host-signal event for the QMP client{why}")
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            last = [ln for ln in err.splitlines() if ln.startswith("qemu-system-ppc64: term")]
            want = (
                rf"qemu-system-ppc64: terminating on signal {signo} from pid {os.getpid()} \(.+\)"
            )
            if not last or not re.fullmatch(want, last[-1]):
                problems.append(f"stderr lacks QEMU's line: {err[-300:]!r}")
            if sock.exists():
                problems.append("the QMP socket file was left behind")
            for path in (jsonl, log):
                text = path.read_text() if path.exists() else ""
                if text and not text.endswith("\n"):
                    problems.append(f"{path.name} ends in a partial line")
            for line in jsonl.read_text().splitlines() if jsonl.exists() else []:
                try:
                    json.loads(line)
                except ValueError:
                    problems.append(f"{jsonl.name} has a broken line: {line[:80]!r}")
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if problems:
                report.fail("signal", name, "; ".join(problems))


def _qemu_terminates_alike(report: AreaReport) -> None:
    """QEMU and the emulator, SIGTERM from this process: the same line and status."""
    binary = qemu_binary()
    if binary is None:
        report.note("live signal comparison skipped: qemu-system-ppc64 is not installed")
        return
    report.count("live signal")
    results = []
    with tempfile.TemporaryDirectory(prefix="campaign-signal-") as tmp:
        for n, argv in enumerate(([binary, "-display", "none"], SPAPR)):
            sock = Path(tmp) / f"q{n}.sock"
            proc = subprocess.Popen(
                [*argv, *P9, "-S", "-qmp", f"unix:{sock},server=on,wait=off"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            wait_for(sock.exists, LIMIT_S)
            until_serving(sock)  # QEMU sets its handlers late in start-up: wait for its loop
            proc.send_signal(signal.SIGTERM)
            status = _finish(proc)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            lines = [ln for ln in err.splitlines() if "warning:" not in ln]
            results.append((status, lines[-1:] if lines else [], sock.exists()))
    if results[0] != results[1]:
        report.fail("live signal", "SIGTERM", f"QEMU {results[0]}, the emulator {results[1]}")
    else:
        report.note(f"SIGTERM as QEMU: status {results[0][0]}, {results[0][1]}")


def run(report: AreaReport, rounds: int, seed: int, *, progress: Progress | None = None) -> None:
    """Each round: the closed outputs, the full pipe, each signal (one with a full pipe);
    the short version (one round) gives SIGINT the full pipe, the long one every signal."""
    for n in range(rounds):
        _reader_goes_away(report, "stdout")
        _reader_goes_away(report, "stderr")
        _full_pipe(report)
        for signo in SIGNALS:
            _signal_mid_handshake(report, signo, full_pipe=signo == signal.SIGINT)
            if rounds > 1:
                _signal_mid_handshake(report, signo, full_pipe=signo != signal.SIGINT)
        if progress is not None:
            progress.step(n + 1)
    _qemu_terminates_alike(report)
