"""The scheduler benchmark's anchor does the same work as the scheduler (no timings here).

``python -m bench sched`` compares events per second with SimPy models of the
same policy; that comparison means something only if the models process the same
events for the same workload. These tests check it on short runs, and that the
benchmark registry finds the benchmark.
"""

from __future__ import annotations

import pytest

import bench
from bench import sched as sched_bench
from bench._simpy_sched import LeanSimpyScheduler

SPAN_NS = sched_bench.WARMUP_NS + 15_000_000


def test_registry_lists_the_scheduler_benchmark() -> None:
    assert "sched" in bench.available()
    assert bench.load("sched") is sched_bench.run
    with pytest.raises(KeyError):
        bench.load("no-such-benchmark")


@pytest.mark.parametrize("n_vcpus", [8, 64])
def test_simpy_models_process_the_same_events(n_vcpus: int) -> None:
    ours, _, scheduler = sched_bench.run_ours(n_vcpus, SPAN_NS)
    idiomatic, _, _ = sched_bench.run_simpy(n_vcpus, SPAN_NS)
    lean, _, _ = sched_bench.run_simpy(n_vcpus, SPAN_NS, LeanSimpyScheduler)
    assert ours > 1_000
    assert idiomatic == lean  # the two SimPy formulations agree exactly
    # same policy; only the order of simultaneous events may differ
    assert abs(ours - idiomatic) <= 0.02 * ours
    stats = scheduler.stats()
    assert stats.total_wakeups > 0 and stats.timer_fires > 0
    assert int(stats.steal_ns.sum()) > 0  # 8 busy threads on 4 host processors
