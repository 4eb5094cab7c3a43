"""The deterministic vCPU thread scheduler (design.md, "The vCPU thread scheduler").

Each vCPU thread runs a guest program (a generator of operations) on one virtual
clock over a configurable number of host processors, with CFS-like fair shares,
QEMU's ``halted`` semantics for start-cpu/stop-self/query-cpu-stopped-state, and
O(log n) cost per event however many threads sit idle.
"""

from machine.sched._scheduler import (
    ZERO_TIME_OP_LIMIT,
    HcallHandler,
    Program,
    ProgramFactory,
    SchedulerError,
    TimerCallback,
    TimerHandle,
    VcpuScheduler,
)
from machine.sched._state import TRANSITIONS, VcpuState, is_halted_state
from machine.sched._tables import SchedStats

__all__ = [
    "TRANSITIONS",
    "ZERO_TIME_OP_LIMIT",
    "HcallHandler",
    "Program",
    "ProgramFactory",
    "SchedStats",
    "SchedulerError",
    "TimerCallback",
    "TimerHandle",
    "VcpuScheduler",
    "VcpuState",
    "is_halted_state",
]
