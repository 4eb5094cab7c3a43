"""The external tools tests compare with: where each is, and QEMU's version.

One table, read by conftest.py (markers ``qemu``, ``dtc``, ``libfdt``,
``qmp_shell``, ``chromium``) and by the tests that run the tools.
"""

from __future__ import annotations

import ctypes.util
import functools
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import attrs

#: The QEMU release every recording in tests/data comes from.
QEMU_SERIES = "7.2"


def _qmp_shell() -> str | None:
    """qemu.qmp's qmp-shell: on PATH, or beside this interpreter in a venv."""
    beside = Path(sys.executable).with_name("qmp-shell")
    return shutil.which("qmp-shell") or (str(beside) if beside.exists() else None)


def _virsh() -> str | None:
    """virsh, if libvirt's QEMU driver is installed and its default user exists."""
    import pwd

    virsh = shutil.which("virsh")
    drivers = Path("/usr/lib").glob("*/libvirt/connection-driver/libvirt_driver_qemu.so")
    if virsh is None or not any(drivers):
        return None
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        return None
    return virsh


@attrs.frozen
class Tool:
    """An external program or library a test needs, and how to find it."""

    description: str
    find: Callable[[], str | None]


TOOLS: dict[str, Tool] = {
    "qemu": Tool("qemu-system-ppc64", lambda: shutil.which("qemu-system-ppc64")),
    "dtc": Tool("the dtc device-tree compiler", lambda: shutil.which("dtc")),
    "libfdt": Tool("the libfdt C library", lambda: ctypes.util.find_library("fdt")),
    "qmp_shell": Tool("qemu.qmp's qmp-shell", _qmp_shell),
    "chromium": Tool("Debian's chromium", lambda: shutil.which("chromium")),
    "virsh": Tool(
        "libvirt's virsh with the QEMU driver (libvirt-clients, libvirt-daemon-driver-qemu)"
        " and the libvirt-qemu user it starts as",
        _virsh,
    ),
}

QEMU = TOOLS["qemu"].find()
DTC = TOOLS["dtc"].find()
LIBFDT_NAME = TOOLS["libfdt"].find()
QMP_SHELL = TOOLS["qmp_shell"].find()
VIRSH = TOOLS["virsh"].find()


@functools.cache
def qemu_version_problem() -> str | None:
    """Why the installed qemu-system-ppc64 cannot stand for the recordings' QEMU, or None."""
    if QEMU is None:
        return "qemu-system-ppc64 is not installed"
    first = subprocess.run(
        [QEMU, "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    line = first[0] if first else ""
    if not line.startswith(f"QEMU emulator version {QEMU_SERIES}."):
        return f"qemu-system-ppc64 must be QEMU {QEMU_SERIES}.x; found {line!r}"
    return None
