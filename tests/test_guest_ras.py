"""rtasd's event-scan and the logging of RTAS events, as Linux 6.1 does them.

Linux 6.1 ``arch/powerpc/kernel/rtasd.c``: the event-scan work runs 1 s after boot
on the first online CPU, then on each next online CPU, and once every CPU had one,
every 30 s / ``rtas-event-scan-rate`` (``rtas_event_scan`` / ``event_scan_work``);
``do_event_scan`` calls event-scan(all events, 0, buffer, rtas-error-log-max) until
it answers non-zero, logs each event it returns (``pSeries_log_error`` →
``printk_log_rtas``: "RTAS: event: <count>, Type: <name> (<type>), Severity: <s>",
KERN_DEBUG; the type names are ``rtas_event_type``'s), only notes a PRRN event
("Platform resource reassignment ignored.", pr_info) and stops with "event-scan
failed" (KERN_ERR) on -1. The severity is the top three bits of byte 1 of the log
and the type byte 3 (``struct rtas_error_log``, ``asm/rtas.h``).

QEMU 7.2's event-scan never returns an event (protocol.md §8); the platform here
is the fake of ``tests/test_guest_platform.py`` with event-scan scripted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_guest_platform import FakePlatform, build_tree

import fdt
from guest import LinuxGuest, LogLevel
from rtas import RtasCall

S = 1_000_000_000


class ScanPlatform(FakePlatform):
    """event-scan answers from ``answers`` ((status, log bytes)), then QEMU's 1."""

    answers: list[tuple[int, bytes]]

    def _event_scan(self, call: RtasCall) -> None:
        if not getattr(self, "answers", None):
            super()._event_scan(call)
            return
        status, log = self.answers.pop(0)
        self.memory.write(call.args[2], log)
        call.set_ret(0, status)


def log(summary_byte1: int, event_type: int, extended: int = 0, flags: int = 0) -> bytes:
    """An RTAS error log header: version 6, byte 1 (severity and flags), type."""
    return bytes([6, summary_byte1 | flags, 0, event_type]) + extended.to_bytes(4, "big")


def boot(
    answers: list[tuple[int, bytes]] | None = None,
    *,
    boot_cores: int = 1,
    rate: int | None = None,
    seconds: float = 1.5,
) -> tuple[ScanPlatform, LinuxGuest]:
    tree = build_tree(slots=4, boot_cores=boot_cores)
    if rate is not None:
        rtas = tree.find("/rtas")
        assert rtas is not None
        rtas.set_property(fdt.Property.cells("rtas-event-scan-rate", rate))
    guest = LinuxGuest()
    platform = ScanPlatform(guest, tree, threads=1)
    platform.answers = list(answers or [])
    platform.boot()
    platform.run(int(seconds * S))
    return platform, guest


def lines(guest: LinuxGuest) -> list[tuple[LogLevel, str]]:
    return [(e.level, e.text) for e in guest.log.kernel()]


@pytest.mark.parametrize(
    ("event_type", "name"),
    [
        (0, "Unknown"),
        (1, "Retry"),
        (2, "TCE Error"),
        (3, "Internal Device Failure"),
        (4, "Timeout"),
        (5, "Data Parity"),
        (6, "Address Parity"),
        (7, "Cache Parity"),
        (8, "Address Invalid"),
        (9, "ECC Uncorrected"),
        (10, "ECC Corrupted"),
        (11, "Unknown"),
        (0x40, "EPOW"),
        (0xE0, "Platform Error"),
        (0xE1, "I/O Event"),
        (0xE2, "Platform Information Event"),
        (0xE3, "Resource Deallocation Event"),
        (0xE4, "Dump Notification Event"),
        (0xE5, "Hotplug Event"),
        (0xE6, "Unknown"),
    ],
)
def test_an_event_from_event_scan_is_logged_with_its_type_name(event_type: int, name: str) -> None:
    """printk_log_rtas's line for each type rtas_event_type names (others "Unknown")."""
    _platform, guest = boot([(0, log(0xA0, event_type))])
    assert (LogLevel.DEBUG, f"RTAS: event: 1, Type: {name} ({event_type}), Severity: 5") in lines(
        guest
    )


def test_event_scan_is_repeated_until_it_finds_nothing_and_events_are_counted() -> None:
    """do_event_scan loops while event-scan answers 0; each event bumps the count; the
    severity is byte 1's top three bits (flag bits below them do not count)."""
    platform, guest = boot([(0, log(0x20, 0xE0, flags=0x1F)), (0, log(0xE0, 0x40)), (0, log(0, 4))])
    events = [t for level, t in lines(guest) if t.startswith("RTAS: event:")]
    assert events == [
        "RTAS: event: 1, Type: Platform Error (224), Severity: 1",
        "RTAS: event: 2, Type: EPOW (64), Severity: 7",
        "RTAS: event: 3, Type: Timeout (4), Severity: 0",
    ]
    scans = [c.rets[0] for c in platform.calls if c.name == "event-scan"]
    assert scans == [0, 0, 0, 1]


def test_a_prrn_event_is_only_noted() -> None:
    """RTAS_TYPE_PRRN (0xA0): "Platform resource reassignment ignored." and no log line."""
    _platform, guest = boot([(0, log(0x20, 0xA0)), (0, log(0x20, 0xE1))])
    got = lines(guest)
    assert (LogLevel.INFO, "Platform resource reassignment ignored.") in got
    assert [t for _, t in got if t.startswith("RTAS: event:")] == [
        "RTAS: event: 1, Type: I/O Event (225), Severity: 1"
    ]


@pytest.mark.parametrize(
    ("status", "message"), [(-1, (LogLevel.ERR, "event-scan failed")), (-3, None), (1, None)]
)
def test_a_failing_or_empty_scan_ends_the_pass(
    status: int, message: tuple[LogLevel, str] | None
) -> None:
    """-1 prints "event-scan failed"; any non-zero status ends the loop without a log."""
    platform, guest = boot([(status, log(0x20, 0xE0))])
    scans = [c.rets[0] for c in platform.calls if c.name == "event-scan"]
    assert scans == [status]
    got = lines(guest)
    assert not [t for _, t in got if t.startswith("RTAS: event:")]
    if message is not None:
        assert message in got
    else:
        assert (LogLevel.ERR, "event-scan failed") not in got


def scan_times(platform: FakePlatform) -> list[tuple[int, int]]:
    return [(c.hwid, c.time) for c in platform.calls if c.name == "event-scan"]


@pytest.mark.parametrize("rate", [1, 2, 3])
def test_the_scan_visits_every_cpu_a_second_apart_then_every_30_s_over_the_rate(rate: int) -> None:
    """event_scan_work: first on the first online CPU 1 s after boot, then on each next
    online CPU 1 s apart; after the last CPU the delay becomes 30 s / rate
    (``rtas_event_scan_rate``) and the walk starts over at the first CPU."""
    platform, _guest = boot(boot_cores=3, rate=rate, seconds=4 + 2 * 30 / rate)
    scans = scan_times(platform)
    assert [hwid for hwid, _ in scans][:5] == [0, 1, 2, 0, 1]
    times = [t for _, t in scans]
    period = 30 * S // rate
    assert S <= times[0] < 1.01 * S
    assert [times[i + 1] - times[i] for i in range(2)] == [S, S]
    assert times[3] - times[2] == period
    assert times[4] - times[3] == period


def test_without_a_scan_rate_rtasd_does_not_scan() -> None:
    """rtas_event_scan_init: a zero rate means no scanning."""
    platform, guest = boot(rate=0, seconds=3)
    assert scan_times(platform) == []
    assert (LogLevel.DEBUG, "rtasd: scan rate is 0, not scanning") in lines(guest)


def boot_without(prop: str) -> tuple[ScanPlatform, LinuxGuest]:
    tree = build_tree(slots=4, boot_cores=1)
    rtas = tree.find("/rtas")
    assert rtas is not None
    rtas.remove_property(prop)
    guest = LinuxGuest()
    platform = ScanPlatform(guest, tree)
    platform.answers = []
    platform.boot()
    platform.run(3 * S)
    return platform, guest


def test_without_event_scan_rtasd_does_not_start() -> None:
    """rtas_event_scan_init: no event-scan token, "rtasd: No event-scan on system"
    (KERN_INFO), no scanning, and the daemon is not started."""
    platform, guest = boot_without("event-scan")
    got = lines(guest)
    assert (LogLevel.INFO, "rtasd: No event-scan on system") in got
    assert (LogLevel.DEBUG, "RTAS daemon started") not in got
    assert scan_times(platform) == []


def test_without_a_scan_rate_property_rtasd_does_not_start() -> None:
    """No rtas-event-scan-rate: "rtasd: no rtas-event-scan-rate on system" (KERN_ERR)."""
    platform, guest = boot_without("rtas-event-scan-rate")
    got = lines(guest)
    assert (LogLevel.ERR, "rtasd: no rtas-event-scan-rate on system") in got
    assert (LogLevel.DEBUG, "RTAS daemon started") not in got
    assert scan_times(platform) == []


def test_a_started_rtasd_says_so_once() -> None:
    """start_event_scan: "RTAS daemon started" (KERN_DEBUG), then the first scan."""
    platform, guest = boot(seconds=2)
    assert lines(guest).count((LogLevel.DEBUG, "RTAS daemon started")) == 1
    assert scan_times(platform)[0][0] == 0


ORACLE_SMP = Path(__file__).parent / "data" / "guest_oracle" / "smp_boot_lines.txt"


def test_the_smp_bring_up_lines_are_the_recorded_guests() -> None:
    """kernel_init → smp_init: the two lines the recorded Linux guest printed with one
    CPU (tests/data/guest_oracle/smp_boot_lines.txt), at KERN_INFO, in that order."""
    expected = [
        line for line in ORACLE_SMP.read_text().splitlines() if line and not line.startswith("#")
    ]
    _platform, guest = boot(seconds=0.5)
    got = [(level, t) for level, t in lines(guest) if t.startswith("smp: ")]
    assert got == [(LogLevel.INFO, text) for text in expected]


def test_more_cpus_are_counted_in_the_plural() -> None:
    """smp_init's summary: "%d node%s, %d CPU%s" with an s for more than one."""
    _platform, guest = boot(boot_cores=2, seconds=0.5)
    assert (LogLevel.INFO, "smp: Brought up 1 node, 2 CPUs") in lines(guest)


@pytest.mark.parametrize(
    ("cells", "epow", "hotplug"),
    [
        (None, (0x1000, 0), (0x1001, 0)),
        (2, (0x1000, 0), (0x1001, 0)),
        (1, (0x1000,), (0x1001,)),
        (3, (0x1000, 0, 0), (0x1001, 0, 0)),
    ],
)
def test_event_source_interrupts_are_read_with_the_parents_cell_count(
    cells: int | None, epow: tuple[int, ...], hotplug: tuple[int, ...]
) -> None:
    """request_event_sources_irqs: each interrupt of a source is #interrupt-cells
    cells of /event-sources (2 when absent), the first one the XICS source number; the
    guest unmasks each (ibm,set-xive then ibm,int-on) and a hot-plug request works."""
    tree = build_tree(slots=4, boot_cores=1)
    sources = tree.find("/event-sources")
    assert sources is not None
    if cells is None:
        sources.remove_property("#interrupt-cells")
    else:
        sources.set_property(fdt.Property.cells("#interrupt-cells", cells))
    for name, value in (("epow-events", epow), ("hot-plug-events", hotplug)):
        node = sources.find(name)
        assert node is not None
        node.set_property(fdt.Property.cells("interrupts", *value))
    guest = LinuxGuest()
    platform = ScanPlatform(guest, tree)
    platform.answers = []
    platform.boot()
    platform.run(S // 2)
    int_on = [c.args[0] for c in platform.calls if c.name == "ibm,int-on"]
    assert sorted(int_on) == [0x1000, 0x1001]
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
