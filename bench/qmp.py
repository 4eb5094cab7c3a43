"""QMP hotplug round trip: device_add + query-hotpluggable-cpus + device_del, emulator vs QEMU.

Both are separate processes started with the same command line
(``-M pseries -cpu POWER9 -smp 1,maxcpus=64 -m 1G -S``, QMP on a UNIX socket) and
driven by the public ``qemu.qmp`` client (its synchronous ``QEMUMonitorProtocol``).
One *cycle* is ``device_add`` of core-id 1 (id ``c1``), ``query-hotpluggable-cpus``
and ``device_del c1``; with ``-S`` the guest never acquires the connector, so
the delete completes inside ``device_del`` and its ``DEVICE_DELETED`` events
arrive before the answer, in both. Figures are wall-clock milliseconds per cycle
seen by the client (median over the timed cycles, after warm-up cycles).

QEMU 7.2 under TCG aborts once more vCPUs than ``maxcpus`` have existed in one
process (vCPU contexts are not recycled after an unplug), and every cycle creates
one vCPU: the QEMU machine therefore has ``maxcpus=64``, and QEMU is restarted
(outside the timed region) every ``QEMU_BATCH`` cycles, well before 63 added vCPUs.
QEMU 7.2 also corrupts its heap now and then under repeated add/del cycles
("free(): corrupted unsorted chunks", seen after 20 to 60 cycles): a cycle that
dies with QEMU is not counted, QEMU is restarted, and the crashes are reported.

``--quick``: fewer cycles. The last line is one JSON object with ``emulator_ms``,
``qemu_ms`` (null without qemu-system-ppc64) and ``ratio_vs_qemu``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, ExecInterruptedError
from qemu.qmp.legacy import QEMUMonitorProtocol

MACHINE = ["-M", "pseries", "-cpu", "POWER9", "-smp", "1,maxcpus=64", "-m", "1G", "-S"]
COMMON = ["-nographic", "-display", "none", "-nodefaults", "-seed", "1"]
CORE = {"driver": "power9_v2.0-spapr-cpu-core", "id": "c1", "core-id": 1}
#: Timed cycles per QEMU process (each adds a vCPU; 63 is QEMU's limit with maxcpus 64).
QEMU_BATCH = 20
#: Give up after this many QEMU crashes in one run.
MAX_CRASHES = 25
WARMUP = 3
CYCLES = 200
QUICK_CYCLES = 30
REPO = Path(__file__).resolve().parent.parent


@contextmanager
def _process(argv: list[str], sock: Path) -> Iterator[QEMUMonitorProtocol]:
    """Start ``argv`` serving QMP on ``sock``; yield a negotiated client; kill it afterwards."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    client = None
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.01)
        client = QEMUMonitorProtocol(str(sock))
        for attempt in range(200):  # the socket file exists a moment before listen()
            try:
                client.connect()
                break
            except ConnectError:
                if attempt == 199:
                    raise
                time.sleep(0.01)
        yield client
    finally:
        if client is not None:
            client.close()
        proc.kill()
        proc.wait()
        if sock.exists():
            sock.unlink()


def emulator_argv(sock: Path) -> list[str]:
    """The emulator as a process (the runner's entry point)."""
    code = "import sys; from machine.cli.main import main; sys.exit(main(sys.argv[1:]))"
    qmp = f"unix:{sock},server=on,wait=off"
    return [sys.executable, "-c", code, *MACHINE, *COMMON, "-qmp", qmp]


def qemu_argv(qemu: str, sock: Path) -> list[str]:
    return [qemu, *MACHINE, *COMMON, "-qmp", f"unix:{sock},server=on,wait=off"]


def _cycle(client: QEMUMonitorProtocol) -> float:
    """One timed cycle in milliseconds (answers checked, so a failure cannot look fast)."""
    t0 = time.perf_counter()
    added = client.cmd_raw("device_add", CORE)
    slots = client.cmd_raw("query-hotpluggable-cpus")
    deleted = client.cmd_raw("device_del", {"id": "c1"})
    elapsed = (time.perf_counter() - t0) * 1000
    if added != {"return": {}} or deleted != {"return": {}}:
        raise RuntimeError(f"unexpected answers: {added} {deleted}")
    if slots["return"][-2].get("qom-path") != "/machine/peripheral/c1":
        raise RuntimeError(f"core not plugged: {slots}")
    events = client.get_events(wait=False)
    client.clear_events()
    if [e["event"] for e in events][-1:] != ["DEVICE_DELETED"]:
        raise RuntimeError(f"no DEVICE_DELETED: {events}")
    return elapsed


def measure(start: Callable[[Path], list[str]], cycles: int, batch: int) -> tuple[list[float], int]:
    """Per-cycle times and the number of crashed processes; a new process every ``batch``."""
    times: list[float] = []
    crashes = 0
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "qmp.sock"
        while len(times) < cycles:
            want = min(cycles - len(times), batch)
            try:
                with _process(start(sock), sock) as client:
                    for _ in range(WARMUP):
                        _cycle(client)
                    for _ in range(want):
                        times.append(_cycle(client))
            except (ExecInterruptedError, EOFError, ConnectError, RuntimeError):
                crashes += 1
                if crashes > MAX_CRASHES:
                    raise
    return times, crashes


def run(args: list[str]) -> dict[str, Any]:
    """Time both, print a table, return the figures."""
    cycles = QUICK_CYCLES if "--quick" in args else CYCLES
    qemu = shutil.which("qemu-system-ppc64")
    ours, our_crashes = measure(emulator_argv, cycles, batch=cycles)
    if our_crashes:
        raise RuntimeError("the emulator failed during the benchmark")
    theirs, qemu_crashes = (
        measure(lambda sock: qemu_argv(qemu, sock), cycles, QEMU_BATCH)
        if qemu is not None
        else ([], 0)
    )
    emulator_ms = statistics.median(ours)
    qemu_ms = statistics.median(theirs) if theirs else None
    print(
        f"qmp: device_add + query-hotpluggable-cpus + device_del via qemu.qmp, "
        f"{cycles} cycles after {WARMUP} warm-up, ms per cycle"
    )
    print(f"{'':10} {'median':>8} {'mean':>8} {'p90':>8}")
    for name, times in (("emulator", ours), ("qemu 7.2", theirs)):
        if times:
            median, mean = statistics.median(times), statistics.mean(times)
            p90 = statistics.quantiles(times, n=10)[-1]
            print(f"{name:10} {median:8.3f} {mean:8.3f} {p90:8.3f}")
        else:
            print(f"{name:10} {'(qemu-system-ppc64 not installed)':>26}")
    ratio = emulator_ms / qemu_ms if qemu_ms else None
    if ratio is not None:
        print(f"ratio emulator/qemu: {ratio:.2f} (QEMU restarted after {qemu_crashes} crash(es))")
    return {
        "emulator_ms": round(emulator_ms, 4),
        "qemu_ms": None if qemu_ms is None else round(qemu_ms, 4),
        "ratio_vs_qemu": None if ratio is None else round(ratio, 3),
        "cycles": cycles,
        "qemu_crashes": qemu_crashes,
    }
