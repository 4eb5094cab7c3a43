"""The RTAS argument-buffer convention, both sides of it.

A call is a buffer of big-endian u32 words in guest memory: token, nargs, nret,
``nargs`` arguments, then ``nret`` return words (rets[0] is the status). The guest
writes it (:func:`encode_call`) and traps with its address; the machine decodes it
(:meth:`RtasCall.decode`), and the handler writes the rets back in place
(:meth:`RtasCall.set_ret`); the guest reads them (:func:`read_rets`). The layout
lives only in this module.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from rtas.memory import GuestMemory

#: H_RTAS drops the top nibble of the buffer address (QEMU's ppc64_phys_to_real).
RTAS_ADDR_MASK = ~0xF000_0000_0000_0000 & 0xFFFF_FFFF_FFFF_FFFF
#: Size of the {token, nargs, nret} header that precedes the arguments.
RTAS_CALL_HEADER_SIZE = 12
#: Size of one argument or return word.
RTAS_WORD_SIZE = 4

_U32_MASK = 0xFFFF_FFFF
_S32 = struct.Struct(">i")
_HEADER = struct.Struct(">III")
#: Layouts of the sizes real calls use, compiled once (one struct call per access):
#: argument blocks (unsigned), return blocks (signed) and whole call buffers as the
#: guest writes them (header, arguments and rets, all unsigned words).
_LAYOUT_CACHE = 32
_ARG_LAYOUTS = tuple(struct.Struct(f">{n}I") for n in range(_LAYOUT_CACHE))
_RET_LAYOUTS = tuple(struct.Struct(f">{n}i") for n in range(_LAYOUT_CACHE))

RtasCallerT = TypeVar("RtasCallerT")


def _arg_layout(nargs: int) -> struct.Struct:
    if nargs < _LAYOUT_CACHE:
        return _ARG_LAYOUTS[nargs]
    return struct.Struct(f">{nargs}I")


def _ret_layout(count: int) -> struct.Struct:
    if count < _LAYOUT_CACHE:
        return _RET_LAYOUTS[count]
    return struct.Struct(f">{count}i")


def rets_offset(nargs: int) -> int:
    """Byte offset of rets[0] from the buffer start.

    QEMU computes ``4 * nargs`` in 32-bit arithmetic, so a huge ``nargs`` wraps.
    """
    return RTAS_CALL_HEADER_SIZE + ((nargs * RTAS_WORD_SIZE) & _U32_MASK)


def call_buffer_size(nargs: int, nret: int) -> int:
    """Bytes a guest must reserve for a call with ``nargs`` arguments and ``nret`` rets."""
    return RTAS_CALL_HEADER_SIZE + RTAS_WORD_SIZE * (nargs + nret)


class RtasCall(Generic[RtasCallerT]):
    """One decoded RTAS call, still bound to the guest buffer its rets go to.

    ``args`` are the raw u32 words; ``caller`` is whatever the machine passed for
    the trapping vCPU. Rets are written straight into guest memory. A read-only
    record (by convention: every H_RTAS makes one, so it is a plain slotted class
    whose construction costs a few attribute stores, not a generated frozen init).
    """

    __slots__ = ("addr", "args", "caller", "memory", "nargs", "nret", "rets_addr", "token")

    memory: GuestMemory
    #: Buffer address after H_RTAS's mask.
    addr: int
    token: int
    nargs: int
    nret: int
    args: tuple[int, ...]
    caller: RtasCallerT
    #: Guest address of rets[0].
    rets_addr: int

    def __init__(
        self,
        memory: GuestMemory,
        addr: int,
        token: int,
        nargs: int,
        nret: int,
        args: tuple[int, ...],
        caller: RtasCallerT,
        rets_addr: int,
    ) -> None:
        self.memory = memory
        self.addr = addr
        self.token = token
        self.nargs = nargs
        self.nret = nret
        self.args = args
        self.caller = caller
        self.rets_addr = rets_addr

    def _key(self) -> tuple[Any, ...]:
        return (
            self.memory,
            self.addr,
            self.token,
            self.nargs,
            self.nret,
            self.args,
            self.caller,
            self.rets_addr,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtasCall) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"RtasCall(addr={self.addr!r}, token={self.token!r}, nargs={self.nargs!r}, "
            f"nret={self.nret!r}, args={self.args!r})"
        )

    @classmethod
    def decode(cls, memory: GuestMemory, addr: int, caller: RtasCallerT) -> RtasCall[RtasCallerT]:
        """Read the call at ``addr`` (masked as H_RTAS does).

        Raises GuestMemoryError when the header or the arguments lie outside memory.
        """
        addr &= RTAS_ADDR_MASK
        token, nargs, nret = memory.unpack(_HEADER, addr)
        # (_arg_layout and rets_offset inlined: every H_RTAS decodes a call)
        layout = _ARG_LAYOUTS[nargs] if nargs < _LAYOUT_CACHE else _arg_layout(nargs)
        args = memory.unpack(layout, addr + RTAS_CALL_HEADER_SIZE)
        rets_addr = addr + RTAS_CALL_HEADER_SIZE + ((nargs * RTAS_WORD_SIZE) & _U32_MASK)
        return cls(memory, addr, token, nargs, nret, args, caller, rets_addr)

    def arg(self, i: int) -> int:
        """args[i] as QEMU's rtas_ld reads it: even past ``nargs`` (then it is a ret word).

        Handlers that QEMU lets run without checking nargs read through this; a word
        outside guest memory reads as 0, like an unassigned physical address.
        """
        if 0 <= i < self.nargs:
            return self.args[i]
        addr = self.addr + RTAS_CALL_HEADER_SIZE + RTAS_WORD_SIZE * i
        if addr < 0 or addr + RTAS_WORD_SIZE > self.memory.size:
            return 0
        return self.memory.ld32(addr)

    def set_ret(self, i: int, value: int) -> None:
        """Write rets[i] (truncated to u32; negative statuses become two's complement).

        Like QEMU's rtas_st this does not check ``i`` against ``nret``: handlers
        report a bad nret through rets[0].
        """
        self.memory.st32(self.rets_addr + RTAS_WORD_SIZE * i, value & _U32_MASK)

    def ret(self, i: int) -> int:
        """rets[i] as it is now in guest memory, as a signed 32-bit int."""
        return self.memory.unpack(_S32, self.rets_addr + RTAS_WORD_SIZE * i)[0]

    @property
    def status(self) -> int:
        """rets[0], signed (the RTAS status the guest sees)."""
        return self.ret(0)

    def rets_in_memory(self, limit: int) -> tuple[int, ...]:
        """Up to ``min(nret, limit)`` signed rets, stopping at the end of memory.

        A snapshot for observers: never raises, whatever nret the guest wrote.
        """
        count = min(self.nret, limit, max(0, (self.memory.size - self.rets_addr) // RTAS_WORD_SIZE))
        if count <= 0:
            return ()
        layout = _RET_LAYOUTS[count] if count < _LAYOUT_CACHE else _ret_layout(count)
        return self.memory.unpack(layout, self.rets_addr)


def _to_u32(value: int, what: str) -> int:
    if not -0x8000_0000 <= value <= _U32_MASK:
        raise ValueError(f"{what} {value} does not fit in 32 bits")
    return value & _U32_MASK


def encode_call(memory: GuestMemory, addr: int, token: int, args: Sequence[int], nret: int) -> None:
    """Write an RTAS call buffer at ``addr`` with its rets zeroed (the guest side).

    Arguments may be given signed (stored two's complement) or unsigned.
    """
    nargs = len(args)
    words = 3 + nargs + nret
    if 0 <= nret < _LAYOUT_CACHE and words < _LAYOUT_CACHE:
        # Fast path: one precompiled layout; struct refuses exactly the words the
        # checks below refuse (negative or wider than 32 bits), which then explain.
        try:
            data = _ARG_LAYOUTS[words].pack(token, nargs, nret, *args, *_ZEROS[:nret])
        except struct.error:
            pass
        else:
            memory.write(addr & RTAS_ADDR_MASK, data)
            return
    if not 0 <= nret <= _U32_MASK:
        raise ValueError(f"nret {nret} does not fit in 32 bits")
    out = [_to_u32(token, "token"), nargs, nret]
    out.extend(_to_u32(a, "argument") for a in args)
    out.extend([0] * nret)
    memory.write(addr & RTAS_ADDR_MASK, struct.pack(f">{len(out)}I", *out))


_ZEROS = (0,) * _LAYOUT_CACHE


def read_rets(memory: GuestMemory, addr: int) -> tuple[int, ...]:
    """The rets of the call buffer at ``addr``, signed, as the guest reads them back."""
    addr &= RTAS_ADDR_MASK
    _token, nargs, nret = memory.unpack(_HEADER, addr)
    if nret == 0:
        return ()
    rets_addr = addr + RTAS_CALL_HEADER_SIZE + ((nargs * RTAS_WORD_SIZE) & _U32_MASK)
    layout = _RET_LAYOUTS[nret] if nret < _LAYOUT_CACHE else _ret_layout(nret)
    return memory.unpack(layout, rets_addr)
