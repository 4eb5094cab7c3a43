"""The guest's DLPAR checks and error paths, as Linux 6.1 runs them.

Sources: Linux 6.1 ``arch/powerpc/platforms/pseries/hotplug-cpu.c``
(``dlpar_cpu_add``, ``valid_cpu_drc_index``, ``drc_info_valid_index``,
``dlpar_cpu_exists``, ``dlpar_cpu_remove``) and ``dlpar.c`` (``dlpar_acquire_drc``,
``dlpar_release_drc``, ``dlpar_unisolate_drc``); the ``ibm,drc-info`` layout is
PAPR's (LoPAPR §C.6.5.1: a count, then per entry the type string, the name prefix
string, and five cells: first index, first name suffix, number of sequential
elements, sequential increment, power domain). QEMU 7.2 publishes
``ibm,drc-indexes`` only, so a guest sees ``ibm,drc-info`` only from a platform
that offers it; Linux then trusts it instead of ``ibm,drc-indexes``.

The guest runs on the fake platform of ``tests/test_guest_platform.py`` (QEMU 7.2's
answers); what is checked is what a platform sees (the RTAS calls) and what the
guest prints.
"""

from __future__ import annotations

import struct

import pytest
from test_guest_platform import CPU_DRC_BASE, FakePlatform, booted, build_tree

import fdt
from guest import DrcOutcome, GuestTiming, LinuxGuest, LogLevel, Misbehavior, WrongIndices
from guest.dlpar import valid_cpu_drc_index
from rtas import HotplugAction, HotplugIdType, HotplugResource, RtasCall, hotplug_event

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)
HOTPLUG_CPU = "pseries-hotplug-cpu: "


def drc_info(*entries: tuple[str, str, int, int, int, int]) -> bytes:
    """An ``ibm,drc-info`` value: (type, prefix, first index, first suffix, count, step)."""
    out = struct.pack(">I", len(entries))
    for kind, prefix, start, suffix, count, step in entries:
        out += kind.encode() + b"\0" + prefix.encode() + b"\0"
        out += struct.pack(">IIIII", start, suffix, count, step, 0xFFFFFFFF)
    return out


def cpus_with(info: bytes | None, indexes: tuple[int, ...] = ()) -> fdt.Node:
    """A /cpus node with the given ``ibm,drc-info`` and ``ibm,drc-indexes``."""
    node = fdt.Node("cpus")
    node.append_property(fdt.Property.cells("ibm,drc-indexes", len(indexes), *indexes))
    if info is not None:
        node.append_property(fdt.Property("ibm,drc-info", info))
    return node


CPU = CPU_DRC_BASE


@pytest.mark.parametrize(
    ("info", "index", "valid"),
    [
        # one CPU entry: indexes start, start + step, ... (count of them)
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU + 3, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU + 4, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU - 1, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 8, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 24, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 4, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 32, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 1, 1)), CPU, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 1, 1)), CPU + 1, False),
        # an entry with no elements holds nothing
        (drc_info(("CPU", "CPU ", CPU, 0, 0, 1)), CPU, False),
        # a second CPU entry is searched too
        (
            drc_info(("CPU", "CPU ", CPU, 0, 2, 1), ("CPU", "CPU ", CPU + 16, 0, 2, 1)),
            CPU + 17,
            True,
        ),
        # ... but the search stops at the first entry that is not a CPU one
        (drc_info(("MEM", "LMB ", 0x80000000, 0, 4, 1), ("CPU", "CPU ", CPU, 0, 4, 1)), CPU, False),
        # the type is compared on its first three characters only ("CPU" prefix)
        (drc_info(("CPUX", "CPU ", CPU, 0, 4, 1)), CPU + 1, True),
        # no entries, or a value too short for its count or for its cells
        (drc_info(), CPU, False),
        (b"", CPU, False),
        (b"\0\0\0", CPU, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1))[:-1], CPU, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1))[:8], CPU, False),
        (struct.pack(">I", 2) + drc_info(("CPU", "CPU ", CPU, 0, 1, 1))[4:], CPU, True),
    ],
)
def test_drc_info_decides_which_indexes_are_cpus(info: bytes, index: int, valid: bool) -> None:
    """valid_cpu_drc_index with ``ibm,drc-info``: drc_info_valid_index walks the CPU
    entries (Linux 6.1 hotplug-cpu.c), ignoring ``ibm,drc-indexes`` (which here lists
    every index, so only drc-info can refuse one)."""
    parent = cpus_with(info, indexes=tuple(range(CPU - 1, CPU + 40)))
    assert valid_cpu_drc_index(parent, index) is valid


def test_without_drc_info_the_indexes_list_decides() -> None:
    """No ``ibm,drc-info``: the index must be in ``ibm,drc-indexes``."""
    parent = cpus_with(None, indexes=(CPU, CPU + 1))
    assert valid_cpu_drc_index(parent, CPU + 1)
    assert not valid_cpu_drc_index(parent, CPU + 2)


def tree_with_drc_info(info: bytes) -> fdt.Node:
    tree = build_tree(slots=4, boot_cores=1)
    cpus = tree.find("/cpus")
    assert cpus is not None
    cpus.append_property(fdt.Property("ibm,drc-info", info))
    return tree


def test_add_of_an_index_drc_info_does_not_list_is_refused_before_any_drc_call() -> None:
    """dlpar_cpu_add: an index valid_cpu_drc_index refuses is "Cannot find CPU (drc
    index %x) to add." and -EINVAL, before dlpar_acquire_drc touches the connector."""
    info = drc_info(("CPU", "CPU ", CPU, 0, 2, 1))  # cores 0 and 1 only
    platform, guest = booted(LinuxGuest(timing=QUIET), tree_with_drc_info(info))
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    names = [c.name for c in platform.calls[mark:]]
    assert names == ["check-exception"]
    assert (LogLevel.WARNING, f"{HOTPLUG_CPU}Cannot find CPU (drc index {CPU + 2:x}) to add.") in [
        (e.level, e.text) for e in guest.log.kernel()
    ]
    assert guest.online_cpus() == [0]


def test_add_of_an_index_drc_info_lists_goes_ahead() -> None:
    """The same platform: an index drc-info lists is acquired and comes online."""
    info = drc_info(("CPU", "CPU ", CPU, 0, 4, 1))
    platform, guest = booted(LinuxGuest(timing=QUIET), tree_with_drc_info(info))
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]


# ----------------------------------------------------------- the request paths


def quiet_guest(**kwargs: object) -> tuple[FakePlatform, LinuxGuest]:
    guest = LinuxGuest(timing=QUIET, **kwargs)  # type: ignore[arg-type]
    return booted(guest, build_tree(slots=4, boot_cores=1))


def kernel_lines(guest: LinuxGuest) -> list[tuple[LogLevel, str]]:
    return [(e.level, e.text) for e in guest.log.kernel()]


def request(platform: FakePlatform, action: HotplugAction, index: int, **kw: object) -> None:
    """Queue a hotplug request as QEMU does (CPU, by DRC index unless told otherwise)."""
    fields: dict[str, object] = {
        "resource": HotplugResource.CPU,
        "id_type": HotplugIdType.DRC_INDEX,
        "drc_index": index,
    }
    fields.update(kw)
    entry = hotplug_event(
        fields["resource"],  # type: ignore[arg-type]
        action,
        fields["id_type"],  # type: ignore[arg-type]
        drc_index=int(fields["drc_index"]),  # type: ignore[call-overload]
        count=int(fields.get("count", 0)),  # type: ignore[call-overload]
        plid=platform.plid,
        date=(2024, 1, 1),
        time=(0, 0, 0),
    )
    platform.plid += 1
    platform.enqueue(entry)


def test_a_request_for_a_cpu_the_guest_already_has_is_refused() -> None:
    """dlpar_cpu_add: dlpar_cpu_exists finds a /cpus child with that
    ``ibm,my-drc-index``: "CPU with drc index %x already exists", -EINVAL, no DR call."""
    platform, guest = quiet_guest()
    mark = len(platform.calls)
    request(platform, HotplugAction.ADD, CPU)
    platform.run(S)
    assert [c.name for c in platform.calls[mark:]] == ["check-exception"]
    assert (LogLevel.WARNING, f"{HOTPLUG_CPU}CPU with drc index {CPU:x} already exists") in (
        kernel_lines(guest)
    )
    action = guest.drc_actions[CPU]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -22)


def test_a_remove_for_a_cpu_the_guest_does_not_have_is_signalled_back() -> None:
    """dlpar_cpu_remove_by_index: no node with that index, "Cannot find CPU (drc index
    %x) to remove", -ENODEV; dlpar_cpu then UNISOLATEs (the DRC senses PRESENT), which
    QEMU reads as the guest refusing the unplug."""
    platform, guest = quiet_guest()
    platform.plug_core(2, event=False)  # present on the platform, unknown to the guest
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(S)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Cannot find CPU (drc index {CPU + 2:x}) to remove",
    ) in kernel_lines(guest)
    calls = [c.short() for c in platform.calls[mark:] if c.name != "check-exception"]
    assert calls == [
        ("get-sensor-state", (9003, CPU + 2), (0, 1)),
        ("set-indicator", (9001, CPU + 2, 1), (0,)),
    ]
    assert "DEVICE_UNPLUG_GUEST_ERROR core 2" in platform.events
    action = guest.drc_actions[CPU + 2]
    assert (action.action, action.outcome, action.rc) == (
        "remove",
        DrcOutcome.REMOVE_REFUSED,
        -19,
    )


def test_a_completed_add_and_remove_are_recorded() -> None:
    """The guest's record of its last operation per DRC (LinuxGuest.drc_actions)."""
    platform, guest = quiet_guest()
    platform.plug_core(2)
    platform.run(S)
    action = guest.drc_actions[CPU + 2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADDED, 0)
    platform.unplug_core(2)
    platform.run(S)
    action = guest.drc_actions[CPU + 2]
    assert (action.action, action.outcome, action.rc) == ("remove", DrcOutcome.REMOVED, 0)


@pytest.mark.parametrize("action", [HotplugAction.ADD, HotplugAction.REMOVE])
def test_requests_by_count_or_name_are_not_acted_on(action: HotplugAction) -> None:
    """dlpar_cpu: only DRC-index requests are handled here (-EINVAL otherwise), and
    no connector is touched."""
    platform, guest = quiet_guest()
    mark = len(platform.calls)
    request(platform, action, 0, id_type=HotplugIdType.DRC_COUNT, count=1)
    platform.run(S)
    assert [c.name for c in platform.calls[mark:]] == ["check-exception"]
    assert guest.online_cpus() == [0]
    assert guest.drc_actions == {}


def test_memory_requests_touch_no_connector_and_the_worker_goes_on() -> None:
    """A memory (or PMEM) request goes to the same ordered workqueue; the model does
    no memory DLPAR, so it makes no DR call, and the next CPU request is handled."""
    platform, guest = quiet_guest()
    mark = len(platform.calls)
    request(platform, HotplugAction.ADD, 0x80000010, resource=HotplugResource.MEMORY)
    request(platform, HotplugAction.ADD, 0x90000000, resource=HotplugResource.PMEM)
    platform.run(S)
    assert {c.name for c in platform.calls[mark:]} == {"check-exception"}
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]


def test_a_wrong_index_guest_misbehaves_only_during_dlpar_work() -> None:
    """The wrong-index misbehaviour applies to DLPAR work only: once a DLPAR request is
    done, offlining a CPU from user space polls query-cpu-stopped-state with the
    right hardware id, and the CPU goes offline."""
    wrong = Misbehavior(wrong_indices=WrongIndices(services={"query-cpu-stopped-state"}))
    platform, guest = quiet_guest(misbehavior=wrong)
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    mark = len(platform.calls)
    guest.request_cpu_offline(1)
    platform.run(2 * S)
    queries = [c.short() for c in platform.calls[mark:] if c.name == "query-cpu-stopped-state"]
    assert queries and all(args == (2,) for _name, args, _rets in queries)
    assert guest.online_cpus() == [0]


class CcPlatform(FakePlatform):
    """QEMU 7.2's fake, with the first configure-connector answers scripted."""

    cc_answers: list[int]

    def _configure_connector(self, call: RtasCall) -> None:
        if self.cc_answers:
            call.set_ret(0, self.cc_answers.pop(0))
            return
        super()._configure_connector(call)


def cc_guest(answers: list[int]) -> tuple[CcPlatform, LinuxGuest]:
    guest = LinuxGuest(timing=QUIET)
    platform = CcPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.cc_answers = []
    platform.boot()
    platform.run(2 * S)
    platform.cc_answers = answers
    return platform, guest


def released_after(platform: FakePlatform, mark: int) -> list[tuple[object, ...]]:
    keep = ("set-indicator", "get-sensor-state")
    return [c.short() for c in platform.calls[mark:] if c.name in keep][-2:]


#: dlpar_release_drc after a walk that did not complete: the DRC is still UNISOLATE
#: (I), where QEMU refuses ISOLATE with -3 (protocol.md §5.4), so the release stops
#: there and the allocation is left as it is.
RELEASE = [
    ("get-sensor-state", (9003, CPU + 2), (0, 1)),
    ("set-indicator", (9001, CPU + 2, 0), (-3,)),
]


@pytest.mark.parametrize("status", [-9003, -1, 5, 990])
def test_a_failing_configure_connector_gives_the_connector_back(status: int) -> None:
    """dlpar_configure_connector: a status Linux does not know ends the walk ("Unexpected
    Error (%d) returned from configure-connector", KERN_ERR); dlpar_cpu_add then prints
    "Failed call to configure-connector" and tries to release the DRC."""
    platform, guest = cc_guest([status])
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    log = kernel_lines(guest)
    assert (LogLevel.ERR, f"Unexpected Error ({status}) returned from configure-connector") in log
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed call to configure-connector, drc index: {CPU + 2:x}",
    ) in log
    assert released_after(platform, mark) == RELEASE
    assert guest.online_cpus() == [0]
    action = guest.drc_actions[CPU + 2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -22)


def test_busy_configure_connector_answers_are_retried() -> None:
    """rtas_busy_delay on the walk: -2 retried at once, 9902 after 100 ms; the walk
    then completes and the CPU comes online."""
    platform, guest = cc_guest([-2, 9902])
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    walk = [c for c in platform.calls[mark:] if c.name == "ibm,configure-connector"]
    assert [c.rets[0] for c in walk[:3]] == [-2, 9902, 2]
    assert walk[1].time - walk[0].time < 1_000_000
    assert 100_000_000 <= walk[2].time - walk[1].time < 101_000_000
    assert guest.online_cpus() == [0, 1]


def test_a_malformed_answer_ends_the_walk_and_gives_the_connector_back() -> None:
    """A property before any node cannot be attached anywhere: the walk is refused
    (KERN_ERR) and the add fails like any failed walk."""
    platform, guest = cc_guest([3])  # NEXT_PROPERTY first
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    log = kernel_lines(guest)
    assert any(level == LogLevel.ERR and t.startswith("dlpar: ") for level, t in log)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed call to configure-connector, drc index: {CPU + 2:x}",
    ) in log
    assert released_after(platform, mark) == RELEASE


def test_removing_the_last_online_cpu_is_refused_at_warning_level_with_einval() -> None:
    """dlpar_offline_cpu: "Unable to remove last online CPU %pOFn" and -EBUSY;
    dlpar_cpu_remove: "Failed to offline CPU %pOFn, rc: -16" (pr_warn both) and
    -EINVAL, which is the rc the guest records for the refused removal."""
    platform, guest = quiet_guest()
    platform.unplug_core(0)
    platform.run(S)
    log = kernel_lines(guest)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Unable to remove last online CPU PowerPC,POWER9",
    ) in log
    assert (LogLevel.WARNING, f"{HOTPLUG_CPU}Failed to offline CPU PowerPC,POWER9, rc: -16") in log
    action = guest.drc_actions[CPU]
    assert (action.action, action.outcome, action.rc) == ("remove", DrcOutcome.REMOVE_REFUSED, -22)


def test_only_the_drc_type_names_a_cpu_entry() -> None:
    """drc_info_valid_index compares the entry's type string, not its name prefix."""
    parent = cpus_with(drc_info(("MEM", "CPU ", CPU, 0, 4, 1)), indexes=(CPU,))
    assert not valid_cpu_drc_index(parent, CPU)
    parent = cpus_with(drc_info(("CPU", "LMB ", CPU, 0, 4, 1)), indexes=(CPU,))
    assert valid_cpu_drc_index(parent, CPU)
