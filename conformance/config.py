"""Machine configurations as values: the ``-M``/``-cpu``/``-smp``/``-numa``/``-device`` words.

:class:`MachineArgs` is one qemu-system-ppc64 command line for a pseries machine,
kept as fields (accelerator, CPU model, machine version, topology, NUMA layout,
cold-plugged cores) so strategies can build them and tests can reason about them
(how many slots, which core-ids, which type a hot-plugged core must have).
:meth:`MachineArgs.argv` spells it as QEMU reads it. :class:`InvalidMachine` is a
command line QEMU refuses, with the exact text QEMU 7.2 prints.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs

from machine.config.cmdline import parse_argv
from machine.config.startup import MachineSetup, startup

#: What QEMU prefixes to every fatal message on stderr.
PROG = "qemu-system-ppc64"


@attrs.frozen
class NumaLayout:
    """NUMA nodes (memory split evenly between them) and the node of every core slot.

    ``legacy_cpus`` spells the mapping as ``-numa node,...,cpus=A-B`` (QEMU 7.2 still
    accepts it) instead of one ``-numa cpu,node-id=N,core-id=C`` per slot.
    """

    nodes: int
    core_nodes: tuple[int, ...]
    legacy_cpus: bool = False


@attrs.frozen
class ColdplugCore:
    """A core given on the command line: ``-device <core type>,id=ID,core-id=N``."""

    core_id: int
    dev_id: str


@attrs.frozen
class MachineArgs:
    """One pseries machine's command line (without the oracle's ``-S -nodefaults ...``).

    The topology is ``-smp cpus,[sockets=S,]cores=C,threads=T,maxcpus=M``; slot ``i``
    holds core-id ``i * threads`` and the first ``cpus / threads`` slots are boot
    cores. ``accel`` is ``tcg`` (what the oracle ran) or ``kvm`` (the emulator's
    modelled KVM host; no live QEMU counterpart here).
    """

    cpu: str = "POWER9"
    accel: str = "tcg"
    machine: str = "pseries"
    machine_props: tuple[tuple[str, str], ...] = ()
    cpus: int = 2
    cores: int = 4
    threads: int = 1
    maxcpus: int = 4
    sockets: int | None = None
    memory_mb: int = 1024
    numa: NumaLayout | None = None
    coldplug: tuple[ColdplugCore, ...] = ()
    incoming_defer: bool = False

    # ------------------------------------------------------------ facts

    @property
    def max_cores(self) -> int:
        """Possible cores (hotplug slots plus boot cores)."""
        return self.maxcpus // self.threads

    @property
    def boot_cores(self) -> int:
        """Cores created from ``-smp cpus``."""
        return self.cpus // self.threads

    @property
    def core_ids(self) -> tuple[int, ...]:
        """The core-id of every slot, lowest first."""
        return tuple(i * self.threads for i in range(self.max_cores))

    @property
    def free_core_ids(self) -> tuple[int, ...]:
        """Slots no boot or cold-plugged core occupies at start."""
        taken = set(self.core_ids[: self.boot_cores]) | {c.core_id for c in self.coldplug}
        return tuple(c for c in self.core_ids if c not in taken)

    @property
    def is_kvm(self) -> bool:
        """The modelled KVM accelerator (no live QEMU to compare with here)."""
        return self.accel == "kvm"

    @property
    def core_type(self) -> str:
        """The only core type device_add accepts (``power9_v2.0-spapr-cpu-core``...)."""
        return machine_setup(tuple(self.argv(devices=False))).core_type

    def node_of(self, core_id: int) -> int:
        """The NUMA node of a core slot (0 without NUMA)."""
        if self.numa is None:
            return 0
        return self.numa.core_nodes[core_id // self.threads]

    # ------------------------------------------------------------ spelling

    def smp(self) -> str:
        """The ``-smp`` value."""
        parts = [str(self.cpus)]
        if self.sockets is not None:
            parts.append(f"sockets={self.sockets}")
        parts += [f"cores={self.cores}", f"threads={self.threads}", f"maxcpus={self.maxcpus}"]
        return ",".join(parts)

    def machine_option(self) -> str:
        """The ``-M`` value."""
        return ",".join([self.machine, *(f"{k}={v}" for k, v in self.machine_props)])

    def argv(self, *, devices: bool = True) -> list[str]:
        """The command line QEMU and the emulator both read (no program name).

        ``devices=False`` leaves out the ``-device`` cores and ``-incoming``.
        """
        out: list[str] = []
        if self.accel != "tcg":
            out += ["-accel", self.accel]
        out += ["-M", self.machine_option(), "-cpu", self.cpu, "-smp", self.smp()]
        out += [
            "-m",
            f"{self.memory_mb}M" if self.memory_mb % 1024 else f"{self.memory_mb // 1024}G",
        ]
        if self.numa is not None:
            out += self._numa_words(self.numa)
        if not devices:
            return out
        for core in self.coldplug:
            out += ["-device", f"{self.core_type},id={core.dev_id},core-id={core.core_id}"]
        if self.incoming_defer:
            out += ["-incoming", "defer"]
        return out

    def _numa_words(self, numa: NumaLayout) -> list[str]:
        share = self.memory_mb // numa.nodes
        words: list[str] = []
        for node in range(numa.nodes):
            words += ["-object", f"memory-backend-ram,id=m{node},size={share}M"]
        for node in range(numa.nodes):
            spec = f"node,nodeid={node}"
            if numa.legacy_cpus:
                for slot, owner in enumerate(numa.core_nodes):
                    if owner == node:
                        first = slot * self.threads
                        last = first + self.threads - 1
                        spec += f",cpus={first}" if first == last else f",cpus={first}-{last}"
            words += ["-numa", f"{spec},memdev=m{node}"]
        if not numa.legacy_cpus:
            for slot, owner in enumerate(numa.core_nodes):
                words += ["-numa", f"cpu,node-id={owner},core-id={slot * self.threads}"]
        return words

    def describe(self) -> str:
        """A one-line summary for reports."""
        return " ".join(self.argv())


@functools.cache
def machine_setup(argv: tuple[str, ...]) -> MachineSetup:
    """What the emulator's start-up makes of a command line (QemuError if it refuses)."""
    return startup(parse_argv(list(argv)))


@attrs.frozen
class InvalidMachine:
    """A command line QEMU 7.2 refuses: the words, and what QEMU prints before exiting 1.

    ``kind`` names the rule broken (``tcg-smt``, ``topology-product``, ...);
    ``stderr`` is the whole of QEMU's stderr, every line ending in a newline.
    """

    kind: str
    args: tuple[str, ...]
    stderr: str
    exit_code: int = 1


def fatal(message: str, location: str | None = None) -> str:
    """QEMU's error_report text: ``qemu-system-ppc64: [LOCATION: ]MESSAGE`` and a newline."""
    where = f"{location}: " if location else ""
    return f"{PROG}: {where}{message}\n"


def argv_words(args: Sequence[str]) -> tuple[str, ...]:
    """A command line as a tuple (hashable, for caches and reports)."""
    return tuple(args)
