"""The guest kernel's own scheduling: tasks, sleeping, waiting, and what they yield.

A task (the init thread, a kworker, rtasd, a user-space daemon) is a generator.
It yields either a platform operation -- a tuple the vCPU program passes on to the
machine, ``(EXECUTE, ns)`` or ``(Hcall.X, args...)`` -- or one of the kernel
operations below, which the CPU running it handles itself: :class:`Sleep`
(timer), :class:`Block` (wait on a :class:`WaitQueue`) and :class:`Reschedule`
(cond_resched). Scheduling is cooperative: a task keeps its CPU until it sleeps,
blocks, reschedules or ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import attrs

#: A platform operation: ``(EXECUTE, ns)`` or ``(Hcall.X, *args)``.
PlatformOp = tuple[int, ...]


@attrs.frozen
class Sleep:
    """Sleep ``ns`` of virtual time; then run on CPU ``cpu`` (a logical id) if given."""

    ns: int
    cpu: int | None = None


@attrs.frozen
class Block:
    """Wait until ``waitq`` is woken."""

    waitq: WaitQueue


@attrs.frozen
class Reschedule:
    """Let other runnable tasks of this CPU go first (cond_resched)."""


#: What a task body may yield.
TaskOp = PlatformOp | Sleep | Block | Reschedule
#: A task body: yields operations, receives platform results.
TaskBody = Generator[Any, Any, None]


@attrs.define(eq=False)
class Task:
    """A schedulable kernel or user-space thread."""

    name: str
    body: TaskBody = attrs.field(repr=False)
    #: Logical CPU it last ran on or is queued for.
    cpu: int | None = None
    #: Value to send into the body when it next runs.
    resume_value: Any = attrs.field(default=None, repr=False)
    done: bool = False


@attrs.define(eq=False)
class WaitQueue:
    """Tasks waiting for an event; waking moves them all back to runqueues."""

    name: str
    waiters: deque[Task] = attrs.field(factory=deque)

    def add(self, task: Task) -> None:
        """Park ``task`` on this queue."""
        self.waiters.append(task)

    def take_all(self) -> list[Task]:
        """Remove and return every waiter, oldest first."""
        tasks = list(self.waiters)
        self.waiters.clear()
        return tasks


@attrs.define(eq=False)
class SpinLock:
    """A kernel spinlock: the owner's logical CPU, or None when free."""

    name: str
    owner: int | None = None

    def try_acquire(self, cpu: int) -> bool:
        """Take the lock for ``cpu`` if it is free."""
        if self.owner is None:
            self.owner = cpu
            return True
        return False

    def release(self) -> None:
        """Free the lock."""
        self.owner = None


@attrs.define(eq=False)
class Mutex:
    """A sleeping lock (lock_device_hotplug): waiters block on its queue."""

    name: str
    locked: bool = False
    waitq: WaitQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.waitq = WaitQueue(self.name)
