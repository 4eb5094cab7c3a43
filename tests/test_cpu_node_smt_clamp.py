"""A CPU node lists no more interrupt servers than its compat mode allows threads.

QEMU 7.2's spapr_dt_cpu writes ``ibm,ppc-interrupt-server#s`` (and the
``gserver#s`` pairs) for ``min(smp.threads, ppc_compat_max_vthreads(cpu))``
threads, where ppc_compat_max_vthreads is the core's thread count capped by the
compat mode's ``max_vthreads`` (target/ppc/compat.c: power6 2, power7 and
power7+ 4, power8, power9 and power10 8). With ``max-cpu-compat`` every CPU runs
in that mode from reset, so the boot tree already shows the clamp, and so does
the node a hot-plugged core hands the guest through ibm,configure-connector.

SMT needs the modeled KVM (QEMU 7.2 refuses threads > 1 under TCG); there is no
live QEMU run to compare with, so the expectations are the formula above.
"""

from __future__ import annotations

import io

import pytest

from guest import GuestTiming, LinuxGuest
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine

S = 1_000_000_000
COMMON = "-m 1G -nodefaults -seed 1 -guest none".split()
#: compat mode -> (logical PVR, max_vthreads), QEMU 7.2's compat table.
COMPAT = {
    "power6": (0x0F000002, 2),
    "power7": (0x0F000003, 4),
    "power7+": (0x0F100003, 4),
    "power8": (0x0F000004, 8),
    "power9": (0x0F000005, 8),
}
POWER9_PVR = 0x004E1200


def kvm_power9(threads: int, compat: str | None) -> PseriesMachine:
    """A modeled-KVM POWER9 machine: one core at boot, room for a second."""
    machine_opt = "pseries" + (f",max-cpu-compat={compat}" if compat else "")
    argv = (
        f"-enable-kvm -cpu POWER9 -smp {threads},maxcpus={2 * threads},threads={threads} "
        f"-M {machine_opt}"
    ).split()
    return build_machine(argv + COMMON, io.StringIO())


def expected_servers(threads: int, compat: str | None) -> int:
    """min(smp.threads, the core's threads capped by the compat mode's max_vthreads)."""
    return threads if compat is None else min(threads, COMPAT[compat][1])


@pytest.mark.parametrize(
    ("threads", "compat"),
    [
        (8, "power7"),  # the seed's example: 8 threads, POWER7 compat -> 4 servers
        (8, "power7+"),
        (8, "power6"),
        (8, "power8"),
        (8, "power9"),
        (8, None),
        (4, "power7"),
        (2, "power7"),
    ],
)
def test_boot_cpu_node_lists_the_clamped_thread_count(threads: int, compat: str | None) -> None:
    tree = kvm_power9(threads, compat).device_tree()
    node = tree.root.find("/cpus/PowerPC,POWER9@0")
    assert node is not None
    n = expected_servers(threads, compat)
    assert node["ibm,ppc-interrupt-server#s"].cells() == tuple(range(n))
    gservers = node["ibm,ppc-interrupt-gserver#s"].cells()
    assert gservers == tuple(v for i in range(n) for v in (i, 0))
    pvr = POWER9_PVR if compat is None else COMPAT[compat][0]
    assert node["cpu-version"].cells() == (pvr,)


def test_hot_plugged_core_under_power7_compat_hands_the_guest_four_servers() -> None:
    """device_add of an SMT8 core: the node the guest builds from configure-connector."""
    machine = kvm_power9(8, "power7")
    guest = LinuxGuest(timing=GuestTiming(event_scan=False))
    machine.load_guest(guest)
    machine.reset()
    machine.sched.run_for(3 * S)
    assert guest.booted
    machine.device_add({"driver": machine.core_type, "id": "core8", "core-id": 8})
    machine.sched.run_for(2 * S)
    node = guest.tree.find("/cpus/PowerPC,POWER9@8")
    assert node is not None, "the guest did not attach the hot-plugged core's node"
    assert node["ibm,ppc-interrupt-server#s"].cells() == (8, 9, 10, 11)
    assert node["ibm,ppc-interrupt-gserver#s"].cells() == (8, 0, 9, 0, 10, 0, 11, 0)
    assert node["cpu-version"].cells() == (COMPAT["power7"][0],)
    # The machine's own tree, rebuilt now, says the same for both cores.
    tree = machine.device_tree(reset=False)
    for vcpu in (0, 8):
        cpu = tree.root.find(f"/cpus/PowerPC,POWER9@{vcpu:x}")
        assert cpu is not None
        assert cpu["ibm,ppc-interrupt-server#s"].cells() == tuple(range(vcpu, vcpu + 4))
