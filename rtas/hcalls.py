"""Hypercall numbers and return values of the sPAPR hypervisor interface the guest uses.

The guest reaches the platform through ``sc 1`` hypercalls: RTAS itself is one
(KVMPPC_H_RTAS), CAS is another, and H_CEDE/H_PROD/H_CONFER, the XICS calls and
H_REGISTER_VPA are what a Linux vCPU issues around hotplug; the H_INT_* calls are
XIVE exploitation mode's. Both sides import these
numbers from here. ``EXECUTE`` is not a hypercall: it is how a guest program tells
the vCPU scheduler "run guest instructions for this many virtual nanoseconds".
"""

from __future__ import annotations

import enum


class Hcall(enum.IntEnum):
    """Hypercall numbers (PAPR and QEMU's KVMPPC private range)."""

    H_EOI = 0x64
    H_CPPR = 0x68
    H_IPI = 0x6C
    H_IPOLL = 0x70
    H_XIRR = 0x74
    H_REGISTER_VPA = 0xDC
    H_CEDE = 0xE0
    H_CONFER = 0xE4
    H_PROD = 0xE8
    H_JOIN = 0x298
    H_XIRR_X = 0x2FC
    H_SET_MODE = 0x31C
    H_INT_GET_SOURCE_INFO = 0x3A8
    H_INT_SET_SOURCE_CONFIG = 0x3AC
    H_INT_GET_SOURCE_CONFIG = 0x3B0
    H_INT_GET_QUEUE_INFO = 0x3B4
    H_INT_SET_QUEUE_CONFIG = 0x3B8
    H_INT_GET_QUEUE_CONFIG = 0x3BC
    H_INT_SET_OS_REPORTING_LINE = 0x3C0
    H_INT_GET_OS_REPORTING_LINE = 0x3C4
    H_INT_ESB = 0x3C8
    H_INT_SYNC = 0x3CC
    H_INT_RESET = 0x3D0
    KVMPPC_H_RTAS = 0xF000
    KVMPPC_H_LOGICAL_MEMOP = 0xF001
    KVMPPC_H_CAS = 0xF002
    KVMPPC_H_UPDATE_DT = 0xF003


class HcallReturn(enum.IntEnum):
    """Hypercall return codes (r3)."""

    H_SUCCESS = 0
    H_BUSY = 1
    H_HARDWARE = -1
    H_FUNCTION = -2
    H_PRIVILEGE = -3
    H_PARAMETER = -4
    H_P2 = -55
    H_P3 = -56
    H_P4 = -57
    H_P5 = -58


#: Pseudo-operation of a guest program: execute guest instructions for N ns.
EXECUTE = 0
#: Pseudo-operations of a guest program: a cache-inhibited load or store of 1, 2, 4
#: or 8 bytes at a guest physical address that is not RAM (the XIVE ESB and TIMA
#: pages). ``(MMIO_LOAD, addr, size)`` returns the value; ``(MMIO_STORE, addr,
#: size, value)`` returns nothing. Like EXECUTE they are not hypercalls: they are how
#: a guest program's memory access reaches a device page the machine mapped with
#: :meth:`rtas.GuestMemory.map_mmio`, with the vCPU that made it.
MMIO_LOAD = 0x1_0001
MMIO_STORE = 0x1_0002
