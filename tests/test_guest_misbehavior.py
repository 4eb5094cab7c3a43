"""Deliberately misbehaving guests: each gets QEMU's codes and keeps running."""

from __future__ import annotations

import pytest
from test_guest_handshake import check_exception_ok
from test_guest_platform import (
    CONFIGURED,
    CPU_DRC_BASE,
    IRQ_HOTPLUG,
    MASK_HOTPLUG,
    UNISOLATE,
    UNUSABLE,
    FakePlatform,
    booted,
    build_tree,
)

from guest import DrcOutcome, GuestMode, GuestTiming, LinuxGuest, Misbehavior, WrongIndices

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)
X2 = CPU_DRC_BASE | 2


def guest_with(misbehavior: Misbehavior, **kwargs: object) -> LinuxGuest:
    return LinuxGuest(misbehavior=misbehavior, timing=QUIET, **kwargs)  # type: ignore[arg-type]


def still_works(platform: FakePlatform, guest: LinuxGuest, core_id: int) -> None:
    """A later, unrelated hot-add still completes (the guest kept running)."""
    platform.plug_core(core_id)
    platform.run(S)
    assert platform.drc(core_id).state == CONFIGURED
    assert core_id in guest.hwids().values()


def test_guest_that_never_answers_unplug() -> None:
    platform, guest = booted(
        guest_with(Misbehavior(ignore_unplug=True)), build_tree(slots=4, boot_cores=1)
    )
    platform.plug_core(2)
    platform.run(S)
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(S)
    calls = platform.calls[mark:]
    assert len(calls) == 1
    check_exception_ok(calls[0], IRQ_HOTPLUG, MASK_HOTPLUG)
    assert platform.drc(2).state == CONFIGURED and platform.drc(2).unplug_requested
    assert guest.online_cpus() == [0, 1]
    assert guest.drc_actions[X2].outcome is DrcOutcome.IGNORED
    assert guest.log.contains("ignoring hotplug REMOVE request for drc index 10000002")
    still_works(platform, guest, 3)


def test_legacy_guest_that_never_answers_unplug() -> None:
    platform, guest = booted(
        LinuxGuest(
            mode=GuestMode.RTAS_ERRD_DRMGR,
            misbehavior=Misbehavior(ignore_unplug=True),
            timing=QUIET,
        ),
        build_tree(slots=4, boot_cores=1),
    )
    platform.plug_core(2)
    platform.run(S)
    platform.unplug_core(2)
    platform.run(S)
    assert platform.drc(2).state == CONFIGURED and platform.drc(2).unplug_requested
    assert guest.drc_actions[X2].outcome is DrcOutcome.IGNORED


@pytest.mark.parametrize("k", [0, 1, 5])
def test_guest_that_abandons_configure_connector(k: int) -> None:
    platform, guest = booted(
        guest_with(Misbehavior(abandon_configure_after=k)), build_tree(slots=4, boot_cores=1)
    )
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    calls = platform.calls[mark:]
    assert [c.name for c in calls].count("ibm,configure-connector") == k
    assert platform.drc(2).state == UNISOLATE
    assert guest.online_cpus() == [0]
    assert guest.drc_actions[X2].outcome is DrcOutcome.ABANDONED
    assert guest.log.contains(f"after {k} calls")
    # A later device_del: the node is unknown, the DRC senses PRESENT, so the guest
    # UNISOLATEs it -- which QEMU takes as a rejected unplug (edge case 23).
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(S)
    assert [c.short() for c in platform.calls[mark + 1 :]] == [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 1), (0,)),
    ]
    assert guest.log.contains("Cannot find CPU (drc index 10000002) to remove")
    assert "DEVICE_UNPLUG_GUEST_ERROR core 2" in platform.events


def test_legacy_guest_that_abandons_configure_connector() -> None:
    platform, guest = booted(
        LinuxGuest(
            mode=GuestMode.RTAS_ERRD_DRMGR,
            misbehavior=Misbehavior(abandon_configure_after=3),
            timing=QUIET,
        ),
        build_tree(slots=4, boot_cores=1),
    )
    platform.plug_core(2)
    platform.run(S)
    assert [c.name for c in platform.calls].count("ibm,configure-connector") == 3
    assert platform.drc(2).state == UNISOLATE
    assert guest.drc_actions[X2].outcome is DrcOutcome.ABANDONED


def wrong(services: set[str], **deltas: int) -> LinuxGuest:
    return guest_with(Misbehavior(wrong_indices=WrongIndices(frozenset(services), **deltas)))


def test_wrong_index_on_get_sensor_state() -> None:
    platform, guest = booted(wrong({"get-sensor-state"}), build_tree(slots=4, boot_cores=1))
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert [c.short() for c in platform.calls[mark + 1 :]] == [
        ("get-sensor-state", (9003, X2 + 0x100), (-3, 0)),
    ]
    texts = guest.log.texts()
    assert "wrong-index guest: get-sensor-state(0x232b, 0x10000102) returned -3" in texts
    assert "pseries-hotplug-cpu: Failed to acquire DRC, rc: -1, drc index: 10000002" in texts
    assert platform.drc(2).state == UNUSABLE
    assert guest.drc_actions[X2].outcome is DrcOutcome.ADD_FAILED


def test_wrong_index_on_set_indicator() -> None:
    platform, guest = booted(wrong({"set-indicator"}), build_tree(slots=4, boot_cores=1))
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert [c.short() for c in platform.calls[mark + 1 :]] == [
        ("get-sensor-state", (9003, X2), (0, 2)),
        ("set-indicator", (9003, X2 + 0x100, 1), (-3,)),
    ]
    assert guest.log.contains("Failed to acquire DRC, rc: -22, drc index: 10000002")


def test_wrong_index_on_configure_connector_leaves_the_drc_isolated() -> None:
    platform, guest = booted(wrong({"ibm,configure-connector"}), build_tree(slots=4, boot_cores=1))
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    calls = [c.short() for c in platform.calls[mark + 1 :]]
    assert calls[:3] == [
        ("get-sensor-state", (9003, X2), (0, 2)),
        ("set-indicator", (9003, X2, 1), (0,)),
        ("set-indicator", (9001, X2, 1), (0,)),
    ]
    assert calls[3][0] == "ibm,configure-connector" and calls[3][2] == (-3,)
    # dlpar_release_drc: PRESENT, then ISOLATE from UNISOLATE is refused (-3) by QEMU.
    assert calls[4:] == [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (-3,)),
    ]
    texts = guest.log.texts()
    assert "Unexpected Error (-3) returned from configure-connector" in texts
    assert "pseries-hotplug-cpu: Failed call to configure-connector, drc index: 10000002" in texts
    assert guest.log.contains("configure-connector on drc index 10000102 returned -3")
    assert platform.drc(2).state == UNISOLATE


def test_wrong_hwid_on_start_cpu_rolls_the_add_back() -> None:
    platform, guest = booted(
        wrong({"start-cpu"}, hwid_delta=0x40), build_tree(slots=4, boot_cores=1)
    )
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    calls = [c.short() for c in platform.calls[mark + 1 :] if c.name != "ibm,configure-connector"]
    assert calls == [
        ("get-sensor-state", (9003, X2), (0, 2)),
        ("set-indicator", (9003, X2, 1), (0,)),
        ("set-indicator", (9001, X2, 1), (0,)),
        ("query-cpu-stopped-state", (2,), (0, 0)),
        ("start-cpu", (0x42, guest.secondary_entry, 0x42), (-3,)),
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (0,)),
        ("set-indicator", (9003, X2, 0), (0,)),
    ]
    texts = guest.log.texts()
    assert "start-cpu failed: -3" in texts
    assert "smp: failed starting cpu 1 (rc -2)" in texts
    assert (
        "pseries-hotplug-cpu: Failed to online cpu PowerPC,POWER9, rc: -2, drc index: 10000002"
        in texts
    )
    # Nothing asked QEMU to unplug, so the core stays attached and senses UNUSABLE (edge 26).
    assert platform.drc(2).core is not None and platform.drc(2).state == UNUSABLE
    assert guest.online_cpus() == [0]
    assert guest.tree.find("/cpus/PowerPC,POWER9@2") is None


def test_wrong_hwid_on_query_is_logged_and_start_cpu_goes_ahead() -> None:
    platform, guest = booted(
        wrong({"query-cpu-stopped-state"}, hwid_delta=0x40), build_tree(slots=4, boot_cores=1)
    )
    platform.plug_core(2)
    platform.run(S)
    starts = [
        c.short() for c in platform.calls if c.name in ("query-cpu-stopped-state", "start-cpu")
    ]
    # Boot used the right id; during DLPAR the query goes to 0x42 and fails, which
    # smp_startup_cpu does not treat as "already running", so start-cpu follows.
    assert starts[-2:] == [
        ("query-cpu-stopped-state", (0x42,), (-3, 0)),
        ("start-cpu", (2, guest.secondary_entry, 2), (0,)),
    ]
    assert guest.log.contains("RTAS query-cpu-stopped-state failed: -3")
    assert guest.log.contains("wrong-index guest: query-cpu-stopped-state(0x42) returned -3")
    assert guest.online_cpus() == [0, 1]
