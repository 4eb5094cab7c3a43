"""Per-vCPU accounting tables (numpy, one row per dense slot) and the stats record.

The scheduler's per-slice path accumulates in plain Python attributes; rows of
vCPUs that changed are copied here in one vectorised write when statistics are
asked for, so ``info cpus`` or a histogram over thousands of vCPUs is whole-array
work, and a slice costs no numpy call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    I64 = npt.NDArray[np.int64]
    I8 = npt.NDArray[np.int8]


class VcpuTable:
    """Columns vcpu_id/state/run_ns/steal_ns/slices/wakeups indexed by slot; grows by doubling.

    The numpy columns are made on first use (statistics asked for), not with the
    scheduler: a machine that never asks (``dumpdtb``, most runs) never loads numpy.
    Until then the table only tracks the capacity its rows need.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = max(1, capacity)
        self._columns: tuple[Any, ...] | None = None

    def _materialize(self) -> tuple[Any, ...]:
        columns = self._columns
        if columns is None:
            import numpy as np

            n = self.capacity
            columns = (
                np.full(n, -1, np.int64),
                np.zeros(n, np.int8),
                np.zeros(n, np.int64),
                np.zeros(n, np.int64),
                np.zeros(n, np.int64),
                np.zeros(n, np.int64),
            )
            self._columns = columns
        return columns

    @property
    def vcpu_id(self) -> I64:
        column: I64 = self._materialize()[0]
        return column

    @property
    def state(self) -> I8:
        column: I8 = self._materialize()[1]
        return column

    @property
    def run_ns(self) -> I64:
        column: I64 = self._materialize()[2]
        return column

    @property
    def steal_ns(self) -> I64:
        column: I64 = self._materialize()[3]
        return column

    @property
    def slices(self) -> I64:
        column: I64 = self._materialize()[4]
        return column

    @property
    def wakeups(self) -> I64:
        column: I64 = self._materialize()[5]
        return column

    def _grow(self, capacity: int) -> None:
        columns = self._columns
        self.capacity = capacity
        if columns is None:
            return
        import numpy as np

        grown = []
        for old, fill in zip(columns, (-1, 0, 0, 0, 0, 0)):
            new = np.full(capacity, fill, old.dtype)
            new[: old.shape[0]] = old
            grown.append(new)
        self._columns = tuple(grown)

    def ensure(self, slot: int) -> None:
        """Make row ``slot`` exist."""
        if slot >= self.capacity:
            capacity = self.capacity
            while slot >= capacity:
                capacity *= 2
            self._grow(capacity)

    def clear(self, slot: int) -> None:
        """Forget row ``slot`` (its vCPU was removed)."""
        columns = self._columns
        if columns is None:
            return  # (rows start cleared when the columns are made)
        columns[0][slot] = -1
        for column in columns[1:]:
            column[slot] = 0

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
        import numpy as np

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
        import numpy as np

        hits = np.flatnonzero(self.vcpu_id == vcpu_id)
        if hits.size == 0:
            raise KeyError(vcpu_id)
        return int(hits[0])
