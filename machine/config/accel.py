"""The accelerator (TCG, or a modeled KVM host) and the ``-cpu`` model it runs.

TCG is the default and is what the reference QEMU ran. ``-accel kvm``,
``-enable-kvm`` and ``-machine accel=kvm`` select a *modeled* KVM-HV host whose CPU
is chosen with the project option ``-host-cpu MODEL`` (default POWER9). What the
model reproduces from QEMU 7.2 + Linux KVM-HV:

* ``host`` becomes a CPU model (``host-powerpc64-cpu``, core type
  ``host-spapr-cpu-core``) with the host model's facts, and the default ``-cpu`` of
  every pseries version; the host family's alias (``POWER9`` on a POWER9 host) is
  redirected to ``host``. Under TCG ``-cpu host`` is "unable to find CPU model".
* SMT: the VM starts in the host's SMT mode (``host_threads`` of the model table:
  POWER9 4, POWER8 8); a different VSMT mode is set as KVM-HV allows (a power of 2
  up to 8; on pre-POWER9 hosts not above the host's threads), with QEMU's warning or
  error when it cannot.
* vCPU limits: ``KVM_CAP_NR_VCPUS`` = ``present_cpus`` (default 176: a two-socket
  22-core SMT4 POWER9), ``KVM_CAP_MAX_VCPUS`` = ``nr_cpus`` (2048, NR_CPUS of
  Debian's ppc64el kernel), vCPU ids below 8 * ``nr_cpus``.
* A ``-cpu`` whose PVR is not the host's fails when its vCPUs are created, as
  KVM-HV refuses it (texts marked [inferred] in ``kvm_vcpu_refusal``).
* Host capability levels for ``cap-*`` checks: see ``caps.KvmHostCaps.for_host``.
* ``-machine kvm-type``: ignored under TCG (as QEMU does); under KVM ``auto``/``hv``
  are accepted, an unknown value gets QEMU's "Unknown kvm-type specified" and ``pr``
  (KVM-PR) is refused as not modeled.
* Accelerator properties: TCG ``thread``, ``tb-size``, ``split-wx`` and KVM
  ``kernel-irqchip``, ``kvm-shadow-mem``, ``dirty-ring-size`` are kept; others get
  QEMU's "Property 'tcg-accel.x' not found". ``kernel-irqchip`` takes ``on``, ``off``
  or ``split`` (pseries refuses ``split``); unless ``off``, the machine's interrupt
  controller is KVM's in-kernel device (docs/protocol.md, section 8.8).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from machine.config.caps import KvmHostCaps
from machine.config.machine_types import MachineType
from machine.config.qemu_opts import QemuOpts, QemuWarning, is_power_of_2
from spapr.cpu_models import (
    CORE_TYPE_SUFFIX,
    CPU_MODELS,
    CPU_TYPE_SUFFIX,
    CpuModel,
    by_cpu_type,
    resolve_cpu_name,
)
from spapr.errors import QemuError

#: KVM's MAX_SMT_THREADS on Book3S.
KVM_MAX_SMT_THREADS = 8
EINVAL = 22

HOST_CPU_TYPE = "host" + CPU_TYPE_SUFFIX
HOST_CORE_TYPE = "host" + CORE_TYPE_SUFFIX

#: The ``-cpu`` alias that a KVM host of each family redirects to ``host``.
_FAMILY_ALIAS = {
    "POWER5P": "power5+",
    "POWER7": "power7",
    "POWER8": "power8",
    "POWER9": "power9",
    "POWER10": "power10",
}


class AccelKind(enum.Enum):
    """The accelerator QEMU runs the machine with."""

    TCG = "tcg"
    KVM = "kvm"


class BareQemuError(QemuError):
    """A fatal message QEMU prints with plain ``fprintf``: no program-name prefix."""

    def report(self, prog: str = "qemu-system-ppc64") -> str:
        """The message alone."""
        return self.message


@attrs.frozen
class KvmHost:
    """The modeled KVM-HV host: its CPU model and vCPU limits."""

    model: CpuModel
    present_cpus: int = 176
    nr_cpus: int = 2048

    @property
    def initial_smt(self) -> int:
        """The VM's SMT mode before QEMU changes it (``threads_per_subcore``)."""
        return self.model.host_threads

    @property
    def loose_smt(self) -> bool:
        """POWER9 and later emulate any VSMT mode ("loose" threading)."""
        return self.model.family not in ("POWER7", "POWER8", "POWER5P", "970")

    @property
    def max_vcpu_id(self) -> int:
        """``KVM_CAP_MAX_VCPU_ID``: vCPU ids must be below this."""
        return KVM_MAX_SMT_THREADS * self.nr_cpus

    def set_smt_errno(self, vsmt: int) -> int:
        """What ``KVM_ENABLE_CAP(KVM_CAP_PPC_SMT, vsmt)`` returns: 0 or -errno."""
        if vsmt > KVM_MAX_SMT_THREADS or not is_power_of_2(vsmt):
            return -EINVAL
        if not self.loose_smt and vsmt > self.initial_smt:
            return -EINVAL
        return 0

    def smt_possible(self) -> list[int]:
        """VSMT modes KVM reports as possible, largest first."""
        top = KVM_MAX_SMT_THREADS if self.loose_smt else self.initial_smt
        return [1 << i for i in range(top.bit_length() - 1, -1, -1)]

    @property
    def caps(self) -> KvmHostCaps:
        """Capability levels the host offers."""
        return KvmHostCaps.for_host(self.model)


@attrs.frozen
class Accelerator:
    """The configured accelerator; ``kvm_host`` is set under KVM."""

    kind: AccelKind
    kvm_host: KvmHost | None = None
    props: tuple[tuple[str, str], ...] = ()

    @property
    def is_kvm(self) -> bool:
        return self.kind is AccelKind.KVM

    @property
    def name(self) -> str:
        return self.kind.value

    @property
    def kernel_irqchip(self) -> str:
        """``kernel-irqchip``: ``on`` (required), ``off``, ``split``; "" unset (allowed)."""
        return dict(self.props).get("kernel-irqchip", "")

    @property
    def kernel_irqchip_allowed(self) -> bool:
        """QEMU's kvm_kernel_irqchip_allowed(): KVM, and kernel-irqchip not off."""
        return self.is_kvm and self.kernel_irqchip != "off"


TCG = Accelerator(AccelKind.TCG)

#: Accelerator properties the model accepts, per accelerator (QOM ``tcg-accel``...).
_ACCEL_PROPS = {
    AccelKind.TCG: ("thread", "tb-size", "split-wx"),
    AccelKind.KVM: ("kernel-irqchip", "kvm-shadow-mem", "dirty-ring-size"),
}
#: ``kernel-irqchip``'s values (QAPI's OnOffSplit).
KERNEL_IRQCHIP_VALUES = ("on", "off", "split")


def kernel_irqchip_error(value: str) -> str | None:
    """The string input visitor's refusal of a ``kernel-irqchip`` value, None if valid."""
    if value in KERNEL_IRQCHIP_VALUES:
        return None
    return f"Parameter 'kernel-irqchip' does not accept value '{value}'"


def lookup_host_model(name: str) -> CpuModel:
    """The CPU model a ``-host-cpu`` name selects (any ``-cpu`` spelling with a core type)."""
    cpu_type = resolve_cpu_name(name)
    model = by_cpu_type(cpu_type) if cpu_type else None
    if model is None:
        raise QemuError(f"-host-cpu: unknown or non-sPAPR host CPU model '{name}'")
    return model


def configure_accelerator(
    accel_opts: Sequence[QemuOpts],
    machine_accel: str | None,
    host: KvmHost,
    warnings: list[QemuWarning],
) -> Accelerator:
    """``configure_accelerators``: the first accelerator that initializes, or QemuError.

    ``accel_opts`` are the ``-accel`` options; ``machine_accel`` is ``-machine
    accel=`` (``-enable-kvm`` sets ``kvm``). Both kinds are always available here.
    """
    known = {kind.value: kind for kind in AccelKind}
    candidates: list[tuple[str, QemuOpts | None]]
    if accel_opts:
        if machine_accel is not None:
            raise QemuError('The -accel and "-machine accel=" options are incompatible')
        candidates = [(opts.get("accel") or "", opts) for opts in accel_opts]
    else:
        candidates = [(name, None) for name in (machine_accel or "tcg").split(":")]
    failures: list[QemuWarning] = []
    if not accel_opts:
        # "-machine accel=a:b" names are all checked before any is tried.
        for name, _ in candidates:
            if name not in known:
                failures.append(QemuWarning(f"invalid accelerator {name}", kind="error"))
        candidates = [(name, opts) for name, opts in candidates if name in known]
    for name, opts in candidates:
        location = opts.location if opts is not None else None
        if name not in known:
            # Each unusable -accel is reported, then the next one is tried.
            failures.append(QemuWarning(f"invalid accelerator {name}", location, kind="error"))
            continue
        warnings.extend(failures)
        accel = _init_accel(known[name], opts, host)
        if failures:
            warnings.append(QemuWarning(f"falling back to {accel.name}", kind="error"))
        return accel
    if not failures:
        raise QemuError("no accelerator found")
    warnings.extend(failures[:-1])
    raise QemuError(failures[-1].message, location=failures[-1].location)


def _init_accel(kind: AccelKind, opts: QemuOpts | None, host: KvmHost) -> Accelerator:
    props: list[tuple[str, str]] = []
    if opts is not None:
        for opt in opts.opts:
            if opt.name == "accel":
                continue
            if opt.name not in _ACCEL_PROPS[kind]:
                raise QemuError(
                    f"Property '{kind.value}-accel.{opt.name}' not found", location=opts.location
                )
            if opt.name == "kernel-irqchip" and (error := kernel_irqchip_error(opt.text)):
                raise QemuError(error, location=opts.location)
            props.append((opt.name, opt.text))
    if kind is AccelKind.TCG:
        return Accelerator(kind, None, tuple(props))
    return Accelerator(kind, host, tuple(props))


def kvm_init_checks(
    accel: Accelerator,
    *,
    kvm_type: str,
    smp_cpus: int,
    max_cpus: int,
    location: str | None,
    warnings: list[QemuWarning],
) -> None:
    """The checks of QEMU's ``kvm_init`` for pseries: kvm-type, then vCPU limits."""
    host = accel.kvm_host
    if host is None:
        return
    if kvm_type not in ("auto", "") and kvm_type.lower() not in ("hv", "pr"):
        raise QemuError(f"Unknown kvm-type specified '{kvm_type}'")
    if kvm_type.lower() == "pr":
        raise QemuError("kvm-type=pr (KVM-PR) is not modeled by this emulator; use hv or auto")
    for what, count in (("SMP", smp_cpus), ("hotpluggable", max_cpus)):
        if count > host.present_cpus:
            warnings.append(
                QemuWarning(
                    f"Number of {what} cpus requested ({count}) exceeds the recommended cpus"
                    f" supported by KVM ({host.present_cpus})",
                    location,
                )
            )
            if count > host.nr_cpus:
                raise BareQemuError(
                    f"Number of {what} cpus requested ({count}) exceeds the maximum cpus"
                    f" supported by KVM ({host.nr_cpus})"
                )


@attrs.frozen
class CpuSelection:
    """The ``-cpu`` choice: the QOM CPU type and, if it has one, its sPAPR model.

    ``model`` is None for QEMU CPU models without an sPAPR core (``-cpu 7400``);
    such a machine fails later with "Unable to find sPAPR CPU Core definition".
    ``features`` are the ``,prop=value`` parts, in order.
    """

    cpu_type: str
    model: CpuModel | None
    is_host: bool = False
    features: tuple[tuple[str, str], ...] = ()

    @property
    def core_type(self) -> str | None:
        """The sPAPR core QOM type (``power9_v2.0-spapr-cpu-core``), None if none exists."""
        if self.model is None:
            return None
        return HOST_CORE_TYPE if self.is_host else self.model.core_type

    @property
    def type_chain(self) -> tuple[str, ...]:
        """QOM types the CPU object is an instance of (global properties match these)."""
        chain = [self.cpu_type]
        if self.is_host and self.model is not None:
            chain.append(self.model.thread_type)
        chain.append("powerpc64-cpu")
        return tuple(chain)


def parse_cpu_option(text: str | None, machine: MachineType, accel: Accelerator) -> CpuSelection:
    """``parse_cpu_option``: resolve the model name and split the ``prop=value`` features.

    The default (no ``-cpu``) is the machine version's CPU under TCG and ``host``
    under KVM. Errors are QEMU's: "-cpu option cannot be empty", "unable to find CPU
    model 'X'", "Expected key=value format, found X.".
    """
    host = accel.kvm_host
    if text is None:
        if host is not None:
            return CpuSelection(HOST_CPU_TYPE, host.model, is_host=True)
        return _select(machine.default_cpu_type)
    if text == "":
        raise QemuError("-cpu option cannot be empty")
    name, _, rest = text.partition(",")
    selection = _resolve(name, machine, host)
    features: list[tuple[str, str]] = []
    for item in rest.split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise QemuError(f"Expected key=value format, found {item}.")
        features.append((key, value))
    return attrs.evolve(selection, features=tuple(features))


def _select(cpu_type: str) -> CpuSelection:
    return CpuSelection(cpu_type + CPU_TYPE_SUFFIX, by_cpu_type(cpu_type))


def _resolve(name: str, machine: MachineType, host: KvmHost | None) -> CpuSelection:
    digits = name[2:] if len(name) == 10 and name[1:2] in ("x", "X") and name[0] == "0" else name
    if len(digits) == 8 and all(c in "0123456789abcdefABCDEF" for c in digits):
        pvr = int(digits, 16)
        for model in CPU_MODELS:
            if model.pvr == pvr:
                return CpuSelection(model.thread_type, model)
        if host is not None and host.model.pvr == pvr:
            return CpuSelection(HOST_CPU_TYPE, host.model, is_host=True)
        raise QemuError(f"unable to find CPU model '{name}'")
    if name == "max":
        if host is not None:
            return CpuSelection(HOST_CPU_TYPE, host.model, is_host=True)
        return _select(machine.default_cpu_type)
    lowered = name.lower()
    if host is not None:
        family_alias = _FAMILY_ALIAS.get(host.model.family)
        if lowered in ("host", family_alias):
            return CpuSelection(HOST_CPU_TYPE, host.model, is_host=True)
    cpu_type = resolve_cpu_name(name)
    if cpu_type is None:
        raise QemuError(f"unable to find CPU model '{name}'")
    return _select(cpu_type)


def kvm_vcpu_refusal(selection: CpuSelection, host: KvmHost) -> QemuError | None:
    """KVM-HV refuses vCPUs whose PVR is not the host's (texts [inferred] from QEMU's code)."""
    if selection.is_host or selection.model is None or selection.model.pvr == host.model.pvr:
        return None
    return QemuError(
        'Register sync failed... If you\'re using kvm-hv.ko, only "-cpu host" is possible\n'
        "qemu-system-ppc64: kvm_init_vcpu: kvm_arch_init_vcpu failed (0): Invalid argument"
    )
