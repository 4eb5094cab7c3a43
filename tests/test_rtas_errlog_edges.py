"""Event-log edges: clock limits, EPOW modifiers, and how the guest's parser walks sections.

Byte offsets are the buffer offsets of protocol.md §5.3/§5.4 (8-byte header, v6
header at 8, PH at 24, UH at 72, the event's section at 96). The creation date
and time are BCD (century, year, month, day / hour, minute, second), so a year
needs four BCD digits and the clock fields their calendar ranges (a leap second
included). The parser's rules are Linux's get_pseries_errorlog walk: sections
from offset 24, each as long as its length field says, the first of each id wins.
"""

from __future__ import annotations

import pytest

from rtas.errlog import (
    EpowAction,
    EpowExtendedModifier,
    EpowModifier,
    EpowSection,
    EventLogError,
    HotplugAction,
    HotplugIdType,
    HotplugResource,
    decode_event_log,
    epow_event,
    hotplug_event,
)

DATE = (2024, 2, 29)
TIME = (23, 59, 58)


def cpu_add(
    plid: int = 5, date: tuple[int, int, int] = DATE, time: tuple[int, int, int] = TIME
) -> bytes:
    """QEMU's CPU hot-add log for DRC 0x10000008."""
    entry = hotplug_event(
        HotplugResource.CPU,
        HotplugAction.ADD,
        HotplugIdType.DRC_INDEX,
        drc_index=0x1000_0008,
        plid=plid,
        date=date,
        time=time,
    )
    return entry.to_bytes()


def with_sections(log: bytes, *sections: bytes, at: int = 96) -> bytes:
    """Insert whole sections at buffer offset ``at`` and grow the extended length."""
    out = bytearray(log)
    blob = b"".join(sections)
    out[at:at] = blob
    out[4:8] = (int.from_bytes(out[4:8], "big") + len(blob)).to_bytes(4, "big")
    return bytes(out)


def section(ident: bytes, length: int, fill: int = 0) -> bytes:
    """A section: 2-byte id, 2-byte length, then ``length - 4`` bytes of ``fill``."""
    return ident + length.to_bytes(2, "big") + bytes([fill]) * (length - 4)


# -- the creation clock -----------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "time", "date_bytes", "time_bytes"),
    [
        ((9999, 12, 31), (23, 59, 60), "99991231", "23596000"),
        ((0, 1, 1), (0, 0, 0), "00000101", "00000000"),
        ((2000, 2, 29), (12, 30, 45), "20000229", "12304500"),
    ],
)
def test_clock_limits_are_encoded_in_bcd(
    date: tuple[int, int, int], time: tuple[int, int, int], date_bytes: str, time_bytes: str
) -> None:
    log = cpu_add(date=date, time=time)
    assert log[32:36].hex() == date_bytes
    assert log[36:40].hex() == time_bytes
    decoded = decode_event_log(log)
    assert (decoded.creation_date, decoded.creation_time) == (date, time)


@pytest.mark.parametrize(
    ("date", "time"),
    [
        ((10000, 1, 1), TIME),
        ((-1, 1, 1), TIME),
        ((2024, 0, 1), TIME),
        ((2024, 13, 1), TIME),
        ((2024, 1, 0), TIME),
        ((2024, 1, 32), TIME),
        (DATE, (24, 0, 0)),
        (DATE, (-1, 0, 0)),
        (DATE, (0, 60, 0)),
        (DATE, (0, -1, 0)),
        (DATE, (0, 0, 61)),
        (DATE, (0, 0, -1)),
    ],
)
def test_clock_values_bcd_cannot_carry_are_refused(
    date: tuple[int, int, int], time: tuple[int, int, int]
) -> None:
    with pytest.raises(ValueError):
        cpu_add(date=date, time=time)
    with pytest.raises(ValueError):
        epow_event(plid=0, date=date, time=time)


@pytest.mark.parametrize("plid", [0, 0x01020304, 0xFFFF_FFFF])
def test_plid_sits_in_host_byte_order(plid: int) -> None:
    log = cpu_add(plid=plid)
    assert log[64:68] == plid.to_bytes(4, "little")
    assert log[68:72] == bytes(4)
    assert decode_event_log(log).plid == plid


# -- EPOW -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "modifier", "extended"),
    [
        (EpowAction.SYSTEM_HALT, EpowModifier.CRITICAL, EpowExtendedModifier.SYSTEM_WIDE),
        (
            EpowAction.WARN_COOLING,
            EpowModifier.TEMPERATURE,
            EpowExtendedModifier.PARTITION_SPECIFIC,
        ),
        (EpowAction.POWER_OFF, EpowModifier.ON_UPS, EpowExtendedModifier.SYSTEM_WIDE),
    ],
)
def test_epow_fields_land_in_their_own_bytes(
    action: EpowAction, modifier: EpowModifier, extended: EpowExtendedModifier
) -> None:
    log = epow_event(
        plid=1, date=DATE, time=TIME, action=action, modifier=modifier, extended_modifier=extended
    ).to_bytes()
    assert log[96:98] == b"EP"
    assert log[104:108] == bytes([action, modifier, extended, 0])
    assert log[108:116] == bytes(8)
    assert decode_event_log(log).epow == EpowSection(
        sensor_value=action, event_modifier=modifier, extended_modifier=extended, reason_code=0
    )


# -- the guest's section walk -----------------------------------------------------


def test_a_header_only_section_ending_the_log_is_accepted() -> None:
    log = with_sections(cpu_add(), section(b"ZZ", 8), at=116)
    decoded = decode_event_log(log)
    assert decoded.section_ids == ("PH", "UH", "HP", "ZZ")
    assert decoded.hotplug is not None and decoded.hotplug.drc_index == 0x1000_0008


def test_a_log_without_a_private_header_has_no_clock_or_plid() -> None:
    log = bytearray(cpu_add())
    del log[24:72]  # drop PH
    log[4:8] = (108 - 48).to_bytes(4, "big")
    decoded = decode_event_log(bytes(log))
    assert decoded.section_ids == ("UH", "HP")
    assert (decoded.plid, decoded.creation_date, decoded.creation_time) == (None, None, None)
    assert decoded.hotplug is not None


def test_the_first_private_header_wins() -> None:
    second = bytearray(cpu_add(plid=0x55, date=(1999, 9, 9), time=(9, 9, 9))[24:72])
    log = with_sections(cpu_add(plid=0x11), bytes(second))
    decoded = decode_event_log(log)
    assert decoded.section_ids == ("PH", "UH", "PH", "HP")
    assert (decoded.plid, decoded.creation_date, decoded.creation_time) == (0x11, DATE, TIME)


def test_a_long_unknown_section_is_not_read_as_a_private_header() -> None:
    # 64 bytes of 0x77 (longer than a PH) before the real PH and after it.
    junk = section(b"QQ", 64, fill=0x77)
    log = with_sections(cpu_add(plid=0x11), junk, at=24)
    log = with_sections(log, junk, at=24 + 64 + 48)
    decoded = decode_event_log(log)
    assert decoded.section_ids == ("QQ", "PH", "QQ", "UH", "HP")
    assert (decoded.plid, decoded.creation_date, decoded.creation_time) == (0x11, DATE, TIME)


def test_a_private_header_too_short_to_hold_a_plid_is_skipped() -> None:
    short_ph = section(b"PH", 24, fill=0x33)
    log = with_sections(cpu_add(plid=0x11), short_ph, at=24)
    decoded = decode_event_log(log)
    assert decoded.section_ids == ("PH", "PH", "UH", "HP")
    assert decoded.plid == 0x11


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [(104, 0, "HotplugResource"), (105, 3, "HotplugAction"), (106, 9, "HotplugIdType")],
)
def test_an_unknown_hotplug_field_is_reported_at_its_buffer_offset(
    offset: int, value: int, field: str
) -> None:
    log = bytearray(cpu_add())
    log[offset] = value
    with pytest.raises(EventLogError) as info:
        decode_event_log(bytes(log))
    message = str(info.value)
    assert field in message
    assert f"offset {offset}" in message
    assert f"{value} " in message


def test_an_eight_byte_buffer_is_refused() -> None:
    """The 8-byte header alone cannot hold the 16-byte v6 header that must follow."""
    with pytest.raises(EventLogError):
        decode_event_log(cpu_add()[:8])
