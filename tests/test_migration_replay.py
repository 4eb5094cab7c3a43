"""The replay a target does is exact however the source split its run into steps.

Property: a source that receives the same inputs at the same virtual times reaches
the same state sections whether it advanced in one ``run_until`` per interval or in
many small ones, and the replay of its journal (as a target does it) verifies
against its stream. Inputs land inside the hotplug handshakes, so the splits cut
RTAS sequences, slices and cede timeouts at arbitrary points.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from machine.migration import replay as mig
from machine.migration import vmstate
from machine.sched import VcpuState

S = 1_000_000_000
CORE = "power8e_v2.1-spapr-cpu-core"
ARGV = (
    "-M pseries -cpu POWER8E -smp 1,maxcpus=4 -m 1G -nographic -display none -nodefaults "
    "-seed 7 -guest linux+event-scan=off"
).split()
#: Inputs, in order, each at 3 s + an offset the test draws.
INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("device_add", {"driver": CORE, "id": "core1", "core-id": 1}),
    ("device_del", {"id": "core1"}),
    ("device_add", {"driver": CORE, "id": "core2", "core-id": 2}),
]


def run(times: list[int], end: int, boot_step: int, steps: list[int]) -> PseriesMachine:
    """Boot, apply INPUTS at ``times`` and stop at ``end``, in runs of the given sizes.

    Boot (to 3 s) goes in ``boot_step`` runs, the rest cycles through ``steps``.
    """
    machine = build_machine(ARGV, io.StringIO())
    machine.reset()
    sizes = itertools.cycle(steps)

    def drive_to(when: int) -> None:
        while machine.sched.now < when:
            size = boot_step if machine.sched.now < 3 * S else next(sizes)
            machine.sched.run_until(min(machine.sched.now + size, when))

    for when, (command, args) in zip(times, INPUTS, strict=True):
        drive_to(when)
        if command == "device_add":
            machine.device_add(args)
        else:
            machine.device_del(args["id"])
    drive_to(end)
    return machine


@settings(max_examples=12, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 6_000_000), min_size=3, max_size=3),
    tail=st.integers(0, 8_000_000),
    boot_step=st.integers(1_000_000, 3 * S),
    steps=st.lists(st.integers(500, 60_000), min_size=1, max_size=6),
)
def test_split_runs_reach_the_same_state_and_replay(
    offsets: list[int], tail: int, boot_step: int, steps: list[int]
) -> None:
    times = [3 * S + o for o in sorted(offsets)]
    end = times[-1] + tail
    whole = run(times, end, 1 << 62, [1 << 62])
    split = run(times, end, boot_step, steps)
    assert vmstate.state_sections(split) == vmstate.state_sections(whole)
    stream = mig.capture(split)
    replayed = mig.replay(stream, stream.argv)
    vmstate.verify(stream, replayed)
    assert replayed.sched.now == split.sched.now


def test_a_vcpu_caught_on_a_host_processor_migrates_as_runnable() -> None:
    """Migrating at the instant a vCPU was dispatched (RUNNING, its slice not yet run):
    the target rebuilds it RUNNABLE and must still verify. QEMU's stream carries only
    ``cpu_common``'s ``halted`` (target/ppc/machine.c, migration/savevm.c); sitting on
    a host processor is the host's business. Found by the conformance kit's
    HotplugMachine (time_passes(0), then migrate)."""
    machine = build_machine(ARGV, io.StringIO())
    machine.reset()
    machine.sched.run_for(0)
    assert machine.sched.state(0) is VcpuState.RUNNING  # the case this test is about
    stream = mig.capture(machine)
    replayed = mig.replay(stream, stream.argv)
    vmstate.verify(stream, replayed)
    assert replayed.sched.state(0) is VcpuState.RUNNABLE
    assert stream.sections["cpu"][0]["halted"] is False
