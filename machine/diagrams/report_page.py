"""A self-contained HTML page to step through a handshake: its diagram and the machine beside it.

One file, nothing fetched: the CSS, the script, both SVG pictures (the sequence
diagram and the connector state machine) and the data are inline. The data is one
JSON document computed here, in Python, from the trace: for every step (every
message of the sequence diagram) the state of every CPU connector, every vCPU, the
event queue, the latest RTAS call in words (with the event log as a labelled hex dump
and the configure-connector work area), and the device-tree fragment the guest has
walked so far. The script only shows it — Next/Prev, the arrow keys, a slider — and
lays out the diagram when a configure-connector group is unfolded; it decides nothing
about the protocol.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from machine.diagrams import svg, words
from machine.diagrams.messages import Handshake, Kind, read_handshake
from machine.diagrams.state_diagram import state_diagram_svg
from machine.diagrams.step_states import FragmentView, RtasView, Snapshot, snapshots_at
from machine.diagrams.svg_sequence import sequence_svg
from spapr.trace import TraceEvent

PAGE_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.35 "DejaVu Sans", Verdana, Arial, sans-serif; color: #1d2733;
  background: #fafbfc; }
header { position: sticky; top: 0; z-index: 2; background: #1f3350; color: #fff;
  padding: 8px 14px; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 15px; margin: 0 12px 0 0; }
header button { font: inherit; padding: 3px 12px; border-radius: 4px; border: 1px solid #9fb3d1;
  background: #e9f0fa; color: #1f3350; cursor: pointer; }
header input[type=range] { flex: 1; min-width: 200px; }
#step-label { font-family: monospace; min-width: 210px; }
#step-title { flex-basis: 100%; font-family: monospace; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
#step-title.refused { color: #ffb3a7; font-weight: bold; }
main { display: flex; align-items: flex-start; }
#diagram { flex: 1; overflow: auto; height: calc(100vh - 84px); background: #fff;
  border-right: 1px solid #d5dbe3; }
#panels { width: 620px; height: calc(100vh - 84px); overflow: auto; padding: 8px 12px; }
section { background: #fff; border: 1px solid #d5dbe3; border-radius: 6px; margin: 0 0 10px;
  padding: 6px 10px; }
section h2 { font-size: 13px; margin: 2px 0 6px; color: #1f3350; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eef1f5; font-size: 12px; }
th { color: #556; font-weight: normal; }
td.state { font-weight: bold; }
td.changed { background: #fff1a8; }
#drc-table td, #drc-table th.connector { font-family: monospace; font-size: 11.5px; }
ul { margin: 0; padding-left: 18px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; margin: 4px 0; }
dt { color: #556; }
dd { margin: 0; font-family: monospace; }
pre { margin: 2px 0 6px; font-size: 11.5px; background: #f6f8fa; padding: 4px 6px;
  overflow-x: auto; }
.region { font-size: 11px; color: #556; margin-top: 4px; }
.refused { color: #c0392b; font-weight: bold; }
.muted { color: #8a94a6; }
#state-machine svg { width: 100%; height: auto; }
"""

PAGE_JS = r"""
(function () {
  const data = JSON.parse(document.getElementById('steps-data').textContent);
  const steps = data.steps;
  const seq = document.querySelector('#diagram svg.sequence');
  const slider = document.getElementById('slider');
  let current = 1;

  function text(el, value) { el.textContent = value == null ? '' : String(value); return el; }
  function make(tag, cls, value) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (value !== undefined) text(el, value);
    return el;
  }
  function pairs(target, list) {
    target.replaceChildren();
    for (const [k, v] of list) { target.append(make('dt', '', k), make('dd', '', v)); }
  }

  function relayout() {
    const top = parseFloat(seq.dataset.top), row = parseFloat(seq.dataset.row);
    let y = top;
    const folded = new Set();
    for (const g of seq.querySelectorAll('g.rows > g')) {
      if (g.classList.contains('cc-group')) {
        g.setAttribute('transform', 'translate(0,' + y + ')');
        y += row;
        if (g.classList.contains('folded')) folded.add(g.dataset.group);
        continue;
      }
      const hidden = g.dataset.group && folded.has(g.dataset.group);
      if (hidden) { g.setAttribute('display', 'none'); continue; }
      g.removeAttribute('display');
      g.setAttribute('transform', 'translate(0,' + y + ')');
      y += row;
    }
    const height = y + 20;
    const box = seq.viewBox.baseVal;
    seq.setAttribute('height', height);
    seq.setAttribute('viewBox', '0 0 ' + box.width + ' ' + height);
    for (const line of seq.querySelectorAll('line.lifeline')) line.setAttribute('y2', height - 10);
  }

  function toggleGroup(g) {
    g.classList.toggle('folded');
    const label = g.querySelector('.summary text.label');
    const mark = g.classList.contains('folded') ? '▸' : '▾';
    if (label) label.textContent = mark + label.textContent.slice(1);
    relayout();
    show(current);
  }

  function rowOf(step) {
    const el = document.getElementById('step-' + step.step);
    if (step.group != null) {
      const group = seq.querySelector('g.cc-group[data-group="' + step.group + '"]');
      if (group && group.classList.contains('folded')) return group;
    }
    return el;
  }

  // one column per connector, one row per field (data.drc_fields: [key, heading])
  function showDrcs(step, previous) {
    const table = document.getElementById('drc-table');
    const before = new Map((previous ? previous.drcs : []).map(d => [d.index, d]));
    const head = make('tr');
    head.append(make('th', '', 'connector'));
    for (const d of step.drcs) {
      const th = make('th', 'connector', d.name + ' ' + d.index);
      th.dataset.index = d.index;
      head.append(th);
    }
    const body = make('tbody');
    for (const [key, heading] of data.drc_fields) {
      const tr = make('tr');
      tr.dataset.field = key;
      tr.append(make('th', '', heading));
      for (const d of step.drcs) {
        const td = make('td', key, d[key]);
        td.dataset.index = d.index;
        td.dataset.field = key;
        const old = before.get(d.index);
        if (previous && (!old || old[key] !== d[key])) td.classList.add('changed');
        tr.append(td);
      }
      body.append(tr);
    }
    const thead = make('thead');
    thead.append(head);
    table.replaceChildren(thead, body);
  }

  function showVcpus(step) {
    const body = document.querySelector('#vcpu-table tbody');
    body.replaceChildren();
    for (const v of step.vcpus) {
      const tr = make('tr');
      tr.dataset.vcpu = v.id;
      tr.append(make('td', 'id', 'vCPU ' + v.id), make('td', 'state', v.state));
      body.append(tr);
    }
  }

  function showQueue(step) {
    const list = document.getElementById('queue-list');
    list.replaceChildren();
    if (!step.queue.length) list.append(make('li', 'muted', 'no pending event'));
    for (const entry of step.queue) list.append(make('li', 'entry', entry));
  }

  function showRtas(step) {
    const call = step.rtas == null ? null : data.calls[step.rtas];
    const panel = document.getElementById('rtas-panel');
    panel.dataset.event = call ? call.event : '';
    text(document.getElementById('rtas-when'), call ? call.when : 'no RTAS call yet');
    const line = text(document.getElementById('rtas-call'), call ? call.line : '');
    line.className = call && call.refused ? 'refused' : '';
    text(document.getElementById('rtas-status'), call ? call.status : '');
    pairs(document.getElementById('rtas-args'), call ? call.args : []);
    pairs(document.getElementById('rtas-outputs'), call ? call.outputs : []);
    const log = document.getElementById('event-log');
    log.replaceChildren();
    if (call && call.event_log) {
      log.append(make('div', 'region', 'event log handed over in ' + call.event_log.buffer));
      for (const region of call.event_log.regions) {
        log.append(make('div', 'region', region.label), make('pre', 'hex', region.rows.join('\n')));
      }
      const fields = make('dl', 'log-fields');
      pairs(fields, call.event_log.fields);
      log.append(fields);
    }
    const wa = document.getElementById('work-area');
    pairs(wa, call && call.work_area ? call.work_area : []);
  }

  function showFragment(step) {
    const frag = step.fragment == null ? null : data.fragments[step.fragment];
    text(document.getElementById('fragment-info'),
         frag ? frag.info : 'no configure-connector walk yet');
    text(document.getElementById('fragment-text'), frag ? frag.lines.join('\n') : '');
  }

  function showStateMachine(step) {
    for (const mark of document.querySelectorAll('#state-machine [data-event]')) {
      mark.classList.toggle('future', parseInt(mark.dataset.event, 10) > step.event);
    }
    for (const edge of document.querySelectorAll('#state-machine [data-events]')) {
      const first = Math.min(...edge.dataset.events.split(' ').map(Number));
      edge.classList.toggle('not-yet', first > step.event);
    }
  }

  function show(k) {
    current = Math.max(1, Math.min(steps.length, k));
    const step = steps[current - 1];
    const previous = current > 1 ? steps[current - 2] : null;
    document.body.dataset.step = current;
    document.body.dataset.event = step.event;
    slider.value = current;
    text(document.getElementById('step-label'),
         'step ' + current + ' of ' + steps.length + ' · ' + step.t + ' ms');
    const title = text(document.getElementById('step-title'), step.label);
    title.className = step.refused ? 'refused' : '';
    for (const el of seq.querySelectorAll('.current')) el.classList.remove('current');
    const row = rowOf(step);
    if (row) {
      row.classList.add('current');
      row.scrollIntoView({block: 'nearest', inline: 'nearest'});
    }
    showDrcs(step, previous);
    showVcpus(step);
    showQueue(step);
    showRtas(step);
    showFragment(step);
    showStateMachine(step);
  }

  document.getElementById('prev').addEventListener('click', () => show(current - 1));
  document.getElementById('next').addEventListener('click', () => show(current + 1));
  slider.addEventListener('input', () => show(parseInt(slider.value, 10)));
  document.addEventListener('keydown', (ev) => {
    if (ev.target && ev.target.tagName === 'INPUT' && ev.target.type !== 'range') return;
    const moves = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};
    if (ev.key in moves) { show(current + moves[ev.key]); ev.preventDefault(); }
    else if (ev.key === 'Home') { show(1); ev.preventDefault(); }
    else if (ev.key === 'End') { show(steps.length); ev.preventDefault(); }
  });
  for (const g of seq.querySelectorAll('g.cc-group')) {
    g.addEventListener('click', () => toggleGroup(g));
  }
  for (const g of seq.querySelectorAll('g.message')) {
    g.addEventListener('click', () => show(parseInt(g.dataset.step, 10)));
  }
  relayout();
  show(1);
})();
"""


#: The connector panel's rows: the field of ``page_data``'s connectors and its heading.
DRC_FIELDS = [
    ["state", "logical state"],
    ["isolation", "isolation (9001)"],
    ["allocation", "allocation (9003)"],
    ["indicator", "dr-indicator (9002)"],
    ["sense", "entity sense"],
    ["attached", "device attached"],
    ["unplug", "unplug requested"],
    ["last", "last operation"],
]


def _ms(t: int) -> str:
    return f"{t / 1e6:.3f}"


def _call_data(rtas: RtasView, step: int | None) -> dict[str, Any]:
    call = rtas.words
    where = f"step {step} · " if step is not None else ""
    out: dict[str, Any] = {
        "event": rtas.event,
        "when": f"{where}{_ms(rtas.t)} ms · vCPU {rtas.vcpu}",
        "line": call.line(),
        "name": call.name,
        "status": call.status,
        "refused": call.refused,
        "args": [list(a) for a in call.args],
        "outputs": [list(o) for o in call.outputs],
        "event_log": None,
        "work_area": None,
    }
    if rtas.event_log is not None:
        log = rtas.event_log
        out["event_log"] = {
            "buffer": words.hex_number(log.buffer),
            "regions": [{"label": r.label, "rows": list(r.rows)} for r in log.regions],
            "fields": [list(f) for f in log.fields],
        }
    if rtas.work_area is not None:
        wa = rtas.work_area
        area = [["address", words.hex_number(wa.address)], ["drc", words.drc_label(wa.index)]]
        if wa.kind is not None:
            area.append([wa.kind, wa.item or ""])
        if wa.value is not None:
            area.append(["value", wa.value or "(empty)"])
        if wa.kind is None:
            area.append(["names", "nothing (the status says what happened)"])
        out["work_area"] = area
    return out


def _fragment_data(fragment: FragmentView) -> dict[str, Any]:
    state = "complete" if fragment.complete else "walked so far"
    info = f"{words.drc_label(fragment.index)}: {fragment.calls} calls, {state}"
    return {"info": info, "lines": list(fragment.lines)}


def _drc_data(snapshot: Snapshot) -> list[dict[str, str]]:
    out = []
    for d in snapshot.drcs:
        fmt = words.DRC_FIELD_WORDS
        last = d.last_op if d.last_code is None else f"{d.last_op} → {d.last_code}"
        out.append(
            {
                "index": words.hex_number(d.index),
                "name": d.name,
                "state": words.state_short(d.state),
                "isolation": fmt["isolation"](d.isolation),
                "allocation": fmt["allocation"](d.allocation),
                "indicator": fmt["indicator"](d.indicator),
                "sense": fmt["sense"](d.sense),
                "attached": fmt["attached"](d.attached),
                "unplug": fmt["unplug_requested"](d.unplug_requested),
                "last": last,
            }
        )
    return out


def page_data(events: Sequence[TraceEvent], handshake: Handshake) -> dict[str, Any]:
    """Everything the page shows, step by step (JSON-ready)."""
    messages = handshake.messages
    snapshots = snapshots_at(events, [m.event for m in messages])
    step_of_call = {m.drawn: m.step for m in messages if m.kind is Kind.RTAS}
    calls: dict[str, Any] = {}
    fragments: dict[str, Any] = {}
    steps = []
    for message, snapshot in zip(messages, snapshots, strict=True):
        rtas_key = None
        if snapshot.rtas is not None:
            rtas_key = str(snapshot.rtas.event)
            step = step_of_call.get(snapshot.rtas.event)
            calls.setdefault(rtas_key, _call_data(snapshot.rtas, step))
        fragment_key = None
        if snapshot.fragment is not None:
            fragment_key = f"{snapshot.fragment.index}:{snapshot.fragment.calls}"
            fragments.setdefault(fragment_key, _fragment_data(snapshot.fragment))
        steps.append(
            {
                "step": message.step,
                "t": _ms(message.t),
                "event": message.event,
                "kind": message.kind.value,
                "label": message.label,
                "refused": message.refused,
                "group": message.group,
                "drcs": _drc_data(snapshot),
                "vcpus": [{"id": v, "state": s} for v, s in snapshot.vcpus],
                "queue": list(snapshot.queue),
                "rtas": rtas_key,
                "fragment": fragment_key,
            }
        )
    return {"steps": steps, "calls": calls, "fragments": fragments, "drc_fields": DRC_FIELDS}


def _json_for_script(data: Mapping[str, Any]) -> str:
    """JSON that cannot end its ``<script>`` element early."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def report_html(
    events: Sequence[TraceEvent], start: int, end: int, *, title: str = "CPU hotplug handshake"
) -> str:
    """The page for the window ``[start, end)`` of a trace."""
    handshake = read_handshake(events, start, end)
    if not handshake.messages:
        raise ValueError("the chosen window holds no message to step through")
    sequence = svg.to_text(sequence_svg(handshake, title=title), declaration=False)
    states = svg.to_text(state_diagram_svg(events, start, end), declaration=False)
    data = page_data(events, handshake)
    n = len(handshake.messages)
    head = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{head}</title>
<style>{PAGE_CSS}</style>
</head>
<body data-step="1">
<header>
  <h1>{head}</h1>
  <button id="prev" title="previous step (←)">◀ Prev</button>
  <button id="next" title="next step (→)">Next ▶</button>
  <input id="slider" type="range" min="1" max="{n}" value="1" aria-label="step">
  <span id="step-label"></span>
  <div id="step-title"></div>
</header>
<main>
  <div id="diagram">{sequence}</div>
  <div id="panels">
    <section id="drc-panel"><h2>CPU connectors</h2>
      <table id="drc-table"></table></section>
    <section id="vcpu-panel"><h2>vCPUs</h2>
      <table id="vcpu-table"><tbody></tbody></table></section>
    <section id="queue-panel"><h2>Event queue (pending)</h2><ul id="queue-list"></ul></section>
    <section id="rtas-panel"><h2>Latest RTAS call</h2>
      <div id="rtas-when" class="muted"></div>
      <pre id="rtas-call"></pre>
      <div>status: <b id="rtas-status"></b></div>
      <h2>arguments</h2><dl id="rtas-args"></dl>
      <h2>outputs</h2><dl id="rtas-outputs"></dl>
      <div id="event-log"></div>
      <h2>configure-connector work area</h2><dl id="work-area"></dl>
    </section>
    <section id="fragment-panel"><h2>Device-tree fragment walked</h2>
      <div id="fragment-info" class="muted"></div><pre id="fragment-text"></pre></section>
    <section id="state-machine"><h2>Connector state machine</h2>{states}</section>
  </div>
</main>
<script type="application/json" id="steps-data">{_json_for_script(data)}</script>
<script>{PAGE_JS}</script>
</body>
</html>
"""
