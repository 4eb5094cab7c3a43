"""Where the guest keeps its buffers in its own RAM.

The RTAS argument buffers, the check-exception log, Linux's ``rtas_data_buf`` (the
configure-connector work area), the CAS vector and reply, the VPAs: all live in
guest physical memory, below 4 GiB (RTAS takes 32-bit addresses). A bump allocator
hands them out from 16 MiB upwards (lower for tiny guests), stepping over the
device-tree blob the machine placed, and never past the end of RAM.
"""

from __future__ import annotations

import attrs

#: Where allocations start when RAM allows (Linux's own image sits below).
DEFAULT_BASE = 16 << 20
#: RTAS buffers must have 32-bit addresses.
RTAS_ADDRESS_LIMIT = 1 << 32


class OutOfGuestMemory(Exception):
    """The guest's RAM has no room for a buffer."""


@attrs.define
class GuestRegions:
    """A bump allocator over ``[base, limit)`` that avoids ``reserved`` ranges."""

    base: int
    limit: int
    reserved: list[tuple[int, int]] = attrs.field(factory=list)
    _next: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._next = self.base

    @classmethod
    def for_ram(cls, ram_size: int, reserved: list[tuple[int, int]]) -> GuestRegions:
        """Regions for a guest with ``ram_size`` bytes of RAM from address 0."""
        limit = min(ram_size, RTAS_ADDRESS_LIMIT)
        base = DEFAULT_BASE if limit >= 2 * DEFAULT_BASE else limit // 2
        return cls(base, limit, reserved)

    def alloc(self, size: int, align: int = 16) -> int:
        """A fresh ``size``-byte region aligned to ``align``; OutOfGuestMemory if none."""
        addr = -(-self._next // align) * align
        moved = True
        while moved:
            moved = False
            for start, length in self.reserved:
                if addr < start + length and start < addr + size:
                    addr = -(-(start + length) // align) * align
                    moved = True
        if addr + size > self.limit:
            raise OutOfGuestMemory(
                f"no room for {size} bytes at {addr:#x} (RAM usable up to {self.limit:#x})"
            )
        self._next = addr + size
        return addr
