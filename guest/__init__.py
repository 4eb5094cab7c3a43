"""A reference Linux-like pseries guest that drives CPU hotplug the way a real one does.

It sees the machine only through the flattened device tree it is booted with,
RTAS calls written into its own memory (H_RTAS), other hypercalls (CAS, H_CEDE,
XICS or XIVE) and interrupts. The default is Linux 6.1 with in-kernel DLPAR; the older
rtas_errd + drmgr stack and deliberately misbehaving guests are options. It
imports only ``fdt`` and ``rtas``.
"""

from guest.cas import CasRequest, NegotiatedFeatures, PlatformSupport
from guest.kernel import BOOT_ENTRY, SECONDARY_ENTRY, Kernel
from guest.linux import LinuxGuest
from guest.log import GuestLog, LogEntry, LogLevel
from guest.options import GuestMode, GuestTiming, Misbehavior, WrongIndices
from guest.state import CpuInfo, CpuState, DrcAction, DrcOutcome, RtasRecord
from guest.topology import cpulist

__all__ = [
    "BOOT_ENTRY",
    "SECONDARY_ENTRY",
    "CasRequest",
    "CpuInfo",
    "CpuState",
    "DrcAction",
    "DrcOutcome",
    "GuestLog",
    "GuestMode",
    "GuestTiming",
    "Kernel",
    "LinuxGuest",
    "LogEntry",
    "LogLevel",
    "Misbehavior",
    "NegotiatedFeatures",
    "PlatformSupport",
    "RtasRecord",
    "WrongIndices",
    "cpulist",
]
