"""The spapr CPU core device and the machine's hotplug handler for it.

A core is the hotplug unit: ``nr-threads`` vCPU threads with consecutive cpu_index
values starting at ``core-id``. This module holds the device (its properties and
threads), QEMU 7.2's pre-plug checks in their order with their exact messages,
plug (attach to the slot's DRC, queue the ADD event unless cold-plugged), the
unplug request (boot core refused; a DRC the guest never acquired is released at
once; the REMOVE event is queued on every request, so a failed guest unplug can be
retried) and release (threads destroyed, DEVICE_DELETED per presenter, thread and
core, in QEMU's order). It is sans-IO: the machine supplies slots, DRCs, the event
queue and the vCPU factory through :class:`CoreHotplugHost`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from fdt import Node
from rtas.errlog import HotplugAction
from spapr.cpu_models import CpuModel
from spapr.cpu_node import CpuNodeEnv, build_cpu_node
from spapr.drc import DRC, shared_fragment
from spapr.errors import QemuError
from spapr.events import EventQueue

#: node-id value meaning "take the slot's node" (CPU_UNSET_NUMA_NODE_ID).
NODE_ID_UNSET = -1
#: Core fragments a machine keeps for reuse (one per slot being cycled; oldest dropped).
FRAGMENT_CACHE_MAX = 64


def wrap_int32(value: int) -> int:
    """QEMU stores core-id and nr-threads in a C int: values wrap to 32 bits."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@attrs.define(eq=False)
class VcpuThread:
    """One vCPU thread of a core (a PowerPCCPU): its ids, node and QOM path."""

    cpu_index: int
    vcpu_id: int
    node_id: int
    qom_path: str
    #: Interrupt presenters QEMU creates as children of the thread ("icp", "xive-tctx").
    presenters: tuple[str, ...] = ("icp",)
    compat_pvr: int = 0

    @property
    def is_thread0(self) -> bool:
        return self.qom_path.endswith("/thread[0]")


@attrs.define(eq=False)
class SpaprCpuCore:
    """A ``<model>-spapr-cpu-core`` device."""

    type_name: str
    model: CpuModel
    core_id: int
    nr_threads: int
    node_id: int = NODE_ID_UNSET
    dev_id: str | None = None
    qom_path: str = ""
    hotplugged: bool = False
    threads: list[VcpuThread] = attrs.field(factory=list)
    realized: bool = False

    def thread_path(self, i: int) -> str:
        return f"{self.qom_path}/thread[{i}]"


@attrs.define(eq=False)
class CoreSlot:
    """A possible-CPU slot (QEMU's CPUArchId): its props and the core plugged in it."""

    index: int
    core_id: int
    node_id: int
    vcpus_count: int
    type_name: str
    core: SpaprCpuCore | None = None


class CoreHotplugHost(Protocol):
    """What the hotplug handler needs from the machine."""

    def create_threads(self, core: SpaprCpuCore) -> list[VcpuThread]:
        """Realize the core's vCPU threads (stopped); may raise QemuError (KVM ids)."""
        ...

    def destroy_threads(self, core: SpaprCpuCore) -> None:
        """Unrealize the core's vCPU threads."""
        ...

    def device_deleted(self, dev_id: str | None, path: str) -> None:
        """Emit QMP DEVICE_DELETED for a device that was unparented."""
        ...

    def device_unplug_guest_error(self, dev_id: str | None, path: str) -> None:
        """Emit QMP DEVICE_UNPLUG_GUEST_ERROR (the guest refused an unplug)."""
        ...

    def core_released(self, core: SpaprCpuCore) -> None:
        """The core object is gone: drop its id and QOM path."""
        ...


@attrs.define(eq=False)
class CoreHotplugHandler:
    """The machine's hotplug handler for spapr cores (QEMU spapr.c, core paths)."""

    host: CoreHotplugHost
    model: CpuModel
    core_type: str
    smp_threads: int
    has_hotpluggable_cpus: bool
    slots: Sequence[CoreSlot]
    drc_for_core_id: Callable[[int], DRC | None]
    events: EventQueue
    node_env: Callable[[], CpuNodeEnv]
    vcpu_id: Callable[[int], int]
    boot_compat_pvr: Callable[[], int]
    #: Whether the run state is ``inmigrate`` (a core added then counts as cold-plugged).
    incoming: Callable[[], bool] = lambda: False
    #: Fragments built so far, by their inputs (bounded; see :meth:`build_fragment`).
    _fragments: dict[tuple[Any, ...], tuple[CpuModel, Node]] = attrs.field(
        factory=dict, init=False, repr=False
    )

    def find_slot(self, core_id: int) -> CoreSlot | None:
        """spapr_find_cpu_slot: index = core-id / threads (core-id read as unsigned)."""
        index = (core_id & 0xFFFFFFFF) // self.smp_threads
        if index >= len(self.slots):
            return None
        return self.slots[index]

    def pre_plug(self, core: SpaprCpuCore) -> CoreSlot:
        """QEMU's checks in order; returns the slot, fills an unset node-id."""
        if core.hotplugged and not self.has_hotpluggable_cpus:
            raise QemuError("CPU hotplug not supported for this machine")
        if core.type_name != self.core_type and core.model.core_type != self.core_type:
            raise QemuError(f"CPU core type should be {self.core_type}")
        if (core.core_id & 0xFFFFFFFF) % self.smp_threads:
            raise QemuError(f"invalid core id {core.core_id}")
        if self.has_hotpluggable_cpus and core.nr_threads != self.smp_threads:
            raise QemuError(f"invalid nr-threads {core.nr_threads}, must be {self.smp_threads}")
        slot = self.find_slot(core.core_id)
        if slot is None:
            raise QemuError(f"core id {core.core_id} out of range")
        if slot.core is not None:
            raise QemuError(f"core {core.core_id} already populated")
        if core.node_id == NODE_ID_UNSET:
            core.node_id = slot.node_id
        elif core.node_id != slot.node_id:
            raise QemuError(f"invalid node-id, must be {slot.node_id}")
        return slot

    def realize(self, core: SpaprCpuCore) -> None:
        """Create the core's threads (stopped, as a hot-plugged core's are)."""
        core.threads = self.host.create_threads(core)
        core.realized = True

    def plug(self, core: SpaprCpuCore, slot: CoreSlot) -> None:
        """Attach to the slot's DRC; hotplugged → ADD event, cold-plugged → DRC reset."""
        notify = core.hotplugged and not self.incoming()
        drc = self.drc_for_core_id(core.core_id)
        if drc is not None:
            drc.attach(core)
            try:
                if notify:
                    self.events.queue_hotplug(HotplugAction.ADD, drc.index)
                else:
                    drc.reset()
            except BaseException:
                # all or nothing: a plug that fails after the attach leaves the DRC empty
                if drc.device is core and drc.state == drc.machine.empty_state:
                    drc.detach(core)
                raise
        slot.core = core
        if notify:
            compat = self.boot_compat_pvr()
            for thread in core.threads:
                thread.compat_pvr = compat

    def unplug_request(self, core: SpaprCpuCore) -> None:
        """device_del of a core: QEMU's refusals, then request + REMOVE event."""
        if not self.has_hotpluggable_cpus:
            raise QemuError("CPU hot unplug not supported on this machine")
        slot = self.find_slot(core.core_id)
        if slot is None:
            raise QemuError(f"Unable to find CPU core with core-id: {core.core_id}")
        if slot.index == 0:
            raise QemuError("Boot CPU core may not be unplugged")
        drc = self.drc_for_core_id(core.core_id)
        assert drc is not None, "every slot of a hotplug-capable machine has a DRC"
        requested_now = not drc.unplug_requested
        released = drc.unplug_request() if requested_now else False
        try:
            self.events.queue_hotplug(HotplugAction.REMOVE, drc.index)
        except BaseException:
            # all or nothing: the request is withdrawn (unless the DRC already gave the
            # core back: that unplug is complete and only its event is missing)
            if requested_now and not released:
                drc.cancel_unplug_request()
            raise

    def unplug(self, core: SpaprCpuCore) -> None:
        """Release: empty the slot, destroy the threads, emit DEVICE_DELETED in QEMU's order."""
        slot = self.find_slot(core.core_id)
        assert slot is not None and slot.core is core
        slot.core = None
        self.host.destroy_threads(core)
        for thread in core.threads:
            for presenter in thread.presenters:
                self.host.device_deleted(None, f"{thread.qom_path}/{presenter}")
            self.host.device_deleted(None, thread.qom_path)
        core.realized = False
        self.host.device_deleted(core.dev_id, core.qom_path)
        self.host.core_released(core)

    def unplug_rejected(self, core: SpaprCpuCore) -> None:
        """The guest re-UNISOLATEd a connector with an unplug pending (Linux >= 5.13)."""
        self.host.device_unplug_guest_error(core.dev_id, core.qom_path)

    def build_fragment(self, core: SpaprCpuCore) -> Node:
        """The node configure-connector hands out (spapr_core_dt_populate): with ``name``.

        QEMU builds it at the first configure-connector call of each plug, from the
        machine's state then; the node is a function of those inputs alone, so a core
        plugged again into the same slot with the same inputs gets the node (and, via
        :func:`~spapr.drc.shared_fragment`, the walk) built the first time.
        """
        thread0 = core.threads[0]
        drc = self.drc_for_core_id(core.core_id)
        env = self.node_env()
        drc_index = drc.index if drc is not None else None
        model = core.model
        key = (
            id(model),
            env,
            thread0.vcpu_id,
            thread0.cpu_index,
            thread0.node_id,
            drc_index,
            core.nr_threads,
            thread0.compat_pvr,
        )
        cache = self._fragments
        hit = cache.get(key)
        if hit is not None and hit[0] is model:
            return hit[1]
        node = build_cpu_node(
            model,
            env,
            vcpu_id=thread0.vcpu_id,
            cpu_index=thread0.cpu_index,
            node_id=thread0.node_id,
            drc_index=drc_index,
            nr_threads=core.nr_threads,
            compat_pvr=thread0.compat_pvr,
            with_name=True,
        )
        shared_fragment(node)
        if len(cache) >= FRAGMENT_CACHE_MAX:
            del cache[next(iter(cache))]
        cache[key] = (model, node)
        return node
