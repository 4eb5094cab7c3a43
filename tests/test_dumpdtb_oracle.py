"""``-M pseries,dumpdtb=FILE`` against QEMU 7.2's own dumps, for every oracle configuration.

The emulator runs with the exact argv QEMU ran (from the oracle manifest), must exit
as QEMU did with the same stderr, and must write a tree equal to QEMU's node for
node and property for property, in QEMU's order — the nodes of devices this
emulator does not model (the PCI host bridge and the VIO bus) aside. The DRC
arrays are compared byte for byte, so QEMU's connector order is checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_cmdline import run_cli

from fdt import Node, from_dtb

DATA = Path(__file__).parent / "data" / "dtb"
MANIFEST = json.loads((DATA / "manifest.json").read_text())["files"]
DTB_CASES = sorted(k for k in MANIFEST if k.endswith(".dtb"))
FAILED_CASES = sorted(k for k in MANIFEST if k.endswith(".FAILED.txt"))
UNMODELLED = ("/pci@", "/vdevice")


def run_main(argv: list[str], cwd: Path) -> tuple[int, str]:
    """The CLI's exit status and stderr, run in ``cwd`` (where dumpdtb writes)."""
    rc, _out, err = run_cli(argv, cwd)
    return rc, err


def _modelled(path: str) -> bool:
    return not path.startswith(UNMODELLED)


def tree_differences(ours: Node, theirs: Node) -> list[str]:
    """Differences between two trees, ignoring the unmodelled device nodes."""
    problems: list[str] = []
    our_nodes = dict(ours.iter_nodes())
    their_nodes = dict(theirs.iter_nodes())
    for path, node in their_nodes.items():
        if not _modelled(path):
            continue
        mine = our_nodes.get(path)
        if mine is None:
            problems.append(f"missing node {path}")
            continue
        want = [(p.name, p.value) for p in node.properties]
        got = [(p.name, p.value) for p in mine.properties]
        if got != want:
            problems.append(f"properties of {path}: ours {got!r} QEMU {want!r}")
        base = path.rstrip("/")
        want_children = [c.name for c in node.children if _modelled(f"{base}/{c.name}")]
        got_children = [c.name for c in mine.children]
        if got_children != want_children:
            problems.append(f"children of {path}: ours {got_children} QEMU {want_children}")
    problems += [f"extra node {p}" for p in our_nodes if p not in their_nodes]
    return problems


@pytest.mark.parametrize("name", DTB_CASES)
def test_dumpdtb_equals_qemu(name: str, tmp_path: Path) -> None:
    info = MANIFEST[name]
    rc, err = run_main(info["argv"][1:], tmp_path)
    assert rc == info["exit_code"] == 0
    assert err == info["stderr"]
    written = tmp_path / Path(name).name
    ours = from_dtb(written.read_bytes()).root
    theirs = from_dtb((DATA / Path(name).name).read_bytes()).root
    assert tree_differences(ours, theirs) == []


@pytest.mark.parametrize("name", FAILED_CASES)
def test_refused_configuration_like_qemu(name: str, tmp_path: Path) -> None:
    info = MANIFEST[name]
    rc, err = run_main(info["argv"][1:], tmp_path)
    assert rc == info["exit_code"] == 1
    assert err == info["stderr"]
    assert not any(tmp_path.iterdir()), "a refused configuration must not write a dtb"


def test_4096_vcpus_build_and_dump_4097_refused(tmp_path: Path) -> None:
    """QEMU 7.2.22's limit: 4096 possible vCPUs (SPAPR_IRQ_NR_IPIS)."""
    base = ["-cpu", "POWER9", "-m", "1G", "-nographic", "-display", "none", "-nodefaults", "-S"]
    rc, _err = run_main(
        ["-M", "pseries,dumpdtb=big.dtb", "-smp", "1,cores=4096,maxcpus=4096", *base], tmp_path
    )
    assert rc == 0
    cpus = from_dtb((tmp_path / "big.dtb").read_bytes()).root.find("/cpus")
    assert cpus is not None
    indexes = cpus["ibm,drc-indexes"].cells()
    assert indexes[0] == 4096
    assert sorted(indexes[1:]) == [0x10000000 + i for i in range(4096)]
    assert [c.name for c in cpus.children] == ["PowerPC,POWER9@0"]
    rc, err = run_main(
        ["-M", "pseries,dumpdtb=no.dtb", "-smp", "1,cores=4097,maxcpus=4097", *base], tmp_path
    )
    assert rc == 1
    assert err == (
        "qemu-system-ppc64: Invalid SMP CPUs 4097. "
        "The max CPUs supported by machine 'pseries-7.2' is 4096\n"
    )
    assert not (tmp_path / "no.dtb").exists()
