"""The RTAS ABI, both sides of it: guest memory, the argument-buffer convention,
the token table and dispatcher, return codes and the v6 event-log codec.

The machine (``spapr``) registers handlers with :class:`RtasDispatcher` and builds
event logs with :func:`hotplug_event` / :func:`epow_event`; the guest encodes calls
with :func:`encode_call`, reads rets with :func:`read_rets` and parses
check-exception logs with :func:`decode_event_log`.
"""

from rtas.call import (
    RTAS_ADDR_MASK,
    RTAS_CALL_HEADER_SIZE,
    RTAS_WORD_SIZE,
    RtasCall,
    call_buffer_size,
    encode_call,
    read_rets,
    rets_offset,
)
from rtas.dispatch import OBSERVED_RETS_MAX, RtasDispatcher, RtasHandler, RtasObserver
from rtas.errlog import (
    EPOW_EXTENDED_LENGTH,
    EVENT_LOG_HEADER_SIZE,
    HOTPLUG_EXTENDED_LENGTH,
    DecodedEventLog,
    EpowAction,
    EpowExtendedModifier,
    EpowModifier,
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
from rtas.memory import GuestMemory, GuestMemoryError

__all__ = [
    "EPOW_EXTENDED_LENGTH",
    "EVENT_LOG_HEADER_SIZE",
    "HOTPLUG_EXTENDED_LENGTH",
    "OBSERVED_RETS_MAX",
    "RTAS_ADDR_MASK",
    "RTAS_CALL_HEADER_SIZE",
    "RTAS_WORD_SIZE",
    "DecodedEventLog",
    "EpowAction",
    "EpowExtendedModifier",
    "EpowModifier",
    "EpowSection",
    "EventLogEntry",
    "EventLogError",
    "GuestMemory",
    "GuestMemoryError",
    "HotplugAction",
    "HotplugIdType",
    "HotplugResource",
    "HotplugSection",
    "LogSummary",
    "RtasCall",
    "RtasDispatcher",
    "RtasHandler",
    "RtasObserver",
    "call_buffer_size",
    "decode_event_log",
    "encode_call",
    "epow_event",
    "hotplug_event",
    "read_rets",
    "rets_offset",
]
