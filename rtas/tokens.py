"""The RTAS token table: QEMU 7.2's token numbers and the /rtas property names.

The same table feeds the device tree (each service is a /rtas property whose value
is its token) and the dispatcher, so the two can never disagree.
"""

from __future__ import annotations

import enum


class RtasToken(enum.IntEnum):
    """Tokens QEMU 7.2 registers (RTAS_TOKEN_BASE + n)."""

    DISPLAY_CHARACTER = 0x2000
    GET_TIME_OF_DAY = 0x2001
    SET_TIME_OF_DAY = 0x2002
    POWER_OFF = 0x2003
    SYSTEM_REBOOT = 0x2004
    QUERY_CPU_STOPPED_STATE = 0x2005
    START_CPU = 0x2006
    STOP_SELF = 0x2007
    IBM_GET_SYSTEM_PARAMETER = 0x2008
    IBM_SET_SYSTEM_PARAMETER = 0x2009
    IBM_SET_XIVE = 0x200A
    IBM_GET_XIVE = 0x200B
    IBM_INT_OFF = 0x200C
    IBM_INT_ON = 0x200D
    CHECK_EXCEPTION = 0x200E
    EVENT_SCAN = 0x200F
    IBM_SET_TCE_BYPASS = 0x2010
    QUIESCE = 0x2011
    NVRAM_FETCH = 0x2012
    NVRAM_STORE = 0x2013
    READ_PCI_CONFIG = 0x2014
    WRITE_PCI_CONFIG = 0x2015
    IBM_READ_PCI_CONFIG = 0x2016
    IBM_WRITE_PCI_CONFIG = 0x2017
    IBM_QUERY_INTERRUPT_SOURCE_NUMBER = 0x2018
    IBM_CHANGE_MSI = 0x2019
    SET_INDICATOR = 0x201A
    SET_POWER_LEVEL = 0x201B
    GET_POWER_LEVEL = 0x201C
    GET_SENSOR_STATE = 0x201D
    IBM_CONFIGURE_CONNECTOR = 0x201E
    IBM_OS_TERM = 0x201F
    IBM_SET_EEH_OPTION = 0x2020
    IBM_GET_CONFIG_ADDR_INFO2 = 0x2021
    IBM_READ_SLOT_RESET_STATE2 = 0x2022
    IBM_SET_SLOT_RESET = 0x2023
    IBM_CONFIGURE_PE = 0x2024
    IBM_SLOT_ERROR_DETAIL = 0x2025
    IBM_QUERY_PE_DMA_WINDOW = 0x2026
    IBM_CREATE_PE_DMA_WINDOW = 0x2027
    IBM_REMOVE_PE_DMA_WINDOW = 0x2028
    IBM_RESET_PE_DMA_WINDOW = 0x2029
    IBM_SUSPEND_ME = 0x202A
    IBM_NMI_REGISTER = 0x202B
    IBM_NMI_INTERLOCK = 0x202C


RTAS_TOKEN_BASE = 0x2000
#: One past the last token (not a call).
RTAS_TOKEN_MAX = 0x202D
#: Legacy token Linux may use for display-character before it reads /rtas.
LEGACY_DISPLAY_CHARACTER = 0xA

#: Service name as it appears in /rtas (what Linux's rtas_token() looks up).
RTAS_SERVICE_NAMES: dict[RtasToken, str] = {
    RtasToken.DISPLAY_CHARACTER: "display-character",
    RtasToken.GET_TIME_OF_DAY: "get-time-of-day",
    RtasToken.SET_TIME_OF_DAY: "set-time-of-day",
    RtasToken.POWER_OFF: "power-off",
    RtasToken.SYSTEM_REBOOT: "system-reboot",
    RtasToken.QUERY_CPU_STOPPED_STATE: "query-cpu-stopped-state",
    RtasToken.START_CPU: "start-cpu",
    RtasToken.STOP_SELF: "stop-self",
    RtasToken.IBM_GET_SYSTEM_PARAMETER: "ibm,get-system-parameter",
    RtasToken.IBM_SET_SYSTEM_PARAMETER: "ibm,set-system-parameter",
    RtasToken.IBM_SET_XIVE: "ibm,set-xive",
    RtasToken.IBM_GET_XIVE: "ibm,get-xive",
    RtasToken.IBM_INT_OFF: "ibm,int-off",
    RtasToken.IBM_INT_ON: "ibm,int-on",
    RtasToken.CHECK_EXCEPTION: "check-exception",
    RtasToken.EVENT_SCAN: "event-scan",
    RtasToken.IBM_SET_TCE_BYPASS: "ibm,set-tce-bypass",
    RtasToken.QUIESCE: "quiesce",
    RtasToken.NVRAM_FETCH: "nvram-fetch",
    RtasToken.NVRAM_STORE: "nvram-store",
    RtasToken.READ_PCI_CONFIG: "read-pci-config",
    RtasToken.WRITE_PCI_CONFIG: "write-pci-config",
    RtasToken.IBM_READ_PCI_CONFIG: "ibm,read-pci-config",
    RtasToken.IBM_WRITE_PCI_CONFIG: "ibm,write-pci-config",
    RtasToken.IBM_QUERY_INTERRUPT_SOURCE_NUMBER: "ibm,query-interrupt-source-number",
    RtasToken.IBM_CHANGE_MSI: "ibm,change-msi",
    RtasToken.SET_INDICATOR: "set-indicator",
    RtasToken.SET_POWER_LEVEL: "set-power-level",
    RtasToken.GET_POWER_LEVEL: "get-power-level",
    RtasToken.GET_SENSOR_STATE: "get-sensor-state",
    RtasToken.IBM_CONFIGURE_CONNECTOR: "ibm,configure-connector",
    RtasToken.IBM_OS_TERM: "ibm,os-term",
    RtasToken.IBM_SET_EEH_OPTION: "ibm,set-eeh-option",
    RtasToken.IBM_GET_CONFIG_ADDR_INFO2: "ibm,get-config-addr-info2",
    RtasToken.IBM_READ_SLOT_RESET_STATE2: "ibm,read-slot-reset-state2",
    RtasToken.IBM_SET_SLOT_RESET: "ibm,set-slot-reset",
    RtasToken.IBM_CONFIGURE_PE: "ibm,configure-pe",
    RtasToken.IBM_SLOT_ERROR_DETAIL: "ibm,slot-error-detail",
    RtasToken.IBM_QUERY_PE_DMA_WINDOW: "ibm,query-pe-dma-window",
    RtasToken.IBM_CREATE_PE_DMA_WINDOW: "ibm,create-pe-dma-window",
    RtasToken.IBM_REMOVE_PE_DMA_WINDOW: "ibm,remove-pe-dma-window",
    RtasToken.IBM_RESET_PE_DMA_WINDOW: "ibm,reset-pe-dma-window",
    RtasToken.IBM_SUSPEND_ME: "ibm,suspend-me",
    RtasToken.IBM_NMI_REGISTER: "ibm,nmi-register",
    RtasToken.IBM_NMI_INTERLOCK: "ibm,nmi-interlock",
}

#: Reverse lookup: /rtas property name -> token.
TOKENS_BY_NAME: dict[str, RtasToken] = {name: tok for tok, name in RTAS_SERVICE_NAMES.items()}


#: The names by plain int token (a dict lookup per call instead of an enum conversion).
_NAMES_BY_VALUE: dict[int, str] = {int(tok): name for tok, name in RTAS_SERVICE_NAMES.items()}


def service_name(token: int) -> str | None:
    """The /rtas name of a token, or None for a token QEMU does not register."""
    try:
        return _NAMES_BY_VALUE.get(token)
    except TypeError:  # unhashable: no token
        return None
