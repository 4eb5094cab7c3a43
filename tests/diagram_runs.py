"""One recorded run for the diagram tests: a hot add, a refused add, a hot remove, a refusal.

POWER9, 2 of 4 cores, the reference Linux guest (in-kernel DLPAR, no periodic
event-scan). After each host operation the machine runs until the guest is done and
the live machine's state is written down (:class:`Checkpoint`), so the tests can
compare what a picture shows with the machine itself, not only with the trace. The
run ends with a guest mistake made by hand: set-indicator(9003, usable) on the empty
connector of core 3, which the connector refuses (-3, nothing attached).
"""

from __future__ import annotations

import functools
import io

import attrs

from guest import GuestTiming, LinuxGuest
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from rtas.call import encode_call
from rtas.codes import AllocationState, SensorType
from rtas.tokens import RtasToken
from spapr.drc import DrcType, drc_index
from spapr.trace import TraceEvent

S = 1_000_000_000
ARGV = (
    "-M pseries -cpu POWER9 -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nographic "
    "-display none -nodefaults -seed 1 -guest none"
).split()
CORE = "power9_v2.0-spapr-cpu-core"
CORE2_DRC = drc_index(DrcType.CPU, 2)
CORE3_DRC = drc_index(DrcType.CPU, 3)
#: Where the hand-made RTAS call is written (free guest RAM).
CALL_BUFFER = 0x3000000


@attrs.frozen
class Checkpoint:
    """The live machine when it went quiet after one operation."""

    label: str
    #: How many trace events had been recorded then.
    events: int
    #: CPU connector index -> its state in the machine's own objects.
    drcs: dict[int, dict[str, object]]
    #: vCPU id -> scheduler state name.
    vcpus: dict[int, str]
    pending: int


@attrs.frozen
class Run:
    """The trace of the run (events and JSON lines) and its checkpoints."""

    events: tuple[TraceEvent, ...]
    jsonl: str
    checkpoints: tuple[Checkpoint, ...]

    def checkpoint(self, label: str) -> Checkpoint:
        return next(c for c in self.checkpoints if c.label == label)


def _checkpoint(machine: PseriesMachine, label: str) -> Checkpoint:
    drcs: dict[int, dict[str, object]] = {}
    for drc in machine.drcs:
        if drc.type is not DrcType.CPU:
            continue
        _status, sense = drc.entity_sense()
        drcs[drc.index] = {
            "state": drc.state.name,
            "sense": sense.name,
            "attached": drc.device is not None,
            "unplug_requested": drc.unplug_requested,
        }
    vcpus = {t.vcpu_id: machine.sched.state(t.vcpu_id).name for t in machine.iter_threads()}
    return Checkpoint(label, len(machine.trace.events), drcs, vcpus, len(machine.events))


def refused_allocate(machine: PseriesMachine) -> None:
    """What a buggy guest might do: make the empty connector of core 3 usable (-3)."""
    args = [SensorType.ALLOCATION_STATE, CORE3_DRC, AllocationState.USABLE]
    encode_call(machine.memory, CALL_BUFFER, RtasToken.SET_INDICATOR, args, 1)
    boot_vcpu = next(machine.iter_threads()).vcpu_id
    machine.rtas.hcall_rtas(machine.memory, CALL_BUFFER, boot_vcpu)


@functools.cache
def hotplug_run() -> Run:
    """The run, once per test session (the tests only read it)."""
    machine = build_machine(ARGV, io.StringIO())
    machine.load_guest(LinuxGuest(timing=GuestTiming(event_scan=False)))
    machine.reset()
    machine.sched.run_for(3 * S)
    points = [_checkpoint(machine, "boot")]
    machine.device_add({"driver": CORE, "id": "core2", "core-id": 2})
    machine.sched.run_for(2 * S)
    points.append(_checkpoint(machine, "add"))
    try:
        machine.device_add({"driver": CORE, "id": "again", "core-id": 2})
    except Exception as err:  # the refusal is part of the story
        assert "already populated" in str(err)
    points.append(_checkpoint(machine, "refused add"))
    machine.device_del("core2")
    machine.sched.run_for(7 * S)
    points.append(_checkpoint(machine, "del"))
    refused_allocate(machine)
    points.append(_checkpoint(machine, "refused allocate"))
    return Run(tuple(machine.trace.events), machine.trace.to_jsonl(), tuple(points))
