"""The older guest: no OV5_HP_EVT, events on the EPOW IRQ, rtas_errd + drmgr (protocol.md §7.4)."""

from __future__ import annotations

from typing import Any

from test_guest_handshake import check_exception_ok, expected_add, fragment_props, normalise_wa
from test_guest_platform import (
    CPU_DRC_BASE,
    IRQ_EPOW,
    MASK_EPOW,
    Call,
    booted,
    build_tree,
)

from guest import SECONDARY_ENTRY, DrcOutcome, GuestMode, GuestTiming, LinuxGuest

S = 1_000_000_000


def legacy_guest() -> LinuxGuest:
    return LinuxGuest(mode=GuestMode.RTAS_ERRD_DRMGR, timing=GuestTiming(event_scan=False))


def epow_prefix(calls: list[Call]) -> None:
    """The kernel's EPOW handler: sensor 9 (QEMU: -3, state 0), then check-exception(EPOW)."""
    assert calls[0].short() == ("get-sensor-state", (9, 0), (-3, 0))
    check_exception_ok(calls[1], IRQ_EPOW, MASK_EPOW)


def test_legacy_boot_negotiates_no_hotplug_events_and_only_takes_epow() -> None:
    platform, guest = booted(legacy_guest(), build_tree(slots=4, boot_cores=2))
    assert not platform.cas_ov5[5] & 0x04
    assert not platform.hp_evt and not guest.features.hp_evt
    assert [c.short() for c in platform.calls if c.name.startswith("ibm,")] == [
        ("ibm,set-xive", (IRQ_EPOW, 0, 5), (0,)),
        ("ibm,int-on", (IRQ_EPOW,), (0,)),
        ("ibm,get-xive", (IRQ_EPOW,), (0, 0, 5)),
        ("ibm,set-xive", (IRQ_EPOW, 0, 5), (0,)),
    ]


def test_legacy_add_is_the_same_rtas_sequence_driven_by_drmgr() -> None:
    platform, guest = booted(legacy_guest(), build_tree(slots=4, boot_cores=2))
    mark = len(platform.calls)
    platform.plug_core(2)
    props = fragment_props(platform, 2)
    platform.run(S)
    calls = platform.calls[mark:]
    epow_prefix(calls)
    x = CPU_DRC_BASE | 2
    assert normalise_wa(calls[2:]) == expected_add(x, (2,), props)
    assert guest.online_cpus() == [0, 1, 2]
    assert "RTAS: event: 1, Type: Hotplug Event (229), Severity: 1" in guest.log.texts()
    assert "drmgr -c cpu -a -s 0x10000002" in guest.log.texts("rtas_errd")
    assert guest.drc_actions[x].outcome is DrcOutcome.ADDED
    # drmgr's configure-connector work area is librtas's own buffer, not rtas_data_buf.
    assert platform.hp_evt is False


def test_legacy_remove_senses_again_after_releasing() -> None:
    platform, guest = booted(legacy_guest(), build_tree(slots=4, boot_cores=2))
    platform.plug_core(2)
    platform.run(S)
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(S)
    calls = platform.calls[mark:]
    epow_prefix(calls)
    x = CPU_DRC_BASE | 2
    expected: list[tuple[Any, ...]] = [
        (2, "ibm,get-xive", (IRQ_EPOW,), (0, 0, 5)),
        (2, "stop-self", (), ()),
        (0, "query-cpu-stopped-state", (2,), (0, 0)),
        (0, "get-sensor-state", (9003, x), (0, 1)),
        (0, "set-indicator", (9001, x, 0), (0,)),
        (0, "set-indicator", (9003, x, 0), (0,)),
        (0, "get-sensor-state", (9003, x), (0, 2)),
    ]
    assert [(c.hwid, *c.short()) for c in calls[2:]] == expected
    assert "DEVICE_DELETED core 2" in platform.events
    assert guest.online_cpus() == [0, 1]
    assert guest.drc_actions[x].outcome is DrcOutcome.REMOVED


def test_drmgr_refuses_the_last_cpu_silently() -> None:
    platform, guest = booted(legacy_guest(), build_tree(slots=2, boot_cores=1))
    mark = len(platform.calls)
    platform.unplug_core(0)
    platform.run(S)
    calls = platform.calls[mark:]
    epow_prefix(calls)
    assert calls[2:] == []
    assert "Cannot remove the last CPU" in guest.log.texts("drmgr")
    assert platform.drc(0).unplug_requested, "older guests give no signal: the unplug stays pending"
    assert "DEVICE_UNPLUG_GUEST_ERROR core 0" not in platform.events


def test_legacy_readd_after_remove() -> None:
    platform, guest = booted(legacy_guest(), build_tree(slots=3, boot_cores=1))
    for _ in range(2):
        platform.plug_core(1)
        platform.run(S)
        assert guest.online_cpus() == [0, 1]
        platform.unplug_core(1)
        platform.run(S)
        assert guest.online_cpus() == [0]
    starts = [c.short() for c in platform.calls if c.name == "start-cpu"]
    assert starts == [("start-cpu", (1, SECONDARY_ENTRY, 1), (0,))] * 2
