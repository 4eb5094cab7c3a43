"""``-smp``: reading the keys and completing the topology as QEMU 7.2 does.

``-smp`` is keyval syntax (implied key ``cpus``) merged into the machine options as
``smp``; its keys are type-checked when the machine's ``smp`` property is set, in the
declaration order of QAPI's SMPConfiguration, then ``machine_parse_smp_config``
fills in missing values (preferring cores, or sockets on pseries-6.1 and older),
and checks the result. Values are 64-bit when read and 32-bit unsigned afterwards,
as in QEMU (``-smp 4294967297`` is 1 CPU).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from machine.config.machine_types import MachineType
from machine.config.qemu_opts import KeyvalValue, QemuWarning, ghash_order, invalid_value, strtoi64
from spapr.errors import QemuError

#: SMPConfiguration members in QAPI declaration order (the visit order).
SMP_KEYS: tuple[str, ...] = ("cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus")

ZERO_VALUE_WARNING = (
    "Deprecated CPU topology (considered invalid): "
    "CPU topology parameters must be greater than zero"
)

_U32 = 0xFFFFFFFF


@attrs.frozen
class SmpRequest:
    """The ``-smp`` keys as given (64-bit values), None where absent."""

    cpus: int | None = None
    sockets: int | None = None
    dies: int | None = None
    clusters: int | None = None
    cores: int | None = None
    threads: int | None = None
    maxcpus: int | None = None


@attrs.frozen
class SmpTopology:
    """The completed topology (``MachineState.smp``): 32-bit unsigned values."""

    cpus: int
    sockets: int
    dies: int
    clusters: int
    cores: int
    threads: int
    max_cpus: int

    @classmethod
    def machine_default(cls, machine: MachineType) -> SmpTopology:
        """The topology of a machine given no ``-smp`` (``default_cpus`` CPUs, all 1)."""
        n = machine.default_cpus
        return cls(cpus=n, sockets=1, dies=1, clusters=1, cores=1, threads=1, max_cpus=n)


def read_smp_keys(values: Mapping[str, KeyvalValue], *, prefix: str = "smp") -> SmpRequest:
    """Type-check the ``smp`` dict as QEMU's keyval visitor does, in QAPI order.

    Errors: ``Parameter 'smp.cores' expects integer``, ``Parameters 'smp.x.*' are
    unexpected`` and, after all known keys, ``Parameter 'smp.foo' is unexpected``.
    """
    found: dict[str, int] = {}
    for key in SMP_KEYS:
        if key not in values:
            continue
        raw = values[key]
        if not isinstance(raw, str):
            raise QemuError(f"Parameters '{prefix}.{key}.*' are unexpected")
        number = strtoi64(raw)
        if number is None:
            raise QemuError(invalid_value(f"{prefix}.{key}", "integer"))
        found[key] = number
    extra = [k for k in values if k not in SMP_KEYS]
    if extra:
        first = ghash_order([k for k in _qdict_keys(values) if k in extra])[0]
        raise QemuError(f"Parameter '{prefix}.{first}' is unexpected")
    return SmpRequest(**found)


def _qdict_keys(values: Mapping[str, KeyvalValue]) -> list[str]:
    from machine.config.qemu_opts import qdict_order

    return qdict_order(values.keys())


def resolve_smp(
    request: SmpRequest, machine: MachineType, warnings: list[QemuWarning] | None = None
) -> SmpTopology:
    """``machine_parse_smp_config`` for a pseries machine: completed topology or QemuError.

    Warnings printed on the way (the zero-value deprecation one) go to ``warnings``.
    """
    if warnings is None:
        warnings = []
    given = attrs.asdict(request)
    if any(v == 0 for v in given.values() if v is not None):
        warnings.append(QemuWarning(ZERO_VALUE_WARNING))

    def u32(name: str) -> int:
        value = given[name]
        return 0 if value is None else value & _U32

    cpus, sockets, dies = u32("cpus"), u32("sockets"), u32("dies")
    clusters, cores, threads, maxcpus = (
        u32("clusters"),
        u32("cores"),
        u32("threads"),
        u32("maxcpus"),
    )

    # pseries supports neither dies nor clusters.
    if dies > 1:
        raise QemuError("dies not supported by this machine's CPU topology")
    if clusters > 1:
        raise QemuError("clusters not supported by this machine's CPU topology")
    dies = dies or 1
    clusters = clusters or 1

    def div(a: int, b: int) -> int:
        b &= _U32
        if b == 0:
            raise ZeroDivisionError  # only reachable through 32-bit wrap-around
        return a // b

    try:
        if cpus == 0 and maxcpus == 0:
            sockets = sockets or 1
            cores = cores or 1
            threads = threads or 1
        else:
            maxcpus = maxcpus or cpus
            if machine.prefer_sockets:
                if sockets == 0:
                    cores = cores or 1
                    threads = threads or 1
                    sockets = div(maxcpus, dies * clusters * cores * threads)
                elif cores == 0:
                    threads = threads or 1
                    cores = div(maxcpus, sockets * dies * clusters * threads)
            else:
                if cores == 0:
                    sockets = sockets or 1
                    threads = threads or 1
                    cores = div(maxcpus, sockets * dies * clusters * threads)
                elif sockets == 0:
                    threads = threads or 1
                    sockets = div(maxcpus, dies * clusters * cores * threads)
            if threads == 0:
                threads = div(maxcpus, sockets * dies * clusters * cores)
    except ZeroDivisionError:
        raise QemuError(
            "CPU topology values overflow 32 bits (QEMU would divide by zero)"
        ) from None

    product = (sockets * dies * clusters * cores * threads) & _U32
    maxcpus = maxcpus or product
    cpus = cpus or maxcpus
    topo = SmpTopology(cpus, sockets, dies, clusters, cores, threads, maxcpus)
    hierarchy = f"sockets ({sockets}) * cores ({cores}) * threads ({threads})"
    if product != maxcpus:
        raise QemuError(
            "Invalid CPU topology: product of the hierarchy must match maxcpus: "
            f"{hierarchy} != maxcpus ({maxcpus})"
        )
    if maxcpus < cpus:
        raise QemuError(
            "Invalid CPU topology: maxcpus must be equal to or greater than smp: "
            f"{hierarchy} == maxcpus ({maxcpus}) < smp_cpus ({cpus})"
        )
    if cpus < machine.min_cpus:
        raise QemuError(
            f"Invalid SMP CPUs {_as_int(cpus)}. The min CPUs supported by machine "
            f"'{machine.name}' is {machine.min_cpus}"
        )
    if maxcpus > machine.max_cpus:
        raise QemuError(
            f"Invalid SMP CPUs {_as_int(maxcpus)}. The max CPUs supported by machine "
            f"'{machine.name}' is {machine.max_cpus}"
        )
    return topo


def _as_int(u32: int) -> int:
    """A 32-bit unsigned value printed with ``%d``."""
    return u32 - (1 << 32) if u32 & 0x80000000 else u32
