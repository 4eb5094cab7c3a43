"""What the guest knows about itself: logical CPUs, DR outcomes, its own RTAS calls.

:class:`LogicalCpu` is the kernel's per-CPU record (Linux's present/online masks,
hard id, NUMA node, plus the scheduler's runqueue and timers). :class:`CpuInfo` is
a frozen snapshot of it for tests and views. :class:`RtasRecord` is one RTAS call
as the guest made it; :class:`DrcAction` the last thing the guest did with a DRC.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from typing import NamedTuple

import attrs

from guest.tasks import Task, WaitQueue

_timer_seq = itertools.count()


class CpuState(enum.Enum):
    """Where a logical CPU is in its life."""

    #: Not running (never started, or stopped after stop-self).
    OFFLINE = "offline"
    #: start-cpu issued; waiting for the thread to call in.
    STARTING = "starting"
    ONLINE = "online"
    #: Offline requested; the CPU's stopper has not run yet.
    DYING = "dying"
    #: stop-self issued.
    DEAD = "dead"


@attrs.define(eq=False)
class LogicalCpu:
    """One logical CPU id (possible); present when a hardware thread backs it."""

    logical: int
    hwid: int | None = None
    present: bool = False
    online: bool = False
    state: CpuState = CpuState.OFFLINE
    node: int = 0
    #: Path of the cpu node that declares this thread.
    node_path: str | None = None
    chip_id: int | None = None
    #: Linux's paca cpu_start and cpu_callin_map.
    cpu_start: bool = False
    callin: bool = False
    #: A reason to check XIRR before idling again.
    irq_check: bool = False
    in_irq: bool = False
    runqueue: deque[Task] = attrs.field(factory=deque)
    timers: list[tuple[int, int, Task]] = attrs.field(factory=list)
    #: Woken when the dying CPU reports it is dead.
    dead_wq: WaitQueue = attrs.field(factory=lambda: WaitQueue("cpu-dead"))
    reported_dead: bool = False
    slb_shadow_registered: bool = False
    vpa_registered: bool = False

    def add_timer(self, deadline: int, task: Task) -> None:
        """Arm a timer that makes ``task`` runnable at ``deadline``."""
        heapq.heappush(self.timers, (deadline, next(_timer_seq), task))

    def pop_expired(self, now: int) -> list[Task]:
        """Tasks whose timer is due at ``now``, earliest first."""
        out = []
        while self.timers and self.timers[0][0] <= now:
            out.append(heapq.heappop(self.timers)[2])
        return out

    def next_deadline(self) -> int | None:
        """When the earliest timer fires, or None."""
        return self.timers[0][0] if self.timers else None

    def take_timers(self) -> list[tuple[int, Task]]:
        """Remove every timer (deadline, task), for migration off a dying CPU."""
        out = [(deadline, task) for deadline, _seq, task in sorted(self.timers)]
        self.timers.clear()
        return out


@attrs.frozen
class CpuInfo:
    """A snapshot of one present logical CPU."""

    logical: int
    hwid: int
    online: bool
    node: int
    chip_id: int | None
    node_path: str | None


class RtasRecord(NamedTuple):
    """One RTAS call the guest made: who, when, what, and what came back.

    (An immutable named tuple: one is made for every call, and a tuple is built
    several times faster than a frozen attrs class.)
    """

    time_ns: int
    hwid: int
    service: str
    token: int
    args: tuple[int, ...]
    rets: tuple[int, ...]
    hcall_status: int | None

    @property
    def status(self) -> int | None:
        """rets[0] (None for stop-self, which returns nothing)."""
        return self.rets[0] if self.rets else None


class DrcOutcome(enum.Enum):
    """How the guest's last operation on a DRC ended."""

    ADDED = "added"
    ADD_FAILED = "add-failed"
    REMOVED = "removed"
    REMOVE_FAILED = "remove-failed"
    #: Removal refused (last online CPU) and signalled back with UNISOLATE.
    REMOVE_REFUSED = "remove-refused"
    #: A REMOVE event the guest chose not to answer.
    IGNORED = "ignored"
    #: A configure-connector walk the guest stopped half way.
    ABANDONED = "abandoned"


@attrs.frozen
class DrcAction:
    """The last thing the guest did with one DRC."""

    time_ns: int
    action: str
    outcome: DrcOutcome
    rc: int = 0
    detail: str = ""
