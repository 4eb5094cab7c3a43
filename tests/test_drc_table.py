"""The connector table as the machine uses it: lookups, watchers, replacing, removing.

What is checked is what the machine and the guest get from the table: which
connector an index resolves to (RTAS answers -3 when none), which connectors a
watcher is told to look at again (the machine's "every CPU connector at rest"
check, ``PseriesMachine.cpu_connectors_at_rest``, which ``settle`` waits on), the
QEMU trace of a connector going away (``spapr_drc_unrealize``), and the
configure-connector walk of a connector whose fragment was dropped (a migration
destination: QEMU does not migrate the fragment or the cursor, so the walk starts
again at the node; QEMU 7.2 ``hw/ppc/spapr_drc.c: spapr_drc_reset``, protocol.md
§6). A connector is "at rest" when no unplug is pending and any attached device
is configured (project: ``spapr.drc.is_at_rest``).
"""

from __future__ import annotations

from typing import Any

import pytest

from fdt import Node, Property
from rtas.codes import ConfigureConnector
from spapr.drc import (
    DRC,
    DrcError,
    DrcPhysicalVmstate,
    DrcTable,
    DrcType,
    DrcVmstate,
    drc_name,
    is_at_rest,
)
from spapr.trace import TraceRecorder

CPU2 = 0x10000002


def fragment(device: Any) -> Node:
    return Node(f"PowerPC,POWER9@{device}", properties=[Property.cells("reg", 2)])


def table_with(*ids: int) -> tuple[DrcTable, list[DRC]]:
    table = DrcTable(TraceRecorder())
    drcs = [table.new(DrcType.CPU, i, build_fragment=fragment) for i in ids]
    return table, drcs


def configured(drc: DRC, device: object = "core") -> None:
    drc.attach(device)
    assert drc.set_allocation_state(1) == 0
    assert drc.set_isolation_state(1) == 0
    while drc.configure_connector_step().code != ConfigureConnector.SUCCESS:
        pass


def test_a_connector_is_at_rest_when_empty_or_configured_and_nothing_is_pending() -> None:
    """Empty: at rest. Attached but not yet configured (U, A, I): not at rest.
    Configured: at rest. An unplug pending: not at rest until the release."""
    _table, (drc,) = table_with(2)
    assert is_at_rest(drc)
    drc.attach("core")
    assert not is_at_rest(drc)
    drc.set_allocation_state(1)
    assert not is_at_rest(drc)
    drc.set_isolation_state(1)
    assert not is_at_rest(drc)
    while drc.configure_connector_step().code != ConfigureConnector.SUCCESS:
        pass
    assert is_at_rest(drc)
    drc.unplug_request()
    assert not is_at_rest(drc)
    drc.set_isolation_state(0)
    drc.set_allocation_state(0)  # released
    assert drc.device is None and is_at_rest(drc)


def test_a_watcher_is_told_which_connectors_to_look_at_again() -> None:
    """First look: everything. Then only the connectors looked up or changed since;
    adding, replacing, removing or iterating means everything again."""
    table, (a, b, c) = table_with(0, 1, 2)
    watch = table.watch()
    assert watch.take() is None
    assert watch.take() == set()
    assert table.get(b.index) is b
    assert watch.take() == {b}
    c.attach("core")  # a change through the connector's own method
    assert watch.take() == {c}
    assert table.by_id(DrcType.CPU, 0) is a
    assert watch.take() == {a}
    assert table.get(0x10000009) is None  # no such connector: nothing to look at
    assert watch.take() == set()
    list(table)
    assert watch.take() is None
    table.new(DrcType.CPU, 3)
    assert watch.take() is None
    table.replace(DRC(DrcType.CPU, 3))
    assert watch.take() is None
    table.remove(0x10000003)
    assert watch.take() is None
    assert watch.take() == set()


def test_a_watcher_that_has_not_looked_yet_collects_nothing() -> None:
    """Before its first look a watcher will look at everything anyway."""
    table, (a,) = table_with(0)
    watch = table.watch()
    a.attach("core")
    assert watch.take() is None
    a.set_allocation_state(1)
    other = table.watch()
    assert other.take() is None and watch.take() == {a}


def test_replacing_a_connector_redirects_every_lookup() -> None:
    """replace puts a new object in place of the one with its index; the old one no
    longer belongs to the table and its changes are no one's concern."""
    table, (old,) = table_with(2)
    new = DRC(DrcType.CPU, 2)
    assert table.replace(new) is old
    assert table.get(CPU2) is new and table.holds(new) and not table.holds(old)
    assert table.members() == [new] and list(table) == [new]
    watch = table.watch()
    watch.take()
    old.attach("core")
    assert watch.take() == set()
    new.attach("core")
    assert watch.take() == {new}
    with pytest.raises(KeyError):
        table.replace(DRC(DrcType.CPU, 7))


def test_removing_a_connector_unrealizes_it() -> None:
    """After remove the index resolves to nothing (RTAS then answers -3), QEMU's
    spapr_drc_unrealize is traced and the object's later changes reach no watcher."""
    table, (drc, other) = table_with(2, 3)
    watch = table.watch()
    watch.take()
    assert table.remove(CPU2) is drc
    assert table.get(CPU2) is None and CPU2 not in table and len(table) == 1
    assert not table.holds(drc)
    assert table.trace.select("spapr_drc_unrealize")[-1].fields == {"index": CPU2}
    assert watch.take() is None
    drc.attach("core")
    assert watch.take() == set()
    assert table.members() == [other]
    with pytest.raises(DrcError, match="0x10000003"):
        table.add(DRC(DrcType.CPU, 3))


def test_a_dropped_fragment_is_walked_again_from_the_node() -> None:
    """What a migration destination does: the next configure-connector call rebuilds
    the fragment and starts at the node (NEXT_CHILD with its name)."""
    built: list[object] = []

    def build(device: Any) -> Node:
        built.append(device)
        return fragment(device)

    drc = DRC(DrcType.CPU, 2, build_fragment=build)
    drc.attach("core")
    drc.set_allocation_state(1)
    drc.set_isolation_state(1)
    first = drc.configure_connector_step()
    assert (first.code, first.name) == (ConfigureConnector.NEXT_CHILD, "PowerPC,POWER9@core")
    assert drc.configure_connector_step().code == ConfigureConnector.NEXT_PROPERTY
    drc.drop_fragment()
    assert drc.fragment is None
    again = drc.configure_connector_step()
    assert (again.code, again.name) == (ConfigureConnector.NEXT_CHILD, "PowerPC,POWER9@core")
    codes = [drc.configure_connector_step().code for _ in range(2)]
    assert codes == [ConfigureConnector.NEXT_PROPERTY, ConfigureConnector.SUCCESS]
    assert built == ["core", "core"]


def test_an_empty_connector_with_its_fragment_dropped_is_not_configurable() -> None:
    """Without a device the connector is U: configure-connector answers -9003."""
    drc = DRC(DrcType.CPU, 2, build_fragment=fragment)
    drc.drop_fragment()
    assert drc.configure_connector_step().code == ConfigureConnector.NOT_CONFIGURABLE


def test_a_plug_that_failed_after_the_attach_can_be_undone() -> None:
    """detach empties a connector the guest never acquired; a connector the guest
    moved on, or another device, is refused (naming the connector)."""
    drc = DRC(DrcType.CPU, 2)
    drc.attach("core")
    drc.detach("core")
    assert drc.device is None and is_at_rest(drc)
    drc.attach("other")
    with pytest.raises(DrcError, match="0x10000002"):
        drc.detach("core")
    drc.set_allocation_state(1)
    with pytest.raises(DrcError, match="0x10000002"):
        drc.detach("other")
    assert drc.device == "other"


def test_release_needs_the_empty_state_and_a_device() -> None:
    """A host release of a connector the guest holds, or of an empty one, is refused."""
    drc = DRC(DrcType.CPU, 2, build_fragment=fragment)
    with pytest.raises(DrcError, match="0x10000002"):
        drc.release()
    configured(drc)
    with pytest.raises(DrcError, match="0x10000002"):
        drc.release()


def test_a_physical_section_loads_only_into_its_physical_connector() -> None:
    """``spapr_drc/physical`` carries the dr-indicator of a PCI connector: a logical
    connector, another index or an indicator outside 0..3 is refused."""
    pci = DRC(DrcType.PCI, 5)
    pci.load_physical_vmstate(DrcPhysicalVmstate(index=pci.index, dr_indicator=2))
    assert int(pci.dr_indicator) == 2
    with pytest.raises(DrcError, match="0x40000006"):
        pci.load_physical_vmstate(DrcPhysicalVmstate(index=0x40000006, dr_indicator=1))
    with pytest.raises(DrcError, match="0x10000002"):
        DRC(DrcType.CPU, 2).load_physical_vmstate(DrcPhysicalVmstate(index=CPU2, dr_indicator=1))
    with pytest.raises(DrcError, match="7"):
        pci.load_physical_vmstate(DrcPhysicalVmstate(index=pci.index, dr_indicator=7))
    assert int(pci.dr_indicator) == 2


def test_a_physical_connector_is_reset_to_active_with_a_device() -> None:
    """The PCI connector's own reset: ACTIVE (1) with a device, INACTIVE (0) without."""
    pci = DRC(DrcType.PCI, 5)
    pci.reset_dr_indicator()
    assert int(pci.dr_indicator) == 0
    pci.attach("dev")
    pci.reset_dr_indicator()
    assert int(pci.dr_indicator) == 1
    cpu = DRC(DrcType.CPU, 2)
    cpu.reset_dr_indicator()
    assert cpu.physical_vmstate() is None


def test_a_migrated_state_rewinds_the_walk_of_an_attached_connector() -> None:
    """load_vmstate drops any fragment: an attached connector loaded in I walks from
    the node again (the destination never built one)."""
    drc = DRC(DrcType.CPU, 2, build_fragment=fragment)
    drc.attach("core")
    drc.set_allocation_state(1)
    drc.set_isolation_state(1)
    drc.configure_connector_step()
    drc.configure_connector_step()
    drc.load_vmstate(DrcVmstate(index=CPU2, state=3))
    step = drc.configure_connector_step()
    assert (step.code, step.name) == (ConfigureConnector.NEXT_CHILD, "PowerPC,POWER9@core")


@pytest.mark.parametrize(
    ("section", "named"),
    [
        (DrcVmstate(index=0x10000003, state=4), "0x10000003"),
        (DrcVmstate(index=CPU2, state=99), "99"),
        (DrcVmstate(index=CPU2, state=7), "PHYSICAL_UNISOLATE"),
    ],
)
def test_a_section_that_does_not_fit_is_refused_and_names_why(
    section: DrcVmstate, named: str
) -> None:
    """Another index, an unknown state or another machine's state: refused, with the
    offending value in the message."""
    drc = DRC(DrcType.CPU, 2)
    drc.attach("core")
    with pytest.raises(DrcError, match=named):
        drc.load_vmstate(section)


@pytest.mark.parametrize(
    ("drc_id", "name"),
    [
        (0, "CPU 0"),
        (8, "CPU 8"),
        (0x7FFFFFFF, "CPU 2147483647"),
        (0x80000000, "CPU -2147483648"),
        (0xFFFFFFFF, "CPU -1"),
    ],
)
def test_drc_names_print_the_id_as_a_signed_int(drc_id: int, name: str) -> None:
    """spapr_drc_name: the prefix then the u32 id with ``%d`` (QEMU 7.2 spapr_drc.c)."""
    assert drc_name(DrcType.CPU, drc_id) == name


def test_a_type_qemu_has_no_connector_for_has_no_name() -> None:
    with pytest.raises(ValueError, match="VIO"):
        drc_name(DrcType.VIO, 0)
