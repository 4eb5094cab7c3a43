"""ibm,associativity of CPU nodes on a NUMA machine, FORM1 before CAS and FORM2 after.

QEMU 7.2 (hw/ppc/spapr_numa.c) writes a vCPU's associativity only when there is
more than one NUMA node, as ``{N + 1, domains..., vcpu id}`` where N is the number
of reference points of the affinity form in force:

* FORM1 (the reset tree, and after CAS when FORM2 is not negotiated): 4 reference
  points, the node's domains ``{0, 0, 0, node}`` when no ``-numa dist`` is given,
  so ``{5, 0, 0, 0, node, vcpu}`` (six cells; the oracle's p8e_numa_cpu dump);
* FORM2 (pseries-7.2 offers OV5 byte 5 bit 0x20; Linux 6.1 asks for it at CAS):
  1 reference point, the domain is the node id, so ``{2, node, vcpu}`` (three
  cells), in the tree CAS hands back and in every hot-plugged core's node.

pseries-6.1 and older do not offer FORM2 (pre_6_2_numa_affinity), so they stay
FORM1 after CAS. The guest is the reference Linux guest; the values are read from
the trees the machine builds and the guest receives.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fdt import Node, from_dtb
from guest import GuestTiming, LinuxGuest
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine

S = 1_000_000_000
ORACLE_DTB = Path(__file__).parent / "data" / "dtb"
#: The oracle's NUMA configuration: cores 0 and 2 on node 0, cores 1 and 3 on node 1.
NUMA_ARGV = (
    "-cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nodefaults -seed 1 -guest none "
    "-object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M "
    "-numa node,nodeid=0,cpus=0,cpus=2,memdev=m0 -numa node,nodeid=1,cpus=1,cpus=3,memdev=m1"
).split()
NODE_OF_VCPU = {0: 0, 1: 1, 2: 0, 3: 1}


def form1(node: int, vcpu: int) -> tuple[int, ...]:
    """FORM1 vCPU associativity without distances: 4 reference points, then the vcpu id."""
    return (5, 0, 0, 0, node, vcpu)


def form2(node: int, vcpu: int) -> tuple[int, ...]:
    """FORM2 vCPU associativity: 1 reference point (the node), then the vcpu id."""
    return (2, node, vcpu)


def cpu_associativity(root: Node) -> dict[int, tuple[int, ...]]:
    """vcpu id (reg) -> ibm,associativity cells, for every CPU node under /cpus."""
    cpus = root.find("/cpus")
    assert cpus is not None
    return {c["reg"].cells()[0]: c["ibm,associativity"].cells() for c in cpus.children}


def boot_and_fill(machine_type: str) -> tuple[PseriesMachine, LinuxGuest]:
    """Boot the Linux guest (CAS included), then hot-plug cores 2 and 3."""
    machine = build_machine(["-M", machine_type, *NUMA_ARGV], io.StringIO())
    guest = LinuxGuest(timing=GuestTiming(event_scan=False))
    machine.load_guest(guest)
    machine.reset()
    machine.sched.run_for(3 * S)
    assert guest.booted
    for core_id in (2, 3):
        machine.device_add({"driver": machine.core_type, "id": f"c{core_id}", "core-id": core_id})
        machine.sched.run_for(2 * S)
    return machine, guest


def test_reset_tree_is_form1_as_qemu_dumps_it() -> None:
    machine = build_machine(["-M", "pseries", *NUMA_ARGV], io.StringIO())
    ours = cpu_associativity(machine.device_tree().root)
    assert ours == {v: form1(n, v) for v, n in NODE_OF_VCPU.items() if v < 2}
    qemu = from_dtb((ORACLE_DTB / "p8e_numa_cpus.dtb").read_bytes()).root
    assert ours == cpu_associativity(qemu)


def test_form2_after_cas_in_the_guests_tree_and_for_hot_plugged_cores() -> None:
    machine, guest = boot_and_fill("pseries")
    expected = {v: form2(n, v) for v, n in NODE_OF_VCPU.items()}
    assert cpu_associativity(guest.tree) == expected
    assert cpu_associativity(machine.device_tree(reset=False).root) == expected


@pytest.mark.parametrize("machine_type", ["pseries-6.1", "pseries-5.2"])
def test_machines_without_form2_stay_form1_after_cas(machine_type: str) -> None:
    machine, guest = boot_and_fill(machine_type)
    expected = {v: form1(n, v) for v, n in NODE_OF_VCPU.items()}
    assert cpu_associativity(guest.tree) == expected
    assert cpu_associativity(machine.device_tree(reset=False).root) == expected


def test_one_node_machines_carry_no_cpu_associativity() -> None:
    argv = "-M pseries -cpu POWER9 -smp 1,maxcpus=2 -m 1G -nodefaults -guest none".split()
    machine = build_machine(argv, io.StringIO())
    cpus = machine.device_tree().root.find("/cpus")
    assert cpus is not None
    assert all("ibm,associativity" not in c for c in cpus.children)
