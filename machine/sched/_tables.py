"""Per-vCPU accounting tables (numpy, one row per dense slot) and the stats record.

The scheduler's per-slice path accumulates in plain Python attributes; rows of
vCPUs that changed are copied here in one vectorised write when statistics are
asked for, so ``info cpus`` or a histogram over thousands of vCPUs is whole-array
work, and a slice costs no numpy call.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


class VcpuTable:
    """Columns vcpu_id/state/run_ns/steal_ns/slices/wakeups indexed by slot; grows by doubling."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = 0
        self.vcpu_id: I64 = np.empty(0, np.int64)
        self.state: I8 = np.empty(0, np.int8)
        self.run_ns: I64 = np.empty(0, np.int64)
        self.steal_ns: I64 = np.empty(0, np.int64)
        self.slices: I64 = np.empty(0, np.int64)
        self.wakeups: I64 = np.empty(0, np.int64)
        self._grow(max(1, capacity))

    def _grow(self, capacity: int) -> None:
        def widen(old: np.ndarray, fill: int, dtype: type) -> np.ndarray:
            new: np.ndarray = np.full(capacity, fill, dtype)
            new[: old.shape[0]] = old
            return new

        self.vcpu_id = widen(self.vcpu_id, -1, np.int64)
        self.state = widen(self.state, 0, np.int8)
        self.run_ns = widen(self.run_ns, 0, np.int64)
        self.steal_ns = widen(self.steal_ns, 0, np.int64)
        self.slices = widen(self.slices, 0, np.int64)
        self.wakeups = widen(self.wakeups, 0, np.int64)
        self.capacity = capacity

    def ensure(self, slot: int) -> None:
        """Make row ``slot`` exist."""
        if slot >= self.capacity:
            capacity = self.capacity
            while slot >= capacity:
                capacity *= 2
            self._grow(capacity)

    def clear(self, slot: int) -> None:
        """Forget row ``slot`` (its vCPU was removed)."""
        self.vcpu_id[slot] = -1
        self.state[slot] = 0
        self.run_ns[slot] = 0
        self.steal_ns[slot] = 0
        self.slices[slot] = 0
        self.wakeups[slot] = 0

    def write(
        self,
        slots: Sequence[int],
        vcpu_ids: Sequence[int],
        states: Sequence[int],
        run_ns: Sequence[int],
        steal_ns: Sequence[int],
        slices: Sequence[int],
        wakeups: Sequence[int],
    ) -> None:
        """Store whole rows for ``slots`` (one vectorised assignment per column)."""
        if not slots:
            return
        idx = np.asarray(slots, np.int64)
        self.vcpu_id[idx] = vcpu_ids
        self.state[idx] = states
        self.run_ns[idx] = run_ns
        self.steal_ns[idx] = steal_ns
        self.slices[idx] = slices
        self.wakeups[idx] = wakeups


@attrs.frozen(eq=False)
class SchedStats:
    """A snapshot of the scheduler's accounting at virtual time ``now``.

    The arrays have one entry per live vCPU, in slot order (creation order, with
    slots of removed vCPUs reused). Times are virtual nanoseconds and include the
    slice or wait in progress at ``now``. ``events`` counts scheduling events as the
    benchmark defines them: slice ends + wake-ups of halted vCPUs + host-timer
    callbacks, including those of vCPUs removed since.
    """

    now: int
    host_cpus: int
    vcpu_id: I64
    state: I8
    run_ns: I64
    steal_ns: I64
    slices: I64
    wakeups: I64
    total_slices: int
    total_wakeups: int
    timer_fires: int

    @property
    def events(self) -> int:
        """Slice ends + wake-ups + timer callbacks since the scheduler was made."""
        return self.total_slices + self.total_wakeups + self.timer_fires

    def index(self, vcpu_id: int) -> int:
        """Position of ``vcpu_id`` in the arrays (KeyError if it is not live)."""
        hits = np.flatnonzero(self.vcpu_id == vcpu_id)
        if hits.size == 0:
            raise KeyError(vcpu_id)
        return int(hits[0])
