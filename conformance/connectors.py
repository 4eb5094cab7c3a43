"""Putting a connector implementation into a running machine, and checking it call by call.

:func:`install_connectors` replaces every CPU connector of a machine by a
:class:`CheckedConnector`: the machine's own object (a :class:`spapr.drc.DRC`, so
the monitor, the device tree and migration see it as before) whose state-machine
calls go to an implementation made by a :class:`~conformance.protocols.ConnectorFactory`
-- QEMU's own (``spapr.drc.DRC``) by default, or a user's. Each call also goes to
a private reference connector (QEMU 7.2's, from spapr/drc.py); the two answers,
and the states they leave, are compared, and the first difference is kept as a
:class:`Discrepancy` for the kit's invariants to report. After every call the
wrapper copies the implementation's state, device and unplug flag into itself,
so the rest of the machine sees the implementation's view.

The wrapper also notes when a device is released with one of its vCPU threads
not stopped (the guest gave the connector back before the thread called
stop-self): a release is only safe once every thread of the core has stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from conformance.protocols import Connector, ConnectorFactory
from machine.board.pseries import PseriesMachine
from machine.sched import VcpuState
from rtas.codes import EntitySense, RtasStatus
from spapr.cpu_core import SpaprCpuCore
from spapr.drc import DRC, CCResponse, DrcType
from spapr.trace import TraceRecorder


@attrs.frozen
class Discrepancy:
    """A call where the implementation and QEMU's connector disagreed."""

    index: int
    operation: str
    #: (answer, state after, device attached, unplug requested) of the implementation.
    got: tuple[Any, ...]
    #: The same for QEMU 7.2's connector.
    expected: tuple[Any, ...]

    def describe(self) -> str:
        """One readable line."""
        fields = ("answer", "state", "device attached", "unplug requested")
        diffs = [
            f"{name}: {g!r} (QEMU 7.2: {e!r})"
            for name, g, e in zip(fields, self.got, self.expected)
            if g != e
        ]
        return f"connector 0x{self.index:x} {self.operation}: " + "; ".join(diffs)


@attrs.frozen
class EarlyRelease:
    """A core given back while some of its vCPU threads had not stopped."""

    index: int
    core: str
    running: tuple[int, ...]

    def describe(self) -> str:
        """One readable line."""
        threads = ", ".join(str(v) for v in self.running)
        return (
            f"connector 0x{self.index:x} released {self.core} while vCPU(s) {threads} "
            "had not stopped (stop-self)"
        )


def _answer(value: Any) -> Any:
    """A comparable form of a connector's answer."""
    if isinstance(value, CCResponse):
        return (int(value.code), value.name, value.value)
    if isinstance(value, tuple):
        return tuple(_answer(v) for v in value)
    if isinstance(value, int):
        return int(value)
    return value


@attrs.define(eq=False)
class CheckedConnector(DRC):
    """A machine connector whose calls go to ``impl`` and, for comparison, to QEMU's.

    Built by :func:`install_connectors`; ``impl`` is the implementation under test,
    ``reference`` QEMU 7.2's connector driven with the same calls.
    """

    impl: Connector | None = attrs.field(default=None, repr=False)
    reference: DRC | None = attrs.field(default=None, repr=False)
    discrepancies: list[Discrepancy] = attrs.field(factory=list, repr=False)
    early_releases: list[EarlyRelease] = attrs.field(factory=list, repr=False)
    #: Whether a vCPU is stopped (stop-self / never started); set by the installer.
    vcpu_stopped: Callable[[int], bool] = attrs.field(default=lambda _v: True, repr=False)

    # -- plumbing -------------------------------------------------------------

    def _sync(self) -> None:
        impl = self.impl
        assert impl is not None
        self.state = impl.state
        self.device = impl.device
        self.unplug_requested = impl.unplug_requested
        self.fragment = getattr(impl, "fragment", self.fragment)

    def _view(self, impl: Connector | DRC, answer: Any) -> tuple[Any, ...]:
        return (_answer(answer), impl.state, impl.device is not None, impl.unplug_requested)

    def _call(self, operation: str, run: Callable[[Any], Any]) -> Any:
        impl = self.impl
        assert impl is not None
        got = run(impl)
        self._sync()
        reference = self.reference
        if reference is not None:
            expected = run(reference)
            mine, theirs = self._view(impl, got), self._view(reference, expected)
            if mine != theirs and not self.discrepancies:
                self.discrepancies.append(Discrepancy(self.index, operation, mine, theirs))
        return got

    def impl_released(self, _impl: Any, device: Any) -> None:
        """The implementation gave ``device`` back: check its threads, then tell the machine."""
        if isinstance(device, SpaprCpuCore):
            running = tuple(t.vcpu_id for t in device.threads if not self.vcpu_stopped(t.vcpu_id))
            if running:
                self.early_releases.append(EarlyRelease(self.index, device.qom_path, running))
        self.on_release(self, device)

    def impl_rejected(self, _impl: Any, device: Any) -> None:
        """The implementation saw the guest refuse an unplug: tell the machine."""
        self.on_unplug_rejected(self, device)

    # -- the state machine ------------------------------------------------------

    def attach(self, device: object) -> None:
        self._call("attach", lambda c: c.attach(device))

    def unplug_request(self) -> bool:
        return bool(self._call("unplug_request", lambda c: c.unplug_request()))

    def release(self) -> None:
        self._call("release", lambda c: c.release())

    def reset(self) -> bool:
        return bool(self._call("reset", lambda c: c.reset()))

    def set_isolation_state(self, value: int) -> RtasStatus:
        return RtasStatus(
            self._call(f"set-indicator 9001 {value}", lambda c: c.set_isolation_state(value))
        )

    def set_allocation_state(self, value: int) -> RtasStatus:
        return RtasStatus(
            self._call(f"set-indicator 9003 {value}", lambda c: c.set_allocation_state(value))
        )

    def set_dr_indicator(self, value: int) -> RtasStatus:
        return RtasStatus(
            self._call(f"set-indicator 9002 {value}", lambda c: c.set_dr_indicator(value))
        )

    def entity_sense(self) -> tuple[RtasStatus, EntitySense]:
        status, sense = self._call("get-sensor-state 9003", lambda c: c.entity_sense())
        return RtasStatus(status), EntitySense(sense)

    def configure_connector_step(self) -> CCResponse:
        response: CCResponse = self._call(
            "ibm,configure-connector", lambda c: c.configure_connector_step()
        )
        return response

    def drop_fragment(self) -> None:
        for target in (self.impl, self.reference):
            drop = getattr(target, "drop_fragment", None)
            if drop is not None:
                drop()
        self._sync()


def _vcpu_stopped(machine: PseriesMachine) -> Callable[[int], bool]:
    def stopped(vcpu_id: int) -> bool:
        if machine.sched.find_vcpu(vcpu_id) is None:
            return True
        return machine.sched.state(vcpu_id) is VcpuState.STOPPED

    return stopped


def install_connectors(
    machine: PseriesMachine,
    factory: ConnectorFactory = DRC,
    *,
    compare: bool = True,
) -> list[CheckedConnector]:
    """Replace the machine's CPU connectors by :class:`CheckedConnector`\\ s over ``factory``.

    Call it on a freshly built machine (cores may be attached: each new connector
    is given the device and reset, as QEMU's are for cold-plugged cores). With
    ``compare`` every call is also checked against QEMU 7.2's connector.
    """
    installed: list[CheckedConnector] = []
    stopped = _vcpu_stopped(machine)
    for old in list(machine.drcs):
        if old.type is not DrcType.CPU or isinstance(old, CheckedConnector):
            continue
        checked = CheckedConnector(
            old.type,
            old.id,
            trace=old.trace,
            on_release=old.on_release,
            on_unplug_rejected=old.on_unplug_rejected,
            build_fragment=old.build_fragment,
            owner=old.owner,
            vcpu_stopped=stopped,
        )
        checked.impl = factory(
            old.type,
            old.id,
            trace=old.trace,
            on_release=checked.impl_released,
            on_unplug_rejected=checked.impl_rejected,
            build_fragment=old.build_fragment,
        )
        if compare:
            checked.reference = DRC(
                old.type, old.id, trace=TraceRecorder(keep=False), build_fragment=old.build_fragment
            )
        if old.device is not None:
            device = old.device
            checked.attach(device)
            if old.is_ready:
                checked.reset()
            if old.unplug_requested:
                checked.unplug_request()
        checked._sync()
        machine.drcs.replace(checked)
        qom = machine.qom.find_payload(old)
        if qom is not None:
            qom.payload = checked
        installed.append(checked)
    return installed
