"""The parts of the hotplug machine a user can replace: the guest, and the CPU connector.

Both are structural (:class:`typing.Protocol`): nothing needs to inherit from the
kit. The reference implementations satisfy them -- :class:`conformance.guests.ReferenceGuest`
(Linux 6.1's DLPAR) is a :class:`Guest`, and :class:`spapr.drc.DRC` (QEMU 7.2's
connector) is a :class:`Connector` made by a :class:`ConnectorFactory` -- so a
user's guest model or connector implementation is run against the same machine,
the same rules and the same invariants.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator
from typing import Any, Protocol, runtime_checkable

from rtas import GuestMemory
from rtas.codes import EntitySense, RtasStatus
from spapr.drc import CCResponse, DRCState, DrcType
from spapr.trace import TraceRecorder

#: A guest program: a generator of platform operations (``(EXECUTE, ns)``,
#: ``(Hcall.H_CEDE,)``, ``(Hcall.KVMPPC_H_RTAS, buffer address)``, ...) that receives
#: each operation's result; see machine/sched for the operations.
GuestProgram = Generator[tuple[Any, ...], Any, Any]


@runtime_checkable
class Guest(Protocol):
    """An operating system the machine boots: what a DLPAR implementation must provide.

    The machine gives the guest its RAM (and its timebase) with :meth:`attach`,
    starts the boot vCPU at :attr:`entry_point` with r3 = the device-tree blob's
    address, and asks :meth:`program_factory` for the program of every vCPU it
    starts (the boot CPU, and each thread the guest starts itself with RTAS
    start-cpu). The guest talks to the machine only through those programs'
    operations: hypercalls (H_RTAS with an argument buffer in its memory, CAS,
    XICS, H_CEDE) and what it reads from memory.

    :meth:`online_hwids` is the guest's view the kit compares with the machine's
    once both are quiet: the hardware thread ids (vCPU ids) the guest runs as
    online CPUs.
    """

    @property
    def entry_point(self) -> int:
        """Where the machine starts the boot vCPU."""
        ...

    def attach(self, memory: GuestMemory, timebase: Callable[[], int] | None = None) -> None:
        """Receive the guest RAM and the virtual clock (ns) before the first boot."""
        ...

    def program_factory(self, vcpu_id: int, entry: int, r3: int) -> GuestProgram:
        """The program vCPU ``vcpu_id`` runs from ``entry`` with r3 = ``r3``."""
        ...

    def online_hwids(self) -> Collection[int]:
        """Hardware thread ids of the CPUs the guest has online (empty before it booted)."""
        ...


#: The machine's hooks a connector calls: release (give the device back) and rejection.
ConnectorHook = Callable[[Any, Any], None]
#: Builds the device-tree fragment configure-connector walks for a device (None: none).
FragmentBuilder = Callable[[Any], Any]


@runtime_checkable
class Connector(Protocol):
    """A DR connector's state machine (PAPR 13.5.3; QEMU 7.2 hw/ppc/spapr_drc.c).

    Guest side (RTAS): :meth:`set_isolation_state` (indicator 9001),
    :meth:`set_allocation_state` (9003), :meth:`set_dr_indicator` (9002),
    :meth:`entity_sense` (sensor 9003) and :meth:`configure_connector_step` (one
    ``ibm,configure-connector`` call) return the PAPR status the guest reads.
    Host side: :meth:`attach` a device, :meth:`unplug_request` it back,
    :meth:`reset` at machine reset and CAS. Whenever the device is given back the
    connector calls the ``on_release(connector, device)`` hook it was made with;
    when the guest refuses a pending unplug (UNISOLATE while one is pending), the
    ``on_unplug_rejected(connector, device)`` hook.

    The kit reads :attr:`state` (a :class:`~spapr.drc.DRCState`), :attr:`device`
    and :attr:`unplug_requested` after every call and checks them against the PAPR
    table of spapr/drc.py, and every answer against QEMU 7.2's connector.
    """

    @property
    def state(self) -> DRCState:
        """The connector's state."""
        ...

    @property
    def device(self) -> object | None:
        """The attached device, or None."""
        ...

    @property
    def unplug_requested(self) -> bool:
        """The host asked for the device back and the guest has not given it yet."""
        ...

    def attach(self, device: object) -> None:
        """Plug ``device`` (the connector must be empty)."""
        ...

    def unplug_request(self) -> bool:
        """Ask for the device back; True if it was released at once."""
        ...

    def reset(self) -> bool:
        """Machine reset / CAS: finish a pending unplug, then ready or empty; True if released."""
        ...

    def set_isolation_state(self, value: int) -> RtasStatus:
        """set-indicator 9001."""
        ...

    def set_allocation_state(self, value: int) -> RtasStatus:
        """set-indicator 9003."""
        ...

    def set_dr_indicator(self, value: int) -> RtasStatus:
        """set-indicator 9002."""
        ...

    def entity_sense(self) -> tuple[RtasStatus, EntitySense]:
        """get-sensor-state 9003: status and sensor value."""
        ...

    def configure_connector_step(self) -> CCResponse:
        """One ibm,configure-connector call: the next node or property, or a status."""
        ...


class ConnectorFactory(Protocol):
    """Makes a connector: ``spapr.drc.DRC`` itself is one (its constructor has this shape)."""

    def __call__(
        self,
        type: DrcType,
        id: int,
        *,
        trace: TraceRecorder = ...,
        on_release: ConnectorHook = ...,
        on_unplug_rejected: ConnectorHook = ...,
        build_fragment: FragmentBuilder = ...,
    ) -> Connector:
        """A new, empty connector of ``type`` with ``id``, calling these hooks."""
        ...
