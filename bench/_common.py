"""Helpers the benchmarks share: whole-process runs with their peak RSS, progress, host facts.

Whole-process figures (``startup``, ``scale``) come from :func:`run_process`: the
child is started with :class:`subprocess.Popen` and reaped with :func:`os.wait4`,
which returns that one child's resource usage, so its peak RSS is its own (not the
largest of every child so far, as ``RUSAGE_CHILDREN`` would give).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

REPO = Path(__file__).resolve().parent.parent
QEMU = "qemu-system-ppc64"


@attrs.frozen
class ProcessRun:
    """One finished process: wall seconds, peak RSS in MiB, exit status, stderr's tail,
    and its CPU seconds (user + system: what the wall time is on an idle host)."""

    seconds: float
    rss_mib: float
    status: int
    stderr: str
    cpu_seconds: float = 0.0


def run_process(argv: Sequence[str], *, stdin: bytes | None = None) -> ProcessRun:
    """Run ``argv`` to the end (stdout discarded); its wall time and its own peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    if proc.stdin is not None:
        proc.stdin.write(stdin or b"")
        proc.stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    # reaped here, not by Popen: wait4 gives this child's own resource usage
    _pid, wait_status, usage = os.wait4(proc.pid, 0)
    status = os.waitstatus_to_exitcode(wait_status)
    proc.returncode = status
    rss_kib = usage.ru_maxrss
    seconds = time.perf_counter() - t0
    return ProcessRun(
        seconds,
        rss_kib / 1024,
        status,
        err.decode(errors="replace")[-400:],
        usage.ru_utime + usage.ru_stime,
    )


def emulator_command() -> list[str]:
    """How a user starts the emulator: the ``spapr`` script beside this Python, else ``-m``."""
    script = Path(sys.executable).parent / "spapr"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "spapr"]


def qemu_binary() -> str | None:
    """qemu-system-ppc64's path, or None when it is not installed."""
    return shutil.which(QEMU)


def current_rss_mib() -> float:
    """This process's resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def host_facts() -> dict[str, Any]:
    """The machine the figures came from: CPUs, CPU model, load, Python."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "loadavg": load,
        "python": platform.python_version(),
    }


class Progress:
    """Progress lines on stderr for anything that runs more than a few seconds."""

    def __init__(self, label: str, every_s: float = 2.0) -> None:
        self.label = label
        self.every_s = every_s
        self.start = time.perf_counter()
        self.last = self.start

    def tick(self, text: str, *, force: bool = False) -> None:
        """Print ``text`` if ``every_s`` passed since the last line (or ``force``)."""
        now = time.perf_counter()
        if force or now - self.last >= self.every_s:
            self.last = now
            print(f"  [{self.label} {now - self.start:5.1f} s] {text}", file=sys.stderr, flush=True)
