"""``-uuid`` as QEMU 7.2 gives it to a pseries guest: the device tree and RTAS parameter 48.

QEMU 7.2 (hw/ppc/spapr.c, spapr_dt_root; hw/ppc/spapr_rtas.c, get-system-parameter)
writes the UUID, printed in lower case, as the root's ``vm,uuid`` (the null UUID when
none was given) and, only when ``-uuid`` was given, as ``system-id`` too; the RTAS
system parameter 48 (RTAS_SYSPARM_UUID) holds its 16 bytes, or nothing (length 0)
without ``-uuid``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from oracle_tools import TOOLS

from fdt import from_dtb
from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.hmp import HmpMonitor

UUID = "3FA85F64-5717-4562-B3FC-2C963F66AFA6"
BASE = ["-nodefaults", "-m", "1G"]


def root_properties(argv: list[str], tool: list[str], cwd: Path) -> list[tuple[str, bytes]]:
    """The root node's (name, value) pairs of a ``dumpdtb`` made by ``tool``."""
    done = subprocess.run(
        [*tool, "-M", "pseries,dumpdtb=out.dtb", *BASE, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    root = from_dtb((cwd / "out.dtb").read_bytes()).root
    return [(p.name, bytes(p.value)) for p in root.properties]


def string(text: str) -> bytes:
    return text.encode() + b"\0"


def test_uuid_in_the_root_node(tmp_path: Path) -> None:
    props = dict(root_properties(["-uuid", UUID], [sys.executable, "-m", "spapr"], tmp_path))
    assert props["vm,uuid"] == string(UUID.lower())
    assert props["system-id"] == string(UUID.lower())
    plain = dict(root_properties([], [sys.executable, "-m", "spapr"], tmp_path))
    assert plain["vm,uuid"] == string("00000000-0000-0000-0000-000000000000")
    assert "system-id" not in plain


@pytest.mark.qemu
def test_root_node_equals_qemus_with_uuid(tmp_path: Path) -> None:
    """Every root property QEMU 7.2 writes with ``-uuid``, in its order (rng-seed aside)."""
    qemu = TOOLS["qemu"].find()
    assert qemu is not None
    theirs = root_properties(["-uuid", UUID], [str(qemu), "-display", "none"], tmp_path)
    ours = root_properties(["-uuid", UUID], [sys.executable, "-m", "spapr"], tmp_path)
    assert ours == theirs


def sysparm_uuid(extra: list[str]) -> tuple[bytes, str]:
    """What ``ibm,get-system-parameter 48`` leaves in the guest's buffer (length, value),
    and what the monitor says of it."""
    machine: Any = build_machine(
        ["-M", "pseries", *BASE, *extra, "-guest", "manual"], io.StringIO()
    )
    machine.reset()
    control = MachineControl(machine)
    control.settle()  # the manual guest reads the device tree (its /rtas tokens) at boot
    hmp = HmpMonitor(control, stderr=lambda line: None)
    buffer = 0x100000
    out = hmp.execute(f"rtas ibm,get-system-parameter 48 {buffer:#x} 64")
    assert "status 0 SUCCESS" in out
    length = machine.memory.ld16(buffer)
    return bytes(machine.memory.read(buffer + 2, length)), out


def test_system_parameter_48_holds_the_uuid_bytes() -> None:
    value, shown = sysparm_uuid(["-uuid", UUID])
    assert value == bytes.fromhex(UUID.replace("-", ""))
    assert UUID.lower() in shown, "the monitor shows the bytes as the UUID they are"
    value, shown = sysparm_uuid([])
    assert value == b""
    assert "value (0 bytes)" in shown
