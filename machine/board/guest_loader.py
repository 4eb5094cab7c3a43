"""Loading the reference guest into a machine (the project's ``-guest`` option).

QEMU boots whatever firmware and kernel it is given; this emulator loads the
reference guest from ``guest/`` in its place. ``-guest`` chooses the guest:

``linux``            Linux 6.1 with in-kernel DLPAR (the default)
``drmgr``            an older guest: no OV5_HP_EVT, rtas_errd + drmgr in user space
``none``             no operating system: nothing answers hotplug events (like QEMU
                     sitting in SLOF), the mode of the live comparisons with QEMU
``manual``           no reference guest: the person at the HMP prompt is the guest and
                     makes its RTAS calls (``rtas``, see ``machine.board.manual_guest``)
``ignore-unplug``    Linux that never answers an unplug request
``refuse-unplug``    Linux that refuses every unplug (no CPU goes offline; the DRC is
                     given back, QEMU's DEVICE_UNPLUG_GUEST_ERROR)
``abandon-configure=K``  Linux that stops a configure-connector walk after K calls
``wrong-indices``    Linux that calls DR services with wrong DRC indexes and ids

Options combine with ``+`` (``drmgr+ignore-unplug``) and accept ``event-scan=off``
to silence rtasd's periodic event-scan and ``xive=off`` (the kernel option: XICS even
on a POWER9 or POWER10 machine that offers XIVE at CAS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from guest import GuestMode, GuestTiming, LinuxGuest, Misbehavior, WrongIndices
from spapr.errors import QemuError

if TYPE_CHECKING:
    from machine.board.manual_guest import ManualGuest

GUEST_KINDS = ("linux", "drmgr", "none", "manual")


@attrs.frozen
class GuestChoice:
    """What ``-guest`` asked for; ``mode`` None means no guest at all."""

    mode: GuestMode | None = GuestMode.IN_KERNEL_DLPAR
    misbehavior: Misbehavior = attrs.field(factory=Misbehavior)
    timing: GuestTiming = attrs.field(factory=GuestTiming)
    #: ``-guest manual``: the prompt plays the guest (``mode`` is then None).
    manual: bool = False
    #: ``xive=off`` on the guest kernel's command line.
    xive_off: bool = False

    def create(self) -> LinuxGuest | ManualGuest | None:
        """A fresh guest object, or None for ``-guest none``."""
        if self.manual:
            # (loaded only for -guest manual: the prompt-driven guest is a module of its own)
            from machine.board.manual_guest import ManualGuest

            return ManualGuest()
        if self.mode is None:
            return None
        return LinuxGuest(
            mode=self.mode,
            misbehavior=self.misbehavior,
            timing=self.timing,
            xive_off=self.xive_off,
        )


def parse_guest_option(text: str | None) -> GuestChoice:
    """Parse ``-guest``; a bad value is refused with a clear message."""
    if text is None:
        return GuestChoice()
    if text == "manual":
        return GuestChoice(mode=None, manual=True)
    mode: GuestMode | None = GuestMode.IN_KERNEL_DLPAR
    ignore_unplug = refuse_unplug = False
    abandon: int | None = None
    wrong: WrongIndices | None = None
    timing = GuestTiming()
    xive_off = False
    for part in text.split("+"):
        key, _, value = part.partition("=")
        if key == "linux" and not value:
            mode = GuestMode.IN_KERNEL_DLPAR
        elif key == "drmgr" and not value:
            mode = GuestMode.RTAS_ERRD_DRMGR
        elif key == "none" and not value:
            mode = None
        elif key == "manual":
            raise QemuError(
                "'manual' stands alone: the person at the prompt plays the guest, "
                "so no guest option applies",
                location=f"-guest {text}",
            )
        elif key == "ignore-unplug" and not value:
            ignore_unplug = True
        elif key == "refuse-unplug" and not value:
            refuse_unplug = True
        elif key == "abandon-configure" and value.isdigit():
            abandon = int(value)
        elif key == "wrong-indices" and not value:
            wrong = WrongIndices()
        elif key == "event-scan" and value in ("on", "off"):
            timing = attrs.evolve(timing, event_scan=value == "on")
        elif key == "xive" and value in ("on", "off"):
            xive_off = value == "off"
        else:
            raise QemuError(
                f"invalid -guest value '{part}' (use linux, drmgr, none, manual, ignore-unplug, "
                "refuse-unplug, abandon-configure=K, wrong-indices, event-scan=on|off, "
                "xive=on|off; combine with '+')",
                location=f"-guest {text}",
            )
    misbehavior = Misbehavior(
        ignore_unplug=ignore_unplug,
        refuse_unplug=refuse_unplug,
        abandon_configure_after=abandon,
        wrong_indices=wrong,
    )
    return GuestChoice(mode, misbehavior, timing, xive_off=xive_off)
