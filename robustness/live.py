"""Real qemu-system-ppc64 7.2 beside the emulator: the same input, the same answers.

:func:`live_qemu` starts QEMU with a QMP socket (``-S``, no display, no default
devices, the campaign's machine); :func:`compare_qmp_cases` sends the same cases
to it and to a fresh emulator and compares every reply: an error by class and
text, a success by its being one (the values of queries differ where the
emulator models less, e.g. ``query-version``'s package). Cases whose answer the
emulator bounds differently on purpose (a message over its 1 MiB bound; QEMU's is
64 MiB) are not sampled. Nothing here runs when QEMU is not installed; the
campaign notes that it did not compare.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from machine.monitor.qmp_json import to_json
from robustness.harness import P9, served
from robustness.qmp_fuzz import Case, run_case
from robustness.report import AreaReport

QEMU_COMMON = ["-display", "none", "-S", "-seed", "1"]


def qemu_binary() -> str | None:
    """qemu-system-ppc64 if installed."""
    return shutil.which("qemu-system-ppc64")


@contextlib.contextmanager
def live_qemu(argv: list[str], sock: Path) -> Iterator[subprocess.Popen[bytes]]:
    """QEMU with ``-qmp unix:SOCK`` until the block ends."""
    binary = qemu_binary()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, *argv, *QEMU_COMMON, "-qmp", f"unix:{sock},server=on,wait=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("qemu-system-ppc64 did not start")
            time.sleep(0.02)
        time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def shape(replies: Iterable[Any], *, texts: bool = False) -> list[str]:
    """Replies as compared: errors whole (class, text, id), successes as ``return`` (+ id).

    With ``texts`` a success that returns a string (HMP's output) is compared whole.
    """
    out = []
    for reply in replies:
        if not isinstance(reply, dict) or "event" in reply:
            continue
        if "return" in reply and not (texts and isinstance(reply["return"], str)):
            out.append("return" + (f" id={to_json(reply['id'])}" if "id" in reply else ""))
        else:
            out.append(to_json(reply))
    return out


#: Requests not sampled: the emulator offers no out-of-band execution (its greeting
#: lists no "oob"), so enabling it is refused, as QEMU refuses it on a monitor
#: without the capability; and ``cont`` would set QEMU's firmware running under TCG,
#: which slows every later answer (the sample compares answers, not run states).
KNOWN_DIFFERENCES = (b'"enable":["oob"]', b'"cont"')


def comparable(case: Case) -> bool:
    """Cases both answer by the same rule (not the emulator's own size bound or choices)."""
    data = case.data
    return (
        len(data) < (1 << 20) - 4096
        and b'"quit"' not in data
        and not any(known in data for known in KNOWN_DIFFERENCES)
    )


def compare_qmp_cases(
    report: AreaReport, cases: list[Case], category: str, *, texts: bool = False
) -> int:
    """Send ``cases`` to QEMU and to a fresh emulator; a failure per differing answer."""
    if qemu_binary() is None:
        report.note("live comparison skipped: qemu-system-ppc64 is not installed")
        return 0
    sample = [c for c in cases if comparable(c)]
    with tempfile.TemporaryDirectory(prefix="campaign-live-") as tmp:
        qemu_sock = Path(tmp) / "qemu.sock"
        with live_qemu(P9, qemu_sock), served([*P9, "-S"], Path(tmp) / "emu.sock") as emu:
            for case in sample:
                report.count(category)
                theirs = run_case(str(qemu_sock), case)
                ours = run_case(str(emu.sock_path), case)
                want, got = shape(theirs.replies, texts=texts), shape(ours.replies, texts=texts)
                if want != got:
                    report.fail(
                        category,
                        case.describe(),
                        f"QEMU answered {want[:6]}, the emulator {got[:6]}",
                    )
    report.note(
        f"compared live with {os.path.basename(qemu_binary() or '')}: {len(sample)} {category}"
    )
    return len(sample)
