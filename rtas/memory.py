"""Guest physical memory: a bounded, big-endian byte store both sides of RTAS share.

The machine reads and writes RTAS argument buffers, check-exception logs and the
configure-connector work area here; the guest writes its calls here before
trapping. Every access is bounds-checked: a guest address off the end of RAM is a
:class:`GuestMemoryError`, which the RTAS dispatcher turns into a PAPR error
instead of letting it escape as a Python exception.
"""

from __future__ import annotations

import bisect
import mmap
import struct
from typing import Any, Protocol

import attrs

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

_MAX_U8 = 0xFF
_MAX_U16 = 0xFFFF
_MAX_U32 = 0xFFFF_FFFF
_MAX_U64 = 0xFFFF_FFFF_FFFF_FFFF


class GuestMemoryError(Exception):
    """A guest memory access outside RAM, or a value too wide for the store."""

    def __init__(self, message: str, *, addr: int, length: int, size: int) -> None:
        super().__init__(message)
        #: First guest address of the refused access.
        self.addr = addr
        #: Number of bytes the access covered.
        self.length = length
        #: Size of the guest memory it was refused by.
        self.size = size


class MmioRegion(Protocol):
    """A device's page(s) in the guest physical address space (QEMU's MemoryRegionOps).

    ``cpu`` is the vCPU making the access (QEMU's ``current_cpu``): the XIVE thread
    management area answers differently for each. ``offset`` is from the region's base.
    """

    def mmio_read(self, cpu: int, offset: int, size: int) -> int: ...

    def mmio_write(self, cpu: int, offset: int, size: int, value: int) -> None: ...


#: Access sizes a cache-inhibited load or store may have.
MMIO_SIZES = (1, 2, 4, 8)


@attrs.define(eq=False)
class GuestMemory:
    """``size`` bytes of guest RAM starting at guest physical address 0.

    Accessors are big-endian (the byte order of every RTAS structure) and raise
    :class:`GuestMemoryError` for any access not wholly inside ``[0, size)``.
    """

    size: int = attrs.field()
    _data: mmap.mmap | bytearray = attrs.field(init=False, repr=False)
    _view: memoryview = attrs.field(init=False, repr=False)
    #: Device regions outside RAM, sorted by base: (base, size, region).
    _mmio: list[tuple[int, int, MmioRegion]] = attrs.field(init=False, factory=list, repr=False)
    _mmio_bases: list[int] = attrs.field(init=False, factory=list, repr=False)
    _mmio_disabled: set[int] = attrs.field(init=False, factory=set, repr=False)

    @size.validator
    def _check_size(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value < 0:
            raise ValueError(f"guest memory size must not be negative, got {value}")

    def __attrs_post_init__(self) -> None:
        # An anonymous mapping is zero-filled lazily by the OS, so a 1 GiB guest
        # costs only the pages it touches.
        self._data = mmap.mmap(-1, self.size) if self.size else bytearray()
        self._view = memoryview(self._data)

    def _out_of_range(self, addr: int, length: int) -> GuestMemoryError:
        return GuestMemoryError(
            f"guest memory access out of range: address {addr:#x}, length {length}, "
            f"memory size {self.size:#x}",
            addr=addr,
            length=length,
            size=self.size,
        )

    def _too_wide(self, addr: int, value: int, width: int) -> GuestMemoryError:
        return GuestMemoryError(
            f"value {value:#x} does not fit in {width * 8} bits: store at address {addr:#x}, "
            f"memory size {self.size:#x}",
            addr=addr,
            length=width,
            size=self.size,
        )

    # Bulk access

    def read(self, addr: int, n: int) -> bytes:
        """The ``n`` bytes at ``addr``."""
        if addr < 0 or n < 0 or addr + n > self.size:
            raise self._out_of_range(addr, n)
        return self._view[addr : addr + n].tobytes()

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` (a flat byte buffer) at ``addr``."""
        n = len(data)
        if addr < 0 or addr + n > self.size:
            raise self._out_of_range(addr, n)
        self._data[addr : addr + n] = data

    def write_clipped(self, addr: int, data: bytes | bytearray | memoryview) -> int:
        """Store the part of ``data`` that lies inside RAM and drop the rest.

        This is what QEMU's ``cpu_physical_memory_write`` does with a guest-chosen
        buffer (check-exception's log buffer): no error, the bytes outside RAM are
        lost. Returns how many bytes were stored.
        """
        n = len(data)
        start = max(addr, 0)
        end = min(addr + n, self.size)
        if start >= end:
            return 0
        self._data[start:end] = data[start - addr : end - addr]
        return end - start

    def read_cstring(self, addr: int, max_len: int) -> bytes:
        """The NUL-terminated string at ``addr`` (without its NUL).

        The NUL must lie within ``max_len`` bytes of ``addr`` and inside RAM.
        """
        if addr < 0 or max_len < 0 or addr > self.size:
            raise self._out_of_range(addr, max_len)
        limit = min(addr + max_len, self.size)
        end = self._data.find(b"\0", addr, limit)
        if end < 0:
            if addr + max_len > self.size:
                raise self._out_of_range(addr, max_len)
            raise GuestMemoryError(
                f"no NUL terminator within {max_len} bytes of address {addr:#x} "
                f"(memory size {self.size:#x})",
                addr=addr,
                length=max_len,
                size=self.size,
            )
        return self._view[addr:end].tobytes()

    def unpack(self, layout: struct.Struct, addr: int) -> tuple[Any, ...]:
        """Decode a precompiled struct layout at ``addr`` (one bounds check)."""
        if addr < 0 or addr + layout.size > self.size:
            raise self._out_of_range(addr, layout.size)
        return layout.unpack_from(self._data, addr)

    # Fixed-width big-endian accessors

    def ld8(self, addr: int) -> int:
        """The byte at ``addr``."""
        if addr < 0 or addr >= self.size:
            raise self._out_of_range(addr, 1)
        return self._data[addr]

    def st8(self, addr: int, value: int) -> None:
        """Store a byte at ``addr``."""
        if addr < 0 or addr >= self.size:
            raise self._out_of_range(addr, 1)
        if value < 0 or value > _MAX_U8:
            raise self._too_wide(addr, value, 1)
        self._data[addr] = value

    def ld16(self, addr: int) -> int:
        """The big-endian u16 at ``addr``."""
        if addr < 0 or addr + 2 > self.size:
            raise self._out_of_range(addr, 2)
        return _U16.unpack_from(self._data, addr)[0]

    def st16(self, addr: int, value: int) -> None:
        """Store a big-endian u16 at ``addr``."""
        if addr < 0 or addr + 2 > self.size:
            raise self._out_of_range(addr, 2)
        if value < 0 or value > _MAX_U16:
            raise self._too_wide(addr, value, 2)
        _U16.pack_into(self._data, addr, value)

    def ld32(self, addr: int) -> int:
        """The big-endian u32 at ``addr``."""
        if addr < 0 or addr + 4 > self.size:
            raise self._out_of_range(addr, 4)
        return _U32.unpack_from(self._data, addr)[0]

    def st32(self, addr: int, value: int) -> None:
        """Store a big-endian u32 at ``addr``."""
        if addr < 0 or addr + 4 > self.size:
            raise self._out_of_range(addr, 4)
        if value < 0 or value > _MAX_U32:
            raise self._too_wide(addr, value, 4)
        _U32.pack_into(self._data, addr, value)

    def ld64(self, addr: int) -> int:
        """The big-endian u64 at ``addr``."""
        if addr < 0 or addr + 8 > self.size:
            raise self._out_of_range(addr, 8)
        return _U64.unpack_from(self._data, addr)[0]

    def st64(self, addr: int, value: int) -> None:
        """Store a big-endian u64 at ``addr``."""
        if addr < 0 or addr + 8 > self.size:
            raise self._out_of_range(addr, 8)
        if value < 0 or value > _MAX_U64:
            raise self._too_wide(addr, value, 8)
        _U64.pack_into(self._data, addr, value)

    # Device pages (MMIO)

    def map_mmio(self, base: int, size: int, region: MmioRegion) -> None:
        """Map ``region`` at ``[base, base + size)``; it must not overlap RAM or another region."""
        if size <= 0 or base < self.size:
            raise ValueError(f"MMIO region {base:#x}+{size:#x} overlaps RAM or is empty")
        at = bisect.bisect_left(self._mmio_bases, base)
        neighbours = self._mmio[max(0, at - 1) : at + 1]
        if any(b < base + size and base < b + n for b, n, _r in neighbours):
            raise ValueError(f"MMIO region {base:#x}+{size:#x} overlaps another")
        self._mmio.insert(at, (base, size, region))
        self._mmio_bases.insert(at, base)

    def set_mmio_enabled(self, base: int, enabled: bool) -> None:
        """Enable or disable the region mapped at ``base`` (memory_region_set_enabled)."""
        if enabled:
            self._mmio_disabled.discard(base)
        else:
            self._mmio_disabled.add(base)

    def _mmio_region(self, addr: int, size: int) -> tuple[MmioRegion, int]:
        if size not in MMIO_SIZES:
            raise GuestMemoryError(
                f"MMIO access of {size} bytes at {addr:#x}", addr=addr, length=size, size=self.size
            )
        at = bisect.bisect_right(self._mmio_bases, addr) - 1
        if at >= 0:
            base, length, region = self._mmio[at]
            if addr + size <= base + length and base not in self._mmio_disabled:
                return region, addr - base
        raise GuestMemoryError(
            f"no device at guest address {addr:#x} (access of {size} bytes)",
            addr=addr,
            length=size,
            size=self.size,
        )

    def mmio_load(self, addr: int, size: int, *, cpu: int) -> int:
        """A cache-inhibited load by vCPU ``cpu``: RAM, or the device mapped there."""
        if addr >= 0 and addr + size <= self.size and size in MMIO_SIZES:
            return int.from_bytes(self._view[addr : addr + size], "big")
        region, offset = self._mmio_region(addr, size)
        return region.mmio_read(cpu, offset, size) & ((1 << (8 * size)) - 1)

    def mmio_store(self, addr: int, size: int, value: int, *, cpu: int) -> None:
        """A cache-inhibited store by vCPU ``cpu`` (the value is cut to ``size`` bytes)."""
        value &= (1 << (8 * size)) - 1 if size in MMIO_SIZES else 0
        if addr >= 0 and addr + size <= self.size and size in MMIO_SIZES:
            self._data[addr : addr + size] = value.to_bytes(size, "big")
            return
        region, offset = self._mmio_region(addr, size)
        region.mmio_write(cpu, offset, size, value)
