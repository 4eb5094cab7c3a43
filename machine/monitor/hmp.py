"""The human monitor (HMP): QEMU 7.2's command-line parser, command table and texts.

:meth:`HmpMonitor.execute` takes one command line and returns what QEMU would print
(lines ending in ``\\n``; QMP's human-monitor-command turns them into ``\\r\\n``).
Parsing follows monitor/hmp.c: the command name ends at a space or ``/``, ``info``
has a sub-table, arguments are read by their ``args_type`` (``s`` one word or a
quoted string, ``S`` the rest of the line, ``O`` a ``-device``-style option
string), and mistakes print ``<cmd>: string expected`` / ``extraneous characters
at the end of line`` followed by ``Try "help <cmd>" for more information``.
Command errors print ``Error: <message>``.

Project additions, marked as such in ``help``: ``guest ...`` (views of the
reference guest: lscpu, numactl -H, the sysfs CPU masks), ``trace show``, ``trace
diagram`` and ``trace draw FILE`` (the handshake as text or SVG, machine.diagrams), and
for playing the guest by hand (``-guest manual``) ``rtas`` (machine.monitor.hmp_rtas),
``vcpu``, ``dt show``, ``info drc``, ``info events`` and ``info pending``
(machine.monitor.hmp_views). QEMU's ``info pic`` and the migration commands
(machine.monitor.hmp_migrate) print QEMU 7.2's texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from machine.board.manual_guest import ManualGuest
from machine.config.cli_help import CORE_PROPERTY_HELP, device_list_lines
from machine.config.qemu_opts import OptsList, parse_qemu_opts
from machine.diagrams.pictures import DRAW_USAGE, draw_svg, parse_draw_words
from machine.diagrams.sequence_text import sequence_diagram
from machine.monitor.control import PACKAGE, QEMU_VERSION, MachineControl
from machine.monitor.hmp_memory import DumpFormat, DumpSyntaxError, memory_dump, parse_address
from machine.monitor.hmp_migrate import info_migrate, migrate, migrate_incoming
from machine.monitor.hmp_rtas import RtasPrompt, rtas_help_lines
from machine.monitor.hmp_views import dt_show, info_drc, info_events, info_pending, info_pic
from machine.monitor.qtree import qtree_lines
from machine.sched import VcpuState
from spapr.cpu_models import CPU_MODELS
from spapr.errors import QemuError

#: Marks project commands in ``help`` so nobody mistakes them for QEMU's.
ADDITION = "[emulator addition] "
_DEVICE_OPTS = OptsList("device", implied="driver")
#: The order ``info hotpluggable-cpus`` prints instance properties in.
CPU_INSTANCE_PROPS = ("node-id", "socket-id", "die-id", "cluster-id", "core-id", "thread-id")
GUEST_FILES = {
    "/sys/devices/system/cpu/online": "sys_cpu_online",
    "/sys/devices/system/cpu/present": "sys_cpu_present",
    "/sys/devices/system/cpu/possible": "sys_cpu_possible",
}
GUEST_USAGE = "lscpu, numactl -H, cat /sys/devices/system/cpu/{online,present,possible}, dmesg"


#: Most events ``trace show`` prints and ``trace diagram`` draws by default: the ring
#: keeps up to 30,000, which printed whole is megabytes (seconds over QMP's
#: human-monitor-command on a busy host) and more than anyone reads at a prompt.
TRACE_PRINT_LIMIT = 2_000


class HmpParseError(Exception):
    """The command line could not be parsed (the message is already printed)."""


@attrs.frozen
class HmpCommand:
    """One entry of an HMP command table (hmp-commands.hx)."""

    name: str
    args_type: str
    params: str
    help: str
    handler: str
    sub_table: tuple[HmpCommand, ...] = ()

    def matches(self, word: str) -> bool:
        """hmp_compare_cmd: ``word`` is one of the ``|``-separated names."""
        return word in self.name.split("|")


INFO_COMMANDS: tuple[HmpCommand, ...] = tuple(
    sorted(
        (
            HmpCommand("cpus", "", "", "show infos for each CPU", "info_cpus"),
            HmpCommand(
                "drc",
                "which:s?",
                "[cpu|phb|pci|index]",
                ADDITION + "show every DR connector's state",
                "info_drc",
            ),
            HmpCommand(
                "events",
                "name:s?",
                "[name]",
                ADDITION + "show the QMP events so far, with their virtual time",
                "info_events",
            ),
            HmpCommand("migrate", "", "", "show migration status", "info_migrate"),
            HmpCommand(
                "pending",
                "",
                "",
                ADDITION + "show the events and interrupts waiting for the guest",
                "info_pending",
            ),
            HmpCommand("pic", "", "", "show PIC state", "info_pic"),
            HmpCommand(
                "hotpluggable-cpus",
                "",
                "",
                "Show information about hotpluggable CPUs",
                "info_hotpluggable_cpus",
            ),
            HmpCommand(
                "qom-tree", "path:s?", "[path]", "show QOM composition tree", "info_qom_tree"
            ),
            HmpCommand("qtree", "", "", "show device tree", "info_qtree"),
            HmpCommand(
                "status", "", "", "show the current VM status (running|paused)", "info_status"
            ),
            HmpCommand("version", "", "", "show the version of QEMU", "info_version"),
        ),
        key=lambda c: c.name.encode(),
    )
)

HMP_COMMANDS: tuple[HmpCommand, ...] = tuple(
    sorted(
        (
            HmpCommand("help|?", "name:S?", "[cmd]", "show the help", "help"),
            HmpCommand("quit|q", "", "", "quit the emulator", "quit"),
            HmpCommand("stop|s", "", "", "stop emulation", "stop"),
            HmpCommand("cont|c", "", "", "resume emulation", "cont"),
            HmpCommand("system_reset", "", "", "reset the system", "system_reset"),
            HmpCommand(
                "system_powerdown", "", "", "send system power down event", "system_powerdown"
            ),
            HmpCommand(
                "device_add",
                "device:O",
                "driver[,prop=value][,...]",
                "add device, like -device on the command line",
                "device_add",
            ),
            HmpCommand("device_del", "id:s", "device", "remove device", "device_del"),
            HmpCommand(
                "info",
                "item:s?",
                "[subcommand]",
                "show various information about the system state",
                "info_help",
                INFO_COMMANDS,
            ),
            HmpCommand(
                "guest",
                "cmdline:S",
                "lscpu|numactl -H|cat FILE|dmesg",
                ADDITION + "show a view of the reference guest",
                "guest",
            ),
            HmpCommand(
                "rtas",
                "cmdline:S?",
                "name|token [arg...]",
                ADDITION + "make an RTAS call as the guest (-guest manual)",
                "rtas",
            ),
            HmpCommand(
                "vcpu",
                "id:s?",
                "[id]",
                ADDITION + "show or choose the vCPU the rtas calls come from",
                "vcpu",
            ),
            HmpCommand(
                "dt",
                "cmdline:S?",
                "show [path]",
                ADDITION + "show the device tree as the guest sees it now",
                "dt",
            ),
            HmpCommand(
                "migrate",
                "detach:-d,blk:-b,inc:-i,resume:-r,uri:s",
                "[-d] [-b] [-i] [-r] uri",
                "migrate to URI (using -d to not wait for completion)"
                "\n\t\t\t -b for migration without shared storage with full copy of disk"
                "\n\t\t\t -i for migration without shared storage with incremental copy of "
                "disk (base image shared between src and destination)"
                "\n\t\t\t -r to resume a paused migration",
                "migrate",
            ),
            HmpCommand(
                "migrate_incoming",
                "uri:s",
                "uri",
                "Continue an incoming migration from an -incoming defer",
                "migrate_incoming",
            ),
            HmpCommand(
                "xp", "fmt:/,addr:l", "/fmt addr", "physical memory dump starting at 'addr'", "xp"
            ),
            HmpCommand(
                "trace",
                "cmdline:S?",
                f"show [pattern...]|diagram [since-ms]|draw {DRAW_USAGE}",
                ADDITION + "print the trace events so far, a sequence diagram, or draw it as SVG",
                "trace",
            ),
        ),
        key=lambda c: c.name.encode(),
    )
)


def _is_space(ch: str) -> bool:
    return ch in " \t\n\r\v\f"


def _get_command_name(line: str, pos: int) -> tuple[str, int] | None:
    """get_command_name: skip spaces, read up to a space or '/'; None on an empty line."""
    while pos < len(line) and _is_space(line[pos]):
        pos += 1
    start = pos
    while pos < len(line) and line[pos] != "/" and not _is_space(line[pos]):
        pos += 1
    if pos == start:
        return None
    return line[start:pos], pos


_STR_ESCAPES = {"n": "\n", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _get_str(line: str, pos: int) -> tuple[str, int] | None:
    """get_str: one word, or a double-quoted string with \\n \\r \\\\ \\' \\" escapes."""
    while pos < len(line) and _is_space(line[pos]):
        pos += 1
    if pos >= len(line):
        return None
    if line[pos] == '"':
        pos += 1
        out: list[str] = []
        while pos < len(line) and line[pos] != '"':
            if line[pos] == "\\":
                esc = line[pos + 1] if pos + 1 < len(line) else ""
                if esc not in _STR_ESCAPES:
                    return None
                out.append(_STR_ESCAPES[esc])
                pos += 2
            else:
                out.append(line[pos])
                pos += 1
        if pos >= len(line):
            return None  # unterminated string
        return "".join(out), pos + 1
    start = pos
    while pos < len(line) and not _is_space(line[pos]):
        pos += 1
    return line[start:pos], pos


@attrs.define
class HmpMonitor:
    """One human monitor: parses lines, runs them against the machine, collects the text."""

    control: MachineControl
    #: Where text QEMU sends to stderr goes (QemuOpts parse errors and warnings).
    stderr: Callable[[str], None] = attrs.field(default=lambda _line: None)
    _out: list[str] = attrs.field(factory=list, init=False)
    _cpu_index: int | None = attrs.field(default=None, init=False)
    #: This monitor's number on the machine (its ``mon`` in the trace).
    _mon: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._mon = self.control.hmp_monitors
        self.control.hmp_monitors += 1

    @property
    def _dump_format(self) -> DumpFormat:
        return self.control.hmp_dump_format

    def print(self, text: str = "") -> None:
        """monitor_printf of one line."""
        self._out.append(text + "\n")

    def execute(self, line: str, cpu_index: int | None = None) -> str:
        """Run one command line; return everything it printed.

        The line is traced first, as QEMU's ``handle_hmp_command`` does, so the trace
        (and ``trace diagram``) shows the virtual time every command ran at, the
        looks (``guest lscpu``, ``info ...``) as well as the operations.
        """
        self.control.machine.trace.emit("handle_hmp_command", mon=self._mon, cmdline=line)
        self._out = []
        self._cpu_index = cpu_index
        self._handle(line)
        text, self._out = "".join(self._out), []
        return text

    # ------------------------------------------------------------ parsing

    def _handle(self, line: str) -> None:
        parsed = self._parse_command(line, 0, HMP_COMMANDS)
        if parsed is None:
            return
        cmd, pos = parsed
        try:
            args = self._parse_arguments(cmd, line, pos)
        except HmpParseError:
            typed = line[:pos].rstrip()
            self.print(f'Try "help {typed}" for more information')
            return
        try:
            getattr(self, "cmd_" + cmd.handler)(args)
        except QemuError as err:
            self.print(f"Error: {err.message}")

    def _parse_command(
        self, line: str, pos: int, table: tuple[HmpCommand, ...]
    ) -> tuple[HmpCommand, int] | None:
        """monitor_parse_command: find the command (descending into ``info``)."""
        name = _get_command_name(line, pos)
        if name is None:
            return None
        word, end = name
        cmd = next((c for c in table if c.matches(word)), None)
        if cmd is None:
            self.print(f"unknown command: '{line[:end]}'")
            return None
        while end < len(line) and _is_space(line[end]):
            end += 1
        if cmd.sub_table and end < len(line):
            return self._parse_command(line, end, cmd.sub_table)
        return cmd, end

    def _parse_arguments(self, cmd: HmpCommand, line: str, pos: int) -> dict[str, Any]:
        """monitor_parse_arguments for the argument types the table uses."""
        args: dict[str, Any] = {}
        specs = [s for s in cmd.args_type.split(",") if s]
        for n, spec in enumerate(specs):
            key, _, kind = spec.partition(":")
            optional = kind.endswith("?")
            kind = kind.rstrip("?")
            while pos < len(line) and _is_space(line[pos]):
                pos += 1
            if kind.startswith("-"):
                args[key], pos = self._flag(cmd, line, pos, kind[1:], specs[n + 1 :])
            elif kind in ("/", "l"):
                try:
                    if kind == "/":
                        *args[key], rest = self._dump_format.parse(line[pos:])
                    else:
                        args[key], rest = parse_address(line[pos:])
                except DumpSyntaxError as err:
                    self.print(str(err))
                    raise HmpParseError from None
                pos = len(line) - len(rest)
            elif kind == "s":
                if optional and pos >= len(line):
                    continue
                got = _get_str(line, pos)
                if got is None:
                    self.print(f"{cmd.name}: string expected")
                    raise HmpParseError
                args[key], pos = got
            elif kind == "S":
                if pos >= len(line):
                    if optional:
                        continue
                    self.print(f"{cmd.name}: string expected")
                    raise HmpParseError
                args[key], pos = line[pos:], len(line)
            elif kind == "O":
                if pos >= len(line):
                    continue
                got = _get_str(line, pos)
                if got is None:
                    raise HmpParseError
                text, pos = got
                args.update(self._device_opts(text))
        while pos < len(line) and _is_space(line[pos]):
            pos += 1
        if pos < len(line):
            self.print(f"{cmd.name}: extraneous characters at the end of line")
            raise HmpParseError
        return args

    def _flag(
        self, cmd: HmpCommand, line: str, pos: int, flag: str, later: list[str]
    ) -> tuple[bool, int]:
        """An optional ``-X`` flag: taken if present; a flag of a later argument is left
        for it; any other ``-X`` is "unsupported option" (QEMU checks them in table order)."""
        if pos >= len(line) or line[pos] != "-":
            return False, pos
        given = line[pos + 1 : pos + 2]
        if given == flag:
            return True, pos + 2
        if not any(s.partition(":")[2] == f"-{given}" for s in later):
            self.print(f"{cmd.name}: unsupported option -{given}")
            raise HmpParseError
        return False, pos

    def _device_opts(self, text: str) -> dict[str, Any]:
        """qemu_opts_parse_noisily for -device syntax; QEMU reports its errors on stderr."""
        try:
            opts, warnings = parse_qemu_opts(_DEVICE_OPTS, text)
        except QemuError as err:
            for msg_line in err.message.splitlines():
                self.stderr(msg_line)
            raise HmpParseError from None
        for warning in warnings:
            for n, msg_line in enumerate(warning.message.splitlines()):
                self.stderr(("warning: " if n == 0 else "") + msg_line)
        values: dict[str, Any] = {}
        if opts.id is not None:
            values["id"] = opts.id
        for opt in opts.opts:
            values[opt.name] = opt.text
        return values

    # ------------------------------------------------------------ memory

    def cmd_xp(self, args: dict[str, Any]) -> None:
        count, fmt, size = args["fmt"]
        for line in memory_dump(self.control.machine.memory, count, fmt, size, args["addr"]):
            self.print(line)

    # ------------------------------------------------------------ help

    def cmd_help(self, args: dict[str, Any]) -> None:
        words = args.get("name", "").split()
        self._help(HMP_COMMANDS, words, 0)

    def _help(self, table: tuple[HmpCommand, ...], words: list[str], index: int) -> None:
        if index >= len(words):
            for cmd in table:
                self._help_line(cmd, words[:index])
            return
        for cmd in table:
            if cmd.matches(words[index]):
                if cmd.sub_table:
                    self._help(cmd.sub_table, words, index + 1)
                else:
                    self._help_line(cmd, words[:index], detail=True)
                return
        self.print(f"unknown command: '{' '.join(words[: index + 1])}'")

    def _help_line(self, cmd: HmpCommand, prefix: list[str], detail: bool = False) -> None:
        lead = "".join(f"{w} " for w in prefix)
        self.print(f"{lead}{cmd.name} {cmd.params} -- {cmd.help}")
        if detail and cmd.name == "rtas":
            for line in rtas_help_lines():
                self.print(line)

    def cmd_info_help(self, args: dict[str, Any]) -> None:
        self._help(HMP_COMMANDS, ["info"], 0)

    # ------------------------------------------------------------ VM control

    def cmd_quit(self, args: dict[str, Any]) -> None:
        self.control.quit()

    def cmd_stop(self, args: dict[str, Any]) -> None:
        self.control.stop()

    def cmd_cont(self, args: dict[str, Any]) -> None:
        self.control.cont()

    def cmd_system_reset(self, args: dict[str, Any]) -> None:
        self.control.system_reset()

    def cmd_system_powerdown(self, args: dict[str, Any]) -> None:
        self.control.system_powerdown()

    def cmd_device_add(self, args: dict[str, Any]) -> None:
        driver = args.get("driver")
        if driver in ("help", "?"):
            for line in device_list_lines():
                self.print(line)
            return
        wants_help = "help" in args or "?" in args
        if wants_help and any(m.core_type == driver for m in CPU_MODELS):
            self.print(f"{driver} options:")
            for line in CORE_PROPERTY_HELP:
                self.print(line)
            return
        self.control.device_add(args)

    def cmd_device_del(self, args: dict[str, Any]) -> None:
        self.control.device_del(args["id"])

    # ------------------------------------------------------------ info

    def cmd_info_status(self, args: dict[str, Any]) -> None:
        status = self.control.query_status()
        text = "VM status: " + ("running" if status["running"] else "paused")
        if not status["running"] and status["status"] != "paused":
            text += f" ({status['status']})"
        self.print(text)

    def cmd_info_cpus(self, args: dict[str, Any]) -> None:
        current = self._current_cpu()
        machine = self.control.machine
        manual = machine.guest if isinstance(machine.guest, ManualGuest) else None
        for cpu in self.control.query_cpus_fast():  # QEMU's hmp_info_cpus reads query-cpus-fast
            mark = "*" if cpu["cpu-index"] == current else " "
            line = f"{mark} CPU #{cpu['cpu-index']}: thread_id={cpu['thread-id']}"
            if manual is not None:  # the project's note: QEMU 7.2 prints no thread state
                line += f" ({_manual_cpu_state(machine, manual, cpu['cpu-index'])})"
            self.print(line)

    def _current_cpu(self) -> int | None:
        if self._cpu_index is not None and self.control.has_cpu(self._cpu_index):
            return self._cpu_index
        return self.control.current_cpu_index()

    def cmd_info_hotpluggable_cpus(self, args: dict[str, Any]) -> None:
        slots = self.control.machine.query_hotpluggable_cpus()
        self.print("Hotpluggable CPUs:")
        for slot in slots:
            self.print(f'  type: "{slot["type"]}"')
            self.print(f'  vcpus_count: "{slot["vcpus-count"]}"')
            if "qom-path" in slot:
                self.print(f'  qom_path: "{slot["qom-path"]}"')
            self.print("  CPUInstance Properties:")
            for prop in CPU_INSTANCE_PROPS:
                if prop in slot["props"]:
                    self.print(f'    {prop}: "{slot["props"][prop]}"')

    def cmd_info_qtree(self, args: dict[str, Any]) -> None:
        for line in qtree_lines(self.control.machine):
            self.print(line)

    def cmd_info_qom_tree(self, args: dict[str, Any]) -> None:
        view = self.control.view
        path = args.get("path")
        if path is None:
            node = view.resolve("/machine")
        else:
            node = view.resolve(path)
            if node is None:
                if view.ambiguous(path):
                    self.print(f"Warning: Path '{path}' is ambiguous")
                else:
                    self.print(f"Path '{path}' could not be resolved.")
                return
        assert node is not None
        for line in view.composition(node):
            self.print(line)

    def cmd_info_pic(self, args: dict[str, Any]) -> None:
        for line in info_pic(self.control.machine):
            self.print(line)

    def cmd_info_drc(self, args: dict[str, Any]) -> None:
        for line in info_drc(self.control.machine, args.get("which")):
            self.print(line)

    def cmd_info_events(self, args: dict[str, Any]) -> None:
        for line in info_events(self.control.machine, args.get("name")):
            self.print(line)

    def cmd_info_pending(self, args: dict[str, Any]) -> None:
        for line in info_pending(self.control.machine, self.control.machine.guest):
            self.print(line)

    def cmd_info_migrate(self, args: dict[str, Any]) -> None:
        for line in info_migrate(self.control):
            self.print(line)

    def cmd_info_version(self, args: dict[str, Any]) -> None:
        major, minor, micro = QEMU_VERSION
        self.print(f"{major}.{minor}.{micro} ({PACKAGE})")

    # ------------------------------------------------------------ migration

    def cmd_migrate(self, args: dict[str, Any]) -> None:
        migrate(self.control, args, self.stderr)

    def cmd_migrate_incoming(self, args: dict[str, Any]) -> None:
        migrate_incoming(self.control, args)

    # ------------------------------------------------------------ additions

    def cmd_rtas(self, args: dict[str, Any]) -> None:
        RtasPrompt(self.control, self.print).rtas(args.get("cmdline", ""))

    def cmd_vcpu(self, args: dict[str, Any]) -> None:
        RtasPrompt(self.control, self.print).vcpu(args.get("id"))

    def cmd_dt(self, args: dict[str, Any]) -> None:
        words = args.get("cmdline", "").split()
        if not words or words[0] != "show" or len(words) > 2:
            self.print("dt: usage: dt show [path]")
            return
        path = words[1] if len(words) == 2 else "/"
        for line in dt_show(self.control.machine, self.control.machine.guest, path):
            self.print(line)

    def cmd_guest(self, args: dict[str, Any]) -> None:
        words = args["cmdline"].split()
        guest = self.control.guest
        if guest is None:
            self.print("guest: no reference guest is loaded in this machine")
            return
        view = self._guest_view(words)
        if view is None:
            self.print(f"guest: unknown command '{' '.join(words)}' (try: {GUEST_USAGE})")
            return
        reader = getattr(guest, view, None)
        if reader is None:
            self.print(f"guest: this guest has no '{' '.join(words)}' view")
            return
        try:
            result = reader()
        except RuntimeError:
            self.print("guest: the reference guest has not booted yet")
            return
        for line in _lines(result):
            self.print(line)

    @staticmethod
    def _guest_view(words: list[str]) -> str | None:
        if words == ["lscpu"]:
            return "lscpu"
        if words in (["numactl", "-H"], ["numactl", "--hardware"]):
            return "numactl_hardware"
        if words == ["dmesg"]:
            return "dmesg"
        if len(words) == 2 and words[0] == "cat":
            return GUEST_FILES.get(words[1])
        return None

    def cmd_trace(self, args: dict[str, Any]) -> None:
        words = args.get("cmdline", "").split()
        if words and words[0] == "diagram" and len(words) <= 2:
            events = self.control.machine.trace.events
            # by default from the first host command on (the boot is rarely of interest)
            since = next((e.t for e in events if e.name == "host_command"), 0)
            if len(words) == 2:
                try:
                    since = int(float(words[1]) * 1_000_000)
                except ValueError:
                    self.print("trace: usage: trace diagram [since-ms]")
                    return
            else:
                # a long run: the latest TRACE_PRINT_LIMIT events (an explicit since-ms
                # draws from anywhere); the reply stays readable at a prompt and over QMP
                window = [e for e in events if e.t >= since]
                if len(window) > TRACE_PRINT_LIMIT:
                    self.print(
                        f"trace: the latest {TRACE_PRINT_LIMIT} of {len(window)} events drawn "
                        "(trace diagram SINCE-MS draws from a time on)"
                    )
                    events = window[-TRACE_PRINT_LIMIT:]
            for line in sequence_diagram(events, since_ns=since):
                self.print(line)
            return
        if words and words[0] == "draw":
            self._trace_draw(words[1:])
            return
        if not words or words[0] != "show":
            self.print(
                "trace: usage: trace show [pattern...] | trace diagram [since-ms] | trace draw FILE"
            )
            return
        # several patterns select as several -trace options do (``-`` ones deselect)
        patterns = words[1:] or ["*"]
        dropped = self.control.machine.trace.dropped
        if dropped:
            # memory keeps the recent past only; a whole run is -trace-json's
            self.print(f"trace: {dropped} earlier events are not kept (-trace-json keeps all)")
        lines = self.control.machine.trace.qemu_lines(*patterns)
        if not lines:
            self.print(f"trace: no events matching '{' '.join(patterns)}' recorded")
        if len(lines) > TRACE_PRINT_LIMIT:
            self.print(
                f"trace: the latest {TRACE_PRINT_LIMIT} of {len(lines)} matching events "
                "(a pattern narrows; -trace-json keeps all)"
            )
            lines = lines[-TRACE_PRINT_LIMIT:]
        for line in lines:
            self.print(line)

    def _trace_draw(self, words: list[str]) -> None:
        """``trace draw FILE [...]``: the sequence (or state) diagram so far as an SVG file."""
        try:
            request = parse_draw_words(words)
            text, count = draw_svg(
                self.control.machine.trace.events,
                request.window,
                state_diagram=request.state_diagram,
            )
        except ValueError as err:
            self.print(f"trace: {err} (usage: trace draw {DRAW_USAGE})")
            return
        try:
            with open(request.path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as err:
            self.print(f"trace: could not write '{request.path}': {err.strerror}")
            return
        what = "transitions" if request.state_diagram else "messages"
        self.print(f"trace: {count} {what} drawn in {request.path}")


def _manual_cpu_state(machine: Any, guest: ManualGuest, cpu_index: int) -> str:
    """``online``/``stopped`` of a thread the manual guest runs, and the prompt's vCPU."""
    thread = next((t for t in machine.iter_threads() if t.cpu_index == cpu_index), None)
    if thread is None:
        return "?"
    if thread.vcpu_id in guest.online:
        state = "online"
    elif machine.sched.state(thread.vcpu_id) is not VcpuState.STOPPED:
        state = "starting"
    else:
        state = "stopped"
    return state + ("; rtas calls from here" if thread.vcpu_id == guest.console_vcpu else "")


def _lines(result: Any) -> Iterator[str]:
    if isinstance(result, str):
        yield from result.rstrip("\n").split("\n")
    else:
        for item in result:
            yield str(item).rstrip("\n")


def crlf(text: str) -> str:
    """What human-monitor-command returns: QEMU's monitor turns each \\n into \\r\\n."""
    return text.replace("\n", "\r\n")
