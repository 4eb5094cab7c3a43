"""Real libvirt 9.0 drives the emulator: probe, define, start, setvcpus, views, destroy.

libvirt runs in embedded mode (``virsh -c 'qemu:///embed?root=DIR'``, no daemon) in a
temporary root, with README's qemu.conf, and a domain whose ``<emulator>`` is a
two-line script starting this checkout's ``python -m spapr``. Most commands run in one
virsh session, as in the recording (tests/data/libvirt/README.md); one test runs each
command in its own virsh process, as reconnect.jsonl was recorded: every new embedded
driver reconnects to the running domain and re-reads it, and kills it if a query fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from oracle_tools import VIRSH

REPO = Path(__file__).resolve().parent.parent
QEMU_CONF = """stdio_handler = "file"
namespaces = []
security_driver = "none"
user = "root"
group = "root"
cgroup_controllers = []
"""
DOMAIN = """<domain type='qemu'>
  <name>hp1</name>
  <memory unit='MiB'>1024</memory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='ppc64' machine='pseries'>hvm</type></os>
  <cpu mode='custom' match='exact'><model>POWER9</model>
    <topology sockets='1' dies='1' cores='4' threads='1'/></cpu>
  <devices>
    <emulator>{emulator}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""
ONLINE = "qemu-monitor-command hp1 --hmp 'guest cat /sys/devices/system/cpu/online'"


def virsh_session(root: Path, commands: list[str]) -> list[str]:
    """Run the commands in one embedded virsh session; the output of each, in order."""
    assert VIRSH is not None
    script = "; ".join(f"echo @@; {c}" for c in commands)
    result = subprocess.run(
        [VIRSH, "-c", f"qemu:///embed?root={root}", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    parts = result.stdout.split("@@\n")[1:]
    assert len(parts) == len(commands), (result.stdout, result.stderr)
    return [p.strip() for p in parts]


def virsh_each(root: Path, commands: list[str]) -> list[str]:
    """Run each command in its own embedded virsh process; the output of each, in order."""
    assert VIRSH is not None
    out = []
    for command in commands:
        result = subprocess.run(
            [VIRSH, "-c", f"qemu:///embed?root={root}", command],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        out.append(result.stdout.strip())
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "qemu.conf").write_text(QEMU_CONF)
    emulator = tmp_path / "spapr-emulator"
    emulator.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m spapr "$@"\n')
    emulator.chmod(0o755)
    (tmp_path / "hp1.xml").write_text(DOMAIN.format(emulator=emulator))
    return root


@pytest.mark.virsh
def test_setvcpus_up_and_down_through_libvirt(root: Path) -> None:
    """The walkthrough in three virsh sessions: a hot-added CPU comes online when the guest
    has taken it (as with Linux, some time after device_add), so the test waits for that;
    an unplug is complete when libvirt returns (it waits for DEVICE_DELETED)."""
    xml = root.parent / "hp1.xml"
    out = virsh_session(
        root,
        [
            f"define {xml}",
            "start hp1",
            "vcpucount hp1 --live",
            "setvcpus hp1 3 --live",
            "vcpucount hp1 --live",
        ],
    )
    assert out == [
        "Domain 'hp1' defined from " + str(root.parent / "hp1.xml"),
        "Domain 'hp1' started",
        "2",
        "",
        "3",
    ]
    online_when_settled(root, "hp1", "0-2")
    out = virsh_session(
        root,
        [
            "qemu-monitor-command hp1 --hmp 'guest lscpu'",
            "setvcpus hp1 2 --live",
            "vcpucount hp1 --live",
            ONLINE,
            "setvcpu hp1 3 --enable --live",
            "vcpucount hp1 --live",
        ],
    )
    assert "CPU(s):              3" in out[0] and "POWER9" in out[0]
    assert out[1:] == ["", "2", "0-1", "", "3"]
    online_when_settled(root, "hp1", "0-2")
    out = virsh_session(
        root,
        [
            'qemu-monitor-command hp1 \'{"execute":"query-hotpluggable-cpus"}\'',
            "setvcpu hp1 3 --disable --live",
            "vcpucount hp1 --live",
            ONLINE,
            "destroy hp1",
            "list --all --name --state-running",
        ],
    )
    assert '"qom-path":"/machine/peripheral/vcpu3"' in out[0].replace(" ", "")
    assert out[1:] == ["", "2", "0-1", "Domain 'hp1' destroyed", ""]
    # the probe's answers are cached per binary, as with QEMU
    assert list((root / "cache" / "qemu" / "capabilities").glob("*.xml"))
    log = (root / "log" / "qemu" / "hp1.log").read_text()
    assert "-chardev socket,id=charmonitor,fd=" in log and "-mon chardev=charmonitor" in log


@pytest.mark.virsh
def test_each_virsh_reconnects_to_the_running_domain(root: Path) -> None:
    """With QEMU 7.2 the domain survives every separate virsh; so it must here."""
    xml = root.parent / "hp1.xml"
    virsh_session(root, [f"define {xml}", "start hp1"])
    out = virsh_each(
        root,
        [
            "list --name --state-running",
            "setvcpus hp1 3 --live",
            "vcpucount hp1 --live",
        ],
    )
    assert out == ["hp1", "", "3"]
    online_when_settled(root, "hp1", "0-2")
    out = virsh_each(
        root,
        ["setvcpus hp1 2 --live", "vcpucount hp1 --live", ONLINE, "list --name --state-running"],
    )
    assert out == ["", "2", "0-1", "hp1"]
    log = root / "log" / "qemu" / "hp1.log"
    assert "shutting down" not in log.read_text()
    # destroy alone in a fresh virsh races with the reconnection (with QEMU 7.2 too: the
    # domain stops, "reason=daemon", and virsh says it was not running); after a monitor
    # command in the same virsh the reconnection is over, and destroy is clean.
    assert virsh_each(root, ["qemu-monitor-command hp1 --hmp 'info status'; destroy hp1"]) == [
        "VM status: running\n\n\nDomain 'hp1' destroyed"
    ]
    assert virsh_each(root, ["list --name --all --state-running"]) == [""]


@pytest.mark.virsh
def test_shutdown_the_guest_powers_off(root: Path) -> None:
    """virsh shutdown -> system_powerdown; the guest powers off, QEMU's SHUTDOWN (guest) makes
    libvirt end the process (-no-shutdown kept it), and the domain is "shut off (shutdown)"."""
    xml = root.parent / "hp1.xml"
    out = virsh_session(
        root,
        [
            f"define {xml}",
            "start hp1",
            "shutdown hp1",
            "event hp1 --event lifecycle --loop --timeout 8",
            "domstate hp1 --reason",
        ],
    )
    assert out[2] == "Domain 'hp1' is being shutdown"
    assert out[3].splitlines()[:2] == [
        "event 'lifecycle' for domain 'hp1': Shutdown Finished after guest request",
        "event 'lifecycle' for domain 'hp1': Stopped Shutdown",
    ]
    assert out[4] == "shut off (shutdown)"
    assert "shutting down, reason=shutdown" in (root / "log" / "qemu" / "hp1.log").read_text()


def misbehaving_domain(root: Path, name: str, guest: str) -> Path:
    """A copy of hp1 whose guest is ``-guest GUEST``, passed with libvirt's <qemu:commandline>."""
    xml = (root.parent / "hp1.xml").read_text()
    xml = xml.replace("<name>hp1</name>", f"<name>{name}</name>").replace(
        "<domain type='qemu'>",
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
    )
    extra = f"<qemu:commandline><qemu:arg value='-guest'/><qemu:arg value='{guest}'/>"
    xml = xml.replace("</domain>", f"  {extra}</qemu:commandline>\n</domain>")
    path = root.parent / f"{name}.xml"
    path.write_text(xml)
    return path


def online_when_settled(root: Path, name: str, want: str) -> None:
    """Ask the guest (one virsh each time) until its online CPUs are ``want``."""
    command = f"qemu-monitor-command {name} --hmp 'guest cat /sys/devices/system/cpu/online'"
    for _ in range(60):
        if virsh_each(root, [command]) == [want]:
            return
        time.sleep(0.25)
    raise AssertionError(f"the guest never had CPUs {want} online")


@pytest.mark.parametrize(
    ("guest", "error"),
    [
        # QEMU's DEVICE_UNPLUG_GUEST_ERROR, as libvirt 9.0 words it
        ("linux+refuse-unplug", "error: operation failed: unplug of device was rejected"
                                " by the guest"),
        # no answer: libvirt gives up after its 5 s wait for DEVICE_DELETED
        ("linux+ignore-unplug", "error: Timed out during operation: vcpu unplug request timed out."
                                " Unplug result must be manually inspected in the domain"),
    ],
)  # fmt: skip
@pytest.mark.virsh
def test_a_guest_that_keeps_its_cpu_fails_setvcpus(root: Path, guest: str, error: str) -> None:
    xml = misbehaving_domain(root, "hp2", guest)
    virsh_session(root, [f"define {xml}", "start hp2", "setvcpus hp2 3 --live"])
    online_when_settled(root, "hp2", "0-2")
    down = subprocess.run(
        [str(VIRSH), "-c", f"qemu:///embed?root={root}", "setvcpus hp2 2 --live"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert down.returncode == 1 and error in down.stderr, down.stderr
    out = virsh_session(
        root,
        [
            "vcpucount hp2 --live",
            "qemu-monitor-command hp2 --hmp 'guest cat /sys/devices/system/cpu/online'",
            "destroy hp2",
        ],
    )
    assert out == ["3", "0-2", "Domain 'hp2' destroyed"]


#: query-hotpluggable-cpus after `setvcpus 3` on the two-cell domain, from real QEMU 7.2
#: under libvirt 9.0 (same XML, <emulator> qemu-system-ppc64).
QEMU_NUMA_SLOTS = [
    {"props": {"core-id": 3, "node-id": 1}, "vcpus-count": 1,
     "type": "power9_v2.0-spapr-cpu-core"},
    {"props": {"core-id": 2, "node-id": 1}, "vcpus-count": 1,
     "qom-path": "/machine/peripheral/vcpu2", "type": "power9_v2.0-spapr-cpu-core"},
    {"props": {"core-id": 1, "node-id": 0}, "vcpus-count": 1,
     "qom-path": "/machine/unattached/device[2]", "type": "power9_v2.0-spapr-cpu-core"},
    {"props": {"core-id": 0, "node-id": 0}, "vcpus-count": 1,
     "qom-path": "/machine/unattached/device[1]", "type": "power9_v2.0-spapr-cpu-core"},
]  # fmt: skip


@pytest.mark.virsh
def test_numa_cells_place_the_added_core(root: Path) -> None:
    """<numa> cells become -numa node,nodeid=N,cpus=...,memdev=ram-nodeN (one memory
    backend each, as libvirt wrote them for QEMU); setvcpus adds core 2 in node 1."""
    xml = (
        (root.parent / "hp1.xml")
        .read_text()
        .replace(
            "threads='1'/></cpu>",
            "threads='1'/>\n    <numa><cell id='0' cpus='0-1' memory='512' unit='MiB'/>"
            "<cell id='1' cpus='2-3' memory='512' unit='MiB'/></numa></cpu>",
        )
    )
    path = root.parent / "numa.xml"
    path.write_text(xml)
    out = virsh_session(
        root,
        [
            f"define {path}",
            "start hp1",
            "setvcpus hp1 3 --live",
            'qemu-monitor-command hp1 \'{"execute":"query-hotpluggable-cpus"}\'',
        ],
    )
    assert json.loads(out[3])["return"] == QEMU_NUMA_SLOTS
    log = (root / "log" / "qemu" / "hp1.log").read_text()
    assert "-numa node,nodeid=1,cpus=2-3,memdev=ram-node1" in log
    online_when_settled(root, "hp1", "0-2")
    [numa, _] = virsh_session(root, ["qemu-monitor-command hp1 --hmp 'guest numactl -H'",
                                     "destroy hp1"])  # fmt: skip
    assert "node 0 cpus: 0 1" in numa and "node 1 cpus: 2" in numa


@pytest.mark.virsh
def test_libvirt_sees_a_pseries_emulator_with_cpu_hotplug(root: Path) -> None:
    emulator = root.parent / "spapr-emulator"
    [caps] = virsh_session(
        root,
        [
            f"domcapabilities --emulatorbin {emulator} --arch ppc64 --virttype qemu"
            " --machine pseries"
        ],
    )
    assert "<machine>pseries-7.2</machine>" in caps
    assert "<arch>ppc64</arch>" in caps
    assert "<model usable='unknown' vendor='IBM'>POWER9</model>" in caps or "POWER9" in caps
    assert os.path.exists(root / "cache" / "qemu" / "capabilities")
