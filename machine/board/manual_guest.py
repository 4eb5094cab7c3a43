"""``-guest manual``: no reference guest runs; the person at the HMP prompt is the guest.

:class:`ManualGuest` is loaded where the reference guest would be and reaches the
machine only as a guest does: through its memory, the ``/rtas`` tokens of the
device tree it is booted with, hypercalls from its vCPU threads and the interrupts
they take. It boots the way Linux's early boot does up to the point where the
kernel would start handling hotplug on its own: it reads the tree whose address
the machine passes in r3, negotiates with ibm,client-architecture-support (asking
for the hot-plug-events source, as Linux 6.1 does), opens its interrupt priority
and unmasks the ``/event-sources`` interrupts, routed to the boot thread. From then
on every vCPU thread it runs waits in H_CEDE for one of two things:

* an interrupt: the thread accepts it (H_XIRR), notes it for the person at the
  prompt (Linux's handler would now call check-exception) and ends it (H_EOI);
* a request from the prompt (:meth:`ManualGuest.submit`): the thread writes the
  RTAS argument buffer into its own memory and makes the H_RTAS hypercall, then
  reads the rets back.

start-cpu sends a thread to any entry point; the manual guest runs the same wait
loop there, so start-cpu and stop-self really start and stop scheduler threads.
The guest keeps its own view of the tree, as Linux does: a configure-connector
walk is assembled into a node, attached under ``/cpus`` when the walk ends with
SUCCESS, and detached when the guest gives the connector back (allocation-state
UNUSABLE succeeds).

:class:`ManualConsole` is the keyboard: the host-side helper the monitor uses to
hand a request to a thread, wake it (H_PROD's host-side half) and run virtual
time until the thread has made the call.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any, ClassVar

import attrs

import fdt
from guest import BOOT_ENTRY, SECONDARY_ENTRY
from guest.cas import (
    CAS_RESPONSE_HEADER_SIZE,
    NR_CPUS_DEFAULT,
    CasRequest,
    NegotiatedFeatures,
    PlatformSupport,
)
from guest.memory_map import GuestRegions, OutOfGuestMemory
from rtas import GuestMemory, encode_call, read_rets
from rtas.codes import (
    CC_WORK_AREA_SIZE,
    RTAS_ERROR_LOG_MAX,
    AllocationState,
    ConfigureConnector,
    EventMask,
    SensorType,
)
from rtas.hcalls import Hcall, HcallReturn
from rtas.tokens import TOKENS_BY_NAME
from spapr.drc_rtas import CC_WA_INDEX, CC_WA_NAME_OFFSET, CC_WA_PROP_LEN, CC_WA_PROP_OFFSET

Program = Generator[Any, Any, None]

#: Priority the guest gives its event-source interrupts (Linux's DEFAULT_PRIORITY).
EVENT_PRIORITY = 5
#: The least favoured processor priority: every interrupt gets in.
LOWEST_PRIORITY = 0xFF
#: XISR values that are not a device interrupt.
XICS_IRQ_SPURIOUS = 0x0
XICS_IPI = 0x2
#: Most interrupts one wake-up drains before the thread waits again.
IRQ_DRAIN_LIMIT = 16
#: Size of each thread's RTAS argument buffer (header, 16 args, 16 rets).
ARGS_BUFFER_SIZE = 140
#: Size of the buffer the prompt lends to calls that take one (system parameters, strings).
DATA_BUFFER_SIZE = 4096
#: The check-exception vector Linux passes (external interrupt).
CHECK_EXCEPTION_VECTOR = 0x500
#: Buffer for the CAS reply (the tree comes back in it).
CAS_REPLY_SIZE = 1 << 20

_U32 = 0xFFFF_FFFF
_FDT_MAGIC = 0xD00DFEED
_DRC_TYPE_CPU = 1
_DRC_TYPE_SHIFT = 28


class RequestState(enum.Enum):
    """Where a prompt request stands."""

    QUEUED = "queued"  # waiting for its thread
    ISSUED = "issued"  # the thread made the hypercall
    DONE = "done"  # the call returned; rets are read back
    NO_RETURN = "no-return"  # the call never returned (stop-self, or the thread was stopped)


@attrs.define(eq=False)
class RtasRequest:
    """One RTAS call the prompt asked a thread to make, and what came back."""

    vcpu: int
    token: int
    name: str
    args: tuple[int, ...]
    nret: int
    state: RequestState = RequestState.QUEUED
    #: Guest address of the argument buffer the thread wrote.
    buffer: int = 0
    #: H_RTAS's return code (H_SUCCESS, or H_PARAMETER for an unknown token / bad buffer).
    hcall_status: int | None = None
    #: rets read back (signed), rets[0] being the status.
    rets: tuple[int, ...] = ()
    #: Virtual time of the hypercall.
    time_ns: int = 0

    @property
    def pending(self) -> bool:
        """Not answered yet."""
        return self.state in (RequestState.QUEUED, RequestState.ISSUED)

    @property
    def status(self) -> int | None:
        """rets[0] (None when the call did not return one)."""
        return self.rets[0] if self.rets else None


@attrs.define(eq=False)
class TakenInterrupt:
    """An interrupt a thread accepted; ``answered`` once check-exception served its class."""

    vcpu: int
    irq: int
    time_ns: int
    #: The /event-sources node the interrupt belongs to (None: not an event source).
    source: str | None
    #: The check-exception mask of that source.
    mask: int | None
    answered: bool = False


@attrs.frozen
class WalkAnswer:
    """What one configure-connector call left in the work area, as the guest reads it."""

    code: int
    #: Node or property name (NEXT_CHILD, NEXT_PROPERTY).
    name: str | None = None
    #: Property value (NEXT_PROPERTY).
    value: bytes | None = None
    #: Path of the node now being built, or attached on SUCCESS.
    path: str | None = None


@attrs.define(eq=False)
class ConnectorWalk:
    """A configure-connector walk the guest is assembling into a node."""

    drc_index: int
    root: fdt.Node | None = None
    stack: list[fdt.Node] = attrs.field(factory=list)
    #: Calls made so far in this walk (answers included).
    calls: int = 0
    complete: bool = False
    #: The last call's answer, as the guest read it.
    last: WalkAnswer | None = None


def _hcall_status(result: Any) -> int:
    if isinstance(result, tuple):
        return int(result[0]) if result else int(HcallReturn.H_SUCCESS)
    return int(result) if result is not None else int(HcallReturn.H_SUCCESS)


def _hcall_value(result: Any) -> int:
    return int(result[1]) if isinstance(result, tuple) and len(result) > 1 else 0


def _cells(node: fdt.Node | None, name: str) -> tuple[int, ...]:
    prop = node.get(name) if node is not None else None
    if prop is None or len(prop.value) % 4:
        return ()
    return struct.unpack(f">{len(prop.value) // 4}I", prop.value)


@attrs.define(eq=False)
class ManualGuest:
    """The guest the person at the prompt plays: boots, takes interrupts, makes asked-for calls."""

    memory: GuestMemory | None = None
    #: The machine's virtual clock in ns (the timebase).
    timebase: Callable[[], int] | None = None
    #: The tree as booted, and the guest's own live copy (after CAS, plus what it attached).
    boot_tree: fdt.Node | None = attrs.field(default=None, init=False)
    tree: fdt.Node | None = attrs.field(default=None, init=False)
    fdt_addr: int = attrs.field(default=0, init=False)
    #: /rtas service name -> token, as read from the tree.
    tokens: dict[str, int] = attrs.field(factory=dict, init=False)
    features: NegotiatedFeatures = attrs.field(factory=NegotiatedFeatures, init=False)
    cas_status: int | None = attrs.field(default=None, init=False)
    boot_vcpu: int | None = attrs.field(default=None, init=False)
    booted: bool = attrs.field(default=False, init=False)
    #: Threads running the guest's loop (started and not stopped).
    online: set[int] = attrs.field(factory=set, init=False)
    interrupts: list[TakenInterrupt] = attrs.field(factory=list, init=False)
    walk: ConnectorWalk | None = attrs.field(default=None, init=False)
    #: What the guest noted (boot steps, refusals), with virtual time.
    notes: list[tuple[int, str]] = attrs.field(factory=list, init=False)
    #: The vCPU the prompt makes its calls from.
    console_vcpu: int = attrs.field(default=0, init=False)
    #: The node the last call made the guest detach (set by that call, else None).
    last_detached: str | None = attrs.field(default=None, init=False)
    #: Buffers in guest memory (set up at boot).
    errlog_buffer: int = attrs.field(default=0, init=False)
    work_area: int = attrs.field(default=0, init=False)
    data_buffer: int = attrs.field(default=0, init=False)
    _regions: GuestRegions | None = attrs.field(default=None, init=False, repr=False)
    _args_buffers: dict[int, int] = attrs.field(factory=dict, init=False, repr=False)
    _requests: dict[int, deque[RtasRequest]] = attrs.field(factory=dict, init=False, repr=False)
    _in_flight: dict[int, RtasRequest] = attrs.field(factory=dict, init=False, repr=False)

    #: Address the machine starts the boot thread at.
    entry_point: ClassVar[int] = BOOT_ENTRY
    #: Address the prompt proposes for start-cpu (any address runs the same loop).
    secondary_entry: ClassVar[int] = SECONDARY_ENTRY
    #: Nothing happens without the prompt: the monitor need not wait for handshakes.
    waits_for_prompt: ClassVar[bool] = True

    def attach(self, memory: GuestMemory, timebase: Callable[[], int] | None = None) -> None:
        """Give the guest its RAM (and clock) before the machine starts it."""
        self.memory = memory
        if timebase is not None:
            self.timebase = timebase

    def now(self) -> int:
        """The guest's timebase in ns."""
        return self.timebase() if self.timebase is not None else 0

    def note(self, text: str) -> None:
        """Record one line of what the guest did or refused."""
        self.notes.append((self.now(), text))

    # ---------------------------------------------------------------- threads

    def program_factory(self, vcpu_id: int, entry: int, r3: int) -> Program:
        """The program of a thread the machine starts: the boot thread, or the wait loop."""
        if entry == BOOT_ENTRY:
            return self._boot(vcpu_id, r3)
        return self._secondary(vcpu_id, entry, r3)

    def _reset(self) -> None:
        """A new boot forgets everything the previous one learned."""
        self.boot_tree = self.tree = None
        self.tokens = {}
        self.features = NegotiatedFeatures()
        self.cas_status = None
        self.booted = False
        self.interrupts.clear()
        self.walk = None
        self._regions = None
        self._args_buffers.clear()
        for queue in self._requests.values():
            for request in queue:
                request.state = RequestState.NO_RETURN
        self._requests.clear()
        self.notes.clear()

    def _boot(self, vcpu: int, fdt_addr: int) -> Program:
        """Read the tree, CAS, open interrupts, then wait for the prompt."""
        self._reset()
        self.boot_vcpu = vcpu
        self.console_vcpu = vcpu
        self.fdt_addr = fdt_addr
        blob = self._read_blob(fdt_addr)
        if blob is None:
            self.note(f"no valid device tree at {fdt_addr:#x}: nothing to do")
            yield from self._wait_loop(vcpu)
            return
        self.boot_tree = blob.root
        self.tree = blob.root.copy()
        self.tokens = self._read_tokens(self.tree)
        self._setup_buffers(fdt_addr, blob)
        yield from self._cas(vcpu)
        yield from self._open_interrupts(vcpu)
        self.booted = True
        self.note(f"booted on vCPU {vcpu}: waiting for rtas calls from the prompt")
        yield from self._wait_loop(vcpu)

    def _secondary(self, vcpu: int, entry: int, r3: int) -> Program:
        """A thread sent anywhere by start-cpu: open its priority, then wait for the prompt."""
        self.note(f"vCPU {vcpu} started at {entry:#x} (r3 {r3:#x})")
        yield (Hcall.H_CPPR, LOWEST_PRIORITY)
        yield from self._wait_loop(vcpu)

    def _wait_loop(self, vcpu: int) -> Program:
        """Take interrupts and make the prompt's calls; cede when there is nothing to do."""
        self.online.add(vcpu)
        try:
            while True:
                queue = self._requests.get(vcpu)
                if queue:
                    yield from self._issue(vcpu, queue.popleft())
                    continue
                yield (Hcall.H_CEDE,)
                if not self._requests.get(vcpu):
                    # woken without a request: an interrupt (or a stale prod)
                    yield from self._take_interrupts(vcpu)
        finally:
            self.online.discard(vcpu)
            request = self._in_flight.pop(vcpu, None)
            if request is not None:
                request.state = RequestState.NO_RETURN
            for queued in self._requests.pop(vcpu, deque()):
                queued.state = RequestState.NO_RETURN

    def _take_interrupts(self, vcpu: int) -> Program:
        """Accept, note and end every interrupt presented to this thread."""
        for _ in range(IRQ_DRAIN_LIMIT):
            result = yield (Hcall.H_XIRR,)
            if _hcall_status(result) != HcallReturn.H_SUCCESS:
                return
            xirr = _hcall_value(result) & _U32
            irq = xirr & 0x00FF_FFFF
            if irq == XICS_IRQ_SPURIOUS:
                return
            if irq == XICS_IPI:
                yield (Hcall.H_IPI, vcpu, LOWEST_PRIORITY)
            else:
                source, mask = self.event_source_of(irq)
                self.interrupts.append(TakenInterrupt(vcpu, irq, self.now(), source, mask))
            yield (Hcall.H_EOI, (LOWEST_PRIORITY << 24) | irq)

    def _issue(self, vcpu: int, request: RtasRequest) -> Program:
        """Write the argument buffer, H_RTAS, read the rets back."""
        assert self.memory is not None
        addr = self._args_buffer(vcpu)
        encode_call(self.memory, addr, request.token, list(request.args), request.nret)
        request.buffer = addr
        request.state = RequestState.ISSUED
        self.last_detached = None
        request.time_ns = self.now()
        self._in_flight[vcpu] = request
        result = yield (Hcall.KVMPPC_H_RTAS, addr)
        self._in_flight.pop(vcpu, None)
        request.hcall_status = _hcall_status(result)
        request.rets = read_rets(self.memory, addr)
        request.state = RequestState.DONE
        self._after_call(request)

    # ------------------------------------------------------------------ boot

    def _read_blob(self, addr: int) -> fdt.DeviceTree | None:
        assert self.memory is not None
        try:
            magic, size = struct.unpack(">II", self.memory.read(addr, 8))
            if magic != _FDT_MAGIC:
                return None
            return fdt.from_dtb(self.memory.read(addr, size))
        except Exception:
            return None

    @staticmethod
    def _read_tokens(root: fdt.Node) -> dict[str, int]:
        """The /rtas services the tree offers: each PAPR service name found there, its token."""
        rtas = root.find("/rtas")
        if rtas is None:
            return {}
        return {
            p.name: struct.unpack(">I", p.value)[0]
            for p in rtas.properties
            if p.name in TOKENS_BY_NAME and len(p.value) == 4
        }

    def _setup_buffers(self, fdt_addr: int, blob: fdt.DeviceTree) -> None:
        assert self.memory is not None
        size = self.memory.ld32(fdt_addr + 4)
        self._regions = GuestRegions.for_ram(
            self.memory.size, [(fdt_addr, size), *blob.reserve_map]
        )
        self.errlog_buffer = self.alloc(RTAS_ERROR_LOG_MAX, 16)
        self.work_area = self.alloc(CC_WORK_AREA_SIZE, CC_WORK_AREA_SIZE)
        self.data_buffer = self.alloc(DATA_BUFFER_SIZE, 16)

    def alloc(self, size: int, align: int = 16) -> int:
        """A buffer in the guest's own RAM."""
        if self._regions is None:
            raise OutOfGuestMemory("the guest has not set up its memory")
        return self._regions.alloc(size, align)

    def _args_buffer(self, vcpu: int) -> int:
        addr = self._args_buffers.get(vcpu)
        if addr is None:
            addr = self.alloc(ARGS_BUFFER_SIZE, 64)
            self._args_buffers[vcpu] = addr
        return addr

    def _cas(self, vcpu: int) -> Program:
        """ibm,client-architecture-support as Linux's prom_init asks for it."""
        assert self.memory is not None and self.tree is not None
        first_cpu = next(
            (
                n
                for _, n in self.tree.iter_nodes()
                if n.get("device_type") is not None and n["device_type"].value == b"cpu\0"
            ),
            None,
        )
        threads = len(_cells(first_cpu, "ibm,ppc-interrupt-server#s")) or 1
        request = CasRequest(
            hp_evt=True,
            platform=PlatformSupport.from_chosen(self.tree.find("/chosen")),
            threads_per_core=threads,
            nr_cpus=NR_CPUS_DEFAULT,
        )
        table = request.table()
        vec = self.alloc(len(table), 16)
        self.memory.write(vec, table)
        reply = self.alloc(CAS_REPLY_SIZE, 4096)
        result = yield (Hcall.KVMPPC_H_CAS, vec, reply, CAS_REPLY_SIZE)
        self.cas_status = _hcall_status(result)
        if self.cas_status != HcallReturn.H_SUCCESS:
            self.note(f"ibm,client-architecture-support failed: {self.cas_status}")
            return
        blob = self._read_blob(reply + CAS_RESPONSE_HEADER_SIZE)
        if blob is not None:
            self.tree = blob.root
            self.tokens = self._read_tokens(self.tree) or self.tokens
        self.features = NegotiatedFeatures.from_tree(self.tree)
        self.note(
            "CAS done: hotplug events on "
            + ("hot-plug-events" if self.features.hp_evt else "epow-events")
        )

    def _open_interrupts(self, vcpu: int) -> Program:
        """CPPR to the lowest priority, each event source to this thread at priority 5."""
        yield (Hcall.H_CPPR, LOWEST_PRIORITY)
        for irq in self.event_irqs():
            for name, args in (
                ("ibm,set-xive", [irq, vcpu, EVENT_PRIORITY]),
                ("ibm,int-on", [irq]),
            ):
                token = self.tokens.get(name)
                if token is None:
                    continue
                request = RtasRequest(vcpu, token, name, tuple(args), 1)
                yield from self._issue(vcpu, request)

    # ------------------------------------------------------------- prompt side

    def submit(
        self, vcpu: int, token: int, name: str, args: tuple[int, ...], nret: int
    ) -> RtasRequest:
        """Ask thread ``vcpu`` to make a call; it makes it when next it runs."""
        request = RtasRequest(vcpu, token, name, tuple(a & _U32 for a in args), nret)
        self._requests.setdefault(vcpu, deque()).append(request)
        return request

    def cancel(self, request: RtasRequest) -> None:
        """Drop a request its thread has not made yet."""
        queue = self._requests.get(request.vcpu)
        if queue is not None and request in queue:
            queue.remove(request)
            request.state = RequestState.NO_RETURN

    def start_walk(self, drc_index: int) -> ConnectorWalk:
        """Begin (or go on with) a configure-connector walk; the work area names the DRC.

        A walk of another connector, or one that has ended, starts afresh: the work
        area is cleared and its first word set to the index, as Linux prepares it.
        A walk in progress keeps the work area as the last call left it.
        """
        assert self.memory is not None
        walk = self.walk
        if walk is None or walk.drc_index != drc_index or walk.complete:
            self.memory.write(self.work_area, bytes(CC_WORK_AREA_SIZE))
            self.memory.st32(self.work_area + CC_WA_INDEX, drc_index & _U32)
            walk = self.walk = ConnectorWalk(drc_index)
        return walk

    def read_work_area(self, code: int) -> WalkAnswer:
        """Decode the work area after a configure-connector call returned ``code``."""
        assert self.memory is not None
        wa = self.work_area
        if code not in (ConfigureConnector.NEXT_CHILD, ConfigureConnector.NEXT_PROPERTY):
            return WalkAnswer(code)
        name_off = self.memory.ld32(wa + CC_WA_NAME_OFFSET)
        name = self.memory.read_cstring(wa + name_off, CC_WORK_AREA_SIZE).decode("latin-1")
        if code == ConfigureConnector.NEXT_CHILD:
            return WalkAnswer(code, name)
        length = self.memory.ld32(wa + CC_WA_PROP_LEN)
        value_off = self.memory.ld32(wa + CC_WA_PROP_OFFSET)
        return WalkAnswer(code, name, self.memory.read(wa + value_off, length))

    def _after_call(self, request: RtasRequest) -> WalkAnswer | None:
        """What the guest does with an answer: build the walked node, attach or detach it."""
        status = request.status
        if status is None:
            return None
        if request.name == "ibm,configure-connector" and self.walk is not None:
            return self._walk_step(self.walk, status)
        if request.name == "check-exception" and status == 0:
            mask = request.args[2] if len(request.args) > 2 else 0
            for taken in self.interrupts:
                if not taken.answered and taken.mask is not None and taken.mask & mask:
                    taken.answered = True
                    break
        if (
            request.name == "set-indicator"
            and status == 0
            and request.args[0] == SensorType.ALLOCATION_STATE
            and request.args[2] == AllocationState.UNUSABLE
        ):
            self.detach(request.args[1])
        return None

    def _walk_step(self, walk: ConnectorWalk, code: int) -> WalkAnswer:
        answer = self.read_work_area(code)
        if code < 0:  # the walk failed: the next call starts a fresh one (Linux gives up)
            self.walk = None
            walk.last = answer
            return answer
        walk.calls += 1
        if code == ConfigureConnector.NEXT_CHILD and answer.name is not None:
            node = fdt.Node(answer.name)
            if walk.stack:
                walk.stack[-1].append_subnode(node)
            else:
                walk.root = node
            walk.stack.append(node)
        elif code == ConfigureConnector.NEXT_PROPERTY and walk.stack and answer.name is not None:
            walk.stack[-1].append_property(fdt.Property.bytes(answer.name, answer.value or b""))
        elif code == ConfigureConnector.PREV_PARENT and walk.stack:
            walk.stack.pop()
        elif code == ConfigureConnector.SUCCESS:
            walk.complete = True
            walk.stack.clear()
            walk.last = attrs.evolve(answer, path=self._attach(walk))
            return walk.last
        path = "/".join(n.name for n in walk.stack) if walk.stack else None
        walk.last = attrs.evolve(answer, path=path)
        return walk.last

    def _attach(self, walk: ConnectorWalk) -> str | None:
        """Attach a walked node: CPU connectors' nodes go under /cpus (dlpar_attach_node)."""
        if self.tree is None or walk.root is None:
            return None
        cpu = (walk.drc_index >> _DRC_TYPE_SHIFT) == _DRC_TYPE_CPU
        parent_path = "/cpus" if cpu else "/"
        parent = self.tree.find(parent_path)
        if parent is None:
            return None
        self.detach(walk.drc_index)
        if parent.subnode(walk.root.name) is not None:
            parent.remove_subnode(walk.root.name)
        parent.append_subnode(walk.root)
        path = f"{parent_path.rstrip('/')}/{walk.root.name}"
        self.note(f"attached {path} (drc index {walk.drc_index:#x})")
        return path

    def detach(self, drc_index: int) -> str | None:
        """Remove the node this connector's walk attached (the guest gave the connector back)."""
        if self.tree is None:
            return None
        for path, node in self.tree.iter_nodes():
            if _cells(node, "ibm,my-drc-index") == (drc_index & _U32,) and path != "/":
                parent_path, _, name = path.rpartition("/")
                parent = self.tree.find(parent_path or "/")
                if parent is not None:
                    parent.remove_subnode(name)
                    self.last_detached = path
                    self.note(f"detached {path} (drc index {drc_index:#x})")
                    return path
        return None

    # ----------------------------------------------------------------- views

    def event_irqs(self) -> list[int]:
        """The interrupts of the /event-sources children, in tree order."""
        return [irq for irq, _, _ in self._event_sources()]

    def _event_sources(self) -> Iterator[tuple[int, str, int]]:
        """(irq, node name, check-exception mask) per event source the tree describes."""
        node = self.tree.find("/event-sources") if self.tree is not None else None
        if node is None:
            return
        masks = {n.lower().replace("_", "-"): int(m) for n, m in EventMask.__members__.items()}
        for child in node.children:
            cells = _cells(child, "interrupts")
            if not cells:
                continue
            kind = child.name.removesuffix("-events").removeprefix("ibm,")
            mask = masks.get(kind, 0)
            yield cells[0], child.name, mask

    def event_source_of(self, irq: int) -> tuple[str | None, int | None]:
        """The /event-sources node of an interrupt and its check-exception mask."""
        for source_irq, name, mask in self._event_sources():
            if source_irq == irq:
                return name, mask
        return None, None

    def unanswered(self) -> list[TakenInterrupt]:
        """Interrupts taken whose event has not been fetched with check-exception yet."""
        return [t for t in self.interrupts if not t.answered]

    def default_event_mask(self) -> tuple[int, int]:
        """(mask, irq) for check-exception: the oldest unanswered interrupt's source, else
        the hotplug class the guest negotiated (hot-plug-events, or EPOW without it)."""
        for taken in self.unanswered():
            if taken.mask:
                return taken.mask, taken.irq
        wanted = "hot-plug-events" if self.features.hp_evt else "epow-events"
        for irq, name, mask in self._event_sources():
            if name == wanted:
                return mask, irq
        return int(EventMask.EPOW), 0


class ConsoleError(Exception):
    """The prompt cannot make this call now (the message says why); nothing changed."""


@attrs.define(eq=False)
class ManualConsole:
    """The keyboard: hands a request to a manual-guest thread and runs time until it is made.

    ``sched`` is the machine's vCPU scheduler; only its host-side calls are used
    (wake a thread with a prod, run virtual time, ask a thread's state).
    """

    guest: ManualGuest
    sched: Any
    #: Virtual time the console waits for a call before giving up.
    limit_ns: int = 1_000_000_000
    step_ns: int = 100_000

    def call(self, vcpu: int, name: str, args: tuple[int, ...], nret: int) -> RtasRequest:
        """Have thread ``vcpu`` call ``name`` (by its /rtas token); ConsoleError if it cannot."""
        guest = self.guest
        token = guest.tokens.get(name)
        if token is None:
            raise ConsoleError(f"the guest's /rtas node has no '{name}'")
        if self.sched.find_vcpu(vcpu) is None:
            raise ConsoleError(f"there is no vCPU {vcpu}")
        if vcpu not in guest.online:
            raise ConsoleError(
                f"vCPU {vcpu} is stopped (never started, or it called stop-self): a stopped "
                "thread runs no guest code; pick a running one with 'vcpu N', or start it "
                "with 'rtas start-cpu'"
            )
        request = guest.submit(vcpu, token, name, args, nret)
        self.sched.prod(vcpu)
        deadline = self.sched.now + self.limit_ns
        while request.pending and self.sched.now < deadline:
            self.sched.run_until(min(self.sched.now + self.step_ns, deadline))
        if request.state is RequestState.QUEUED:
            guest.cancel(request)
            raise ConsoleError(f"vCPU {vcpu} did not get to the call within 1 s of virtual time")
        return request
