"""The CPU core hotplug handler's edges: QEMU 7.2's core-id check, compat modes of
hot-plugged threads, the fragment a core hands out, and all-or-nothing plug/unplug.

Sources (QEMU 7.2 ``hw/ppc/spapr.c``, protocol.md §7 and §9):

* ``spapr_core_pre_plug``: ``if (cc->core_id % smp_threads)`` with ``smp_threads``
  unsigned, so the C int core-id is read as unsigned; the refusal is
  ``"invalid core id %d"``.
* ``spapr_core_plug``: a hot-plugged core's threads are put in the boot CPU's
  compat mode (``ppc_set_compat(..., POWERPC_CPU(first_cpu)->compat_pvr)``); a
  cold-plugged core keeps its own.
* ``spapr_core_unplug_request``: ``spapr_drc_unplug_request`` only when no request is
  pending (so the ``spapr_drc_unplug_request`` trace event appears once), then a
  REMOVE event on every request.
* ``spapr_dt_cpu``: ``ibm,my-drc-index`` only when the core has a DRC; the node
  describes the core's thread 0 (its compat PVR).

The project adds all-or-nothing to plug and device_del (a failure after the DRC
changed undoes the change so the command can be retried; ``machine/board/pseries.py``
``_realize_and_plug`` relies on it). Faults are injected through the event queue's
interrupt line and a connector whose reset fails, as the robustness campaign does.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from fdt import Node
from rtas.errlog import HotplugAction, decode_event_log
from spapr.cpu_core import (
    FRAGMENT_CACHE_MAX,
    CoreHotplugHandler,
    CoreSlot,
    SpaprCpuCore,
    VcpuThread,
)
from spapr.cpu_models import CpuModel, by_cpu_type
from spapr.cpu_node import CpuNodeEnv
from spapr.drc import DRC, DRCState, DrcTable, DrcType
from spapr.errors import QemuError
from spapr.events import EventQueue
from spapr.trace import TraceRecorder

_P9 = by_cpu_type("power9_v2.0")
assert _P9 is not None
POWER9: CpuModel = _P9
POWER8_COMPAT = 0x0F000004  # logical PVR of compat mode power8 (target/ppc/compat.c)
CPU_DRC_BASE = 0x10000000


class FailingLine(RuntimeError):
    """The fault injected into the event queue's interrupt line."""


@attrs.define
class Host:
    """CoreHotplugHost: creates threads with vCPU id = cpu_index, records what it is told."""

    log: list[tuple[object, ...]] = attrs.field(factory=list)

    def create_threads(self, core: SpaprCpuCore) -> list[VcpuThread]:
        return [
            VcpuThread(
                cpu_index=core.core_id + i,
                vcpu_id=core.core_id + i,
                node_id=core.node_id,
                qom_path=core.thread_path(i),
            )
            for i in range(core.nr_threads)
        ]

    def destroy_threads(self, core: SpaprCpuCore) -> None:
        self.log.append(("destroy", core.qom_path))

    def device_deleted(self, dev_id: str | None, path: str) -> None:
        self.log.append(("DEVICE_DELETED", dev_id, path))

    def device_unplug_guest_error(self, dev_id: str | None, path: str) -> None:
        self.log.append(("DEVICE_UNPLUG_GUEST_ERROR", dev_id, path))

    def core_released(self, core: SpaprCpuCore) -> None:
        self.log.append(("released", core.qom_path))


@attrs.define
class Rig:
    """A handler over ``cores`` slots of ``threads`` threads, each with a CPU DRC."""

    handler: CoreHotplugHandler
    drcs: DrcTable
    events: EventQueue
    host: Host
    trace: TraceRecorder
    pulses: list[int]
    #: While True the event queue's interrupt line raises FailingLine.
    fail_line: list[bool]

    def drc(self, core_id: int) -> DRC:
        drc = self.drcs.by_id(DrcType.CPU, core_id)
        assert drc is not None
        return drc


def make_rig(
    threads: int = 1,
    cores: int = 4,
    *,
    boot_compat: int = 0,
    env: Callable[[], CpuNodeEnv] | None = None,
    with_drcs: bool = True,
    drc_factory: Callable[..., DRC] = DRC,
) -> Rig:
    trace = TraceRecorder()
    drcs = DrcTable(trace)
    fail = [False]
    pulses: list[int] = []

    def pulse(irq: int) -> None:
        if fail[0]:
            raise FailingLine("interrupt line gone")
        pulses.append(irq)

    events = EventQueue(pulse_irq=pulse, rtc=lambda: ((2023, 1, 2), (3, 4, 5)))
    host = Host()
    slots = [
        CoreSlot(
            index=i,
            core_id=i * threads,
            node_id=0,
            vcpus_count=threads,
            type_name=POWER9.core_type,
        )
        for i in range(cores)
    ]
    holder: list[CoreHotplugHandler] = []

    def released(_drc: DRC, device: object) -> None:
        assert isinstance(device, SpaprCpuCore)
        holder[0].unplug(device)

    def fragment(device: object) -> Node:
        assert isinstance(device, SpaprCpuCore)
        return holder[0].build_fragment(device)

    if with_drcs:
        for slot in slots:
            drc = drc_factory(
                DrcType.CPU, slot.core_id, trace=trace, on_release=released, build_fragment=fragment
            )
            drcs.add(drc)
            drc.realize()

    def node_env() -> CpuNodeEnv:
        return CpuNodeEnv(threads_per_core=threads, cores_per_socket=cores)

    handler = CoreHotplugHandler(
        host=host,
        model=POWER9,
        core_type=POWER9.core_type,
        smp_threads=threads,
        has_hotpluggable_cpus=True,
        slots=slots,
        drc_for_core_id=lambda core_id: drcs.by_id(DrcType.CPU, core_id & 0xFFFFFFFF),
        events=events,
        node_env=env or node_env,
        vcpu_id=lambda i: i,
        boot_compat_pvr=lambda: boot_compat,
    )
    holder.append(handler)
    return Rig(handler, drcs, events, host, trace, pulses, fail)


def new_core(core_id: int, threads: int = 1, *, hotplugged: bool = True) -> SpaprCpuCore:
    return SpaprCpuCore(
        type_name=POWER9.core_type,
        model=POWER9,
        core_id=core_id,
        nr_threads=threads,
        dev_id=f"core{core_id}",
        qom_path=f"/machine/peripheral/core{core_id}",
        hotplugged=hotplugged,
    )


def add(rig: Rig, core: SpaprCpuCore) -> SpaprCpuCore:
    """device_add's order: pre_plug, realize, plug."""
    slot = rig.handler.pre_plug(core)
    rig.handler.realize(core)
    rig.handler.plug(core, slot)
    return core


def queued(rig: Rig) -> list[tuple[int, int | None]]:
    """(action, DRC index) of every pending hotplug event, oldest first."""
    out = []
    for entry in rig.events:
        log = decode_event_log(entry.to_bytes()).hotplug
        assert log is not None
        out.append((int(log.action), log.drc_index))
    return out


# --- pre_plug: the core id ---------------------------------------------------------


def test_a_core_id_not_a_multiple_of_the_threads_is_refused_with_qemus_text() -> None:
    """core-id 4 with 3 threads per core: 4 % 3 != 0, "invalid core id 4"; the core
    never reaches a slot (slot 1, core-id 3, stays free)."""
    rig = make_rig(threads=3)
    core = new_core(4, threads=3)
    with pytest.raises(QemuError, match=r"^invalid core id 4$"):
        rig.handler.pre_plug(core)
    assert all(slot.core is None for slot in rig.handler.slots)
    add(rig, new_core(3, threads=3))  # the aligned id is accepted


def test_a_negative_core_id_is_checked_as_an_unsigned_number() -> None:
    """core-id -3 with 3 threads: C computes 0xFFFFFFFD % 3 = 1 (unsigned), so QEMU
    refuses it as an invalid core id (Python's -3 % 3 would be 0)."""
    rig = make_rig(threads=3)
    with pytest.raises(QemuError, match=r"^invalid core id -3$"):
        rig.handler.pre_plug(new_core(-3, threads=3))


# --- realize / unplug: the device's realized flag ------------------------------------


def test_realize_marks_the_core_realized_and_its_release_unrealizes_it() -> None:
    """DeviceState.realized is true once the core (and its threads) are realized and
    false again once the released core is unrealized."""
    rig = make_rig()
    core = new_core(1)
    assert core.realized is False
    add(rig, core)
    assert core.realized is True
    assert [t.cpu_index for t in core.threads] == [1]
    rig.drc(1).unplug_request()  # never configured: released at once
    assert core.realized is False
    assert rig.handler.slots[1].core is None


# --- plug: compat mode of hot-plugged threads ------------------------------------------


def test_hot_plugged_threads_take_the_boot_cpus_compat_mode() -> None:
    """spapr_core_plug: each thread of a hot-plugged core gets the boot CPU's compat
    PVR, so the node it hands out says cpu-version 0x0F000004 and carries the ISA 2.07
    pa-features table (26 bytes) of compat mode power8."""
    rig = make_rig(boot_compat=POWER8_COMPAT)
    core = add(rig, new_core(2))
    assert [t.compat_pvr for t in core.threads] == [POWER8_COMPAT]
    node = rig.handler.build_fragment(core)
    assert node["cpu-version"].cells() == (POWER8_COMPAT,)
    assert len(node["ibm,pa-features"].value) == 26
    assert node["ibm,pa-features"].value[:2] == bytes([24, 0])


def test_cold_plugged_threads_keep_their_own_mode() -> None:
    """Only hot-plugged cores are put in the boot CPU's mode at plug time; a core added
    while the machine is built (cold) keeps compat 0 and its node the raw PVR."""
    rig = make_rig(boot_compat=POWER8_COMPAT)
    core = add(rig, new_core(2, hotplugged=False))
    assert [t.compat_pvr for t in core.threads] == [0]
    assert rig.handler.build_fragment(core)["cpu-version"].cells() == (POWER9.pvr,)


# --- build_fragment -------------------------------------------------------------------


def test_the_fragment_follows_the_cores_own_compat_mode() -> None:
    """spapr_dt_cpu describes the CPU it is given: a thread in compat mode power8 gets
    cpu-version 0x0F000004 even when the machine-wide inputs name no compat mode."""
    rig = make_rig()
    core = add(rig, new_core(1))
    core.threads[0].compat_pvr = POWER8_COMPAT
    node = rig.handler.build_fragment(core)
    assert node["cpu-version"].cells() == (POWER8_COMPAT,)


def test_the_same_core_asked_twice_gets_the_same_node() -> None:
    """The fragment is a function of the machine's state: asking again with nothing
    changed gives the same node (name, properties, values)."""
    rig = make_rig()
    core = add(rig, new_core(3))
    first = rig.handler.build_fragment(core)
    again = rig.handler.build_fragment(core)
    assert again.name == first.name == "PowerPC,POWER9@3"
    assert [(p.name, p.value) for p in again.properties] == [
        (p.name, p.value) for p in first.properties
    ]
    assert again["ibm,my-drc-index"].cells() == (CPU_DRC_BASE + 3,)


def test_a_core_without_a_connector_has_no_drc_index_property() -> None:
    """spapr_dt_cpu writes ibm,my-drc-index only when spapr_drc_by_id finds the DRC."""
    rig = make_rig(with_drcs=False)
    core = new_core(1)
    rig.handler.realize(core)
    node = rig.handler.build_fragment(core)
    assert "ibm,my-drc-index" not in node
    assert node["reg"].cells() == (1,)


def test_fragments_follow_their_inputs_past_the_cache_bound() -> None:
    """Built under FRAGMENT_CACHE_MAX + 8 different machine states (here the HPT
    size), each node carries the ibm,pft-size of the state it was built in, and the
    first state's node is right again when it comes back."""
    shift = [18]
    rig = make_rig(
        env=lambda: CpuNodeEnv(threads_per_core=1, cores_per_socket=4, htab_shift=shift[0])
    )
    core = add(rig, new_core(1))
    for s in range(18, 18 + FRAGMENT_CACHE_MAX + 8):
        shift[0] = s
        assert rig.handler.build_fragment(core)["ibm,pft-size"].cells() == (0, s)
    shift[0] = 18
    assert rig.handler.build_fragment(core)["ibm,pft-size"].cells() == (0, 18)


# --- plug: all or nothing ---------------------------------------------------------------


def test_a_hotplug_whose_add_event_fails_leaves_the_connector_empty() -> None:
    """If the ADD event cannot be queued, the plug fails with that error and the DRC
    is empty again (no device, empty state), the slot free; the same core can then be
    plugged and its ADD event queued."""
    rig = make_rig()
    core = new_core(2)
    slot = rig.handler.pre_plug(core)
    rig.handler.realize(core)
    rig.fail_line[0] = True
    with pytest.raises(FailingLine):
        rig.handler.plug(core, slot)
    drc = rig.drc(2)
    assert drc.device is None and drc.state == DRCState.LOGICAL_UNUSABLE
    assert slot.core is None and len(rig.events) == 0
    rig.fail_line[0] = False
    rig.handler.plug(core, slot)
    assert drc.device is core and slot.core is core
    assert queued(rig) == [(HotplugAction.ADD, CPU_DRC_BASE + 2)]


@attrs.define(eq=False)
class ResetFailsDRC(DRC):
    """A connector whose reset fails after it moved to its ready state."""

    def reset(self) -> bool:
        completed = super().reset()
        if self.device is not None:
            raise FailingLine("reset failed late")
        return completed


def test_a_cold_plug_failing_after_the_connector_is_ready_reports_that_failure() -> None:
    """A connector already configured cannot be emptied by a detach; the plug's own
    error is what the caller sees (not a second error from the undo) and the slot
    stays free."""
    rig = make_rig(drc_factory=ResetFailsDRC)
    core = new_core(2, hotplugged=False)
    slot = rig.handler.pre_plug(core)
    rig.handler.realize(core)
    with pytest.raises(FailingLine, match="reset failed late"):
        rig.handler.plug(core, slot)
    assert slot.core is None


# --- unplug_request: one request, an event each time, all or nothing ------------------


def test_a_repeated_device_del_requests_the_unplug_once_and_queues_remove_twice() -> None:
    """spapr_core_unplug_request calls spapr_drc_unplug_request only when no request is
    pending, but queues a REMOVE event on every device_del (so a failed guest unplug
    can be retried)."""
    rig = make_rig()
    core = add(rig, new_core(1, hotplugged=False))  # cold-plugged: DRC configured
    rig.trace.clear()
    rig.handler.unplug_request(core)
    rig.handler.unplug_request(core)
    assert len(rig.trace.select("spapr_drc_unplug_request")) == 1
    assert len(rig.trace.select("spapr_drc_awaiting_quiesce")) == 1
    assert queued(rig) == [(HotplugAction.REMOVE, CPU_DRC_BASE + 1)] * 2
    assert rig.drc(1).unplug_requested is True


def test_a_device_del_whose_event_fails_withdraws_its_request() -> None:
    """The first device_del of a configured core: if its REMOVE event cannot be queued
    the request is withdrawn (the core stays, no unplug pending) and the error is
    reported; retried, it is requested and queued."""
    rig = make_rig()
    core = add(rig, new_core(1, hotplugged=False))
    rig.fail_line[0] = True
    with pytest.raises(FailingLine):
        rig.handler.unplug_request(core)
    drc = rig.drc(1)
    assert not drc.unplug_requested and drc.device is core and len(rig.events) == 0
    rig.fail_line[0] = False
    rig.handler.unplug_request(core)
    assert drc.unplug_requested
    assert queued(rig) == [(HotplugAction.REMOVE, CPU_DRC_BASE + 1)]


def test_a_failing_repeat_keeps_the_earlier_request() -> None:
    """A repeated device_del whose event fails withdraws nothing: the request made by the
    first device_del (whose event is queued) still stands."""
    rig = make_rig()
    core = add(rig, new_core(1, hotplugged=False))
    rig.handler.unplug_request(core)
    rig.fail_line[0] = True
    with pytest.raises(FailingLine):
        rig.handler.unplug_request(core)
    assert rig.drc(1).unplug_requested is True
    assert queued(rig) == [(HotplugAction.REMOVE, CPU_DRC_BASE + 1)]


# --- unplug_request / unplug of cores that are not where they should be ------------------


def test_device_del_of_a_core_without_a_slot_says_so_with_qemus_text() -> None:
    """spapr_core_unplug_request: a core whose core-id maps to no possible-CPU slot is
    refused with "Unable to find CPU core with core-id: %d"; nothing is queued."""
    rig = make_rig(cores=4)
    stray = new_core(9)
    with pytest.raises(QemuError, match=r"^Unable to find CPU core with core-id: 9$"):
        rig.handler.unplug_request(stray)
    assert len(rig.events) == 0


def test_releasing_a_core_that_is_not_in_its_slot_leaves_the_slot_alone() -> None:
    """The release of a core object that is not the one plugged in its slot (a stale
    duplicate) is refused; the plugged core keeps its slot and nothing is deleted."""
    rig = make_rig()
    plugged = add(rig, new_core(2, hotplugged=False))
    stale = new_core(2)
    with pytest.raises(AssertionError):
        rig.handler.unplug(stale)
    assert rig.handler.slots[2].core is plugged
    assert rig.host.log == []
