"""The RTAS dispatcher: QEMU's H_RTAS hypercall and its token table.

The machine registers one handler per token; the guest's H_RTAS trap lands in
:meth:`RtasDispatcher.hcall_rtas`, which decodes the buffer, runs the handler and
returns the hypercall status (what QEMU's h_rtas/spapr_rtas_call return). The
device tree lists :meth:`RtasDispatcher.registered`, so the table the guest reads
and the table that runs are the same object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic

import attrs

from rtas.call import RtasCall, RtasCallerT
from rtas.codes import RtasStatus
from rtas.hcalls import HcallReturn
from rtas.memory import GuestMemory, GuestMemoryError
from rtas.tokens import (
    LEGACY_DISPLAY_CHARACTER,
    RTAS_SERVICE_NAMES,
    RTAS_TOKEN_BASE,
    RTAS_TOKEN_MAX,
    RtasToken,
)

#: A service: reads its args from the call and writes its rets through it.
RtasHandler = Callable[[RtasCall[RtasCallerT]], None]
#: Told of every decoded call once it has run: (call, hcall status, rets snapshot).
RtasObserver = Callable[[RtasCall[RtasCallerT], int, tuple[int, ...]], None]

#: Most rets an observer's snapshot carries (real calls return at most 8).
OBSERVED_RETS_MAX = 16

_H_SUCCESS = int(HcallReturn.H_SUCCESS)
_H_PARAMETER = int(HcallReturn.H_PARAMETER)
_PARAM_ERROR = int(RtasStatus.PARAM_ERROR)


@attrs.define(eq=False)
class RtasDispatcher(Generic[RtasCallerT]):
    """Token → handler table and the H_RTAS entry point (sans-IO, no logging)."""

    _handlers: dict[int, RtasHandler[RtasCallerT]] = attrs.field(factory=dict, init=False)
    _names: dict[int, str] = attrs.field(factory=dict, init=False)
    _observers: list[RtasObserver[RtasCallerT]] = attrs.field(factory=list, init=False)

    def register(self, token: int, name: str, handler: RtasHandler[RtasCallerT]) -> None:
        """Install ``handler`` for ``token``; ``name`` must be the token's /rtas name.

        Like QEMU's spapr_rtas_register, a token is registered at most once and
        must lie in [RTAS_TOKEN_BASE, RTAS_TOKEN_MAX).
        """
        if not RTAS_TOKEN_BASE <= token < RTAS_TOKEN_MAX:
            raise ValueError(
                f"RTAS token {token:#x} outside [{RTAS_TOKEN_BASE:#x}, {RTAS_TOKEN_MAX:#x})"
            )
        expected = RTAS_SERVICE_NAMES[RtasToken(token)]
        if name != expected:
            raise ValueError(f"RTAS token {token:#x} is {expected!r}, not {name!r}")
        if token in self._handlers:
            raise ValueError(f"RTAS token {token:#x} ({name}) is already registered")
        self._handlers[token] = handler
        self._names[token] = name

    def registered(self) -> list[tuple[int, str]]:
        """(token, name) of every registered service in token order, as /rtas lists them."""
        return sorted(self._names.items())

    def add_observer(self, observer: RtasObserver[RtasCallerT]) -> None:
        """Call ``observer`` after every decoded call (the machine's trace hook)."""
        self._observers.append(observer)

    def remove_observer(self, observer: RtasObserver[RtasCallerT]) -> None:
        """Stop calling ``observer``."""
        self._observers.remove(observer)

    def hcall_rtas(self, memory: GuestMemory, addr: int, caller: RtasCallerT) -> int:
        """H_RTAS with r4 = ``addr``: run the call there and return the hcall status.

        Registered token → handler, H_SUCCESS. Token 0xA → display-character (QEMU's
        legacy alias). Anything else → rets[0] = -3 (even when nret is 0, as QEMU
        does), H_PARAMETER. A buffer or handler access outside guest memory makes
        the call H_PARAMETER; it never raises.
        """
        try:
            call = RtasCall.decode(memory, addr, caller)
        except GuestMemoryError:
            return _H_PARAMETER
        handler = self._handlers.get(call.token)
        if handler is None and call.token == LEGACY_DISPLAY_CHARACTER:
            handler = self._handlers.get(RtasToken.DISPLAY_CHARACTER)
        if handler is not None:
            try:
                handler(call)
                status = _H_SUCCESS
            except GuestMemoryError:
                status = _H_PARAMETER
        else:
            # QEMU's store to an address outside RAM is silently dropped.
            with contextlib.suppress(GuestMemoryError):
                call.set_ret(0, _PARAM_ERROR)
            status = _H_PARAMETER
        if self._observers:
            rets = call.rets_in_memory(OBSERVED_RETS_MAX)
            for observer in self._observers:
                observer(call, status, rets)
        return status
