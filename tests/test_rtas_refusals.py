"""Every refusal of the rtas package names what was wrong.

The machine registers services, the guest encodes calls, the event-log builder
takes a clock and indexes, and the guest's parser reads logs; each refuses bad
input with an exception whose message must point at the input (the token, the
field, the value, the offset in the buffer). The expectations are those inputs,
never the wording: each test checks that the message contains what it passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from rtas import GuestMemory, RtasCall, RtasDispatcher, encode_call
from rtas.errlog import (
    EventLogError,
    HotplugAction,
    HotplugIdType,
    HotplugResource,
    decode_event_log,
    epow_event,
    hotplug_event,
)

DATE = (2024, 5, 6)
TIME = (7, 8, 9)


def message(exc_type: type[Exception], action: Callable[[], object]) -> str:
    """The message of the ``exc_type`` that ``action`` raises."""
    with pytest.raises(exc_type) as info:
        action()
    return str(info.value)


def numbers(text: str) -> set[int]:
    """Decimal numbers in ``text`` (hex tokens removed first)."""
    return {int(n) for n in re.findall(r"-?\d+", re.sub(r"0x[0-9a-fA-F]+", "", text))}


def nothing(call: RtasCall[None]) -> None:
    """A service that does nothing."""


# -- the dispatcher's table --------------------------------------------------------


def test_registration_refusals_name_the_token_and_service() -> None:
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    assert "0x202d" in message(
        ValueError, lambda: dispatcher.register(0x202D, "ibm,nmi-interlock", nothing)
    )
    assert "0x1fff" in message(ValueError, lambda: dispatcher.register(0x1FFF, "x", nothing))
    text = message(ValueError, lambda: dispatcher.register(0x2006, "stop-self", nothing))
    assert "0x2006" in text and "'start-cpu'" in text and "'stop-self'" in text
    dispatcher.register(0x2006, "start-cpu", nothing)
    text = message(ValueError, lambda: dispatcher.register(0x2006, "start-cpu", nothing))
    assert "0x2006" in text and "start-cpu" in text


# -- encoding calls -------------------------------------------------------------------


def test_encoding_refusals_name_the_word_and_value() -> None:
    mem = GuestMemory(0x100)
    text = message(ValueError, lambda: encode_call(mem, 0, 1 << 32, [], 1))
    assert "token" in text and 1 << 32 in numbers(text)
    text = message(ValueError, lambda: encode_call(mem, 0, 0x2001, [1, -(1 << 31) - 1], 1))
    assert "argument" in text and -(1 << 31) - 1 in numbers(text)
    text = message(ValueError, lambda: encode_call(mem, 0, 0x2001, [], -1))
    assert "nret" in text and -1 in numbers(text)


# -- building event logs -----------------------------------------------------------


def cpu_event(**kwargs: object) -> object:
    fields: dict[str, object] = {
        "drc_index": 0x1000_0008,
        "plid": 1,
        "date": DATE,
        "time": TIME,
    }
    fields.update(kwargs)
    return hotplug_event(
        HotplugResource.CPU,
        HotplugAction.ADD,
        HotplugIdType.DRC_INDEX,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("field", "kwargs", "value"),
    [
        ("year", {"date": (10000, 1, 1)}, 10000),
        ("month", {"date": (2024, 13, 1)}, 13),
        ("day", {"date": (2024, 1, 32)}, 32),
        ("hour", {"time": (24, 0, 0)}, 24),
        ("minute", {"time": (0, 60, 0)}, 60),
        ("second", {"time": (0, 0, 61)}, 61),
        ("PLID", {"plid": 1 << 32}, 1 << 32),
        ("DRC index", {"drc_index": -1}, -1),
    ],
)
def test_event_values_out_of_range_are_named(
    field: str, kwargs: dict[str, object], value: int
) -> None:
    text = message(ValueError, lambda: cpu_event(**kwargs))
    assert field in text
    assert value in numbers(text)


def test_the_count_and_unused_union_values_are_named() -> None:
    def count_event(id_type: HotplugIdType, **kwargs: int) -> object:
        return hotplug_event(
            HotplugResource.CPU,
            HotplugAction.ADD,
            id_type,
            plid=0,
            date=DATE,
            time=TIME,
            **kwargs,
        )

    text = message(ValueError, lambda: count_event(HotplugIdType.DRC_COUNT, count=1 << 32))
    assert "count" in text and 1 << 32 in numbers(text)
    text = message(ValueError, lambda: count_event(HotplugIdType.DRC_NAME, drc_index=77))
    assert "DRC_NAME" in text and 77 in numbers(text)
    text = message(ValueError, lambda: count_event(HotplugIdType.DRC_INDEX, count=5))
    assert "DRC_INDEX" in text and 5 in numbers(text)


def test_epow_clock_refusals_are_named() -> None:
    text = message(ValueError, lambda: epow_event(plid=0, date=(2024, 2, 0), time=TIME))
    assert "day" in text and 0 in numbers(text)


# -- parsing event logs ----------------------------------------------------------------


def epow_log() -> bytearray:
    return bytearray(epow_event(plid=0, date=DATE, time=TIME).to_bytes())


def test_a_short_epow_section_is_reported_with_its_offset_and_length() -> None:
    log = epow_log()
    log[98:100] = (16).to_bytes(2, "big")  # EP at buffer offset 96 claims 16 bytes
    del log[112:116]
    log[4:8] = (104).to_bytes(4, "big")
    text = message(EventLogError, lambda: decode_event_log(bytes(log)))
    assert "EP" in text and {96, 16} <= numbers(text)


def test_section_walk_refusals_carry_the_offsets() -> None:
    log = epow_log()
    log[74:76] = (4).to_bytes(2, "big")  # UH at 72 shorter than a section header
    text = message(EventLogError, lambda: decode_event_log(bytes(log)))
    assert {72, 4} <= numbers(text)
    log = epow_log()
    log[98:100] = (24).to_bytes(2, "big")  # EP at 96 running 4 bytes past the end (116)
    text = message(EventLogError, lambda: decode_event_log(bytes(log)))
    assert {96, 24, 116} <= numbers(text)
