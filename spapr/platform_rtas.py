"""The RTAS services QEMU 7.2 registers that are not part of the DR protocol.

A pseries guest sees every one of them in ``/rtas`` (the token list must equal
QEMU's), so each is registered here with QEMU's argument checks and return codes
where the service matters to a running guest (console, time of day, power off,
reboot, system parameters, os-term, power levels, quiesce). Services of devices
this emulator does not model (PCI config space, EEH, DDW, NVRAM, VIO TCE bypass)
answer as QEMU does when the addressed device does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rtas import RtasCall
from rtas.codes import RtasStatus
from rtas.tokens import RTAS_SERVICE_NAMES, RtasToken

#: ibm,get-system-parameter parameters QEMU answers.
SYSPARM_SPLPAR_CHARACTERISTICS = 20
SYSPARM_DIAGNOSTICS_RUN_MODE = 42
SYSPARM_UUID = 48
DIAGNOSTICS_RUN_MODE_DISABLED = 0
#: Power level QEMU reports for the live-insertion domain (-1).
POWER_LEVEL_ON = 100

RtasRegister = Callable[[int, str, Callable[[RtasCall], None]], None]


class PlatformHooks(Protocol):
    """What the platform services need from the machine."""

    def console_write(self, data: bytes) -> bool:
        """Write to the first VTY; False when there is none."""
        ...

    def shutdown_request(self, cause: str) -> None: ...

    def reset_request(self, cause: str) -> None: ...

    def guest_panicked(self, message: str) -> None: ...

    def time_of_day(self) -> tuple[int, int, int, int, int, int, int]:
        """(year, month, day, hour, minute, second, nanoseconds) of the guest RTC."""
        ...

    def set_time_of_day(self, when: tuple[int, int, int, int, int, int, int]) -> None: ...

    def splpar_characteristics(self) -> str:
        """The ``MaxEntCap=...`` string of system parameter 20."""
        ...

    def vm_uuid(self) -> bytes:
        """The 16 bytes of ``-uuid``, or b"" when none was given (system parameter 48)."""
        ...

    def other_threads_active(self, caller: int) -> bool:
        """Whether a vCPU other than ``caller`` is running (ibm,suspend-me refuses)."""
        ...


def _sysparm_store(call: RtasCall, buffer: int, length: int, value: bytes) -> int:
    """sysparm_st: a 2-byte length then the value, clipped to the guest's buffer."""
    if length < 2:
        return int(RtasStatus.SYSPARM_PARAM_ERROR)
    data = len(value).to_bytes(2, "big") + value
    call.memory.write_clipped(buffer, data[: max(0, length)])
    return int(RtasStatus.SUCCESS)


class PlatformRtas:
    """The non-DR RTAS services over :class:`PlatformHooks`."""

    def __init__(self, hooks: PlatformHooks) -> None:
        self.hooks = hooks

    def display_character(self, call: RtasCall) -> None:
        char = call.arg(0) & 0xFF
        ok = self.hooks.console_write(bytes([char]))
        call.set_ret(0, RtasStatus.SUCCESS if ok else RtasStatus.HW_ERROR)

    def get_time_of_day(self, call: RtasCall) -> None:
        if call.nargs != 0 or call.nret != 8:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        values = self.hooks.time_of_day()
        call.set_ret(0, RtasStatus.SUCCESS)
        for i, value in enumerate(values, start=1):
            call.set_ret(i, value)

    def set_time_of_day(self, call: RtasCall) -> None:
        if call.nargs != 7 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        a = call.args
        self.hooks.set_time_of_day((a[0], a[1], a[2], a[3], a[4], a[5], a[6]))
        call.set_ret(0, RtasStatus.SUCCESS)

    def power_off(self, call: RtasCall) -> None:
        if call.nargs != 2 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        self.hooks.shutdown_request("guest-shutdown")
        call.set_ret(0, RtasStatus.SUCCESS)

    def system_reboot(self, call: RtasCall) -> None:
        if call.nargs != 0 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        self.hooks.reset_request("guest-reset")
        call.set_ret(0, RtasStatus.SUCCESS)

    def get_system_parameter(self, call: RtasCall) -> None:
        parameter, buffer, length = call.arg(0), call.arg(1), call.arg(2)
        if parameter == SYSPARM_SPLPAR_CHARACTERISTICS:
            text = self.hooks.splpar_characteristics().encode() + b"\0"
            status = _sysparm_store(call, buffer, length, text)
        elif parameter == SYSPARM_DIAGNOSTICS_RUN_MODE:
            status = _sysparm_store(call, buffer, length, bytes([DIAGNOSTICS_RUN_MODE_DISABLED]))
        elif parameter == SYSPARM_UUID:
            status = _sysparm_store(call, buffer, length, self.hooks.vm_uuid())
        else:
            status = int(RtasStatus.NOT_SUPPORTED)
        call.set_ret(0, status)

    def set_system_parameter(self, call: RtasCall) -> None:
        parameter = call.arg(0)
        known = (SYSPARM_SPLPAR_CHARACTERISTICS, SYSPARM_DIAGNOSTICS_RUN_MODE, SYSPARM_UUID)
        call.set_ret(
            0, RtasStatus.NOT_AUTHORIZED if parameter in known else RtasStatus.NOT_SUPPORTED
        )

    def os_term(self, call: RtasCall) -> None:
        address = call.arg(0)
        raw = (
            call.memory.read(address, min(511, call.memory.size - address))
            if address < call.memory.size
            else b""
        )
        message = raw.split(b"\0", 1)[0].decode("latin-1")
        self.hooks.guest_panicked(message)
        call.set_ret(0, RtasStatus.SUCCESS)

    def set_power_level(self, call: RtasCall) -> None:
        if call.nargs != 2 or call.nret != 2:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        self._power_level(call)

    def get_power_level(self, call: RtasCall) -> None:
        if call.nargs != 1 or call.nret != 2:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        self._power_level(call)

    @staticmethod
    def _power_level(call: RtasCall) -> None:
        if call.args[0] != 0xFFFFFFFF:
            call.set_ret(0, RtasStatus.NOT_SUPPORTED)
            return
        call.set_ret(0, RtasStatus.SUCCESS)
        call.set_ret(1, POWER_LEVEL_ON)

    def suspend_me(self, call: RtasCall) -> None:
        if call.nargs != 0 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        if self.hooks.other_threads_active(call.caller):
            call.set_ret(0, -9005)  # H_MULTI_THREADS_ACTIVE, as QEMU stores it
            return
        call.set_ret(0, RtasStatus.SUCCESS)

    def quiesce(self, call: RtasCall) -> None:
        if call.nargs != 0 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        call.set_ret(0, RtasStatus.SUCCESS)

    @staticmethod
    def no_such_device(call: RtasCall) -> None:
        """PCI, EEH, DDW, TCE-bypass and NVMe-less calls: the addressed device does not exist."""
        call.set_ret(0, RtasStatus.PARAM_ERROR)

    @staticmethod
    def no_nvram(call: RtasCall) -> None:
        """nvram-fetch/store with no NVRAM device behind them."""
        call.set_ret(0, RtasStatus.HW_ERROR)

    @staticmethod
    def nmi_not_enabled(call: RtasCall) -> None:
        """ibm,nmi-register/interlock: FWNMI is not offered (cap-fwnmi is TCG-only noise)."""
        call.set_ret(0, RtasStatus.NOT_SUPPORTED)

    def register_rtas(self, register: RtasRegister) -> None:
        """Register every non-DR service QEMU 7.2 registers."""
        own: dict[RtasToken, Callable[[RtasCall], None]] = {
            RtasToken.DISPLAY_CHARACTER: self.display_character,
            RtasToken.GET_TIME_OF_DAY: self.get_time_of_day,
            RtasToken.SET_TIME_OF_DAY: self.set_time_of_day,
            RtasToken.POWER_OFF: self.power_off,
            RtasToken.SYSTEM_REBOOT: self.system_reboot,
            RtasToken.IBM_GET_SYSTEM_PARAMETER: self.get_system_parameter,
            RtasToken.IBM_SET_SYSTEM_PARAMETER: self.set_system_parameter,
            RtasToken.IBM_OS_TERM: self.os_term,
            RtasToken.SET_POWER_LEVEL: self.set_power_level,
            RtasToken.GET_POWER_LEVEL: self.get_power_level,
            RtasToken.IBM_SUSPEND_ME: self.suspend_me,
            RtasToken.QUIESCE: self.quiesce,
            RtasToken.NVRAM_FETCH: self.no_nvram,
            RtasToken.NVRAM_STORE: self.no_nvram,
            RtasToken.IBM_NMI_REGISTER: self.nmi_not_enabled,
            RtasToken.IBM_NMI_INTERLOCK: self.nmi_not_enabled,
        }
        device_services = (
            RtasToken.IBM_SET_TCE_BYPASS,
            RtasToken.READ_PCI_CONFIG,
            RtasToken.WRITE_PCI_CONFIG,
            RtasToken.IBM_READ_PCI_CONFIG,
            RtasToken.IBM_WRITE_PCI_CONFIG,
            RtasToken.IBM_QUERY_INTERRUPT_SOURCE_NUMBER,
            RtasToken.IBM_CHANGE_MSI,
            RtasToken.IBM_SET_EEH_OPTION,
            RtasToken.IBM_GET_CONFIG_ADDR_INFO2,
            RtasToken.IBM_READ_SLOT_RESET_STATE2,
            RtasToken.IBM_SET_SLOT_RESET,
            RtasToken.IBM_CONFIGURE_PE,
            RtasToken.IBM_SLOT_ERROR_DETAIL,
            RtasToken.IBM_QUERY_PE_DMA_WINDOW,
            RtasToken.IBM_CREATE_PE_DMA_WINDOW,
            RtasToken.IBM_REMOVE_PE_DMA_WINDOW,
            RtasToken.IBM_RESET_PE_DMA_WINDOW,
        )
        for token in device_services:
            own[token] = self.no_such_device
        for token, handler in own.items():
            register(token, RTAS_SERVICE_NAMES[token], handler)
