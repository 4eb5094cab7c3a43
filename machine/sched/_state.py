"""vCPU thread states and the transitions between them, as data.

The scheduler moves a thread only along :data:`TRANSITIONS`; the trace names
each move (``vcpu_state`` with ``old``/``new``), so a reader or a test can check a
whole run against this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class VcpuState(enum.IntEnum):
    """Scheduling state of one vCPU thread."""

    #: Created, or after stop-self (or a guest-program bug): only start-cpu starts it.
    STOPPED = 0
    #: Has work and waits for a host processor.
    RUNNABLE = 1
    #: On a host processor, running guest code or an hcall.
    RUNNING = 2
    #: Ceded (H_CEDE / H_CONFER to self): an interrupt, an H_PROD or the timeout wakes it.
    HALTED = 3


#: Every legal (old, new) pair and what causes it.
TRANSITIONS: Mapping[tuple[VcpuState, VcpuState], str] = {
    (VcpuState.STOPPED, VcpuState.RUNNABLE): "start-cpu",
    (VcpuState.RUNNABLE, VcpuState.RUNNING): "dispatch on a free host processor",
    (VcpuState.RUNNING, VcpuState.RUNNABLE): "preempted at a quantum boundary, or H_CONFER",
    (VcpuState.RUNNING, VcpuState.HALTED): "H_CEDE (or H_CONFER to self) with no work pending",
    (VcpuState.HALTED, VcpuState.RUNNABLE): "interrupt, H_PROD, cede timeout, or start-cpu",
    (VcpuState.RUNNING, VcpuState.STOPPED): "stop-self, or the guest program ended or failed",
    (VcpuState.RUNNABLE, VcpuState.STOPPED): "stopped by the machine while waiting",
    (VcpuState.HALTED, VcpuState.STOPPED): "stopped by the machine while ceded",
}


def is_halted_state(state: VcpuState) -> bool:
    """QEMU's ``CPUState.halted``: true for STOPPED and for HALTED (ceded) threads.

    This is what query-cpu-stopped-state reports and what start-cpu requires
    (protocol.md §4.9, §4.11, §9 item 21).
    """
    return state is VcpuState.STOPPED or state is VcpuState.HALTED
