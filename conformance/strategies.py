"""Hypothesis strategies for pseries CPU hotplug: machines, core arguments, host and guest actions.

Every strategy here draws values whose meaning QEMU 7.2 fixes, and carries the
answer QEMU gives where there is one:

* :func:`machine_configs` -- command lines QEMU accepts, per accelerator (TCG as the
  oracle ran it: one thread per core; the modelled KVM host: SMT 1/2/4/8, VSMT);
* :func:`invalid_machine_configs` -- command lines QEMU refuses, each breaking one
  rule, with QEMU's exact stderr (the texts recorded in tests/data/errors/cmdline.json);
* :func:`core_device_args` / :func:`invalid_core_device_args` -- device_add arguments
  of a spapr core, valid (in every spelling QEMU takes) or invalid in one way each,
  with QEMU's refusal (tests/data/errors/qmp_errors.json);
* :func:`host_operations` -- device_add / device_del / system_reset / stop / cont /
  migrate / time passing, as values a state machine or a QMP run applies;
* :func:`rtas_calls` -- RTAS calls a guest makes, well-formed or hostile (any token,
  wrong nargs/nret, buffers at and past the end of guest memory, configure-connector
  walks out of order, start-cpu of running or absent vCPUs, stop-self from a thread
  that should not stop);
* :func:`guest_behaviours` -- the reference guest's modes, fault options and delays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import hypothesis.strategies as st

from conformance.config import (
    ColdplugCore,
    InvalidMachine,
    MachineArgs,
    NumaLayout,
    fatal,
    machine_setup,
)
from guest import GuestMode, GuestTiming, Misbehavior, WrongIndices
from rtas.tokens import RTAS_TOKEN_BASE, RTAS_TOKEN_MAX, TOKENS_BY_NAME
from spapr.cpu_models import ABSTRACT_CORE_TYPE, CPU_MODELS

# ---------------------------------------------------------------------------
# Machine configurations
# ---------------------------------------------------------------------------

#: -cpu names QEMU 7.2 runs under TCG on pseries (checked against the installed QEMU).
TCG_CPUS = ("POWER7", "POWER8", "POWER8E", "POWER8NVL", "POWER9", "POWER10")
#: Machine versions: the latest, and older ones whose CPU rules differ (vsmt, events).
TCG_MACHINES = (
    "pseries",
    "pseries-7.2",
    "pseries-6.2",
    "pseries-4.2",
    "pseries-4.1",
    "pseries-2.12",
)
#: Versions that need ``cap-htm=off`` under TCG (their default is cap-htm=on).
HTM_DEFAULT_ON = ("pseries-2.11", "pseries-2.10", "pseries-2.9", "pseries-2.8", "pseries-2.7")
#: -cpu names the modelled KVM host (a POWER9 by default) accepts.
KVM_CPUS = ("host", "POWER9")
#: Memory sizes (MiB) every configuration splits evenly between up to 4 NUMA nodes.
MEMORY_MB = (1024, 2048)


@st.composite
def _numa_layout(draw: st.DrawFn, max_cores: int) -> NumaLayout:
    # 2 or 4 nodes: every node's share of 1 or 2 GiB is a multiple of 256 MiB.
    nodes = draw(st.sampled_from([n for n in (2, 4) if n <= max_cores]))
    # Every node gets at least one core slot: QEMU wants every CPU described.
    core_nodes = [i % nodes for i in range(max_cores)]
    core_nodes = draw(st.permutations(core_nodes))
    return NumaLayout(nodes, tuple(core_nodes), legacy_cpus=draw(st.booleans()))


@st.composite
def machine_configs(
    draw: st.DrawFn,
    accel: str = "tcg",
    *,
    max_cpus: int = 8,
    numa: bool = True,
    coldplug: bool = True,
    incoming: bool = False,
    machines: tuple[str, ...] | None = None,
    cpus: tuple[str, ...] | None = None,
) -> MachineArgs:
    """A pseries command line QEMU 7.2 starts (and so must the emulator).

    ``accel="tcg"``: one thread per core (QEMU 7.2 refuses SMT under TCG), any of
    :data:`TCG_CPUS` and :data:`TCG_MACHINES` (older versions get ``cap-htm=off``).
    ``accel="kvm"``: the modelled POWER9 KVM host: SMT 1/2/4/8 and optionally a
    larger ``vsmt``. ``max_cpus`` bounds maxcpus; ``numa`` allows NUMA layouts,
    ``coldplug`` ``-device`` cores, ``incoming`` ``-incoming defer``.
    """
    if accel not in ("tcg", "kvm"):
        raise ValueError(f"accel must be 'tcg' or 'kvm', not {accel!r}")
    kvm = accel == "kvm"
    threads = draw(st.sampled_from((1, 2, 4, 8))) if kvm else 1
    threads = min(threads, max_cpus)
    max_cores = draw(st.integers(1, max(1, max_cpus // threads)))
    sockets_n = draw(st.sampled_from([s for s in (1, 2) if max_cores % s == 0]))
    cores_per_socket = max_cores // sockets_n
    boot = draw(st.integers(1, max_cores))
    explicit_sockets = sockets_n > 1 or draw(st.booleans())
    default_machines = ("pseries", "pseries-7.2") if kvm else TCG_MACHINES
    machine = draw(st.sampled_from(machines or default_machines))
    props: list[tuple[str, str]] = []
    if machine in HTM_DEFAULT_ON:
        props.append(("cap-htm", "off"))
    if kvm and draw(st.booleans()):
        vsmt = draw(st.sampled_from([v for v in (1, 2, 4, 8) if v >= threads]))
        props.append(("vsmt", str(vsmt)))
    cpu = draw(st.sampled_from(cpus or (KVM_CPUS if kvm else TCG_CPUS)))
    memory = draw(st.sampled_from(MEMORY_MB))
    layout = (
        draw(_numa_layout(max_cores)) if numa and max_cores > 1 and draw(st.booleans()) else None
    )
    config = MachineArgs(
        cpu=cpu,
        accel=accel,
        machine=machine,
        machine_props=tuple(props),
        cpus=boot * threads,
        cores=cores_per_socket,
        threads=threads,
        maxcpus=max_cores * threads,
        sockets=sockets_n if explicit_sockets else None,
        memory_mb=memory,
        numa=layout,
        incoming_defer=incoming and draw(st.booleans()),
    )
    if coldplug and config.free_core_ids and draw(st.booleans()):
        chosen = draw(
            st.lists(st.sampled_from(config.free_core_ids), min_size=1, max_size=2, unique=True)
        )
        config = attrs.evolve(
            config, coldplug=tuple(ColdplugCore(c, f"cold{c}") for c in sorted(chosen))
        )
    return config


#: The oracle's classic configuration (tests/data: p8e_classic).
P8E_CLASSIC = MachineArgs(cpu="POWER8E", cpus=2, cores=4, threads=1, maxcpus=4)
#: The same with POWER9 (p9_classic): the XIVE object comes first in /machine/unattached.
P9_CLASSIC = MachineArgs(cpu="POWER9", cpus=2, cores=4, threads=1, maxcpus=4)


# ---------------------------------------------------------------------------
# Invalid machine configurations (QEMU 7.2's texts, tests/data/errors/cmdline.json)
# ---------------------------------------------------------------------------

TCG_SMT = "TCG cannot support more than 1 thread/core on a pseries machine"
TOPOLOGY_MAXCPUS = (
    "Invalid CPU topology: maxcpus must be equal to or greater than smp: "
    "sockets ({s}) * cores ({c}) * threads ({t}) == maxcpus ({m}) < smp_cpus ({n})"
)
TOPOLOGY_PRODUCT = (
    "Invalid CPU topology: product of the hierarchy must match maxcpus: "
    "sockets ({s}) * cores ({c}) * threads ({t}) != maxcpus ({m})"
)
UNSUPPORTED_LEVEL = "{level} not supported by this machine's CPU topology"
NO_HTM = "No Transactional Memory support in TCG\nTry appending -machine cap-htm=off"
NO_CPU_HOTPLUG = "This machine version does not support CPU hotplug"
UNKNOWN_CPU = "unable to find CPU model '{cpu}'"
CORE_POPULATED = "core {n} already populated"
CORE_OUT_OF_RANGE = "core id {n} out of range"
CORE_TYPE = "CPU core type should be {core_type}"
NOT_A_DEVICE_MODEL = "'{driver}' is not a valid device model name"
NODE_ID = "invalid node-id, must be {node}"
NR_THREADS = "invalid nr-threads {n}, must be {threads}"
NUMA_NO_MEMDEV = "total memory for NUMA nodes (0x0) should equal RAM size ({ram:#x})"
NUMA_CPU_INDEX = "CPU index ({i}) should be smaller than maxcpus ({m})"
NUMA_NO_MATCH = "no match found"
NUMA_SOCKET_ID = "socket-id is not supported"
NUMA_UNDEFINED_NODE = (
    "Invalid node-id={n}, NUMA node must be defined with -numa node,nodeid=ID "
    "before it's used with -numa cpu,node-id=ID"
)


def _base(cpu: str, smp: str, memory: str = "1G") -> list[str]:
    return ["-M", "pseries", "-cpu", cpu, "-smp", smp, "-m", memory]


@st.composite
def invalid_machine_configs(draw: st.DrawFn, accel: str = "tcg") -> InvalidMachine:
    """A command line QEMU 7.2 refuses, breaking one rule, with QEMU's whole stderr.

    Only TCG is offered: the refusals are the ones recorded from QEMU (TCG), and the
    modelled KVM host has no live QEMU to confirm new texts against.
    """
    if accel != "tcg":
        raise ValueError("invalid configurations are drawn for TCG (what QEMU ran)")
    cpu = draw(st.sampled_from(("POWER8E", "POWER9", "POWER10")))
    core_type = MachineArgs(cpu=cpu).core_type
    kind = draw(
        st.sampled_from(
            (
                "tcg-smt",
                "topology-maxcpus",
                "topology-product",
                "unsupported-level",
                "no-htm",
                "no-cpu-hotplug",
                "unknown-cpu",
                "device-populated",
                "device-out-of-range",
                "device-core-type",
                "device-model-name",
                "device-node-id",
                "device-nr-threads",
                "numa-no-memdev",
                "numa-cpu-index",
                "numa-no-match",
                "numa-socket-id",
                "numa-undefined-node",
            )
        )
    )
    if kind == "tcg-smt":
        threads = draw(st.sampled_from((2, 3, 4, 8, 16)))
        cores = draw(st.integers(1, 4))
        args = _base(cpu, f"{threads},cores={cores},threads={threads},maxcpus={cores * threads}")
        return InvalidMachine(kind, tuple(args), fatal(TCG_SMT))
    if kind == "topology-maxcpus":
        cores = draw(st.integers(1, 4))
        n = draw(st.integers(cores + 1, 8))
        text = TOPOLOGY_MAXCPUS.format(s=1, c=cores, t=1, m=cores, n=n)
        return InvalidMachine(kind, tuple(_base(cpu, f"{n},maxcpus={cores}")), fatal(text))
    if kind == "topology-product":
        sockets = draw(st.integers(1, 2))
        cores = draw(st.integers(1, 4))
        product = sockets * cores
        maxcpus = draw(st.integers(1, 8).filter(lambda m: m != product))
        cpus_n = draw(st.integers(1, min(maxcpus, 8)))
        smp = f"{cpus_n},sockets={sockets},cores={cores},threads=1,maxcpus={maxcpus}"
        text = TOPOLOGY_PRODUCT.format(s=sockets, c=cores, t=1, m=maxcpus)
        return InvalidMachine(kind, tuple(_base(cpu, smp)), fatal(text))
    if kind == "unsupported-level":
        level = draw(st.sampled_from(("dies", "clusters")))
        smp = f"2,cores=4,threads=1,maxcpus=4,{level}={draw(st.integers(2, 4))}"
        text = UNSUPPORTED_LEVEL.format(level=level)
        return InvalidMachine(kind, tuple(_base(cpu, smp)), fatal(text))
    if kind == "no-htm":
        version = draw(st.sampled_from(HTM_DEFAULT_ON))
        args = ["-M", version, "-cpu", cpu, "-smp", "2,cores=4,threads=1,maxcpus=4", "-m", "1G"]
        return InvalidMachine(kind, tuple(args), fatal(NO_HTM))
    if kind == "no-cpu-hotplug":
        version = draw(st.sampled_from(("pseries-2.6", "pseries-2.5")))
        args = ["-M", f"{version},cap-htm=off", "-cpu", cpu]
        args += ["-smp", "2,cores=4,threads=1,maxcpus=4", "-m", "1G"]
        return InvalidMachine(kind, tuple(args), fatal(NO_CPU_HOTPLUG))
    if kind == "unknown-cpu":
        name = draw(st.sampled_from(("POWER11", "POWER99", "power42", "nocpu")))
        args = _base(name, "2,cores=4,threads=1,maxcpus=4")
        return InvalidMachine(kind, tuple(args), fatal(UNKNOWN_CPU.format(cpu=name)))
    smp = "2,cores=4,threads=1,maxcpus=4"
    if kind.startswith("device-"):
        core_id = draw(st.sampled_from((2, 3)))
        dev_id = f"core{core_id}"
        driver = core_type
        extra = ""
        if kind == "device-populated":
            core_id = draw(st.sampled_from((0, 1)))
            dev_id = f"core{core_id}"
            text = CORE_POPULATED.format(n=core_id)
        elif kind == "device-out-of-range":
            core_id = draw(st.integers(4, 64))
            dev_id = f"core{core_id}"
            text = CORE_OUT_OF_RANGE.format(n=core_id)
        elif kind == "device-core-type":
            driver = draw(
                st.sampled_from([m.core_type for m in CPU_MODELS if m.core_type != core_type][:8])
            )
            text = CORE_TYPE.format(core_type=core_type)
        elif kind == "device-model-name":
            driver = f"{cpu}-spapr-cpu-core"
            text = NOT_A_DEVICE_MODEL.format(driver=driver)
        elif kind == "device-node-id":
            node = draw(st.integers(1, 7))
            extra = f",node-id={node}"
            text = NODE_ID.format(node=0)
        else:  # device-nr-threads
            n = draw(st.sampled_from((0, 2, 4, 8)))
            extra = f",nr-threads={n}"
            text = NR_THREADS.format(n=n, threads=1)
        spec = f"{driver},id={dev_id},core-id={core_id}{extra}"
        args = [*_base(cpu, smp), "-device", spec]
        return InvalidMachine(kind, tuple(args), fatal(text, f"-device {spec}"))
    objects = ["-object", "memory-backend-ram,id=m0,size=512M"]
    objects += ["-object", "memory-backend-ram,id=m1,size=512M"]
    nodes = ["-numa", "node,nodeid=0,memdev=m0", "-numa", "node,nodeid=1,memdev=m1"]
    if kind == "numa-no-memdev":
        args = [*_base(cpu, smp), "-numa", "node,nodeid=0,cpus=0-3"]
        return InvalidMachine(kind, tuple(args), fatal(NUMA_NO_MEMDEV.format(ram=1 << 30)))
    if kind == "numa-cpu-index":
        last = draw(st.integers(4, 9))
        spec = f"node,nodeid=0,cpus=0-{last},memdev=m0"
        args = [*_base(cpu, smp), *objects, "-numa", spec, "-numa", "node,nodeid=1,memdev=m1"]
        text = NUMA_CPU_INDEX.format(i=4, m=4)
        return InvalidMachine(kind, tuple(args), fatal(text, f"-numa {spec}"))
    if kind == "numa-no-match":
        core_id = draw(st.integers(4, 9))
        spec = f"cpu,node-id=1,core-id={core_id}"
        args = [*_base(cpu, smp), *objects, *nodes, "-numa", spec]
        return InvalidMachine(kind, tuple(args), fatal(NUMA_NO_MATCH, f"-numa {spec}"))
    if kind == "numa-socket-id":
        spec = f"cpu,node-id=1,socket-id={draw(st.integers(0, 1))}"
        args = [*_base(cpu, smp), *objects, *nodes, "-numa", spec]
        return InvalidMachine(kind, tuple(args), fatal(NUMA_SOCKET_ID, f"-numa {spec}"))
    # numa-undefined-node
    node = draw(st.integers(2, 7))
    spec = f"cpu,node-id={node},core-id={draw(st.integers(0, 3))}"
    args = [*_base(cpu, smp), *objects, *nodes, "-numa", spec]
    return InvalidMachine(
        kind, tuple(args), fatal(NUMA_UNDEFINED_NODE.format(n=node), f"-numa {spec}")
    )


# ---------------------------------------------------------------------------
# Core device arguments
# ---------------------------------------------------------------------------


@attrs.frozen
class Refusal:
    """QEMU's answer to a refused monitor command: QMP error class and text."""

    error_class: str
    desc: str

    @classmethod
    def generic(cls, desc: str) -> Refusal:
        """A GenericError."""
        return cls("GenericError", desc)

    def qmp(self) -> dict[str, Any]:
        """The QMP error response."""
        return {"error": {"class": self.error_class, "desc": self.desc}}


@attrs.frozen
class CoreArgs:
    """device_add arguments of a core, the rule they break (None: valid) and QEMU's refusal.

    ``refusal`` is what a fresh machine of the configuration answers; on a machine
    with history the state-dependent rules (duplicate id, populated slot) may come
    first -- the state machine computes those.
    """

    args: Mapping[str, Any]
    kind: str | None = None
    refusal: Refusal | None = None


def _core_id_spellings(core_id: int) -> st.SearchStrategy[Any]:
    """The ways QMP clients spell a core-id QEMU reads as ``core_id``."""
    return st.sampled_from(
        [core_id, core_id, str(core_id), hex(core_id), float(core_id), core_id + (1 << 32)]
    )


IDS = ("c1", "c2", "c3", "core-a", "x.y", "x_y")


@st.composite
def core_device_args(
    draw: st.DrawFn, config: MachineArgs, *, ids: tuple[str, ...] = IDS
) -> CoreArgs:
    """Valid device_add arguments for a core of ``config`` in a slot free at start.

    The core-id is spelled any way QEMU reads it (int, decimal or hex string, a float
    with an integral value, 2**32 + id, which wraps as QEMU's C int); ``node-id`` and
    ``nr-threads`` are given or not, with their only valid values.
    """
    free = config.free_core_ids
    if not free:
        raise ValueError("the configuration has no free slot")
    core_id = draw(st.sampled_from(free))
    args: dict[str, Any] = {"driver": config.core_type}
    dev_id = draw(st.one_of(st.none(), st.sampled_from(ids)))
    if dev_id is not None:
        args["id"] = dev_id
    args["core-id"] = draw(_core_id_spellings(core_id))
    if draw(st.booleans()):
        args["node-id"] = draw(st.sampled_from([config.node_of(core_id), -1]))
    if draw(st.booleans()):
        args["nr-threads"] = config.threads
    return CoreArgs(args)


@st.composite
def invalid_core_device_args(draw: st.DrawFn, config: MachineArgs) -> CoreArgs:
    """device_add arguments breaking one rule, with QEMU 7.2's refusal on a fresh machine."""
    core_type = config.core_type
    free = config.free_core_ids or (0,)
    core_id = draw(st.sampled_from(free))
    base: dict[str, Any] = {"driver": core_type, "id": "bad", "core-id": core_id}
    kind = draw(
        st.sampled_from(
            (
                "missing-driver",
                "unknown-driver",
                "cpu-model-name",
                "abstract-driver",
                "wrong-core-type",
                "bad-id",
                "negative-core-id",
                "non-integer-core-id",
                "misaligned-core-id",
                "out-of-range",
                "populated",
                "nr-threads",
                "node-id",
                "unknown-property",
                "read-only-property",
            )
        )
    )
    g = Refusal.generic
    if kind == "missing-driver":
        del base["driver"]
        return CoreArgs(base, kind, g("Parameter 'driver' is missing"))
    if kind == "unknown-driver":
        name = draw(st.sampled_from(("nope", "spapr-cpu", "power9-spapr-cpu-core", "cpu-core0")))
        return CoreArgs({**base, "driver": name}, kind, g(NOT_A_DEVICE_MODEL.format(driver=name)))
    if kind == "cpu-model-name":
        name = f"{draw(st.sampled_from(('POWER8E', 'POWER9', 'POWER10')))}-spapr-cpu-core"
        return CoreArgs({**base, "driver": name}, kind, g(NOT_A_DEVICE_MODEL.format(driver=name)))
    if kind == "abstract-driver":
        refusal = g("Parameter 'driver' expects a non-abstract device type")
        return CoreArgs({**base, "driver": ABSTRACT_CORE_TYPE}, kind, refusal)
    if kind == "wrong-core-type":
        others = [m.core_type for m in CPU_MODELS if m.core_type != core_type]
        driver = draw(st.sampled_from(others))
        return CoreArgs({**base, "driver": driver}, kind, g(CORE_TYPE.format(core_type=core_type)))
    if kind == "bad-id":
        dev_id = draw(st.sampled_from(("9bad", "-x", ".x", "a b", "a/b", "a,b")))
        return CoreArgs({**base, "id": dev_id}, kind, g("Parameter 'id' expects an identifier"))
    if kind == "negative-core-id":
        n = draw(st.integers(-(2**31), -1))
        return CoreArgs({**base, "core-id": n}, kind, g(f"Invalid core id {n}"))
    if kind == "non-integer-core-id":
        value = draw(st.sampled_from(("abc", "2x", "", "1.5", 2.5, "0x")))
        return CoreArgs({**base, "core-id": value}, kind, g("Parameter 'core-id' expects integer"))
    if kind == "misaligned-core-id" and config.threads > 1:
        n = draw(st.sampled_from([c + 1 for c in free]))
        return CoreArgs({**base, "core-id": n}, kind, g(f"invalid core id {n}"))
    if kind in ("misaligned-core-id", "out-of-range"):
        n = draw(st.integers(config.maxcpus, config.maxcpus + 64))
        n -= n % config.threads
        return CoreArgs({**base, "core-id": n}, "out-of-range", g(CORE_OUT_OF_RANGE.format(n=n)))
    if kind == "populated":
        n = draw(st.sampled_from(config.core_ids[: config.boot_cores]))
        return CoreArgs({**base, "core-id": n}, kind, g(CORE_POPULATED.format(n=n)))
    if kind == "nr-threads":
        n = draw(st.sampled_from([t for t in (0, 1, 2, 4, 8) if t != config.threads]))
        refusal = g(NR_THREADS.format(n=n, threads=config.threads))
        return CoreArgs({**base, "nr-threads": n}, kind, refusal)
    if kind == "node-id" and not config.free_core_ids:
        kind = "populated"  # with every slot taken, "already populated" comes first
    if kind == "populated":
        n = draw(st.sampled_from(config.core_ids[: config.boot_cores]))
        return CoreArgs({**base, "core-id": n}, kind, g(CORE_POPULATED.format(n=n)))
    if kind == "node-id":
        right = config.node_of(core_id)
        node = draw(st.integers(0, 7).filter(lambda n: n != right))
        return CoreArgs({**base, "node-id": node}, kind, g(NODE_ID.format(node=right)))
    if kind == "unknown-property":
        name = draw(st.sampled_from(("foo", "threads", "socket-id", "core_id")))
        refusal = g(f"Property '{core_type}.{name}' not found")
        return CoreArgs({**base, name: 1}, kind, refusal)
    # read-only-property
    name = draw(st.sampled_from(("hotplugged", "hotpluggable", "parent_bus", "type")))
    return CoreArgs({**base, name: "x"}, kind, g(f"Property '{core_type}.{name}' is not writable"))


# ---------------------------------------------------------------------------
# Host operations
# ---------------------------------------------------------------------------


@attrs.frozen
class DeviceAdd:
    """QMP device_add with these arguments."""

    args: Mapping[str, Any]

    def qmp(self) -> dict[str, Any]:
        """The QMP request."""
        return {"execute": "device_add", "arguments": dict(self.args)}


@attrs.frozen
class DeviceDel:
    """QMP device_del of an id (under /machine/peripheral) or an absolute QOM path."""

    target: str

    def qmp(self) -> dict[str, Any]:
        """The QMP request."""
        return {"execute": "device_del", "arguments": {"id": self.target}}


@attrs.frozen
class SystemReset:
    """QMP system_reset."""

    def qmp(self) -> dict[str, Any]:
        """The QMP request."""
        return {"execute": "system_reset"}


@attrs.frozen
class Stop:
    """QMP stop."""

    def qmp(self) -> dict[str, Any]:
        """The QMP request."""
        return {"execute": "stop"}


@attrs.frozen
class Cont:
    """QMP cont."""

    def qmp(self) -> dict[str, Any]:
        """The QMP request."""
        return {"execute": "cont"}


@attrs.frozen
class Migrate:
    """Migrate to a file and continue on the destination (the emulator's ``file:`` scheme)."""


@attrs.frozen
class TimePasses:
    """Virtual time passes (the guest runs, if the VM runs)."""

    ns: int


HostOperation = DeviceAdd | DeviceDel | SystemReset | Stop | Cont | Migrate | TimePasses


def device_del_targets(config: MachineArgs, ids: tuple[str, ...] = IDS) -> list[str]:
    """Ids and QOM paths device_del is worth trying on ``config``: cores, non-devices, unknowns.

    Boot cores are ``/machine/unattached/device[N]`` (after the XIVE controller on
    POWER9 and later), cores without an id ``/machine/peripheral-anon/device[N]``.
    """
    first = 1 if config.cpu.upper().startswith(("POWER9", "POWER10", "HOST")) else 0
    boot = [f"/machine/unattached/device[{first + i}]" for i in range(config.boot_cores)]
    anon = [f"/machine/peripheral-anon/device[{i}]" for i in range(2)]
    cold = [c.dev_id for c in config.coldplug]
    return [*ids, *cold, *boot, *anon, "nope", "/machine/peripheral/nope", "/machine/peripheral"]


@st.composite
def host_operations(
    draw: st.DrawFn,
    config: MachineArgs,
    *,
    migrate: bool = True,
    max_ns: int = 2_000_000_000,
) -> HostOperation:
    """One host operation on a machine of ``config`` (valid and invalid device_add both)."""
    kind = draw(
        st.sampled_from(
            ("add", "add", "bad-add", "del", "del", "reset", "stop", "cont", "time", "time")
            + (("migrate",) if migrate else ())
        )
    )
    if kind == "add" and config.free_core_ids:
        return DeviceAdd(draw(core_device_args(config)).args)
    if kind in ("add", "bad-add"):
        return DeviceAdd(draw(invalid_core_device_args(config)).args)
    if kind == "del":
        return DeviceDel(draw(st.sampled_from(device_del_targets(config))))
    if kind == "reset":
        return SystemReset()
    if kind == "stop":
        return Stop()
    if kind == "cont":
        return Cont()
    if kind == "migrate":
        return Migrate()
    return TimePasses(draw(st.integers(0, max_ns)))


def host_sequences(
    config: MachineArgs, *, min_size: int = 1, max_size: int = 20, migrate: bool = True
) -> st.SearchStrategy[list[HostOperation]]:
    """Lists of :func:`host_operations`."""
    return st.lists(host_operations(config, migrate=migrate), min_size=min_size, max_size=max_size)


# ---------------------------------------------------------------------------
# RTAS calls from a guest
# ---------------------------------------------------------------------------

#: Sensor and indicator numbers of the DR calls (PAPR): isolation, dr-indicator, allocation.
DR_INDICATORS = (9001, 9002, 9003)
#: The buffer Linux hands check-exception / event-scan (rtas-error-log-max).
ERRLOG_MAX = 2048
#: Event classes Linux asks for (internal errors, EPOW, hotplug, IO) and odd masks.
EVENT_MASKS = (0x80000000, 0x40000000, 0x10000000, 0x08000000, 0x50000000, 0, 0xFFFFFFFF)


@attrs.frozen
class RtasCall:
    """One RTAS call as a guest makes it: token, arguments, nret, the calling vCPU.

    ``buffer`` is where the argument buffer goes in guest memory: None for the
    caller's usual scratch area, or an offset from the end of RAM (``-k``: k bytes
    before the end, ``0`` or positive: at or past it). The memory a call hands over
    (configure-connector's work area, check-exception's and event-scan's error-log
    buffer) is the caller's scratch area, or ``area_from_end`` bytes before the end
    of RAM; the executor writes its address into the argument that names it.
    """

    token: int
    args: tuple[int, ...]
    nret: int
    caller: int = 0
    buffer: int | None = None
    #: configure-connector: how many calls of a walk to make (1: one step).
    steps: int = 1
    #: configure-connector: the DRC index to put in the work area (args[0] is its address).
    work_index: int | None = None
    #: Put the work area / error-log buffer this many bytes before the end of RAM.
    area_from_end: int | None = None

    @property
    def name(self) -> str:
        """The service name (``0x...`` for tokens no service has)."""
        for name, token in TOKENS_BY_NAME.items():
            if token == self.token:
                return name
        return f"0x{self.token:x}"


def cpu_drc_indexes(config: MachineArgs) -> list[int]:
    """The CPU connector index of every slot of ``config`` (0x10000000 + thread-0 vCPU id)."""
    topology = machine_setup(tuple(config.argv(devices=False))).topology
    return [0x10000000 + topology.vcpu_id(core_id) for core_id in config.core_ids]


def vcpu_ids(config: MachineArgs) -> list[int]:
    """The vCPU ids of every possible thread of ``config``."""
    topology = machine_setup(tuple(config.argv(devices=False))).topology
    return [
        topology.vcpu_id(core_id + t) for core_id in config.core_ids for t in range(config.threads)
    ]


@st.composite
def rtas_calls(
    draw: st.DrawFn, config: MachineArgs, *, hostile: bool = True, callers: tuple[int, ...] = (0,)
) -> RtasCall:
    """An RTAS call a guest of ``config`` makes from one of ``callers`` (existing vCPU ids).

    Well-formed: the DR and vCPU services with their nargs/nret and plausible
    values. Hostile adds: any token (registered or not), wrong nargs/nret, argument
    buffers and work areas at or past the end of guest memory, configure-connector
    on any index and for any number of steps, start-cpu of running or absent
    vCPUs, stop-self by a thread that was not asked to stop.
    """
    indexes = cpu_drc_indexes(config)
    index = draw(
        st.one_of(
            st.sampled_from(indexes),
            st.sampled_from(indexes),
            *(
                [st.sampled_from([0x20000000, 0x40000000, 0x10000000 | 0xFFFF]),
                 st.integers(0, 0xFFFFFFFF)]
                if hostile
                else []
            ),
        )
    )  # fmt: skip
    vcpu = draw(st.one_of(st.sampled_from(vcpu_ids(config)), st.integers(0, 64)))
    caller = draw(st.sampled_from(callers))
    service = draw(
        st.sampled_from(
            (
                "set-indicator",
                "set-indicator",
                "get-sensor-state",
                "ibm,configure-connector",
                "ibm,configure-connector",
                "check-exception",
                "event-scan",
                "start-cpu",
                "stop-self",
                "query-cpu-stopped-state",
            )
            + (("any-token", "any-token") if hostile else ())
        )
    )
    nargs_nret: dict[str, tuple[int, int]] = {
        "set-indicator": (3, 1),
        "get-sensor-state": (2, 2),
        "ibm,configure-connector": (2, 1),
        "check-exception": (6, 1),
        "event-scan": (4, 1),
        "start-cpu": (3, 1),
        "stop-self": (0, 1),
        "query-cpu-stopped-state": (1, 2),
    }
    buffer: int | None = None
    if hostile and draw(st.integers(0, 9)) == 0:
        buffer = draw(st.integers(-64, 64))
    area_from_end: int | None = None
    if hostile and draw(st.integers(0, 9)) == 0:
        area_from_end = draw(st.integers(0, 4096))
    if service == "any-token":
        token = draw(
            st.one_of(
                st.integers(RTAS_TOKEN_BASE, RTAS_TOKEN_MAX),
                st.integers(0, 0xFFFFFFFF),
                st.just(0xA),
            )
        )
        stop_like = (TOKENS_BY_NAME["stop-self"], TOKENS_BY_NAME["ibm,os-term"])
        power = (TOKENS_BY_NAME["power-off"], TOKENS_BY_NAME["system-reboot"])
        if token in stop_like + power + (TOKENS_BY_NAME["ibm,suspend-me"],):
            token = TOKENS_BY_NAME["get-time-of-day"]
        args = tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=8)))
        return RtasCall(token, args, draw(st.integers(0, 4)), caller, buffer)
    nargs, nret = nargs_nret[service]
    if hostile and draw(st.integers(0, 7)) == 0:
        nargs = draw(st.integers(0, 8))
    if hostile and draw(st.integers(0, 7)) == 0:
        nret = draw(st.integers(0, 4))
    token = TOKENS_BY_NAME[service]
    steps = 1
    work_index: int | None = None
    if service == "set-indicator":
        values = (0, 1, 2, 3) + ((7, 0xFFFFFFFF) if hostile else ())
        args = (draw(st.sampled_from(DR_INDICATORS)), index, draw(st.sampled_from(values)))
    elif service == "get-sensor-state":
        args = (draw(st.sampled_from((9003, 9003, 9001, 9))), index)
    elif service == "ibm,configure-connector":
        work_index = index
        steps = draw(st.integers(1, 40))
        args = (0, 0)
    elif service == "check-exception":
        length = draw(st.sampled_from((ERRLOG_MAX, 116, 8, 0) if hostile else (ERRLOG_MAX,)))
        args = (0x500, 0x1001, draw(st.sampled_from(EVENT_MASKS)), 0, 0, length)
    elif service == "event-scan":
        args = (0xFFFFFFFF, 0, 0, ERRLOG_MAX)
    elif service == "start-cpu":
        args = (vcpu, 0x4000, vcpu)
    elif service == "stop-self":
        args = ()
    else:
        args = (vcpu,)
    args = (args + (0,) * nargs)[:nargs]
    return RtasCall(token, args, nret, caller, buffer, steps, work_index, area_from_end)


# ---------------------------------------------------------------------------
# Guest behaviours
# ---------------------------------------------------------------------------


@attrs.frozen
class GuestBehaviour:
    """How the reference guest behaves: its era, its deliberate faults, its delays.

    :meth:`option` is the ``-guest`` spelling when the behaviour has one (then a
    migration target can rebuild the guest); custom delays have none.
    """

    mode: GuestMode = GuestMode.IN_KERNEL_DLPAR
    misbehavior: Misbehavior = attrs.field(factory=Misbehavior)
    timing: GuestTiming = attrs.field(factory=GuestTiming)

    @property
    def refuses_unplug(self) -> bool:
        """The guest never completes a device_del (ignore-unplug)."""
        return self.misbehavior.ignore_unplug

    def option(self) -> str | None:
        """The ``-guest`` value for this behaviour, or None when it has none."""
        if attrs.evolve(self.timing, event_scan=True) != GuestTiming():
            return None
        parts = ["linux" if self.mode is GuestMode.IN_KERNEL_DLPAR else "drmgr"]
        mis = self.misbehavior
        if mis.ignore_unplug:
            parts.append("ignore-unplug")
        if mis.abandon_configure_after is not None:
            parts.append(f"abandon-configure={mis.abandon_configure_after}")
        if mis.wrong_indices is not None:
            if mis.wrong_indices != WrongIndices():
                return None
            parts.append("wrong-indices")
        if not self.timing.event_scan:
            parts.append("event-scan=off")
        return "+".join(parts)


@st.composite
def guest_behaviours(
    draw: st.DrawFn, *, faults: bool = True, delays: bool = True
) -> GuestBehaviour:
    """The reference guest: Linux 6.1 or rtas_errd + drmgr, with faults and arbitrary delays."""
    mode = draw(st.sampled_from(list(GuestMode)))
    misbehavior = Misbehavior()
    if faults and draw(st.booleans()):
        fault = draw(st.sampled_from(("ignore-unplug", "abandon-configure", "wrong-indices")))
        if fault == "ignore-unplug":
            misbehavior = Misbehavior(ignore_unplug=True)
        elif fault == "abandon-configure":
            misbehavior = Misbehavior(abandon_configure_after=draw(st.integers(0, 12)))
        else:
            misbehavior = Misbehavior(wrong_indices=WrongIndices())
    timing = GuestTiming(event_scan=draw(st.booleans()))
    if delays and draw(st.booleans()):
        ns = st.integers(1, 5_000_000)
        timing = attrs.evolve(
            timing,
            boot_ns=draw(st.integers(1, 50_000_000)),
            secondary_start_ns=draw(ns),
            irq_handler_ns=draw(ns),
            dlpar_step_ns=draw(ns),
            die_poll_ns=draw(st.integers(1_000, 5_000_000)),
            userspace_step_ns=draw(ns),
        )
    return GuestBehaviour(mode, misbehavior, timing)
