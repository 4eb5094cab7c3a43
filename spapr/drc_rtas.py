"""The RTAS calls that act on DR connectors: set-indicator, get-sensor-state and
ibm,configure-connector, exactly as QEMU 7.2 answers them.

Each handler decodes the call, looks the DRC up in a :class:`~spapr.drc.DrcTable`,
lets the DRC's state machine decide, and writes the PAPR codes (and, for
configure-connector, the work area) back into guest memory. Guest memory that
is not there behaves as in QEMU: a load reads 0 and a store is dropped, so a
guest mistake yields a return code, never a Python exception.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from rtas import RTAS_ADDR_MASK, GuestMemory, GuestMemoryError, RtasCall
from rtas.codes import CC_WORK_AREA_SIZE, ConfigureConnector, RtasStatus, SensorType
from rtas.tokens import RTAS_SERVICE_NAMES, RtasToken
from spapr.drc import DrcTable

# configure-connector work area (PAPR 13.5.3.5): byte offsets of the BE u32 fields.
CC_WA_INDEX = 0
CC_WA_NAME_OFFSET = 8
CC_WA_PROP_LEN = 12
CC_WA_PROP_OFFSET = 16
#: Where the name (then the property value) starts; also the value written at +8.
CC_WA_DATA = 20

_U32 = 0xFFFFFFFF
#: Work areas below this address are never changed by H_RTAS's address mask.
_NO_MASK = 1 << 60
#: Name offset, property length and value offset: the words at +8 of a property answer.
_PROP_WORDS = struct.Struct(">III")


def _load32(memory: GuestMemory, addr: int) -> int:
    """QEMU's rtas_ld: masked address, 0 when outside guest memory."""
    try:
        return memory.ld32(addr & RTAS_ADDR_MASK)
    except GuestMemoryError:
        return 0


def _store(memory: GuestMemory, addr: int, data: bytes) -> None:
    """cpu_physical_memory_write: the bytes outside guest memory are dropped."""
    memory.write_clipped(addr & RTAS_ADDR_MASK, data)


def _store32(memory: GuestMemory, addr: int, value: int) -> None:
    """QEMU's rtas_st on the work area."""
    _store(memory, addr, (value & _U32).to_bytes(4, "big"))


def _store_wa(memory: GuestMemory, wa: int, offset: int, data: bytes) -> None:
    """configure_connector_st: clip at the 4 KiB work-area end.

    QEMU computes ``MIN(len, 4096 - offset)`` in unsigned arithmetic, so an offset
    past 4096 (a name longer than 4075 bytes) clips nothing at all.
    """
    room = CC_WORK_AREA_SIZE - offset
    _store(memory, wa + offset, data if room < 0 else data[:room])


def _set_ret(call: RtasCall[Any], i: int, value: int) -> None:
    """rtas_st on rets[i]: a store outside guest memory is dropped, as in QEMU."""
    # (try/except: contextlib.suppress costs a context manager on every call)
    try:  # noqa: SIM105
        call.set_ret(i, value)
    except GuestMemoryError:
        pass


def rtas_set_indicator(drcs: DrcTable, call: RtasCall[Any]) -> None:
    """set-indicator (nargs 3, nret 1): args type, index, value; rets[0] status."""
    if call.nargs != 3 or call.nret != 1:
        _set_ret(call, 0, RtasStatus.PARAM_ERROR)
        return
    indicator, index, value = call.args[:3]
    drc = drcs.get(index)
    status: int
    if indicator == SensorType.ISOLATION_STATE:
        status = RtasStatus.NO_SUCH_INDICATOR if drc is None else drc.set_isolation_state(value)
    elif indicator == SensorType.DR_INDICATOR:
        status = RtasStatus.NO_SUCH_INDICATOR if drc is None else drc.set_dr_indicator(value)
    elif indicator == SensorType.ALLOCATION_STATE:
        status = RtasStatus.NO_SUCH_INDICATOR if drc is None else drc.set_allocation_state(value)
    else:
        status = RtasStatus.NOT_SUPPORTED
    _set_ret(call, 0, status)


def rtas_get_sensor_state(drcs: DrcTable, call: RtasCall[Any]) -> None:
    """get-sensor-state (nargs 2, nret 2): only 9003 dr-entity-sense.

    rets[1] is written on every path (0 on failure), even when nret is wrong.
    """
    status: int = RtasStatus.SUCCESS
    state = 0
    if call.nargs != 2 or call.nret != 2:
        status = RtasStatus.PARAM_ERROR
    else:
        sensor, index = call.args[:2]
        if sensor != SensorType.ENTITY_SENSE:
            drcs.trace.emit("spapr_rtas_get_sensor_state_not_supported", index=index, type=sensor)
            status = RtasStatus.NOT_SUPPORTED
        elif (drc := drcs.get(index)) is None:
            drcs.trace.emit("spapr_rtas_get_sensor_state_invalid", index=index)
            status = RtasStatus.PARAM_ERROR
        else:
            status, sense = drc.entity_sense()
            state = int(sense)
    _set_ret(call, 0, status)
    _set_ret(call, 1, state)


def rtas_ibm_configure_connector(drcs: DrcTable, call: RtasCall[Any]) -> None:
    """ibm,configure-connector (nargs 2, nret 1): one step of the fragment walk.

    The work area is at ``(args[1] << 32) | args[0]``; its word 0 names the DRC.
    A node answer writes the name offset and the name; a property answer also
    writes the value length, the value offset and the value after the name.
    """
    if call.nargs != 2 or call.nret != 1:
        _set_ret(call, 0, RtasStatus.PARAM_ERROR)
        return
    memory = call.memory
    wa = (call.args[1] << 32) | call.args[0]
    index = _load32(memory, wa + CC_WA_INDEX)
    drc = drcs.get(index)
    if drc is None:
        drcs.trace.emit("spapr_rtas_ibm_configure_connector_invalid", index=index)
        _set_ret(call, 0, RtasStatus.PARAM_ERROR)
        return
    response = drc.configure_connector_step()
    if response.name is not None:
        name = response.name.encode() + b"\0"
        if response.code == ConfigureConnector.NEXT_PROPERTY:
            value = response.value if response.value is not None else b""
            value_offset = CC_WA_DATA + len(name)
            if value_offset <= CC_WORK_AREA_SIZE and wa + value_offset + len(value) < _NO_MASK:
                # The name fits the work area, so the three words, the name and the
                # value are contiguous: one clipped store writes what the five below
                # would (nothing masked, the value cut at the work area's end).
                _store(
                    memory,
                    wa + CC_WA_NAME_OFFSET,
                    _PROP_WORDS.pack(CC_WA_DATA, len(value), value_offset)
                    + name
                    + value[: CC_WORK_AREA_SIZE - value_offset],
                )
            else:
                _store32(memory, wa + CC_WA_NAME_OFFSET, CC_WA_DATA)
                _store_wa(memory, wa, CC_WA_DATA, name)
                _store32(memory, wa + CC_WA_PROP_LEN, len(value))
                _store32(memory, wa + CC_WA_PROP_OFFSET, value_offset)
                _store_wa(memory, wa, value_offset, value)
        else:
            _store32(memory, wa + CC_WA_NAME_OFFSET, CC_WA_DATA)
            _store_wa(memory, wa, CC_WA_DATA, name)
    _set_ret(call, 0, response.code)


#: The DR services by token, for registration.
DRC_RTAS_HANDLERS: dict[RtasToken, Callable[[DrcTable, RtasCall[Any]], None]] = {
    RtasToken.SET_INDICATOR: rtas_set_indicator,
    RtasToken.GET_SENSOR_STATE: rtas_get_sensor_state,
    RtasToken.IBM_CONFIGURE_CONNECTOR: rtas_ibm_configure_connector,
}


def register_drc_rtas(
    register: Callable[[int, str, Callable[[RtasCall[Any]], None]], None], drcs: DrcTable
) -> None:
    """Install the three DR services with a dispatcher's ``register(token, name, handler)``."""
    for token, handler in DRC_RTAS_HANDLERS.items():
        register(token, RTAS_SERVICE_NAMES[token], _bind(handler, drcs))


def _bind(
    handler: Callable[[DrcTable, RtasCall[Any]], None], drcs: DrcTable
) -> Callable[[RtasCall[Any]], None]:
    def service(call: RtasCall[Any]) -> None:
        handler(drcs, call)

    service.__name__ = handler.__name__
    return service
