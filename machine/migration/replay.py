"""Migration to a file and resuming on a target: ``migrate file:PATH``, ``-incoming file:PATH``.

What moves. QEMU migrates guest RAM and CPU registers plus each device's vmstate.
The reference guest is a Python model whose coroutines cannot be serialized, so
the stream carries, in place of RAM, the machine's input journal
(``PseriesMachine.journal``: every host input with its virtual time since the
machine was created) together with the source's command line and the virtual time
T of the migration. Machine and guest are deterministic, so the target rebuilds the
source from that command line, applies the first reset the command line does, and
replays the journal through the monitor's own methods (``device_add``,
``device_del``, ``system_reset``), with ``sched.run_until(entry.t)`` before each
entry and ``run_until(T)`` at the end — each only when it moves time forward.
``run_until(now)`` is not a no-op (it dispatches the vCPUs an input just woke),
and the monitor, like any source driven by ``run_until``/``run_for`` steps, never
drives without moving time; inputs at one instant are therefore replayed back to
back. With that, the replay reaches the source's state exactly, guest included,
however the source split its run: the scheduler handles every event with time <= t
in ``(time, sequence)`` order, and a split only pushes a held slice end into the
heap, which shifts later sequence numbers uniformly. (Inputs applied after
``step()`` may find other events of the same instant still pending, which a replay
would not reproduce.) Without ``-seed`` the guest's ``/chosen/rng-seed`` is the one
thing a replay draws afresh.

The stream also carries the hotplug state as QEMU's vmstate names it
(``vmstate.state_sections``): ``spapr_drc`` (instance id = DRC index; sent for DRCs
with a device whose state is not the ready state or with ``unplug_requested``,
plus the ``unplug_requested`` subsection), ``spapr_drc/physical``,
``spapr_pending_events`` (summary, extended length, extended log in hex),
``spapr_option_vector_ov5_cas`` (when the machine offers options beyond
FORM1/DRCONF/DRMEM_V2, as QEMU's ``needed`` test says), per-vCPU ``cpu`` records
(compat PVR, halted, run state), ``xics``, and the emulator's own ``spapr``
(compat PVR, OV5_HP_EVT routing), ``cores`` (id, type, core-id, QOM path, thread
vCPU ids) and ``guest`` (CPUs with hardware ids, the ``/cpus`` children with their
properties, the last DR action per DRC, digests of the guest's RTAS calls and log).
After the replay the target computes the same sections and must find them equal
to the stream's; any difference is a :class:`QemuError` naming the first differing
field, never a silently different machine.

The target's command line. QEMU's target is started with the source's options plus
one ``-device`` per core hot-plugged on the source and still present (same type,
id and core-id), and ``-incoming``; those cores are cold-plugged (DRC reset to
CONFIGURED) and the stream then overwrites their state. Here the target is built
from its command line the same way (so its start-up errors are QEMU's), its cores
are checked against the stream's, and the machine that resumes is the replayed
one. Options that may differ — the monitors (``-qmp``, ``-monitor``),
``-incoming``, ``-S``, tracing (``-trace``, ``-D``, ``-trace-json``),
``-scenario``, ``-display``/``-nographic`` — are taken from the target; ``-guest``
is ignored on the target (the guest is RAM: it comes from the stream). Every other
option must be spelled as on the source; a missing or extra core, or a different
core type or id, is refused by name. QEMU 7.2 itself fails only on a missing core
(``Unknown savevm section or instance 'cpu_common' N``) and accepts an extra one
silently; this model refuses both.

What QEMU loses, the target loses too, at the migration instant (and again
whenever a later replay passes that instant, through the journal entry
:data:`INCOMING_ENTRY` the target records): every DRC's cached configure-connector
fragment and cursor (protocol §3.8, §9.25), and the platform-log-id counter, a
static variable of QEMU's event code that restarts at 0 in the new process. So a
configure-connector walk interrupted by migration restarts on the target: the
next call rebuilds the fragment and answers NEXT_CHILD with the node's name where
the guest expected a property (or the final 0). Linux (and the reference guest)
then nests a complete copy of the node under the half-built one and takes the
final 0 as success, attaching the half-built node, which holds only the
properties that arrived before the migration. If those include
``ibm,ppc-interrupt-server#s`` the threads still come online (from a malformed
node); otherwise ``dlpar_online_cpu`` fails with -EINVAL, the guest detaches the
node and gives the DRC back (UNUSABLE), and QEMU keeps the core plugged but unused.

``file:PATH`` is the project's URI: QEMU 7.2 has no ``file:`` migration (it refuses
``migrate file:...`` with "Parameter 'uri' expects a valid migration protocol").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import attrs

from guest import LinuxGuest
from machine.board.build import create_machine, print_warnings
from machine.board.guest_loader import parse_guest_option
from machine.board.journal import JournalEntry
from machine.board.manual_guest import ManualGuest
from machine.board.pseries import PseriesMachine
from machine.board.trace_sinks import attach_run_archive, trace_recorder
from machine.config.cmdline import FLAG_OPTIONS, MachineConfig, parse_argv
from machine.migration.stream import FORMAT, VERSION, MigrationStream
from machine.migration.vmstate import core_record, state_sections, verify
from spapr.errors import QemuError
from spapr.trace import TraceEvent, TraceRecorder

__all__ = [
    "FORMAT",
    "INCOMING_ENTRY",
    "VERSION",
    "MigrationResult",
    "MigrationStream",
    "capture",
    "check_command_line",
    "check_cores",
    "file_uri_path",
    "incoming_machine",
    "load_stream",
    "parse_stream",
    "replay",
    "replay_argv",
    "resume",
    "runstate_after_incoming",
    "save",
    "stream_bytes",
]

#: Journal command the target records when it resumes (replays re-apply QEMU's losses).
INCOMING_ENTRY = "incoming-migration"
#: Options taken from the target's command line (QEMU lets them differ).
TARGET_OPTIONS = frozenset(
    {"qmp", "monitor", "incoming", "S", "trace", "D", "trace-json", "trace-html", "scenario"}
    | {"display", "nographic"}
)
#: Options of the source that the target's command line need not repeat (guest RAM).
SOURCE_OPTIONS = frozenset({"guest"})
#: Spellings of one option.
_OPTION_ALIASES = {"machine": "M"}
#: Journal commands a replay understands.
_REPLAYED = frozenset(
    {"device_add", "device_del", "system_reset", "system_powerdown", INCOMING_ENTRY}
)


# --------------------------------------------------------------------------
# Results and URIs
# --------------------------------------------------------------------------


@attrs.frozen
class MigrationResult:
    """What ``save`` did: where, how many bytes, at which virtual time."""

    path: str
    transferred: int
    time_ns: int

    def query_migrate(
        self, *, total_time_ms: int = 0, setup_time_ms: int = 0, downtime_ms: int = 0
    ) -> dict[str, Any]:
        """query-migrate's answer once completed (the monitor supplies wall-clock times)."""
        return {
            "status": "completed",
            "setup-time": setup_time_ms,
            "downtime": downtime_ms,
            "total-time": total_time_ms,
            "ram": {"total": self.transferred, "transferred": self.transferred, "remaining": 0},
        }


def file_uri_path(uri: str) -> str:
    """The path of a ``file:PATH`` URI (QemuError for any other scheme)."""
    if not uri.startswith("file:") or len(uri) == len("file:"):
        raise QemuError(f"unknown migration protocol: {uri}")
    return uri[len("file:") :]


def runstate_after_incoming(stream: MigrationStream, autostart: bool) -> str:
    """The target's run state once loaded (QEMU's rule with the ``globalstate`` section).

    A source that was running makes the target run (or pause under ``-S``); any
    other source state is taken over as it was.
    """
    if stream.runstate == "running":
        return "running" if autostart else "paused"
    return stream.runstate


# --------------------------------------------------------------------------
# Source side
# --------------------------------------------------------------------------


def _guest_shape(guest: LinuxGuest) -> tuple[Any, ...]:
    return (guest.mode, guest.misbehavior, guest.timing, guest.nr_cpus, guest.register_vpa)


def _check_rebuildable(machine: PseriesMachine) -> None:
    """Refuse a machine its command line would not rebuild (so no target could resume it)."""
    config = machine.setup.config
    if isinstance(machine.guest, ManualGuest):
        raise QemuError(
            "migration: a machine whose guest is played at the prompt (-guest manual) cannot "
            "be migrated: the stream carries the reference guest's inputs, not your rtas calls"
        )
    expected = parse_guest_option(config.guest).create()
    guest = machine.guest
    if expected is None:
        rebuildable = guest is None and machine.guest_program_factory is None
    else:
        rebuildable = (
            isinstance(guest, LinuxGuest)
            and isinstance(expected, LinuxGuest)
            and _guest_shape(guest) == _guest_shape(expected)
        )
    if not rebuildable:
        raise QemuError(
            "migration: the machine's guest was not loaded from its command line (-guest); "
            "a target could not rebuild it"
        )
    if machine.sched.host_cpus != max(1, machine.topology.max_cpus):
        raise QemuError(
            f"migration: the machine was built with {machine.sched.host_cpus} host processors, "
            "not as its command line builds it; a target could not rebuild it"
        )
    for entry in machine.journal:
        if entry.command not in _REPLAYED:
            raise QemuError(
                f"migration: the journal holds '{entry.command}' (at {entry.t} ns), "
                "which a target cannot replay"
            )


def capture(machine: PseriesMachine, *, runstate: str | None = None) -> MigrationStream:
    """The stream of ``machine`` now (``runstate``: the state before migration stopped it)."""
    _check_rebuildable(machine)
    return MigrationStream(
        argv=machine.setup.config.argv,
        time_ns=machine.sched.now,
        runstate=machine.runstate if runstate is None else runstate,
        journal=machine.journal,
        sections=state_sections(machine),
    )


def stream_bytes(machine: PseriesMachine, *, runstate: str | None = None) -> bytes:
    """The bytes a migration of ``machine`` sends, whatever carries them."""
    return capture(machine, runstate=runstate).to_json().encode()


def save(machine: PseriesMachine, path: str, *, runstate: str | None = None) -> MigrationResult:
    """``migrate file:PATH``: write the machine's stream; QemuError on refusal or I/O failure."""
    stream = capture(machine, runstate=runstate)
    data = stream.to_json().encode()
    try:
        f = open(path, "wb")  # noqa: SIM115 (the write error is reported apart)
    except OSError as exc:
        raise QemuError(f"Failed to open file '{path}': {exc.strerror}") from None
    with f:
        try:
            f.write(data)
        except OSError as exc:
            raise QemuError(f"Failed to write to file '{path}': {exc.strerror}") from None
    return MigrationResult(path, len(data), stream.time_ns)


# --------------------------------------------------------------------------
# Target side
# --------------------------------------------------------------------------


def load_stream(path: str) -> MigrationStream:
    """Read and check a stream file (QemuError if it cannot be read or is not a stream)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise QemuError(f"Failed to open file '{path}': {exc.strerror}") from None
    return parse_stream(data, f"'{path}'")


def parse_stream(data: bytes, origin: str) -> MigrationStream:
    """A stream from its bytes (``origin`` names where they came from in errors)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise QemuError(f"migration: {origin} is not a migration stream of this emulator") from None
    return MigrationStream.from_json(text, origin=origin)


def incoming_machine(stream_path: str, target_argv: Sequence[str], err: TextIO) -> PseriesMachine:
    """``-incoming file:PATH``: start the target from its command line, then resume the stream.

    The target is created as the command line says (warnings printed to ``err``,
    ``-device`` cores cold-plugged, first reset), checked against the stream, and
    the machine returned is the source rebuilt and replayed up to the migration.
    StartupError/QemuError as QEMU would refuse the command line or the stream.
    """
    return incoming_machine_and_stream(stream_path, target_argv, err)[0]


def incoming_machine_and_stream(
    stream_path: str, target_argv: Sequence[str], err: TextIO
) -> tuple[PseriesMachine, MigrationStream]:
    """:func:`incoming_machine`, also returning the stream (its run state sets the target's)."""
    stream = load_stream(stream_path)
    config = parse_argv(list(target_argv))
    if config.incoming is None:
        raise QemuError("migration: the target's command line has no -incoming")
    check_command_line(stream.argv, config.argv)
    target = _cold_target(config, err)
    return resume(stream, target, err), stream


def _cold_target(config: MachineConfig, err: TextIO) -> PseriesMachine:
    """The target as QEMU creates it before loading: -device cores cold-plugged, reset."""
    machine = create_machine(config, lambda: TraceRecorder(keep=False), err, with_guest=False)
    print_warnings(machine.reset(), err)
    machine.runstate = "inmigrate"
    return machine


def resume(stream: MigrationStream, target: PseriesMachine, err: TextIO) -> PseriesMachine:
    """Load ``stream`` into the waiting ``target`` (also for ``-incoming defer``).

    ``target`` holds the cores the target was given (command line, and device_add
    while ``inmigrate``); they must be the source's. Returns the resumed machine,
    whose trace and QMP event list start at the migration and whose trace sinks are
    the target's; the caller sets its run state (:func:`runstate_after_incoming`).
    """
    check_command_line(stream.argv, target.setup.config.argv)
    check_cores(stream.sections.get("cores"), [core_record(c) for c in target.cores])
    machine = replay(stream, replay_argv(stream.argv, target.setup.config.argv))
    verify(stream, machine)
    _incoming(machine)
    machine.trace.clear()
    machine.qmp_events.clear()
    _attach_trace_sinks(machine, err)
    return machine


# -- command line -------------------------------------------------------------


@attrs.frozen
class _Option:
    name: str
    words: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _options(argv: Sequence[str]) -> list[_Option]:
    """The command line as options (name normalized, original spelling kept)."""
    out: list[_Option] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            out.append(_Option("", (word,)))
            i += 1
            continue
        name = word[2:] if word.startswith("--") else word[1:]
        name = _OPTION_ALIASES.get(name, name)
        if name in FLAG_OPTIONS:
            out.append(_Option(name, (word,)))
            i += 1
        else:
            out.append(_Option(name, tuple(argv[i : i + 2])))
            i += 2
    return out


def _compared(argv: Sequence[str]) -> dict[str, list[str]]:
    """Options that must match, grouped by name in order (``-device`` is checked by core)."""
    grouped: dict[str, list[str]] = {}
    for option in _options(argv):
        if option.name in TARGET_OPTIONS or option.name in SOURCE_OPTIONS:
            continue
        if option.name == "device":
            continue
        grouped.setdefault(option.name, []).append(option.text)
    return grouped


def check_command_line(source_argv: Sequence[str], target_argv: Sequence[str]) -> None:
    """Refuse a target command line whose machine options differ from the source's."""
    source = _compared(source_argv)
    target = _compared(target_argv)
    for name in [*source, *(n for n in target if n not in source)]:
        ours = source.get(name, [])
        theirs = target.get(name, [])
        if ours == theirs:
            continue
        label = f"-{name}" if name else "arguments"
        src = f"with {' '.join(ours)}" if ours else f"without {label}"
        dst = f"with {' '.join(theirs)}" if theirs else f"without {label}"
        raise QemuError(
            "migration: the target's command line differs from the source's: "
            f"the source was started {src}, the target {dst}"
        )


def replay_argv(source_argv: Sequence[str], target_argv: Sequence[str]) -> list[str]:
    """The source's machine options with the target's monitors, tracing and -incoming."""
    words: list[str] = []
    for option in _options(source_argv):
        if option.name not in TARGET_OPTIONS:
            words += option.words
    for option in _options(target_argv):
        if option.name in TARGET_OPTIONS:
            words += option.words
    return words


# -- cores ----------------------------------------------------------------------


def _describe(core: Mapping[str, Any]) -> str:
    name = f"'{core['id']}'" if core.get("id") is not None else "without id"
    return f"{name} ({core['type']}, core-id {core['core_id']})"


def _kind(core: Mapping[str, Any]) -> str:
    if str(core.get("qom_path", "")).startswith("/machine/unattached/"):
        return "boot core"
    return "hot-plugged core" if core.get("hotplugged") else "core"


_CORE_IDENTITY = ("id", "type", "nr_threads", "node_id")


def check_cores(source: object, target: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a target whose cores are not the source's (by core-id: type, id, threads, node)."""
    if not isinstance(source, list) or not all(
        isinstance(c, dict) and isinstance(c.get("core_id"), int) for c in source
    ):
        raise QemuError("migration: the stream has no valid 'cores' section")
    ours = {int(c["core_id"]): c for c in source}
    theirs = {int(c["core_id"]): c for c in target}
    for core_id in sorted(ours.keys() | theirs.keys()):
        src = ours.get(core_id)
        dst = theirs.get(core_id)
        if src is not None and dst is None:
            raise QemuError(
                f"migration: the source has {_kind(src)} {_describe(src)} "
                "but the target has no -device for it"
            )
        if dst is not None and src is None:
            if _kind(dst) == "boot core":
                raise QemuError(
                    f"migration: the target's boot core {_describe(dst)} was unplugged "
                    "on the source"
                )
            raise QemuError(
                f"migration: the target has -device core {_describe(dst)} "
                f"but the source has no core with core-id {core_id}"
            )
        assert src is not None and dst is not None
        if any(src.get(k) != dst.get(k) for k in _CORE_IDENTITY):
            raise QemuError(
                f"migration: the source's {_kind(src)} {_describe(src)} does not match "
                f"the target's {_describe(dst)}"
                + (
                    ""
                    if (src["id"], src["type"]) != (dst["id"], dst["type"])
                    else f" (threads {src.get('nr_threads')} vs {dst.get('nr_threads')}, "
                    f"node {src.get('node_id')} vs {dst.get('node_id')})"
                )
            )


# -- replay -------------------------------------------------------------------------


def replay(stream: MigrationStream, argv: Sequence[str]) -> PseriesMachine:
    """Rebuild the source from ``argv`` and replay the journal up to the migration time."""
    try:
        machine = create_machine(parse_argv(list(argv)), TraceRecorder, None)
    except QemuError as exc:
        raise QemuError(
            f"migration: the source's command line cannot be rebuilt: {exc.message}"
        ) from None
    machine.reset()
    sched = machine.sched
    for entry in stream.journal:
        if entry.t < sched.now:
            raise QemuError(f"migration: journal entry '{entry.command}' at {entry.t} ns is late")
        if entry.t > sched.now:
            sched.run_until(entry.t)
        _replay_entry(machine, entry)
    if stream.time_ns > sched.now:
        sched.run_until(stream.time_ns)
    return machine


def _replay_entry(machine: PseriesMachine, entry: JournalEntry) -> None:
    """Apply one journal entry as the monitor did; the source saw the same refusals."""
    args = entry.args
    try:
        if entry.command == "device_add":
            machine.device_add(args)
        elif entry.command == "device_del":
            machine.device_del(str(args.get("id")))
        elif entry.command == "system_reset":
            machine.system_reset(str(args.get("reason", "host-qmp-system-reset")))
        elif entry.command == "system_powerdown":
            machine.system_powerdown()
        elif entry.command == INCOMING_ENTRY:
            _incoming(machine, args)
        else:
            raise QemuError(
                f"migration: the journal holds '{entry.command}' (at {entry.t} ns), "
                "which this emulator cannot replay"
            )
    except QemuError as exc:
        if exc.message.startswith("migration:"):
            raise


def _incoming(machine: PseriesMachine, args: Mapping[str, Any] | None = None) -> None:
    """What the target loses at the migration instant, journaled so later replays lose it too.

    Each DRC ends as a cold-plugged one overwritten by its section would: no cached
    fragment, cursor at the start (at -1 when empty); QEMU's static PLID counter
    starts again at 0.
    """
    machine.record(INCOMING_ENTRY, dict(args or {}))
    for drc in machine.drcs:
        section = drc.vmstate()
        if section is not None:
            drc.load_vmstate(section)
            continue
        drc.drop_fragment()
    machine.events.plids.next_plid = 0


def _attach_trace_sinks(machine: PseriesMachine, err: TextIO) -> None:
    """Send the resumed machine's later trace events to the target's -trace/-D/-trace-json.

    With ``-trace-html`` the page covers the run from the migration on: the resumed
    machine's recorder gets its own archive.
    """
    config = machine.setup.config
    if config.trace_html:
        attach_run_archive(machine.trace)
    if not (config.traces or config.trace_json):
        return
    sinks = trace_recorder(config, err)
    sinks.keep = False
    sinks.set_clock(machine.sched.clock)
    forward: Callable[[TraceEvent], None] = lambda event: sinks.emit(event.name, **event.fields)  # noqa: E731
    machine.trace.subscribe(forward)
