"""QEMU 7.2's refusals of CPU hotplug on machines that cannot do it, on the machine API.

Sources: QEMU 7.2 ``hw/ppc/spapr.c``: ``spapr_core_pre_plug`` refuses a hot-plugged
core when the machine class has no hotpluggable CPUs ("CPU hotplug not supported for
this machine"), ``spapr_core_unplug_request`` refuses any core unplug on such a
machine ("CPU hot unplug not supported on this machine") and the boot core on the
others ("Boot CPU core may not be unplugged", also recorded in
``tests/data/errors/qmp_errors.json``); pseries-2.6 and older have no hotpluggable
CPUs (``spapr_machine_2_6_class_options``: ``mc->has_hotpluggable_cpus = false``)
and need ``cap-htm=off`` under TCG. device_del also accepts a QOM path, which is how
a core without an id (every boot core) is named.
"""

from __future__ import annotations

import io

import pytest

from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from spapr.errors import QemuError

CORE = "power8e_v2.1-spapr-cpu-core"


def machine(version: str, smp: str) -> PseriesMachine:
    argv = ["-M", f"{version},cap-htm=off", "-cpu", "POWER8E", "-smp", smp, "-m", "1G"]
    m = build_machine(argv, io.StringIO())
    m.reset()
    return m


def boot_core_paths(m: PseriesMachine) -> list[str]:
    return [slot.core.qom_path for slot in m.slots if slot.core is not None]


def test_a_machine_without_hotpluggable_cpus_refuses_device_add() -> None:
    m = machine("pseries-2.6", "2")
    with pytest.raises(QemuError, match=r"^CPU hotplug not supported for this machine$"):
        m.device_add({"driver": CORE, "id": "c1", "core-id": 1})


def test_a_machine_without_hotpluggable_cpus_refuses_every_core_unplug() -> None:
    m = machine("pseries-2.6", "2")
    paths = boot_core_paths(m)
    assert len(paths) == 2
    for path in paths:
        with pytest.raises(QemuError, match=r"^CPU hot unplug not supported on this machine$"):
            m.device_del(path)
    assert boot_core_paths(m) == paths


def test_a_current_machine_refuses_only_the_boot_core() -> None:
    """pseries-7.2: the first core is refused; the second boot core may go."""
    m = machine("pseries-7.2", "2,cores=4,threads=1,maxcpus=4")
    first, second = boot_core_paths(m)
    with pytest.raises(QemuError, match=r"^Boot CPU core may not be unplugged$"):
        m.device_del(first)
    m.device_del(second)  # accepted: the request goes to the guest
