"""A small fake pseries platform for the guest's tests, and tests of the fake itself.

It implements the machine/guest contract minimally but with QEMU 7.2's answers:
guest memory, a deterministic event-driven vCPU scheduler (EXECUTE, H_CEDE, H_PROD,
hcalls), a tiny XICS (ICS sources 0x1000/0x1001, one ICP per thread, IPIs), the RTAS
services of the CPU-hotplug path (DR connectors per protocol.md §3.4/§3.6, the
configure-connector walk §4.6, start-cpu/stop-self/query-cpu-stopped-state, the
event queue with check-exception/event-scan §4.7/§5.2) and CAS. Every RTAS call is
recorded with its arguments and returns. Other guest test modules import it.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import attrs
import pytest

import fdt
from guest import LinuxGuest
from rtas import (
    GuestMemory,
    HotplugAction,
    HotplugIdType,
    HotplugResource,
    RtasCall,
    RtasDispatcher,
    epow_event,
    hotplug_event,
)
from rtas.errlog import EventLogEntry
from rtas.hcalls import EXECUTE, Hcall, HcallReturn
from rtas.tokens import RTAS_SERVICE_NAMES, RtasToken

DATA = Path(__file__).parent / "data" / "guest"

IRQ_EPOW = 0x1000
IRQ_HOTPLUG = 0x1001
MASK_EPOW = 0x40000000
MASK_HOTPLUG = 0x10000000
XICS_IPI = 2
FDT_ADDR = 0x0F00_0000
RAM = 256 << 20
CPU_DRC_BASE = 0x10000000

# DRC states (QEMU's enum values).
UNUSABLE, AVAILABLE, UNISOLATE, CONFIGURED = 1, 2, 3, 4


@attrs.frozen
class Call:
    """One RTAS call seen by the platform."""

    time: int
    hwid: int
    name: str
    args: tuple[int, ...]
    rets: tuple[int, ...]

    def short(self) -> tuple[Any, ...]:
        return (self.name, self.args, self.rets)


# ----------------------------------------------------------------------- XICS


@attrs.define
class Source:
    server: int = 0
    priority: int = 0xFF
    saved_priority: int = 0xFF
    masked_pending: bool = False
    rejected: bool = False


@attrs.define(eq=False)
class Icp:
    """One presentation controller (QEMU's icp_* semantics, MSI sources only)."""

    server: int
    platform: FakePlatform
    xirr: int = 0
    pending_priority: int = 0xFF
    mfrr: int = 0xFF
    output: bool = False

    @property
    def cppr(self) -> int:
        return self.xirr >> 24

    @property
    def xisr(self) -> int:
        return self.xirr & 0xFFFFFF

    def _raise(self) -> None:
        self.output = True
        self.platform.external_raised(self.server)

    def irq(self, nr: int, priority: int) -> None:
        if priority >= self.cppr or (self.xisr and self.pending_priority <= priority):
            self.platform.ics_reject(nr)
            return
        if self.xisr:
            self.platform.ics_reject(self.xisr)
        self.xirr = (self.cppr << 24) | nr
        self.pending_priority = priority
        self._raise()

    def check_ipi(self) -> None:
        if self.xisr and self.pending_priority <= self.mfrr:
            return
        if self.xisr:
            self.platform.ics_reject(self.xisr)
        self.xirr = (self.cppr << 24) | XICS_IPI
        self.pending_priority = self.mfrr
        self._raise()

    def resend(self) -> None:
        if self.mfrr < self.cppr:
            self.check_ipi()
        self.platform.ics_resend()

    def set_cppr(self, cppr: int) -> None:
        old = self.cppr
        self.xirr = (cppr << 24) | self.xisr
        if cppr < old:
            if self.xisr and cppr <= self.pending_priority:
                old_xisr = self.xisr
                self.xirr &= 0xFF000000
                self.pending_priority = 0xFF
                self.output = False
                self.platform.ics_reject(old_xisr)
        elif not self.xisr:
            self.resend()

    def set_mfrr(self, mfrr: int) -> None:
        self.mfrr = mfrr
        if mfrr < self.cppr:
            self.check_ipi()

    def accept(self) -> int:
        old = self.xirr
        self.output = False
        self.xirr = self.pending_priority << 24
        self.pending_priority = 0xFF
        return old

    def eoi(self, xirr: int) -> None:
        self.xirr = (xirr & 0xFF000000) | self.xisr
        if not self.xisr:
            self.resend()


# ----------------------------------------------------------------- DRC / cores


@attrs.define(eq=False)
class Core:
    core_id: int
    hwids: tuple[int, ...]
    node: int = 0


@attrs.define(eq=False)
class Drc:
    index: int
    state: int = UNUSABLE
    core: Core | None = None
    unplug_requested: bool = False
    steps: list[fdt.WalkStep] | None = None
    cursor: int = 0
    depth: int = 0


@attrs.define(eq=False)
class Vcpu:
    hwid: int
    program: Generator[Any, Any, None] | None = None
    running: bool = False
    ceded: bool = False
    executing: bool = False
    busy_until: int = 0
    token: int = 0
    prod: bool = False
    cuttable: bool = True


# ----------------------------------------------------------------- tree making


def _cells(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def _strings(values: list[str]) -> bytes:
    return b"".join(v.encode() + b"\0" for v in values)


def cpu_node(
    name: str,
    hwid: int,
    threads: int,
    *,
    drc_index: int,
    pvr: int = 0x004E1200,
    chip_id: int = 0,
    numa_node: int | None = None,
    extra_name: bool = False,
) -> fdt.Node:
    """A cpu node in QEMU's creation order (set_property puts new properties first)."""
    node = fdt.Node(f"{name}@{hwid:x}")
    for prop in (
        fdt.Property.cells("ibm,my-drc-index", drc_index),
        fdt.Property.cells("reg", hwid),
        fdt.Property.string("device_type", "cpu"),
        fdt.Property.cells("cpu-version", pvr),
        fdt.Property.cells("d-cache-block-size", 128),
        fdt.Property.cells("d-cache-line-size", 128),
        fdt.Property.cells("i-cache-block-size", 128),
        fdt.Property.cells("i-cache-line-size", 128),
        fdt.Property.cells("d-cache-size", 0x8000),
        fdt.Property.cells("i-cache-size", 0x8000),
        fdt.Property.cells("timebase-frequency", 512000000),
        fdt.Property.cells("clock-frequency", 1000000000),
        fdt.Property.string("status", "okay"),
        fdt.Property.empty("64-bit"),
        fdt.Property.cells("ibm,chip-id", chip_id),
    ):
        node.set_property(prop)
    if numa_node is not None:
        node.set_property(fdt.Property.cells("ibm,associativity", 5, 0, 0, 0, numa_node, hwid))
    node.set_property(
        fdt.Property.cells("ibm,ppc-interrupt-server#s", *range(hwid, hwid + threads))
    )
    gservers = [v for h in range(hwid, hwid + threads) for v in (h, 0)]
    node.set_property(fdt.Property.cells("ibm,ppc-interrupt-gserver#s", *gservers))
    if extra_name:
        node.set_property(fdt.Property.string("name", node.name))
    return node


def build_tree(
    *,
    slots: int,
    boot_cores: int,
    threads: int = 1,
    cores_per_socket: int | None = None,
    numa_nodes: int = 1,
    platform_support: bytes = bytes([0x17, 0x80, 0x18, 0xC0, 0x19, 0x00, 0x1A, 0x40]),
    hotplug_events: bool = True,
    ram: int = RAM,
) -> fdt.Node:
    """A pseries-like boot tree with ``slots`` cores of ``threads`` threads."""
    root = fdt.Node("")
    root.append_property(fdt.Property.cells("#address-cells", 2))
    root.append_property(fdt.Property.cells("#size-cells", 2))
    root.append_property(fdt.Property.string("device_type", "chrp"))
    chosen = root.append_subnode(fdt.Node("chosen"))
    chosen.append_property(fdt.Property.bytes("ibm,architecture-vec-5", b"\0\0"))
    chosen.append_property(fdt.Property.bytes("ibm,arch-vec-5-platform-support", platform_support))
    rtas = root.append_subnode(fdt.Node("rtas"))
    for token, name in RTAS_SERVICE_NAMES.items():
        rtas.append_property(fdt.Property.cells(name, int(token)))
    rtas.append_property(fdt.Property.cells("ibm,lrdr-capacity", 0, 0, 0, 0x10000000, slots))
    rtas.append_property(fdt.Property.cells("rtas-event-scan-rate", 1))
    rtas.append_property(fdt.Property.cells("rtas-error-log-max", 2048))
    rtas.append_property(fdt.Property.cells("ibm,associativity-reference-points", 4, 4, 2))
    rtas.append_property(
        fdt.Property.cells("ibm,max-associativity-domains", 4, 0, 0, 0, numa_nodes)
    )
    events = root.append_subnode(fdt.Node("event-sources"))
    events.append_property(fdt.Property.empty("interrupt-controller"))
    events.append_property(fdt.Property.cells("#interrupt-cells", 2))
    if hotplug_events:
        hp = events.append_subnode(fdt.Node("hot-plug-events"))
        hp.append_property(fdt.Property.cells("interrupts", IRQ_HOTPLUG, 0))
    epow = events.append_subnode(fdt.Node("epow-events"))
    epow.append_property(fdt.Property.cells("interrupts", IRQ_EPOW, 0))
    cpus = root.append_subnode(fdt.Node("cpus"))
    indexes = [CPU_DRC_BASE | (i * threads) for i in range(slots)]
    cpus.append_property(fdt.Property.bytes("ibm,drc-indexes", _cells(slots, *indexes)))
    cpus.append_property(
        fdt.Property.bytes(
            "ibm,drc-names",
            _cells(slots) + _strings([f"CPU {i * threads}" for i in range(slots)]),
        )
    )
    cpus.append_property(
        fdt.Property.bytes("ibm,drc-types", _cells(slots) + _strings(["CPU"] * slots))
    )
    cpus.append_property(fdt.Property.cells("#address-cells", 1))
    cpus.append_property(fdt.Property.cells("#size-cells", 0))
    per_socket = cores_per_socket or slots
    for i in range(boot_cores):
        hwid = i * threads
        cpus.append_subnode(
            cpu_node(
                "PowerPC,POWER9",
                hwid,
                threads,
                drc_index=CPU_DRC_BASE | hwid,
                chip_id=i // per_socket,
                numa_node=(i % numa_nodes) if numa_nodes > 1 else None,
            )
        )
    per_node = ram // numa_nodes
    for n in range(numa_nodes):
        mem = root.append_subnode(fdt.Node(f"memory@{n * per_node:x}"))
        mem.append_property(fdt.Property.cells("reg", 0, n * per_node, 0, per_node))
        mem.append_property(fdt.Property.string("device_type", "memory"))
        if numa_nodes > 1:
            mem.append_property(fdt.Property.cells("ibm,associativity", 4, 0, 0, 0, n))
    return root


# -------------------------------------------------------------------- platform


class PlatformError(AssertionError):
    """The guest did something the fake cannot follow (a test failure)."""


class FakePlatform:
    """The fake machine: memory, threads, XICS, DRCs, event queue, RTAS, CAS."""

    def __init__(
        self,
        guest: LinuxGuest,
        tree: fdt.Node | None = None,
        *,
        threads: int = 1,
        offered_ov5: dict[int, int] | None = None,
        node_of_slot: Callable[[int], int] | None = None,
        interrupt_servers_limit: int | None = None,
        cas_status: int = 0,
        ram: int = RAM,
    ) -> None:
        self.guest = guest
        self.tree = tree if tree is not None else build_tree(slots=4, boot_cores=1)
        self.threads = threads
        self.memory = GuestMemory(ram)
        self.now = 0
        self.calls: list[Call] = []
        self.events: list[str] = []
        self.hcalls: list[tuple[int, tuple[int, ...]]] = []
        self._heap: list[tuple[int, int, int, int]] = []
        self._seq = itertools.count()
        self.vcpus: dict[int, Vcpu] = {}
        self.icps: dict[int, Icp] = {}
        self.sources = {IRQ_EPOW: Source(), IRQ_HOTPLUG: Source()}
        self.queue: list[EventLogEntry] = []
        self.hp_evt = False
        self.cas_vector: bytes | None = None
        self.cas_pvrs: list[tuple[int, int]] = []
        self.cas_ov5: bytes = b""
        self.cas_status = cas_status
        self.powered_off = False
        self.plid = 0
        self.node_of_slot = node_of_slot or (lambda slot: 0)
        self.interrupt_servers_limit = interrupt_servers_limit
        #: QEMU 7.2 offers (byte -> mask) of vector 5.
        self.offered_ov5 = offered_ov5 or {
            2: 0x20,
            5: 0xA0,
            6: 0x05,
            22: 0x80,
            24: 0xC0,
            26: 0x40,
        }
        self.dispatcher: RtasDispatcher[Vcpu] = RtasDispatcher()
        self._register_rtas()
        self.drcs: dict[int, Drc] = {}
        cpus = self.tree.find("/cpus")
        assert cpus is not None
        indexes = struct.unpack_from(">I", cpus["ibm,drc-indexes"].value)
        count = indexes[0]
        for index in struct.unpack_from(f">{count}I", cpus["ibm,drc-indexes"].value, 4):
            self.drcs[index] = Drc(index)
        self.template = next(c for c in cpus.children if "ibm,my-drc-index" in c)
        for child in cpus.children:
            index = struct.unpack(">I", child["ibm,my-drc-index"].value)[0]
            servers = struct.unpack(
                f">{len(child['ibm,ppc-interrupt-server#s'].value) // 4}I",
                child["ibm,ppc-interrupt-server#s"].value,
            )
            core = Core(index & 0x0FFFFFFF, tuple(range(servers[0], servers[0] + threads)))
            self.drcs[index].core = core
            self.drcs[index].state = CONFIGURED
            for hwid in core.hwids:
                self._new_vcpu(hwid)
        guest.attach(self.memory, lambda: self.now)

    # ----------------------------------------------------------------- helpers

    def _new_vcpu(self, hwid: int) -> Vcpu:
        vcpu = Vcpu(hwid)
        self.vcpus[hwid] = vcpu
        self.icps[hwid] = Icp(hwid, self)
        return vcpu

    def drc(self, core_id: int) -> Drc:
        return self.drcs[CPU_DRC_BASE | core_id]

    def _schedule(self, hwid: int, at: int, value: Any) -> None:
        vcpu = self.vcpus[hwid]
        vcpu.token += 1
        heapq.heappush(self._heap, (at, next(self._seq), hwid, vcpu.token))
        vcpu.busy_until = at
        self._values[hwid] = value

    _values: dict[int, Any]

    # -------------------------------------------------------------------- boot

    def boot(self) -> None:
        blob = fdt.to_dtb(fdt.DeviceTree(self.tree, boot_cpuid_phys=0))
        self.memory.write(FDT_ADDR, blob)
        self._values = {}
        vcpu = self.vcpus[0]
        vcpu.program = self.guest.program_factory(0, self.guest.entry_point, FDT_ADDR)
        vcpu.running = True
        self._schedule(0, self.now, None)

    def run(self, ns: int) -> None:
        """Advance virtual time by ``ns``, running every thread that is due."""
        end = self.now + ns
        while self._heap and self._heap[0][0] <= end:
            at, _seq, hwid, token = heapq.heappop(self._heap)
            vcpu = self.vcpus.get(hwid)
            if vcpu is None or token != vcpu.token or vcpu.program is None:
                continue
            self.now = max(self.now, at)
            value = self._values.pop(hwid, None)
            vcpu.ceded = vcpu.executing = False
            self._step(vcpu, value)
        self.now = end

    def _step(self, vcpu: Vcpu, value: Any) -> None:
        ops = 0
        while vcpu.program is not None:
            ops += 1
            if ops > 200_000:
                raise PlatformError(f"thread {vcpu.hwid} made 200000 calls without time passing")
            try:
                op = vcpu.program.send(value)
            except StopIteration:
                vcpu.program = None
                vcpu.running = False
                return
            kind = op[0]
            if kind == EXECUTE:
                ns = int(op[1])
                vcpu.cuttable = len(op) < 3 or bool(op[2])
                if vcpu.cuttable and self.icps[vcpu.hwid].output:
                    value = ns
                    continue
                vcpu.executing = True
                self._schedule(vcpu.hwid, self.now + ns, 0)
                return
            hcall = Hcall(kind)
            self.hcalls.append((vcpu.hwid, tuple(int(x) for x in op)))
            if hcall is Hcall.H_CEDE:
                if self.icps[vcpu.hwid].output or vcpu.prod:
                    vcpu.prod = False
                    value = HcallReturn.H_SUCCESS
                    continue
                vcpu.ceded = True
                vcpu.token += 1
                if len(op) > 1:
                    self._schedule(vcpu.hwid, self.now + int(op[1]), HcallReturn.H_SUCCESS)
                return
            value = self._hcall(vcpu, hcall, [int(x) for x in op[1:]])
            if not vcpu.running:
                if vcpu.program is not None:
                    vcpu.program.close()
                vcpu.program = None
                return

    def _hcall(self, vcpu: Vcpu, hcall: Hcall, args: list[int]) -> Any:
        icp = self.icps[vcpu.hwid]
        if hcall is Hcall.KVMPPC_H_RTAS:
            return self.dispatcher.hcall_rtas(self.memory, args[0], vcpu)
        if hcall is Hcall.H_XIRR:
            return (HcallReturn.H_SUCCESS, icp.accept())
        if hcall is Hcall.H_EOI:
            icp.eoi(args[0])
            return HcallReturn.H_SUCCESS
        if hcall is Hcall.H_CPPR:
            icp.set_cppr(args[0])
            return HcallReturn.H_SUCCESS
        if hcall is Hcall.H_IPI:
            target = self.icps.get(args[0])
            if target is None:
                return HcallReturn.H_PARAMETER
            target.set_mfrr(args[1])
            return HcallReturn.H_SUCCESS
        if hcall is Hcall.H_PROD:
            target_vcpu = self.vcpus.get(args[0])
            if target_vcpu is None:
                return HcallReturn.H_PARAMETER
            target_vcpu.prod = True
            if target_vcpu.ceded:
                self._schedule(target_vcpu.hwid, self.now, HcallReturn.H_SUCCESS)
            return HcallReturn.H_SUCCESS
        if hcall in (Hcall.H_CONFER, Hcall.H_REGISTER_VPA):
            return HcallReturn.H_SUCCESS
        if hcall is Hcall.KVMPPC_H_CAS:
            return self._cas(*args)
        return HcallReturn.H_FUNCTION

    def external_raised(self, server: int) -> None:
        vcpu = self.vcpus.get(server)
        if vcpu is None or vcpu.program is None:
            return
        if vcpu.ceded:
            vcpu.ceded = False
            self._schedule(server, self.now, HcallReturn.H_SUCCESS)
        elif vcpu.executing and vcpu.cuttable:
            vcpu.executing = False
            self._schedule(server, self.now, max(vcpu.busy_until - self.now, 1))

    # -------------------------------------------------------------------- XICS

    def ics_reject(self, nr: int) -> None:
        if nr in self.sources:
            self.sources[nr].rejected = True

    def ics_resend(self) -> None:
        for nr, source in self.sources.items():
            if source.rejected and source.priority != 0xFF:
                source.rejected = False
                self._deliver(nr)

    def _deliver(self, nr: int) -> None:
        source = self.sources[nr]
        icp = self.icps.get(source.server)
        if icp is not None:
            icp.irq(nr, source.priority)

    def pulse(self, nr: int) -> None:
        source = self.sources[nr]
        self.events.append(f"pulse {nr:#x}")
        if source.priority == 0xFF:
            source.masked_pending = True
        else:
            self._deliver(nr)

    # ------------------------------------------------------------------ events

    def _class_of(self, entry: EventLogEntry) -> int:
        if entry.event_type == 0xE5 and self.hp_evt:
            return MASK_HOTPLUG
        return MASK_EPOW

    def _irq_of(self, mask: int) -> int:
        return IRQ_HOTPLUG if mask == MASK_HOTPLUG else IRQ_EPOW

    def enqueue(self, entry: EventLogEntry) -> None:
        self.queue.append(entry)
        self.pulse(self._irq_of(self._class_of(entry)))

    def _event(self, action: HotplugAction, index: int) -> EventLogEntry:
        entry = hotplug_event(
            HotplugResource.CPU,
            action,
            HotplugIdType.DRC_INDEX,
            drc_index=index,
            plid=self.plid,
            date=(2024, 1, 1),
            time=(0, 0, 0),
        )
        self.plid += 1
        return entry

    def powerdown(self) -> None:
        """system_powerdown: an EPOW shutdown event."""
        self.enqueue(epow_event(plid=self.plid, date=(2024, 1, 1), time=(0, 0, 0)))
        self.plid += 1

    def spurious_pulse(self, nr: int = IRQ_HOTPLUG) -> None:
        """Pulse an event IRQ with nothing queued (edge case 22)."""
        self.pulse(nr)

    # ----------------------------------------------------------------- hotplug

    def plug_core(self, core_id: int, *, event: bool = True) -> Drc:
        """device_add: attach a core to its DRC and queue ADD (or cold-plug it)."""
        drc = self.drc(core_id)
        assert drc.core is None and drc.state == UNUSABLE, "slot already populated"
        core = Core(
            core_id, tuple(range(core_id, core_id + self.threads)), self.node_of_slot(core_id)
        )
        for hwid in core.hwids:
            self._new_vcpu(hwid)
        drc.core = core
        self.events.append(f"plug {core_id}")
        if event:
            self.enqueue(self._event(HotplugAction.ADD, drc.index))
        else:
            drc.state = CONFIGURED
        return drc

    def unplug_core(self, core_id: int) -> Drc:
        """device_del: request the unplug, queue REMOVE (release at once if never acquired)."""
        drc = self.drc(core_id)
        if not drc.unplug_requested:
            drc.unplug_requested = True
            if drc.state == UNUSABLE:
                self._release(drc)
        self.enqueue(self._event(HotplugAction.REMOVE, drc.index))
        return drc

    def _release(self, drc: Drc) -> None:
        core = drc.core
        if core is not None:
            for hwid in core.hwids:
                vcpu = self.vcpus.pop(hwid, None)
                self.icps.pop(hwid, None)
                if vcpu is not None and vcpu.program is not None:
                    vcpu.program.close()
            self.events.append(f"DEVICE_DELETED core {core.core_id}")
        drc.core = None
        drc.unplug_requested = False
        drc.steps = None

    def _fragment(self, drc: Drc) -> list[fdt.WalkStep]:
        assert drc.core is not None
        hwid = drc.core.hwids[0]
        threads = len(drc.core.hwids)
        if self.interrupt_servers_limit is not None:
            threads = min(threads, self.interrupt_servers_limit)
        name = self.template.name.split("@")[0]
        numa = drc.core.node if self._numa() else None
        node = cpu_node(name, hwid, threads, drc_index=drc.index, numa_node=numa, extra_name=True)
        return list(fdt.walk(node))

    def _numa(self) -> bool:
        return any("ibm,associativity" in c for c in self.tree.find("/cpus").children)  # type: ignore[union-attr]

    # -------------------------------------------------------------------- RTAS

    def _register_rtas(self) -> None:
        table: dict[RtasToken, Callable[[RtasCall[Vcpu]], None]] = {
            RtasToken.QUERY_CPU_STOPPED_STATE: self._query_cpu_stopped_state,
            RtasToken.START_CPU: self._start_cpu,
            RtasToken.STOP_SELF: self._stop_self,
            RtasToken.SET_INDICATOR: self._set_indicator,
            RtasToken.GET_SENSOR_STATE: self._get_sensor_state,
            RtasToken.IBM_CONFIGURE_CONNECTOR: self._configure_connector,
            RtasToken.CHECK_EXCEPTION: self._check_exception,
            RtasToken.EVENT_SCAN: self._event_scan,
            RtasToken.IBM_SET_XIVE: self._set_xive,
            RtasToken.IBM_GET_XIVE: self._get_xive,
            RtasToken.IBM_INT_ON: self._int_on,
            RtasToken.IBM_INT_OFF: self._int_off,
            RtasToken.POWER_OFF: self._power_off,
        }
        for token, handler in table.items():
            self.dispatcher.register(token, RTAS_SERVICE_NAMES[token], self._recorded(handler))

    def _recorded(
        self, handler: Callable[[RtasCall[Vcpu]], None]
    ) -> Callable[[RtasCall[Vcpu]], None]:
        def run(call: RtasCall[Vcpu]) -> None:
            handler(call)
            name = RTAS_SERVICE_NAMES[RtasToken(call.token)]
            rets = call.rets_in_memory(8) if name != "stop-self" else ()
            self.calls.append(Call(self.now, call.caller.hwid, name, call.args, rets))

        return run

    def _query_cpu_stopped_state(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs != 1 or call.nret != 2:
            call.set_ret(0, -3)
            return
        vcpu = self.vcpus.get(call.args[0])
        if vcpu is None:
            call.set_ret(0, -3)
            return
        call.set_ret(0, 0)
        call.set_ret(1, 2 if vcpu.running else 0)

    def _start_cpu(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs != 3 or call.nret != 1:
            call.set_ret(0, -3)
            return
        hwid, entry, r3 = call.args
        vcpu = self.vcpus.get(hwid)
        if vcpu is None:
            call.set_ret(0, -3)
            return
        if vcpu.running:
            call.set_ret(0, -1)
            return
        vcpu.program = self.guest.program_factory(hwid, entry, r3)
        vcpu.running = True
        self.icps[hwid] = Icp(hwid, self)
        self._schedule(hwid, self.now, None)
        call.set_ret(0, 0)

    def _stop_self(self, call: RtasCall[Vcpu]) -> None:
        call.caller.running = False

    def _set_indicator(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs != 3 or call.nret != 1:
            call.set_ret(0, -3)
            return
        kind, index, value = call.args
        drc = self.drcs.get(index)
        call.set_ret(0, -3 if drc is None else self._indicator(drc, kind, value))

    def _indicator(self, drc: Drc, kind: int, value: int) -> int:
        if kind == 9001:
            if value == 1:
                if drc.state == UNUSABLE:
                    return -3
                if drc.state == AVAILABLE:
                    drc.state = UNISOLATE
                    drc.cursor = drc.depth = 0
                    return 0
                if drc.unplug_requested and drc.core is not None:
                    drc.unplug_requested = False
                    self.events.append(f"DEVICE_UNPLUG_GUEST_ERROR core {drc.core.core_id}")
                return 0
            if value == 0:
                if drc.state == UNISOLATE:
                    return -3
                if drc.state == CONFIGURED:
                    drc.state = AVAILABLE
                return 0
            return -3
        if kind == 9003:
            if value == 1:
                if drc.state == UNUSABLE:
                    if drc.core is None or drc.unplug_requested:
                        return -3
                    drc.state = AVAILABLE
                return 0
            if value == 0:
                if drc.state in (UNISOLATE, CONFIGURED):
                    return -3
                if drc.state == AVAILABLE:
                    drc.state = UNUSABLE
                    if drc.unplug_requested:
                        self._release(drc)
                return 0
            return -3
        return -3

    def _get_sensor_state(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs != 2 or call.nret != 2:
            call.set_ret(0, -3)
            return
        kind, index = call.args
        drc = self.drcs.get(index)
        if kind != 9003 or drc is None:
            call.set_ret(0, -3)
            call.set_ret(1, 0)
            return
        call.set_ret(0, 0)
        call.set_ret(1, 2 if drc.state == UNUSABLE else 1)

    def _configure_connector(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs != 2 or call.nret != 1:
            call.set_ret(0, -3)
            return
        wa = (call.args[1] << 32) | call.args[0]
        drc = self.drcs.get(self.memory.ld32(wa))
        if drc is None:
            call.set_ret(0, -3)
            return
        if drc.state not in (UNISOLATE, CONFIGURED):
            call.set_ret(0, -9003)
            return
        if drc.steps is None:
            drc.steps = self._fragment(drc)
            drc.cursor = drc.depth = 0
        step = drc.steps[drc.cursor]
        drc.cursor += 1
        if step.tag is fdt.WalkTag.BEGIN_NODE:
            drc.depth += 1
            self.memory.st32(wa + 8, 20)
            self.memory.write(wa + 20, step.name.encode() + b"\0")
            call.set_ret(0, 2)
        elif step.tag is fdt.WalkTag.PROPERTY:
            name = step.name.encode() + b"\0"
            self.memory.st32(wa + 8, 20)
            self.memory.st32(wa + 12, len(step.value))
            self.memory.st32(wa + 16, 20 + len(name))
            self.memory.write(wa + 20, name + step.value)
            call.set_ret(0, 3)
        else:
            drc.depth -= 1
            if drc.depth == 0:
                drc.state = CONFIGURED
                drc.cursor = 0
                call.set_ret(0, 0)
            else:
                call.set_ret(0, 4)

    def _check_exception(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs not in (6, 7) or call.nret != 1:
            call.set_ret(0, -3)
            return
        mask, buf = call.args[2], call.args[4]
        for i, entry in enumerate(self.queue):
            if self._class_of(entry) & mask:
                del self.queue[i]
                self.memory.write(buf, entry.to_bytes())
                call.set_ret(0, 0)
                for cls in sorted({self._class_of(e) for e in self.queue}):
                    self.pulse(self._irq_of(cls))
                return
        call.set_ret(0, 1)

    def _event_scan(self, call: RtasCall[Vcpu]) -> None:
        if call.nargs != 4 or call.nret != 1:
            call.set_ret(0, -3)
            return
        for cls in sorted({self._class_of(e) for e in self.queue}):
            self.pulse(self._irq_of(cls))
        call.set_ret(0, 1)

    def _set_xive(self, call: RtasCall[Vcpu]) -> None:
        nr, server, priority = call.args
        source = self.sources.get(nr)
        if source is None or server not in self.icps:
            call.set_ret(0, -3)
            return
        source.server, source.priority, source.saved_priority = server, priority, priority
        call.set_ret(0, 0)
        if priority != 0xFF and source.masked_pending:
            source.masked_pending = False
            self._deliver(nr)

    def _get_xive(self, call: RtasCall[Vcpu]) -> None:
        source = self.sources.get(call.args[0])
        if source is None:
            call.set_ret(0, -3)
            return
        call.set_ret(0, 0)
        call.set_ret(1, source.server)
        call.set_ret(2, source.priority)

    def _int_on(self, call: RtasCall[Vcpu]) -> None:
        source = self.sources.get(call.args[0])
        if source is None:
            call.set_ret(0, -3)
            return
        source.priority = source.saved_priority
        call.set_ret(0, 0)

    def _int_off(self, call: RtasCall[Vcpu]) -> None:
        source = self.sources.get(call.args[0])
        if source is None:
            call.set_ret(0, -3)
            return
        source.saved_priority = source.priority
        source.priority = 0xFF
        call.set_ret(0, 0)

    def _power_off(self, call: RtasCall[Vcpu]) -> None:
        self.powered_off = True
        call.set_ret(0, 0)

    # --------------------------------------------------------------------- CAS

    def _cas(self, vec: int, buf: int, size: int) -> int:
        if self.cas_status:
            return self.cas_status
        addr = vec
        self.cas_pvrs = []
        while True:
            mask, pvr = struct.unpack(">II", self.memory.read(addr, 8))
            addr += 8
            self.cas_pvrs.append((mask, pvr))
            if ~mask & pvr & 0xFFFFFFFF:
                break
        count = self.memory.ld8(addr) + 1
        addr += 1
        vectors = []
        for _ in range(count):
            length = self.memory.ld8(addr) + 1
            vectors.append(self.memory.read(addr + 1, length))
            addr += 1 + length
        self.cas_vector = self.memory.read(vec, addr - vec)
        ov5 = vectors[4] if len(vectors) >= 5 else b""
        self.cas_ov5 = ov5
        negotiated = bytearray(26)
        for byte, mask in self.offered_ov5.items():
            if byte - 1 < len(ov5):
                negotiated[byte - 1] = ov5[byte - 1] & mask
        self.hp_evt = bool(negotiated[5] & 0x04)
        last = max((i for i, b in enumerate(negotiated) if b), default=0)
        value = bytes([last]) + bytes(negotiated[: last + 1])
        tree = self.tree.copy()
        chosen = tree.find("/chosen")
        assert chosen is not None
        chosen.set_property(fdt.Property.bytes("ibm,architecture-vec-5", value))
        # CAS resets the DRCs and drops hotplug events (protocol.md §3.7, §5.2).
        cpus = tree.find("/cpus")
        assert cpus is not None
        for drc in self.drcs.values():
            if drc.unplug_requested:
                self._release(drc)
            if drc.core is not None:
                if drc.state != CONFIGURED:
                    drc.state = CONFIGURED
                    cpus.append_subnode(
                        cpu_node(
                            self.template.name.split("@")[0],
                            drc.core.hwids[0],
                            len(drc.core.hwids),
                            drc_index=drc.index,
                        )
                    )
            else:
                drc.state = UNUSABLE
        self.queue = [e for e in self.queue if e.event_type != 0xE5]
        blob = fdt.to_dtb(fdt.DeviceTree(tree, boot_cpuid_phys=0))
        if len(blob) + 4 > size:
            return HcallReturn.H_P3
        self.memory.st32(buf, 1)
        self.memory.write(buf + 4, blob)
        return HcallReturn.H_SUCCESS

    # ------------------------------------------------------------------ views

    def calls_since(self, mark: int) -> list[Call]:
        return self.calls[mark:]

    def names(self, calls: list[Call]) -> list[str]:
        return [c.name for c in calls]


def dr_calls(calls: list[Call]) -> list[tuple[Any, ...]]:
    """The DR-relevant subsequence of calls (the services protocol.md §7 tabulates)."""
    keep = {
        "check-exception",
        "get-sensor-state",
        "set-indicator",
        "ibm,configure-connector",
        "query-cpu-stopped-state",
        "start-cpu",
        "stop-self",
    }
    return [c.short() for c in calls if c.name in keep]


def booted(
    guest: LinuxGuest | None = None,
    tree: fdt.Node | None = None,
    *,
    seconds: float = 2.0,
    **kwargs: Any,
) -> tuple[FakePlatform, LinuxGuest]:
    """A fake platform with a guest booted on it."""
    guest = guest or LinuxGuest()
    platform = FakePlatform(guest, tree, **kwargs)
    platform.boot()
    platform.run(int(seconds * 1e9))
    return platform, guest


def oracle_tree(name: str) -> fdt.Node:
    return fdt.from_dtb((DATA / f"{name}.dtb").read_bytes()).root


# ------------------------------------------------------------ tests of the fake


def test_fake_ics_delivers_after_unmask_and_ipi_roundtrip() -> None:
    platform = FakePlatform(LinuxGuest(), build_tree(slots=2, boot_cores=2))
    platform._values = {}
    platform.pulse(IRQ_EPOW)
    assert platform.sources[IRQ_EPOW].masked_pending
    icp = platform.icps[1]
    icp.set_cppr(0xFF)
    platform.sources[IRQ_EPOW] = Source(server=1, priority=5, masked_pending=True)
    platform.ics_resend()
    icp.set_mfrr(4)
    xirr = icp.accept()
    assert xirr & 0xFFFFFF == XICS_IPI
    icp.set_mfrr(0xFF)
    icp.eoi(0xFF000000 | XICS_IPI)
    assert icp.cppr == 0xFF


@pytest.mark.parametrize(
    ("start", "kind", "value", "rc", "end"),
    [
        (UNUSABLE, 9003, 1, -3, UNUSABLE),  # no device attached
        (UNUSABLE, 9001, 1, -3, UNUSABLE),
        (AVAILABLE, 9001, 1, 0, UNISOLATE),
        (UNISOLATE, 9001, 0, -3, UNISOLATE),
        (CONFIGURED, 9003, 0, -3, CONFIGURED),
        (CONFIGURED, 9001, 0, 0, AVAILABLE),
        (AVAILABLE, 9002, 1, -3, AVAILABLE),
    ],
)
def test_fake_drc_cells_match_protocol_table(
    start: int, kind: int, value: int, rc: int, end: int
) -> None:
    platform = FakePlatform(LinuxGuest(), build_tree(slots=2, boot_cores=1))
    drc = platform.drc(1)
    drc.state = start
    if start != UNUSABLE:
        drc.core = Core(1, (1,))
    assert platform._indicator(drc, kind, value) == rc
    assert drc.state == end
