"""Guests for the state machine: the reference Linux guest as a kit :class:`Guest`.

:class:`ReferenceGuest` is the project's Linux 6.1 guest (guest/) with the view
the kit compares (:meth:`ReferenceGuest.online_hwids`); :func:`reference_guest`
builds one from a :class:`~conformance.strategies.GuestBehaviour`.
:func:`idle_program` is what vCPUs run when no guest is loaded and the kit's
rules play a hostile guest through raw RTAS calls.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import attrs

from conformance.protocols import GuestProgram
from conformance.strategies import GuestBehaviour
from guest import LinuxGuest
from rtas.hcalls import EXECUTE, Hcall


@attrs.define(eq=False)
class ReferenceGuest(LinuxGuest):
    """Linux 6.1 (or rtas_errd + drmgr) as a :class:`~conformance.protocols.Guest`."""

    def online_hwids(self) -> frozenset[int]:
        """Hardware thread ids of the online CPUs (empty before the first boot)."""
        return online_hwids(self)


def online_hwids(guest: Any) -> frozenset[int]:
    """The guest's online hardware thread ids: its own answer, or a LinuxGuest's CPU list."""
    own = getattr(type(guest), "online_hwids", None)
    if own is not None and not isinstance(guest, LinuxGuest):
        ids: Collection[int] = guest.online_hwids()
        return frozenset(ids)
    if isinstance(guest, LinuxGuest):
        try:
            return frozenset(c.hwid for c in guest.cpus() if c.online and c.hwid is not None)
        except RuntimeError:  # not booted yet
            return frozenset()
    return frozenset()


def guest_booted(guest: Any) -> bool:
    """Whether the guest has finished booting (a guest without ``booted`` counts as booted)."""
    return bool(getattr(guest, "booted", True))


def reference_guest(behaviour: GuestBehaviour | None = None) -> ReferenceGuest:
    """A fresh reference guest behaving as ``behaviour`` says (default: Linux 6.1, no faults)."""
    b = behaviour if behaviour is not None else GuestBehaviour()
    return ReferenceGuest(mode=b.mode, misbehavior=b.misbehavior, timing=b.timing)


#: How long an idle vCPU cedes before its next (empty) timer tick, in virtual ns.
IDLE_TICK_NS = 10_000_000


def idle_program(vcpu_id: int, entry: int, r3: int) -> GuestProgram:
    """A started vCPU that only idles (the kit plays the guest through raw RTAS calls).

    It wakes every :data:`IDLE_TICK_NS` (Linux's 100 Hz tick), so time passing costs
    little however long it is.
    """
    while True:
        yield (EXECUTE, 500)
        yield (Hcall.H_CEDE, IDLE_TICK_NS)
