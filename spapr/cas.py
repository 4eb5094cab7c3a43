"""ibm,client-architecture-support: the guest's PVR list and what compat mode it gets.

The CAS buffer starts with (mask, pvr) pairs ended by a record with ``~mask & pvr``
non-zero, then the option-vector table (spapr.ovec). QEMU looks for two things in
the list: whether the CPU's real PVR is there ("raw" mode allowed) and the best
logical PVR both the guest and the CPU support, no newer than max-cpu-compat.
"""

from __future__ import annotations

import attrs

from rtas import GuestMemory
from spapr.cpu_models import COMPAT_MODES, CompatMode, CpuModel, compat_by_pvr, cpu_supports_compat

#: QEMU reads at most this many PVR records.
MAX_PVR_RECORDS = 512


@attrs.frozen
class CasPvrChoice:
    """What cas_check_pvr found: where the option vectors start and the chosen mode."""

    table_addr: int
    best_compat_pvr: int
    explicit_match: bool

    @property
    def negotiable(self) -> bool:
        """False when QEMU answers H_HARDWARE (no compat mode and raw mode not allowed)."""
        return bool(self.best_compat_pvr) or self.explicit_match


def cas_check_pvr(
    memory: GuestMemory, addr: int, model: CpuModel, max_compat: CompatMode | None
) -> CasPvrChoice:
    """Scan the PVR records at ``addr`` as QEMU's cas_check_pvr does."""
    best: CompatMode | None = None
    explicit_match = False
    for _ in range(MAX_PVR_RECORDS):
        mask = memory.ld32(addr)
        pvr = memory.ld32(addr + 4)
        addr += 8
        if ~mask & pvr & 0xFFFFFFFF:
            break
        if (model.pvr & mask) == (pvr & mask):
            explicit_match = True
            continue
        mode = compat_by_pvr(pvr)
        if mode is None or not cpu_supports_compat(model, mode, max_compat):
            continue
        if best is None or COMPAT_MODES.index(mode) >= COMPAT_MODES.index(best):
            best = mode
    return CasPvrChoice(addr, best.logical_pvr if best is not None else 0, explicit_match)
