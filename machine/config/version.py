"""Which QEMU this emulator answers as, and how it names itself.

One place for the version every front end prints: ``-version`` and ``-h`` on the
command line, ``info version`` and the monitor greeting in HMP, ``query-version``
and the greeting in QMP. The version is QEMU's; the package string (where a QEMU
build names its distribution) names this emulator, so nobody mistakes it for a
QEMU binary.
"""

from __future__ import annotations

#: The QEMU release whose behaviour and texts this emulator reproduces.
QEMU_VERSION = (7, 2, 22)
#: The package string: names this emulator, not a QEMU build.
PACKAGE = "spapr-hotplug 0.1.0, a pure-Python model of QEMU 7.2's pseries CPU hotplug"


def version_string() -> str:
    """``7.2.22 (package)``: what QEMU calls its full version."""
    major, minor, micro = QEMU_VERSION
    return f"{major}.{minor}.{micro} ({PACKAGE})"
