"""The RTAS v6 event log: QEMU's hotplug/EPOW logs byte for byte, and the guest's parser.

Expectations are built from the layout tables of protocol.md §5.3/§5.4 field by
field (offset, size, value), not from the encoder.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtas.errlog import (
    DecodedEventLog,
    EpowSection,
    EventLogEntry,
    EventLogError,
    HotplugAction,
    HotplugIdType,
    HotplugResource,
    HotplugSection,
    LogSummary,
    decode_event_log,
    epow_event,
    hotplug_event,
)

dates = st.tuples(st.integers(0, 9999), st.integers(1, 12), st.integers(1, 31))
times = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
u32 = st.integers(0, 0xFFFF_FFFF)


def bcd(n: int) -> int:
    return int(str(n), 16)


def put(buf: bytearray, offset: int, size: int, value: int | bytes) -> None:
    if isinstance(value, bytes):
        assert len(value) == size
        buf[offset : offset + size] = value
    else:
        buf[offset : offset + size] = value.to_bytes(size, "big")


def common_part(
    buf: bytearray, date: tuple[int, int, int], time: tuple[int, int, int], plid: int
) -> None:
    """v6 header and the PH section of §5.3 (offsets 8-71)."""
    year, month, day = date
    hour, minute, second = time
    put(buf, 8, 1, 0x86)
    put(buf, 10, 1, 0x8E)
    put(buf, 20, 4, b"IBM\0")
    put(buf, 24, 2, b"PH")
    put(buf, 26, 2, 48)
    put(buf, 32, 1, bcd(year // 100))
    put(buf, 33, 1, bcd(year % 100))
    put(buf, 34, 1, bcd(month))
    put(buf, 35, 1, bcd(day))
    put(buf, 36, 1, bcd(hour))
    put(buf, 37, 1, bcd(minute))
    put(buf, 38, 1, bcd(second))
    put(buf, 48, 1, b"H")
    put(buf, 51, 1, 3)
    put(buf, 64, 4, plid.to_bytes(4, "little"))  # host byte order on x86/ppc64le hosts
    put(buf, 72, 2, b"UH")
    put(buf, 74, 2, 24)


def expected_hotplug(
    resource: int,
    action: int,
    id_type: int,
    word1: int,
    word2: int,
    *,
    plid: int,
    date: tuple[int, int, int],
    time: tuple[int, int, int],
) -> bytes:
    """protocol.md §5.3, row by row."""
    buf = bytearray(116)
    put(buf, 0, 4, 0x063460E5)
    put(buf, 4, 4, 108)
    common_part(buf, date, time, plid)
    put(buf, 80, 1, 0x80)
    put(buf, 96, 2, b"HP")
    put(buf, 98, 2, 20)
    put(buf, 100, 1, 1)
    put(buf, 104, 1, resource)
    put(buf, 105, 1, action)
    put(buf, 106, 1, id_type)
    put(buf, 108, 4, word1)
    put(buf, 112, 4, word2)
    return bytes(buf)


def expected_epow(*, plid: int, date: tuple[int, int, int], time: tuple[int, int, int]) -> bytes:
    """protocol.md §5.4: summary 0x06340040, UH 0xA0/0xD0, EP section version 2."""
    buf = bytearray(116)
    put(buf, 0, 4, 0x06340040)
    put(buf, 4, 4, 108)
    common_part(buf, date, time, plid)
    put(buf, 80, 1, 0xA0)
    put(buf, 83, 1, 0xD0)
    put(buf, 96, 2, b"EP")
    put(buf, 98, 2, 20)
    put(buf, 100, 1, 2)
    put(buf, 104, 1, 3)  # SYSTEM_SHUTDOWN
    put(buf, 105, 1, 1)  # NORMAL
    put(buf, 106, 1, 1)  # PARTITION_SPECIFIC
    return bytes(buf)


# A CPU hot-add of DRC 0x10000002, PLID 0, on 2024-03-09 13:05:59, spelled out.
CPU_ADD_LITERAL = bytes.fromhex(
    "063460e5"
    "0000006c"  # summary, extended length 108
    "86"
    "00"
    "8e"
    "000000000000000000"
    "49424d00"  # v6 header
    "5048"
    "0030"
    "00"
    "00"
    "0000"  # PH: id, length 48, version, subtype, creator
    "20240309"
    "13055900"  # creation date / time, BCD
    "0000000000000000"
    "48"
    "0000"
    "03"
    "00000000"
    "0000000000000000"
    "00000000"
    "00000000"  # PLID 0, platform
    "5548"
    "0018"
    "00"
    "00"
    "0000"  # UH: id, length 24
    "80"
    "00"
    "00"
    "00"
    "00000000"
    "0000"
    "0000"
    "00000000"
    "4850"
    "0014"
    "01"
    "00"
    "0000"  # HP: id, length 20, version 1
    "01"
    "01"
    "02"
    "00"
    "10000002"
    "00000000"  # CPU, ADD, DRC_INDEX, index
)


def test_cpu_hot_add_literal() -> None:
    entry = hotplug_event(
        HotplugResource.CPU,
        HotplugAction.ADD,
        HotplugIdType.DRC_INDEX,
        drc_index=0x10000002,
        plid=0,
        date=(2024, 3, 9),
        time=(13, 5, 59),
    )
    assert len(CPU_ADD_LITERAL) == 116
    assert entry.to_bytes() == CPU_ADD_LITERAL
    assert entry.summary == 0x063460E5
    assert entry.extended_length == 108
    assert entry.extended == CPU_ADD_LITERAL[8:]


@given(
    action=st.sampled_from(HotplugAction),
    drc_index=u32,
    plid=u32,
    date=dates,
    time=times,
)
def test_cpu_hotplug_by_index_matches_the_table(
    action: HotplugAction,
    drc_index: int,
    plid: int,
    date: tuple[int, int, int],
    time: tuple[int, int, int],
) -> None:
    entry = hotplug_event(
        HotplugResource.CPU,
        action,
        HotplugIdType.DRC_INDEX,
        drc_index=drc_index,
        plid=plid,
        date=date,
        time=time,
    )
    log = entry.to_bytes()
    assert log == expected_hotplug(1, action, 2, drc_index, 0, plid=plid, date=date, time=time)
    # QEMU's own rtas qtest reads the DRC index here.
    assert int.from_bytes(log[108:112], "big") == drc_index


@given(resource=st.sampled_from(HotplugResource), count=u32, drc_index=u32)
def test_count_and_count_indexed_union(
    resource: HotplugResource, count: int, drc_index: int
) -> None:
    date, time = (2000, 1, 1), (0, 0, 0)
    by_count = hotplug_event(
        resource,
        HotplugAction.REMOVE,
        HotplugIdType.DRC_COUNT,
        count=count,
        plid=9,
        date=date,
        time=time,
    )
    assert by_count.to_bytes() == expected_hotplug(
        resource, 2, 3, count, 0, plid=9, date=date, time=time
    )
    indexed = hotplug_event(
        resource,
        HotplugAction.ADD,
        HotplugIdType.DRC_COUNT_INDEXED,
        count=count,
        drc_index=drc_index,
        plid=9,
        date=date,
        time=time,
    )
    assert indexed.to_bytes() == expected_hotplug(
        resource, 1, 4, count, drc_index, plid=9, date=date, time=time
    )


def test_drc_name_leaves_the_union_zero() -> None:
    entry = hotplug_event(
        HotplugResource.PCI,
        HotplugAction.ADD,
        HotplugIdType.DRC_NAME,
        plid=1,
        date=(2023, 12, 31),
        time=(23, 59, 59),
    )
    assert entry.to_bytes() == expected_hotplug(
        5, 1, 1, 0, 0, plid=1, date=(2023, 12, 31), time=(23, 59, 59)
    )


@given(plid=u32, date=dates, time=times)
def test_epow_layout(plid: int, date: tuple[int, int, int], time: tuple[int, int, int]) -> None:
    entry = epow_event(plid=plid, date=date, time=time)
    assert entry.to_bytes() == expected_epow(plid=plid, date=date, time=time)
    assert entry.event_type == 0x40


def test_summary_fields_as_linux_reads_them() -> None:
    entry = hotplug_event(
        HotplugResource.CPU,
        HotplugAction.ADD,
        HotplugIdType.DRC_INDEX,
        drc_index=1,
        plid=0,
        date=(2024, 1, 1),
        time=(0, 0, 0),
    )
    # protocol.md §5.3 byte view: 0x06 / 0x34 / 0x60 / 0xE5.
    assert (entry.version, entry.severity, entry.disposition, entry.extended_present) == (
        6,
        1,
        2,
        True,
    )
    assert (entry.initiator, entry.target, entry.event_type) == (6, 0, 0xE5)
    assert entry.summary & LogSummary.TYPE_MASK == LogSummary.TYPE_HOTPLUG
    assert entry.summary & LogSummary.SEVERITY_MASK == LogSummary.SEVERITY_EVENT
    assert entry.summary & LogSummary.DISPOSITION_MASK == LogSummary.DISPOSITION_NOT_RECOVERED
    assert entry.summary & LogSummary.INITIATOR_MASK == LogSummary.INITIATOR_HOTPLUG


@pytest.mark.parametrize(
    ("kwargs", "id_type"),
    [
        ({"count": 1}, HotplugIdType.DRC_INDEX),
        ({"drc_index": 1}, HotplugIdType.DRC_COUNT),
        ({"drc_index": 1}, HotplugIdType.DRC_NAME),
        ({"drc_index": 1 << 32}, HotplugIdType.DRC_INDEX),
        ({"count": -1}, HotplugIdType.DRC_COUNT),
    ],
)
def test_hotplug_event_refuses_values_it_cannot_carry(
    kwargs: dict[str, int], id_type: HotplugIdType
) -> None:
    with pytest.raises(ValueError):
        hotplug_event(
            HotplugResource.CPU,
            HotplugAction.ADD,
            id_type,
            plid=0,
            date=(2024, 1, 1),
            time=(0, 0, 0),
            **kwargs,
        )


@pytest.mark.parametrize(
    ("plid", "date", "time"),
    [
        (-1, (2024, 1, 1), (0, 0, 0)),
        (0, (2024, 13, 1), (0, 0, 0)),
        (0, (2024, 1, 0), (0, 0, 0)),
        (0, (2024, 1, 1), (24, 0, 0)),
    ],
)
def test_bad_plid_or_clock_refused(
    plid: int, date: tuple[int, int, int], time: tuple[int, int, int]
) -> None:
    with pytest.raises(ValueError):
        epow_event(plid=plid, date=date, time=time)


def test_entry_refuses_a_summary_wider_than_32_bits() -> None:
    with pytest.raises(ValueError):
        EventLogEntry(1 << 32, b"")


# Guest side


@given(
    resource=st.sampled_from(HotplugResource),
    action=st.sampled_from(HotplugAction),
    id_type=st.sampled_from(
        [HotplugIdType.DRC_INDEX, HotplugIdType.DRC_COUNT, HotplugIdType.DRC_COUNT_INDEXED]
    ),
    drc_index=u32,
    count=u32,
    plid=u32,
    date=dates,
    time=times,
    slack=st.binary(max_size=64),
)
def test_decode_round_trip(
    resource: HotplugResource,
    action: HotplugAction,
    id_type: HotplugIdType,
    drc_index: int,
    count: int,
    plid: int,
    date: tuple[int, int, int],
    time: tuple[int, int, int],
    slack: bytes,
) -> None:
    index_arg = 0 if id_type is HotplugIdType.DRC_COUNT else drc_index
    count_arg = 0 if id_type is HotplugIdType.DRC_INDEX else count
    entry = hotplug_event(
        resource,
        action,
        id_type,
        drc_index=index_arg,
        count=count_arg,
        plid=plid,
        date=date,
        time=time,
    )
    # The guest's buffer is bigger than the log (2048 bytes in Linux): trailing bytes are ignored.
    decoded = decode_event_log(entry.to_bytes() + slack)
    assert decoded == DecodedEventLog(
        summary=0x063460E5,
        extended_length=108,
        section_ids=("PH", "UH", "HP"),
        plid=plid,
        creation_date=date,
        creation_time=time,
        hotplug=HotplugSection(
            resource,
            action,
            id_type,
            None if id_type is HotplugIdType.DRC_COUNT else drc_index,
            None if id_type is HotplugIdType.DRC_INDEX else count,
        ),
        epow=None,
    )
    assert decoded.event_type == 0xE5


def test_decode_epow() -> None:
    decoded = decode_event_log(epow_event(plid=7, date=(2022, 2, 22), time=(2, 22, 22)).to_bytes())
    assert decoded.section_ids == ("PH", "UH", "EP")
    assert decoded.hotplug is None
    assert decoded.epow == EpowSection(
        sensor_value=3, event_modifier=1, extended_modifier=1, reason_code=0
    )
    assert (decoded.plid, decoded.creation_date, decoded.creation_time) == (
        7,
        (2022, 2, 22),
        (2, 22, 22),
    )
    assert decoded.event_type == 0x40


def test_decode_skips_unknown_sections() -> None:
    log = bytearray(
        expected_hotplug(1, 1, 2, 0x1000_0008, 0, plid=0, date=(2024, 1, 1), time=(0, 0, 0))
    )
    # Insert a 12-byte "XY" section between UH and HP and grow the extended length.
    extra = b"XY" + (12).to_bytes(2, "big") + bytes(8)
    log[96:96] = extra
    log[4:8] = (108 + 12).to_bytes(4, "big")
    decoded = decode_event_log(bytes(log))
    assert decoded.section_ids == ("PH", "UH", "XY", "HP")
    assert decoded.hotplug is not None
    assert decoded.hotplug.drc_index == 0x1000_0008


def test_decode_without_the_sections_it_looks_for() -> None:
    # Only the v6 header: a well-formed log with no sections.
    log = bytes.fromhex("063460e50000001086008e00000000000000000049424d00")
    decoded = decode_event_log(log)
    assert decoded.section_ids == ()
    assert (decoded.hotplug, decoded.epow, decoded.plid) == (None, None, None)


def valid_log() -> bytearray:
    return bytearray(
        expected_hotplug(1, 1, 2, 0x1000_0000, 0, plid=3, date=(2024, 5, 6), time=(7, 8, 9))
    )


def _short_header() -> bytes:
    return bytes(valid_log()[:7])


def _short_extended_length() -> bytes:
    log = valid_log()
    log[4:8] = (15).to_bytes(4, "big")
    return bytes(log)


def _truncated() -> bytes:
    return bytes(valid_log()[:115])


def _wrong_format() -> bytes:
    log = valid_log()
    log[10] = 0x8D
    return bytes(log)


def _wrong_company() -> bytes:
    log = valid_log()
    log[20:24] = b"IBN\0"
    return bytes(log)


def _zero_length_section() -> bytes:
    log = valid_log()
    log[74:76] = bytes(2)  # UH length 0: Linux's walk would spin for ever
    return bytes(log)


def _section_past_end() -> bytes:
    log = valid_log()
    log[98:100] = (21).to_bytes(2, "big")
    return bytes(log)


def _short_hp_section() -> bytes:
    log = valid_log()
    log[4:8] = (104).to_bytes(4, "big")
    log[98:100] = (16).to_bytes(2, "big")
    return bytes(log[:112])


def _unknown_resource() -> bytes:
    log = valid_log()
    log[104] = 0
    return bytes(log)


def _unknown_id_type() -> bytes:
    log = valid_log()
    log[106] = 9
    return bytes(log)


def _partial_section_header() -> bytes:
    log = valid_log()
    log[4:8] = (108 + 4).to_bytes(4, "big")
    return bytes(log) + b"ZZ\x00\x04"


@pytest.mark.parametrize(
    ("make_log", "message"),
    [
        (_short_header, "header"),
        (_short_extended_length, "v6 header"),
        (_truncated, "truncated"),
        (_wrong_format, "log format 13"),
        (_wrong_company, "company"),
        (_zero_length_section, "length 0"),
        (_section_past_end, "past the log end"),
        (_short_hp_section, "HP section"),
        (_unknown_resource, "HotplugResource"),
        (_unknown_id_type, "HotplugIdType"),
        (_partial_section_header, "section header"),
    ],
)
def test_malformed_logs(make_log: object, message: str) -> None:
    assert callable(make_log)
    with pytest.raises(EventLogError, match=message):
        decode_event_log(make_log())


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_event_log_error(data: bytes) -> None:
    try:
        decoded = decode_event_log(data)
    except EventLogError:
        return
    assert decoded.extended_length + 8 <= len(data)


@given(
    cuts=st.lists(st.tuples(st.integers(0, 115), st.integers(0, 255)), max_size=6),
    length=st.integers(0, 130),
)
def test_mutated_logs_decode_or_raise_event_log_error(
    cuts: list[tuple[int, int]], length: int
) -> None:
    log = valid_log()
    for offset, value in cuts:
        log[offset] = value
    try:
        decoded = decode_event_log(bytes(log[:length]))
    except EventLogError:
        return
    assert decoded.extended_length + 8 <= length
