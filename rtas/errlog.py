"""RTAS event logs in PAPR's version-6 extended format: QEMU's builder, the guest's parser.

check-exception hands the guest an 8-byte header {summary, extended length}
followed by the extended log: a 16-byte v6 header and a chain of sections (each
starting with a 2-character id and its length). QEMU 7.2 builds two kinds:
hotplug events (sections PH, UH, HP) and the EPOW power-down (PH, UH, EP), both
108 bytes of extended log. :func:`hotplug_event` / :func:`epow_event` produce
them byte for byte; :func:`decode_event_log` reads them the way Linux's
get_pseries_errorlog does, but refuses malformed input with :class:`EventLogError`.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, TypeVar

import attrs


class HotplugResource(enum.IntEnum):
    """HP section byte 0: what kind of resource the event is about."""

    CPU = 1
    MEMORY = 2
    SLOT = 3
    PHB = 4
    PCI = 5
    PMEM = 6


class HotplugAction(enum.IntEnum):
    """HP section byte 1."""

    ADD = 1
    REMOVE = 2


class HotplugIdType(enum.IntEnum):
    """HP section byte 2: how the union after it names the connector(s)."""

    DRC_NAME = 1
    DRC_INDEX = 2
    DRC_COUNT = 3
    DRC_COUNT_INDEXED = 4


class EpowAction(enum.IntEnum):
    """EP section sensor value (low nibble): what the platform asks of the OS."""

    RESET = 0
    WARN_COOLING = 1
    WARN_POWER = 2
    SYSTEM_SHUTDOWN = 3
    SYSTEM_HALT = 4
    MAIN_ENCLOSURE = 5
    POWER_OFF = 7


class EpowModifier(enum.IntEnum):
    """EP section event modifier (for SYSTEM_SHUTDOWN)."""

    NORMAL = 1
    ON_UPS = 2
    CRITICAL = 3
    TEMPERATURE = 4


class EpowExtendedModifier(enum.IntEnum):
    """EP section extended modifier (section version 2)."""

    SYSTEM_WIDE = 0
    PARTITION_SPECIFIC = 1


class LogSummary:
    """Fields of the summary word, positioned as QEMU's RTAS_LOG_* constants."""

    VERSION_MASK: Final = 0xFF00_0000
    VERSION_6: Final = 0x0600_0000

    SEVERITY_MASK: Final = 0x00E0_0000
    SEVERITY_ALREADY_REPORTED: Final = 0x00C0_0000
    SEVERITY_FATAL: Final = 0x00A0_0000
    SEVERITY_ERROR: Final = 0x0080_0000
    SEVERITY_ERROR_SYNC: Final = 0x0060_0000
    SEVERITY_WARNING: Final = 0x0040_0000
    SEVERITY_EVENT: Final = 0x0020_0000
    SEVERITY_NO_ERROR: Final = 0x0000_0000

    DISPOSITION_MASK: Final = 0x0018_0000
    DISPOSITION_FULLY_RECOVERED: Final = 0x0000_0000
    DISPOSITION_LIMITED_RECOVERY: Final = 0x0008_0000
    DISPOSITION_NOT_RECOVERED: Final = 0x0010_0000

    EXTENDED_PRESENT: Final = 0x0004_0000

    INITIATOR_MASK: Final = 0x0000_F000
    INITIATOR_UNKNOWN: Final = 0x0000_0000
    INITIATOR_CPU: Final = 0x0000_1000
    INITIATOR_PCI: Final = 0x0000_2000
    INITIATOR_MEMORY: Final = 0x0000_4000
    INITIATOR_HOTPLUG: Final = 0x0000_6000

    TARGET_MASK: Final = 0x0000_0F00
    TARGET_UNKNOWN: Final = 0x0000_0000
    TARGET_CPU: Final = 0x0000_0100
    TARGET_PCI: Final = 0x0000_0200
    TARGET_MEMORY: Final = 0x0000_0400
    TARGET_HOTPLUG: Final = 0x0000_0600

    TYPE_MASK: Final = 0x0000_00FF
    TYPE_OTHER: Final = 0x00
    TYPE_RETRY: Final = 0x01
    TYPE_TCE_ERR: Final = 0x02
    TYPE_INTERN_DEV_FAIL: Final = 0x03
    TYPE_TIMEOUT: Final = 0x04
    TYPE_DATA_PARITY: Final = 0x05
    TYPE_ADDR_PARITY: Final = 0x06
    TYPE_CACHE_PARITY: Final = 0x07
    TYPE_ADDR_INVALID: Final = 0x08
    TYPE_ECC_UNCORR: Final = 0x09
    TYPE_ECC_CORR: Final = 0x0A
    TYPE_EPOW: Final = 0x40
    TYPE_HOTPLUG: Final = 0xE5


# v6 extended-log header (byte 0 flags, byte 2 format, company id).
V6_B0_VALID: Final = 0x80
V6_B0_NEW_LOG: Final = 0x04
V6_B0_BIGENDIAN: Final = 0x02
V6_B2_POWERPC_FORMAT: Final = 0x80
V6_B2_LOG_FORMAT_MASK: Final = 0x0F
V6_LOG_FORMAT_PLATFORM_EVENT: Final = 0x0E
V6_COMPANY_IBM: Final = 0x4942_4D00  # "IBM\0"

# Section ids: two ASCII characters read as a big-endian u16.
SECTION_ID_MAINA: Final = 0x5048  # "PH", private header
SECTION_ID_MAINB: Final = 0x5548  # "UH", user header
SECTION_ID_HOTPLUG: Final = 0x4850  # "HP"
SECTION_ID_EPOW: Final = 0x4550  # "EP"

#: Main-A creator id: the hypervisor.
CREATOR_HYPERVISOR: Final = b"H"
#: Main-B subsystem ids QEMU uses (hotplug / EPOW) and the EPOW event subtype.
MAINB_SUBSYSTEM_HOTPLUG: Final = 0x80
MAINB_SUBSYSTEM_EPOW: Final = 0xA0
MAINB_SUBTYPE_EPOW_SHUTDOWN: Final = 0xD0
#: Section versions QEMU writes.
HOTPLUG_SECTION_VERSION: Final = 1
EPOW_SECTION_VERSION: Final = 2

# Layouts (big-endian, packed). The Main-A PLID is a raw 4-byte field: QEMU
# stores it in host byte order, i.e. little-endian on the hosts it runs on.
_LOG_HEADER = struct.Struct(">II")
_V6_HEADER = struct.Struct(">BBB9sI")
_SECTION_HEADER = struct.Struct(">HH")
_MAINA = struct.Struct(">HHBBHII8sc2sB4s8s4s4s")
_MAINB = struct.Struct(">HHBBHBBBB4s2sH4s")
_HOTPLUG = struct.Struct(">HHBBHBBBBII")
_EPOW = struct.Struct(">HHBBHBBBBQ")

#: Size of the {summary, extended length} header before the extended log.
EVENT_LOG_HEADER_SIZE: Final = _LOG_HEADER.size
#: Size of the v6 header; sections start right after it.
V6_HEADER_SIZE: Final = _V6_HEADER.size
#: Size of a section's common header {id, length, version, subtype, creator}.
SECTION_HEADER_SIZE: Final = 8
#: Extended length of QEMU's hotplug and EPOW logs (both 108).
HOTPLUG_EXTENDED_LENGTH: Final = V6_HEADER_SIZE + _MAINA.size + _MAINB.size + _HOTPLUG.size
EPOW_EXTENDED_LENGTH: Final = V6_HEADER_SIZE + _MAINA.size + _MAINB.size + _EPOW.size
#: Buffer offset of the first section (header + v6 header).
FIRST_SECTION_OFFSET: Final = EVENT_LOG_HEADER_SIZE + V6_HEADER_SIZE

_U32_MAX = 0xFFFF_FFFF
_E = TypeVar("_E", bound=enum.IntEnum)


class EventLogError(ValueError):
    """An event log the guest cannot parse (truncated, wrong format, bad section chain)."""


class _SummaryFields:
    """Summary-word fields as the guest decodes them (Linux's rtas_error_log bytes)."""

    __slots__ = ()
    summary: int

    @property
    def version(self) -> int:
        """Byte 0: architectural version (6)."""
        return self.summary >> 24

    @property
    def severity(self) -> int:
        """3-bit severity (1 = EVENT)."""
        return (self.summary >> 21) & 0x7

    @property
    def disposition(self) -> int:
        """2-bit degree of recovery (2 = NOT_RECOVERED)."""
        return (self.summary >> 19) & 0x3

    @property
    def extended_present(self) -> bool:
        """Whether an extended log follows the header."""
        return bool(self.summary & LogSummary.EXTENDED_PRESENT)

    @property
    def initiator(self) -> int:
        """4-bit initiator (6 = hotplug)."""
        return (self.summary >> 12) & 0xF

    @property
    def target(self) -> int:
        """4-bit target of the failed operation."""
        return (self.summary >> 8) & 0xF

    @property
    def event_type(self) -> int:
        """Byte 3: event type (0xE5 hotplug, 0x40 EPOW)."""
        return self.summary & LogSummary.TYPE_MASK


def _check_u32(value: int, what: str) -> int:
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{what} {value} does not fit in 32 bits")
    return value


@attrs.frozen
class EventLogEntry(_SummaryFields):
    """One entry of QEMU's pending-event queue: the summary word and the extended log."""

    summary: int = attrs.field()
    extended: bytes = attrs.field(converter=bytes)

    @summary.validator
    def _check_summary(self, _attribute: attrs.Attribute[int], value: int) -> None:
        _check_u32(value, "summary")

    @property
    def extended_length(self) -> int:
        """Length of the extended log (the header's second word)."""
        return len(self.extended)

    def to_bytes(self) -> bytes:
        """What check-exception writes to the guest's buffer: header, then extended log."""
        return _LOG_HEADER.pack(self.summary, len(self.extended)) + self.extended


def _to_bcd(value: int) -> int:
    return ((value // 10) << 4) | (value % 10)


def _check_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"{what} {value} outside [{low}, {high}]")
    return value


def _v6_header() -> bytes:
    return _V6_HEADER.pack(
        V6_B0_VALID | V6_B0_NEW_LOG | V6_B0_BIGENDIAN,
        0,
        V6_B2_POWERPC_FORMAT | V6_LOG_FORMAT_PLATFORM_EVENT,
        b"",
        V6_COMPANY_IBM,
    )


def _maina(plid: int, date: tuple[int, int, int], time: tuple[int, int, int]) -> bytes:
    """The PH section: creation date/time in BCD from the guest RTC, and the PLID."""
    year, month, day = date
    hour, minute, second = time
    _check_range(year, 0, 9999, "year")
    _check_range(month, 1, 12, "month")
    _check_range(day, 1, 31, "day")
    _check_range(hour, 0, 23, "hour")
    _check_range(minute, 0, 59, "minute")
    _check_range(second, 0, 60, "second")
    _check_u32(plid, "PLID")
    creation_date = (
        _to_bcd(year // 100) << 24 | _to_bcd(year % 100) << 16 | _to_bcd(month) << 8 | _to_bcd(day)
    )
    creation_time = _to_bcd(hour) << 24 | _to_bcd(minute) << 16 | _to_bcd(second) << 8
    return _MAINA.pack(
        SECTION_ID_MAINA,
        _MAINA.size,
        0,
        0,
        0,
        creation_date,
        creation_time,
        b"",
        CREATOR_HYPERVISOR,
        b"",
        3,  # sections: PH, UH and the event's own
        b"",
        b"",
        plid.to_bytes(4, "little"),
        b"",
    )


def _mainb(subsystem: int, subtype: int) -> bytes:
    """The UH section (event severity 0: informational)."""
    return _MAINB.pack(
        SECTION_ID_MAINB, _MAINB.size, 0, 0, 0, subsystem, 0, 0, subtype, b"", b"", 0, b""
    )


def hotplug_event(
    resource: HotplugResource,
    action: HotplugAction,
    id_type: HotplugIdType,
    *,
    drc_index: int = 0,
    count: int = 0,
    plid: int,
    date: tuple[int, int, int],
    time: tuple[int, int, int],
) -> EventLogEntry:
    """A hotplug event as QEMU's spapr_hotplug_req_event queues it (108-byte extended log).

    ``date`` is (year, month, day) and ``time`` (hour, minute, second) of the
    guest RTC; ``plid`` is the machine's running log id. DRC_INDEX carries
    ``drc_index``, DRC_COUNT ``count``, DRC_COUNT_INDEXED both; DRC_NAME carries
    nothing (QEMU leaves the union zero).
    """
    resource = HotplugResource(resource)
    action = HotplugAction(action)
    id_type = HotplugIdType(id_type)
    _check_u32(drc_index, "DRC index")
    _check_u32(count, "count")
    if id_type is HotplugIdType.DRC_INDEX:
        words, unused = (drc_index, 0), count
    elif id_type is HotplugIdType.DRC_COUNT:
        words, unused = (count, 0), drc_index
    elif id_type is HotplugIdType.DRC_COUNT_INDEXED:
        words, unused = (count, drc_index), 0
    else:
        words, unused = (0, 0), drc_index | count
    if unused:
        raise ValueError(f"a {id_type.name} hotplug event carries no value for it: {unused}")
    hp = _HOTPLUG.pack(
        SECTION_ID_HOTPLUG,
        _HOTPLUG.size,
        HOTPLUG_SECTION_VERSION,
        0,
        0,
        resource,
        action,
        id_type,
        0,
        *words,
    )
    extended = _v6_header() + _maina(plid, date, time) + _mainb(MAINB_SUBSYSTEM_HOTPLUG, 0) + hp
    summary = (
        LogSummary.VERSION_6
        | LogSummary.SEVERITY_EVENT
        | LogSummary.DISPOSITION_NOT_RECOVERED
        | LogSummary.EXTENDED_PRESENT
        | LogSummary.INITIATOR_HOTPLUG
        | LogSummary.TYPE_HOTPLUG
    )
    return EventLogEntry(summary, extended)


def epow_event(
    *,
    plid: int,
    date: tuple[int, int, int],
    time: tuple[int, int, int],
    action: EpowAction = EpowAction.SYSTEM_SHUTDOWN,
    modifier: EpowModifier = EpowModifier.NORMAL,
    extended_modifier: EpowExtendedModifier = EpowExtendedModifier.PARTITION_SPECIFIC,
) -> EventLogEntry:
    """The EPOW event QEMU's spapr_powerdown_req queues (defaults: its normal shutdown)."""
    ep = _EPOW.pack(
        SECTION_ID_EPOW,
        _EPOW.size,
        EPOW_SECTION_VERSION,
        0,
        0,
        EpowAction(action),
        EpowModifier(modifier),
        EpowExtendedModifier(extended_modifier),
        0,
        0,  # reason code
    )
    extended = (
        _v6_header()
        + _maina(plid, date, time)
        + _mainb(MAINB_SUBSYSTEM_EPOW, MAINB_SUBTYPE_EPOW_SHUTDOWN)
        + ep
    )
    summary = (
        LogSummary.VERSION_6
        | LogSummary.SEVERITY_EVENT
        | LogSummary.DISPOSITION_NOT_RECOVERED
        | LogSummary.EXTENDED_PRESENT
        | LogSummary.TYPE_EPOW
    )
    return EventLogEntry(summary, extended)


# Guest side


@attrs.frozen
class HotplugSection:
    """The HP section as Linux's pseries_hp_errorlog holds it."""

    resource: HotplugResource
    action: HotplugAction
    id_type: HotplugIdType
    #: Set for DRC_INDEX and DRC_COUNT_INDEXED.
    drc_index: int | None
    #: Set for DRC_COUNT and DRC_COUNT_INDEXED.
    count: int | None


@attrs.frozen
class EpowSection:
    """The EP section's payload (raw bytes; Linux keeps the low nibble of the first two)."""

    sensor_value: int
    event_modifier: int
    extended_modifier: int
    reason_code: int


@attrs.frozen
class DecodedEventLog(_SummaryFields):
    """What the guest learns from an event log: summary fields and the sections it knows."""

    summary: int
    extended_length: int
    #: Ids of all sections, in chain order ("PH", "UH", "HP").
    section_ids: tuple[str, ...]
    #: Main-A PLID (read in QEMU's host byte order), creation date and time.
    plid: int | None
    creation_date: tuple[int, int, int] | None
    creation_time: tuple[int, int, int] | None
    hotplug: HotplugSection | None
    epow: EpowSection | None


def _from_bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0xF)


def _enum_field(kind: type[_E], value: int, offset: int) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise EventLogError(
            f"HP section: {value} at offset {offset} is not a {kind.__name__}"
        ) from None


def _decode_hotplug(buf: bytes, offset: int, length: int) -> HotplugSection:
    if length < _HOTPLUG.size:
        raise EventLogError(
            f"HP section at offset {offset} is {length} bytes, needs {_HOTPLUG.size}"
        )
    fields = _HOTPLUG.unpack_from(buf, offset)
    resource, action, id_type, word1, word2 = fields[5], fields[6], fields[7], fields[9], fields[10]
    data = offset + SECTION_HEADER_SIZE
    id_kind = _enum_field(HotplugIdType, id_type, data + 2)
    drc_index: int | None = None
    count: int | None = None
    if id_kind is HotplugIdType.DRC_INDEX:
        drc_index = word1
    elif id_kind is HotplugIdType.DRC_COUNT:
        count = word1
    elif id_kind is HotplugIdType.DRC_COUNT_INDEXED:
        count, drc_index = word1, word2
    return HotplugSection(
        _enum_field(HotplugResource, resource, data),
        _enum_field(HotplugAction, action, data + 1),
        id_kind,
        drc_index,
        count,
    )


def _decode_epow(buf: bytes, offset: int, length: int) -> EpowSection:
    if length < _EPOW.size:
        raise EventLogError(f"EP section at offset {offset} is {length} bytes, needs {_EPOW.size}")
    fields = _EPOW.unpack_from(buf, offset)
    return EpowSection(fields[5], fields[6], fields[7], fields[9])


def decode_event_log(buf: bytes | bytearray | memoryview) -> DecodedEventLog:
    """Parse an event log as a pseries guest does after check-exception.

    Checks what Linux's get_pseries_errorlog checks (extended length >= 16, log
    format 14, company "IBM\\0"), then walks the sections from offset 24 by their
    lengths. Also refuses what Linux would misread or loop on (a truncated
    buffer, a section shorter than its header or running past the log). Raises
    EventLogError, never IndexError.
    """
    data = bytes(buf)
    if len(data) < EVENT_LOG_HEADER_SIZE:
        raise EventLogError(
            f"event log is {len(data)} bytes, shorter than its {EVENT_LOG_HEADER_SIZE}-byte header"
        )
    summary, extended_length = _LOG_HEADER.unpack_from(data, 0)
    if extended_length < V6_HEADER_SIZE:
        raise EventLogError(
            f"extended log length {extended_length} is shorter than the "
            f"{V6_HEADER_SIZE}-byte v6 header"
        )
    end = EVENT_LOG_HEADER_SIZE + extended_length
    if len(data) < end:
        raise EventLogError(
            f"event log truncated: extended length {extended_length} needs {end} bytes, "
            f"buffer has {len(data)}"
        )
    _b0, _b1, b2, _reserved, company = _V6_HEADER.unpack_from(data, EVENT_LOG_HEADER_SIZE)
    log_format = b2 & V6_B2_LOG_FORMAT_MASK
    if log_format != V6_LOG_FORMAT_PLATFORM_EVENT:
        raise EventLogError(
            f"log format {log_format} is not {V6_LOG_FORMAT_PLATFORM_EVENT} (platform event)"
        )
    if company != V6_COMPANY_IBM:
        raise EventLogError(f"company id {company:#010x} is not IBM ({V6_COMPANY_IBM:#010x})")

    section_ids: list[str] = []
    plid: int | None = None
    creation_date: tuple[int, int, int] | None = None
    creation_time: tuple[int, int, int] | None = None
    hotplug: HotplugSection | None = None
    epow: EpowSection | None = None
    offset = FIRST_SECTION_OFFSET
    while offset < end:
        if offset + SECTION_HEADER_SIZE > end:
            raise EventLogError(f"section header at offset {offset} runs past the log end {end}")
        section_id, length = _SECTION_HEADER.unpack_from(data, offset)
        if length < SECTION_HEADER_SIZE:
            raise EventLogError(
                f"section at offset {offset} has length {length}, shorter than its header"
            )
        if offset + length > end:
            raise EventLogError(
                f"section at offset {offset} (length {length}) runs past the log end {end}"
            )
        section_ids.append(section_id.to_bytes(2, "big").decode("latin-1"))
        if section_id == SECTION_ID_MAINA and plid is None and length >= _MAINA.size:
            maina = _MAINA.unpack_from(data, offset)
            raw_date, raw_time, raw_plid = maina[5], maina[6], maina[13]
            plid = int.from_bytes(raw_plid, "little")
            creation_date = (
                _from_bcd(raw_date >> 24) * 100 + _from_bcd((raw_date >> 16) & 0xFF),
                _from_bcd((raw_date >> 8) & 0xFF),
                _from_bcd(raw_date & 0xFF),
            )
            creation_time = (
                _from_bcd(raw_time >> 24),
                _from_bcd((raw_time >> 16) & 0xFF),
                _from_bcd((raw_time >> 8) & 0xFF),
            )
        elif section_id == SECTION_ID_HOTPLUG and hotplug is None:
            hotplug = _decode_hotplug(data, offset, length)
        elif section_id == SECTION_ID_EPOW and epow is None:
            epow = _decode_epow(data, offset, length)
        offset += length
    return DecodedEventLog(
        summary,
        extended_length,
        tuple(section_ids),
        plid,
        creation_date,
        creation_time,
        hotplug,
        epow,
    )
