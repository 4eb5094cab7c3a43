"""The pictures in a real browser: Debian's chromium, driven by Playwright.

The step-through page is opened from a file (nothing else is fetched) and stepped
through a whole add, a refused add, a remove and a refused allocate, one step at a
time. At every step what the page shows — each CPU connector's indicators, each
vCPU's state, the pending events, the latest RTAS call — must be what the trace says
after that step's event (folded here, independently of the page's own code); at the
host commands it must also be the live machine's state at the quiet point before. At
named steps the event log's hex dump, the work area and the walked fragment are held
to the trace's bytes. Screenshots must not be blank.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from diagram_runs import CORE2_DRC, Run, hotplug_run
from png_pixels import decode_png, distinct_colours, ink_fraction

from machine.diagrams import svg
from machine.diagrams.messages import read_handshake
from machine.diagrams.report_page import report_html
from machine.diagrams.state_diagram import state_diagram_svg
from machine.diagrams.svg_sequence import sequence_svg
from machine.diagrams.trace_window import TraceWindow, window_bounds
from rtas.codes import ConfigureConnector

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.chromium

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

SCRAPE = """() => {
  const drcs = {};
  for (const td of document.querySelectorAll('#drc-table td[data-index]')) {
    (drcs[td.dataset.index] ||= {})[td.dataset.field] = td.textContent;
  }
  const vcpus = {};
  for (const tr of document.querySelectorAll('#vcpu-table tr[data-vcpu]')) {
    vcpus[tr.dataset.vcpu] = tr.querySelector('td.state').textContent;
  }
  const pairs = (id) => {
    const dts = [...document.querySelectorAll('#' + id + ' dt')];
    return Object.fromEntries(dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent]));
  };
  const current = document.querySelector('svg.sequence .current');
  return {
    step: Number(document.body.dataset.step),
    event: Number(document.body.dataset.event),
    drcs, vcpus,
    queue: [...document.querySelectorAll('#queue-list li.entry')].map(li => li.textContent),
    rtasEvent: document.getElementById('rtas-panel').dataset.event,
    rtasCall: document.getElementById('rtas-call').textContent,
    hex: [...document.querySelectorAll('#event-log pre.hex')].map(p => p.textContent),
    logFields: Object.fromEntries([...document.querySelectorAll('#event-log dl dt')]
      .map(dt => [dt.textContent, dt.nextElementSibling.textContent])),
    workArea: pairs('work-area'),
    fragment: document.getElementById('fragment-text').textContent,
    current: current ? (current.id || 'group-' + current.dataset.group) : null,
  };
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    events = hotplug_run().events
    start, end = window_bounds(events, TraceWindow())
    path = tmp_path_factory.mktemp("page") / "report.html"
    path.write_text(report_html(events, start, end))
    return path


@pytest.fixture
def page(browser: Any, report: Path) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(report.as_uri())
    yield page
    assert errors == [], errors
    assert requests == [report.as_uri()], "the page fetched something besides itself"
    page.close()


#: The part of the window a screenshot keeps (decoding PNG rows in Python takes a while).
CLIP = {"x": 0, "y": 0, "width": 720, "height": 420}


def not_blank(png: bytes) -> None:
    pixels = decode_png(png)
    assert distinct_colours(pixels) > 16
    assert ink_fraction(pixels) > 0.02


# ----------------------------------------------------------- what the trace says


def expected_after(run: Run, event: int) -> dict[str, Any]:
    """The trace's facts after event ``event``, folded directly from the raw events."""
    drcs: dict[str, dict[str, str]] = {}
    vcpus: dict[str, str] = {}
    queue = 0
    rtas: int | None = None
    for i, e in enumerate(run.events[: event + 1]):
        f = e.fields
        if e.name == "drc_state":
            drcs[f"0x{f['index']:x}"] = {
                "state": f["new"].removeprefix("LOGICAL_"),
                "isolation": f["isolation"].lower(),
                "allocation": f["allocation"].lower(),
                "sense": f["sense"].lower(),
                "attached": "yes" if f["attached"] else "no",
                "unplug": "yes" if f["unplug_requested"] else "no",
            }
        elif e.name == "vcpu_added":
            vcpus[str(f["vcpu"])] = f["state"]
        elif e.name == "vcpu_state":
            vcpus[str(f["vcpu"])] = f["new"]
        elif e.name == "vcpu_removed":
            vcpus.pop(str(f["vcpu"]))
        elif e.name == "event_queue":
            queue = len(f["pending"])
        elif e.name == "rtas_call":
            rtas = i
    return {"drcs": drcs, "vcpus": vcpus, "queue": queue, "rtas": rtas}


def shown_drcs(shown: dict[str, Any]) -> dict[str, dict[str, str]]:
    keys = ("state", "isolation", "allocation", "sense", "attached", "unplug")
    return {index: {k: cells[k] for k in keys} for index, cells in shown["drcs"].items()}


def test_stepping_through_add_and_del_shows_the_traces_state(page: Any) -> None:
    run = hotplug_run()
    n = int(page.get_attribute("#slider", "max"))
    events = run.events
    start, end = window_bounds(events, TraceWindow())
    messages = read_handshake(events, start, end).messages
    assert n == len(messages)
    seen: list[dict[str, Any]] = []
    for k in range(1, n + 1):
        shown = page.evaluate(SCRAPE)
        assert shown["step"] == k
        expected = expected_after(run, shown["event"])
        assert shown_drcs(shown) == expected["drcs"], k
        assert shown["vcpus"] == expected["vcpus"], k
        assert len(shown["queue"]) == expected["queue"], k
        # the latest call made, even one before the window (the panel says when)
        assert shown["rtasEvent"] == ("" if expected["rtas"] is None else str(expected["rtas"]))
        assert shown["current"] is not None
        seen.append(shown)
        if k < n:
            page.click("#next")
    # at each host command the page shows the live machine of the quiet point before it
    commands = [s for s in seen if is_command(s, run)]
    assert len(commands) == 3
    for point, command in zip(run.checkpoints[:3], commands, strict=True):
        live = {
            f"0x{i:x}": (d["state"].removeprefix("LOGICAL_"), "yes" if d["attached"] else "no")
            for i, d in point.drcs.items()
        }
        shown = {i: (c["state"], c["attached"]) for i, c in command["drcs"].items()}
        assert shown == live, point.label
        assert command["vcpus"] == {str(v): s for v, s in point.vcpus.items()}, point.label
    last = run.checkpoints[-1]
    final = seen[-1]
    assert {i: c["state"] for i, c in final["drcs"].items()} == {
        f"0x{i:x}": d["state"].removeprefix("LOGICAL_") for i, d in last.drcs.items()
    }
    named_steps(run, seen)


def is_command(shown: dict[str, Any], run: Run) -> bool:
    return run.events[shown["event"]].name == "host_command"


def named_steps(run: Run, seen: list[dict[str, Any]]) -> None:
    """The event log, the work area and the fragment, against the trace's bytes."""
    events = run.events
    outputs = {
        i: e for i, e in enumerate(events) if e.name == "rtas_output"
    }  # what each call left in guest memory
    add_log = next(s for s in seen if s["rtasCall"].startswith("check-exception") and s["hex"])
    log = outputs[int(add_log["rtasEvent"]) + 1].fields["event_log"]
    dumped = "".join(row.split("  ", 1)[1] for block in add_log["hex"] for row in block.split("\n"))
    assert dumped.replace(" ", "") == log
    assert add_log["logFields"]["action"] == "add"
    assert add_log["logFields"]["drc index"] == f"CPU 2 (0x{CORE2_DRC:x})"
    calls = {s["rtasEvent"]: s for s in seen if s["rtasCall"].startswith("ibm,configure-connector")}
    walk = list(calls.values())  # the step of each call (a note inside the walk shows it too)
    items = [
        outputs[int(s["rtasEvent"]) + 1].fields for s in walk if int(s["rtasEvent"]) + 1 in outputs
    ]
    middle = walk[len(walk) // 2]
    out = outputs[int(middle["rtasEvent"]) + 1].fields
    assert middle["workArea"]["property"] == out["item"]
    assert middle["workArea"]["drc"] == f"CPU 2 (0x{CORE2_DRC:x})"
    done = next(
        s for s in walk if s["rtasCall"].endswith(f"→ {int(ConfigureConnector.SUCCESS)} success")
    )
    names = [f["item"] for f in items if f["kind"] is not None]
    lines = done["fragment"].splitlines()
    assert lines[0] == f"{names[0]} {{" and lines[-1] == "};"
    assert [line.strip().split(" ", 1)[0].rstrip(";") for line in lines[1:-1]] == names[1:]
    assert done["drcs"][f"0x{CORE2_DRC:x}"]["state"] == "CONFIGURED"


def test_keys_slider_and_unfolding(page: Any) -> None:
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(SCRAPE)["step"] == 3
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(SCRAPE)["step"] == 2
    page.keyboard.press("End")
    n = int(page.get_attribute("#slider", "max"))
    assert page.evaluate(SCRAPE)["step"] == n
    page.fill("#slider", "5")
    page.dispatch_event("#slider", "input")
    assert page.evaluate(SCRAPE)["step"] == 5
    height = float(page.get_attribute("svg.sequence", "height"))
    hidden = page.locator("svg.sequence g.member[display=none]").count()
    assert hidden > 0
    page.click("svg.sequence g.cc-group")
    assert page.locator("svg.sequence g.member[display=none]").count() == 0
    assert float(page.get_attribute("svg.sequence", "height")) > height + 20 * hidden
    not_blank(page.screenshot(clip=CLIP))


def test_the_svg_files_render_in_chromium(browser: Any, tmp_path: Path) -> None:
    events = hotplug_run().events
    start, end = window_bounds(events, TraceWindow())
    pictures = {
        "sequence.svg": sequence_svg(read_handshake(events, start, end)),
        "states.svg": state_diagram_svg(events, start, end),
    }
    for name, root in pictures.items():
        path = tmp_path / name
        path.write_text(svg.to_text(root))
        page = browser.new_page(viewport={"width": 1200, "height": 700})
        page.goto(path.as_uri())
        not_blank(page.screenshot(clip=CLIP))
        page.close()
