"""A connector implementation with one bug, and the kit finding it.

``LaxConnector`` is QEMU's logical DR connector except that it lets the guest walk
ibm,configure-connector while the connector is isolated (state AVAILABLE): PAPR
allows the walk only once the guest has unisolated it (UNISOLATE) or on a
configured one (CONFIGURED); QEMU answers -9003 (NOT_CONFIGURABLE) otherwise
(hw/ppc/spapr_drc.c, rtas_ibm_configure_connector; protocol.md §4.6).

Two checks find it: :class:`~conformance.ConnectorMachine` drives the connector
alone beside QEMU's, and :class:`~conformance.HotplugMachine` runs it inside a
whole machine with a guest that takes DLPAR steps in any order. Run it with
``pytest docs/examples/broken_connector.py``: both tests fail, and hypothesis
prints the shortest sequences it found (docs/conformance.md shows them).
"""

from __future__ import annotations

import attrs

from conformance import ConnectorMachine, HotplugMachine, MachineArgs, kit_settings
from spapr.drc import DRC, CCResponse, DRCState


@attrs.define(eq=False)
class LaxConnector(DRC):
    """QEMU's connector, but configure-connector also works while isolated (the bug)."""

    def configure_connector_step(self) -> CCResponse:
        if self.state == DRCState.LOGICAL_AVAILABLE and self.device is not None:
            self.state = DRCState.LOGICAL_UNISOLATE  # walk as if the guest had unisolated
        return super().configure_connector_step()


class LaxConnectorAlone(ConnectorMachine):
    """The connector by itself, call for call against QEMU 7.2's."""

    connector_factory = LaxConnector


class LaxConnectorInAMachine(HotplugMachine):
    """The connector in every CPU slot of a small machine; the rules play the guest."""

    machine_args = MachineArgs(cpu="POWER9", cpus=1, cores=2, maxcpus=2)
    guest_behaviour = None  # no OS: the rules make the guest's DLPAR calls
    hostile_rtas = False  # well-formed DLPAR steps, in any order
    connector_factory = LaxConnector


TestLaxConnectorAlone = LaxConnectorAlone.TestCase
LaxConnectorInAMachine.TestCase.settings = kit_settings(max_examples=500, stateful_step_count=20)
TestLaxConnectorInAMachine = LaxConnectorInAMachine.TestCase
