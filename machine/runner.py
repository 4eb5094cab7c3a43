"""Running a machine after start-up: monitors, QMP servers and the virtual clock.

Placeholder until the monitor lands: a machine started without ``dumpdtb`` and
without a monitor has nothing to talk to, so it says so and exits.
"""

from __future__ import annotations

from typing import TextIO

from machine.config import PROG
from machine.pseries import PseriesMachine


def run_machine(machine: PseriesMachine, *, out: TextIO, err: TextIO) -> int:
    """Serve the machine's monitors until quit."""
    print(f"{PROG}: no monitor configured (use -monitor stdio or -qmp)", file=err)
    return 1
