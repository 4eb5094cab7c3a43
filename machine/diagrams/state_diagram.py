"""The CPU connector's state machine as SVG, drawn from spapr/drc.py's own table.

Nothing about the machine is written here: the states are ``machine.states``, the
arrows are the cells of ``machine.transitions`` that move (with their guards), plus
the end of a configure-connector walk (``machine.configurable`` → ``ready_state``);
under each state its implied indicators (``isolation_by_state``,
``allocation_by_state``, ``sense_by_state``) and the operations it answers without
moving, or refuses, with the code. So the picture cannot drift from the code.

Over it, a trace's ``drc_state`` events: every transition the window took is
highlighted and numbered in order (``#1``, ``#2``, ...); a stay or a refusal (the -3
of an allocate on an empty connector) is listed under its state, refusals in red
with ✗. Each taken mark carries ``data-seq``, ``data-event`` (its index in the
trace), ``data-index``, ``data-op``, ``data-from``, ``data-to`` and ``data-code``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import attrs

from machine.diagrams import svg, words
from rtas.codes import RtasStatus
from spapr.drc import LOGICAL, DrcMachine, DRCState, StateCause
from spapr.trace import TraceEvent

NODE_WIDTH = 200.0
NODE_HEIGHT = 58.0
COLUMN = 290.0
LEFT = 40.0
ROW_Y = 230.0
LINE = 15.0

CSS = """
svg.states text { font-size: 12px; fill: #1d2733; }
svg.states .caption { font-size: 13px; font-weight: bold; }
svg.states .state rect { fill: #fff3df; stroke: #b7791f; stroke-width: 1.5; }
svg.states .state.empty rect { stroke-dasharray: 5 3; }
svg.states .state .name { font-weight: bold; text-anchor: middle; }
svg.states .state .facts { font-size: 10px; fill: #556; text-anchor: middle; }
svg.states .edge path { fill: none; stroke: #8a94a6; stroke-width: 1.4; }
svg.states .edge text { font-size: 11px; text-anchor: middle; fill: #3c4656;
  paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg.states .edge.taken path { stroke: #d35400; stroke-width: 3; }
svg.states .edge.taken text { fill: #a04000; font-weight: bold; }
svg.states .edge.extra path { stroke-dasharray: 6 4; }
svg.states .edge .note { font-size: 10px; font-weight: normal; }
svg.states .table-line { font-size: 11px; fill: #556; }
svg.states .taken-line { font-size: 11px; fill: #a04000; font-weight: bold; }
svg.states .taken-line.refused { fill: #c0392b; }
svg.states .legend { font-size: 11px; fill: #556; }
svg.states .future { opacity: 0.25; }
svg.states .edge.taken.not-yet path { stroke: #8a94a6; stroke-width: 1.4; }
svg.states .edge.taken.not-yet text { fill: #3c4656; font-weight: normal; }
svg.states .edge.taken.not-yet .numbers { visibility: hidden; }
"""

#: ``drc_state`` causes that are not moves of the state machine (host bookkeeping).
_NOT_MOVES = {
    StateCause.REALIZE.value,
    StateCause.ATTACH.value,
    StateCause.UNPLUG_REQUEST.value,
    StateCause.UNPLUG_REJECTED.value,
    StateCause.RELEASE.value,
    StateCause.RELEASED.value,
    StateCause.SET_DR_INDICATOR.value,
}


@attrs.frozen
class Edge:
    """An arrow of the machine: from, to, its operation and a note (the guards)."""

    source: DRCState
    target: DRCState
    op: str
    note: str = ""


@attrs.frozen
class Taken:
    """One transition a trace took (or tried): its number and the ``drc_state`` facts."""

    seq: int
    event: int
    t: int
    index: int
    op: str
    source: str
    target: str
    code: int | None
    guard: str | None

    @property
    def refused(self) -> bool:
        return self.code is not None and self.code < 0


def machine_edges(machine: DrcMachine) -> list[Edge]:
    """The moving cells of the table, then the end of a configure-connector walk."""
    edges: list[Edge] = []
    for (state, op), transition in machine.transitions.items():
        if transition.to is None or transition.to == state:
            continue
        guards = f"[{', '.join(g.value for g in transition.guards)}]" if transition.guards else ""
        edges.append(Edge(state, transition.to, op.value, guards))
    for state in sorted(machine.configurable - {machine.ready_state}):
        note = "(configure-connector walk ends)"
        edges.append(Edge(state, machine.ready_state, StateCause.CONFIGURED.value, note))
    return edges


def taken_transitions(
    events: Sequence[TraceEvent], start: int, end: int, machine: DrcMachine = LOGICAL
) -> list[Taken]:
    """The machine's moves, stays and refusals in the window, numbered in order."""
    names = {state.name for state in machine.states}
    taken: list[Taken] = []
    for i in range(start, end):
        e = events[i]
        f = e.fields
        if e.name != "drc_state" or f["op"] in _NOT_MOVES or f["old"] not in names:
            continue
        taken.append(
            Taken(
                len(taken) + 1,
                i,
                e.t,
                f["index"],
                f["op"],
                f["old"],
                f["new"],
                f.get("code"),
                f.get("guard"),
            )
        )
    return taken


def _table_lines(machine: DrcMachine, state: DRCState) -> list[str]:
    """What a state does with the operations that do not move it (from the table)."""
    stays = [
        op.value
        for (s, op), t in machine.transitions.items()
        if s == state and t.to in (None, state) and t.code == RtasStatus.SUCCESS
    ]
    refuses = [
        f"{op.value} ({words.named(t.code, RtasStatus)})"
        for (s, op), t in machine.transitions.items()
        if s == state and t.code != RtasStatus.SUCCESS
    ]
    lines = ["stays on " + ", ".join(stays)] if stays else []
    return lines + [f"refuses {text}" for text in refuses]


def _facts(machine: DrcMachine, state: DRCState) -> str:
    parts = [words.words(machine.isolation_by_state[state].name)]
    if machine.allocation_by_state is not None:
        parts.append(words.words(machine.allocation_by_state[state].name))
    if machine.sense_by_state is not None:
        parts.append("sense " + words.words(machine.sense_by_state[state].name))
    return " · ".join(parts)


def _taken_attrib(mark: Taken, css: str) -> dict[str, object]:
    return {
        "class": css,
        "data-seq": mark.seq,
        "data-event": mark.event,
        "data-index": words.hex_number(mark.index),
        "data-op": mark.op,
        "data-from": mark.source,
        "data-to": mark.target,
        "data-code": "" if mark.code is None else mark.code,
    }


def state_diagram_svg(
    events: Sequence[TraceEvent] = (),
    start: int = 0,
    end: int | None = None,
    *,
    machine: DrcMachine = LOGICAL,
    title: str = "CPU connector (logical DRC) state machine",
) -> ET.Element:
    """The machine, with the window ``[start, end)`` of ``events`` drawn over it."""
    stop = len(events) if end is None else end
    states = sorted(machine.states)
    x = {s: LEFT + NODE_WIDTH / 2 + i * COLUMN for i, s in enumerate(states)}
    column = {s: i for i, s in enumerate(states)}
    taken = taken_transitions(events, start, stop, machine)
    table = {s: _table_lines(machine, s) for s in states}
    here = {s: [t for t in taken if t.source == s.name and t.source == t.target] for s in states}
    lines_below = max(len(table[s]) + len(here[s]) for s in states)
    # below the row: the backward arcs (the longest spans every column), then the lists
    below = ROW_Y + NODE_HEIGHT / 2 + (40 + 30 * (len(states) - 1)) / 2 + 50
    height = below + LINE * lines_below + 40
    width = LEFT + len(states) * COLUMN + 20
    root = svg.svg_root(width, height, "states", title)
    svg.sub(root, "style", text=CSS)
    defs = svg.sub(root, "defs")
    svg.arrow_markers(defs, {"head": "#8a94a6", "head-taken": "#d35400"})
    svg.sub(root, "text", {"class": "caption", "x": 10, "y": 18}, title)

    edges = machine_edges(machine)
    drawn = {(e.source.name, e.op, e.target.name) for e in edges}
    extra = {
        (t.source, t.op, t.target)
        for t in taken
        if t.source != t.target and (t.source, t.op, t.target) not in drawn
    }
    by_name = {s.name: s for s in states}
    all_edges = edges + [
        Edge(by_name[a], by_name[b], op, "(not in the table)")
        for a, op, b in sorted(extra)
        if a in by_name and b in by_name
    ]
    edge_layer = svg.sub(root, "g", {"class": "edges"})
    for edge in all_edges:
        marks = [
            t
            for t in taken
            if (t.source, t.op, t.target) == (edge.source.name, edge.op, edge.target.name)
        ]
        _edge(
            edge_layer,
            edge,
            x,
            column,
            marks,
            extra=(edge.source.name, edge.op, edge.target.name) in extra,
        )

    node_layer = svg.sub(root, "g", {"class": "states-layer"})
    for state in states:
        cx = x[state]
        css = "state empty" if state == machine.empty_state else "state"
        g = svg.sub(node_layer, "g", {"class": css, "data-state": state.name})
        svg.sub(
            g,
            "rect",
            {
                "x": cx - NODE_WIDTH / 2,
                "y": ROW_Y - NODE_HEIGHT / 2,
                "width": NODE_WIDTH,
                "height": NODE_HEIGHT,
                "rx": 10,
            },
        )
        svg.sub(
            g, "text", {"class": "name", "x": cx, "y": ROW_Y - 6}, words.state_short(state.name)
        )
        svg.sub(g, "text", {"class": "facts", "x": cx, "y": ROW_Y + 12}, _facts(machine, state))
        y = below
        left = cx - NODE_WIDTH / 2
        for line in table[state]:
            svg.sub(g, "text", {"class": "table-line", "x": left, "y": y}, line)
            y += LINE
        for mark in here[state]:
            text = f"#{mark.seq} {mark.op}"
            if mark.refused:
                guard = f", {mark.guard}" if mark.guard else ""
                code = words.named(mark.code or 0, RtasStatus)
                text = f"#{mark.seq} ✗ {mark.op} refused ({code}{guard})"
            else:
                text += ": stays"
            css = "taken-line refused" if mark.refused else "taken-line"
            svg.sub(g, "text", {**_taken_attrib(mark, css), "x": left, "y": y}, text)
            y += LINE
    legend = (
        f"empty state {words.state_short(machine.empty_state.name)} (dashed) · "
        f"ready state {words.state_short(machine.ready_state.name)} · "
        f"reset: to {words.state_short(machine.ready_state.name)} with a device, "
        f"to {words.state_short(machine.empty_state.name)} without · "
        "orange: taken in this trace, numbered in order · red ✗: refused"
    )
    svg.sub(root, "text", {"class": "legend", "x": 10, "y": height - 14}, legend)
    return root


def _edge(
    layer: ET.Element,
    edge: Edge,
    x: dict[DRCState, float],
    column: dict[DRCState, int],
    marks: list[Taken],
    *,
    extra: bool,
) -> None:
    """An arc between two states: forward arcs above the row, backward arcs below."""
    a, b = edge.source, edge.target
    span = abs(column[b] - column[a])
    forward = column[b] > column[a]
    offset = 28.0
    x1 = x[a] + (offset if forward else -offset)
    x2 = x[b] - (offset if forward else -offset)
    rise = 40 + 30 * span + (70 if extra else 0)
    if forward:
        y0 = ROW_Y - NODE_HEIGHT / 2
        yc = y0 - rise
    else:
        y0 = ROW_Y + NODE_HEIGHT / 2
        yc = y0 + rise
    css = ["edge"]
    if marks:
        css.append("taken")
    if extra:
        css.append("extra")
    attrib: dict[str, object] = {
        "class": " ".join(css),
        "data-from": a.name,
        "data-op": edge.op,
        "data-to": b.name,
    }
    if marks:  # the page greys an arrow out until the step that first takes it
        attrib["data-events"] = " ".join(str(m.event) for m in marks)
    g = svg.sub(layer, "g", attrib)
    marker = "head-taken" if marks else "head"
    mid, n = (x1 + x2) / 2, svg.num
    d = f"M{n(x1)},{n(y0)} Q{n(mid)},{n(yc)} {n(x2)},{n(y0)}"
    svg.sub(g, "path", {"d": d, "marker-end": f"url(#{marker})"})
    apex = (y0 + yc) / 2
    # stacked away from the arc: operation, its note, the numbers of the taken ones
    step = -13.0 if forward else 13.0
    y = apex - 6 if forward else apex + 14
    texts = [("note", edge.note), ("op", edge.op)]
    for part, text in texts if forward else texts[::-1]:
        if text:
            svg.sub(g, "text", {"class": part, "x": mid, "y": y}, text)
            y += step
    if marks:
        numbers = " ".join(f"#{m.seq}" for m in marks)
        t = svg.sub(g, "text", {"class": "numbers", "x": mid, "y": y}, numbers)
        t.set("data-seqs", " ".join(str(m.seq) for m in marks))
        for mark in marks:
            svg.sub(g, "desc", _taken_attrib(mark, "taken-mark"), f"#{mark.seq} {mark.op}")
