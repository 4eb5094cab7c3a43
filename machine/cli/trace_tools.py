"""``spapr trace-draw``, ``spapr trace-report`` and ``-trace-html``: pictures of a trace.

A trace is what ``-trace-json FILE`` writes. ``trace-draw TRACE -o FILE.svg`` draws
the handshake as an SVG sequence diagram (``--state-diagram``: the CPU connector's
state machine with the transitions the trace took); ``trace-report TRACE -o
FILE.html`` writes the page to step through it. ``--op N`` picks the Nth host
operation, ``--since``/``--until`` bound the window in virtual milliseconds; by
default the window starts at the first host command. ``-trace-html FILE`` on a live
run writes the same page when the machine quits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from machine.board.pseries import PseriesMachine
from machine.board.trace_sinks import run_archive
from machine.config.cmdline import PROG
from machine.diagrams.pictures import draw_report, draw_svg
from machine.diagrams.trace_window import TraceFileError, TraceWindow, load_trace
from spapr.trace import TraceEvent


def _parser(name: str, what: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"spapr {name}", description=what)
    parser.add_argument("trace", metavar="TRACE.jsonl", help="a trace written by -trace-json")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    parser.add_argument("--op", type=int, metavar="N", help="only the Nth host operation (1-based)")
    parser.add_argument("--since", type=float, metavar="MS", help="from this virtual time (ms)")
    parser.add_argument("--until", type=float, metavar="MS", help="up to this virtual time (ms)")
    return parser


def _read(path: str, name: str, err: TextIO) -> list[TraceEvent] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return load_trace(f)
    except OSError as exc:
        print(f"spapr {name}: cannot read '{path}': {exc.strerror}", file=err)
    except TraceFileError as exc:
        print(f"spapr {name}: '{path}': {exc}", file=err)
    return None


def _write(path: str, text: str, name: str, err: TextIO) -> bool:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        print(f"spapr {name}: cannot write '{path}': {exc.strerror}", file=err)
        return False
    return True


def trace_draw(argv: Sequence[str]) -> int:
    """``spapr trace-draw TRACE -o FILE.svg [--op N] [--since/--until MS] [--state-diagram]``."""
    out, err = sys.stdout, sys.stderr
    parser = _parser("trace-draw", "Draw a recorded handshake as a standalone SVG.")
    parser.add_argument(
        "--state-diagram",
        action="store_true",
        help="draw the CPU connector's state machine with the transitions taken",
    )
    args = parser.parse_args(list(argv))
    events = _read(args.trace, "trace-draw", err)
    if events is None:
        return 1
    window = TraceWindow(args.op, args.since, args.until)
    try:
        text, count = draw_svg(events, window, state_diagram=args.state_diagram)
    except ValueError as exc:
        print(f"spapr trace-draw: {exc}", file=err)
        return 1
    if not _write(args.output, text, "trace-draw", err):
        return 1
    what = "transitions" if args.state_diagram else "messages"
    print(f"{args.output}: {count} {what}", file=out)
    return 0


def trace_report(argv: Sequence[str]) -> int:
    """``spapr trace-report TRACE -o FILE.html [--op N] [--since MS] [--until MS]``."""
    out, err = sys.stdout, sys.stderr
    parser = _parser("trace-report", "Write a self-contained page to step through a handshake.")
    args = parser.parse_args(list(argv))
    events = _read(args.trace, "trace-report", err)
    if events is None:
        return 1
    try:
        page = draw_report(events, TraceWindow(args.op, args.since, args.until))
    except ValueError as exc:
        print(f"spapr trace-report: {exc}", file=err)
        return 1
    if not _write(args.output, page, "trace-report", err):
        return 1
    print(f"{args.output}: written", file=out)
    return 0


#: ``spapr NAME ...`` subcommands (QEMU's options all start with '-', so no clash).
SUBCOMMANDS: Mapping[str, Callable[[Sequence[str]], int]] = {
    "trace-draw": trace_draw,
    "trace-report": trace_report,
}


def write_trace_html(machine: PseriesMachine, err: TextIO) -> None:
    """``-trace-html FILE``: the page of the run since its first host command, at quit.

    The whole run comes from the recorder's archive (the in-memory events are only
    the recent ones); a recorder without one (a machine built without the option's
    sinks) gives what it kept.
    """
    path = machine.setup.config.trace_html
    if path is None:
        return
    archive = run_archive(machine.trace)
    try:
        events = machine.trace.events if archive is None else load_trace(archive.lines())
        page = draw_report(events, TraceWindow())
    except ValueError as exc:
        print(f"{PROG}: -trace-html {path}: nothing written: {exc}", file=err)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as exc:
        print(f"{PROG}: could not write '{path}': {exc.strerror}", file=err)
