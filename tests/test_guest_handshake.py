"""The guest's half of the CPU-hotplug handshake, call by call (protocol.md §7.1-§7.3).

Expected sequences are written out from the protocol tables: the services, their
arguments and the statuses a QEMU 7.2-correct platform returns. The fake platform
(test_guest_platform) records every RTAS call it executes.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_guest_platform import (
    CONFIGURED,
    CPU_DRC_BASE,
    IRQ_EPOW,
    IRQ_HOTPLUG,
    MASK_HOTPLUG,
    RAM,
    UNUSABLE,
    Call,
    FakePlatform,
    booted,
    build_tree,
    dr_calls,
    oracle_tree,
)

from guest import SECONDARY_ENTRY, DrcOutcome, GuestTiming, LinuxGuest
from rtas.hcalls import Hcall

QUIET = GuestTiming(event_scan=False)
S = 1_000_000_000


def quiet_guest(**kwargs: Any) -> LinuxGuest:
    return LinuxGuest(timing=QUIET, **kwargs)


def check_exception_ok(call: Call, irq: int, mask: int) -> None:
    """check-exception(0x500, irq, mask, 0, buf, 2048) answered 0, buf a 32-bit RAM address."""
    assert call.name == "check-exception"
    vector, hwirq, event_mask, critical, buf, length = call.args
    assert (vector, hwirq, event_mask, critical, length) == (0x500, irq, mask, 0, 2048)
    assert 0 < buf < min(RAM, 1 << 32)
    assert call.rets == (0,)


def expected_add(x: int, threads: tuple[int, ...], cc_props: int) -> list[tuple[Any, ...]]:
    """protocol.md §7.1 steps 8-13 (after check-exception): the calls and QEMU's returns."""
    seq: list[tuple[Any, ...]] = [
        ("get-sensor-state", (9003, x), (0, 2)),
        ("set-indicator", (9003, x, 1), (0,)),
        ("set-indicator", (9001, x, 1), (0,)),
    ]
    seq.append(("ibm,configure-connector", "wa", (2,)))
    seq += [("ibm,configure-connector", "wa", (3,))] * cc_props
    seq.append(("ibm,configure-connector", "wa", (0,)))
    for h in threads:
        seq.append(("query-cpu-stopped-state", (h,), (0, 0)))
        seq.append(("start-cpu", (h, SECONDARY_ENTRY, h), (0,)))
    return seq


def normalise_wa(calls: list[Call]) -> list[tuple[Any, ...]]:
    """Replace the configure-connector work-area address by "wa" after checking it."""
    out = []
    addresses = set()
    for c in calls:
        if c.name == "ibm,configure-connector":
            wa, extent = c.args
            assert extent == 0 and wa % 4096 == 0 and wa < RAM
            addresses.add(wa)
            out.append((c.name, "wa", c.rets))
        else:
            out.append(c.short())
    assert len(addresses) <= 1, "Linux reuses rtas_data_buf for every call"
    return out


def fragment_props(platform: FakePlatform, core_id: int) -> int:
    steps = platform._fragment(platform.drc(core_id))
    return sum(1 for s in steps if s.tag.name == "PROPERTY")


# ------------------------------------------------------------------------ boot


def test_boot_starts_secondaries_and_unmasks_event_sources() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=4, boot_cores=2))
    assert guest.booted
    assert [c.short() for c in platform.calls] == [
        ("query-cpu-stopped-state", (1,), (0, 0)),
        ("start-cpu", (1, SECONDARY_ENTRY, 1), (0,)),
        # unmask, then the default affinity (as the real guest: tests/data/guest_oracle)
        ("ibm,set-xive", (IRQ_EPOW, 0, 5), (0,)),
        ("ibm,int-on", (IRQ_EPOW,), (0,)),
        ("ibm,get-xive", (IRQ_EPOW,), (0, 0, 5)),
        ("ibm,set-xive", (IRQ_EPOW, 0, 5), (0,)),
        ("ibm,set-xive", (IRQ_HOTPLUG, 0, 5), (0,)),
        ("ibm,int-on", (IRQ_HOTPLUG,), (0,)),
        ("ibm,get-xive", (IRQ_HOTPLUG,), (0, 0, 5)),
        ("ibm,set-xive", (IRQ_HOTPLUG, 0, 5), (0,)),
    ]
    assert guest.online_cpus() == [0, 1]
    assert guest.possible_cpus() == [0, 1, 2, 3]
    assert platform.cas_ov5[5] & 0x04, "Linux 6.1 asks for OV5_HP_EVT"
    assert platform.hp_evt and guest.features.hp_evt
    assert "radix" in guest.features.names()
    assert platform.cas_pvrs[-1] == (0xFFFFFFFE, 0x0F000001)


def test_every_thread_sets_its_cppr_and_idles() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=4, boot_cores=2))
    assert guest.online_cpus() == [0, 1]
    for hwid in (0, 1):
        ops = [op for h, op in platform.hcalls if h == hwid]
        assert (int(Hcall.H_CPPR), 0xFF) in ops
        assert ops[-1][0] == Hcall.H_CEDE


def test_rtasd_scans_each_cpu_after_a_second_then_every_30_seconds() -> None:
    platform, _guest = booted(LinuxGuest(), build_tree(slots=4, boot_cores=2), seconds=65)
    scans = [c for c in platform.calls if c.name == "event-scan"]
    assert [c.hwid for c in scans] == [0, 1, 0, 1]
    times = [c.time for c in scans]
    assert 1 * S <= times[0] < 1.1 * S and 1 * S <= times[1] - times[0] < 1.1 * S
    assert times[2] - times[1] == pytest.approx(30 * S, rel=0.01)
    for c in scans:
        assert c.args[:2] == (0xFFFFFFFF, 0) and c.args[3] == 2048 and c.rets == (1,)


# -------------------------------------------------------------- §7.1 hot-add


@pytest.mark.parametrize("tree_name", ["p9_classic", "p8e_classic", "p10_classic"])
def test_hot_add_smt1_oracle_trees(tree_name: str) -> None:
    platform, guest = booted(quiet_guest(), oracle_tree(tree_name))
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    calls = platform.calls[mark:]
    check_exception_ok(calls[0], IRQ_HOTPLUG, MASK_HOTPLUG)
    x = CPU_DRC_BASE | 2
    assert normalise_wa(calls[1:]) == expected_add(x, (2,), fragment_props(platform, 2))
    assert platform.drc(2).state == CONFIGURED
    assert guest.online_cpus() == [0, 1, 2]
    assert guest.hwids()[2] == 2
    cpus = guest.tree.find("/cpus")
    assert cpus is not None
    node = cpus.children[0]  # of_attach_node puts it first
    assert node["ibm,my-drc-index"].value == x.to_bytes(4, "big")
    assert guest.drc_actions[x].outcome is DrcOutcome.ADDED
    assert guest.sys_cpu_online() == "0-2"


def test_hot_add_smt4_starts_every_thread() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=4, boot_cores=1, threads=4), threads=4)
    assert guest.online_cpus() == [0, 1, 2, 3]
    mark = len(platform.calls)
    platform.plug_core(4)
    platform.run(S)
    calls = platform.calls[mark:]
    check_exception_ok(calls[0], IRQ_HOTPLUG, MASK_HOTPLUG)
    x = CPU_DRC_BASE | 4
    assert normalise_wa(calls[1:]) == expected_add(x, (4, 5, 6, 7), fragment_props(platform, 4))
    assert guest.hwids() == {i: i for i in range(8)}
    assert [c.hwid for c in calls if c.name == "start-cpu"] == [0, 0, 0, 0]


# ------------------------------------------------------------ §7.2 hot-remove


def expected_remove(x: int, threads: tuple[int, ...], controller: int) -> list[tuple[Any, ...]]:
    """protocol.md §7.2 steps 6-10 with Linux's XICS migration on each dying thread."""
    seq: list[tuple[Any, ...]] = []
    for h in threads:
        seq += [
            (h, "ibm,get-xive", (IRQ_EPOW,), (0, 0, 5)),
            (h, "ibm,get-xive", (IRQ_HOTPLUG,), (0, 0, 5)),
            (h, "stop-self", (), ()),
            (controller, "query-cpu-stopped-state", (h,), (0, 0)),
        ]
    seq += [
        (controller, "get-sensor-state", (9003, x), (0, 1)),
        (controller, "set-indicator", (9001, x, 0), (0,)),
        (controller, "set-indicator", (9003, x, 0), (0,)),
    ]
    return seq


@pytest.mark.parametrize(("threads", "slot"), [(1, 2), (4, 4)])
def test_hot_remove_sequence(threads: int, slot: int) -> None:
    platform, guest = booted(
        quiet_guest(), build_tree(slots=4, boot_cores=1, threads=threads), threads=threads
    )
    platform.plug_core(slot)
    platform.run(S)
    mark = len(platform.calls)
    platform.unplug_core(slot)
    platform.run(S)
    calls = platform.calls[mark:]
    check_exception_ok(calls[0], IRQ_HOTPLUG, MASK_HOTPLUG)
    x = CPU_DRC_BASE | slot
    hwids = tuple(range(slot, slot + threads))
    assert [(c.hwid, *c.short()) for c in calls[1:]] == expected_remove(x, hwids, 0)
    assert f"DEVICE_DELETED core {slot}" in platform.events
    assert platform.drc(slot).state == UNUSABLE and platform.drc(slot).core is None
    assert guest.online_cpus() == list(range(threads))
    assert guest.tree.find(f"/cpus/PowerPC,POWER9@{slot:x}") is None
    assert guest.drc_actions[x].outcome is DrcOutcome.REMOVED
    # The controller learns of each death through an IPI from the dying thread.
    assert any(h in hwids and op[:2] == (Hcall.H_IPI, 0) for h, op in platform.hcalls)


def test_dr_subsequence_matches_protocol_tables() -> None:
    """Only the services §7 lists: add then remove of one SMT1 core."""
    platform, _guest = booted(quiet_guest(), build_tree(slots=4, boot_cores=2))
    mark = len(platform.calls)
    platform.plug_core(3)
    cc = 2 + fragment_props(platform, 3)
    platform.run(S)
    platform.unplug_core(3)
    platform.run(S)
    x = CPU_DRC_BASE | 3
    names = [c[0] for c in dr_calls(platform.calls[mark:])]
    assert names == (
        ["check-exception", "get-sensor-state", "set-indicator", "set-indicator"]
        + ["ibm,configure-connector"] * cc
        + ["query-cpu-stopped-state", "start-cpu"]
        + ["check-exception", "stop-self", "query-cpu-stopped-state"]
        + ["get-sensor-state", "set-indicator", "set-indicator"]
    )
    assert ("set-indicator", (9003, x, 0), (0,)) == dr_calls(platform.calls)[-1]


def test_add_remove_add_reuses_the_slot() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=3, boot_cores=1))
    for _ in range(2):
        platform.plug_core(1)
        platform.run(S)
        assert guest.online_cpus() == [0, 1]
        platform.unplug_core(1)
        platform.run(S)
        assert guest.online_cpus() == [0]
    assert platform.events.count("DEVICE_DELETED core 1") == 2


def test_remove_of_a_thread_running_the_worker_migrates_it() -> None:
    """The kworker runs where the IRQ was taken; route it to the dying CPU's thread."""
    platform, guest = booted(quiet_guest(), build_tree(slots=3, boot_cores=1))
    platform.plug_core(1)
    platform.run(S)
    platform.sources[IRQ_HOTPLUG].server = 1
    platform.unplug_core(1)
    platform.run(S)
    assert guest.online_cpus() == [0]
    assert "DEVICE_DELETED core 1" in platform.events
    migrated = [c for c in platform.calls if c.name == "ibm,set-xive" and c.hwid == 1]
    assert migrated and migrated[-1].args == (IRQ_HOTPLUG, 0, 5)


# --------------------------------------------------------- §7.3 refused remove


def test_last_online_cpu_is_refused_and_signalled_back() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=2, boot_cores=1))
    mark = len(platform.calls)
    platform.unplug_core(0)
    platform.run(S)
    calls = platform.calls[mark:]
    check_exception_ok(calls[0], IRQ_HOTPLUG, MASK_HOTPLUG)
    x = CPU_DRC_BASE
    assert [c.short() for c in calls[1:]] == [
        ("get-sensor-state", (9003, x), (0, 1)),
        ("set-indicator", (9001, x, 1), (0,)),
    ]
    assert "DEVICE_UNPLUG_GUEST_ERROR core 0" in platform.events
    assert not platform.drc(0).unplug_requested
    texts = guest.log.texts()
    assert "pseries-hotplug-cpu: Unable to remove last online CPU PowerPC,POWER9" in texts
    assert "pseries-hotplug-cpu: Failed to offline CPU PowerPC,POWER9, rc: -16" in texts
    assert guest.drc_actions[x].outcome is DrcOutcome.REMOVE_REFUSED
    assert guest.online_cpus() == [0]


def test_refusal_after_the_boot_cpu_was_offlined_by_the_user() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=2, boot_cores=1))
    platform.plug_core(1)
    platform.run(S)
    guest.request_cpu_offline(0)
    platform.run(2 * S)
    assert guest.online_cpus() == [1]
    # The hotplug IRQ was routed to CPU 0; Linux moved it to CPU 1 on the way down.
    assert platform.sources[IRQ_HOTPLUG].server == 1
    platform.unplug_core(1)
    platform.run(S)
    assert "DEVICE_UNPLUG_GUEST_ERROR core 1" in platform.events
    assert guest.online_cpus() == [1]
    # A repeated device_del is answered the same way (edge case 2).
    platform.unplug_core(1)
    platform.run(S)
    assert platform.events.count("DEVICE_UNPLUG_GUEST_ERROR core 1") == 2


def test_user_can_bring_the_cpu_back() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=2, boot_cores=2))
    guest.request_cpu_offline(1)
    platform.run(2 * S)
    assert guest.sys_cpu_online() == "0"
    mark = len(platform.calls)
    guest.request_cpu_online(1)
    platform.run(2 * S)
    assert guest.sys_cpu_online() == "0-1"
    assert [c.short() for c in platform.calls[mark:]] == [
        ("query-cpu-stopped-state", (1,), (0, 0)),
        ("start-cpu", (1, SECONDARY_ENTRY, 1), (0,)),
    ]
    guest.request_cpu_offline(0)
    guest.request_cpu_offline(1)
    platform.run(2 * S)
    assert guest.online_cpus() == [1]
    assert guest.log.contains("Device or resource busy", source="sh")


def test_user_offline_and_device_del_of_the_same_core_take_turns() -> None:
    platform, guest = booted(quiet_guest(), build_tree(slots=3, boot_cores=1))
    platform.plug_core(1)
    platform.run(S)
    guest.request_cpu_offline(1)
    platform.unplug_core(1)
    platform.run(3 * S)
    assert "DEVICE_DELETED core 1" in platform.events
    assert guest.online_cpus() == [0] and guest.present_cpus() == [0]
    assert not guest.kernel.hotplug_lock.locked


# ------------------------------------------------------------------ hash MMU


def test_hash_guest_registers_and_drops_its_slb_shadow() -> None:
    platform, guest = booted(quiet_guest(register_vpa=True), oracle_tree("p8e_classic"))
    assert "radix" not in guest.features.names()
    platform.plug_core(2)
    platform.run(S)
    platform.unplug_core(2)
    platform.run(S)
    vpa = [(h, op[1] >> 45) for h, op in platform.hcalls if op[0] == Hcall.H_REGISTER_VPA]
    assert (2, 1) in vpa and (2, 3) in vpa and vpa[-1] == (2, 7)


def test_radix_guest_has_no_slb_shadow() -> None:
    platform, guest = booted(quiet_guest(register_vpa=True), oracle_tree("p9_classic"))
    assert "radix" in guest.features.names()
    functions = {op[1] >> 45 for _h, op in platform.hcalls if op[0] == Hcall.H_REGISTER_VPA}
    assert functions == {1}
