"""A real Linux guest's recorded CPU hotplug, replayed on this emulator with the reference guest.

The recordings (``tests/data/guest_oracle``, see its README) hold what a Linux
6.12 guest and QEMU 7.2 did in three boots: the QMP session, QEMU's trace, and
every RTAS call the guest made after boot with its answer, the event logs
check-exception returned and the configure-connector property names. The
replay builds the machine from the recorded command line (see
:data:`DROPPED_OPTIONS`), boots the reference guest, and sends the recorded QMP
requests in order through the emulator's own QMP protocol layer, recording the
same things the real guest's tracing recorded.

Where a command lands in the guest's work matters when commands come close
together (two ``device_add`` 0.1 ms apart, a ``device_del`` arriving while the
guest handles the previous one): it decides whether QEMU pulses the interrupt
once per event or again after a check-exception. The recording's timeline
(guest and host on one clock) says how many guest RTAS calls had started when
QEMU took each command (``anchors``). The replay drives the emulator's guest
exactly that far before dispatching the command, and, when the recorded gap
before the command was long (the guest sat idle), runs the rest of the gap as
virtual time too. A replay that cannot meet an anchor fails.

Three kinds of guest RTAS calls depend on timing, not on the protocol, and are
left out wherever sequences are compared or counted (:func:`comparable`):
``event-scan`` polls (rtasd's period against the guest's uptime when the
operations ran), ``query-cpu-stopped-state`` polls answered 2 ("running") while
a dying CPU finishes (the real guest polled 1 to 674 times, depending on how
soon the host ran the dying vCPU), and calls made by a CPU the guest already
counts offline (Linux's RTAS entry skips its tracepoints on an offline CPU, so
the recording cannot contain them: the dying CPU's ibm,get-xive calls while
it moves interrupts away, and its stop-self).
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import attrs

from guest import LinuxGuest
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_protocol import QmpConnection
from spapr.trace import TraceEvent

DATA = Path(__file__).parent / "data" / "guest_oracle"
RUNS = ("power8_smt1_boot0", "power8_smt1_boot1", "power9_smt1_boot0")
POWER9_RUNS = tuple(r for r in RUNS if r.startswith("power9"))
S = 1_000_000_000

#: Options of the recorded command line the replay leaves out, and why.
DROPPED_OPTIONS = {
    "-kernel": "the guest's kernel: the emulator runs its reference guest (-guest linux) instead",
    "-initrd": "the guest's initramfs, part of the guest the reference guest stands for",
    "-append": "the guest kernel's command line (console, tracing and dyndbg for the recording)",
    "-qmp": "the recording's QMP socket: the replay speaks QMP to the emulator in-process",
    "-trace": "the recording's trace-event list: the replay reads the emulator's recorder",
    "-D": "the recording's trace log file (qemu_trace.log)",
    "-msg": "time stamps on QEMU's own messages: no effect on the guest, the trace or QMP",
}
#: The trace events the recording enabled (its trace-events file, as its log shows).
TRACED_EVENTS = (
    "spapr_drc_*",
    "spapr_cas_*",
    "xics_ics_set_irq*",
    "spapr_xive_set_irq",
    "monitor_qmp_cmd_in_band",
    "monitor_protocol_event_emit",
)
#: A recorded gap at least this long means the recorded guest was idle before the command.
IDLE_GAP_S = 0.1
#: How many bytes of the check-exception buffer the recording dumped (three 64-byte pieces).
EVENT_LOG_BYTES = 192
#: Scheduler steps the replay may take to reach one anchor.
MAX_STEPS = 1_000_000


@attrs.frozen
class RtasCall:
    """One guest RTAS call: the service, its arguments, status and other outputs."""

    name: str
    args: tuple[int, ...]
    status: int
    outputs: tuple[int, ...]
    #: The calling CPU was online in the guest's eyes (so Linux's tracepoints saw the call).
    traced: bool = True

    def key(self) -> tuple[str, tuple[int, ...], int, tuple[int, ...]]:
        """What the comparison looks at (the traced flag is the replay's bookkeeping)."""
        return (self.name, self.args, self.status, self.outputs)


def comparable(calls: Iterable[RtasCall]) -> list[RtasCall]:
    """The calls that do not depend on timing (see the module docstring)."""
    out = []
    for call in calls:
        if not call.traced or call.name == "event-scan":
            continue
        if call.name == "query-cpu-stopped-state" and call.outputs == (2,):
            continue
        out.append(call)
    return out


@attrs.frozen
class Recording:
    """One recorded boot, as tests/data/guest_oracle holds it."""

    name: str
    data: dict[str, Any]

    @property
    def qemu_cmdline(self) -> list[str]:
        return list(self.data["qemu_cmdline"])

    @property
    def qmp(self) -> list[dict[str, Any]]:
        """The QMP session in order: ``at`` (s after the greeting), ``dir``, ``msg``."""
        return list(self.data["qmp"])

    @property
    def anchors(self) -> dict[str, int]:
        """Command id -> guest RTAS calls started before QEMU took the command."""
        return dict(self.data["anchors"])

    @property
    def trace(self) -> list[str]:
        """QEMU's trace lines from the first command after negotiation on."""
        return list(self.data["trace"])

    @property
    def boot_trace(self) -> list[str]:
        """QEMU's trace lines before it: the DRC lines (shared file), then the CAS lines."""
        drc = (DATA / "boot_drc_trace.txt").read_text().splitlines()
        return drc + list(self.data["boot_trace"])

    def boot_xics_calls(self) -> list[RtasCall]:
        """The boot's interrupt-controller RTAS calls (ibm,set-xive, ibm,get-xive, ibm,int-on)."""
        return [
            RtasCall(name, tuple(args), status, tuple(outputs))
            for _cpu, name, args, status, outputs in self.data["boot_rtas"]
        ]

    def rtas_calls(self) -> list[RtasCall]:
        """Every recorded RTAS call after boot (the run-length encoding expanded)."""
        out = []
        for _cpu, name, args, status, outputs, count in self.data["rtas"]:
            out += [RtasCall(name, tuple(args), status, tuple(outputs))] * count
        return out

    @property
    def event_logs(self) -> list[bytes]:
        """The check-exception buffers, in call order (first EVENT_LOG_BYTES bytes)."""
        return [bytes.fromhex(h) for h in self.data["event_logs"]]

    @property
    def cc_properties(self) -> list[list[str]]:
        """Per configure-connector sequence: the property names, in the order received."""
        return [list(w) for w in self.data["cc_properties"]]

    def qom_fdt(self) -> dict[str, bytes] | None:
        """The CPU connector's ``fdt`` (QEMU's fragment) from a non-null qom-get reply."""
        asked = {
            row["msg"]["id"]
            for row in self.qmp
            if row["dir"] == "out"
            and row["msg"]["execute"] == "qom-get"
            and row["msg"]["arguments"]["property"] == "fdt"
        }
        for row in self.qmp:
            msg = row["msg"]
            if row["dir"] == "in" and msg.get("id") in asked and msg.get("return"):
                return {name: bytes(value) for name, value in msg["return"].items()}
        return None


@functools.cache
def recording(name: str) -> Recording:
    """The recording ``name`` (one of :data:`RUNS`), read once."""
    return Recording(name, json.loads((DATA / f"{name}.json").read_text()))


def emulator_argv(cmdline: Sequence[str]) -> list[str]:
    """The recorded qemu-system-ppc64 command line without :data:`DROPPED_OPTIONS`."""
    out: list[str] = []
    words = iter(cmdline[1:])
    for word in words:
        if word in DROPPED_OPTIONS:
            next(words)
            continue
        out.append(word)
    return out


@attrs.define
class Walk:
    """What one configure-connector sequence handed out: node names and properties."""

    nodes: list[str] = attrs.field(factory=list)
    properties: list[tuple[str, bytes]] = attrs.field(factory=list)


@attrs.define
class ModelRun:
    """What the replay observed on the emulator."""

    machine: PseriesMachine
    #: Every RTAS call from the first command after negotiation on.
    rtas: list[RtasCall] = attrs.field(factory=list)
    #: The RTAS calls before it (the guest's boot).
    boot_rtas: list[RtasCall] = attrs.field(factory=list)
    event_logs: list[bytes] = attrs.field(factory=list)
    walks: list[Walk] = attrs.field(factory=list)
    #: Greeting, responses and events as QMP sent them, in order.
    qmp_in: list[dict[str, Any]] = attrs.field(factory=list)
    boot_trace: list[str] = attrs.field(factory=list)
    #: Trace lines after boot. Where the replay dispatched each command it puts the line
    #: QEMU's monitor_qmp_cmd_in_band trace point writes (the emulator has none), so both
    #: logs mark where every command ran.
    trace: list[str] = attrs.field(factory=list)
    #: Every RTAS call since the machine's reset, boot included.
    calls: list[RtasCall] = attrs.field(factory=list)
    in_walk: bool = False

    def on_rtas_call(self, event: TraceEvent) -> None:
        """Record a call, and what it left in guest memory for the guest to read."""
        f = event.fields
        guest = self.machine.guest
        assert isinstance(guest, LinuxGuest)
        online = {cpu.hwid: cpu.online for cpu in guest.cpus()}
        rets = tuple(f["rets"])
        call = RtasCall(
            f["name"], tuple(f["args"]), f["status"], rets[1:], online.get(f["vcpu"], False)
        )
        self.calls.append(call)
        memory = self.machine.memory
        if call.name == "check-exception" and call.status == 0:
            self.event_logs.append(memory.read(call.args[4], EVENT_LOG_BYTES))
        if call.name == "ibm,configure-connector":
            if not self.in_walk:
                self.walks.append(Walk())
            self.in_walk = call.status != 0
            area = call.args[0]
            if call.status in (1, 2, 3):  # NEXT_SIBLING, NEXT_CHILD, NEXT_PROPERTY
                name = memory.read_cstring(area + memory.ld32(area + 8), 4096).decode()
            if call.status in (1, 2):
                self.walks[-1].nodes.append(name)
            elif call.status == 3:
                value = memory.read(area + memory.ld32(area + 16), memory.ld32(area + 12))
                self.walks[-1].properties.append((name, value))


class _Replayer:
    """Sends a recording's QMP requests to a fresh emulator, anchored as recorded."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        machine = build_machine(emulator_argv(rec.qemu_cmdline), io.StringIO())
        self.machine = machine
        self.run = ModelRun(machine)
        machine.trace.subscribe(self.run.on_rtas_call, ["rtas_call"])
        machine.reset()
        self.control = MachineControl(machine)
        self.conn = QmpConnection(QmpCommands(self.control))
        self.control.sinks.append(self.conn.event)
        recorded = rec.rtas_calls()
        self.anchors = {
            cid: len(comparable(recorded[:count])) for cid, count in rec.anchors.items()
        }
        #: RTAS calls the guest made before the first command after negotiation (boot).
        self.base: int | None = None
        self.boot_events = 0
        self.markers: list[tuple[int, str]] = []

    def _receive(self) -> None:
        for line in self.conn.data_to_send().splitlines():
            self.run.qmp_in.append(json.loads(line))

    def _made(self) -> int:
        assert self.base is not None
        return len(comparable(self.run.calls[self.base :]))

    def _advance(self, cid: str, gap_s: float) -> None:
        sched = self.machine.sched
        start = sched.now
        if self.base is None:
            sched.run_for(round(gap_s * S))
            self.base = len(self.run.calls)
            self.boot_events = len(self.machine.trace.events)
        anchor = self.anchors[cid]
        for _ in range(MAX_STEPS):
            if self._made() >= anchor or not sched.step():
                break
        if gap_s >= IDLE_GAP_S and sched.now < start + round(gap_s * S):
            sched.run_until(start + round(gap_s * S))
        assert self._made() == anchor, (
            f"{self.rec.name}: before {cid} the recorded guest had made {anchor} comparable "
            f"RTAS calls, the emulator's guest {self._made()}"
        )

    def replay(self) -> ModelRun:
        self.conn.connected()
        self._receive()
        last_at = 0.0
        for row in self.rec.qmp:
            if row["dir"] != "out":
                continue  # replies, events, and the console input (see test_guest_oracle_host)
            msg = row["msg"]
            cid = msg["id"]
            gap, last_at = row["at"] - last_at, row["at"]
            if msg["execute"] != "qmp_capabilities":
                self._advance(cid, gap)
                self.markers.append((len(self.machine.trace.events), cid))
            self.conn.receive_data(json.dumps(msg).encode() + b"\n")
            self._receive()
        self._finish()
        return self.run

    def _finish(self) -> None:
        run = self.run
        assert self.base is not None
        run.rtas = run.calls[self.base :]
        run.boot_rtas = run.calls[: self.base]
        events = self.machine.trace.events
        markers = [m for m in self.markers if m[0] >= self.boot_events]
        for i, event in enumerate(events):
            while markers and markers[0][0] == i:
                run.trace.append(f'monitor_qmp_cmd_in_band "{markers.pop(0)[1]}"')
            if any(fnmatchcase(event.name, p) for p in TRACED_EVENTS):
                (run.boot_trace if i < self.boot_events else run.trace).append(event.qemu_line())
        run.trace += [f'monitor_qmp_cmd_in_band "{cid}"' for _i, cid in markers]


@functools.cache
def replay(name: str) -> ModelRun:
    """The recording ``name`` replayed on the emulator (once per test session)."""
    return _Replayer(recording(name)).replay()
