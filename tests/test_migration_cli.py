"""Migration between two emulator processes driven through QMP by the public qemu.qmp client.

A running source with the reference guest hot-adds a core, is asked to remove it,
and is migrated with ``migrate file:PATH`` while the removal is in flight; the
target, started with the source's command line plus ``-device`` for the core and
``-incoming file:PATH`` (or ``-incoming defer`` and ``migrate-incoming``), finishes
the handshake and announces DEVICE_DELETED.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

ARGS = (
    "-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nodefaults "
    "-seed 1 -guest linux+event-scan=off"
).split()
CORE = "power9_v2.0-spapr-cpu-core"


@contextmanager
def emulator(argv: list[str], sock: Path) -> Iterator[QEMUMonitorProtocol]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spapr", *argv, "-qmp", f"unix:{sock},server=on,wait=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        qmp = QEMUMonitorProtocol(str(sock))
        qmp.connect(negotiate=True)
        try:
            yield qmp
        finally:
            qmp.close()
    finally:
        proc.kill()
        proc.wait()


def hmp(qmp: QEMUMonitorProtocol, line: str) -> str:
    return str(qmp.cmd_raw("human-monitor-command", {"command-line": line})["return"])


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def online(qmp: QEMUMonitorProtocol) -> str:
    return hmp(qmp, "guest cat /sys/devices/system/cpu/online").strip()


def start_source_with_pending_removal(qmp: QEMUMonitorProtocol, stream: Path) -> None:
    add = {"driver": CORE, "id": "core2", "core-id": 2}
    assert qmp.cmd_raw("device_add", add) == {"return": {}}
    wait_for(lambda: online(qmp) == "0-2")
    qmp.cmd_raw("stop")
    assert qmp.cmd_raw("device_del", {"id": "core2"}) == {"return": {}}
    assert qmp.cmd_raw("migrate", {"uri": f"file:{stream}"}) == {"return": {}}
    assert qmp.cmd_raw("query-migrate")["return"]["status"] == "completed"
    assert qmp.cmd_raw("query-status")["return"]["status"] == "postmigrate"


def test_migrate_to_file_and_resume_with_incoming_file(tmp_path: Path) -> None:
    stream = tmp_path / "vm.migration"
    with emulator(ARGS, tmp_path / "src.sock") as src:
        start_source_with_pending_removal(src, stream)
        src_events = [e["event"] for e in src.get_events()]
        assert "DEVICE_DELETED" not in src_events
    target = ARGS + ["-device", f"{CORE},id=core2,core-id=2", "-incoming", f"file:{stream}"]
    with emulator(target, tmp_path / "dst.sock") as dst:
        # the source was paused: so is the target, until cont
        assert dst.cmd_raw("query-status")["return"]["status"] == "paused"
        dst.cmd_raw("cont")
        deleted: list[dict[str, Any]] = []
        wait_for(
            lambda: (
                deleted.extend(e for e in dst.get_events() if e["event"] == "DEVICE_DELETED")
                or any(e["data"].get("device") == "core2" for e in deleted)
            )
        )
        assert online(dst) == "0-1"
        slots = dst.cmd_raw("query-hotpluggable-cpus")["return"]
        assert all("qom-path" not in s for s in slots if s["props"]["core-id"] == 2)


def test_incoming_defer_then_migrate_incoming(tmp_path: Path) -> None:
    stream = tmp_path / "vm.migration"
    with emulator(ARGS, tmp_path / "src.sock") as src:
        start_source_with_pending_removal(src, stream)
    target = ARGS + ["-incoming", "defer"]
    with emulator(target, tmp_path / "dst.sock") as dst:
        assert dst.cmd_raw("query-status")["return"]["status"] == "inmigrate"
        # a core added while inmigrate counts as cold-plugged (oracle incoming_defer_p8e)
        assert dst.cmd_raw("device_add", {"driver": CORE, "id": "core2", "core-id": 2}) == {
            "return": {}
        }
        assert dst.cmd_raw("migrate-incoming", {"uri": f"file:{stream}"}) == {"return": {}}
        assert dst.cmd_raw("query-migrate")["return"]["status"] == "completed"
        dst.cmd_raw("cont")
        wait_for(lambda: online(dst) == "0-1")


def test_a_target_without_the_hot_plugged_core_is_refused(tmp_path: Path) -> None:
    stream = tmp_path / "vm.migration"
    with emulator(ARGS, tmp_path / "src.sock") as src:
        start_source_with_pending_removal(src, stream)
    result = subprocess.run(
        [sys.executable, "-m", "spapr", *ARGS, "-incoming", f"file:{stream}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "core2" in result.stderr and "-device" in result.stderr
