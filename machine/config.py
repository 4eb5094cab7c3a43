"""The command line and machine start-up, in QEMU 7.2's order and with its texts.

``parse_argv`` reads a qemu-system-ppc64 command line (without the program name)
the way QEMU's option loop does: each option's syntax is checked when it is met,
in order, and errors name the option (``-numa node,foo=1: Invalid parameter
'foo'``). ``startup`` then performs what ``qemu_init`` does before devices are
created: select the machine version, set the ``-machine``/``-smp``/``-m`` properties
(in QDict order), configure the accelerator, resolve ``-cpu``, interpret ``-numa``,
and run the pseries board checks (RMA, VSMT, threads, interrupt controller, node
memory, CPU counts, boot cores). The lead's code then cold-plugs ``-device``
options, calls ``creation_done_warnings`` and, at every machine reset,
``reset_warnings`` (cap checks; their errors are fatal at the first reset).

Project options (not QEMU's): ``-trace-json FILE``, ``-host-cpu MODEL`` (the
modeled KVM host, see ``accel``), ``-legacy-core-names`` (accept QEMU 2.7-era core
type names such as ``POWER8E-spapr-cpu-core``), ``-guest KIND`` (the reference guest,
see ``guest_loader``). The runner's ``-scenario`` and ``-allow-remote-qmp`` are
taken out before this parser sees the command line (``machine.runner``).

Legacy spellings: under the modeled KVM, ``-cpu host,compat=power7`` and ``-global
driver=host-powerpc64-cpu,property=compat,value=power7`` (the CPU property removed
in QEMU 6.0) become ``-machine max-cpu-compat=power7`` with a warning; an explicit
``-machine max-cpu-compat`` wins over them. ``compat`` on other CPU types fails as
in QEMU 7.2 ("can't apply global ..."). ``-global`` of classes outside the model
(not a CPU, spapr core or pseries machine type) is refused at once.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence

import attrs

from machine.accel import (
    HOST_CORE_TYPE,
    HOST_CPU_TYPE,
    Accelerator,
    CpuSelection,
    KvmHost,
    configure_accelerator,
    kvm_init_checks,
    kvm_vcpu_refusal,
    lookup_host_model,
    parse_cpu_option,
)
from machine.caps import (
    CAPS_BY_PROPERTY,
    KvmHostCaps,
    SpaprCaps,
    apply_caps,
    cpu_supports_compat,
    init_caps,
    parse_cap_value,
)
from machine.machine_types import (
    DEFAULT_MACHINE,
    MACHINE_TYPES,
    MIB,
    MachineType,
    find_machine,
    machine_help_text,
)
from machine.numa import (
    MemoryBackend,
    NumaState,
    create_memory_backend,
    parse_memory_backend,
    read_numa_option,
)
from machine.qemu_opts import (
    U64_MAX,
    KeyvalDict,
    KeyvalValue,
    OptsList,
    OptsStore,
    OptType,
    QemuOpts,
    QemuWarning,
    SizeError,
    ghash_order,
    id_wellformed,
    invalid_value,
    keyval_merge,
    parse_bool,
    parse_keyval,
    parse_keyval_into,
    parse_size,
    parse_uint_full,
    qdict_order,
    strtou64,
)
from machine.smp import SMP_KEYS, SmpTopology, read_smp_keys, resolve_smp
from machine.topology import (
    Topology,
    cpu_count_checks,
    slot_count,
    vsmt_checks,
)
from spapr.cpu_models import (
    CORE_TYPE_SUFFIX,
    CPU_TYPE_SUFFIX,
    CompatMode,
    by_core_type,
    compat_mode,
)
from spapr.cpu_names import KNOWN_CPU_TYPES
from spapr.errors import QemuError

PROG = "qemu-system-ppc64"
GIB = 1 << 30
TIB = 1 << 40
#: SLOF needs at least this much Real Mode Area.
MIN_RMA_SLOF = 128 * MIB
#: LMB size: RAM and NUMA node sizes must be multiples of it (dr_lmb_enabled).
SPAPR_MEMORY_BLOCK_SIZE = 256 * MIB
SPAPR_MAX_RAM_SLOTS = 32
#: KVM_USER_MEM_SLOTS on Book3S: QEMU allows half of them for hotplugged DIMMs.
KVM_MEMSLOTS = 512
RAM_ALIGN = 8192

#: What ``-smp help`` prints.
SMP_HELP = "smp-opts options:\n" + "".join(f"  {key}=<num>\n" for key in sorted(SMP_KEYS))

COMPAT_DEPRECATION = (
    "CPU property 'compat' was removed in QEMU 6.0; using -machine max-cpu-compat={}"
)


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
        "host-cpu",
        "guest",
    ]
)
#: Options that take no argument (the migration check compares them too).
FLAG_OPTIONS = frozenset(["enable-kvm", "nographic", "nodefaults", "S", "legacy-core-names"])
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
        "chardev",
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
        "boot",
        "rtc",
        "icount",
        "readconfig",
        "writeconfig",
        "daemonize",
        "pidfile",
        "loadvm",
        "no-reboot",
        "no-shutdown",
        "full-screen",
        "mem-path",
        "mem-prealloc",
        "overcommit",
        "msg",
        "action",
        "watchdog-action",
        "preconfig",
        "set",
        "version",
        "h",
        "help",
        "dump-vmstate",
        "only-migratable",
        "plugin",
        "compat",
        "semihosting",
        "semihosting-config",
        "uuid",
        "prom-env",
        "mon",
        "audiodev",
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
        "sandbox",
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
    host_cpu: str = "POWER9"
    legacy_core_names: bool = False
    guest: str | None = None
    help_text: str | None = None
    warnings: list[QemuWarning] = attrs.field(factory=list)

    @property
    def kvm_host(self) -> KvmHost:
        """The modeled KVM host this command line asks for."""
        return KvmHost(lookup_host_model(self.host_cpu))


def parse_argv(argv: Sequence[str]) -> MachineConfig:
    """Read a command line (without the program name); StartupError on refusal.

    If ``help_text`` is set on the result (``-M help``, ``-smp help``) QEMU would
    print it and exit 0 without starting: the rest of the line is not read.
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
    i = 0
    try:
        while i < len(argv):
            word = argv[i]
            if not word.startswith("-"):
                raise QemuError("disk images are not modeled by this emulator", location=word)
            name = word[2:] if word.startswith("--") else word[1:]
            if name in _ARG_OPTIONS:
                if i + 1 >= len(argv):
                    raise QemuError("requires an argument", location=word)
                optarg = argv[i + 1]
                location = f"{word} {optarg}"
                i += 2
                _option(config, stores, name, optarg, location)
                if config.help_text is not None:
                    return config
            elif name in FLAG_OPTIONS:
                i += 1
                _flag(config, name)
            elif name in _UNMODELED_OPTIONS:
                raise QemuError("option not modeled by this emulator", location=word)
            else:
                raise QemuError("invalid option", location=word)
    except QemuError as err:
        raise StartupError(err, config.warnings) from None
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
        if arg in ("help", "?"):
            raise QemuError("listing CPU models is not modeled by this emulator", location=location)
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
        config.traces.append(
            TraceSpec(opts.get("enable"), opts.get("events"), opts.get("file"), location)
        )
    elif name == "D":
        config.log_file = arg
    elif name == "display":
        if arg != "none":
            raise QemuError("only '-display none' is modeled by this emulator", location=location)
        config.display = arg
    elif name == "trace-json":
        config.trace_json = arg
    elif name == "host-cpu":
        try:
            lookup_host_model(arg)
        except QemuError as err:
            raise QemuError(err.message.removeprefix("-host-cpu: "), location=location) from None
        config.host_cpu = arg
    elif name == "guest":
        config.guest = arg


def _object_option(config: MachineConfig, store: OptsStore, arg: str, location: str) -> None:
    if arg.startswith("{"):
        raise QemuError("JSON -object is not modeled by this emulator", location=location)
    opts = store.parse(arg, location=location, warnings=config.warnings)
    config.objects.append(parse_memory_backend(opts))


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
    if not _known_global_driver(driver):
        joined = f"{driver}.{prop}"
        # QEMU splits the short form at the first dot, so "power8_v2.0-powerpc64-cpu.x"
        # names a class "power8_v2" that does not exist: it only warns at the end.
        if not (short and any(_known_global_driver(joined[:i]) for i in _dots(joined))):
            raise QemuError(
                f"global properties of '{driver}' are not modeled by this emulator "
                "(CPU, spapr core and pseries machine types only)",
                location=location,
            )
    return GlobalSpec(driver, prop, value, location)


def _dots(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if ch == "."]


_CORE_PARENTS = ("spapr-cpu-core", "cpu-core")
_CPU_PARENTS = ("powerpc64-cpu",)
_MACHINE_PARENTS = ("spapr-machine", "machine")


def _known_global_driver(driver: str) -> bool:
    if driver in _CORE_PARENTS or driver in _CPU_PARENTS or driver in _MACHINE_PARENTS:
        return True
    if driver in (HOST_CPU_TYPE, HOST_CORE_TYPE):
        return True
    if driver.endswith(CPU_TYPE_SUFFIX):
        return driver.removesuffix(CPU_TYPE_SUFFIX) in KNOWN_CPU_TYPES
    if driver.endswith(CORE_TYPE_SUFFIX):
        return by_core_type(driver) is not None
    return any(driver == m.qom_type for m in MACHINE_TYPES)


# --------------------------------------------------------------------------
# Start-up


@attrs.frozen
class MachineSetup:
    """The machine as configured at the end of board init (before ``-device``).

    ``warnings`` are all diagnostics printed so far, in order (those read from the
    command line first). ``core_globals`` are ``-global`` settings of spapr core
    types for the core device to apply.
    """

    config: MachineConfig
    machine: MachineType
    accel: Accelerator
    cpu: CpuSelection
    topology: Topology
    caps: SpaprCaps
    max_compat: CompatMode | None
    ram_size: int
    maxram_size: int
    ram_slots: int
    numa_node_mem: tuple[int, ...]
    numa_distances: tuple[tuple[int, ...], ...] | None
    memory_backends: tuple[MemoryBackend, ...]
    ic_mode: str
    resize_hpt: str
    modern_hotplug_events: bool
    dumpdtb: str | None
    kvm_type: str
    machine_props: Mapping[str, KeyvalValue]
    core_globals: tuple[GlobalSpec, ...]
    cpu_globals: tuple[GlobalSpec, ...]
    unused_global_warnings: tuple[QemuWarning, ...]
    warnings: tuple[QemuWarning, ...]

    @property
    def core_type(self) -> str:
        """The QOM type of this machine's CPU cores."""
        return self.topology.core_type

    @property
    def kvm_host_caps(self) -> KvmHostCaps | None:
        host = self.accel.kvm_host
        return None if host is None else host.caps


def startup(config: MachineConfig) -> MachineSetup:
    """Validate and build the machine as ``qemu_init`` does up to board init.

    Raises StartupError (a QemuError) carrying QEMU's text, location and the
    warnings printed before it.
    """
    run = _Startup(config)
    try:
        return run.run()
    except QemuError as err:
        raise StartupError(err, run.warnings) from None


def creation_done_warnings(setup: MachineSetup) -> list[QemuWarning]:
    """``qdev_prop_check_globals``: warnings about ``-global`` that matched nothing."""
    return list(setup.unused_global_warnings)


def reset_warnings(setup: MachineSetup) -> list[QemuWarning]:
    """What each machine reset prints (``spapr_caps_apply``), or QemuError.

    Then ``ppc_set_compat_all``: a ``max-cpu-compat`` the CPU cannot run is refused.
    Under TCG the default caps give the four "TCG doesn't support requested feature"
    warnings.
    """
    warnings: list[QemuWarning] = []
    model = setup.cpu.model
    assert model is not None
    try:
        apply_caps(
            setup.caps,
            model,
            setup.max_compat,
            kvm_host=setup.kvm_host_caps,
            warnings=warnings,
        )
        if setup.max_compat is not None and not cpu_supports_compat(model, setup.max_compat):
            raise QemuError(
                f"Compatibility PVR 0x{setup.max_compat.logical_pvr:08x} not valid for CPU"
            )
    except QemuError as err:
        raise StartupError(err, warnings) from None
    return warnings


@attrs.define
class _Startup:
    """One run of ``startup``: the machine state QEMU builds, step by step."""

    config: MachineConfig
    warnings: list[QemuWarning] = attrs.field(init=False)
    machine: MachineType = DEFAULT_MACHINE
    props: dict[str, KeyvalValue] = attrs.field(factory=dict)
    smp: SmpTopology | None = None
    ram_size: int = 0
    maxram_size: int = 0
    ram_slots: int = 0
    user_vsmt: int | None = None
    max_compat: CompatMode | None = None
    max_compat_set: bool = False
    user_caps: dict[str, int] = attrs.field(factory=dict)
    ic_mode: str | None = None
    resize_hpt: str = "default"
    modern_hotplug_events: bool = True
    dumpdtb: str | None = None
    kvm_type: str = "auto"
    accel_name: str | None = None
    accel_sugar: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.warnings = list(self.config.warnings)

    def run(self) -> MachineSetup:
        config = self.config
        opts: KeyvalDict = copy.deepcopy(config.machine_opts)
        self._merge_memory_options(opts)
        type_value = opts.pop("type", None)
        self.machine = find_machine(type_value) if isinstance(type_value, str) else DEFAULT_MACHINE
        self.ram_size = self.maxram_size = self.machine.default_ram_size
        self.modern_hotplug_events = self.machine.default_modern_hotplug_events
        if self.machine.default_machine_opts:
            defaults = parse_keyval(self.machine.default_machine_opts).values
            for key in qdict_order(defaults):
                self._set_property(key, defaults[key])
        self._legacy_machine_options(opts)
        for key in qdict_order(opts):
            self._set_property(key, opts[key])
        if self.smp is None:
            self.smp = SmpTopology.machine_default(self.machine)
        smp = self.smp

        accel = configure_accelerator(
            config.accel_opts, self.accel_name, config.kvm_host, self.warnings
        )
        if accel.kvm_host is not None and self.accel_sugar:
            accel = attrs.evolve(accel, props=accel.props + tuple(self.accel_sugar.items()))
        if accel.is_kvm:
            location = config.accel_opts[0].location if config.accel_opts else None
            kvm_init_checks(
                accel,
                kvm_type=self.kvm_type,
                smp_cpus=smp.cpus,
                max_cpus=smp.max_cpus,
                location=location,
                warnings=self.warnings,
            )

        backends: dict[str, MemoryBackend] = {}
        for backend in config.objects:
            create_memory_backend(backend)
            backends[backend.id] = backend

        cpu = parse_cpu_option(config.cpu_option, self.machine, accel)
        globals_ = self._cpu_globals(cpu, accel)
        core_type = cpu.core_type

        def ensure_slots(location: str | None) -> None:
            if core_type is None:
                raise QemuError("Unable to find sPAPR CPU Core definition", location=location)

        numa = NumaState(
            max_cpus=smp.max_cpus,
            threads=smp.threads,
            cores=smp.cores,
            slot_count=slot_count(self.machine, smp),
            ensure_slots=ensure_slots,
            numa_mem_supported=self.machine.numa_mem_supported,
        )
        for numa_opts in config.numa:
            numa.apply(read_numa_option(numa_opts), backends, self.warnings)

        # ---- machine_run_board_init
        if not numa.have_memdevs and self.machine.default_ram_id in backends:
            raise QemuError(
                f"object name '{self.machine.default_ram_id}' is reserved for the default RAM"
                " backend, it can't be used for any other purposes. Change the object's 'id'"
                " to something else"
            )
        numa.complete(self.ram_size)
        slot_nodes = numa.finish_cpu_init(self.warnings)
        assert core_type is not None and cpu.model is not None

        # ---- spapr_machine_init
        caps = init_caps(self.machine, cpu.model, self.max_compat, self.user_caps, kvm=accel.is_kvm)
        self._rma_check(numa)
        vsmt = vsmt_checks(self.machine, smp.threads, self.user_vsmt, accel, self.warnings)
        ic_mode = self._irq_init(cpu, accel)
        if self.machine.dr_lmb_enabled:
            self._validate_node_memory(numa)
        cpu_count_checks(self.machine, smp)
        topology = Topology(self.machine, smp, vsmt, core_type, slot_nodes, numa.num_nodes)
        self._boot_core_checks(topology, cpu, accel, globals_)
        self._ram_slot_check(accel)

        core_globals, cpu_globals, unused = globals_
        return MachineSetup(
            config=config,
            machine=self.machine,
            accel=accel,
            cpu=cpu,
            topology=topology,
            caps=caps,
            max_compat=self.max_compat,
            ram_size=self.ram_size,
            maxram_size=self.maxram_size,
            ram_slots=self.ram_slots,
            numa_node_mem=numa.node_memory(),
            numa_distances=numa.distance_table(),
            memory_backends=tuple(config.objects),
            ic_mode=ic_mode,
            resize_hpt=(
                self.machine.resize_hpt_default if self.resize_hpt == "default" else self.resize_hpt
            ),
            modern_hotplug_events=self.modern_hotplug_events,
            dumpdtb=self.dumpdtb,
            kvm_type=self.kvm_type,
            machine_props=dict(self.props),
            core_globals=tuple(core_globals),
            cpu_globals=tuple(cpu_globals),
            unused_global_warnings=tuple(unused),
            warnings=tuple(self.warnings),
        )

    # ---- -m and legacy machine options

    def _merge_memory_options(self, opts: KeyvalDict) -> None:
        instances = self.config.memory.instances
        if not instances:
            return
        mem = instances[0]
        prop: KeyvalDict = {}
        size = mem.get_value("size")
        if isinstance(size, int) and size != 0:
            text = mem.get("size") or ""
            prop["size"] = text + "M" if text[-1:].isdigit() else text
        maxmem = mem.get("maxmem")
        if maxmem is not None:
            prop["max-size"] = maxmem
        slots = mem.get("slots")
        if slots is not None:
            prop["slots"] = slots
        keyval_merge(opts, {"memory": prop})

    def _legacy_machine_options(self, opts: KeyvalDict) -> None:
        for key in qdict_order(opts):
            if "_" not in key:
                continue
            new_key = key.replace("_", "-")
            if new_key in opts:
                raise QemuError(f"Conflict between '{key}' and '{new_key}'")
            opts[new_key] = opts.pop(key)
        accel = opts.pop("accel", None)
        if isinstance(accel, str):
            self.accel_name = accel
        for key in ("kernel-irqchip", "kvm-shadow-mem"):
            value = opts.pop(key, None)
            if isinstance(value, str):
                self.accel_sugar[key] = value
        if "igd-passthru" in opts:
            raise QemuError("-machine igd-passthru (Xen) is not modeled by this emulator")
        if "memory-backend" in opts:
            raise QemuError("-machine memory-backend is not modeled by this emulator")

    # ---- machine properties

    def _set_property(self, key: str, value: KeyvalValue) -> None:
        setter = _PROPERTY_SETTERS.get(key)
        if setter is None:
            if key in _UNMODELED_PROPERTIES:
                raise QemuError(f"-machine {key} is not modeled by this emulator")
            if key == "vfio-no-msix-emulation":
                raise QemuError(f"Property '{self.machine.qom_type}.{key}' is not writable")
            cap = CAPS_BY_PROPERTY.get(key)
            if cap is None:
                raise QemuError(f"Property '{self.machine.qom_type}.{key}' not found")
            self.user_caps[cap.name] = parse_cap_value(cap, _scalar(key, value))
            return
        setter(self, key, value)
        self.props[key] = value

    def _prop_smp(self, key: str, value: KeyvalValue) -> None:
        if not isinstance(value, dict):
            raise QemuError(f"Invalid parameter type for '{key}', expected: object")
        request = read_smp_keys(value, prefix=key)
        self.smp = resolve_smp(request, self.machine, self.warnings)

    def _prop_memory(self, key: str, value: KeyvalValue) -> None:
        if not isinstance(value, dict):
            raise QemuError(f"Invalid parameter type for '{key}', expected: object")
        fields: dict[str, int] = {}
        for name in ("size", "max-size", "slots"):
            if name not in value:
                continue
            text = _scalar(f"{key}.{name}", value[name])
            if name == "slots":
                number = _keyval_uint(f"{key}.{name}", text)
                fields[name] = number
            else:
                try:
                    fields[name] = parse_size(text, warnings=self.warnings)
                except SizeError:
                    raise QemuError(invalid_value(f"{key}.{name}", "size")) from None
        extra = [k for k in value if k not in ("size", "max-size", "slots")]
        if extra:
            first = ghash_order([k for k in qdict_order(value) if k in extra])[0]
            raise QemuError(f"Parameter '{key}.{first}' is unexpected")
        size = fields.get("size", self.machine.default_ram_size)
        size = -(-size // RAM_ALIGN) * RAM_ALIGN
        if size > U64_MAX:
            raise QemuError("ram size too large")
        if "max-size" in fields:
            max_size = fields["max-size"]
            if max_size < size:
                raise QemuError(
                    "invalid value of maxmem: maximum memory size "
                    f"(0x{max_size:x}) must be at least the initial memory size (0x{size:x})"
                )
            if fields.get("slots") and max_size == size:
                raise QemuError(
                    "invalid value of maxmem: memory slots were specified but maximum memory"
                    f" size (0x{max_size:x}) is equal to the initial memory size (0x{size:x})"
                )
            self.maxram_size = max_size
        else:
            if "slots" in fields:
                raise QemuError("slots specified but no max-size")
            self.maxram_size = size
        self.ram_size = size
        self.ram_slots = fields.get("slots", 0)

    def _prop_bool(self, key: str, value: KeyvalValue) -> None:
        flag = parse_bool(_scalar(key, value))
        if flag is None:
            raise QemuError(invalid_value(key, "'on' or 'off'"))
        if key == "modern-hotplug-events":
            self.modern_hotplug_events = flag

    def _prop_string(self, key: str, value: KeyvalValue) -> None:
        text = _scalar(key, value)
        if key == "dumpdtb":
            self.dumpdtb = text
        elif key == "kvm-type":
            self.kvm_type = text

    def _prop_vsmt(self, key: str, value: KeyvalValue) -> None:
        number = _keyval_uint(key, _scalar(key, value))
        if number > 0xFFFFFFFF:
            raise QemuError(invalid_value(key, "uint32_t"))
        self.user_vsmt = number or None

    def _prop_max_compat(self, key: str, value: KeyvalValue) -> None:
        text = _scalar(key, value)
        if text == "":
            self.max_compat = None
        else:
            mode = compat_mode(text)
            if mode is None:
                raise QemuError(f'Invalid compatibility mode "{text}"')
            self.max_compat = mode
        self.max_compat_set = True

    def _prop_resize_hpt(self, key: str, value: KeyvalValue) -> None:
        text = _scalar(key, value)
        if text not in ("default", "disabled", "enabled", "required"):
            raise QemuError('Bad value for "resize-hpt" property')
        self.resize_hpt = text

    def _prop_ic_mode(self, key: str, value: KeyvalValue) -> None:
        text = _scalar(key, value)
        if self.machine.legacy_irq_allocation:
            raise QemuError("This machine only uses the legacy XICS backend, don't pass ic-mode")
        if text not in ("xics", "xive", "dual"):
            raise QemuError('Bad value for "ic-mode" property')
        self.ic_mode = text

    # ---- CPU model, globals and board checks

    def _cpu_globals(
        self, cpu: CpuSelection, accel: Accelerator
    ) -> tuple[list[GlobalSpec], list[GlobalSpec], list[QemuWarning]]:
        """Sort ``-global`` and ``-cpu`` features into CPU, core and unused ones.

        ``compat`` on the CPU becomes ``max-cpu-compat`` (with a warning) unless
        ``-machine max-cpu-compat`` was given.
        """
        feature_globals = [GlobalSpec(cpu.cpu_type, k, v, None) for k, v in cpu.features]
        core_globals: list[GlobalSpec] = []
        cpu_globals: list[GlobalSpec] = []
        unused: list[QemuWarning] = []
        legacy_compat: CompatMode | None = None
        for spec in [*self.config.globals, *feature_globals]:
            if spec.driver in cpu.type_chain:
                if spec.property != "compat" or not cpu.is_host:
                    cpu_globals.append(spec)
                    continue
                mode = compat_mode(spec.value)
                if mode is None:
                    raise QemuError(f'Invalid compatibility mode "{spec.value}"')
                legacy_compat = mode
                self.warnings.append(
                    QemuWarning(COMPAT_DEPRECATION.format(spec.value), spec.location)
                )
            elif spec.driver in (HOST_CPU_TYPE, HOST_CORE_TYPE) and not accel.is_kvm:
                unused.append(_invalid_class(spec))
            elif spec.driver.endswith(CORE_TYPE_SUFFIX) or spec.driver in _CORE_PARENTS:
                core_globals.append(spec)
            elif not spec.driver.endswith(CPU_TYPE_SUFFIX) or not _known_global_driver(spec.driver):
                # Machine types are not devices, and short-form names split at the first
                # dot name no class: QEMU reports such globals once the machine is built.
                unused.append(_invalid_class(spec))
        if legacy_compat is not None and not self.max_compat_set:
            self.max_compat = legacy_compat
        return core_globals, cpu_globals, unused

    def _rma_check(self, numa: NumaState) -> None:
        rma = min(self.ram_size, numa.node0_size(self.ram_size), TIB)
        if self.machine.rma_limit:
            rma = min(rma, self.machine.rma_limit)
        if rma < MIN_RMA_SLOF:
            # QEMU's format string has a stray "ld" after a hex conversion.
            raise QemuError(
                f"pSeries SLOF firmware requires >= {MIN_RMA_SLOF // MIB:x}ldMiB guest RMA "
                "(Real Mode Area memory)"
            )

    def _irq_init(self, cpu: CpuSelection, accel: Accelerator) -> str:
        mode = self.ic_mode or self.machine.irq
        assert cpu.model is not None
        power9 = compat_mode("power9")
        assert power9 is not None
        if not cpu_supports_compat(cpu.model, power9, self.max_compat):
            if mode == "dual":
                return "xics"
            if mode == "xive":
                raise QemuError("XIVE-only machines require a POWER9 CPU")
        if accel.is_kvm and dict(accel.props).get("kernel-irqchip") == "split":
            raise QemuError("kernel_irqchip split mode not supported on pseries")
        return mode

    def _validate_node_memory(self, numa: NumaState) -> None:
        block_mib = SPAPR_MEMORY_BLOCK_SIZE // MIB
        if self.ram_size % SPAPR_MEMORY_BLOCK_SIZE:
            raise QemuError(f"Memory size 0x{self.ram_size:x} is not aligned to {block_mib} MiB")
        if self.maxram_size % SPAPR_MEMORY_BLOCK_SIZE:
            # QEMU prints the RAM size here, not the maximum.
            raise QemuError(
                f"Maximum memory size 0x{self.ram_size:x} is not aligned to {block_mib} MiB"
            )
        for i, mem in enumerate(numa.node_memory()):
            if mem % SPAPR_MEMORY_BLOCK_SIZE:
                raise QemuError(f"Node {i} memory size 0x{mem:x} is not aligned to {block_mib} MiB")

    def _boot_core_checks(
        self,
        topology: Topology,
        cpu: CpuSelection,
        accel: Accelerator,
        globals_: tuple[list[GlobalSpec], list[GlobalSpec], list[QemuWarning]],
    ) -> None:
        """What creating the boot cores can refuse, core 0 first."""
        if topology.boot_cores == 0:
            return
        core_globals, cpu_globals, _ = globals_
        for spec in core_globals:
            if spec.driver in (topology.core_type, *_CORE_PARENTS) and (
                spec.property not in _CORE_PROPERTIES
            ):
                raise QemuError(
                    f"can't apply global {spec.driver}.{spec.property}={spec.value}: "
                    f"Property '{topology.core_type}.{spec.property}' not found"
                )
        for spec in cpu_globals:
            if spec.property not in _CPU_PROPERTIES:
                raise QemuError(
                    f"can't apply global {spec.driver}.{spec.property}={spec.value}: "
                    f"Property '{cpu.cpu_type}.{spec.property}' not found"
                )
        host = accel.kvm_host
        if host is None:
            return
        refusal = kvm_vcpu_refusal(cpu, host)
        if refusal is not None:
            raise refusal
        for core in range(topology.boot_cores):
            for thread in range(topology.boot_core_threads(core)):
                error = topology.kvm_vcpu_id_error(core * topology.threads + thread, host)
                if error is not None:
                    raise error

    def _ram_slot_check(self, accel: Accelerator) -> None:
        if self.ram_size >= self.maxram_size:
            return
        max_slots = max(KVM_MEMSLOTS // 2 if accel.is_kvm else 0, SPAPR_MAX_RAM_SLOTS)
        if self.ram_slots > max_slots:
            raise QemuError(
                f"Specified number of memory slots {self.ram_slots} exceeds max supported "
                f"{max_slots}"
            )


def _invalid_class(spec: GlobalSpec) -> QemuWarning:
    return QemuWarning(f"global {spec.driver}.{spec.property} has invalid class name")


#: Properties of spapr core and CPU objects that globals may set.
_CORE_PROPERTIES = frozenset({"core-id", "nr-threads", "node-id", "pre-3.0-migration"})
_CPU_PROPERTIES = frozenset({"pre-2.8-migration", "pre-2.10-migration", "pre-3.0-migration"})

#: Real machine properties of QEMU 7.2 that this model does not implement.
_UNMODELED_PROPERTIES = frozenset(
    [
        "kernel",
        "initrd",
        "append",
        "dtb",
        "firmware",
        "dt-compatible",
        "phandle-start",
        "boot",
        "memory-encryption",
        "confidential-guest-support",
        "nvdimm",
        "nvdimm-persistence",
        "hmat",
        "host-model",
        "host-serial",
        "x-vof",
        "kernel-addr",
    ]
)


def _scalar(key: str, value: KeyvalValue) -> str:
    if not isinstance(value, str):
        raise QemuError(f"Parameters '{key}.*' are unexpected")
    return value


def _keyval_uint(key: str, text: str) -> int:
    try:
        number = strtou64(text)
    except OverflowError:
        number = None
    if number is None:
        raise QemuError(invalid_value(key, "integer"))
    return number


_PROPERTY_SETTERS: dict[str, Callable[[_Startup, str, KeyvalValue], None]] = {
    "smp": _Startup._prop_smp,
    "memory": _Startup._prop_memory,
    "graphics": _Startup._prop_bool,
    "usb": _Startup._prop_bool,
    "suppress-vmdesc": _Startup._prop_bool,
    "dump-guest-core": _Startup._prop_bool,
    "mem-merge": _Startup._prop_bool,
    "modern-hotplug-events": _Startup._prop_bool,
    "dumpdtb": _Startup._prop_string,
    "kvm-type": _Startup._prop_string,
    "vsmt": _Startup._prop_vsmt,
    "max-cpu-compat": _Startup._prop_max_compat,
    "resize-hpt": _Startup._prop_resize_hpt,
    "ic-mode": _Startup._prop_ic_mode,
}


__all__ = [
    "PROG",
    "DeviceSpec",
    "GlobalSpec",
    "MachineConfig",
    "MachineSetup",
    "StartupError",
    "TraceSpec",
    "creation_done_warnings",
    "id_wellformed",
    "parse_argv",
    "reset_warnings",
    "startup",
]
