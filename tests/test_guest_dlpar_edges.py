"""Edges of the guest's CPU DLPAR (guest/dlpar.py) that the request paths rarely meet.

Sources: Linux 6.1 ``arch/powerpc/platforms/pseries/hotplug-cpu.c`` (``dlpar_cpu``,
``dlpar_cpu_add``, ``dlpar_cpu_remove``, ``dlpar_online_cpu``,
``dlpar_offline_cpu``, ``dlpar_cpu_exists``, ``drc_info_valid_index``) and
``dlpar.c`` (``handle_dlpar_errorlog``, ``dlpar_unisolate_drc``); their messages are
``pr_warn``/``pr_err`` with the file's ``pr_fmt`` prefix (``pseries-hotplug-cpu: ``
and ``dlpar: ``), except ``dlpar_online_cpu``'s plain ``printk(KERN_WARNING ...)``.
The platform side is QEMU 7.2's answers (protocol.md §5, §6, §12) from the fake of
``tests/test_guest_platform.py``.

Some functions return a value no request path shows (``dlpar_cpu``'s rc is dropped
by the hotplug work function); those are called in the guest's own kernel context
through its shell task (:func:`run_in_kernel`), as a sysfs write would run them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator
from typing import Any, TypeVar, cast

import pytest
from test_guest_dlpar import S, cpus_with, drc_info, kernel_lines, quiet_guest, request
from test_guest_platform import (
    CONFIGURED,
    CPU_DRC_BASE,
    UNUSABLE,
    Drc,
    FakePlatform,
    booted,
    build_tree,
    cpu_node,
)

import fdt
from guest import DrcOutcome, GuestTiming, LinuxGuest, LogLevel, Misbehavior, WrongIndices
from guest.dlpar import (
    dlpar_cpu,
    dlpar_cpu_exists,
    dlpar_offline_cpu,
    dlpar_online_cpu,
    dlpar_unisolate_drc,
    handle_dlpar_errorlog,
    valid_cpu_drc_index,
)
from guest.kernel import Kernel
from rtas import HotplugAction, HotplugIdType, HotplugResource, RtasCall
from rtas.errlog import HotplugSection

T = TypeVar("T")
QUIET = GuestTiming(event_scan=False)
HOTPLUG_CPU = "pseries-hotplug-cpu: "
EINVAL, ENODEV, EEXIST, EBUSY, ENOENT = 22, 19, 17, 16, 2
X2 = CPU_DRC_BASE | 2
X3 = CPU_DRC_BASE | 3


def run_in_kernel(
    platform: FakePlatform,
    guest: LinuxGuest,
    body: Callable[[Kernel], Generator[Any, Any, T]],
) -> T:
    """Run ``body`` as a task of the guest's kernel (its shell) and return its result."""
    out: list[T] = []

    def task(k: Kernel) -> Generator[Any, Any, None]:
        out.append((yield from body(k)))

    guest.kernel.user_requests.append(task)
    platform.run(3 * S)
    assert len(out) == 1, "the kernel did not run the request"
    return out[0]


def by_index(action: HotplugAction, index: int) -> HotplugSection:
    return HotplugSection(HotplugResource.CPU, action, HotplugIdType.DRC_INDEX, index, None)


def dr_calls_since(platform: FakePlatform, mark: int) -> list[tuple[Any, ...]]:
    keep = ("get-sensor-state", "set-indicator", "query-cpu-stopped-state", "start-cpu")
    return [c.short() for c in platform.calls[mark:] if c.name in keep]


def smt2_guest() -> tuple[FakePlatform, LinuxGuest]:
    """A guest on 2-thread cores, the boot core (threads 0, 1) and core 2 (threads 2, 3)."""
    platform, guest = booted(
        LinuxGuest(timing=QUIET), build_tree(slots=4, boot_cores=1, threads=2), threads=2
    )
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1, 2, 3]
    return platform, guest


# ------------------------------------------------------------- dlpar_cpu's rc


@pytest.mark.parametrize("action", [HotplugAction.ADD, HotplugAction.REMOVE])
@pytest.mark.parametrize("id_type", [HotplugIdType.DRC_NAME, HotplugIdType.DRC_COUNT_INDEXED])
def test_dlpar_cpu_refuses_requests_not_by_index_with_einval(
    action: HotplugAction, id_type: HotplugIdType
) -> None:
    """dlpar_cpu: a CPU request naming its connector by name or by count-and-index
    falls to the ``else rc = -EINVAL;`` branch of both actions: a negative errno,
    and no connector is touched."""
    platform, guest = quiet_guest()
    hp = HotplugSection(HotplugResource.CPU, action, id_type, X2, 1)
    mark = len(platform.calls)
    assert run_in_kernel(platform, guest, lambda k: dlpar_cpu(k, hp)) == -EINVAL
    assert dr_calls_since(platform, mark) == []


def test_dlpar_cpu_refuses_an_unknown_action_at_kern_err() -> None:
    """dlpar_cpu's default case: ``pr_err("Invalid action (%d) specified\\n")`` and
    -EINVAL; no connector is touched."""
    platform, guest = quiet_guest()
    hp = HotplugSection(
        HotplugResource.CPU, cast(HotplugAction, 3), HotplugIdType.DRC_INDEX, X2, None
    )
    mark = len(platform.calls)
    assert run_in_kernel(platform, guest, lambda k: dlpar_cpu(k, hp)) == -EINVAL
    assert (LogLevel.ERR, f"{HOTPLUG_CPU}Invalid action (3) specified") in kernel_lines(guest)
    assert dr_calls_since(platform, mark) == []


def test_dlpar_cpu_returns_0_for_a_completed_removal() -> None:
    """A removal that went through (offline, release, detach) is rc 0; QEMU had asked
    for the core (unplug requested), so the release at 9003 = 0 deletes it."""
    platform, guest = quiet_guest()
    platform.plug_core(2)
    platform.run(S)
    platform.drc(2).unplug_requested = True  # device_del, its event not yet delivered
    rc = run_in_kernel(platform, guest, lambda k: dlpar_cpu(k, by_index(HotplugAction.REMOVE, X2)))
    assert rc == 0
    assert "DEVICE_DELETED core 2" in platform.events
    assert guest.online_cpus() == [0]
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("remove", DrcOutcome.REMOVED, 0)


def test_dlpar_cpu_returns_0_for_a_walk_abandoned_on_purpose() -> None:
    """A guest told to abandon the configure-connector walk stops without an error of
    its own: the ADD is recorded as abandoned (action "add"), dlpar_cpu returns 0,
    and the guest says at WARNING level what it did and after how many calls."""
    platform, guest = booted(
        LinuxGuest(timing=QUIET, misbehavior=Misbehavior(abandon_configure_after=2)),
        build_tree(slots=4, boot_cores=1),
    )
    platform.plug_core(2, event=False)
    platform.drc(2).state = UNUSABLE  # attached, not yet acquired: U with a device (§5.4)
    rc = run_in_kernel(platform, guest, lambda k: dlpar_cpu(k, by_index(HotplugAction.ADD, X2)))
    assert rc == 0
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ABANDONED, 0)
    assert (
        LogLevel.WARNING,
        "misbehaving guest: abandoning configure-connector for drc index 10000002 after 2 calls",
    ) in kernel_lines(guest)
    walk = [c for c in platform.calls if c.name == "ibm,configure-connector"]
    assert len(walk) == 2


def test_the_unisolate_hint_needs_a_present_drc() -> None:
    """dlpar_unisolate_drc: a DRC that does not sense PRESENT (an empty slot senses
    UNUSABLE, §5.5) gets no UNISOLATE, and the function returns -1."""
    platform, guest = quiet_guest()
    mark = len(platform.calls)
    assert run_in_kernel(platform, guest, lambda k: dlpar_unisolate_drc(k, X3)) == -1
    assert dr_calls_since(platform, mark) == [("get-sensor-state", (9003, X3), (0, 2))]


# ------------------------------------------------------------ dlpar_cpu_add


def test_an_add_without_a_cpus_node_fails_with_enodev() -> None:
    """dlpar_cpu_add: no ``/cpus`` is ``pr_warn("Failed to find CPU root node
    \\"/cpus\\"")`` and -ENODEV, before any DR call."""
    platform, guest = quiet_guest()
    guest.tree.remove_subnode("cpus")
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert (LogLevel.WARNING, f'{HOTPLUG_CPU}Failed to find CPU root node "/cpus"') in (
        kernel_lines(guest)
    )
    assert dr_calls_since(platform, mark) == []
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -ENODEV)


def test_an_add_of_an_unlisted_index_fails_with_einval() -> None:
    """valid_cpu_drc_index refuses an index ``ibm,drc-info`` does not list: -EINVAL."""
    tree = build_tree(slots=4, boot_cores=1)
    cpus = tree.find("/cpus")
    assert cpus is not None
    cpus.append_property(
        fdt.Property("ibm,drc-info", drc_info(("CPU", "CPU ", CPU_DRC_BASE, 0, 2, 1)))
    )
    platform, guest = booted(LinuxGuest(timing=QUIET), tree)
    platform.plug_core(2)
    platform.run(S)
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -EINVAL)


def test_an_add_the_platform_will_not_give_fails_with_einval() -> None:
    """dlpar_acquire_drc on a DRC that already senses PRESENT (configured by the
    platform, unknown to the guest) fails with -1; dlpar_cpu_add prints "Failed to
    acquire DRC, rc: -1, ..." and returns -EINVAL, making no further DR call."""
    platform, guest = quiet_guest()
    platform.plug_core(2, event=False)  # C on the platform, no node in the guest
    mark = len(platform.calls)
    request(platform, HotplugAction.ADD, X2)
    platform.run(S)
    assert dr_calls_since(platform, mark) == [("get-sensor-state", (9003, X2), (0, 1))]
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to acquire DRC, rc: -1, drc index: 10000002",
    ) in kernel_lines(guest)
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -EINVAL)


class ScriptedCcPlatform(FakePlatform):
    """The fake, with the configure-connector answers of the next walk scripted as
    (status, name, value) in the work-area layout of protocol.md §6.1."""

    script: list[tuple[int, str, bytes | None]]

    def _configure_connector(self, call: RtasCall[Any]) -> None:
        if not self.script:
            super()._configure_connector(call)
            return
        status, name, value = self.script.pop(0)
        wa = call.args[0]
        if status in (1, 2, 3):
            raw = name.encode() + b"\0"
            self.memory.st32(wa + 8, 20)
            self.memory.write(wa + 20, raw)
            if value is not None:
                self.memory.st32(wa + 12, len(value))
                self.memory.st32(wa + 16, 20 + len(raw))
                self.memory.write(wa + 20 + len(raw), value)
        if status == 0:
            drc = self.drcs[self.memory.ld32(wa)]
            drc.state = CONFIGURED
        call.set_ret(0, status)


def papr_siblings(*nodes: fdt.Node) -> list[tuple[int, str, bytes | None]]:
    """PAPR's encoding of top-level nodes: the first NEXT_CHILD, the rest NEXT_SIBLING."""
    out: list[tuple[int, str, bytes | None]] = []
    for i, n in enumerate(nodes):
        out.append((2 if i == 0 else 1, n.name, None))
        out.extend((3, p.name, p.value) for p in n.properties)
    out.append((0, "", None))
    return out


def test_a_fragment_that_cannot_be_attached_whole_is_taken_out_whole() -> None:
    """Two sibling nodes (PAPR's NEXT_SIBLING): the second's name is taken in /cpus,
    so attaching it fails (-EEXIST). The add must leave /cpus as it was: the first
    node is detached again, its thread is not present, the failure is a pr_warn
    naming the first node, and the DRC is given back (9001 = 0, 9003 = 0)."""
    guest = LinuxGuest(timing=QUIET)
    platform = ScriptedCcPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.script = []
    platform.boot()
    platform.run(2 * S)
    first = cpu_node("PowerPC,POWER9", 2, 1, drc_index=X2)
    clash = cpu_node("PowerPC,POWER9", 0, 1, drc_index=X2)  # @0 is the boot core's name
    platform.script = papr_siblings(first, clash)
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to attach node PowerPC,POWER9, rc: -{EEXIST}, drc index: 10000002",
    ) in kernel_lines(guest)
    assert guest.tree.find("/cpus/PowerPC,POWER9@2") is None
    assert guest.present_cpus() == [0] and guest.online_cpus() == [0]
    assert dr_calls_since(platform, mark)[-3:] == [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (0,)),
        ("set-indicator", (9003, X2, 0), (0,)),
    ]
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -EEXIST)


class NoServersPlatform(FakePlatform):
    """The fake, handing out a core node without ``ibm,ppc-interrupt-server#s``."""

    def _fragment(self, drc: Drc) -> list[fdt.WalkStep]:
        steps = super()._fragment(drc)
        return [s for s in steps if s.name != "ibm,ppc-interrupt-server#s"]


def test_a_node_without_interrupt_servers_cannot_be_onlined() -> None:
    """dlpar_online_cpu: no ``ibm,ppc-interrupt-server#s`` is -EINVAL; dlpar_cpu_add
    prints "Failed to online cpu %pOFn, rc: -22, ...", detaches the node and gives
    the (configured) DRC back."""
    guest = LinuxGuest(timing=QUIET)
    platform = NoServersPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.boot()
    platform.run(2 * S)
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to online cpu PowerPC,POWER9, rc: -{EINVAL}, drc index: 10000002",
    ) in kernel_lines(guest)
    assert guest.tree.find("/cpus/PowerPC,POWER9@2") is None
    assert dr_calls_since(platform, mark)[-3:] == [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (0,)),
        ("set-indicator", (9003, X2, 0), (0,)),
    ]
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == ("add", DrcOutcome.ADD_FAILED, -EINVAL)


class FailingStartPlatform(FakePlatform):
    """The fake, failing start-cpu for one hardware thread (status -1)."""

    refuse_hwid = -1

    def _start_cpu(self, call: RtasCall[Any]) -> None:
        if call.args[0] == self.refuse_hwid:
            call.set_ret(0, -1)
            return
        super()._start_cpu(call)


def test_a_thread_that_will_not_start_takes_its_sibling_offline_again() -> None:
    """dlpar_online_cpu: thread 2 comes online, thread 3's start-cpu fails
    (cpu_up: -ENOENT); the threads already onlined are offlined again
    (dlpar_offline_cpu on the same node), the node is detached and the DRC
    released."""
    guest = LinuxGuest(timing=QUIET)
    platform = FailingStartPlatform(guest, build_tree(slots=4, boot_cores=1, threads=2), threads=2)
    platform.refuse_hwid = 3
    platform.boot()
    platform.run(2 * S)
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(2 * S)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to online cpu PowerPC,POWER9, rc: -{ENOENT}, drc index: 10000002",
    ) in kernel_lines(guest)
    assert guest.online_cpus() == [0, 1]
    assert guest.present_cpus() == [0, 1]
    stops = [c for c in platform.calls[mark:] if c.name == "stop-self"]
    assert [c.hwid for c in stops] == [2]
    assert dr_calls_since(platform, mark)[-3:] == [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (0,)),
        ("set-indicator", (9003, X2, 0), (0,)),
    ]


# ------------------------------------------------ online / offline by hardware id


def with_servers(guest: LinuxGuest, path: str, *servers: int) -> fdt.Node:
    """Rewrite a cpu node's ``ibm,ppc-interrupt-server#s`` in the guest's tree."""
    node = guest.tree.find(path)
    assert node is not None
    node.set_property(fdt.Property.cells("ibm,ppc-interrupt-server#s", *servers))
    return node


def test_a_listed_thread_that_is_not_present_is_skipped_when_offlining() -> None:
    """dlpar_offline_cpu: a server id no present CPU has is ``pr_warn("Could not find
    cpu to offline with physical id 0x%x")`` and the loop goes on to the next
    thread, so the removal still completes."""
    platform, guest = quiet_guest()
    platform.plug_core(2)
    platform.run(S)
    with_servers(guest, "/cpus/PowerPC,POWER9@2", 0x63, 2)
    platform.unplug_core(2)
    platform.run(S)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Could not find cpu to offline with physical id 0x63",
    ) in kernel_lines(guest)
    assert guest.online_cpus() == [0]
    assert "DEVICE_DELETED core 2" in platform.events
    assert guest.drc_actions[X2].outcome is DrcOutcome.REMOVED


def test_a_thread_already_offline_is_skipped_and_the_next_one_offlined() -> None:
    """dlpar_offline_cpu: an offline thread is passed over (``if (!cpu_online(cpu))
    break;`` ends the search for *that* thread only); the core's other thread is
    still offlined before the DRC is released."""
    platform, guest = smt2_guest()
    guest.request_cpu_offline(2)
    platform.run(2 * S)
    assert guest.online_cpus() == [0, 1, 3]
    platform.unplug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    assert guest.present_cpus() == [0, 1]
    assert "DEVICE_DELETED core 2" in platform.events


def test_offlining_a_node_without_interrupt_servers_is_einval() -> None:
    """dlpar_offline_cpu: no ``ibm,ppc-interrupt-server#s``, -EINVAL."""
    platform, guest = quiet_guest()
    bare = fdt.Node("PowerPC,POWER9@9")
    assert run_in_kernel(platform, guest, lambda k: dlpar_offline_cpu(k, bare)) == -EINVAL


def test_a_listed_thread_that_is_not_present_is_skipped_when_onlining() -> None:
    """dlpar_online_cpu: a server id no present CPU has is ``printk(KERN_WARNING
    "Could not find cpu to online with physical id 0x%x")`` (no pr_fmt prefix), and
    the next thread is still onlined; the result is 0."""
    platform, guest = quiet_guest()
    platform.plug_core(2)
    platform.run(S)
    guest.request_cpu_offline(1)
    platform.run(2 * S)
    assert guest.online_cpus() == [0]
    node = with_servers(guest, "/cpus/PowerPC,POWER9@2", 0x63, 2)
    assert run_in_kernel(platform, guest, lambda k: dlpar_online_cpu(k, node)) == 0
    assert (LogLevel.WARNING, "Could not find cpu to online with physical id 0x63") in (
        kernel_lines(guest)
    )
    assert guest.online_cpus() == [0, 1]


# ------------------------------------------------------------- dlpar_cpu_remove


def test_a_node_that_cannot_be_detached_is_taken_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlpar_cpu_remove: after the DRC is released, a failing ``dlpar_detach_node``
    is ``pr_warn("Failed to detach CPU %pOFn, rc: %d")``; Linux then acquires the DRC
    again and, that having worked, onlines the threads again, and returns the detach
    rc. The REMOVE here came without device_del, so QEMU keeps the core at 9003 = 0
    (§12.4) and the guest can take it back; dlpar_cpu then sends the UNISOLATE hint."""
    platform, guest = quiet_guest()
    platform.plug_core(2)
    platform.run(S)
    monkeypatch.setattr(guest.kernel, "detach_cpu_node", lambda _node: -EBUSY)
    mark = len(platform.calls)
    request(platform, HotplugAction.REMOVE, X2)
    platform.run(S)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to detach CPU PowerPC,POWER9, rc: -{EBUSY}",
    ) in kernel_lines(guest)
    calls = dr_calls_since(platform, mark)
    release = [
        ("get-sensor-state", (9003, X2), (0, 1)),
        ("set-indicator", (9001, X2, 0), (0,)),
        ("set-indicator", (9003, X2, 0), (0,)),
    ]
    acquire = [
        ("get-sensor-state", (9003, X2), (0, 2)),
        ("set-indicator", (9003, X2, 1), (0,)),
        ("set-indicator", (9001, X2, 1), (0,)),
    ]
    start = calls.index(release[0])
    assert calls[start : start + 6] == release + acquire
    online = calls[start + 6 : start + 8]
    assert online[0] == ("query-cpu-stopped-state", (2,), (0, 0))
    name, (hwid, _entry, r3), rets = online[1]
    assert (name, hwid, r3, rets) == ("start-cpu", 2, 2, (0,))
    assert guest.online_cpus() == [0, 1]
    assert guest.tree.find("/cpus/PowerPC,POWER9@2") is not None
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome, action.rc) == (
        "remove",
        DrcOutcome.REMOVE_REFUSED,
        -EBUSY,
    )


# ------------------------------------------------------------- dlpar_cpu_exists


def cpus_children(*indexes: bytes) -> fdt.Node:
    parent = fdt.Node("cpus")
    for i, value in enumerate(indexes):
        child = parent.append_subnode(fdt.Node(f"cpu@{i}"))
        child.append_property(fdt.Property("ibm,my-drc-index", value))
    return parent


def test_a_longer_my_drc_index_is_read_by_its_first_cell() -> None:
    """dlpar_cpu_exists reads ``ibm,my-drc-index`` with of_property_read_u32, which
    takes the first cell of a value of at least 4 bytes: extra cells do not hide the
    CPU, a value shorter than a cell is no index."""
    parent = cpus_children(struct.pack(">II", X2, 0), b"\x10\x00")
    assert dlpar_cpu_exists(parent, X2)
    assert not dlpar_cpu_exists(parent, X3)
    assert not dlpar_cpu_exists(parent, 0x1000)


def test_an_index_no_cell_can_hold_matches_no_cpu() -> None:
    """A DRC index is a u32; a number outside 0..2^32-1 equals no node's
    ``ibm,my-drc-index`` (and is no error)."""
    parent = cpus_children(struct.pack(">I", 0), struct.pack(">I", 0xFFFFFFFF))
    assert dlpar_cpu_exists(parent, 0xFFFFFFFF)
    assert not dlpar_cpu_exists(parent, 1 << 32)
    assert not dlpar_cpu_exists(parent, -1)


# ------------------------------------------------------------------ drc-info


def test_drc_info_cells_are_unsigned() -> None:
    """The five cells of a drc-info entry are u32 (struct of_drc_info): an entry whose
    first index has the top bit set still lists that index and the ones after it."""
    parent = cpus_with(drc_info(("CPU", "CPU ", 0xF0000000, 0, 2, 1)))
    assert valid_cpu_drc_index(parent, 0xF0000001)
    assert not valid_cpu_drc_index(parent, 0xF0000002)


# ------------------------------------------------------ handle_dlpar_errorlog


def test_memory_and_pmem_requests_are_noted_as_not_modelled() -> None:
    """handle_dlpar_errorlog sends memory and PMEM requests to their own handlers
    (Linux's dlpar_memory, dlpar_hp_pmem), which the model does not have: it notes
    that at INFO level, naming the resource, and does not call them invalid."""
    platform, guest = quiet_guest()
    request(platform, HotplugAction.ADD, 0x80000010, resource=HotplugResource.MEMORY)
    request(platform, HotplugAction.ADD, 0x90000000, resource=HotplugResource.PMEM)
    platform.run(S)
    lines = kernel_lines(guest)
    assert (LogLevel.INFO, "dlpar: memory DLPAR is not modelled") in lines
    assert (LogLevel.INFO, "dlpar: pmem DLPAR is not modelled") in lines
    assert not any("Invalid resource" in text for _level, text in lines)


@pytest.mark.parametrize("resource", [HotplugResource.PHB, HotplugResource.SLOT])
def test_other_resources_are_invalid_for_dlpar(resource: HotplugResource) -> None:
    """handle_dlpar_errorlog's default case: ``pr_warn_ratelimited("Invalid resource
    (%d) specified")`` with dlpar.c's prefix; nothing else is done."""
    platform, guest = quiet_guest()
    hp = HotplugSection(resource, HotplugAction.ADD, HotplugIdType.DRC_INDEX, 0x20000000, None)
    mark = len(platform.calls)
    run_in_kernel(platform, guest, lambda k: handle_dlpar_errorlog(k, hp))
    lines = kernel_lines(guest)
    assert (LogLevel.WARNING, f"dlpar: Invalid resource ({int(resource)}) specified") in lines
    assert not any("not modelled" in text for _level, text in lines)
    assert dr_calls_since(platform, mark) == []


# ------------------------------------------------------ wrong-index misbehaviour


def test_a_wrong_index_walk_is_reported_at_warning_level() -> None:
    """A guest that writes a wrong DRC index into the work area (index + 0x100, a
    DRC QEMU does not have, so -3, §6.2) logs each such call as a warning with the
    index it used and the status, then fails the walk as Linux does."""
    wrong = Misbehavior(wrong_indices=WrongIndices(services={"ibm,configure-connector"}))
    platform, guest = booted(
        LinuxGuest(timing=QUIET, misbehavior=wrong), build_tree(slots=4, boot_cores=1)
    )
    platform.plug_core(2)
    platform.run(S)
    lines = kernel_lines(guest)
    assert (
        LogLevel.WARNING,
        "wrong-index guest: ibm,configure-connector on drc index 10000102 returned -3",
    ) in lines
    assert (LogLevel.ERR, "Unexpected Error (-3) returned from configure-connector") in lines
