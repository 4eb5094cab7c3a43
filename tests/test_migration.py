"""Migration to a file and resuming on a target, at every step of the hotplug handshakes.

The source runs the reference guest through a hot-add (or a hot-remove) and is
migrated just after each RTAS call of the sequence in turn (the machine's
``rtas_call`` trace gives the virtual time each call was handled); the target is
started with the source's command line plus the right ``-device`` list, resumes,
and runs until quiet. The handshake must then be complete, with nothing lost or
done twice across source and target, and the state sections equal to the
stream's right after the load. A configure-connector walk cut by the migration
restarts at the node on the target (the fragment and its cursor are not
migrated), and the guest mis-nests the node as Linux does.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from guest import DrcOutcome
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from machine.migration import replay as mig
from machine.migration import vmstate
from machine.sched import VcpuState
from rtas.errlog import decode_event_log
from spapr.drc import DRCState
from spapr.errors import QemuError
from spapr.trace import TraceEvent

S = 1_000_000_000
CORE = "power8e_v2.1-spapr-cpu-core"
BASE = (
    "-M pseries -cpu POWER8E -smp 1,maxcpus=4 -m 1G -nographic -display none -nodefaults "
    "-seed 1 -guest linux+event-scan=off"
).split()
CORE1 = {"driver": CORE, "id": "core1", "core-id": 1}
DEV_CORE1 = ["-device", f"{CORE},id=core1,core-id=1"]
#: DRC index of core-id 1 (SMT1: vCPU id 1).
X1 = 0x10000001
CHECK_EXCEPTION = "check-exception"
CONFIGURE_CONNECTOR = "ibm,configure-connector"
NEXT_CHILD, NEXT_PROPERTY = 2, 3


def boot(argv: list[str] = BASE) -> PseriesMachine:
    """A machine started as the CLI does (build, first reset) whose guest has booted."""
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    machine.sched.run_for(3 * S)
    assert machine.guest is None or machine.guest.booted
    return machine


def rtas_calls(machine: PseriesMachine) -> list[TraceEvent]:
    return machine.trace.select("rtas_call")


def status(call: TraceEvent) -> int:
    return int(call.fields["rets"][0])


def settle(machine: PseriesMachine, limit_ns: int = 5 * S) -> None:
    """Run until nothing is runnable or queued for 50 ms of virtual time (bounded)."""
    deadline = machine.sched.now + limit_ns
    quiet_since: int | None = None
    while machine.sched.now < deadline:
        if machine.sched.runnable_count() == 0 and len(machine.events) == 0:
            if quiet_since is None:
                quiet_since = machine.sched.now
            elif machine.sched.now - quiet_since >= 50_000_000:
                return
        else:
            quiet_since = None
        machine.sched.run_for(10_000_000)
    raise AssertionError("the machine did not settle")


def migrate(
    source: PseriesMachine, tmp_path: Path, devices: list[str], base: list[str] = BASE
) -> tuple[PseriesMachine, mig.MigrationStream]:
    """Save ``source`` to a file and start a target from it with ``devices``."""
    path = str(tmp_path / "stream.json")
    result = mig.save(source, path)
    assert result.transferred == Path(path).stat().st_size
    assert result.time_ns == source.sched.now
    stream = mig.load_stream(path)
    target = mig.incoming_machine(
        path, [*base, *devices, "-incoming", f"file:{path}"], io.StringIO()
    )
    return target, stream


def deleted(machine: PseriesMachine, dev_id: str) -> int:
    return sum(
        1
        for e in machine.qmp_events
        if e.name == "DEVICE_DELETED" and e.data.get("device") == dev_id
    )


def delivered_events(calls: list[TraceEvent]) -> int:
    return sum(1 for c in calls if c.fields["name"] == CHECK_EXCEPTION and status(c) == 0)


def assert_no_core_twice(machine: PseriesMachine) -> None:
    core_ids = [c.core_id for c in machine.cores]
    assert len(core_ids) == len(set(core_ids))
    occupied = [e for e in machine.query_hotpluggable_cpus() if "qom-path" in e]
    assert len(occupied) == len(machine.cores)
    hwids = [c.hwid for c in machine.guest.cpus()]
    assert len(hwids) == len(set(hwids))


# --------------------------------------------------------------------------
# Reference runs (no migration): the call sequences the sweeps cut
# --------------------------------------------------------------------------


class Reference(NamedTuple):
    calls: list[TraceEvent]
    #: Properties of the added node, in the order the walk delivered them.
    node_properties: list[str]


def _reference_add() -> Reference:
    machine = boot()
    mark = len(rtas_calls(machine))
    machine.device_add(CORE1)
    settle(machine)
    node = machine.guest.tree.find("/cpus/PowerPC,POWER8@1")
    assert node is not None
    return Reference(rtas_calls(machine)[mark:], [p.name for p in node.properties])


def _start_remove() -> PseriesMachine:
    machine = boot()
    machine.device_add(CORE1)
    settle(machine)
    return machine


def _reference_remove() -> Reference:
    machine = _start_remove()
    mark = len(rtas_calls(machine))
    machine.device_del("core1")
    settle(machine)
    return Reference(rtas_calls(machine)[mark:], [])


ADD = _reference_add()
REMOVE = _reference_remove()
WALK = [i for i, c in enumerate(ADD.calls) if c.fields["name"] == CONFIGURE_CONNECTOR]
#: The call that releases the core: set-indicator(allocation-state 9003, X, UNUSABLE).
RELEASE = next(
    i
    for i, c in enumerate(REMOVE.calls)
    if c.fields["name"] == "set-indicator" and c.fields["args"] == [9003, X1, 0]
)


def test_reference_sequences_are_the_protocol_handshakes() -> None:
    add = [c.fields["name"] for c in ADD.calls]
    assert add[0] == CHECK_EXCEPTION and add[-2:] == ["query-cpu-stopped-state", "start-cpu"]
    statuses = [status(ADD.calls[i]) for i in WALK]
    assert statuses[0] == NEXT_CHILD and statuses[-1] == 0
    assert set(statuses[1:-1]) == {NEXT_PROPERTY}
    assert len(ADD.node_properties) == len(WALK) - 2
    assert "ibm,ppc-interrupt-server#s" in ADD.node_properties
    remove = [c.fields["name"] for c in REMOVE.calls]
    assert remove[0] == CHECK_EXCEPTION and "stop-self" in remove and len(remove) - 1 == RELEASE
    assert len({c.t for c in ADD.calls}) == len(ADD.calls)
    assert len({c.t for c in REMOVE.calls}) == len(REMOVE.calls)


# --------------------------------------------------------------------------
# The sweeps
# --------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(ADD.calls)))
def test_hot_add_migrated_after_each_rtas_call(k: int, tmp_path: Path) -> None:
    source = boot()
    mark = len(rtas_calls(source))
    source.device_add(CORE1)
    source.sched.run_until(ADD.calls[k].t)
    before = rtas_calls(source)[mark:]
    assert [c.fields["name"] for c in before] == [c.fields["name"] for c in ADD.calls[: k + 1]]

    target, stream = migrate(source, tmp_path, DEV_CORE1)
    assert vmstate.state_sections(target) == stream.sections
    assert target.sched.now == source.sched.now
    settle(target)
    after = rtas_calls(target)
    assert all(c.t > source.sched.now for c in after)
    # One ADD event, delivered exactly once across source and target.
    assert delivered_events(before) + delivered_events(after) == 1
    assert len(target.events) == 0
    assert [c.core_id for c in target.cores] == [0, 1]
    assert_no_core_twice(target)
    guest = target.guest
    drc = target.drc(X1)
    assert drc is not None
    outcome = guest.drc_actions[X1].outcome

    if WALK[0] <= k < WALK[-1]:
        # Cut mid-walk: the target rebuilds the fragment and restarts at the node,
        # answering NEXT_CHILD where the source would have sent a property.
        assert status(ADD.calls[k + 1]) != NEXT_CHILD  # a property, or the final 0
        walk_after = [c for c in after if c.fields["name"] == CONFIGURE_CONNECTOR]
        assert status(walk_after[0]) == NEXT_CHILD
        # Linux nests the restarted (complete) node under the half-built one and takes
        # the final 0 as success; the half-built node holds what arrived before.
        received = ADD.node_properties[: k - WALK[0]]
        if "ibm,ppc-interrupt-server#s" in received:
            # dlpar_online_cpu finds the thread ids: the CPU comes online anyway.
            assert outcome is DrcOutcome.ADDED
            assert sorted(guest.hwids().values()) == [0, 1]
            node = guest.tree.find("/cpus/PowerPC,POWER8@1")
            assert node is not None
            assert [p.name for p in node.properties] == received
            assert [c.name for c in node.children] == ["PowerPC,POWER8@1"]
            assert [p.name for p in node.children[0].properties] == ADD.node_properties
            assert drc.state == DRCState.LOGICAL_CONFIGURED
        else:
            # No thread ids on the attached node: dlpar_online_cpu fails (-EINVAL),
            # the guest detaches the node and gives the DRC back; QEMU keeps the core.
            assert outcome is DrcOutcome.ADD_FAILED
            assert guest.online_cpus() == [0]
            assert guest.tree.find("/cpus/PowerPC,POWER8@1") is None
            assert drc.state == DRCState.LOGICAL_UNUSABLE and drc.device is not None
    else:
        assert outcome is DrcOutcome.ADDED
        assert sorted(guest.hwids()[cpu] for cpu in guest.online_cpus()) == [0, 1]
        node = guest.tree.find("/cpus/PowerPC,POWER8@1")
        assert node is not None and not node.children
        assert [p.name for p in node.properties] == ADD.node_properties
        assert drc.state == DRCState.LOGICAL_CONFIGURED
        assert target.sched.state(1) is not VcpuState.STOPPED  # started, now idle or running


@pytest.mark.parametrize("k", range(len(REMOVE.calls)))
def test_hot_remove_migrated_after_each_rtas_call(k: int, tmp_path: Path) -> None:
    source = _start_remove()
    mark = len(rtas_calls(source))
    source.device_del("core1")
    source.sched.run_until(REMOVE.calls[k].t)
    before = rtas_calls(source)[mark:]
    assert [c.fields["name"] for c in before] == [c.fields["name"] for c in REMOVE.calls[: k + 1]]

    # The core leaves the source with the releasing call; until then the target needs it.
    devices = [] if k >= RELEASE else DEV_CORE1
    target, stream = migrate(source, tmp_path, devices)
    assert vmstate.state_sections(target) == stream.sections
    pending = [s for s in stream.sections["spapr_drc"] if s["instance_id"] == X1]
    if k < RELEASE:
        assert pending[0]["spapr_drc/unplug_requested"] == {"unplug_requested": True}
        assert target.drc(X1).unplug_requested  # type: ignore[union-attr]
    else:
        assert pending == []
    settle(target)
    after = rtas_calls(target)
    assert delivered_events(before) + delivered_events(after) == 1
    assert deleted(source, "core1") + deleted(target, "core1") == 1
    assert deleted(target, "core1") == (0 if k >= RELEASE else 1)
    assert [c.core_id for c in target.cores] == [0]
    assert_no_core_twice(target)
    guest = target.guest
    assert guest.online_cpus() == [0] and list(guest.hwids().values()) == [0]
    assert guest.drc_actions[X1].outcome is DrcOutcome.REMOVED
    drc = target.drc(X1)
    assert drc is not None and drc.state == DRCState.LOGICAL_UNUSABLE and drc.device is None
    assert len(target.events) == 0


def test_migration_right_after_device_add_carries_the_queued_event(tmp_path: Path) -> None:
    source = boot()
    source.device_add(CORE1)
    stream_events = None
    target, stream = migrate(source, tmp_path, DEV_CORE1)
    stream_events = stream.sections["spapr_pending_events"]
    assert len(stream_events) == 1
    entry = next(iter(source.events))
    assert stream_events[0]["summary"] == entry.summary
    assert bytes.fromhex(stream_events[0]["extended_log"]) == entry.extended
    assert [(e.summary, e.extended) for e in target.events] == [(entry.summary, entry.extended)]
    assert stream.sections["spapr_drc"] == [
        {"instance_id": X1, "state": int(DRCState.LOGICAL_UNUSABLE)}
    ]
    settle(target)
    assert sorted(target.guest.online_cpus()) == [0, 1]
    assert delivered_events(rtas_calls(target)) == 1


# --------------------------------------------------------------------------
# Pending unplugs, queued events, the target's -device list, -incoming defer
# --------------------------------------------------------------------------

NO_GUEST = [*BASE[:-1], "none"]


def test_pending_unplug_and_queued_events_survive(tmp_path: Path) -> None:
    base = [*NO_GUEST, "-device", f"{CORE},id=core2,core-id=2"]
    source = build_machine(base, io.StringIO())
    source.reset()
    source.sched.run_for(S)
    source.device_del("core2")  # a cold-plugged core: CONFIGURED, so the unplug waits
    source.device_add({"driver": CORE, "id": "core3", "core-id": 3})  # guest never acquires
    source.sched.run_for(S)
    queued = [(e.summary, e.extended) for e in source.events]
    assert len(queued) == 2

    target, stream = migrate(source, tmp_path, ["-device", f"{CORE},id=core3,core-id=3"], base)
    x2, x3 = 0x10000002, 0x10000003
    assert stream.sections["spapr_drc"] == [
        {
            "instance_id": x2,
            "state": int(DRCState.LOGICAL_CONFIGURED),
            "spapr_drc/unplug_requested": {"unplug_requested": True},
        },
        {"instance_id": x3, "state": int(DRCState.LOGICAL_UNUSABLE)},
    ]
    assert [(e.summary, e.extended) for e in target.events] == queued
    drc2, drc3 = target.drc(x2), target.drc(x3)
    assert drc2 is not None and drc2.unplug_requested and drc2.state == DRCState.LOGICAL_CONFIGURED
    assert drc3 is not None and drc3.device is not None
    assert drc3.state == DRCState.LOGICAL_UNUSABLE
    # The pending unplug completes at the target's next reset (protocol §3.7).
    target.system_reset()
    assert deleted(target, "core2") == 1 and deleted(source, "core2") == 0
    assert [c.dev_id for c in target.cores] == [None, "core3"]
    after_reset = target.drc(x3)
    assert after_reset is not None and after_reset.state == DRCState.LOGICAL_CONFIGURED


def test_platform_log_ids_restart_on_the_target(tmp_path: Path) -> None:
    """QEMU's PLID counter is a static of the process: not migrated, 0 again on the target."""
    source = build_machine(NO_GUEST, io.StringIO())
    source.reset()
    for core_id in (1, 2):
        source.device_add({"driver": CORE, "id": f"core{core_id}", "core-id": core_id})
    devices = [w for i in (1, 2) for w in ("-device", f"{CORE},id=core{i},core-id={i}")]
    target, _stream = migrate(source, tmp_path, devices, NO_GUEST)
    new_core = {"driver": CORE, "id": "core3", "core-id": 3}
    source.device_add(new_core)
    target.device_add(new_core)

    def plids(machine: PseriesMachine) -> list[int | None]:
        return [decode_event_log(e.to_bytes()).plid for e in machine.events]

    assert plids(source) == [0, 1, 2]
    assert plids(target) == [0, 1, 0]


def test_timers_of_a_default_guest_replay_too(tmp_path: Path) -> None:
    """rtasd's periodic event-scan (on by default) runs through the migration."""
    base = [*BASE[:-1], "linux"]
    source = boot(base)
    mark = len(rtas_calls(source))
    source.device_add(CORE1)
    source.sched.run_for(6_500)
    assert 0 < len(rtas_calls(source)) - mark < len(ADD.calls)
    target, stream = migrate(source, tmp_path, DEV_CORE1, base)
    assert vmstate.state_sections(target) == stream.sections
    target.sched.run_for(30 * S)  # rtasd scans every 30 s once each CPU had its first scan
    assert sorted(target.guest.online_cpus()) == [0, 1]
    assert any(c.fields["name"] == "event-scan" for c in rtas_calls(target))


def test_device_add_while_inmigrate_counts_as_a_command_line_core(tmp_path: Path) -> None:
    """-incoming defer: a core added while ``inmigrate`` is cold-plugged (oracle), then loaded."""
    oracle = [
        json.loads(line)
        for line in (Path(__file__).parent / "data/migration/incoming_defer_p8e.jsonl")
        .read_text()
        .splitlines()
    ]
    replies = [m["msg"] for m in oracle if m["dir"] == "in" and "return" in m["msg"]]
    hotpluggable_after_add = replies[3]["return"]
    config = (
        "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 -m 1G -nographic "
        "-display none -nodefaults -S -seed 1"
    ).split()
    source = boot([*config, "-guest", "linux+event-scan=off"])
    source.device_add({"driver": CORE, "id": "core2", "core-id": 2})
    settle(source)
    path = str(tmp_path / "stream.json")
    mig.save(source, path)

    target = build_machine([*config, "-incoming", "defer"], io.StringIO())
    target.reset()
    target.runstate = "inmigrate"
    target.device_add({"driver": CORE, "id": "core2", "core-id": 2})
    assert len(target.events) == 0
    drc = target.drc(0x10000002)
    assert drc is not None and drc.state == DRCState.LOGICAL_CONFIGURED
    assert target.query_hotpluggable_cpus() == hotpluggable_after_add

    resumed = mig.resume(mig.load_stream(path), target, io.StringIO())
    assert vmstate.state_sections(resumed) == vmstate.state_sections(source)
    assert sorted(resumed.guest.online_cpus()) == [0, 1, 2]
    assert resumed.setup.config.incoming == "defer"


def _hot_added_source() -> PseriesMachine:
    source = boot()
    source.device_add(CORE1)
    settle(source)
    return source


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (
            [],
            "migration: the source has hot-plugged core 'core1' (power8e_v2.1-spapr-cpu-core, "
            "core-id 1) but the target has no -device for it",
        ),
        (
            [*DEV_CORE1, "-device", f"{CORE},id=core2,core-id=2"],
            "migration: the target has -device core 'core2' (power8e_v2.1-spapr-cpu-core, "
            "core-id 2) but the source has no core with core-id 2",
        ),
        (
            ["-device", f"{CORE},id=core2,core-id=2"],
            "migration: the source has hot-plugged core 'core1' (power8e_v2.1-spapr-cpu-core, "
            "core-id 1) but the target has no -device for it",
        ),
        (
            ["-device", f"{CORE},id=other,core-id=1"],
            "migration: the source's hot-plugged core 'core1' (power8e_v2.1-spapr-cpu-core, "
            "core-id 1) does not match the target's 'other' (power8e_v2.1-spapr-cpu-core, "
            "core-id 1)",
        ),
    ],
    ids=["missing", "extra", "wrong-core-id", "wrong-id"],
)
def test_wrong_device_list_is_refused(devices: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(QemuError) as exc:
        migrate(_hot_added_source(), tmp_path, devices)
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "1,maxcpus=4",
            "2,maxcpus=4",
            "the source was started with -smp 1,maxcpus=4, the target with -smp 2,maxcpus=4",
        ),
        ("POWER8E", None, "the source was started with -cpu POWER8E, the target without -cpu"),
        ("pseries", "pseries-7.1", "the source was started with -M pseries, the target with -M "),
    ],
    ids=["smp", "no-cpu", "machine"],
)
def test_changed_machine_options_are_refused(
    old: str, new: str | None, message: str, tmp_path: Path
) -> None:
    source = _hot_added_source()
    path = str(tmp_path / "stream.json")
    mig.save(source, path)
    i = BASE.index(old)
    argv = [*BASE[: i - 1], *BASE[i + 1 :]] if new is None else [*BASE[:i], new, *BASE[i + 1 :]]
    with pytest.raises(QemuError) as exc:
        mig.incoming_machine(path, [*argv, *DEV_CORE1, "-incoming", f"file:{path}"], io.StringIO())
    assert exc.value.message.startswith(
        "migration: the target's command line differs from the source's: " + message
    )


def test_monitor_trace_and_guest_options_may_differ(tmp_path: Path) -> None:
    source = _hot_added_source()
    path = str(tmp_path / "stream.json")
    mig.save(source, path)
    trace_file = tmp_path / "target-trace.jsonl"
    argv = [a for a in BASE if a not in ("-guest", "linux+event-scan=off")]
    target = mig.incoming_machine(
        path,
        [*argv, "-guest", "none", "-S", "-trace-json", str(trace_file), *DEV_CORE1]
        + ["-incoming", f"file:{path}", "-qmp", "unix:/nonexistent.sock,server=on,wait=off"],
        io.StringIO(),
    )
    # The guest is the source's (it travels as RAM); the monitors and trace are the target's.
    assert target.guest is not None and sorted(target.guest.online_cpus()) == [0, 1]
    assert target.setup.config.freeze and target.setup.config.qmp
    assert target.trace.events == [] and target.qmp_events == []
    target.device_del("core1")
    settle(target)
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert lines and all(line["t"] >= source.sched.now for line in lines)
    assert any(line["event"] == "spapr_drc_unplug_request" for line in lines)


def test_a_target_without_incoming_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "stream.json")
    mig.save(_hot_added_source(), path)
    with pytest.raises(QemuError, match="has no -incoming"):
        mig.incoming_machine(path, [*BASE, *DEV_CORE1], io.StringIO())


# --------------------------------------------------------------------------
# Broken streams
# --------------------------------------------------------------------------


def _saved(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    path = str(tmp_path / "stream.json")
    mig.save(_hot_added_source(), path)
    return path, json.loads(Path(path).read_text())


def _incoming(path: str) -> PseriesMachine:
    return mig.incoming_machine(
        path, [*BASE, *DEV_CORE1, "-incoming", f"file:{path}"], io.StringIO()
    )


def test_unknown_stream_version_is_refused(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    document["version"] = 99
    Path(path).write_text(json.dumps(document))
    with pytest.raises(QemuError) as exc:
        _incoming(path)
    assert exc.value.message == (
        f"migration: '{path}' has stream version 99; this emulator reads version 1 only"
    )


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    document["format"] = "qemu-savevm"
    Path(path).write_text(json.dumps(document))
    with pytest.raises(QemuError) as exc:
        _incoming(path)
    assert exc.value.message == f"migration: '{path}' is not a migration stream of this emulator"


def test_truncated_stream_is_refused(tmp_path: Path) -> None:
    path, _document = _saved(tmp_path)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(QemuError) as exc:
        _incoming(path)
    assert exc.value.message.startswith(
        f"migration: '{path}' is not a valid migration stream: truncated or not JSON"
    )


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(QemuError) as exc:
        _incoming(str(path))
    assert exc.value.message == f"migration: '{path}' is not a migration stream of this emulator"


def test_missing_stream_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(QemuError) as exc:
        _incoming(str(path))
    assert exc.value.message == f"Failed to open file '{path}': No such file or directory"


def test_unwritable_destination_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "stream.json"
    with pytest.raises(QemuError) as exc:
        mig.save(_hot_added_source(), str(path))
    assert exc.value.message == f"Failed to open file '{path}': No such file or directory"


def test_a_stream_that_does_not_replay_to_its_sections_is_refused(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    document["sections"]["cpu"][1]["run_state"] = "STOPPED"
    Path(path).write_text(json.dumps(document))
    with pytest.raises(QemuError) as exc:
        _incoming(path)
    assert exc.value.message.startswith(
        "migration: the machine rebuilt from the stream differs from the source at "
        "sections['cpu'][1]['run_state']: source \"STOPPED\", rebuilt "
    )


def test_a_stream_with_an_unknown_journal_entry_is_refused(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    document["journal"].append({"t": document["source"]["time_ns"], "command": "nmi", "args": {}})
    Path(path).write_text(json.dumps(document))
    with pytest.raises(QemuError, match="journal holds 'nmi'"):
        _incoming(path)


# --------------------------------------------------------------------------
# Migrating again, determinism, what the source must be
# --------------------------------------------------------------------------


def test_target_migrates_again(tmp_path: Path) -> None:
    first_dir = tmp_path / "first"
    second_dir = tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    source = _hot_added_source()
    middle, _ = migrate(source, first_dir, DEV_CORE1)
    assert [e.command for e in middle.journal] == ["device_add", mig.INCOMING_ENTRY]
    middle.device_add({"driver": CORE, "id": "core2", "core-id": 2})
    middle.sched.run_for(20_000)  # into the handshake: the guest has started answering
    devices = [*DEV_CORE1, "-device", f"{CORE},id=core2,core-id=2"]
    last, stream = migrate(middle, second_dir, devices)
    assert vmstate.state_sections(last) == stream.sections == vmstate.state_sections(middle)
    settle(last)
    assert sorted(last.guest.hwids()[c] for c in last.guest.online_cpus()) == [0, 1, 2]
    assert [e.command for e in last.journal] == [
        "device_add",
        mig.INCOMING_ENTRY,
        "device_add",
        mig.INCOMING_ENTRY,
    ]
    # The second target started from the original machine options, not the middle's -device.
    assert "-device" not in last.setup.config.argv


def test_the_stream_is_deterministic(tmp_path: Path) -> None:
    def run(extra_core: bool) -> bytes:
        source = boot()
        source.device_add(CORE1)
        source.sched.run_for(25_000)
        if extra_core:
            source.device_add({"driver": CORE, "id": "core2", "core-id": 2})
        path = tmp_path / f"stream-{extra_core}.json"
        mig.save(source, str(path))
        return path.read_bytes()

    first = run(False)
    assert run(False) == first
    assert run(True) != first


def test_replay_does_not_depend_on_how_the_source_split_its_run(tmp_path: Path) -> None:
    """Sources advancing in different steps reach the same state; each one resumes."""
    end = ADD.calls[WALK[3]].t
    results = []
    for steps in ([end], [ADD.calls[0].t, ADD.calls[5].t - 1, end], list(range(3 * S, end, 997))):
        source = boot()
        source.device_add(CORE1)
        for when in [*steps, end]:
            if when >= source.sched.now:
                source.sched.run_until(when)
        results.append(vmstate.state_sections(source))
        directory = tmp_path / str(len(results))
        directory.mkdir()
        target, stream = migrate(source, directory, DEV_CORE1)
        assert vmstate.state_sections(target) == stream.sections
    assert results[0] == results[1] == results[2]


def test_a_guest_loaded_by_hand_cannot_be_migrated(tmp_path: Path) -> None:
    from guest import LinuxGuest

    machine = build_machine(NO_GUEST, io.StringIO())
    machine.load_guest(LinuxGuest())
    machine.reset()
    with pytest.raises(QemuError, match="guest was not loaded from its command line"):
        mig.save(machine, str(tmp_path / "stream.json"))


def test_query_migrate_and_runstate_rules(tmp_path: Path) -> None:
    source = boot()
    source.runstate = "running"
    path = str(tmp_path / "stream.json")
    result = mig.save(source, path)
    assert result.query_migrate(total_time_ms=5)["ram"]["transferred"] == Path(path).stat().st_size
    assert result.query_migrate()["status"] == "completed"
    stream = mig.load_stream(path)
    assert stream.runstate == "running"
    assert mig.runstate_after_incoming(stream, autostart=True) == "running"
    assert mig.runstate_after_incoming(stream, autostart=False) == "paused"
    prelaunch = mig.capture(source, runstate="prelaunch")
    assert mig.runstate_after_incoming(prelaunch, autostart=True) == "prelaunch"
    assert mig.file_uri_path("file:/tmp/x") == "/tmp/x"
    with pytest.raises(QemuError, match="unknown migration protocol: tcp:1:2"):
        mig.file_uri_path("tcp:1:2")
