"""The pictures a front end asks for: a window of a trace as SVG or as the step-through page.

The command line (``spapr trace-draw``, ``spapr trace-report``, ``-trace-html``) and
HMP (``trace draw FILE``) all come through here, so they draw the same thing from the
same window. :func:`parse_draw_words` reads the options as HMP's words spell them
(the command line reads the same options with argparse).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from machine.diagrams import svg
from machine.diagrams.messages import read_handshake
from machine.diagrams.report_page import report_html
from machine.diagrams.state_diagram import state_diagram_svg
from machine.diagrams.svg_sequence import sequence_svg
from machine.diagrams.trace_window import TraceWindow, window_bounds
from spapr.trace import TraceEvent

DRAW_USAGE = "FILE [--op N] [--since MS] [--until MS] [--state-diagram]"


def _title(window: TraceWindow, what: str) -> str:
    parts = []
    if window.op is not None:
        parts.append(f"host operation {window.op}")
    if window.since_ms is not None:
        parts.append(f"from {window.since_ms:g} ms")
    if window.until_ms is not None:
        parts.append(f"until {window.until_ms:g} ms")
    return what + (f" ({', '.join(parts)})" if parts else "")


def draw_svg(
    events: Sequence[TraceEvent], window: TraceWindow, *, state_diagram: bool = False
) -> tuple[str, int]:
    """The standalone SVG of a window and how many messages (or transitions) it shows.

    ValueError when the window is empty.
    """
    start, end = window_bounds(events, window)
    if state_diagram:
        title = _title(window, "CPU connector (logical DRC) state machine")
        root = state_diagram_svg(events, start, end, title=title)
        return svg.to_text(root), len(root.findall(".//*[@data-seq]"))
    handshake = read_handshake(events, start, end)
    title = _title(window, "CPU hotplug handshake")
    return svg.to_text(sequence_svg(handshake, title=title)), len(handshake.messages)


def draw_report(events: Sequence[TraceEvent], window: TraceWindow) -> str:
    """The step-through page of a window (ValueError when it holds no message)."""
    start, end = window_bounds(events, window)
    return report_html(events, start, end, title=_title(window, "CPU hotplug handshake"))


@attrs.frozen
class DrawRequest:
    """``trace draw``'s words: the file, the window and which picture."""

    path: str
    window: TraceWindow
    state_diagram: bool = False


def parse_draw_words(words: Sequence[str]) -> DrawRequest:
    """``FILE [--op N] [--since MS] [--until MS] [--state-diagram]``; ValueError if not."""
    path: str | None = None
    op: int | None = None
    since: float | None = None
    until: float | None = None
    state = False
    items = list(words)
    while items:
        word = items.pop(0)
        if word == "--state-diagram":
            state = True
        elif word in ("--op", "--since", "--until"):
            if not items:
                raise ValueError(f"{word} needs a value")
            value = items.pop(0)
            try:
                if word == "--op":
                    op = int(value)
                elif word == "--since":
                    since = float(value)
                else:
                    until = float(value)
            except ValueError:
                raise ValueError(f"{word} {value}: not a number") from None
        elif word.startswith("-") or path is not None:
            raise ValueError(f"unexpected '{word}'")
        else:
            path = word
    if path is None:
        raise ValueError("the file to write is missing")
    return DrawRequest(path, TraceWindow(op, since, until), state)
