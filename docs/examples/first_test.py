"""A first test with the kit: a machine of my own, one extra invariant, one property.

``MyMachine`` runs the kit's state machine on a 3-slot POWER10 machine with the
reference Linux guest, and adds a check of its own: the guest never runs more
CPUs than the machine has threads. ``test_my_admission_check`` checks a small
admission function (what a management tool might run before device_add) against
QEMU 7.2's refusals, which the kit's strategy carries.
"""

import re
from typing import Any

from hypothesis import given
from hypothesis.stateful import invariant

from conformance import CoreArgs, HotplugMachine, MachineArgs, kit_settings, online_hwids
from conformance.strategies import invalid_core_device_args

CONFIG = MachineArgs(cpu="POWER10", cpus=1, cores=3, maxcpus=3)


class MyMachine(HotplugMachine):
    machine_args = CONFIG

    @invariant()
    def guest_runs_no_more_cpus_than_threads(self) -> None:
        threads = {t.vcpu_id for t in self.machine.iter_threads()}
        assert set(online_hwids(self.guest)) <= threads


MyMachine.TestCase.settings = kit_settings(max_examples=10, stateful_step_count=15)
TestMyMachine = MyMachine.TestCase


def admits(args: dict[str, Any]) -> bool:
    """My tool's own check before it sends device_add."""
    return (
        args.get("driver") == CONFIG.core_type
        and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", str(args.get("id", "a"))) is not None
        and set(args) <= {"driver", "id", "core-id", "node-id", "nr-threads"}
        and isinstance(args.get("core-id"), int)
        and args["core-id"] in CONFIG.free_core_ids
        and args.get("nr-threads", 1) == 1
        and args.get("node-id", 0) in (0, -1)
    )


@given(invalid_core_device_args(CONFIG))
def test_my_admission_check(bad: CoreArgs) -> None:
    assert bad.refusal is not None  # QEMU 7.2 refuses it: so must my tool
    assert not admits(dict(bad.args)), f"admitted what QEMU refuses: {bad.refusal.desc}"
