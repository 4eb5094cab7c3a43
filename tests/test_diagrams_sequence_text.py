"""The text sequence diagram (HMP ``trace diagram``): refusals marked, one number format.

The same call reads the same in the text diagram, the SVG and the page: all three print
through machine/diagrams/words.py, and the test holds them to the trace's facts.
"""

from __future__ import annotations

from diagram_runs import CORE3_DRC, hotplug_run

from machine.diagrams.messages import Kind, read_handshake
from machine.diagrams.report_page import page_data
from machine.diagrams.sequence_text import sequence_diagram
from machine.diagrams.trace_window import TraceWindow, window_bounds
from machine.diagrams.words import describe_call


def diagram() -> list[str]:
    events = hotplug_run().events
    since = next(e.t for e in events if e.name == "host_command")
    return sequence_diagram(events, since_ns=since)


def test_a_refused_device_add_is_not_an_ordinary_arrow() -> None:
    rows = [row for row in diagram() if "device_add" in row]
    assert len(rows) == 2
    assert rows[0].endswith("──────►")
    assert rows[1].endswith("──────✗ core 2 already populated")
    assert "id=again" in rows[1]


def test_a_refused_rtas_call_and_its_connector_refusal_are_marked() -> None:
    rows = diagram()
    (call,) = [row for row in rows if "◄───✗──" in row]
    assert call.endswith(
        f"[vcpu 0] set-indicator(9003 allocation-state, 0x{CORE3_DRC:x}, usable) = -3 param error"
    )
    (note,) = [row for row in rows if "✗ set-usable refused" in row]
    assert note.endswith(
        f"(drc 0x{CORE3_DRC:x}: ✗ set-usable refused: -3 param error, needs-device)"
    )


def test_the_xive_hot_plug_interrupt_has_its_row_before_the_guest_answers() -> None:
    """POWER9 runs XIVE: each source raised (spapr_xive_set_irq, val 1) is a row."""
    rows = diagram()
    events = hotplug_run().events
    since = next(e.t for e in events if e.name == "host_command")
    raised = [e for e in events if e.name == "spapr_xive_set_irq" and e.fields["val"]]
    drawn = [i for i, row in enumerate(rows) if row.endswith("irq 0x1001 ──────►")]
    assert len(drawn) == len([e for e in raised if e.t >= since]) == 2
    for i in drawn:
        assert "check-exception(0x500, 0x1001 hot-plug-events" in rows[i + 1]


def test_codes_sensors_and_indicators_are_named() -> None:
    text = "\n".join(diagram())
    assert "get-sensor-state(9003 entity-sense, 0x10000002) = 0 success; sense 2 unusable" in text
    assert "set-indicator(9001 isolation-state, 0x10000002, unisolated) = 0 success" in text
    assert "ibm,configure-connector(0x1001000, 0x0) = 3 next property  ×" in text
    assert "query-cpu-stopped-state(2) = 0 success; state 0 stopped" in text
    # the buffer length in decimal, the address in hex, as everywhere
    assert "0x1000000, 2048) = 0 success" in text


def test_one_format_in_the_text_diagram_the_svg_and_the_page() -> None:
    events = hotplug_run().events
    start, end = window_bounds(events, TraceWindow())
    handshake = read_handshake(events, start, end)
    data = page_data(events, handshake)
    text = "\n".join(diagram())
    rtas = [m for m in handshake.messages if m.kind is Kind.RTAS]
    for message in rtas:
        f = events[message.drawn].fields
        words = describe_call(f["name"], f["args"], f["rets"])
        assert f"{words.call} = {words.result}" in text
        assert message.label.removeprefix("✗ ").startswith(words.line())
        assert data["calls"][str(message.drawn)]["line"] == words.line()
