"""RTAS return codes, sensor/indicator types and the DR state values the guest sees.

One place for every number that crosses the RTAS boundary (PAPR names, QEMU 7.2
values). Several PAPR names share a value in QEMU (-3 is a parameter error, "not
supported" and "no such indicator" alike), so the enum keeps QEMU's aliases.
"""

from __future__ import annotations

import enum


class RtasStatus(enum.IntEnum):
    """Status word (rets[0]) of an RTAS call, as QEMU 7.2 returns it."""

    SUCCESS = 0
    NO_ERRORS_FOUND = 1
    HW_ERROR = -1
    BUSY = -2
    PARAM_ERROR = -3
    NOT_SUPPORTED = -3
    NO_SUCH_INDICATOR = -3
    NOT_AUTHORIZED = -9002
    SYSPARM_PARAM_ERROR = -9999


class SensorType(enum.IntEnum):
    """Sensor and indicator types used by DR (PAPR table 41)."""

    ISOLATION_STATE = 9001
    DR_INDICATOR = 9002
    ALLOCATION_STATE = 9003
    # get-sensor-state reads the entity sense through the allocation-state number.
    ENTITY_SENSE = 9003
    EPOW = 9


class IsolationState(enum.IntEnum):
    """Indicator 9001."""

    ISOLATED = 0
    UNISOLATED = 1


class AllocationState(enum.IntEnum):
    """Indicator 9003 (EXCHANGE and RECOVER exist in PAPR; QEMU refuses them)."""

    UNUSABLE = 0
    USABLE = 1
    EXCHANGE = 2
    RECOVER = 3


class DrIndicator(enum.IntEnum):
    """Indicator 9002 (physical DRCs only)."""

    INACTIVE = 0
    ACTIVE = 1
    IDENTIFY = 2
    ACTION = 3


class EntitySense(enum.IntEnum):
    """Sensor 9003 (dr-entity-sense)."""

    EMPTY = 0
    PRESENT = 1
    UNUSABLE = 2
    EXCHANGE = 3
    RECOVER = 4


class ConfigureConnector(enum.IntEnum):
    """ibm,configure-connector status values (PAPR names; QEMU never returns 1 or 5)."""

    SUCCESS = 0
    NEXT_SIBLING = 1
    NEXT_CHILD = 2
    NEXT_PROPERTY = 3
    PREV_PARENT = 4
    MORE_MEMORY = 5
    ERROR = -1
    CONTINUE = -2  # internal to QEMU's loop, never returned to the guest
    NOT_THIS_SYSTEM = -9001
    NOT_THIS_SLOT = -9002
    NOT_CONFIGURABLE = -9003


class CpuStoppedState(enum.IntEnum):
    """query-cpu-stopped-state rets[1] (QEMU returns only STOPPED or NOT_STOPPED)."""

    STOPPED = 0
    STOPPING = 1
    NOT_STOPPED = 2


class EventMask(enum.IntFlag):
    """check-exception / event-scan event-class masks (bit 0 is the MSB)."""

    INTERNAL_ERRORS = 0x80000000
    EPOW = 0x40000000
    RESERVED = 0x20000000
    HOT_PLUG = 0x10000000
    IO = 0x08000000


#: The H_RTAS hypercall number (KVMPPC_H_RTAS); r4 carries the argument buffer.
KVMPPC_H_RTAS = 0xF000
#: rtas-error-log-max advertised in /rtas, and the size of Linux's error buffer.
RTAS_ERROR_LOG_MAX = 2048
#: rtas-event-scan-rate advertised in /rtas.
RTAS_EVENT_SCAN_RATE = 1
#: Size of the RTAS blob the firmware instantiates (hv_rtas_size in SLOF).
RTAS_MIN_SIZE = 20
#: Size of the ibm,configure-connector work area (one 4 KiB page).
CC_WORK_AREA_SIZE = 4096
