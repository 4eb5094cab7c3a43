"""The handshake as an SVG sequence diagram: one lane per party, one arrow per message.

Drawn from :func:`machine.diagrams.messages.read_handshake`: lanes left to right in
their kinds' order, a row per message top to bottom with its virtual time (ms) on
the left; notes (state changes) sit on their lane. Refused messages are red, dashed
and marked ✗. The calls of a configure-connector walk are drawn as one folded arrow
(``g.cc-group``) followed by its calls, hidden: the step-through page unfolds them.

Every message element is a ``g.message`` carrying ``data-step``, ``data-kind``,
``data-from``, ``data-to``, ``data-t`` (ns) and ``data-event`` (its index in the
trace), so tests and the page can tie a drawing to the trace's facts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from machine.diagrams import svg
from machine.diagrams.messages import CallGroup, Handshake, Message

LANE_WIDTH = 170.0
LEFT = 78.0
HEADER_TOP = 30.0
HEADER_HEIGHT = 40.0
TOP = HEADER_TOP + HEADER_HEIGHT + 22.0
ROW = 24.0
NOTE_HEIGHT = 18.0

CSS = """
svg.sequence text { font-size: 12px; fill: #1d2733; }
svg.sequence .caption { font-size: 13px; font-weight: bold; }
svg.sequence .lane rect { fill: #eef3fb; stroke: #5a77a6; }
svg.sequence .lane.kind-drc rect { fill: #fff3df; stroke: #b7791f; }
svg.sequence .lane.kind-vcpu rect { fill: #e8f6ee; stroke: #2f855a; }
svg.sequence .lane.kind-guest rect { fill: #f3ecfb; stroke: #6b46c1; }
svg.sequence .lane.kind-rtas rect, svg.sequence .lane.kind-xics rect,
svg.sequence .lane.kind-queue rect { fill: #f1f1f1; stroke: #555; }
svg.sequence .lane .title { font-weight: bold; text-anchor: middle; }
svg.sequence .lane .subtitle { font-size: 10px; fill: #556; text-anchor: middle; }
svg.sequence .lifeline { stroke: #9aa3b2; stroke-dasharray: 4 4; }
svg.sequence .message line, svg.sequence .summary line { stroke: #2d3e50; stroke-width: 1.4; }
svg.sequence .message text, svg.sequence .summary text {
  paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg.sequence .time { font-family: monospace; font-size: 11px; fill: #667; text-anchor: end; }
svg.sequence .time-unit { font-size: 11px; fill: #667; text-anchor: end; }
svg.sequence .kind-rtas line { stroke: #2c6e49; }
svg.sequence .kind-command line, svg.sequence .kind-reply line,
svg.sequence .kind-qmp-event line { stroke: #2b4c9a; }
svg.sequence .kind-pulse line, svg.sequence .kind-deliver line { stroke: #8a4b08; }
svg.sequence .kind-event-log line { stroke: #6b46c1; }
svg.sequence rect.box { fill: #fffbe6; stroke: #b59f3b; }
svg.sequence .kind-drc-state rect.box { fill: #fff3df; stroke: #b7791f; }
svg.sequence .kind-vcpu-state rect.box { fill: #e8f6ee; stroke: #2f855a; }
svg.sequence .note text.label { text-anchor: middle; }
svg.sequence .refused line { stroke: #c0392b; stroke-dasharray: 6 3; }
svg.sequence .refused text.label { fill: #c0392b; font-weight: bold; }
svg.sequence .refused rect.box { fill: #fdecea; stroke: #c0392b; }
svg.sequence rect.highlight { fill: none; stroke: none; }
svg.sequence .summary line { stroke: #2c6e49; stroke-width: 4; }
svg.sequence .summary text { font-weight: bold; fill: #2c6e49; }
svg.sequence .current > rect.highlight { fill: #ffe58a; }
svg.sequence .cc-group { cursor: pointer; }
"""


def _lane_x(index: int) -> float:
    return LEFT + index * LANE_WIDTH + LANE_WIDTH / 2


class _Layout:
    """Positions: lane centres and the row each visible element takes."""

    def __init__(self, handshake: Handshake) -> None:
        self.x = {lane.key: _lane_x(i) for i, lane in enumerate(handshake.lanes)}
        self.right = LEFT + len(handshake.lanes) * LANE_WIDTH

    def extent(self, message: Message) -> float:
        """The rightmost pixel a message's drawing reaches."""
        x1, x2 = self.x[message.source], self.x[message.target]
        if message.is_note:
            return x1 + svg.text_width(message.label) / 2 + 10
        return min(x1, x2) + 8 + svg.text_width(message.label)


def _row_group(parent: ET.Element, y: float, attrib: dict[str, object]) -> ET.Element:
    attrib = dict(attrib)
    attrib["transform"] = f"translate(0,{svg.num(y)})"
    group = svg.sub(parent, "g", attrib)
    # the band the page paints when this row is the current step
    svg.sub(
        group,
        "rect",
        {
            "class": "highlight",
            "x": 0,
            "y": 7 - ROW,  # the label above the line and the line itself
            "width": "100%",
            "height": ROW,
        },
    )
    return group


def _arrow(group: ET.Element, x1: float, x2: float, label: str, refused: bool, marker: str) -> None:
    end = x2 - 2 if x2 > x1 else x2 + 2
    svg.sub(
        group,
        "line",
        {
            "x1": x1,
            "y1": 0,
            "x2": end,
            "y2": 0,
            "marker-end": f"url(#{marker}{'-refused' if refused else ''})",
        },
    )
    svg.sub(group, "text", {"class": "label", "x": min(x1, x2) + 8, "y": -5}, label)


def _note(group: ET.Element, x: float, label: str) -> None:
    width = svg.text_width(label) + 12
    svg.sub(
        group,
        "rect",
        {
            "class": "box",
            "x": x - width / 2,
            "y": -NOTE_HEIGHT / 2,
            "width": width,
            "height": NOTE_HEIGHT,
            "rx": 4,
        },
    )
    svg.sub(group, "text", {"class": "label", "x": x, "y": 4}, label)


def _label(message: Message) -> str:
    return (
        f"✗ {message.label}"
        if message.refused and not message.label.startswith("✗")
        else message.label
    )


def _message(parent: ET.Element, layout: _Layout, message: Message, y: float, hidden: bool) -> None:
    classes = ["message", f"kind-{message.kind.value}"]
    if message.is_note:
        classes.append("note")
    if message.refused:
        classes.append("refused")
    if message.group is not None:
        classes.append("member")
    attrib: dict[str, object] = {
        "class": " ".join(classes),
        "id": f"step-{message.step}",
        "data-step": message.step,
        "data-kind": message.kind.value,
        "data-from": message.source,
        "data-to": message.target,
        "data-t": message.t,
        "data-event": message.event,
    }
    if message.group is not None:
        attrib["data-group"] = message.group
    if hidden:
        attrib["display"] = "none"
    group = _row_group(parent, y, attrib)
    svg.sub(group, "text", {"class": "time", "x": LEFT - 10, "y": 4}, f"{message.t / 1e6:.3f}")
    x1, x2 = layout.x[message.source], layout.x[message.target]
    if message.is_note:
        _note(group, x1, _label(message))
    else:
        _arrow(group, x1, x2, _label(message), message.refused, "arrow")


def _summary(
    parent: ET.Element, layout: _Layout, group: CallGroup, first: Message, y: float
) -> None:
    attrib: dict[str, object] = {
        "class": "cc-group folded" + (" refused" if group.refused else ""),
        "data-group": group.number,
        "data-first": group.first_step,
        "data-last": group.last_step,
        "data-calls": group.calls,
    }
    g = _row_group(parent, y, attrib)
    summary = svg.sub(g, "g", {"class": "summary"})
    svg.sub(summary, "text", {"class": "time", "x": LEFT - 10, "y": 4}, f"{first.t / 1e6:.3f}")
    label = f"▸ {group.label}"
    _arrow(summary, layout.x[group.source], layout.x["rtas"], label, group.refused, "arrow-group")


def sequence_svg(handshake: Handshake, *, title: str = "CPU hotplug handshake") -> ET.Element:
    """The diagram as an ``<svg>`` element (groups folded)."""
    layout = _Layout(handshake)
    groups = {g.number: g for g in handshake.groups}
    rows: list[tuple[Message, float, bool]] = []
    summaries: list[tuple[CallGroup, Message, float]] = []
    row = 0
    for message in handshake.messages:
        group = groups.get(message.group) if message.group is not None else None
        if group is not None and message.step == group.first_step:
            summaries.append((group, message, TOP + row * ROW))
            row += 1
        if group is not None:
            rows.append((message, TOP + (row - 1) * ROW, True))
            continue
        rows.append((message, TOP + row * ROW, False))
        row += 1
    height = TOP + row * ROW + 20
    extents = [layout.extent(m) for m in handshake.messages]
    extents += [layout.x[g.source] + svg.text_width(g.label) + 30 for g in handshake.groups]
    width = max([layout.right, *extents]) + 20

    root = svg.svg_root(width, height, "sequence", title)
    # the page's relayout (unfolding a group) needs the row geometry
    root.set("data-top", svg.num(TOP))
    root.set("data-row", svg.num(ROW))
    svg.sub(root, "style", text=CSS)
    defs = svg.sub(root, "defs")
    svg.arrow_markers(
        defs,
        {
            "arrow": "#2d3e50",
            "arrow-refused": "#c0392b",
            "arrow-group": "#2c6e49",
            "arrow-group-refused": "#c0392b",
        },
    )
    svg.sub(root, "text", {"class": "caption", "x": 10, "y": 18}, title)
    # the rows' times are virtual milliseconds: say so where the time column starts
    svg.sub(root, "text", {"class": "time-unit", "x": LEFT - 10, "y": HEADER_TOP + 17}, "t (ms)")
    lanes = svg.sub(root, "g", {"class": "lanes"})
    for lane in handshake.lanes:
        x = layout.x[lane.key]
        g = svg.sub(lanes, "g", {"class": f"lane kind-{lane.kind.value}", "data-lane": lane.key})
        svg.sub(
            g,
            "rect",
            {
                "x": x - LANE_WIDTH / 2 + 8,
                "y": HEADER_TOP,
                "width": LANE_WIDTH - 16,
                "height": HEADER_HEIGHT,
                "rx": 6,
            },
        )
        svg.sub(g, "text", {"class": "title", "x": x, "y": HEADER_TOP + 17}, lane.title)
        if lane.subtitle:
            svg.sub(g, "text", {"class": "subtitle", "x": x, "y": HEADER_TOP + 32}, lane.subtitle)
        svg.sub(
            g,
            "line",
            {
                "class": "lifeline",
                "x1": x,
                "y1": HEADER_TOP + HEADER_HEIGHT,
                "x2": x,
                "y2": height - 10,
            },
        )
    body = svg.sub(root, "g", {"class": "rows"})
    pending = list(summaries)
    for message, y, hidden in rows:
        if pending and message.step == pending[0][0].first_step:
            group, first, gy = pending.pop(0)
            _summary(body, layout, group, first, gy)
        _message(body, layout, message, y, hidden)
    return root
