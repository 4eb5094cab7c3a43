"""The pseries machine: QEMU 7.2's host side of CPU hotplug, assembled on virtual time.

``PseriesMachine`` wires the sans-IO pieces together the way spapr.c does: the
possible-CPU slots and their DR connectors (plus the PHB and PCI connectors QEMU
always creates, so every connector list and reset walk has QEMU's order), the
event queue and its XICS interrupts, the RTAS dispatcher behind H_RTAS, the spapr
core hotplug handler, the vCPU scheduler, machine reset, CAS and the device tree.
Monitor commands (``device_add``, ``device_del``, ``system_reset``, the queries)
are plain methods; transports live elsewhere.
"""

from __future__ import annotations

import contextlib
import datetime
import struct
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from fdt import DeviceTree, Node, to_dtb
from machine.board.device_tree import (
    NULL_UUID,
    DeviceTreeConfig,
    DeviceTreeState,
    build_device_tree,
)
from machine.board.guest_random import GuestRandom
from machine.board.journal import Journal, JournalEntry, journal_args, traced_args
from machine.board.qdev import build_core, parse_device_add, realize_requested
from machine.board.qom import QomObject, QomTree
from machine.config.ghash import drc_container_order
from machine.config.qemu_opts import QemuWarning
from machine.config.startup import MachineSetup, reset_warnings
from machine.sched import VcpuScheduler, VcpuState
from rtas import GuestMemory, GuestMemoryError, RtasDispatcher
from rtas.codes import CC_WORK_AREA_SIZE, ConfigureConnector, RtasStatus
from rtas.hcalls import MMIO_LOAD, MMIO_STORE, Hcall, HcallReturn
from rtas.tokens import service_name
from spapr.cas import cas_check_pvr
from spapr.cpu_core import (
    CoreHotplugHandler,
    CoreSlot,
    SpaprCpuCore,
    VcpuThread,
)
from spapr.cpu_models import CpuModel
from spapr.cpu_node import CpuNodeEnv
from spapr.cpu_rtas import CpuRtas
from spapr.drc import DRC, DrcTable, DrcType, drc_index, is_at_rest
from spapr.drc_rtas import (
    CC_WA_INDEX,
    CC_WA_NAME_OFFSET,
    CC_WA_PROP_LEN,
    CC_WA_PROP_OFFSET,
    register_drc_rtas,
)
from spapr.errors import QemuError
from spapr.events import EventQueue
from spapr.ovec import (
    OV1_PPC_3_00,
    OV5_DRMEM_V2,
    OV5_FORM1_AFFINITY,
    OV5_FORM2_AFFINITY,
    OV5_HP_EVT,
    OV5_HPT_RESIZE,
    OV5_MMU_RADIX_300,
    OV5_MMU_RADIX_GTSE,
    OV5_XIVE_EXPLOIT,
    OptionVector,
    parse_vector,
)
from spapr.platform_rtas import PlatformRtas
from spapr.trace import TraceRecorder
from spapr.xics import XICS_IRQ_BASE, Xics
from spapr.xive import SPAPR_IRQ_IPI, XIVE_HCALLS, SpaprXive

#: Number of PHB connectors QEMU creates (SPAPR_MAX_PHBS) and PCI slots of PHB 0.
SPAPR_MAX_PHBS = 31
PCI_SLOTS_PER_PHB = 256
#: First interrupt of the VIO devices (the NVRAM's) and of PHB 0's LSIs; INTA..INTD.
SPAPR_IRQ_VIO = 0x1100
SPAPR_IRQ_PCI_LSI = 0x1200
PCI_NUM_PINS = 4
#: Where the device tree is placed for the boot CPU: at the top of the RMA (capped at 2 GiB).
FDT_MAX_SIZE = 0x200000
FDT_MAX_ADDR = 0x80000000
#: Fixed start of the guest RTC (deterministic virtual time; QEMU uses the host clock).
RTC_EPOCH = datetime.datetime(2016, 9, 1, 0, 0, 0)
#: CAS refused because other vCPUs are running.
H_MULTI_THREADS_ACTIVE = -9005
#: The XICS hcalls (registered only when the machine has XICS) and XIVE's.
_XICS_HCALL_NUMBERS = frozenset(
    {Hcall.H_CPPR, Hcall.H_IPI, Hcall.H_XIRR, Hcall.H_XIRR_X, Hcall.H_EOI, Hcall.H_IPOLL}
)
_XIVE_HCALL_NUMBERS = frozenset(int(h) for h in XIVE_HCALLS)
#: Header QEMU puts before the FDT it returns from CAS (SpaprDeviceTreeUpdateHeader).
CAS_FDT_HEADER_VERSION = 1
#: The RTAS services whose output (what they left in guest memory) is traced.
_RTAS_OUTPUT_SERVICES = frozenset({"check-exception", "ibm,configure-connector"})
#: The configure-connector work area's first five words (index, -, name offset,
#: property length, property offset), read at once for its ``rtas_output``.
_WORK_AREA_WORDS = struct.Struct(">IIIII")
_CC_NEXT_CHILD = int(ConfigureConnector.NEXT_CHILD)
_CC_NEXT_PROPERTY = int(ConfigureConnector.NEXT_PROPERTY)
#: QMP events kept for ``info events`` (the latest ones, to 1.5x; listeners get them all).
QMP_EVENTS_KEEP = 1000


@attrs.frozen
class QmpEvent:
    """An asynchronous QMP event (the transport adds the wall-clock timestamp)."""

    name: str
    data: Mapping[str, Any]
    t: int = 0


def _device_event_data(dev_id: str | None, path: str) -> dict[str, Any]:
    """DEVICE_DELETED / DEVICE_UNPLUG_GUEST_ERROR payload: ``device`` only when it has an id."""
    return {"path": path} if dev_id is None else {"device": dev_id, "path": path}


#: The dates the guest RTC can show: what an event log's BCD date holds (years 1-9999).
RTC_MIN = datetime.datetime(1, 1, 1)
RTC_MAX = datetime.datetime(9999, 12, 31, 23, 59, 59)


def _rtc_time(now_ns: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The guest RTC at ``now_ns`` past RTC_EPOCH, held within years 1-9999.

    The guest sets the offset (set-time-of-day), so any value must give a date the
    event log can carry: a clock set to the end of 9999 stays there instead of
    making the next hotplug event (a host operation) fail. QEMU's gmtime goes on
    past 9999 and its BCD then garbles the year; no guest depends on either.
    """
    try:
        when = RTC_EPOCH + datetime.timedelta(microseconds=now_ns // 1000)
    except OverflowError:
        when = RTC_MAX if now_ns > 0 else RTC_MIN
    return (when.year, when.month, when.day), (when.hour, when.minute, when.second)


class PseriesMachine:
    """One pseries machine built from a validated :class:`MachineSetup`."""

    def __init__(
        self,
        setup: MachineSetup,
        *,
        trace: TraceRecorder | None = None,
        host_cpus: int | None = None,
        program_factory: Callable[[int, int, int], Generator[Any, Any, Any]] | None = None,
    ) -> None:
        self.setup = setup
        self.topology = setup.topology
        model = setup.cpu.model
        assert model is not None, "startup() refuses CPU models without an sPAPR core"
        self.model: CpuModel = model
        self.core_type = setup.core_type
        self.thread_type = "host-powerpc64-cpu" if setup.cpu.is_host else model.thread_type
        self.trace = trace if trace is not None else TraceRecorder()
        self.qmp_events: list[QmpEvent] = []
        self.event_listeners: list[Callable[[QmpEvent], None]] = []
        self.random = GuestRandom(setup.config.seed)
        self.memory = GuestMemory(setup.ram_size)
        self.qom = QomTree(setup.machine.qom_type)
        self.runstate = "prelaunch"
        self.migrating = False
        self.legacy_core_names = setup.config.legacy_core_names
        #: qdev_set_id's static anon_count: the next /machine/peripheral-anon/device[N].
        #: Every device_add without an id that gets past the driver checks takes a
        #: number, even if it is refused later; numbers are never reused.
        self.anon_device_count = 0
        self.guest_program_factory = program_factory
        #: The loaded reference guest (guest.LinuxGuest), if any.
        self.guest: Any = None
        #: Host inputs in the order applied, with the virtual time: the migration journal
        #: (the latest in memory, the rest in a temporary file).
        self.journal = Journal()
        self.fdt_blob: bytes = b""
        self.fdt_addr = 0
        self.ov5 = self._offered_ov5()
        self.ov5_cas = OptionVector()
        self.compat_pvr = setup.max_compat.logical_pvr if setup.max_compat else 0
        self.pre_isa3_guest = False
        self.radix_guest = False
        self.htab_shift = 0
        self.boot_vcpu_id = 0
        self.rtc_offset_ns = 0

        nr_vcpus = self.topology.max_cpus
        self.sched = VcpuScheduler(
            host_cpus if host_cpus is not None else max(1, nr_vcpus),
            hcall=self._hcall,
            program_factory=self._program_for,
            trace=self.trace,
        )
        self.trace.set_clock(self.sched.clock)
        self.xics = Xics(
            nr_irqs=setup.machine.nr_xirqs,
            trace=self.trace,
            raise_external=self._external_line,
        )
        #: The interrupt controllers the machine has (QEMU's spapr->irq): XICS unless
        #: ic-mode=xive, XIVE with ic-mode=dual or xive on an ISA 3.00 CPU.
        self.has_xics = setup.ic_mode != "xive"
        self.xive: SpaprXive | None = None
        if self._xive_enabled():
            self.xive = SpaprXive(
                nr_irqs=XICS_IRQ_BASE + setup.machine.nr_xirqs,
                nr_servers=self.topology.max_server_number,
                memory=self.memory,
                trace=self.trace,
                raise_external=self._external_line,
            )
            self.memory.map_mmio(self.xive.vc_base, self.xive.esb_length, self.xive.esb_region())
            self.memory.map_mmio(self.xive.tm_base, self.xive.tima_length, self.xive.tima_region())
            for i in range(self.topology.max_server_number):
                self.xive.claim(SPAPR_IRQ_IPI + i)
        #: The controller interrupts go through now (spapr->active_intc).
        self.xive_active = False
        self._intc_activated = False
        self._set_active_intc(xive=not self.has_xics)
        self.events = EventQueue(
            pulse_irq=self._pulse_irq,
            rtc=lambda: _rtc_time(self.sched.now + self.rtc_offset_ns),
            modern_hotplug_events=setup.modern_hotplug_events,
            trace=self.trace,
        )
        self._claim_irq(self.events.epow_irq)
        if setup.modern_hotplug_events:
            self._claim_irq(self.events.hotplug_irq)

        self.rtas = RtasDispatcher[int]()
        self.rtas.add_observer(self._trace_rtas_call)
        self.drcs = DrcTable(self.trace)
        #: CPU connectors not at rest, kept up to date from the table's watch.
        self._rest_watch = self.drcs.watch()
        self._restless: set[DRC] = set()
        self.slots: list[CoreSlot] = [
            CoreSlot(s.index, s.core_id, s.node_id, s.vcpus_count, s.type)
            for s in self.topology.slots
        ]
        self.cores: list[SpaprCpuCore] = []
        self.threads_by_vcpu: dict[int, VcpuThread] = {}
        self.hotplug = CoreHotplugHandler(
            host=self,
            model=model,
            core_type=self.core_type,
            smp_threads=self.topology.threads,
            has_hotpluggable_cpus=setup.machine.has_hotpluggable_cpus,
            slots=self.slots,
            drc_for_core_id=self._drc_for_core_id,
            events=self.events,
            node_env=self.node_env,
            vcpu_id=self.topology.vcpu_id,
            boot_compat_pvr=lambda: self.compat_pvr,
            incoming=lambda: self.runstate == "inmigrate",
        )
        self._created_drcs: list[DRC] = []
        self._create_unattached_placeholders_before_cpus()
        self._init_cpus()
        self._create_phbs()
        self._register_rtas()

    # ------------------------------------------------------------------ wiring

    def _offered_ov5(self) -> OptionVector:
        """spapr->ov5: what the platform offers at CAS."""
        ov5 = OptionVector()
        m = self.setup.machine
        if m.dr_lmb_enabled:
            from spapr.ovec import OV5_DRCONF_MEMORY

            ov5.set(OV5_DRCONF_MEMORY)
        ov5.set(OV5_FORM1_AFFINITY)
        if not getattr(m, "pre_6_2_numa_affinity", False):
            ov5.set(OV5_FORM2_AFFINITY)
        if self.setup.modern_hotplug_events:
            ov5.set(OV5_HP_EVT)
        if self.setup.resize_hpt != "disabled":
            ov5.set(OV5_HPT_RESIZE)
        ov5.set(OV5_DRMEM_V2)
        if self._xive_enabled():
            ov5.set(OV5_XIVE_EXPLOIT)
        if self._isa3_capable():
            ov5.set(OV5_MMU_RADIX_300)
            ov5.set(OV5_MMU_RADIX_GTSE)
        return ov5

    def _isa3_capable(self) -> bool:
        from spapr.cpu_models import IsaLevel

        if self.setup.max_compat is not None:
            return self.setup.max_compat.isa >= IsaLevel.V3_00
        return self.model.isa >= IsaLevel.V3_00

    def _xive_enabled(self) -> bool:
        return self.setup.ic_mode in ("dual", "xive") and self._isa3_capable()

    def _new_drc(self, drc_type: DrcType, drc_id: int, owner: object, **hooks: Any) -> DRC:
        """Create and realize a connector; it joins the /dr-connector container."""
        drc = self.drcs.new(drc_type, drc_id, owner=owner, **hooks)
        self._created_drcs.append(drc)
        if drc_type is not DrcType.PCI:  # PCI connectors hang off the (unmodelled) PHB
            type_name = f"spapr-drc-{drc_type.name.lower()}"
            obj = QomObject(type_name, payload=drc)
            self.qom.add_child(self.qom.machine, drc.qom_child_name, obj)
            self.qom.dr_connectors.links[drc.container_link_name] = (f"link<{type_name}>", obj)
        return drc

    def _init_cpus(self) -> None:
        """spapr_init_cpus: per slot, its CPU connector, then (boot slots) its core."""
        has_hotplug = self.setup.machine.has_hotpluggable_cpus
        for index, slot in enumerate(self.slots):
            if has_hotplug:
                self._new_drc(
                    DrcType.CPU,
                    self.topology.vcpu_id(slot.core_id),
                    self,
                    on_release=self._drc_released,
                    on_unplug_rejected=self._drc_rejected,
                    build_fragment=self._build_fragment,
                    trace_states=True,
                )
            if index < self.topology.boot_cores:
                core = SpaprCpuCore(
                    type_name=self.core_type,
                    model=self.model,
                    core_id=slot.core_id,
                    nr_threads=self.topology.boot_core_threads(index),
                    hotplugged=False,
                )
                self._realize_and_plug(core, parent=None)

    def _create_phbs(self) -> None:
        """The PHB connectors, the VIO bus and NVRAM, then PHB 0 with its PCI connectors.

        Only their connectors and QOM places are modelled: QEMU lists and resets them
        with the CPU connectors, so they shape every order a guest or client sees.
        """
        if self.setup.machine.dr_phb_enabled:
            for i in range(SPAPR_MAX_PHBS):
                self._new_drc(DrcType.PHB, i, self)
        for type_name in ("spapr-vio-bridge", "spapr-nvram"):
            self.qom.add_child(self.qom.unattached, "device[*]", QomObject(type_name))
        self._claim_device_irqs()
        phb = QomObject("spapr-pci-host-bridge")
        self.qom.add_child(self.qom.unattached, "device[*]", phb)
        if self.setup.machine.has_pci_drcs:
            for i in range(PCI_SLOTS_PER_PHB):
                self._new_drc(DrcType.PCI, i, phb)
        self.drcs.set_order(drc_container_order([d.index for d in self._created_drcs]))
        phb_drc = self.drcs.by_id(DrcType.PHB, 0)
        if phb_drc is not None:
            phb_drc.attach(phb)
            phb_drc.reset()

    def _claim_device_irqs(self) -> None:
        """The interrupts QEMU's NVRAM (a VIO device) and PHB 0's four LSIs take.

        Their devices are not modelled, but their sources are allocated as in QEMU
        (fixed numbers, or the next free ones with legacy allocation), so the
        interrupt controller holds what QEMU's does (``info pic``).
        """
        legacy = self.setup.machine.legacy_irq_allocation
        ics = self.xics.ics
        self._claim_irq(ics.find_free() if legacy else SPAPR_IRQ_VIO)
        for pin in range(PCI_NUM_PINS):
            self._claim_irq(ics.find_free() if legacy else SPAPR_IRQ_PCI_LSI + pin, lsi=True)

    def _claim_irq(self, irq: int, lsi: bool = False) -> None:
        """spapr_irq_claim: the source is allocated in every controller the machine has."""
        if self.has_xics:
            self.xics.claim(irq, lsi)
        if self.xive is not None:
            self.xive.claim(irq, lsi)

    def _pulse_irq(self, irq: int) -> None:
        """qemu_irq_pulse on a machine interrupt: it goes to the active controller."""
        if self.xive_active and self.xive is not None:
            self.xive.pulse(irq)
        else:
            self.xics.pulse(irq)

    def _set_active_intc(self, *, xive: bool) -> None:
        """spapr_irq_update_active_intc: switch controllers; only XIVE's pages come and go.

        Under KVM (kernel-irqchip not off) the controller that goes is disconnected
        from its in-kernel device and the one that comes is connected to its own; the
        modeled host offers both devices, so the fallback to emulation never happens.
        """
        new_xive = xive and self.xive is not None
        if self.setup.accel.kernel_irqchip_allowed and (
            not self._intc_activated or new_xive != self.xive_active
        ):
            if self._intc_activated:
                self._disconnect_kvm_intc()
            if new_xive:
                assert self.xive is not None
                self.xive.connect_kvm()
            else:
                self.xics.in_kernel = True
        self._intc_activated = True
        self.xive_active = new_xive
        if self.xive is not None:
            self.memory.set_mmio_enabled(self.xive.vc_base, self.xive_active)
            self.memory.set_mmio_enabled(self.xive.tm_base, self.xive_active)
            self.xive.exploited = self.xive_active and self.ov5_cas.test(OV5_XIVE_EXPLOIT)

    def _disconnect_kvm_intc(self) -> None:
        if self.xive_active and self.xive is not None:
            self.xive.disconnect_kvm()
        else:
            self.xics.in_kernel = False

    @property
    def kvm_irqchip_in_kernel(self) -> bool:
        """QEMU's kvm_irqchip_in_kernel(): the active controller is KVM's in-kernel device."""
        return self.xics.in_kernel or (self.xive is not None and self.xive.in_kernel)

    def _register_rtas(self) -> None:
        register = self.rtas.register
        CpuRtas(self).register_rtas(register)
        self.events.register_rtas(register)
        register_drc_rtas(register, self.drcs)
        if self.has_xics:
            self.xics.register_rtas(register)
        PlatformRtas(self).register_rtas(register)

    def _create_unattached_placeholders_before_cpus(self) -> None:
        if self._xive_enabled():
            self.qom.add_child(
                self.qom.unattached, "device[*]", QomObject("spapr-xive", payload=self.xive)
            )

    # ------------------------------------------------------------ cores

    def _anon_name(self, dev_id: str | None) -> str | None:
        """The peripheral-anon name a device without an id takes now (qdev_set_id)."""
        if dev_id is not None:
            return None
        name = f"device[{self.anon_device_count}]"
        self.anon_device_count += 1
        return name

    def _realize_and_plug(
        self, core: SpaprCpuCore, parent: str | None, anon_name: str | None = None
    ) -> None:
        """pre_plug, realize (threads), plug — QEMU's device_set_realized order.

        All or nothing: if any step fails (a refusal, or a fault of the model), every
        earlier step is undone in reverse — the QOM object and its threads' children,
        the vCPU threads with their presenters, the guest random stream they drew
        from, the DRC attach and its event — so the machine is exactly as before and
        the same command can be retried.
        """
        slot = self.hotplug.pre_plug(core)
        obj = QomObject(self.core_type, payload=core)
        random_state = self.random.snapshot()
        undo: list[Callable[[], None]] = []
        try:
            if parent is None:
                self.qom.add_child(self.qom.unattached, "device[*]", obj)
            elif core.dev_id is not None:
                self.qom.add_child(self.qom.peripheral, core.dev_id, obj)
            else:
                self.qom.add_child(self.qom.peripheral_anon, anon_name or "device[*]", obj)
            undo.append(lambda: QomTree.unparent(obj))
            core.qom_path = obj.path
            undo.append(lambda: self.random.restore(random_state))
            self.hotplug.realize(core)
            undo.append(lambda: self._unrealize(core))
            for i, thread in enumerate(core.threads):
                tobj = self.qom.add_child(
                    obj, f"thread[{i}]", QomObject(self.thread_type, payload=thread)
                )
                for presenter in thread.presenters:
                    self.qom.add_child(tobj, presenter, QomObject(presenter))
            self.hotplug.plug(core, slot)
            self.cores.append(core)
        except BaseException:
            for step in reversed(undo):
                step()
            raise

    def _unrealize(self, core: SpaprCpuCore) -> None:
        """Undo a realize: the threads go (a plug that failed after creating them)."""
        self.destroy_threads(core)
        core.threads = []
        core.realized = False

    def create_threads(self, core: SpaprCpuCore) -> list[VcpuThread]:
        """CoreHotplugHost: realize the core's vCPU threads, stopped."""
        threads: list[VcpuThread] = []
        presenters = (("icp",) if self.has_xics else ()) + (
            ("xive-tctx",) if self.xive is not None else ()
        )
        for i in range(core.nr_threads):
            cpu_index = core.core_id + i
            vcpu_id = self.topology.vcpu_id(cpu_index)
            thread = VcpuThread(
                cpu_index=cpu_index,
                vcpu_id=vcpu_id,
                node_id=core.node_id,
                qom_path=core.thread_path(i),
                presenters=presenters,
                compat_pvr=self.compat_pvr,
            )
            threads.append(thread)
        created: list[VcpuThread] = []
        try:
            for thread in threads:
                self.sched.add_vcpu(thread.vcpu_id)
                try:
                    self._add_presenters(thread)
                except BaseException:
                    self.sched.remove_vcpu(thread.vcpu_id)
                    raise
                self.threads_by_vcpu[thread.vcpu_id] = thread
                created.append(thread)
                self.random.vcpu_thread_started()
        except BaseException:
            # all or nothing: no orphan vCPU thread or presenter is left behind
            for thread in reversed(created):
                self.sched.remove_vcpu(thread.vcpu_id)
                self._remove_presenters(thread)
                del self.threads_by_vcpu[thread.vcpu_id]
            raise
        return threads

    def _add_presenters(self, thread: VcpuThread) -> None:
        """spapr_irq_cpu_intc_create: an ICP and/or a XIVE thread context, all or none."""
        if self.has_xics:
            self.xics.add_icp(thread.vcpu_id, thread.cpu_index)
        if self.xive is not None:
            try:
                self.xive.add_tctx(thread.vcpu_id, thread.cpu_index)
            except BaseException:
                if self.has_xics:
                    self.xics.remove_icp(thread.vcpu_id)
                raise

    def _remove_presenters(self, thread: VcpuThread) -> None:
        if self.has_xics:
            self.xics.remove_icp(thread.vcpu_id)
        if self.xive is not None:
            self.xive.remove_tctx(thread.vcpu_id)

    def destroy_threads(self, core: SpaprCpuCore) -> None:
        """CoreHotplugHost: unrealize the core's threads."""
        for thread in core.threads:
            self.sched.remove_vcpu(thread.vcpu_id)
            self._remove_presenters(thread)
            del self.threads_by_vcpu[thread.vcpu_id]

    def device_deleted(self, dev_id: str | None, path: str) -> None:
        self.emit_event("DEVICE_DELETED", _device_event_data(dev_id, path))

    def device_unplug_guest_error(self, dev_id: str | None, path: str) -> None:
        if dev_id is not None:
            self.trace.emit("guest_unplug_rejected", device=dev_id)
        self.emit_event("DEVICE_UNPLUG_GUEST_ERROR", _device_event_data(dev_id, path))

    def core_released(self, core: SpaprCpuCore) -> None:
        obj = self.qom.resolve(core.qom_path)
        if obj is not None:
            QomTree.unparent(obj)
        self.cores.remove(core)

    def _drc_for_core_id(self, core_id: int) -> DRC | None:
        return self.drcs.by_id(DrcType.CPU, self.topology.vcpu_id(core_id & 0xFFFFFFFF))

    def _drc_released(self, drc: DRC, device: Any) -> None:
        assert isinstance(device, SpaprCpuCore)
        self.hotplug.unplug(device)

    def _drc_rejected(self, drc: DRC, device: Any) -> None:
        assert isinstance(device, SpaprCpuCore)
        self.hotplug.unplug_rejected(device)

    def _build_fragment(self, device: Any) -> Node:
        assert isinstance(device, SpaprCpuCore)
        return self.hotplug.build_fragment(device)

    def node_env(self) -> CpuNodeEnv:
        """Machine-wide inputs of CPU nodes right now (caps, topology, CAS outcome)."""
        caps = self.setup.caps
        kvm = self.setup.accel.is_kvm
        return CpuNodeEnv(
            threads_per_core=self.topology.threads,
            cores_per_socket=self.topology.cores,
            timebase_freq=512_000_000,
            clock_freq=3_000_000_000 if kvm else 1_000_000_000,
            htab_shift=self.htab_shift,
            numa_nodes=self.topology.num_nodes,
            numa_form2=self.ov5_cas.test(OV5_FORM2_AFFINITY),
            cap_vsx=caps.is_on("vsx"),
            cap_dfp=caps.is_on("dfp"),
            cap_htm=caps.is_on("htm"),
            cap_large_decr=caps.is_on("large-decr"),
            hpt_max_page_shift=caps.hpt_max_page_shift,
            compat_pvr=self.compat_pvr,
            pre_isa3_guest=self.pre_isa3_guest,
        )

    # ------------------------------------------------------------ events out

    def emit_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Record a QMP event and hand it to listeners (the monitor).

        Listeners get the event whole; what is kept (``qmp_events`` for ``info
        events``, the trace) holds long strings shortened (a client's megabyte-long
        device id must not be kept a thousand times over).
        """
        event = QmpEvent(name, dict(data), self.sched.now)
        kept = traced_args(data)
        events = self.qmp_events
        events.append(event if kept == event.data else QmpEvent(name, kept, event.t))
        if len(events) >= QMP_EVENTS_KEEP + QMP_EVENTS_KEEP // 2:
            # ``info events`` shows the recent past; a long run must not grow
            del events[: len(events) - QMP_EVENTS_KEEP]
        self.trace.emit("qmp_event", name=name, data=kept)
        for listener in list(self.event_listeners):
            listener(event)

    def _trace_rtas_call(self, call: Any, hcall_status: int, rets: Sequence[int]) -> None:
        """Dispatcher observer: one ``rtas_call`` event per call (skipped when nobody records)."""
        trace = self.trace
        if not trace.active():
            return
        name = service_name(call.token) or f"0x{call.token:x}"
        trace.emit(
            "rtas_call",
            vcpu=call.caller,
            name=name,
            args=list(call.args),
            status=rets[0] if rets else None,
            rets=list(rets),
        )
        if name not in _RTAS_OUTPUT_SERVICES:
            return
        try:
            output = self._rtas_output(name, call.args, rets)
        except GuestMemoryError:
            output = None  # the guest pointed outside its RAM: nothing to show
        if output is not None:
            trace.emit("rtas_output", vcpu=call.caller, name=name, **output)

    def _rtas_output(
        self, name: str, args: Sequence[int], rets: Sequence[int]
    ) -> dict[str, Any] | None:
        """What a call left in guest memory for the guest to read (``rtas_output``).

        check-exception: the event log in the caller's buffer; ibm,configure-connector:
        the work area's node or property name and value. Read back from guest memory, as
        the guest sees them, so the trace shows what was handed over.
        """
        status = rets[0] if rets else None
        if name == "check-exception" and status == RtasStatus.SUCCESS and len(args) >= 6:
            buf, length = args[4], args[5]
            extended = self.memory.ld32(buf + 4)
            return {
                "buffer": buf,
                "event_log": self.memory.read(buf, min(8 + extended, length)).hex(),
            }
        if name == "ibm,configure-connector" and len(args) >= 2:
            wa = (args[1] << 32) | args[0]
            try:
                words = self.memory.unpack(_WORK_AREA_WORDS, wa)
            except GuestMemoryError:
                words = None  # (the field-by-field reads below say which read fails)
            if words is not None:
                # the five words at once; then what each answer wrote after them
                kind: str | None = None
                name_text: str | None = None
                value: str | None = None
                if status in (_CC_NEXT_CHILD, _CC_NEXT_PROPERTY):
                    offset = words[2]
                    name_text = self.memory.read_cstring(
                        wa + offset, CC_WORK_AREA_SIZE - offset
                    ).decode("latin-1")
                    kind = "node" if status == _CC_NEXT_CHILD else "property"
                    if status == _CC_NEXT_PROPERTY:
                        value = self.memory.read(wa + words[4], words[3]).hex()
                return {
                    "work_area": wa,
                    "index": words[0],
                    "kind": kind,
                    "item": name_text,
                    "value": value,
                }
            out: dict[str, Any] = {
                "work_area": wa,
                "index": self.memory.ld32(wa + CC_WA_INDEX),
                "kind": None,
                "item": None,
                "value": None,
            }
            if status in (ConfigureConnector.NEXT_CHILD, ConfigureConnector.NEXT_PROPERTY):
                offset = self.memory.ld32(wa + CC_WA_NAME_OFFSET)
                item = self.memory.read_cstring(wa + offset, CC_WORK_AREA_SIZE - offset)
                out["item"] = item.decode("latin-1")
                out["kind"] = "node" if status == ConfigureConnector.NEXT_CHILD else "property"
            if status == ConfigureConnector.NEXT_PROPERTY:
                size = self.memory.ld32(wa + CC_WA_PROP_LEN)
                offset = self.memory.ld32(wa + CC_WA_PROP_OFFSET)
                out["value"] = self.memory.read(wa + offset, size).hex()
            return out
        return None

    # ------------------------------------------------------------ monitor side

    @property
    def peripheral_ids(self) -> set[str]:
        return set(self.qom.peripheral.children)

    def record(self, command: str, args: Mapping[str, Any]) -> None:
        """Journal a host input (every one that changes state is replayed on migration).

        The arguments are journaled and traced depth-bounded (``journal_args``): what
        a client nests 1024 levels deep must not reach an encoder that recurses.
        """
        kept = journal_args(args)
        self.journal.append(JournalEntry(self.sched.now, command, kept))
        self.trace.emit("host_command", command=command, args=traced_args(kept))

    @contextlib.contextmanager
    def _host_operation(
        self, command: str, args: Mapping[str, Any], *, journal: bool
    ) -> Iterator[None]:
        """Journal a host input, run it, and trace its answer as ``host_reply``.

        ``error`` is QEMU's refusal text, None when the command succeeded; an input
        that is not journaled (refused while migrating) is not traced either.
        """
        if not journal:
            yield
            return
        self.record(command, args)
        try:
            yield
        except QemuError as err:
            self.trace.emit("host_reply", command=command, error=err.message)
            raise
        self.trace.emit("host_reply", command=command, error=None)

    def device_add(self, args: Mapping[str, Any]) -> SpaprCpuCore:
        """QMP/HMP device_add of a core; QemuError with QEMU's text on refusal."""
        # refused whatever else is wrong while migrating: nothing to replay
        with self._host_operation("device_add", args, journal=not self.migrating):
            request = parse_device_add(
                args,
                legacy_core_names=self.legacy_core_names,
                migrating=self.migrating,
                existing_ids=self.peripheral_ids,
                machine_core_types=self._machine_core_types(),
            )
            anon_name = self._anon_name(request.dev_id)
            core = build_core(request, smp_threads=self.topology.threads, hotplugged=True)
            if realize_requested(request):
                self.hotplug.pre_plug(core)  # QEMU's refusal when the realize it asked fails
                raise QemuError(f"Property '{core.type_name}.realized' is not writable")
            self._realize_and_plug(core, parent="peripheral", anon_name=anon_name)
        return core

    def _machine_core_types(self) -> dict[str, CpuModel]:
        if self.setup.cpu.is_host:
            return {self.core_type: self.model}
        return {}

    def device_del(self, dev_id: str) -> None:
        """QMP/HMP device_del by id or absolute QOM path."""
        with self._host_operation("device_del", {"id": dev_id}, journal=not self.migrating):
            obj = (
                self.qom.resolve(dev_id)
                if dev_id.startswith("/")
                else self.qom.peripheral.child(dev_id)
            )
            if obj is None:
                raise QemuError(f"Device '{dev_id}' not found", "DeviceNotFound")
            payload = obj.payload
            if not isinstance(payload, SpaprCpuCore):
                raise QemuError(f"{dev_id} is not a hotpluggable device")
            if self.migrating:
                raise QemuError("device_del not allowed while migrating")
            self.hotplug.unplug_request(payload)

    def system_reset(self, reason: str = "host-qmp-system-reset") -> None:
        """Reset the machine (as qemu_system_reset) and emit RESET."""
        journal = not reason.startswith("guest")
        with self._host_operation("system_reset", {"reason": reason}, journal=journal):
            self.reset()
            self.emit_event("RESET", {"guest": reason.startswith("guest"), "reason": reason})

    def system_powerdown(self) -> None:
        """The machine's part of system_powerdown (spapr_powerdown_req): queue the EPOW
        power-off request (system shutdown, normal) and pulse the EPOW source.

        The monitor emits POWERDOWN first; the guest decides what happens next (Linux
        powers off through RTAS ``power-off``, which raises SHUTDOWN).
        """
        with self._host_operation("system_powerdown", {}, journal=True):
            self.events.queue_epow_shutdown()

    def query_hotpluggable_cpus(self) -> list[dict[str, Any]]:
        """Every slot, highest core-id first, props node-id and core-id, qom-path if filled."""
        if not self.setup.machine.has_hotpluggable_cpus:
            raise QemuError("The feature 'query-hotpluggable-cpus' is not enabled")
        out: list[dict[str, Any]] = []
        for slot in reversed(self.slots):
            entry: dict[str, Any] = {
                "type": slot.type_name,
                "vcpus-count": slot.vcpus_count,
                "props": {"node-id": slot.node_id, "core-id": slot.core_id},
            }
            if slot.core is not None:
                entry["qom-path"] = slot.core.qom_path
            out.append(entry)
        return out

    def query_cpus_fast(self) -> list[dict[str, Any]]:
        """One entry per thread in creation order (QEMU's CPU list)."""
        out: list[dict[str, Any]] = []
        for thread in self.iter_threads():
            slot = self.hotplug.find_slot(thread.cpu_index)
            assert slot is not None
            out.append(
                {
                    "cpu-index": thread.cpu_index,
                    "qom-path": thread.qom_path,
                    "thread-id": self.sched.thread_id(thread.vcpu_id),
                    "props": {"node-id": slot.node_id, "core-id": slot.core_id},
                    "target": "ppc64",
                }
            )
        return out

    def iter_threads(self) -> Iterator[VcpuThread]:
        """Threads in CPU-list order (cores in creation order)."""
        for core in self.cores:
            yield from core.threads

    # ------------------------------------------------------------ reset / boot

    def reset(self) -> list[QemuWarning]:
        """spapr_machine_reset; returns the warnings QEMU prints on every reset."""
        warnings = reset_warnings(self.setup)
        self.htab_shift = self._hpt_shift_for_ram()
        for thread in list(self.iter_threads()):
            # CPU reset: every thread halts and whatever guest code it ran is gone.
            if self.sched.state(thread.vcpu_id) is not VcpuState.STOPPED:
                self.sched.stop_self(thread.vcpu_id)
        self.ov5_cas = OptionVector()
        self.compat_pvr = self.setup.max_compat.logical_pvr if self.setup.max_compat else 0
        for thread in self.iter_threads():
            thread.compat_pvr = self.compat_pvr
        self.pre_isa3_guest = False
        self.radix_guest = False
        self.events.hp_evt_negotiated = False
        self.drcs.reset_all()
        self.events.clear_all()
        if self.xive is not None:
            # spapr_xive_reset, each vCPU's thread context, then the pre-CAS controller
            self.xive.reset()
            for thread in self.iter_threads():
                self.xive.reset_tctx(thread.vcpu_id)
            self._set_active_intc(xive=not self.has_xics)
        self.build_fdt_for_boot()
        if self.guest is not None:
            self.boot(self.guest.entry_point)
        return warnings

    def _hpt_shift_for_ram(self) -> int:
        ram = self.setup.maxram_size
        shift = (ram - 1).bit_length() - 7
        return max(18, min(46, shift))

    def dt_config(self) -> DeviceTreeConfig:
        setup = self.setup
        m = setup.machine
        node_mem = setup.numa_node_mem or (setup.ram_size,)
        rma = min(setup.ram_size, node_mem[0], 1 << 40)
        if m.rma_limit:
            rma = min(rma, m.rma_limit)
        return DeviceTreeConfig(
            max_cpus=self.topology.max_cpus,
            smp_threads=self.topology.threads,
            has_hotpluggable_cpus=m.has_hotpluggable_cpus,
            ram_size=setup.ram_size,
            rma_size=rma,
            numa_nodes=tuple(enumerate(node_mem)),
            max_server_number=self.topology.max_server_number,
            xics=self.has_xics,
            xive=self._xive_enabled(),
            isa_3_00=self._isa3_capable(),
            kvm=setup.accel.is_kvm,
            dr_phb_enabled=m.dr_phb_enabled,
            dr_lmb_enabled=m.dr_lmb_enabled,
            nvdimm_supported=m.nvdimm_supported,
            linux_pci_probe=m.linux_pci_probe,
            pre_5_2_numa_associativity=getattr(m, "pre_5_2_numa_associativity", False),
            pre_5_1_assoc_refpoints=getattr(m, "pre_5_1_assoc_refpoints", False),
            cap_rpt_invalidate=setup.caps.is_on("rpt-invalidate"),
            resize_hpt=setup.resize_hpt != "disabled",
            vm_name=setup.config.name,
            vm_uuid=setup.config.process.uuid or NULL_UUID,
            system_id=setup.config.process.uuid is not None,
        )

    def device_tree(self, *, reset: bool = True) -> DeviceTree:
        """Build the tree as of now (draws rng-seed bytes, as QEMU does)."""
        state = DeviceTreeState(
            cores=self.cores,
            drcs=self.drcs,
            events=self.events,
            rtas_services=self.rtas.registered(),
            node_env=self.node_env(),
            ov5_cas=self.ov5_cas,
            compat_pvr=self.compat_pvr,
            xive_node=self.xive.nodename if self.xive_active and self.xive is not None else None,
            rng_seed=self.random.getrandom,
            drc_index_of_core=lambda core: (
                d.index if (d := self._drc_for_core_id(core.core_id)) is not None else None
            ),
        )
        return build_device_tree(self.dt_config(), state, reset=reset)

    def build_fdt_for_boot(self) -> bytes:
        """Build the reset tree, place it in guest memory and arm the boot CPU."""
        blob = to_dtb(self.device_tree(reset=True))
        self.fdt_blob = blob
        self.fdt_addr = min(self.dt_config().rma_size, FDT_MAX_ADDR) - FDT_MAX_SIZE
        if len(blob) <= FDT_MAX_SIZE:
            self.memory.write(self.fdt_addr, blob)
        return blob

    def load_guest(self, guest: Any) -> None:
        """Load the reference guest: it gets the RAM and clock; reset boots it."""
        guest.attach(self.memory, self.sched.clock)
        self.guest = guest
        self.guest_program_factory = guest.program_factory

    def boot(self, entry_point: int) -> None:
        """Start the boot vCPU at the guest's entry with r3 = the FDT address."""
        first = next(self.iter_threads())
        self.boot_vcpu_id = first.vcpu_id
        self.sched.start(first.vcpu_id, entry_point, self.fdt_addr)

    # ------------------------------------------------------------ guest side

    def _program_for(self, vcpu_id: int, entry: int, r3: int) -> Generator[Any, Any, Any]:
        if self.guest_program_factory is None:
            raise QemuError("no guest is loaded")
        return self.guest_program_factory(vcpu_id, entry, r3)

    def _external_line(self, server: int, asserted: bool) -> None:
        if self.sched.find_vcpu(server) is None:
            return
        if asserted:
            self.sched.raise_interrupt(server)
        else:
            self.sched.lower_interrupt(server)

    def _hcall(self, vcpu_id: int, number: int, args: tuple[Any, ...]) -> Any:
        """Hypercalls the scheduler does not handle itself."""
        if number == Hcall.KVMPPC_H_RTAS:
            return self.rtas.hcall_rtas(self.memory, int(args[0]), vcpu_id)
        if number == Hcall.KVMPPC_H_CAS:
            return self.h_client_architecture_support(vcpu_id, *[int(a) for a in args])
        if number in (MMIO_LOAD, MMIO_STORE):
            return self._mmio(vcpu_id, number, args)
        if number in _XIVE_HCALL_NUMBERS:
            if self.xive is None:
                return HcallReturn.H_FUNCTION
            status, values = self.xive.hcall(number, [int(a) for a in args])
            return (status, *values) if values else status
        if not self.has_xics and number in _XICS_HCALL_NUMBERS:
            return HcallReturn.H_FUNCTION
        if number == Hcall.H_XIRR:
            status, values = self.xics.h_xirr(vcpu_id)
            return (status, *values)
        if number == Hcall.H_XIRR_X:
            status, values = self.xics.h_xirr_x(vcpu_id, self.sched.now)
            return (status, *values)
        if number == Hcall.H_EOI:
            return self.xics.h_eoi(vcpu_id, int(args[0]))[0]
        if number == Hcall.H_CPPR:
            return self.xics.h_cppr(vcpu_id, int(args[0]))[0]
        if number == Hcall.H_IPI:
            return self.xics.h_ipi(vcpu_id, int(args[0]), int(args[1]))[0]
        if number == Hcall.H_IPOLL:
            status, values = self.xics.h_ipoll(vcpu_id, int(args[0]))
            return (status, *values)
        if number in (Hcall.H_REGISTER_VPA, Hcall.H_SET_MODE):
            return HcallReturn.H_SUCCESS
        return HcallReturn.H_FUNCTION

    def _mmio(self, vcpu_id: int, op: int, args: tuple[Any, ...]) -> int | None:
        """A guest load or store outside RAM: the device page mapped there answers.

        An access where nothing is mapped (or a disabled page) is traced as a guest
        error; a load then reads all ones, a store is dropped.
        """
        addr, size = int(args[0]), int(args[1])
        try:
            if op == MMIO_LOAD:
                return self.memory.mmio_load(addr, size, cpu=vcpu_id)
            self.memory.mmio_store(addr, size, int(args[2]), cpu=vcpu_id)
        except GuestMemoryError as err:
            self.trace.emit("guest_error", message=str(err))
            return (1 << (8 * size)) - 1 if op == MMIO_LOAD and 0 < size <= 8 else None
        return None

    # VcpuControl (start-cpu, stop-self, query-cpu-stopped-state)
    def find_vcpu(self, vcpu_id: int) -> int | None:
        return self.sched.find_vcpu(vcpu_id)

    def is_halted(self, vcpu: Any) -> bool:
        return self.sched.is_halted(int(vcpu))

    def start_vcpu(self, vcpu: Any, caller: Any, entry: int, r3: int) -> None:
        self.sched.start(int(vcpu), entry, r3)

    def stop_self(self, vcpu: Any) -> None:
        self.sched.stop_self(int(vcpu))

    def h_client_architecture_support(
        self, vcpu_id: int, vec: int, fdt_buf: int, fdt_bufsize: int
    ) -> int:
        """KVMPPC_H_CAS: negotiate compat mode and option vectors, reset DRCs, return the tree.

        ``fdt_buf``/``fdt_bufsize`` is where the firmware wants the new tree (after a
        4-byte update header); QEMU exits when it is too small, the model refuses.
        """
        for other in self.iter_threads():
            if other.vcpu_id != vcpu_id and not self.sched.is_halted(other.vcpu_id):
                return H_MULTI_THREADS_ACTIVE
        try:
            return self._cas(vcpu_id, vec, fdt_buf, fdt_bufsize)
        except GuestMemoryError:
            # a vector (or its option vectors) outside guest RAM: QEMU would read the
            # unassigned memory as zeros; the model refuses the call instead
            self.trace.emit("guest_error", message="CAS vector outside guest memory")
            return HcallReturn.H_PARAMETER

    def _cas(self, vcpu_id: int, vec: int, fdt_buf: int, fdt_bufsize: int) -> int:
        """H_CAS once the other threads are known to be halted."""
        choice = cas_check_pvr(
            self.memory, vec & 0x0FFFFFFFFFFFFFFF, self.model, self.setup.max_compat
        )
        self.trace.emit(
            "spapr_cas_pvr",
            cur_pvr=self.compat_pvr,
            explicit_match=choice.explicit_match,
            new_pvr=choice.best_compat_pvr,
        )
        table, cas_pvr = choice.table_addr, choice.best_compat_pvr
        if not choice.negotiable or (not cas_pvr and self.setup.max_compat is not None):
            self.trace.emit("guest_error", message="Couldn't negotiate a suitable PVR during CAS")
            return HcallReturn.H_HARDWARE
        ov1 = parse_vector(self.memory, table, 1)
        ov5_guest = parse_vector(self.memory, table, 5)
        if ov1 is None or ov5_guest is None:
            return HcallReturn.H_PARAMETER
        self.compat_pvr = cas_pvr
        for thread in self.iter_threads():
            thread.compat_pvr = cas_pvr
        self.radix_guest = ov5_guest.test(OV5_MMU_RADIX_300)
        if self.radix_guest:
            self.htab_shift = 0
        guest_xive = ov5_guest.test(OV5_XIVE_EXPLOIT)
        if guest_xive and self.xive is None:
            self.trace.emit(
                "guest_error",
                message="Guest requested unavailable interrupt mode (XIVE), try the "
                "ic-mode=xive or ic-mode=dual machine property",
            )
            return HcallReturn.H_PARAMETER  # QEMU exits; the model refuses the call
        if not guest_xive and not self.has_xics:
            self.trace.emit(
                "guest_error",
                message="Guest requested unavailable interrupt mode (XICS), either don't set "
                "the ic-mode property, or try ic-mode=xics or ic-mode=dual",
            )
            return HcallReturn.H_PARAMETER
        self.ov5_cas = self.ov5.intersect(ov5_guest)
        self._set_active_intc(xive=self.ov5_cas.test(OV5_XIVE_EXPLOIT))
        self.pre_isa3_guest = not ov1.test(OV1_PPC_3_00)
        self.events.hp_evt_negotiated = self.ov5_cas.test(OV5_HP_EVT)
        self.drcs.reset_all()
        self.events.clear_hotplug()
        blob = to_dtb(self.device_tree(reset=False))
        header = CAS_FDT_HEADER_VERSION.to_bytes(4, "big")
        if len(blob) > fdt_bufsize - len(header):
            # QEMU cannot build the tree in the guest's space and exits; the model refuses
            self.trace.emit(
                "guest_error", message=f"CAS buffer of {fdt_bufsize} bytes too small for the tree"
            )
            return HcallReturn.H_PARAMETER
        self.memory.write_clipped(fdt_buf, header + blob)
        self.trace.emit("spapr_cas_continue", n=len(blob) + len(header))
        self.fdt_blob = blob
        return HcallReturn.H_SUCCESS

    # PlatformHooks (the non-DR RTAS services)
    def console_write(self, data: bytes) -> bool:
        return False  # -nodefaults: no VTY, as in every oracle configuration

    def shutdown_request(self, cause: str) -> None:
        self.runstate = "shutdown"
        self.emit_event("SHUTDOWN", {"guest": cause.startswith("guest"), "reason": cause})

    def reset_request(self, cause: str) -> None:
        self.sched.call_later(0, lambda: self.system_reset(cause))

    def guest_panicked(self, message: str) -> None:
        self.trace.emit("guest_os_term", message=message)
        self.emit_event("GUEST_PANICKED", {"action": "pause"})

    def time_of_day(self) -> tuple[int, int, int, int, int, int, int]:
        (y, mo, d), (h, mi, s) = _rtc_time(self.sched.now + self.rtc_offset_ns)
        return (y, mo, d, h, mi, s, 0)

    def set_time_of_day(self, when: tuple[int, int, int, int, int, int, int]) -> None:
        y, mo, d, h, mi, s, ns = when
        try:
            target = datetime.datetime(y, mo, d, h, mi, s)
        except (ValueError, OverflowError):
            return  # not a date (a guest value: any 32-bit word)
        delta = target - RTC_EPOCH
        self.rtc_offset_ns = int(delta.total_seconds()) * 1_000_000_000 + ns - self.sched.now

    def splpar_characteristics(self) -> str:
        topo = self.topology
        text = (
            f"MaxEntCap={topo.max_cpus},DesMem={self.setup.ram_size // (1 << 20)},"
            f"DesProcs={topo.cpus},MaxPlatProcs={topo.max_cpus}"
        )
        if self.model.family in ("POWER8", "POWER9"):
            text += f",HostThrs={8 if self.model.family == 'POWER8' else 4}"
        return text

    def vm_uuid(self) -> bytes:
        uuid = self.setup.config.process.uuid
        return bytes.fromhex(uuid.replace("-", "")) if uuid else b""

    def other_threads_active(self, caller: int) -> bool:
        return any(
            t.vcpu_id != caller and not self.sched.is_halted(t.vcpu_id) for t in self.iter_threads()
        )

    # ------------------------------------------------------------ running

    def drc(self, index: int) -> DRC | None:
        """The connector with this DRC index (monitor lookups)."""
        return self.drcs.get(index)

    def cpu_connectors_at_rest(self) -> bool:
        """Every CPU connector at rest (:func:`~spapr.drc.is_at_rest`): no unplug pending,
        every attached core configured.

        Kept incrementally: only the connectors the table reports as touched since the
        previous call are looked at again, so a settle check costs the same with 8 or
        4096 slots.
        """
        touched = self._rest_watch.take()
        restless = self._restless
        drcs = self.drcs
        if touched is None:
            restless.clear()
            candidates: Iterable[DRC] = drcs.members()
        else:
            candidates = touched
        for drc in candidates:
            if drc.type is DrcType.CPU and drcs.holds(drc) and not is_at_rest(drc):
                restless.add(drc)
            else:
                restless.discard(drc)
        return not restless

    def cpu_drc_index(self, core_id: int) -> int:
        """The index of the CPU connector of the slot of ``core_id``."""
        return drc_index(DrcType.CPU, self.topology.vcpu_id(core_id))

    # ------------------------------------------------------------ command line

    def add_cmdline_device(self, props: Mapping[str, Any], location: str) -> SpaprCpuCore:
        """A ``-device`` core: validated like device_add, plugged cold (DRC reset, no event)."""
        try:
            request = parse_device_add(
                props,
                legacy_core_names=self.legacy_core_names,
                existing_ids=self.peripheral_ids,
                machine_core_types=self._machine_core_types(),
            )
            anon_name = self._anon_name(request.dev_id)
            core = build_core(request, smp_threads=self.topology.threads, hotplugged=False)
            self._realize_and_plug(core, parent="peripheral", anon_name=anon_name)
        except QemuError as err:
            if err.location is None:
                err.location = location
            raise
        return core
