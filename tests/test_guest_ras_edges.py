"""Edges of the guest's RAS side (guest/ras.py) that the other guest tests do not reach.

Sources (protocol.md §8, §9, §12.5 and the Linux 6.1 code they cite):

* ``request_event_sources_irqs`` maps every specifier of a source's ``interrupts``
  property; a specifier is ``#interrupt-cells`` cells of ``/event-sources`` (its first
  cell, a big-endian u32, as ``of_irq_parse_raw`` reads it) and the first cell of a
  specifier is the XICS source number.
* ``init_ras_IRQ`` also requests ``/event-sources/internal-errors`` when the tree has
  it; ``ras_error_interrupt`` then calls check-exception(0x500, hwirq,
  RTAS_INTERNAL_ERROR = 0x80000000, 1 /* time critical */, ras_log_buf,
  rtas-error-log-max), logs the event and, for a severity below ERROR_SYNC, prints
  "Recoverable hardware error detected" (pr_err). QEMU 7.2 has no such source, so
  these tests give the fake platform one.
* ``init_ras_hotplug_IRQ`` creates the "pseries hotplug workqueue" exactly when
  ``/event-sources/hot-plug-events`` exists; ``ras_hotplug_interrupt`` queues CPU,
  memory and PMEM requests and hands every other resource to ``log_error`` for
  rtas_errd.
* ``log_rtas_len`` (rtasd.c): 8 header bytes, plus the extended length when the
  summary's extended bit (0x00040000) is set and the length is non-zero, at most
  rtas-error-log-max; rtasd keeps LOG_NUMBER = 64 entries, the oldest overwritten.
* ``__cpu_up`` at boot waits 50000 x 100 us = 5 s for a secondary to call in.
* ``rtas_event_scan_init``: the period is 30 s / rtas-event-scan-rate, an integer
  division.
* Waking a task on the CPU that wakes it needs no IPI (``ttwu`` queues it locally;
  ``smp_send_reschedule`` is for other CPUs).
"""

from __future__ import annotations

import pytest
from test_guest_platform import (
    CONFIGURED,
    CPU_DRC_BASE,
    IRQ_EPOW,
    IRQ_HOTPLUG,
    MASK_EPOW,
    MASK_HOTPLUG,
    Call,
    FakePlatform,
    Source,
    Vcpu,
    booted,
    build_tree,
)

import fdt
from guest import DrcOutcome, GuestMode, GuestTiming, LinuxGuest, LogLevel, Misbehavior
from rtas import (
    EventLogError,
    HotplugAction,
    HotplugIdType,
    HotplugResource,
    RtasCall,
    decode_event_log,
    hotplug_event,
)
from rtas.errlog import EventLogEntry
from rtas.hcalls import Hcall

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)
X2 = CPU_DRC_BASE | 2
#: Linux's RTAS_VECTOR_EXTERNAL_INTERRUPT (check-exception argument 0).
VECTOR_EXTERNAL = 0x500
#: RTAS_INTERNAL_ERROR, class 0's mask (protocol.md §8.2).
MASK_INTERNAL = 0x80000000
#: A source number for the internal-errors class (QEMU 7.2 enables none).
IRQ_INTERNAL = 0x1002
#: rtas-error-log-max of the fake's tree.
LOG_MAX = 2048
#: The summary's "extended log present" bit (byte 1, 0x04).
EXTENDED = 0x0004_0000
#: Services of the DR sequence (protocol.md §12.1-12.2).
DR_SERVICES = {"get-sensor-state", "set-indicator", "ibm,configure-connector", "start-cpu"}


def lines(guest: LinuxGuest, since: int = 0) -> list[tuple[LogLevel, str]]:
    return [(e.level, e.text) for e in guest.log.kernel()[since:]]


def self_ipis(platform: FakePlatform) -> list[tuple[int, tuple[int, ...]]]:
    """H_IPI hypercalls a thread made to its own server number."""
    return [(hwid, op) for hwid, op in platform.hcalls if op[0] == Hcall.H_IPI and op[1] == hwid]


def irqs_configured(platform: FakePlatform) -> set[int]:
    """Every source number the guest routed or enabled (set-xive / get-xive / int-on)."""
    return {
        c.args[0]
        for c in platform.calls
        if c.name in ("ibm,set-xive", "ibm,get-xive", "ibm,int-on")
    }


# --------------------------------------------------------- event-source specifiers


def boot_with_sources(
    cells: bytes | None, epow: tuple[int, ...], hotplug: tuple[int, ...]
) -> FakePlatform:
    """Boot with ``#interrupt-cells`` = ``cells`` (raw bytes) and the two sources' cells."""
    tree = build_tree(slots=4, boot_cores=1)
    sources = tree.find("/event-sources")
    assert sources is not None
    if cells is not None:
        sources.set_property(fdt.Property.bytes("#interrupt-cells", cells))
    for name, value in (("epow-events", epow), ("hot-plug-events", hotplug)):
        node = sources.find(name)
        assert node is not None
        node.set_property(fdt.Property.cells("interrupts", *value))
    platform, _guest = booted(LinuxGuest(timing=QUIET), tree, seconds=0.5)
    return platform


def test_interrupt_cells_is_read_from_its_first_cell() -> None:
    """of_irq_parse_raw reads #interrupt-cells as one big-endian u32 (its first cell):
    a property carrying a second cell still means 2 cells per specifier."""
    platform = boot_with_sources(
        bytes.fromhex("00000002 00000007"), (IRQ_EPOW, 0), (IRQ_HOTPLUG, 0)
    )
    assert irqs_configured(platform) == {IRQ_EPOW, IRQ_HOTPLUG}
    assert sorted(c.args[0] for c in platform.calls if c.name == "ibm,int-on") == [
        IRQ_EPOW,
        IRQ_HOTPLUG,
    ]


def test_every_specifier_of_a_source_is_requested_and_sense_cells_are_not() -> None:
    """request_event_sources_irqs maps each specifier in turn: with 2 cells each,
    <0x1001 1 0x1003 1> is two interrupts, 0x1001 and 0x1003; the sense cells (here
    1) are never taken for source numbers."""
    platform = boot_with_sources(None, (IRQ_EPOW, 0), (IRQ_HOTPLUG, 1, 0x1003, 1))
    assert irqs_configured(platform) == {IRQ_EPOW, IRQ_HOTPLUG, 0x1003}


def test_a_trailing_partial_cell_is_not_an_interrupt() -> None:
    """of_irq_parse_one counts whole cells (len / 4): a 6-byte ``interrupts`` with one
    cell per specifier is one interrupt; the 2 bytes after it are not a second one."""
    tree = build_tree(slots=4, boot_cores=1)
    sources = tree.find("/event-sources")
    assert sources is not None
    sources.set_property(fdt.Property.cells("#interrupt-cells", 1))
    for name, irq in (("epow-events", IRQ_EPOW), ("hot-plug-events", IRQ_HOTPLUG)):
        node = sources.find(name)
        assert node is not None
        node.set_property(fdt.Property.bytes("interrupts", irq.to_bytes(4, "big") + b"\x12\x34"))
    platform, _guest = booted(LinuxGuest(timing=QUIET), tree, seconds=0.5)
    assert irqs_configured(platform) == {IRQ_EPOW, IRQ_HOTPLUG}


# ------------------------------------------------------------ internal-errors source


class InternalErrorsPlatform(FakePlatform):
    """The fake with an internal-errors source at :data:`IRQ_INTERNAL`: every entry that
    is neither a hotplug (0xE5) nor an EPOW (0x40) event belongs to class 0."""

    def __init__(self, guest: LinuxGuest, tree: fdt.Node) -> None:
        super().__init__(guest, tree)
        self.sources[IRQ_INTERNAL] = Source()

    def _class_of(self, entry: EventLogEntry) -> int:
        if entry.event_type not in (0xE5, 0x40):
            return MASK_INTERNAL
        return super()._class_of(entry)

    def _irq_of(self, mask: int) -> int:
        return IRQ_INTERNAL if mask == MASK_INTERNAL else super()._irq_of(mask)


def internal_errors_tree() -> fdt.Node:
    tree = build_tree(slots=4, boot_cores=1)
    sources = tree.find("/event-sources")
    assert sources is not None
    node = sources.append_subnode(fdt.Node("internal-errors"))
    node.append_property(fdt.Property.cells("interrupts", IRQ_INTERNAL, 0))
    return tree


def platform_error(severity: int) -> EventLogEntry:
    """A v6 Platform Error (type 0xE0) of ``severity`` with a 16-byte extended log."""
    summary = 0x0600_0000 | (severity << 21) | EXTENDED | 0xE0
    return EventLogEntry(summary, bytes([0x86, 0, 0x8E]) + bytes(9) + b"IBM\0")


def boot_internal(mode: GuestMode = GuestMode.IN_KERNEL_DLPAR) -> tuple[FakePlatform, LinuxGuest]:
    guest = LinuxGuest(timing=QUIET, mode=mode)
    platform = InternalErrorsPlatform(guest, internal_errors_tree())
    platform.boot()
    platform.run(S)
    return platform, guest


@pytest.mark.parametrize("severity", [1, 2])
def test_an_internal_error_is_fetched_time_critical_logged_and_reported_recoverable(
    severity: int,
) -> None:
    """ras_error_interrupt: check-exception(0x500, the source, RTAS_INTERNAL_ERROR, 1,
    ras_log_buf, rtas-error-log-max) -- the only handler that passes critical = 1 --
    then the event line (printk_log_rtas, KERN_DEBUG) and, for a severity below
    ERROR_SYNC (3), pr_err "Recoverable hardware error detected"."""
    platform, guest = boot_internal()
    assert IRQ_INTERNAL in {c.args[0] for c in platform.calls if c.name == "ibm,int-on"}
    mark, since = len(platform.calls), len(guest.log.kernel())
    platform.enqueue(platform_error(severity))
    platform.run(S)
    checks = [c for c in platform.calls[mark:] if c.name == "check-exception"]
    assert [(c.args, c.rets) for c in checks] == [
        (
            (VECTOR_EXTERNAL, IRQ_INTERNAL, MASK_INTERNAL, 1, guest.kernel.ras_log_buf, LOG_MAX),
            (0,),
        )
    ]
    assert lines(guest, since) == [
        (LogLevel.DEBUG, f"RTAS: event: 1, Type: Platform Error (224), Severity: {severity}"),
        (LogLevel.ERR, "Recoverable hardware error detected"),
    ]
    assert platform.queue == []
    assert not guest.powered_off


def test_internal_errors_share_the_log_lock_with_the_other_handlers() -> None:
    """ras_log_buf_lock is released after an internal error: a hot-add handled after it
    (same buffer, same lock) still runs to the end."""
    platform, guest = boot_internal()
    platform.enqueue(platform_error(1))
    platform.run(S)
    platform.plug_core(2)
    platform.run(S)
    assert platform.drc(2).state == CONFIGURED
    assert guest.online_cpus() == [0, 1]
    assert guest.kernel.ras_log_lock.owner is None


def test_an_internal_error_wakes_rtas_errd_without_an_ipi_to_itself() -> None:
    """The older guest: the event logged by ras_error_interrupt on CPU 0 wakes rtas_errd,
    which waits on CPU 0 too -- a local wake-up, no IPI; rtas_errd reads the entry."""
    platform, guest = boot_internal(GuestMode.RTAS_ERRD_DRMGR)
    platform.enqueue(platform_error(2))
    platform.run(S)
    assert (LogLevel.ERR, "Recoverable hardware error detected") in lines(guest)
    assert self_ipis(platform) == []
    assert not guest.kernel.rtas_log


# ------------------------------------------------------- the hot-plug interrupt


def quiet_guest(
    mode: GuestMode = GuestMode.IN_KERNEL_DLPAR, misbehavior: Misbehavior | None = None
) -> tuple[FakePlatform, LinuxGuest]:
    guest = LinuxGuest(timing=QUIET, mode=mode, misbehavior=misbehavior or Misbehavior())
    return booted(guest, build_tree(slots=4, boot_cores=1))


def cpu_event(action: HotplugAction, drc_index: int, plid: int = 0) -> EventLogEntry:
    return hotplug_event(
        HotplugResource.CPU,
        action,
        HotplugIdType.DRC_INDEX,
        drc_index=drc_index,
        plid=plid,
        date=(2024, 1, 1),
        time=(0, 0, 0),
    )


def dr_names(calls: list[Call]) -> list[str]:
    return [c.name for c in calls if c.name in DR_SERVICES]


def still_adds(platform: FakePlatform, guest: LinuxGuest, core_id: int) -> None:
    """A later hot-add completes: the handler returned, the lock and queue still work."""
    platform.plug_core(core_id)
    platform.run(S)
    assert platform.drc(core_id).state == CONFIGURED
    assert core_id in guest.hwids().values()


def test_a_hotplug_log_the_guest_cannot_read_is_reported_and_dropped() -> None:
    """A hotplug entry whose extended log is shorter than the 16-byte v6 header fails
    get_pseries_errorlog's checks (protocol.md §9): no HP section, nothing queued, no
    DR call. (Linux 6.1 would dereference NULL; the model reports both facts at
    KERN_ERR, naming the handler, the decoder's reason and the missing section.)"""
    platform, guest = quiet_guest()
    mark, since = len(platform.calls), len(guest.log.kernel())
    entry = EventLogEntry(0x063460E5, bytes(8))
    with pytest.raises(EventLogError) as refusal:
        decode_event_log(entry.to_bytes() + bytes(LOG_MAX - 16))
    platform.enqueue(entry)
    platform.run(S)
    calls = platform.calls[mark:]
    assert [(c.name, c.args[2], c.rets) for c in calls] == [("check-exception", MASK_HOTPLUG, (0,))]
    got = lines(guest, since)
    assert [level for level, _ in got] == [LogLevel.ERR, LogLevel.ERR]
    unreadable, missing = (text for _, text in got)
    assert "ras_hotplug_interrupt" in unreadable and str(refusal.value) in unreadable
    assert "ras_hotplug_interrupt" in missing and "hotplug section" in missing
    assert not guest.kernel.hp_queue
    still_adds(platform, guest, 2)


def test_a_hotplug_log_without_an_hp_section_is_reported_and_dropped() -> None:
    """A readable v6 log of type 0xE5 whose sections are only PH and UH: the search for
    "HP" fails, one KERN_ERR line naming the handler and the missing section, no DR
    call, and the guest goes on."""
    platform, guest = quiet_guest()
    full = cpu_event(HotplugAction.ADD, X2)
    without_hp = EventLogEntry(full.summary, full.extended[:-20])
    mark, since = len(platform.calls), len(guest.log.kernel())
    platform.enqueue(without_hp)
    platform.run(S)
    assert dr_names(platform.calls[mark:]) == []
    got = lines(guest, since)
    assert len(got) == 1
    level, text = got[0]
    assert level is LogLevel.ERR
    assert "ras_hotplug_interrupt" in text and "hotplug section" in text
    assert "RTAS error log" in text
    still_adds(platform, guest, 2)


@pytest.mark.parametrize(
    "resource", [HotplugResource.SLOT, HotplugResource.PHB, HotplugResource.PCI]
)
def test_other_resources_are_logged_for_rtas_errd_not_queued(resource: HotplugResource) -> None:
    """ras_hotplug_interrupt queues only CPU, memory and PMEM; any other resource goes
    to log_error: the event line (Hotplug Event, type 229, severity 1 as QEMU's summary
    0x063460E5 says), the 116-byte log kept for rtas_errd, and no DR call."""
    platform, guest = quiet_guest()
    entry = hotplug_event(
        resource,
        HotplugAction.ADD,
        HotplugIdType.DRC_INDEX,
        drc_index=0x40000000,
        plid=7,
        date=(2024, 1, 1),
        time=(0, 0, 0),
    )
    mark, since = len(platform.calls), len(guest.log.kernel())
    platform.enqueue(entry)
    platform.run(S)
    assert dr_names(platform.calls[mark:]) == []
    assert lines(guest, since) == [
        (LogLevel.DEBUG, "RTAS: event: 1, Type: Hotplug Event (229), Severity: 1")
    ]
    assert list(guest.kernel.rtas_log) == [entry.to_bytes()]
    assert not guest.kernel.hp_queue


def test_queueing_hotplug_work_on_the_interrupted_cpu_sends_no_ipi() -> None:
    """A one-CPU guest: the hotplug interrupt and the workqueue's worker are both on
    CPU 0, so queue_work wakes the worker locally; no H_IPI to its own server."""
    platform, guest = quiet_guest()
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    assert self_ipis(platform) == []


# --------------------------------------------------------- a guest ignoring REMOVE


def test_an_ignored_remove_is_a_warning_recorded_as_a_remove() -> None:
    """The ignore-unplug guest drops the REMOVE at KERN_WARNING and records the DRC's
    last action as "remove" (the word the DLPAR path and rtas_errd's path record for a
    removal), outcome IGNORED."""
    platform, guest = quiet_guest(misbehavior=Misbehavior(ignore_unplug=True))
    platform.plug_core(2)
    platform.run(S)
    since = len(guest.log.kernel())
    platform.unplug_core(2)
    platform.run(S)
    assert [level for level, text in lines(guest, since) if "10000002" in text] == [
        LogLevel.WARNING
    ]
    action = guest.drc_actions[X2]
    assert (action.action, action.outcome) == ("remove", DrcOutcome.IGNORED)


def count_remove() -> EventLogEntry:
    return hotplug_event(
        HotplugResource.CPU,
        HotplugAction.REMOVE,
        HotplugIdType.DRC_COUNT,
        count=1,
        plid=9,
        date=(2024, 1, 1),
        time=(0, 0, 0),
    )


def test_an_ignored_remove_by_count_is_recorded_where_rtas_errd_records_it() -> None:
    """A REMOVE by count carries no DRC index: the in-kernel guest and the rtas_errd
    guest, both ignoring it, keep the guest running and record it under the same key."""
    keys = []
    for mode in (GuestMode.IN_KERNEL_DLPAR, GuestMode.RTAS_ERRD_DRMGR):
        platform, guest = quiet_guest(misbehavior=Misbehavior(ignore_unplug=True), mode=mode)
        platform.enqueue(count_remove())
        platform.run(S)
        ignored = [k for k, a in guest.drc_actions.items() if a.outcome is DrcOutcome.IGNORED]
        assert len(ignored) == 1
        keys.append(ignored[0])
        assert guest.online_cpus() == [0]
        still_adds(platform, guest, 2)
    assert keys[0] == keys[1]


# ------------------------------------------------------ the hotplug workqueue


def hotplug_workers(guest: LinuxGuest) -> int:
    """Tasks waiting for work on the "pseries hotplug workqueue"."""
    return len(guest.kernel.hp_waitq.waiters)


@pytest.mark.parametrize(
    ("node", "interrupts", "workers"), [(True, True, 1), (True, False, 1), (False, False, 0)]
)
def test_the_hotplug_workqueue_exists_exactly_when_the_node_does(
    node: bool, interrupts: bool, workers: int
) -> None:
    """init_ras_hotplug_IRQ: dlpar_workqueue_init runs when
    /event-sources/hot-plug-events exists, whether or not it lists interrupts; without
    the node there is no workqueue (and no worker)."""
    tree = build_tree(slots=4, boot_cores=1, hotplug_events=node)
    if node and not interrupts:
        hp = tree.find("/event-sources/hot-plug-events")
        assert hp is not None
        hp.remove_property("interrupts")
    _platform, guest = booted(LinuxGuest(timing=QUIET), tree, seconds=1)
    assert guest.booted
    assert hotplug_workers(guest) == workers


# ------------------------------------------------------------------ kernel_init


class SilentSecondaryPlatform(FakePlatform):
    """start-cpu answers 0 for thread 1 but never starts it: it never calls in."""

    def _start_cpu(self, call: RtasCall[Vcpu]) -> None:
        if call.args and call.args[0] == 1:
            call.set_ret(0, 0)
            return
        super()._start_cpu(call)


def test_a_secondary_that_never_calls_in_at_boot_is_given_up_after_five_seconds() -> None:
    """__cpu_up during boot (system_state < SYSTEM_RUNNING) spins 50000 x udelay(100) =
    5 s for the callin, then prints "Processor 1 is stuck." (KERN_ERR) and smp_init
    goes on: one CPU brought up. The hotplug path's longer wait is not used at boot."""
    guest = LinuxGuest(timing=QUIET)
    platform = SilentSecondaryPlatform(guest, build_tree(slots=4, boot_cores=2))
    platform.boot()
    platform.run(8 * S)
    started = [c.time for c in platform.calls if c.name == "start-cpu" and c.args[0] == 1]
    assert len(started) == 1
    stuck = [e for e in guest.log.kernel() if e.text == "Processor 1 is stuck."]
    assert [e.level for e in stuck] == [LogLevel.ERR]
    assert 5 * S <= stuck[0].time_ns - started[0] < 5 * S + S // 10
    assert (LogLevel.INFO, "smp: Brought up 1 node, 1 CPU") in lines(guest)
    assert guest.online_cpus() == [0]
    assert guest.booted


def test_two_numa_nodes_are_counted_in_the_plural() -> None:
    """smp_init's summary "Brought up %d node%s, %d CPU%s": two online nodes, two CPUs."""
    _platform, guest = booted(
        LinuxGuest(timing=QUIET), build_tree(slots=4, boot_cores=2, numa_nodes=2), seconds=0.5
    )
    assert (LogLevel.INFO, "smp: Brought up 2 nodes, 2 CPUs") in lines(guest)


# ----------------------------------------------------- rtasd and its log copies


class ScanPlatform(FakePlatform):
    """event-scan answers 0 with each of ``answers`` (log bytes) in turn, then QEMU's 1."""

    def __init__(self, guest: LinuxGuest, tree: fdt.Node, answers: list[bytes]) -> None:
        super().__init__(guest, tree)
        self.answers = list(answers)

    def _event_scan(self, call: RtasCall[Vcpu]) -> None:
        if not self.answers:
            super()._event_scan(call)
            return
        self.memory.write(call.args[2], self.answers.pop(0))
        call.set_ret(0, 0)


def scanned(
    answers: list[bytes], *, mode: GuestMode = GuestMode.IN_KERNEL_DLPAR, rate: int = 1
) -> tuple[ScanPlatform, LinuxGuest]:
    """Boot, let the first event-scan (1 s after boot) return ``answers``."""
    tree = build_tree(slots=4, boot_cores=1)
    if rate != 1:
        rtas = tree.find("/rtas")
        assert rtas is not None
        rtas.set_property(fdt.Property.cells("rtas-event-scan-rate", rate))
    guest = LinuxGuest(mode=mode)
    platform = ScanPlatform(guest, tree, answers)
    platform.boot()
    platform.run(3 * S // 2)
    return platform, guest


def event(summary: int, extended_length: int, payload: bytes = b"") -> bytes:
    """An RTAS error log: summary word, extended length word, then ``payload``."""
    return summary.to_bytes(4, "big") + extended_length.to_bytes(4, "big") + payload


#: Byte 1 = 0x34: severity 1 (event), disposition 2, extended bit; type 0xE5 (odd).
HOTPLUG_SUMMARY = 0x063460E5


@pytest.mark.parametrize(
    ("summary", "extended_length", "kept"),
    [
        (HOTPLUG_SUMMARY, 108, 116),
        (HOTPLUG_SUMMARY, 16, 24),
        (HOTPLUG_SUMMARY, 0, 8),
        (HOTPLUG_SUMMARY & ~EXTENDED, 108, 8),
        (0x063000E0, 40, 8),
        (HOTPLUG_SUMMARY, 4000, LOG_MAX),
        (HOTPLUG_SUMMARY, LOG_MAX - 8, LOG_MAX),
        (HOTPLUG_SUMMARY, 1 << 24, LOG_MAX),
    ],
)
def test_the_copy_kept_for_rtas_errd_is_log_rtas_len_bytes(
    summary: int, extended_length: int, kept: int
) -> None:
    """log_rtas_len: 8 bytes, plus the extended length (the big-endian word at 4) when
    the extended bit 0x00040000 is set and the length is non-zero, never more than
    rtas-error-log-max; the entry is that prefix of the buffer event-scan filled."""
    payload = bytes((i * 7 + 3) & 0xFF for i in range(LOG_MAX - 8))
    raw = event(summary, extended_length, payload)
    _platform, guest = scanned([raw])
    assert [len(entry) for entry in guest.kernel.rtas_log] == [kept]
    assert guest.kernel.rtas_log[0] == raw[:kept]


def test_rtasd_keeps_the_latest_64_events() -> None:
    """rtasd's buffer holds LOG_NUMBER = 64 entries; a 65th overwrites the oldest, and
    every event is still counted and printed."""
    logs = [event(0x06000000 | n, 0, b"") for n in range(1, 66)]
    _platform, guest = scanned(logs)
    kept = list(guest.kernel.rtas_log)
    assert len(kept) == 64
    assert kept == [raw[:8] for raw in logs[1:]]
    events = [t for _, t in lines(guest) if t.startswith("RTAS: event:")]
    assert len(events) == 65 and events[-1].startswith("RTAS: event: 65, ")


def test_an_event_from_event_scan_wakes_rtas_errd_without_an_ipi_to_itself() -> None:
    """The older guest: rtasd's first scan runs on CPU 0, where rtas_errd waits; the
    logged event wakes it locally (no H_IPI to its own server) and it reads the entry."""
    platform, guest = scanned(
        [event(0x06340000 | 0xE0, 16, bytes([0x86, 0, 0x8E]) + bytes(9) + b"IBM\0")],
        mode=GuestMode.RTAS_ERRD_DRMGR,
    )
    assert (LogLevel.DEBUG, "RTAS: event: 1, Type: Platform Error (224), Severity: 1") in lines(
        guest
    )
    assert [c.rets for c in platform.calls if c.name == "event-scan"][:2] == [(0,), (1,)]
    assert self_ipis(platform) == []
    assert not guest.kernel.rtas_log


def test_an_epow_event_wakes_rtas_errd_without_an_ipi_to_itself() -> None:
    """The older guest: a hot-add reaches it on the EPOW interrupt (protocol.md §12.5),
    handled on CPU 0 where rtas_errd waits: a local wake-up, no H_IPI to itself; the
    add completes through drmgr."""
    platform, guest = booted(
        LinuxGuest(mode=GuestMode.RTAS_ERRD_DRMGR, timing=QUIET), build_tree(slots=4, boot_cores=1)
    )
    platform.plug_core(2)
    platform.run(S)
    checks = [c for c in platform.calls if c.name == "check-exception"]
    assert [(c.args[1], c.args[2]) for c in checks] == [(IRQ_EPOW, MASK_EPOW)]
    assert guest.online_cpus() == [0, 1]
    assert self_ipis(platform) == []


@pytest.mark.parametrize("rate", [7, 11])
def test_the_scan_period_is_30_s_divided_by_the_rate_in_whole_units(rate: int) -> None:
    """rtas_event_scan_init: event_scan_delay = 30 s / rtas-event-scan-rate, an integer
    division. With one CPU the first scan (1 s after boot) re-arms the delayed work to
    expire exactly one whole period later, and the second scan comes then."""
    tree = build_tree(slots=4, boot_cores=1)
    rtas = tree.find("/rtas")
    assert rtas is not None
    rtas.set_property(fdt.Property.cells("rtas-event-scan-rate", rate))
    platform, guest = booted(LinuxGuest(), tree, seconds=1.5)
    (first,) = [c.time for c in platform.calls if c.name == "event-scan"]
    period = 30 * S // rate
    deadlines = [deadline for deadline, _seq, _task in guest.kernel.cpus[0].timers]
    assert first + period in deadlines
    platform.run(period)
    times = [c.time for c in platform.calls if c.name == "event-scan"]
    assert times == [first, first + period]
