"""HMP ``xp``: guest physical memory dumped as QEMU 7.2's monitor dumps it.

The layout and the parser's texts are compared with a live qemu-system-ppc64 7.2 on
memory both hold as zeros (QEMU's low memory holds SLOF, this machine's does not);
the values are checked on bytes the test writes itself, against the layout QEMU's
memory_dump documents (big-endian units, ``0x`` and the unit's hex digits, 8 bytes a
line for byte units and 16 otherwise, the address as 16 hex digits).
"""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pytest
from oracle_tools import TOOLS

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.hmp import HmpMonitor

ZEROS = 0x1000_0000
#: Each line is one monitor command; formats and sizes are sticky across them.
SCRIPT = [
    f"xp /4xw {ZEROS:#x}",
    f"xp /3xb {ZEROS:#x}",
    f"xp /2xg {ZEROS:#x}",
    f"xp /5dh {ZEROS:#x}",
    f"xp {ZEROS:#x}",  # the last format and size: d, h
    f"xp /2uw {ZEROS:#x}",
    f"xp /3c {ZEROS:#x}",  # c counts units of the last size (w): 12 characters
    f"xp /2ow {ZEROS:#x}",
    f"xp /9xb {ZEROS:#x}",  # two lines: byte units go 8 a line
    f"xp /x {ZEROS:#x}",  # size b, still
    f"xp/2xw {ZEROS:#x}",  # the command name ends at '/'
    f"xp /2xw {ZEROS:#x} + 0x10 * 2 - (4 | 1 ^ 1)",
    f"xp /xw {ZEROS:#x}/2%3",
    "xp /1xw 0x40000000",  # the first byte past 1 GiB of RAM
    "xp /5xw 0x3ffffff8",  # a line running past the end
    "xp /2xw -1",
    "xp",
    "xp /x",
    "xp /x zz",
    "xp /q 0",
    "xp /xz 0",
    f"xp /x {ZEROS:#x} junk",
    "xp /2x 8-",
    "xp /x 99999999999999999999999",
    "xp /x (1",
    "xp /x 1/0",
    "xp /x 'a",
]


def session(lines: list[str]) -> tuple[Any, HmpMonitor]:
    machine: Any = build_machine(["-M", "pseries", "-nodefaults", "-m", "1G"], io.StringIO())
    machine.reset()
    return machine, HmpMonitor(MachineControl(machine))


@pytest.mark.qemu
def test_xp_prints_what_qemu_prints() -> None:
    qemu = TOOLS["qemu"].find()
    assert qemu is not None
    stdin = "".join(f"{line}\n" for line in SCRIPT) + "quit\n"
    done = subprocess.run(
        [str(qemu), "-M", "pseries", "-nodefaults", "-display", "none", "-S", "-m", "1G"]
        + ["-monitor", "stdio"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # QEMU echoes the typed line with terminal control sequences; its answers follow
    # each "(qemu) " prompt's echo, one command per prompt
    out = done.stdout.replace("\r", "")
    theirs = [
        "\n".join(ln for ln in chunk.split("\n")[1:] if ln) for chunk in out.split("(qemu) ")[1:]
    ][: len(SCRIPT)]
    _, hmp = session(SCRIPT)
    ours = [hmp.execute(line).rstrip("\n") for line in SCRIPT]
    for line, mine, want in zip(SCRIPT, ours, theirs, strict=True):
        assert mine == want, line


def test_xp_shows_the_bytes_a_guest_wrote() -> None:
    machine, hmp = session([])
    at = 0x20_0000
    data = bytes([0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0]) + b"A'\\\n\r~\x7f\x00"
    machine.memory.write(at, data)
    assert hmp.execute(f"xp /4xb {at:#x}") == f"{at:016x}: 0x12 0x34 0x56 0x78\n"
    assert hmp.execute(f"xp /2xw {at:#x}") == f"{at:016x}: 0x12345678 0x9abcdef0\n"
    assert hmp.execute(f"xp /xg {at:#x}") == f"{at:016x}: 0x123456789abcdef0\n"
    assert hmp.execute(f"xp /2xh {at + 2:#x}") == f"{at + 2:016x}: 0x5678 0x9abc\n"
    # d and u print the unsigned unit right-aligned (QEMU loads it unsigned)
    assert hmp.execute(f"xp /uw {at + 4:#x}") == f"{at + 4:016x}: {0x9ABCDEF0:>10d}\n"
    assert hmp.execute(f"xp /dw {at + 4:#x}") == f"{at + 4:016x}: {0x9ABCDEF0:>10d}\n"
    # the last letter of each kind wins, and the size stays for the next command
    assert hmp.execute(f"xp /dxh {at:#x}") == f"{at:016x}: 0x1234\n"
    assert hmp.execute(f"xp /d {at:#x}") == f"{at:016x}: {0x1234:>5d}\n"
    assert hmp.execute(f"xp /ob {at:#x}") == f"{at:016x}: 022\n"  # "%#3o"
    quoted = "'A' '\\'' '\\\\' '\\n' '\\r' '~' '\\x7f' '\\x00'"
    assert hmp.execute(f"xp /8cb {at + 8:#x}") == f"{at + 8:016x}: {quoted}\n"


def test_xp_has_no_disassembler() -> None:
    _, hmp = session([])
    assert "no disassembler" in hmp.execute("xp /i 0")


def test_help_lists_xp_as_qemu_does() -> None:
    _, hmp = session([])
    assert "xp /fmt addr -- physical memory dump starting at 'addr'\n" in hmp.execute("help")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
