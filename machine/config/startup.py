"""Machine start-up in QEMU 7.2's order and with its texts: a MachineConfig becomes a MachineSetup.

``startup`` performs what ``qemu_init`` does before devices are created: select the
machine version, set the ``-machine``/``-smp``/``-m`` properties (in QDict order),
configure the accelerator, resolve ``-cpu``, interpret ``-numa``, and run the
pseries board checks (RMA, VSMT, threads, interrupt controller, node memory, CPU
counts, boot cores). The board then cold-plugs ``-device`` options, calls
``creation_done_warnings`` and, at every machine reset, ``reset_warnings`` (cap
checks; their errors are fatal at the first reset).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import attrs

from machine.config.accel import (
    HOST_CORE_TYPE,
    HOST_CPU_TYPE,
    Accelerator,
    CpuSelection,
    configure_accelerator,
    kernel_irqchip_error,
    kvm_init_checks,
    kvm_vcpu_refusal,
    parse_cpu_option,
)
from machine.config.caps import (
    CAPS_BY_PROPERTY,
    KvmHostCaps,
    SpaprCaps,
    apply_caps,
    cpu_supports_compat,
    init_caps,
    parse_cap_value,
)
from machine.config.cmdline import (
    CORE_PARENTS,
    GlobalSpec,
    MachineConfig,
    StartupError,
    known_global_driver,
)
from machine.config.machine_types import (
    DEFAULT_MACHINE,
    KVM_MEMSLOTS,
    MIB,
    MIN_RMA_SLOF,
    RAM_ALIGN,
    SPAPR_MAX_RAM_SLOTS,
    SPAPR_MEMORY_BLOCK_SIZE,
    TIB,
    MachineType,
    find_machine,
)
from machine.config.numa import (
    MemoryBackend,
    NumaState,
    create_memory_backend,
    read_numa_option,
)
from machine.config.qemu_opts import (
    U64_MAX,
    KeyvalDict,
    KeyvalValue,
    QemuWarning,
    SizeError,
    ghash_order,
    invalid_value,
    keyval_merge,
    parse_bool,
    parse_keyval,
    parse_size,
    qdict_order,
    strtou64,
)
from machine.config.smp import SmpTopology, read_smp_keys, resolve_smp
from machine.config.topology import (
    Topology,
    cpu_count_checks,
    slot_count,
    vsmt_checks,
)
from spapr.cpu_models import (
    CORE_TYPE_SUFFIX,
    CPU_TYPE_SUFFIX,
    CompatMode,
    compat_mode,
)
from spapr.errors import QemuError

COMPAT_DEPRECATION = (
    "CPU property 'compat' was removed in QEMU 6.0; using -machine max-cpu-compat={}"
)


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
    #: ``-machine memory-backend=ID``: the memory-backend object that is the RAM.
    ram_backend_id: str | None = None

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
            accel = attrs.evolve(accel, props=self._sugar_props() + accel.props)
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
        self._ram_backend(backends)

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
        reserved = self.machine.default_ram_id
        if not numa.have_memdevs and reserved in backends and self.ram_backend_id != reserved:
            raise QemuError(
                f"object name '{reserved}' is reserved for the default RAM"
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

    def _ram_backend(self, backends: dict[str, MemoryBackend]) -> None:
        """``-machine memory-backend=``: the RAM is that backend, of its size."""
        if self.ram_backend_id is None:
            return
        backend = backends.get(self.ram_backend_id)
        if backend is None:
            raise QemuError(f"Memory backend '{self.ram_backend_id}' not found")
        if self.config.memory.instances and backend.size != self.ram_size:
            raise QemuError("Machine memory size does not match the size of the memory backend")
        self.ram_size = backend.size
        self.maxram_size = max(self.maxram_size, backend.size)

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
        backend_id = opts.pop("memory-backend", None)
        if backend_id is not None:
            self.ram_backend_id = str(backend_id)

    def _sugar_props(self) -> tuple[tuple[str, str], ...]:
        """``-machine kernel-irqchip=``/``kvm-shadow-mem=``: global properties of the KVM
        accelerator, applied when it is created, so that ``-accel`` options override them."""
        for key, value in self.accel_sugar.items():
            if key == "kernel-irqchip" and (error := kernel_irqchip_error(value)):
                raise QemuError(f"can't apply global kvm-accel.{key}={value}: {error}")
        return tuple(self.accel_sugar.items())

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
            elif spec.driver.endswith(CORE_TYPE_SUFFIX) or spec.driver in CORE_PARENTS:
                core_globals.append(spec)
            elif not spec.driver.endswith(CPU_TYPE_SUFFIX) or not known_global_driver(spec.driver):
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
        if accel.is_kvm and accel.kernel_irqchip == "split":
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
            if spec.driver in (topology.core_type, *CORE_PARENTS) and (
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
    "MachineSetup",
    "creation_done_warnings",
    "reset_warnings",
    "startup",
]
