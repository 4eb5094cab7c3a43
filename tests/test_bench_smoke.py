"""Every benchmark still runs: each at a tiny size, its last line one JSON object with its keys.

Speed is measured in ``bench/``, never asserted here: these tests check only that
the benchmarks work (a benchmark that no longer runs cannot measure anything) and
that their JSON carries the figures bench/README.md names.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import bench

KEYS = {
    "cycle": {
        "smt1_cycles_per_s",
        "smt4_cycles_per_s",
        "smt8_cycles_per_s",
        "rtas_call_us",
        "rtas_calls_per_cycle",
        "rss_before_mib",
        "rss_after_mib",
    },
    "startup": {"startup_s", "startup_cpu_s", "stdio_vs_scenario", "commands"},
    "scale": {
        "time_ratio_vs_qemu",
        "rss_ratio_vs_qemu",
        "qemu_note",
        "add_cost_ratio_4096_vs_8",
        "noguest_add_cost_last_vs_first",
    },
}


def test_the_registry_lists_the_benchmarks() -> None:
    assert set(KEYS) | {"sched", "qmp"} <= set(bench.available())


@pytest.mark.parametrize("name", sorted(KEYS))
def test_benchmark_runs_quick(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench.run_one(name, ["--quick"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    printed: dict[str, Any] = json.loads(last)
    assert printed["bench"] == name
    assert KEYS[name] <= set(printed), sorted(KEYS[name] - set(printed))
    assert printed == json.loads(json.dumps(figures))


def test_cycle_counts_the_protocols_calls(capsys: pytest.CaptureFixture[str]) -> None:
    # The SMT1 cycle is the 46 RTAS calls (32 of them the configure-connector
    # walk) less the dying thread's two ibm,get-xive: POWER9 negotiates XIVE, and a
    # CPU going offline moves its interrupts with hcalls (the real POWER9 guest makes
    # no XICS call at all). SMT4 and SMT8: 64 and 88 less two per thread. On top come
    # the query-cpu-stopped-state polls answered "running" while a thread dies, which
    # depend on timing: at most one per thread here.
    figures = bench.run_one("cycle", ["--quick"])
    capsys.readouterr()
    for config, protocol, threads in (("smt1", 44, 1), ("smt4", 56, 4), ("smt8", 72, 8)):
        calls = figures["per_config"][config]["rtas_calls_per_cycle"]
        assert protocol <= calls <= protocol + threads, config
    assert figures["rtas_calls_per_cycle"] == figures["per_config"]["smt1"]["rtas_calls_per_cycle"]
