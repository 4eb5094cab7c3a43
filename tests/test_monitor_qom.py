"""The QOM view (machine/monitor/qom_props.py): paths, qom-list order and types, qom-get values.

Expected answers come from real QEMU 7.2 (tests/data/qmp/qemu72_captures.json:
``qom_versions`` for every pseries machine version, ``configs`` for POWER8E/9/10,
XICS-only, vsmt=8, two sockets) and from protocol facts (DRC properties, the
configure-connector fragment). Insertion sequences that give QEMU's hash-table
order are the ones test_qom_order.py derives from QEMU's source.
"""

from __future__ import annotations

import io
import json

import pytest
from test_qmp_harness import P8E, QMP_DATA

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.qom_props import QomView
from rtas.codes import AllocationState, IsolationState
from spapr.errors import QemuError

CAPTURES = json.loads((QMP_DATA / "qemu72_captures.json").read_text())


def control_for(argv: list[str]) -> MachineControl:
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    return MachineControl(machine)


def qom_list(view: QomView, path: str) -> list[dict[str, str]]:
    node = view.resolve(path)
    assert node is not None, path
    return view.qom_list(node)


@pytest.mark.parametrize("version", sorted(CAPTURES["qom_versions"]))
def test_machine_and_unattached_lists_of_every_version(version: str) -> None:
    captured = CAPTURES["qom_versions"][version]
    view = control_for(f"{captured['args']} -S".split()).view
    assert qom_list(view, "/machine") == captured["/machine"]
    assert qom_list(view, "/machine/unattached") == captured["/machine/unattached"]
    tree = "\r\n".join(view.composition(view.resolve("/machine"))) + "\r\n"  # type: ignore[arg-type]
    assert tree == captured["info qom-tree"]


@pytest.mark.parametrize("config", sorted(CAPTURES["configs"]))
@pytest.mark.parametrize(
    "path",
    ["/machine", "/machine/unattached", "/machine/unattached/device[1]/thread[0]", "/dr-connector"],
)
def test_lists_of_configurations(config: str, path: str) -> None:
    view = control_for(f"{config} -S".split()).view
    assert qom_list(view, path) == CAPTURES["configs"][config][path]


def test_drc_device_link_comes_and_goes_with_the_core() -> None:
    control = control_for(P8E)
    view = control.view
    path = "/machine/dr-connector[268435458]"
    assert "device" not in {p["name"] for p in qom_list(view, path)}
    control.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    entry = {"name": "device", "type": "link<power8e_v2.1-spapr-cpu-core>"}
    assert entry in qom_list(view, path)
    node = view.resolve(path)
    assert node is not None
    assert view.qom_get(node, "device") == "/machine/peripheral/core2"
    control.device_del("core2")
    assert "device" not in {p["name"] for p in qom_list(view, path)}
    with pytest.raises(QemuError, match=r"Property 'spapr-drc-cpu.device' not found"):
        view.qom_get(node, "device")


def test_qom_get_values_of_a_hotplugged_core_and_its_thread() -> None:
    control = control_for(P8E)
    control.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core3", "core-id": 3})
    view = control.view
    core = view.resolve("/machine/peripheral/core3")
    thread = view.resolve("/machine/peripheral/core3/thread[0]")
    boot_thread = view.resolve("/machine/unattached/device[0]/thread[0]")
    assert core is not None and thread is not None and boot_thread is not None
    assert [view.qom_get(core, p) for p in ("core-id", "nr-threads", "node-id", "hotplugged")] == [
        3,
        1,
        0,
        True,
    ]
    assert view.qom_get(core, "thread[0]") == "/machine/peripheral/core3/thread[0]"
    assert view.qom_get(thread, "hotplugged") is True
    assert view.qom_get(boot_thread, "hotplugged") is False
    assert view.qom_get(thread, "memory") == "/machine/unattached/system[0]"
    assert view.qom_get(thread, "icp") == "/machine/peripheral/core3/thread[0]/icp"
    with pytest.raises(QemuError, match=r"legacy-memory' is not readable"):
        view.qom_get(thread, "legacy-memory")


def test_drc_fdt_is_the_fragment_once_configure_connector_started() -> None:
    control = control_for(P8E)
    control.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2})
    drc = control.machine.drc(0x10000002)
    assert drc is not None
    node = control.view.resolve("/machine/dr-connector[268435458]")
    assert node is not None
    assert control.view.qom_get(node, "fdt") is None
    assert drc.set_allocation_state(AllocationState.USABLE) == 0
    assert drc.set_isolation_state(IsolationState.UNISOLATED) == 0
    drc.configure_connector_step()
    fdt = control.view.qom_get(node, "fdt")
    assert isinstance(fdt, dict)
    assert fdt["ibm,my-drc-index"] == [0x10, 0, 0, 2]
    assert fdt["reg"] == [0, 0, 0, 2]
    assert fdt["device_type"] == list(b"cpu\0")
    assert all(isinstance(v, (list, dict)) for v in fdt.values())


def test_link_aliases_of_dr_connector_resolve_to_the_connectors() -> None:
    view = control_for(P8E).view
    links = view.resolve("/dr-connector")
    assert links is not None
    assert view.qom_get(links, "10000003") == "/machine/dr-connector[268435459]"
    assert view.qom_get(links, "40000005") == (
        "/machine/unattached/device[4]/dr-connector[1073741829]"
    )
    node = view.resolve("/dr-connector/10000001")
    assert node is not None and view.qom_get(node, "index") == 0x10000001


def test_partial_paths_resolve_when_unique() -> None:
    view = control_for(P8E).view
    node = view.resolve("machine")
    assert node is not None and node.path == "/machine"
    assert view.resolve("icp") is None and view.ambiguous("icp")
    assert view.resolve("/nope") is None and not view.ambiguous("/nope")


def test_unattached_keeps_the_tombstone_of_a_core_removed_at_reset() -> None:
    """A boot core removed by a pending unplug leaves its slot a tombstone in the table."""
    control = control_for(P8E)
    control.device_del("/machine/unattached/device[1]")
    control.system_reset()
    names = [p["name"] for p in qom_list(control.view, "/machine/unattached")]
    assert "device[1]" not in names and "device[0]" in names
    control.device_add({"driver": "power8e_v2.1-spapr-cpu-core", "core-id": 1})
    names = [p["name"] for p in qom_list(control.view, "/machine/peripheral-anon")]
    assert names == ["type", "device[0]"]
