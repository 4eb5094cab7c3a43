"""The command line as QEMU 7.2 reads it: options, in order, into a MachineConfig.

``parse_argv`` reads a qemu-system-ppc64 command line (without the program name)
the way QEMU's option loop does: each option's syntax is checked when it is met,
in order, and errors name the option (``-numa node,foo=1: Invalid parameter
'foo'``). What QEMU interprets later (``-machine`` properties, ``-smp``, ``-cpu``,
``-numa``, ``-global``) stays in the MachineConfig for ``machine.config.startup``.

Project options (not QEMU's): ``-trace-json FILE``, ``-trace-html FILE`` (the
step-through page of the run, written when the machine quits), ``-host-cpu MODEL`` (the
modeled KVM host, see ``accel``), ``-legacy-core-names`` (accept QEMU 2.7-era core
type names such as ``POWER8E-spapr-cpu-core``), ``-guest KIND`` (the reference guest,
see ``machine.board.guest_loader``). The runner's ``-scenario`` and
``-allow-remote-qmp`` are taken out before this parser sees the command line
(``machine.cli.runner``).

Legacy spellings: under the modeled KVM, ``-cpu host,compat=power7`` and ``-global
driver=host-powerpc64-cpu,property=compat,value=power7`` (the CPU property removed
in QEMU 6.0) become ``-machine max-cpu-compat=power7`` with a warning; an explicit
``-machine max-cpu-compat`` wins over them. ``compat`` on other CPU types fails as
in QEMU 7.2 ("can't apply global ..."). ``-global`` of classes outside the model
(not a CPU, spapr core or pseries machine type) is refused at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import attrs

from machine.config.accel import (
    HOST_CORE_TYPE,
    HOST_CPU_TYPE,
    KvmHost,
    lookup_host_model,
)
from machine.config.cli_help import (
    PROG,
    cpu_help_text,
    device_help,
    device_list_lines,
    help_text,
    version_text,
)
from machine.config.machine_types import (
    MACHINE_TYPES,
    machine_help_text,
)
from machine.config.numa import MemoryBackend
from machine.config.objects import SecretObject, parse_object
from machine.config.process_options import (
    BOOT_KEYS,
    CHARDEV_OPTS,
    MON_OPTS,
    MSG_OPTS,
    OVERCOMMIT_OPTS,
    PROCESS_ARG_OPTIONS,
    PROCESS_FLAGS,
    RTC_OPTS,
    SANDBOX_OPTS,
    ProcessOptionParser,
    ProcessOptions,
)
from machine.config.qemu_opts import (
    KeyvalDict,
    OptsList,
    OptsStore,
    OptType,
    QemuOpts,
    QemuWarning,
    keyval_merge,
    parse_keyval,
    parse_keyval_into,
    parse_uint_full,
)
from machine.config.smp import SMP_KEYS
from spapr.cpu_models import (
    CORE_TYPE_SUFFIX,
    CPU_TYPE_SUFFIX,
    by_core_type,
)
from spapr.cpu_names import KNOWN_CPU_TYPES
from spapr.errors import QemuError
from spapr.trace import is_event_pattern

#: What ``-smp help`` prints.
SMP_HELP = "smp-opts options:\n" + "".join(f"  {key}=<num>\n" for key in sorted(SMP_KEYS))


class StartupError(QemuError):
    """A fatal start-up refusal and the diagnostics QEMU printed before it.

    ``stderr_lines`` gives what QEMU writes: the earlier warnings, then the error.
    """

    def __init__(self, cause: QemuError, warnings: Sequence[QemuWarning]) -> None:
        super().__init__(cause.message, cause.error_class, location=cause.location)
        self.cause = cause
        self.warnings = tuple(warnings)

    def report(self, prog: str = PROG) -> str:
        """The error line(s) as QEMU prints them."""
        return self.cause.report(prog)

    def stderr_lines(self, prog: str = PROG) -> list[str]:
        """All of stderr: warnings, then the error (hint lines included)."""
        return [w.report(prog) for w in self.warnings] + [self.report(prog)]


# --------------------------------------------------------------------------
# Option tables

_MEMORY_OPTS = OptsList(
    "memory",
    implied="size",
    merge_lists=True,
    desc={"size": OptType.SIZE, "slots": OptType.NUMBER, "maxmem": OptType.SIZE},
)
_NUMA_OPTS = OptsList("numa", implied="type")
_OBJECT_OPTS = OptsList("object", implied="qom-type")
_DEVICE_OPTS = OptsList("device", implied="driver")
_GLOBAL_OPTS = OptsList(
    "global",
    desc={"driver": OptType.STRING, "property": OptType.STRING, "value": OptType.STRING},
)
_ACCEL_OPTS = OptsList("accel", implied="accel")
_NAME_OPTS = OptsList(
    "name",
    implied="guest",
    merge_lists=True,
    desc={"guest": OptType.STRING, "process": OptType.STRING, "debug-threads": OptType.BOOL},
)
_TRACE_OPTS = OptsList(
    "trace",
    implied="enable",
    desc={"enable": OptType.STRING, "events": OptType.STRING, "file": OptType.STRING},
)

#: Options taking an argument (QEMU's and the project's).
_ARG_OPTIONS = frozenset(
    [
        "M",
        "machine",
        "cpu",
        "smp",
        "m",
        "numa",
        "object",
        "device",
        "global",
        "accel",
        "seed",
        "name",
        "qmp",
        "monitor",
        "incoming",
        "trace",
        "D",
        "display",
        "trace-json",
        "trace-html",
        "host-cpu",
        "guest",
    ]
)
#: Options that take no argument (the migration check compares them too).
FLAG_OPTIONS = frozenset(["enable-kvm", "nographic", "nodefaults", "S", "legacy-core-names"])
#: Options that print a text and exit as soon as they are met (after the first pass).
_HELP_OPTIONS = frozenset(["h", "help", "version"])
#: qemu-system-ppc64 options this emulator does not model (refused as such).
_UNMODELED_OPTIONS = frozenset(
    [
        "kernel",
        "initrd",
        "append",
        "dtb",
        "bios",
        "L",
        "serial",
        "parallel",
        "drive",
        "blockdev",
        "hda",
        "hdb",
        "hdc",
        "hdd",
        "cdrom",
        "fda",
        "fdb",
        "mtdblock",
        "sd",
        "pflash",
        "snapshot",
        "netdev",
        "nic",
        "net",
        "vga",
        "vnc",
        "spice",
        "usb",
        "usbdevice",
        "icount",
        "readconfig",
        "writeconfig",
        "loadvm",
        "no-reboot",
        "full-screen",
        "mem-path",
        "mem-prealloc",
        "action",
        "watchdog-action",
        "preconfig",
        "set",
        "dump-vmstate",
        "only-migratable",
        "plugin",
        "compat",
        "semihosting",
        "semihosting-config",
        "prom-env",
        "audio",
        "audio-help",
        "fsdev",
        "virtfs",
        "iscsi",
        "debugcon",
        "tpmdev",
        "qtest",
        "qtest-log",
        "add-fd",
        "qmp-pretty",
        "portrait",
        "rotate",
        "g",
        "echr",
        "k",
        "s",
        "gdb",
        "d",
        "dfilter",
        "singlestep",
        "acpitable",
        "smbios",
        "fw_cfg",
        "option-rom",
        "no-acpi",
        "no-hpet",
        "enable-sync-profile",
        "old-param",
        "xen-domid",
        "xen-attach",
        "xen-domid-restrict",
        "win2k-hack",
        "no-fd-bootchk",
        "alt-grab",
        "ctrl-grab",
        "sdl",
        "curses",
        "nouserconfig",
    ]
)


#: The unmodeled options that take no argument (the first pass must know to skip one).
_UNMODELED_FLAGS = frozenset(
    [
        "snapshot",
        "usb",
        "portrait",
        "full-screen",
        "no-reboot",
        "mem-prealloc",
        "preconfig",
        "only-migratable",
        "no-acpi",
        "no-hpet",
        "enable-sync-profile",
        "old-param",
        "xen-attach",
        "xen-domid-restrict",
        "win2k-hack",
        "no-fd-bootchk",
        "alt-grab",
        "ctrl-grab",
        "sdl",
        "curses",
        "nouserconfig",
        "singlestep",
        "s",
        "audio-help",
    ]
)


@attrs.frozen
class DeviceSpec:
    """A ``-device`` option, kept raw for the machine's cold-plug step.

    ``location`` is the text QEMU puts before its errors (``-device <spec>``);
    ``props`` the key/value pairs in order (``driver`` included), or ``json`` for
    the JSON form.
    """

    text: str
    location: str
    props: tuple[tuple[str, str], ...] = ()
    id: str | None = None
    json: Mapping[str, object] | None = None

    @property
    def driver(self) -> str | None:
        """The device type named by the option."""
        if self.json is not None:
            driver = self.json.get("driver")
            return driver if isinstance(driver, str) else None
        for key, value in self.props:
            if key == "driver":
                return value
        return None


@attrs.frozen
class GlobalSpec:
    """A ``-global driver.property=value`` (or a ``-cpu`` feature, which QEMU makes one)."""

    driver: str
    property: str
    value: str
    location: str | None


@attrs.frozen
class TraceSpec:
    """A ``-trace`` option: an event pattern, an events file and/or an output file."""

    enable: str | None
    events: str | None
    file: str | None
    location: str


@attrs.define
class MachineConfig:
    """Everything ``parse_argv`` read, still uninterpreted where QEMU defers it."""

    argv: tuple[str, ...] = ()
    machine_opts: KeyvalDict = attrs.field(factory=dict)
    memory: OptsStore = attrs.field(factory=lambda: OptsStore(_MEMORY_OPTS))
    cpu_option: str | None = None
    numa: list[QemuOpts] = attrs.field(factory=list)
    objects: list[MemoryBackend] = attrs.field(factory=list)
    #: ``-object secret`` (libvirt's master key): read at start-up, used by nothing modeled.
    secrets: list[SecretObject] = attrs.field(factory=list)
    devices: list[DeviceSpec] = attrs.field(factory=list)
    globals: list[GlobalSpec] = attrs.field(factory=list)
    accel_opts: list[QemuOpts] = attrs.field(factory=list)
    nographic: bool = False
    display: str | None = None
    nodefaults: bool = False
    freeze: bool = False
    seed: int | None = None
    name: str | None = None
    qmp: list[str] = attrs.field(factory=list)
    monitors: list[str] = attrs.field(factory=list)
    incoming: str | None = None
    traces: list[TraceSpec] = attrs.field(factory=list)
    log_file: str | None = None
    trace_json: str | None = None
    #: ``-trace-html FILE``: the step-through page of the run, written at quit.
    trace_html: str | None = None
    host_cpu: str = "POWER9"
    legacy_core_names: bool = False
    guest: str | None = None
    help_text: str | None = None
    #: What a help request printed on stderr (QEMU still exits 0 after it).
    help_error: str | None = None
    warnings: list[QemuWarning] = attrs.field(factory=list)
    #: The process-level options (monitor chardevs, -daemonize, -pidfile, -no-shutdown, ...).
    process: ProcessOptions = attrs.field(factory=ProcessOptions)

    @property
    def kvm_host(self) -> KvmHost:
        """The modeled KVM host this command line asks for."""
        return KvmHost(lookup_host_model(self.host_cpu))


def _option_name(word: str) -> str:
    """The option a word names: QEMU takes ``--opt`` as ``-opt``."""
    return word[2:] if word.startswith("--") else word[1:]


_OPT_TYPE_NAMES = {
    OptType.STRING: "string",
    OptType.BOOL: "boolean",
    OptType.NUMBER: "number",
    OptType.SIZE: "size",
}


def command_line_options() -> list[tuple[str, list[tuple[str, str]]]]:
    """The option lists this emulator parses and their described keys (name, type).

    ``query-command-line-options`` answers from this; a list without keys takes any
    (its consumer checks them), as QEMU shows it.
    """
    lists = [
        OptsList("machine"),
        _ACCEL_OPTS,
        OptsList("boot-opts", desc=dict.fromkeys(BOOT_KEYS, OptType.STRING)),
        CHARDEV_OPTS,
        _DEVICE_OPTS,
        _GLOBAL_OPTS,
        _MEMORY_OPTS,
        MON_OPTS,
        MSG_OPTS,
        _NAME_OPTS,
        _NUMA_OPTS,
        _OBJECT_OPTS,
        OVERCOMMIT_OPTS,
        RTC_OPTS,
        SANDBOX_OPTS,
        OptsList("smp-opts", desc=dict.fromkeys(sorted(SMP_KEYS), OptType.NUMBER)),
        _TRACE_OPTS,
    ]
    out = []
    for opts_list in lists:
        desc = dict(opts_list.desc)
        if opts_list.name == "boot-opts":
            desc.update({"menu": OptType.BOOL, "strict": OptType.BOOL})
            desc.update({"splash-time": OptType.NUMBER, "reboot-timeout": OptType.NUMBER})
        out.append((opts_list.name, [(k, _OPT_TYPE_NAMES[t]) for k, t in desc.items()]))
    return out


def _first_pass(argv: Sequence[str]) -> None:
    """QEMU's first look at the line: every option must exist and have its argument.

    This runs before any option acts, so ``-h -bogus`` is "invalid option", not help.
    Words that are not options (QEMU's disk images) wait for the second pass.
    """
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-"):
            continue
        name = _option_name(word)
        if name in FLAG_OPTIONS or name in _HELP_OPTIONS or name in _UNMODELED_FLAGS:
            continue
        if name in PROCESS_FLAGS:
            continue
        if name in _ARG_OPTIONS or name in _UNMODELED_OPTIONS or name in PROCESS_ARG_OPTIONS:
            if i >= len(argv):
                raise QemuError("requires an argument", location=word)
            i += 1
            continue
        raise QemuError("invalid option", location=word)


def _wants_device_help(spec: DeviceSpec) -> bool:
    """QEMU's device_help_func test: ``-device help`` or a ``help``/``?`` option."""
    if spec.json is not None:
        return False
    driver = spec.driver
    if driver in ("help", "?"):
        return True
    return driver is not None and any(key in ("help", "?") for key, _ in spec.props)


def _device_help(config: MachineConfig, spec: DeviceSpec) -> None:
    """Set the help text (or the error) that ``-device ...help`` prints."""
    driver = spec.driver or ""
    if driver in ("help", "?"):
        config.help_text = "\n".join(device_list_lines()) + "\n"
        return
    lines, error = device_help(driver, legacy_core_names=config.legacy_core_names)
    config.help_text = "".join(line + "\n" for line in lines)
    if error is not None:
        config.help_error = f"{spec.location}: {error}"


def parse_argv(argv: Sequence[str]) -> MachineConfig:
    """Read a command line (without the program name); StartupError on refusal.

    If ``help_text`` is set on the result QEMU would print it (and ``help_error``
    on stderr) and exit 0 without starting. ``-h``, ``-version`` and ``-M help``
    act when met, so the rest of the line is not read; ``-cpu help`` and ``-device
    help`` act once every option is read (QEMU's qemu_process_help_options), the
    CPU list first.
    """
    config = MachineConfig(argv=tuple(argv))
    stores = {
        "numa": OptsStore(_NUMA_OPTS),
        "object": OptsStore(_OBJECT_OPTS),
        "device": OptsStore(_DEVICE_OPTS),
        "global": OptsStore(_GLOBAL_OPTS),
        "accel": OptsStore(_ACCEL_OPTS),
        "name": OptsStore(_NAME_OPTS),
        "trace": OptsStore(_TRACE_OPTS),
    }
    process = ProcessOptionParser(config.process, config.warnings)
    i = 0
    try:
        _first_pass(argv)
        while i < len(argv):
            word = argv[i]
            if not word.startswith("-"):
                raise QemuError("disk images are not modeled by this emulator", location=word)
            name = _option_name(word)
            if name in _HELP_OPTIONS:
                config.help_text = version_text() if name == "version" else help_text()
                return config
            if name in _ARG_OPTIONS:
                if i + 1 >= len(argv):
                    raise QemuError("requires an argument", location=word)
                optarg = argv[i + 1]
                location = f"{word} {optarg}"
                i += 2
                _option(config, stores, name, optarg, location)
                if config.help_text is not None and name not in ("cpu", "device"):
                    return config
            elif name in FLAG_OPTIONS:
                i += 1
                _flag(config, name)
            elif name in PROCESS_FLAGS:
                i += 1
                process.flag(name)
            elif name in PROCESS_ARG_OPTIONS:
                optarg = argv[i + 1]
                i += 2
                process.option(name, optarg, f"{word} {optarg}")
            elif name in _UNMODELED_OPTIONS:
                raise QemuError("option not modeled by this emulator", location=word)
            else:
                raise QemuError("invalid option", location=word)
    except QemuError as err:
        raise StartupError(err, config.warnings) from None
    if config.help_text is None:
        wanted = next((d for d in config.devices if _wants_device_help(d)), None)
        if wanted is not None:
            _device_help(config, wanted)
    return config


def _flag(config: MachineConfig, name: str) -> None:
    if name == "enable-kvm":
        config.machine_opts["accel"] = "kvm"
    elif name == "nographic":
        config.machine_opts["graphics"] = "off"
        config.nographic = True
        config.display = "none"
    elif name == "nodefaults":
        config.nodefaults = True
    elif name == "S":
        config.freeze = True
    elif name == "legacy-core-names":
        config.legacy_core_names = True


def _option(
    config: MachineConfig, stores: dict[str, OptsStore], name: str, arg: str, location: str
) -> None:
    warnings = config.warnings
    if name in ("M", "machine"):
        try:
            result = parse_keyval_into(config.machine_opts, arg, "type")
        except QemuError as err:
            raise QemuError(err.message, location=location) from None
        if result.help:
            if "type" in config.machine_opts:
                raise QemuError(
                    "listing machine properties is not modeled by this emulator",
                    location=location,
                )
            config.help_text = machine_help_text()
    elif name == "smp":
        try:
            result = parse_keyval(arg, "cpus")
        except QemuError as err:
            raise QemuError(err.message, location=location) from None
        if result.help:
            config.help_text = SMP_HELP
            return
        try:
            keyval_merge(config.machine_opts, {"smp": result.values})
        except QemuError as err:
            raise QemuError(err.message, location=location) from None
    elif name == "m":
        config.memory.parse(arg, location=location, warnings=warnings)
    elif name == "cpu":
        # the last -cpu counts: a later model cancels an earlier "help"
        config.help_text = cpu_help_text() if arg in ("help", "?") else None
        config.cpu_option = arg
    elif name == "numa":
        config.numa.append(stores["numa"].parse(arg, location=location, warnings=warnings))
    elif name == "object":
        _object_option(config, stores["object"], arg, location)
    elif name == "device":
        config.devices.append(_device_option(stores["device"], arg, location, warnings))
    elif name == "global":
        config.globals.append(_global_option(stores["global"], arg, location, warnings))
    elif name == "accel":
        opts = stores["accel"].parse(arg, location=location, warnings=warnings)
        accel = opts.get("accel")
        if accel is None or accel in ("help", "?"):
            raise QemuError(
                "listing accelerators is not modeled by this emulator", location=location
            )
        config.accel_opts.append(opts)
    elif name == "seed":
        seed = parse_uint_full(arg)
        if seed is None:
            raise QemuError(f"Invalid seed number: {arg}", location=location)
        config.seed = seed
    elif name == "name":
        opts = stores["name"].parse(arg, location=location, warnings=warnings)
        config.name = opts.get("guest")
    elif name == "qmp":
        config.qmp.append(arg)
    elif name == "monitor":
        if not arg.startswith("none"):
            config.monitors.append(arg)
    elif name == "incoming":
        config.incoming = arg
    elif name == "trace":
        opts = stores["trace"].parse(arg, location=location, warnings=warnings)
        if opts.get("enable") in ("help", "?"):
            raise QemuError(
                "listing trace events is not modeled by this emulator", location=location
            )
        enable = opts.get("enable")
        if enable is not None and _never_an_event(enable):
            warnings.append(
                QemuWarning(f"trace event '{enable.removeprefix('-')}' does not exist", location)
            )
        config.traces.append(TraceSpec(enable, opts.get("events"), opts.get("file"), location))
    elif name == "D":
        config.log_file = arg
    elif name == "display":
        if arg != "none":
            raise QemuError("only '-display none' is modeled by this emulator", location=location)
        config.display = arg
    elif name == "trace-json":
        config.trace_json = arg
    elif name == "trace-html":
        config.trace_html = arg
    elif name == "host-cpu":
        try:
            lookup_host_model(arg)
        except QemuError as err:
            raise QemuError(err.message.removeprefix("-host-cpu: "), location=location) from None
        config.host_cpu = arg
    elif name == "guest":
        config.guest = arg


def _object_option(config: MachineConfig, store: OptsStore, arg: str, location: str) -> None:
    obj = parse_object(store, arg, location, config.warnings)
    if isinstance(obj, SecretObject):
        config.secrets.append(obj)
    else:
        config.objects.append(obj)


def _never_an_event(enable: str) -> bool:
    """A ``-trace`` name (not a pattern) no QEMU event can have: not a C identifier.

    QEMU warns for every name it has no event for; this emulator knows only the
    events it models, so it warns only where no QEMU build could have the event.
    """
    name = enable.removeprefix("-")
    return not is_event_pattern(name) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None


def _device_option(
    store: OptsStore, arg: str, location: str, warnings: list[QemuWarning]
) -> DeviceSpec:
    if arg.startswith("{"):
        try:
            data = json.loads(arg)
        except ValueError:
            raise QemuError("JSON parse error, invalid -device object", location=location) from None
        if not isinstance(data, dict):
            raise QemuError("-device JSON must be an object", location=location)
        ident = data.get("id")
        return DeviceSpec(arg, location, id=ident if isinstance(ident, str) else None, json=data)
    opts = store.parse(arg, location=location, warnings=warnings)
    return DeviceSpec(arg, location, tuple((o.name, o.text) for o in opts.opts), opts.id)


def _global_option(
    store: OptsStore, arg: str, location: str, warnings: list[QemuWarning]
) -> GlobalSpec:
    short = re.fullmatch(r"([^.=]{1,63})\.([^=]{1,63})=(.*)", arg, re.S)
    if short:
        driver, prop, value = short.group(1), short.group(2), short.group(3)
    else:
        opts = store.parse(arg, location=location, warnings=warnings, permit_abbrev=False)
        got = (opts.get("driver"), opts.get("property"), opts.get("value"))
        if None in got:
            raise QemuError(
                "options 'driver', 'property', and 'value' are required", location=location
            )
        driver, prop, value = (str(x) for x in got)
    if not known_global_driver(driver):
        joined = f"{driver}.{prop}"
        # QEMU splits the short form at the first dot, so "power8_v2.0-powerpc64-cpu.x"
        # names a class "power8_v2" that does not exist: it only warns at the end.
        if not (short and any(known_global_driver(joined[:i]) for i in _dots(joined))):
            raise QemuError(
                f"global properties of '{driver}' are not modeled by this emulator "
                "(CPU, spapr core and pseries machine types only)",
                location=location,
            )
    return GlobalSpec(driver, prop, value, location)


def _dots(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if ch == "."]


CORE_PARENTS = ("spapr-cpu-core", "cpu-core")
_CPU_PARENTS = ("powerpc64-cpu",)
_MACHINE_PARENTS = ("spapr-machine", "machine")


def known_global_driver(driver: str) -> bool:
    """Whether ``-global DRIVER.prop=...`` names a class this emulator models."""
    if driver in CORE_PARENTS or driver in _CPU_PARENTS or driver in _MACHINE_PARENTS:
        return True
    if driver in (HOST_CPU_TYPE, HOST_CORE_TYPE):
        return True
    if driver.endswith(CPU_TYPE_SUFFIX):
        return driver.removesuffix(CPU_TYPE_SUFFIX) in KNOWN_CPU_TYPES
    if driver.endswith(CORE_TYPE_SUFFIX):
        return by_core_type(driver) is not None
    return any(driver == m.qom_type for m in MACHINE_TYPES)


__all__ = [
    "CORE_PARENTS",
    "PROG",
    "DeviceSpec",
    "GlobalSpec",
    "MachineConfig",
    "StartupError",
    "TraceSpec",
    "command_line_options",
    "known_global_driver",
    "parse_argv",
]
