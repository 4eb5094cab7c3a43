"""How a guest is built: which era of Linux it models, its timings, and its misbehaviours.

:class:`GuestMode` chooses between Linux 6.1's in-kernel DLPAR (the default) and the
older path where the kernel only logs the event and rtas_errd + drmgr do the DR
work from user space. :class:`Misbehavior` makes the guest deliberately wrong in
one of the ways tests and lab exercises need, without ever stopping the guest.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

#: Services whose DRC index (or hardware thread id) a wrong-index guest corrupts.
DRC_INDEX_SERVICES = frozenset({"get-sensor-state", "set-indicator", "ibm,configure-connector"})
HWID_SERVICES = frozenset({"start-cpu", "query-cpu-stopped-state"})


class GuestMode(enum.Enum):
    """Which guest software stack answers hotplug events."""

    #: Linux 6.1: OV5_HP_EVT at CAS, hot-plug-events IRQ, in-kernel dlpar_cpu.
    IN_KERNEL_DLPAR = "in-kernel-dlpar"
    #: An older guest: no OV5_HP_EVT, events on the EPOW IRQ, rtas_errd runs drmgr.
    RTAS_ERRD_DRMGR = "rtas_errd-drmgr"


def _as_services(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _check_services(_inst: object, _attr: object, value: frozenset[str]) -> None:
    unknown = value - DRC_INDEX_SERVICES - HWID_SERVICES
    if unknown:
        raise ValueError(f"wrong-index services must be among DR/CPU calls, not {sorted(unknown)}")


@attrs.frozen
class WrongIndices:
    """Call some DR services with a wrong DRC index or hardware thread id.

    Each listed service gets its index (get-sensor-state, set-indicator,
    ibm,configure-connector) or thread id (start-cpu, query-cpu-stopped-state)
    shifted by the delta during DLPAR work; the guest logs every such call with
    the status it got and then follows Linux's error handling.
    """

    services: frozenset[str] = attrs.field(
        default=DRC_INDEX_SERVICES, converter=_as_services, validator=_check_services
    )
    drc_index_delta: int = 0x100
    hwid_delta: int = 0x100


@attrs.frozen
class Misbehavior:
    """Deliberate guest faults (all off by default)."""

    #: Never answer REMOVE events (take the interrupt, drop the request).
    ignore_unplug: bool = False
    #: Refuse every REMOVE: no CPU can be taken offline (cpu_down fails with -EBUSY), so
    #: Linux gives the DRC back (unisolates it), which QEMU reports as
    #: DEVICE_UNPLUG_GUEST_ERROR.
    refuse_unplug: bool = False
    #: Stop a configure-connector walk after this many calls, leaving the DRC isolated.
    abandon_configure_after: int | None = attrs.field(default=None)
    #: Call DR services with wrong indices.
    wrong_indices: WrongIndices | None = None

    @abandon_configure_after.validator
    def _check_abandon(self, _attr: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"abandon_configure_after must be >= 0, got {value}")


@attrs.frozen
class GuestTiming:
    """Virtual time the guest spends in its code paths (ns), and its periodic work."""

    #: Kernel boot before the first platform call.
    boot_ns: int = 1_000_000
    #: A secondary thread from start-cpu to calling in.
    secondary_start_ns: int = 50_000
    #: Cost of an interrupt handler's own code.
    irq_handler_ns: int = 1_000
    #: Cost of one step of DLPAR work between RTAS calls.
    dlpar_step_ns: int = 2_000
    #: Spin granularity while waiting for a CPU to call in.
    callin_spin_ns: int = 100_000
    #: Poll interval of pseries_cpu_die's query-cpu-stopped-state loop.
    die_poll_ns: int = 100_000
    #: First event-scan after boot, then per CPU until every CPU had one (rtasd).
    event_scan_first_ns: int = 1_000_000_000
    #: Period once every CPU had one; None means 30 s / rtas-event-scan-rate.
    event_scan_period_ns: int | None = None
    #: Run rtasd's periodic event-scan at all.
    event_scan: bool = True
    #: Cost of one user-space step (rtas_errd, drmgr).
    userspace_step_ns: int = 20_000
    #: How often the guest's shell looks for sysfs requests (None: only when woken).
    user_poll_ns: int | None = 1_000_000_000
