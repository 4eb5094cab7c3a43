"""ConnectorMachine: one connector implementation against QEMU 7.2's, call for call.

Where :class:`~conformance.statemachine.HotplugMachine` runs a connector inside a
whole machine, this state machine drives a single connector directly -- every
host operation (attach, unplug request, reset) and every guest call (set-indicator
9001/9002/9003 with any value, get-sensor-state, configure-connector) in any
order -- and a QEMU 7.2 connector (spapr.drc.DRC) beside it. After each call
the answers, the states, the attached device, the unplug flag and the devices
released must be the same, and the state must be one of the PAPR table's. It
runs thousands of calls a second, so it is the first check for a new connector
implementation; HotplugMachine then checks it in the machine.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conformance.connectors import _answer
from conformance.protocols import Connector, ConnectorFactory
from conformance.statemachine import kit_settings
from fdt import Node, Property
from spapr.drc import DRC, LOGICAL, DrcType


@attrs.frozen
class Device:
    """A stand-in for the core a connector holds (only its identity matters here)."""

    number: int


def sample_fragment(device: Any) -> Node:
    """A small device-tree node for configure-connector to walk (a node with a child)."""
    node = Node(f"PowerPC,POWER9@{device.number * 8:x}")
    node.set_property(Property.string("device_type", "cpu"))
    node.set_property(Property.cells("reg", device.number * 8))
    child = Node("l2-cache@0")
    child.set_property(Property.cells("reg", 0))
    node.add_subnode(child)
    return node


class ConnectorMachine(RuleBasedStateMachine):
    """A connector made by :attr:`connector_factory` beside QEMU 7.2's, driven call for call.

    Set :attr:`connector_factory` in a subclass (a class or function with
    ``spapr.drc.DRC``'s constructor shape). Rules and invariants may be added or
    overridden as in any hypothesis state machine.
    """

    connector_factory: ClassVar[ConnectorFactory] = DRC
    #: The connector type checked (CPU connectors use PAPR's logical state machine).
    drc_type: ClassVar[DrcType] = DrcType.CPU

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TestCase.settings = kit_settings(max_examples=200, stateful_step_count=40)

    def __init__(self) -> None:
        super().__init__()
        self.released: list[Any] = []
        self.rejected: list[Any] = []
        self.expected_released: list[Any] = []
        self.expected_rejected: list[Any] = []
        self.devices = 0
        factory = type(self).connector_factory
        self.impl: Connector = factory(
            self.drc_type,
            1,
            on_release=lambda _c, dev: self.released.append(dev),
            on_unplug_rejected=lambda _c, dev: self.rejected.append(dev),
            build_fragment=sample_fragment,
        )
        self.reference = DRC(
            self.drc_type,
            1,
            on_release=lambda _c, dev: self.expected_released.append(dev),
            on_unplug_rejected=lambda _c, dev: self.expected_rejected.append(dev),
            build_fragment=sample_fragment,
        )

    def both(self, what: str, call: Any) -> None:
        """Make the same call on both connectors and demand the same outcome."""
        got = _answer(call(self.impl))
        expected = _answer(call(self.reference))
        assert got == expected, f"{what}: answered {got!r}; QEMU 7.2 answers {expected!r}"
        assert self.impl.state == self.reference.state, (
            f"{what}: left the connector in {self.impl.state!r}; "
            f"QEMU 7.2 leaves it in {self.reference.state!r}"
        )

    # ------------------------------------------------------------ host side

    @precondition(lambda self: self.reference.device is None)
    @rule()
    def attach(self) -> None:
        """Plug a new device into the empty connector (device_add)."""
        self.devices += 1
        device = Device(self.devices)
        self.both("attach", lambda c: c.attach(device))

    @precondition(lambda self: self.reference.device is not None)
    @rule()
    def unplug_request(self) -> None:
        """Ask for the device back (device_del)."""
        self.both("unplug request", lambda c: c.unplug_request())

    @rule()
    def reset(self) -> None:
        """Machine reset or CAS."""
        self.both("reset", lambda c: c.reset())

    # ------------------------------------------------------------ guest side

    @rule(value=st.sampled_from([0, 1, 0, 1, 2, 0xFFFFFFFF]))
    def set_isolation_state(self, value: int) -> None:
        """set-indicator 9001 (0 isolate, 1 unisolate)."""
        self.both(f"set-indicator 9001 {value}", lambda c: c.set_isolation_state(value))

    @rule(value=st.sampled_from([0, 1, 0, 1, 2, 3, 0xFFFFFFFF]))
    def set_allocation_state(self, value: int) -> None:
        """set-indicator 9003 (0 unusable, 1 usable)."""
        self.both(f"set-indicator 9003 {value}", lambda c: c.set_allocation_state(value))

    @rule(value=st.sampled_from([0, 1, 2, 3, 4]))
    def set_dr_indicator(self, value: int) -> None:
        """set-indicator 9002."""
        self.both(f"set-indicator 9002 {value}", lambda c: c.set_dr_indicator(value))

    @rule()
    def entity_sense(self) -> None:
        """get-sensor-state 9003."""
        self.both("get-sensor-state 9003", lambda c: c.entity_sense())

    @rule(calls=st.integers(1, 8))
    def configure_connector(self, calls: int) -> None:
        """``calls`` ibm,configure-connector calls in a row."""
        for _ in range(calls):
            self.both("ibm,configure-connector", lambda c: c.configure_connector_step())

    # ------------------------------------------------------------ invariants

    @invariant()
    def same_device_and_flags(self) -> None:
        """The same device attached, the same unplug flag, the same releases and refusals."""
        assert self.impl.device is self.reference.device, "attached device differs"
        assert self.impl.unplug_requested == self.reference.unplug_requested, (
            f"unplug_requested {self.impl.unplug_requested}; QEMU 7.2 has "
            f"{self.reference.unplug_requested}"
        )
        assert self.released == self.expected_released, (
            f"released {self.released}; QEMU 7.2 released {self.expected_released}"
        )
        assert self.rejected == self.expected_rejected, "unplug refusals differ"

    @invariant()
    def state_in_papr_table(self) -> None:
        """A logical state, with a device in every state but UNUSABLE (PAPR 13.5.3)."""
        assert self.impl.state in LOGICAL.states, self.impl.state
        if self.impl.state != LOGICAL.empty_state:
            assert self.impl.device is not None, f"{self.impl.state!r} without a device"


ConnectorMachine.TestCase.settings = kit_settings(max_examples=200, stateful_step_count=40)
