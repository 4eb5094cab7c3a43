"""The CPU topology of a pseries machine: vCPU ids, core slots, NUMA nodes, DRC indexes.

A hotplug unit is a core of ``threads`` threads. Slot i (``0 <= i < maxcpus /
threads``) holds core-id ``i * threads``; its threads have cpu_index ``core-id`` to
``core-id + threads - 1``. vCPU ids (the guest's hardware thread ids) spread cores
``vsmt`` apart: ``vcpu_id = cpu_index / threads * vsmt + cpu_index % threads``. Each
slot has a CPU DR connector whose index is that of thread 0's vCPU id. Machines
older than pseries-2.7 have no hotplug: slots cover just the boot CPUs and there
are no CPU DRCs.

``vsmt_checks`` and ``cpu_count_checks`` are the pseries start-up checks, in
QEMU's order (``spapr_set_vsmt_mode`` then ``spapr_init_cpus``).
"""

from __future__ import annotations

import attrs

from machine.config.accel import Accelerator, KvmHost
from machine.config.machine_types import MachineType
from machine.config.qemu_opts import QemuWarning, is_power_of_2
from machine.config.smp import SmpTopology
from spapr.errors import QemuError


def cpu_drc_index(vcpu_id: int) -> int:
    """The index of the CPU DR connector whose id is ``vcpu_id`` (0x10000000 | id)."""
    from spapr.drc import DrcType, drc_index

    return drc_index(DrcType.CPU, vcpu_id)


@attrs.frozen
class CpuSlot:
    """One possible core (QEMU's CPUArchId): what ``query-hotpluggable-cpus`` lists."""

    index: int
    core_id: int
    node_id: int
    vcpus_count: int
    type: str

    @property
    def arch_id(self) -> int:
        return self.core_id


def default_vsmt(machine: MachineType, threads: int) -> int:
    """VSMT when the user gives none: threads (>= 4.2), else max(8, threads)."""
    return threads if machine.smp_threads_vsmt else max(8, threads)


def vsmt_checks(
    machine: MachineType,
    threads: int,
    user_vsmt: int | None,
    accel: Accelerator,
    warnings: list[QemuWarning],
) -> int:
    """``spapr_set_vsmt_mode``: the VSMT mode to use, or QEMU's refusal.

    Under the modeled KVM the host's SMT mode is changed when it differs, with
    QEMU's warning (usable anyway) or error (plus hints) when KVM refuses.
    """
    host = accel.kvm_host
    if host is None and threads > 1:
        raise QemuError("TCG cannot support more than 1 thread/core on a pseries machine")
    if not is_power_of_2(threads):
        raise QemuError(
            f"Cannot support {threads} threads/core on a pseries machine because it must be "
            "a power of 2"
        )
    if user_vsmt:
        if user_vsmt < threads:
            raise QemuError(
                f"Cannot support VSMT mode {user_vsmt} because it must be >= threads/core "
                f"({threads})"
            )
        vsmt = user_vsmt
    else:
        vsmt = default_vsmt(machine, threads)
    if host is not None and vsmt != host.initial_smt:
        _kvm_set_vsmt(host, vsmt, threads, bool(user_vsmt), warnings)
    return vsmt


def _kvm_set_vsmt(
    host: KvmHost, vsmt: int, threads: int, vsmt_user: bool, warnings: list[QemuWarning]
) -> None:
    ret = host.set_smt_errno(vsmt)
    if ret == 0:
        return
    kvm_smt = host.initial_smt
    message = f"Failed to set KVM's VSMT mode to {vsmt} (errno {ret})"
    if kvm_smt >= threads and vsmt % kvm_smt == 0:
        warnings.append(QemuWarning(message))
        return
    hints = []
    if not vsmt_user:
        hints.append(
            f"On PPC, a VM with {threads} threads/core on a host with {kvm_smt} threads/core "
            f"requires the use of VSMT mode {vsmt}."
        )
    modes = " ".join(str(m) for m in host.smt_possible())
    hints.append(f"Available VSMT modes: {modes}.")
    raise QemuError("\n".join([message, *hints]))


def cpu_count_checks(machine: MachineType, smp: SmpTopology) -> None:
    """The checks at the start of ``spapr_init_cpus`` (after the VSMT mode is set)."""
    if machine.has_hotpluggable_cpus:
        if smp.cpus % smp.threads:
            raise QemuError(f"smp_cpus ({smp.cpus}) must be multiple of threads ({smp.threads})")
        if smp.max_cpus % smp.threads:
            raise QemuError(
                f"max_cpus ({smp.max_cpus}) must be multiple of threads ({smp.threads})"
            )
    elif smp.max_cpus != smp.cpus:
        raise QemuError("This machine version does not support CPU hotplug")


def slot_count(machine: MachineType, smp: SmpTopology) -> int:
    """Number of possible cores (``spapr_possible_cpu_arch_ids``)."""
    if not machine.has_hotpluggable_cpus:
        return -(-smp.cpus // smp.threads)
    return smp.max_cpus // smp.threads


@attrs.frozen
class Topology:
    """The machine's CPU topology after all start-up checks.

    ``slot_nodes[i]`` is the NUMA node of slot i; ``num_nodes`` counts the nodes
    (at least 1: pseries always has NUMA node 0).
    """

    machine: MachineType
    smp: SmpTopology
    vsmt: int
    core_type: str
    slot_nodes: tuple[int, ...]
    num_nodes: int

    @property
    def cpus(self) -> int:
        return self.smp.cpus

    @property
    def max_cpus(self) -> int:
        return self.smp.max_cpus

    @property
    def sockets(self) -> int:
        return self.smp.sockets

    @property
    def cores(self) -> int:
        """Cores per socket."""
        return self.smp.cores

    @property
    def threads(self) -> int:
        """Threads per core."""
        return self.smp.threads

    def vcpu_id(self, cpu_index: int) -> int:
        """The vCPU id (guest hardware thread id) of a thread (``spapr_vcpu_id``)."""
        return cpu_index // self.threads * self.vsmt + cpu_index % self.threads

    def cpu_index_of_vcpu(self, vcpu_id: int) -> int | None:
        """The cpu_index whose vCPU id is ``vcpu_id``, or None if none is."""
        core, thread = divmod(vcpu_id, self.vsmt)
        if thread >= self.threads:
            return None
        return core * self.threads + thread

    def is_thread0(self, vcpu_id: int) -> bool:
        """Whether the vCPU is the first thread of its virtual core."""
        return vcpu_id % self.vsmt == 0

    @property
    def slot_count(self) -> int:
        return len(self.slot_nodes)

    @property
    def slots(self) -> tuple[CpuSlot, ...]:
        """All possible cores in slot order."""
        return tuple(self.slot(i) for i in range(self.slot_count))

    def slot(self, index: int) -> CpuSlot:
        """Slot ``index``."""
        return CpuSlot(
            index, index * self.threads, self.slot_nodes[index], self.threads, self.core_type
        )

    def slot_index(self, core_id: int) -> int | None:
        """``spapr_find_cpu_slot``: slot of a core-id (core_id / threads), None if too big.

        (Whether core_id is a multiple of threads is checked separately.)
        """
        index = core_id // self.threads
        return index if 0 <= index < self.slot_count else None

    @property
    def boot_cores(self) -> int:
        """Cores created at machine init (slots 0 .. boot_cores - 1)."""
        if not self.machine.has_hotpluggable_cpus:
            return self.slot_count
        return self.cpus // self.threads

    def boot_core_threads(self, index: int) -> int:
        """Threads of boot core ``index`` (the last one may be partial before 2.7)."""
        if (index + 1) * self.threads >= self.cpus:
            return self.cpus - index * self.threads
        return self.threads

    def drc_id(self, core_id: int) -> int:
        """The CPU DRC id of a slot: the vCPU id of its thread 0."""
        return self.vcpu_id(core_id)

    def drc_index(self, core_id: int) -> int:
        """The CPU DRC index of the slot holding ``core_id``."""
        return cpu_drc_index(self.drc_id(core_id))

    def cpu_drc_indexes(self) -> tuple[int, ...]:
        """CPU DRC indexes in creation (slot) order; none before pseries-2.7."""
        if not self.machine.has_cpu_drcs:
            return ()
        return tuple(self.drc_index(slot.core_id) for slot in self.slots)

    @property
    def max_server_number(self) -> int:
        """Size of the interrupt-presenter id space: ceil(maxcpus * vsmt / threads)."""
        return -(-self.max_cpus * self.vsmt // self.threads)

    def chip_id(self, cpu_index: int) -> int:
        """``ibm,chip-id`` of a thread: its socket."""
        return cpu_index // (self.threads * self.cores)

    def node_of_core(self, core_id: int) -> int | None:
        """NUMA node of the slot holding ``core_id``."""
        index = self.slot_index(core_id)
        return None if index is None else self.slot_nodes[index]

    def kvm_vcpu_id_error(self, cpu_index: int, host: KvmHost) -> QemuError | None:
        """``spapr_set_vcpu_id`` under KVM: QEMU's refusal if the id is too large."""
        vcpu_id = self.vcpu_id(cpu_index)
        if vcpu_id < host.max_vcpu_id:
            return None
        return QemuError(
            f"Can't create CPU with id {vcpu_id} in KVM\n"
            f"Adjust the number of cpus to {vcpu_id * self.threads // self.vsmt} "
            "or try to raise the number of threads per core"
        )
