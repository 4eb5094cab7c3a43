"""Real qemu-system-ppc64 7.2 beside the emulator: the same input, the same answers.

:func:`live_qemu` starts QEMU with a QMP socket (``-S``, no display, no default
devices, the campaign's machine); :func:`compare_qmp_cases` sends the same cases
to it and to a fresh emulator and compares every reply: an error by class and
text, a success by its being one (the values of queries differ where the
emulator models less, e.g. ``query-version``'s package). Cases whose answer the
emulator bounds differently on purpose (a message over its 1 MiB bound; QEMU's is
64 MiB) are not sampled. Nothing here runs when QEMU is not installed; the
campaign notes that it did not compare.

Both sides get each case followed by an end mark (``run_case(..., marked=True)``)
instead of the client's end of input: QEMU closes on a client's end of input and
drops the replies it has not yet written (checked live: a 1 MiB ``qom-get`` path's
reply arrived in part, and of a stream of a thousand error replies a varying
number arrived), so only the mark's reply says that QEMU's answer is whole. A
case QEMU has not answered up to the mark within :data:`LIVE_TIMEOUT_S` is
inconclusive, counted apart and noted, not a failure.
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
#: Seconds a compared case may take on either side (QEMU lexes a 1 MiB request in
#: about ten seconds, more on a loaded machine).
LIVE_TIMEOUT_S = 60.0


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
#: which slows every later answer (the sample compares answers, not run states); and
#: ``query-command-line-options`` for option "": QEMU 7.2 has an option group with an
#: empty name and no parameters (it lists ``{"parameters": [], "option": ""}``), which
#: the emulator, listing only the options it parses, has not.
KNOWN_DIFFERENCES = (b'"enable":["oob"]', b'"cont"', b'"option": ""', b'"option":""')


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
    inconclusive: list[str] = []
    with tempfile.TemporaryDirectory(prefix="campaign-live-") as tmp:
        qemu_sock = Path(tmp) / "qemu.sock"
        with live_qemu(P9, qemu_sock), served([*P9, "-S"], Path(tmp) / "emu.sock") as emu:
            for case in sample:
                theirs = run_case(str(qemu_sock), case, LIVE_TIMEOUT_S, marked=True)
                if theirs.problems:  # QEMU did not answer in full: nothing to compare
                    report.count(f"{category} (inconclusive)")
                    inconclusive.append(f"{case.kind}: {theirs.problems[0][:80]}")
                    continue
                report.count(category)
                ours = run_case(str(emu.sock_path), case, LIVE_TIMEOUT_S, marked=True)
                want, got = shape(theirs.replies, texts=texts), shape(ours.replies, texts=texts)
                if want != got or ours.problems:
                    problems = (
                        f"; the emulator: {'; '.join(ours.problems)}" if ours.problems else ""
                    )
                    report.fail(category, case.describe(), _first_difference(want, got) + problems)
    compared = len(sample) - len(inconclusive)
    report.note(
        f"compared live with {os.path.basename(qemu_binary() or '')}: {compared} {category}"
    )
    if inconclusive:
        report.note(
            f"{len(inconclusive)} {category} inconclusive (QEMU's answer was not whole, "
            f"see robustness/live.py), first: {inconclusive[0]}"
        )
    return compared


def _first_difference(want: list[str], got: list[str]) -> str:
    """Where QEMU's replies and the emulator's part: the first differing pair, or the counts."""
    for n, (a, b) in enumerate(zip(want, got)):
        if a != b:
            return (
                f"reply {n + 1} of {len(want)}: QEMU answered {a[:600]!r}, the emulator {b[:600]!r}"
            )
    if len(want) == len(got):
        return "the same replies"
    common = min(len(want), len(got))
    return f"QEMU gave {len(want)} replies, the emulator {len(got)} (the first {common} equal)"
