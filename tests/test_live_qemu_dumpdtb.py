"""Live differential: the same dumpdtb command lines run by qemu-system-ppc64 and the emulator.

Skipped without ``qemu-system-ppc64``. For every machine version QEMU 7.2 has and
a spread of CPU models and topologies (up to QEMU's 4096-vCPU limit and past it),
both must exit the same way with the same stderr; when QEMU writes a tree, the
emulator's must equal it node for node and property for property (PCI and VIO
nodes aside, see test_dumpdtb_oracle).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from oracle_tools import QEMU
from test_dumpdtb_oracle import run_main, tree_differences

from fdt import from_dtb
from machine.config.machine_types import MACHINE_TYPES

pytestmark = [
    pytest.mark.qemu,
]
COMMON = ["-m", "1G", "-nographic", "-display", "none", "-nodefaults", "-S", "-seed", "1"]

CASES: list[tuple[str, str, str]] = [
    (machine.name, "POWER8E", "2,cores=4,threads=1,maxcpus=4") for machine in MACHINE_TYPES
] + [
    ("pseries", "POWER7", "2,maxcpus=8"),
    ("pseries", "POWER8", "3,sockets=3,cores=2,threads=1,maxcpus=6"),
    ("pseries", "POWER9", "1,cores=4096,threads=1,maxcpus=4096"),
    ("pseries", "POWER9", "1,cores=4097,threads=1,maxcpus=4097"),
    ("pseries", "POWER10", "4,maxcpus=8"),
    ("pseries,max-cpu-compat=power8", "POWER9", "2,maxcpus=4"),
    ("pseries,max-cpu-compat=power7", "POWER8E", "2,maxcpus=4"),
    ("pseries-4.1", "POWER9", "2,maxcpus=4"),
    ("pseries,cap-hpt-max-page-size=16M", "POWER8E", "2,maxcpus=4"),
    ("pseries", "970", "1"),
    ("pseries", "POWER7+", "1,maxcpus=2"),
    ("pseries,vsmt=4", "POWER9", "2,cores=4,threads=1,maxcpus=4"),
    ("pseries-4.2", "POWER8NVL", "2,sockets=2,cores=2,threads=1,maxcpus=4"),
    # XIVE forced (the /interrupt-controller@... node, no XICS RTAS tokens) and its refusals
    ("pseries,ic-mode=xive", "POWER9", "1,cores=4,threads=1,maxcpus=4"),
    ("pseries,ic-mode=xive", "POWER10", "2,maxcpus=8"),
    ("pseries,ic-mode=xive,vsmt=4", "POWER9", "2,cores=4,threads=1,maxcpus=4"),
    ("pseries-4.0,ic-mode=xive", "POWER9", "2,maxcpus=4"),
    ("pseries,ic-mode=xive", "POWER8", "2,maxcpus=4"),
    ("pseries,ic-mode=xive,max-cpu-compat=power8", "POWER9", "2,maxcpus=4"),
    ("pseries-2.12,ic-mode=xive", "POWER9", "2,maxcpus=4"),
    ("pseries,ic-mode=xics", "POWER9", "2,maxcpus=4"),
]
#: Extra options (NUMA, cold-plugged cores) on the classic POWER8E machine.
EXTRA = [
    "-object memory-backend-ram,id=m0,size=256M -object memory-backend-ram,id=m1,size=768M "
    "-numa node,nodeid=0,memdev=m0 -numa node,nodeid=1,memdev=m1 "
    "-numa cpu,node-id=1,core-id=0 -numa cpu,node-id=0,core-id=1 "
    "-numa cpu,node-id=1,core-id=2 -numa cpu,node-id=0,core-id=3",
    "-device power8e_v2.1-spapr-cpu-core,core-id=3 "
    "-device power8e_v2.1-spapr-cpu-core,id=c2,core-id=2",
    "-device power8e_v2.1-spapr-cpu-core,id=c2,core-id=2,node-id=0,nr-threads=1",
    "-numa node,nodeid=0,cpus=0-1 -numa node,nodeid=1,cpus=2-3",
]


def compare_with_qemu(argv: list[str], tmp_path: Path) -> None:
    qemu_dir, our_dir = tmp_path / "qemu", tmp_path / "ours"
    qemu_dir.mkdir()
    our_dir.mkdir()
    assert QEMU is not None
    real = subprocess.run(
        [QEMU, *argv], cwd=qemu_dir, capture_output=True, text=True, timeout=120, check=False
    )
    rc, err = run_main(argv, our_dir)
    assert (rc, err) == (real.returncode, real.stderr)
    if real.returncode == 0:
        theirs = from_dtb((qemu_dir / "out.dtb").read_bytes()).root
        ours = from_dtb((our_dir / "out.dtb").read_bytes()).root
        assert tree_differences(ours, theirs) == []


@pytest.mark.parametrize(("machine", "cpu", "smp"), CASES)
def test_dumpdtb_matches_live_qemu(machine: str, cpu: str, smp: str, tmp_path: Path) -> None:
    compare_with_qemu(
        ["-M", f"{machine},dumpdtb=out.dtb", "-cpu", cpu, "-smp", smp, *COMMON], tmp_path
    )


@pytest.mark.parametrize("extra", EXTRA)
def test_dumpdtb_with_numa_and_devices_matches_live_qemu(extra: str, tmp_path: Path) -> None:
    argv = ["-M", "pseries,dumpdtb=out.dtb", "-cpu", "POWER8E", "-smp", "2,cores=4,maxcpus=4"]
    compare_with_qemu(argv + extra.split() + COMMON, tmp_path)
