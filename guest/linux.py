"""The reference guest as the machine and its users see it.

:class:`LinuxGuest` is what the machine boots: it gives the guest its memory
(:meth:`LinuxGuest.attach` or the constructor), starts the boot thread at
:attr:`LinuxGuest.entry_point` with r3 = the device-tree blob's address, and asks
:meth:`LinuxGuest.program_factory` for the program of every thread it starts (the
boot thread, and each thread the guest starts itself with start-cpu at
:attr:`LinuxGuest.secondary_entry`). Tests and users read the guest's state and
views from here: logical CPUs, the live device tree, negotiated features, the log,
the guest's own RTAS call record, per-DRC outcomes, lscpu / numactl / sysfs text.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, ClassVar

import attrs

import fdt
from guest import ras, userspace, views
from guest.cas import NR_CPUS_DEFAULT, NegotiatedFeatures
from guest.kernel import BOOT_ENTRY, SECONDARY_ENTRY, Kernel, KernelConfig
from guest.log import GuestLog
from guest.options import GuestMode, GuestTiming, Misbehavior
from guest.state import CpuInfo, DrcAction, RtasRecord
from rtas import GuestMemory
from rtas.hcalls import Hcall

Program = Generator[Any, Any, None]


def _idle_forever() -> Program:
    """A thread started somewhere the guest never sends threads: it just idles."""
    while True:
        yield (Hcall.H_CEDE,)


@attrs.define(eq=False)
class LinuxGuest:
    """A Linux 6.1 pseries guest (optionally the older rtas_errd + drmgr stack)."""

    memory: GuestMemory | None = None
    mode: GuestMode = GuestMode.IN_KERNEL_DLPAR
    misbehavior: Misbehavior = attrs.field(factory=Misbehavior)
    timing: GuestTiming = attrs.field(factory=GuestTiming)
    #: The machine's virtual clock in ns (the guest's timebase register).
    timebase: Callable[[], int] | None = None
    #: NR_CPUS / nr_cpus=: the most logical CPU ids the kernel will use.
    nr_cpus: int = NR_CPUS_DEFAULT
    #: Register VPAs (and SLB shadows) with H_REGISTER_VPA as Linux does.
    register_vpa: bool = False
    #: The kernel command line has ``xive=off``: XICS even where the platform offers
    #: XIVE. The rtas_errd + drmgr guest's kernel is of the seed's era (2016), older
    #: than Linux's XIVE driver (4.12), so it runs XICS whatever this says.
    xive_off: bool = False
    log: GuestLog = attrs.field(factory=GuestLog, init=False)
    _kernel: Kernel | None = attrs.field(default=None, init=False)

    #: Address the machine starts the boot thread at.
    entry_point: ClassVar[int] = BOOT_ENTRY
    #: Address the guest passes to start-cpu for its secondary threads.
    secondary_entry: ClassVar[int] = SECONDARY_ENTRY

    def attach(self, memory: GuestMemory, timebase: Callable[[], int] | None = None) -> None:
        """Give the guest its RAM (and clock) before the machine starts it."""
        self.memory = memory
        if timebase is not None:
            self.timebase = timebase

    # ---------------------------------------------------------------- machine

    def program_factory(self, vcpu_id: int, entry: int, r3: int) -> Program:
        """The program of a thread the machine starts at ``entry`` with ``r3``.

        ``entry_point`` boots a fresh kernel (r3 = device-tree address); the
        secondary entry runs Linux's secondary start for hardware thread ``r3``;
        any other address gets a thread that only idles.
        """
        if entry == BOOT_ENTRY:
            if self.memory is None:
                raise RuntimeError("the guest has no memory: call attach() first")
            self.log.clear()
            self._kernel = Kernel(
                KernelConfig(
                    self.memory,
                    self.mode,
                    self.misbehavior,
                    self.timing,
                    self.timebase,
                    self.nr_cpus,
                    self.register_vpa,
                    ras.init_task,
                    xive_off=self.xive_off or self.mode is not GuestMode.IN_KERNEL_DLPAR,
                ),
                self.log,
            )
            return self._kernel.boot_program(vcpu_id, r3)
        if entry == SECONDARY_ENTRY and self._kernel is not None:
            return self._kernel.secondary_program(r3)
        return _idle_forever()

    # ------------------------------------------------------------------ state

    @property
    def kernel(self) -> Kernel:
        """The running kernel (RuntimeError before the first boot)."""
        if self._kernel is None:
            raise RuntimeError("the guest has not booted")
        return self._kernel

    @property
    def booted(self) -> bool:
        """Boot finished: secondaries up, interrupts requested."""
        return self._kernel is not None and self._kernel.booted

    @property
    def powered_off(self) -> bool:
        """The guest called RTAS power-off."""
        return self._kernel is not None and self._kernel.powered_off

    @property
    def tree(self) -> fdt.Node:
        """The live device tree (after CAS, with hot-added nodes)."""
        return self.kernel.tree

    @property
    def features(self) -> NegotiatedFeatures:
        """The negotiated option vector 5."""
        return self.kernel.features

    @property
    def rtas_trace(self) -> list[RtasRecord]:
        """The RTAS calls this boot made, in order (the latest few thousand: a bounded log)."""
        return self.kernel.rtas_trace

    @property
    def drc_actions(self) -> dict[int, DrcAction]:
        """The last DR operation per DRC index."""
        return self.kernel.drc_actions

    def cpus(self) -> list[CpuInfo]:
        """Present logical CPUs with their hardware ids, state, node and socket."""
        return [
            CpuInfo(c.logical, c.hwid, c.online, c.node, c.chip_id, c.node_path)
            for c in self.kernel.present_cpus()
            if c.hwid is not None
        ]

    def online_cpus(self) -> list[int]:
        """Online logical CPU ids."""
        return [c.logical for c in self.kernel.online_cpus()]

    def present_cpus(self) -> list[int]:
        """Present logical CPU ids."""
        return [c.logical for c in self.kernel.present_cpus()]

    def possible_cpus(self) -> list[int]:
        """Possible logical CPU ids (from ibm,lrdr-capacity and NR_CPUS)."""
        return sorted(self.kernel.cpus)

    def hwids(self) -> dict[int, int]:
        """Logical CPU -> hardware thread id, for present CPUs."""
        return {c.logical: c.hwid for c in self.cpus()}

    # ------------------------------------------------------------------ views

    def lscpu(self) -> list[str]:
        """``lscpu`` output lines."""
        return views.lscpu(self.kernel)

    def numactl_hardware(self) -> list[str]:
        """``numactl -H`` output lines."""
        return views.numactl_hardware(self.kernel)

    def sys_cpu_online(self) -> str:
        """/sys/devices/system/cpu/online."""
        return views.sys_cpu_online(self.kernel)

    def sys_cpu_present(self) -> str:
        """/sys/devices/system/cpu/present."""
        return views.sys_cpu_present(self.kernel)

    def sys_cpu_possible(self) -> str:
        """/sys/devices/system/cpu/possible."""
        return views.sys_cpu_possible(self.kernel)

    def dmesg(self) -> list[str]:
        """The kernel log as ``dmesg`` prints it."""
        return self.log.dmesg()

    # --------------------------------------------------------------- requests

    def request_cpu_online(self, logical: int) -> None:
        """``echo 1 > /sys/devices/system/cpu/cpuN/online`` (run by the guest's shell)."""
        self.kernel.user_requests.append(userspace.sysfs_cpu_online(logical, True))

    def request_cpu_offline(self, logical: int) -> None:
        """``echo 0 > /sys/devices/system/cpu/cpuN/online``."""
        self.kernel.user_requests.append(userspace.sysfs_cpu_online(logical, False))
