"""The kit's state machines hold on the emulator, catch what they claim to, and replay exactly.

HotplugMachine runs here in its three guest modes (the reference Linux guest, the
rtas_errd + drmgr one with a fault, and no OS with the rules as a hostile guest);
ConnectorMachine runs QEMU's own connector. Then each kind of check is shown to
fire on a machine that breaks it, and a failure is shown to replay byte for byte.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import Phase, settings
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.stateful import run_state_machine_as_test

from conformance import (
    ConnectorMachine,
    GuestBehaviour,
    HotplugMachine,
    MachineArgs,
    kit_settings,
    online_hwids,
)
from conformance.strategies import P8E_CLASSIC
from guest import GuestMode, Misbehavior
from spapr.drc import DRC, CCResponse, DRCState
from spapr.errors import QemuError

QUICK = kit_settings(max_examples=12, stateful_step_count=20)


class LinuxGuestMachine(HotplugMachine):
    """The reference Linux 6.1 guest on POWER9 (the default)."""


class DrmgrIgnoringUnplugMachine(HotplugMachine):
    """rtas_errd + drmgr that never answers an unplug, on POWER8E."""

    machine_args = P8E_CLASSIC
    guest_behaviour = GuestBehaviour(
        mode=GuestMode.RTAS_ERRD_DRMGR, misbehavior=Misbehavior(ignore_unplug=True)
    )


class HostileGuestMachine(HotplugMachine):
    """No OS: the rules make raw and hostile RTAS calls."""

    guest_behaviour = None


class SmtKvmHostileMachine(HotplugMachine):
    """The modelled KVM host with SMT4 cores; hostile guest."""

    machine_args = MachineArgs(accel="kvm", cpu="host", cpus=4, cores=3, threads=4, maxcpus=12)
    guest_behaviour = None


for _cls in (LinuxGuestMachine, DrmgrIgnoringUnplugMachine, HostileGuestMachine):
    _cls.TestCase.settings = QUICK
SmtKvmHostileMachine.TestCase.settings = kit_settings(max_examples=8, stateful_step_count=20)
ConnectorMachine.TestCase.settings = kit_settings(max_examples=60, stateful_step_count=40)

TestLinuxGuestMachine = LinuxGuestMachine.TestCase
TestDrmgrIgnoringUnplugMachine = DrmgrIgnoringUnplugMachine.TestCase
TestHostileGuestMachine = HostileGuestMachine.TestCase
TestSmtKvmHostileMachine = SmtKvmHostileMachine.TestCase
TestQemuConnector = ConnectorMachine.TestCase


# ---------------------------------------------------------------- single runs


def test_a_hot_added_core_is_configured_onlined_and_removed_by_the_guest() -> None:
    m = LinuxGuestMachine()
    m.settle()
    m.device_add(slot=2, dev_id="c1", spelling="int", fault=None)
    m.settle()
    assert m.quiet
    m.guest_view_matches_once_quiet()
    assert len(online_hwids(m.guest)) == 3
    m.device_del(who="c1")
    m.settle()
    m.cores_neither_lost_nor_duplicated()
    m.every_device_del_ends()
    assert "/machine/peripheral/c1" not in m.model.present
    m.teardown()


def test_migration_continues_on_the_destination() -> None:
    m = LinuxGuestMachine()
    assert m.guest_option == "linux"
    m.settle()
    m.device_add(slot=3, dev_id="c2", spelling="str", fault=None)
    m.settle()
    assert m.migratable()
    before = m.machine
    m.migrate()
    assert m.machine is not before
    m.check_all()
    m.settle()
    m.guest_view_matches_once_quiet()
    m.device_del(who="c2")
    m.settle()
    m.every_device_del_ends()
    m.teardown()


def test_refusals_are_asserted_with_qemus_class_and_text() -> None:
    m = HostileGuestMachine()
    assert m.expected_device_del("/machine/unattached/device[1]") is not None
    for fault in ("bad-id", "wrong-core-type", "negative-core-id", "node-id"):
        args = m.core_args(2, "c1", "int", fault)
        expected = m.expected_device_add(args)
        assert expected is not None
        with pytest.raises(QemuError) as refused:
            m.machine.device_add(args)
        assert (refused.value.error_class, refused.value.message) == (
            expected.error_class,
            expected.desc,
        )
    m.teardown()


# ---------------------------------------------------------------- each check catches its bug


def _failure(machine: type[Any], **overrides: Any) -> str:
    """Run ``machine`` until it fails; the error message and hypothesis's steps."""
    chosen = {
        "max_examples": 200,
        "stateful_step_count": 15,
        "database": None,
        "derandomize": True,
        "phases": (Phase.generate,),
        "report_multiple_bugs": False,
        **overrides,
    }
    with pytest.raises(AssertionError) as failed:
        run_state_machine_as_test(machine, settings=kit_settings(**chosen))
    return str(failed.value) + "\n" + "\n".join(getattr(failed.value, "__notes__", []))


@attrs.define(eq=False)
class WalksWhileIsolated(DRC):
    """configure-connector also in AVAILABLE (PAPR: only UNISOLATE/CONFIGURED)."""

    def configure_connector_step(self) -> CCResponse:
        if self.state == DRCState.LOGICAL_AVAILABLE and self.device is not None:
            self.state = DRCState.LOGICAL_UNISOLATE
        return super().configure_connector_step()


@attrs.define(eq=False)
class ForgetsUnplug(DRC):
    """Drops the unplug request on reset instead of completing it."""

    def reset(self) -> bool:
        self.unplug_requested = False
        return super().reset()


def test_connector_machine_catches_a_walk_while_isolated() -> None:
    class Check(ConnectorMachine):
        connector_factory = WalksWhileIsolated

    text = _failure(Check, max_examples=300, stateful_step_count=30)
    assert "ibm,configure-connector: answered (2," in text
    assert "QEMU 7.2 answers (-9003, None, None)" in text


def test_connector_machine_catches_a_forgotten_unplug() -> None:
    class Check(ConnectorMachine):
        connector_factory = ForgetsUnplug

    text = _failure(Check, max_examples=300, stateful_step_count=30)
    assert "reset" in text


def test_hotplug_machine_catches_a_core_lost_without_device_deleted() -> None:
    class Silent(HostileGuestMachine):
        def _on_event(self, event: Any) -> None:
            if event.name != "DEVICE_DELETED":
                super()._on_event(event)

    text = _failure(Silent)
    assert "vanished with 0 DEVICE_DELETED events" in text


def test_hotplug_machine_catches_a_refusal_the_model_does_not_expect() -> None:
    class WrongModel(HostileGuestMachine):
        def expected_device_del(self, target: str) -> Any:
            return None  # pretends QEMU accepts every device_del

    text = _failure(WrongModel)
    assert "refused" in text and "device_del" in text


# ---------------------------------------------------------------- replays exactly


def test_a_failure_replays_byte_for_byte_from_seed_and_database() -> None:
    class Check(ConnectorMachine):
        connector_factory = WalksWhileIsolated

    # The same seed gives the same failure, shrunk the same way.
    shrunk = {
        "max_examples": 300,
        "stateful_step_count": 30,
        "phases": (Phase.generate, Phase.shrink),
    }
    first = _failure(Check, derandomize=True, **shrunk)
    assert _failure(Check, derandomize=True, **shrunk) == first
    # A failure found once is saved in the database and replayed as it was, nothing generated.
    db = InMemoryExampleDatabase()
    found = _failure(Check, derandomize=False, database=db, **shrunk)
    replayed = _failure(Check, derandomize=False, database=db, phases=(Phase.reuse,))
    assert replayed == found


def test_settings_are_the_kits_for_every_subclass() -> None:
    class Mine(HotplugMachine):
        pass

    chosen: settings = Mine.TestCase.settings
    assert chosen.deadline is None
    assert Phase.explain not in chosen.phases
