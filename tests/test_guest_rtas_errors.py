"""How the guest reacts to RTAS errors and busy answers on the CPU-hotplug path.

QEMU 7.2 never answers these (protocol.md §3: no -2 or 990x on this path), but a
platform may, and Linux 6.1's reaction is what the guest model reproduces:

* ``arch/powerpc/kernel/rtas.c``: ``rtas_get_sensor`` / ``rtas_set_indicator`` retry
  while ``rtas_busy_delay`` says so (-2: reschedule; 9900+n: sleep 10^n ms, at most
  1 s), then turn a negative status into an errno with ``rtas_error_rc`` (-1 -EIO,
  -3 -EINVAL, -9000 -EFAULT, -9001 -EEXIST, -9002 -ENODEV, anything else -ERANGE
  and "rtas_error_rc: unexpected RTAS error N"); a positive status is returned as is.
* ``platforms/pseries/dlpar.c``: ``dlpar_acquire_drc`` (sense UNUSABLE, allocation
  USABLE, UNISOLATE; a failed UNISOLATE gives the allocation back) and
  ``dlpar_release_drc`` (sense PRESENT, ISOLATE, UNUSABLE; a failed UNUSABLE
  re-UNISOLATEs); ``hotplug-cpu.c``: ``dlpar_cpu_add`` prints "Failed to acquire
  DRC, rc: %d, drc index: %x", ``dlpar_cpu_remove`` "Failed to release drc (%x) for
  CPU %pOFn, rc: %d" and brings the CPU back online; ``pseries_cpu_die`` polls
  query-cpu-stopped-state until STOPPED (0) or -1, warns every 120 s, and warns when
  the answer was -1 (``smp.c: smp_query_cpu_stopped`` returns a failing status as
  is, with "RTAS query-cpu-stopped-state failed: %i").

The platform is the fake of ``tests/test_guest_platform.py`` (QEMU 7.2's answers),
with chosen calls answered otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from test_guest_platform import CPU_DRC_BASE, FakePlatform, build_tree

from guest import GuestTiming, LinuxGuest, LogLevel
from rtas import RtasCall

S = 1_000_000_000
MS = 1_000_000
X2 = CPU_DRC_BASE | 2
HOTPLUG_CPU = "pseries-hotplug-cpu: "
EIO, EFAULT, EEXIST, ENODEV, EINVAL, ERANGE = 5, 14, 17, 19, 22, 34

#: (service, args) -> the statuses (and outputs) to answer, used up in order.
Script = dict[tuple[str, tuple[int, ...]], list[tuple[int, ...]]]


class ScriptedPlatform(FakePlatform):
    """QEMU 7.2's fake platform, except for the calls a test scripts."""

    script: Script

    def _answer(self, name: str, call: RtasCall, real: Callable[[RtasCall], None]) -> None:
        answers = self.script.get((name, tuple(call.args)))
        if not answers:
            real(call)
            return
        for i, value in enumerate(answers.pop(0)):
            call.set_ret(i, value)

    def _set_indicator(self, call: RtasCall) -> None:
        self._answer("set-indicator", call, super()._set_indicator)

    def _get_sensor_state(self, call: RtasCall) -> None:
        self._answer("get-sensor-state", call, super()._get_sensor_state)

    def _query_cpu_stopped_state(self, call: RtasCall) -> None:
        self._answer("query-cpu-stopped-state", call, super()._query_cpu_stopped_state)

    def _start_cpu(self, call: RtasCall) -> None:
        self._answer("start-cpu", call, super()._start_cpu)


def boot(script: Script, **timing: int) -> tuple[ScriptedPlatform, LinuxGuest]:
    guest = LinuxGuest(timing=GuestTiming(event_scan=False, **timing))  # type: ignore[arg-type]
    platform = ScriptedPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.script = {}
    platform.boot()
    platform.run(2 * S)
    platform.script = script
    return platform, guest


def lines(guest: LinuxGuest) -> list[tuple[LogLevel, str]]:
    return [(e.level, e.text) for e in guest.log.kernel()]


def dr(platform: FakePlatform, mark: int) -> list[tuple[str, tuple[int, ...], int]]:
    """(service, args, status) of the DR calls since ``mark``."""
    keep = {"get-sensor-state", "set-indicator", "ibm,configure-connector"}
    return [
        (c.name, c.args if c.name != "ibm,configure-connector" else (), c.rets[0])
        for c in platform.calls[mark:]
        if c.name in keep
    ]


@pytest.mark.parametrize(
    ("status", "rc"),
    [
        (-1, -EIO),
        (-3, -EINVAL),
        (-9000, -EFAULT),
        (-9001, -EEXIST),
        (-9002, -ENODEV),
        (-9999, -ERANGE),
        (-4, -ERANGE),
        (1, 1),
    ],
)
def test_a_refused_allocation_is_reported_with_linuxs_errno(status: int, rc: int) -> None:
    """set-indicator(allocation, USABLE) failing: rtas_error_rc's errno (a positive
    status as is) in "Failed to acquire DRC", nothing more is asked of the connector."""
    platform, guest = boot({("set-indicator", (9003, X2, 1)): [(status,)]})
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert dr(platform, mark) == [
        ("get-sensor-state", (9003, X2), 0),
        ("set-indicator", (9003, X2, 1), status),
    ]
    log = lines(guest)
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to acquire DRC, rc: {rc}, drc index: {X2:x}",
    ) in log
    unexpected = (LogLevel.ERR, f"rtas_error_rc: unexpected RTAS error {status}")
    assert (unexpected in log) is (rc == -ERANGE)
    assert guest.online_cpus() == [0]


@pytest.mark.parametrize(("status", "rc"), [(-9001, -EEXIST), (-1, -EIO), (2, 2)])
def test_a_refused_unisolate_gives_the_allocation_back(status: int, rc: int) -> None:
    """dlpar_acquire_drc: when UNISOLATE fails the allocation goes back to UNUSABLE."""
    platform, guest = boot({("set-indicator", (9001, X2, 1)): [(status,)]})
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert dr(platform, mark) == [
        ("get-sensor-state", (9003, X2), 0),
        ("set-indicator", (9003, X2, 1), 0),
        ("set-indicator", (9001, X2, 1), status),
        ("set-indicator", (9003, X2, 0), 0),
    ]
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to acquire DRC, rc: {rc}, drc index: {X2:x}",
    ) in lines(guest)


@pytest.mark.parametrize("answer", [(-1, 2), (-3, 2), (0, 1), (0, 0), (3, 2)])
def test_an_acquire_needs_the_sensor_to_read_unusable(answer: tuple[int, int]) -> None:
    """dlpar_acquire_drc: a failing get-sensor-state, or a state other than UNUSABLE
    (2), is -1 before any indicator is set."""
    platform, guest = boot({("get-sensor-state", (9003, X2)): [answer]})
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    assert dr(platform, mark) == [("get-sensor-state", (9003, X2), answer[0])]
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to acquire DRC, rc: -1, drc index: {X2:x}",
    ) in lines(guest)


def test_busy_answers_are_retried_after_linuxs_delays() -> None:
    """rtas_busy_delay: -2 is retried at once (after a reschedule), 9900 after 1 ms,
    9901 after 10 ms, 9905 after 1 s (10^5 ms clamped); then the add goes on."""
    busy: list[tuple[int, ...]] = [(-2, 0), (9900, 0), (9901, 0), (9905, 0)]
    platform, guest = boot({("get-sensor-state", (9003, X2)): busy})
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(3 * S)
    sensed = [c for c in platform.calls[mark:] if c.name == "get-sensor-state"]
    assert [c.rets[0] for c in sensed[:5]] == [-2, 9900, 9901, 9905, 0]
    gaps = [b.time - a.time for a, b in itertools.pairwise(sensed[:5])]
    assert gaps[0] < MS
    assert MS <= gaps[1] < 2 * MS
    assert 10 * MS <= gaps[2] < 11 * MS
    assert 1000 * MS <= gaps[3] < 1001 * MS
    assert guest.online_cpus() == [0, 1]


def added() -> tuple[ScriptedPlatform, LinuxGuest]:
    platform, guest = boot({})
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    return platform, guest


@pytest.mark.parametrize(("status", "rc"), [(-1, -EIO), (-9000, -EFAULT), (1, 1)])
def test_a_refused_isolate_keeps_the_cpu_online(status: int, rc: int) -> None:
    """dlpar_release_drc: ISOLATE failing ends the release; dlpar_cpu_remove prints
    "Failed to release drc" and onlines the CPU again; the removal is then signalled
    back by UNISOLATE (dlpar_unisolate_drc: the DRC still senses PRESENT)."""
    platform, guest = added()
    platform.script = {("set-indicator", (9001, X2, 0)): [(status,)]}
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(2 * S)
    assert dr(platform, mark) == [
        ("get-sensor-state", (9003, X2), 0),
        ("set-indicator", (9001, X2, 0), status),
        ("get-sensor-state", (9003, X2), 0),
        ("set-indicator", (9001, X2, 1), 0),
    ]
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to release drc ({X2:x}) for CPU PowerPC,POWER9, rc: {rc}",
    ) in lines(guest)
    assert guest.online_cpus() == [0, 1]


def test_a_refused_unusable_re_unisolates_before_giving_up() -> None:
    """dlpar_release_drc: allocation UNUSABLE failing re-UNISOLATEs the connector."""
    platform, guest = added()
    platform.script = {("set-indicator", (9003, X2, 0)): [(-9002,)]}
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(2 * S)
    assert dr(platform, mark)[:4] == [
        ("get-sensor-state", (9003, X2), 0),
        ("set-indicator", (9001, X2, 0), 0),
        ("set-indicator", (9003, X2, 0), -9002),
        ("set-indicator", (9001, X2, 1), 0),
    ]
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to release drc ({X2:x}) for CPU PowerPC,POWER9, rc: {-ENODEV}",
    ) in lines(guest)
    assert guest.online_cpus() == [0, 1]


@pytest.mark.parametrize("answer", [(-3, 0), (0, 2)])
def test_a_release_needs_the_sensor_to_read_present(answer: tuple[int, int]) -> None:
    """dlpar_release_drc: a failing sensor read or a state other than PRESENT (1) is
    -1 before any indicator is set; the CPU comes back online."""
    platform, guest = added()
    platform.script = {("get-sensor-state", (9003, X2)): [answer]}
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(2 * S)
    assert dr(platform, mark)[0] == ("get-sensor-state", (9003, X2), answer[0])
    assert all(call[:2] != ("set-indicator", (9001, X2, 0)) for call in dr(platform, mark))
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to release drc ({X2:x}) for CPU PowerPC,POWER9, rc: -1",
    ) in lines(guest)
    assert guest.online_cpus() == [0, 1]


def dying(script: list[tuple[int, ...]], **timing: int) -> tuple[ScriptedPlatform, LinuxGuest]:
    platform, guest = boot({}, **timing)
    platform.plug_core(2)
    platform.run(S)
    platform.script = {("query-cpu-stopped-state", (2,)): script}
    return platform, guest


def test_a_dying_cpu_is_polled_until_it_reads_stopped() -> None:
    """pseries_cpu_die: query-cpu-stopped-state until STOPPED (0); 2 (NOT_STOPPED)
    means poll again; then the DRC is released."""
    platform, guest = dying([(0, 2), (0, 2), (0, 2)])
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(2 * S)
    queries = [c.rets[:2] for c in platform.calls[mark:] if c.name == "query-cpu-stopped-state"]
    assert queries == [(0, 2), (0, 2), (0, 2), (0, 0)]
    assert guest.online_cpus() == [0]
    assert "DEVICE_DELETED core 2" in platform.events


def test_a_dying_cpu_that_reports_an_error_is_warned_about_and_removed() -> None:
    """-1 (hardware error) also ends the poll, with "reported error while dying"."""
    platform, guest = dying([(-1, 0)])
    platform.unplug_core(2)
    platform.run(2 * S)
    log = lines(guest)
    assert (LogLevel.ERR, "RTAS query-cpu-stopped-state failed: -1") in log
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}CPU 1 (hwid 2) reported error while dying",
    ) in log
    assert guest.online_cpus() == [0]


def test_a_cpu_that_does_not_die_is_warned_about_every_120_seconds() -> None:
    """The poll has no end but the thread stopping; every 120 s without it Linux warns
    "didn't die after 120 seconds". Other failing statuses (-3) keep it polling too."""
    platform, guest = dying([(0, 2)] * 150 + [(-3, 0)] * 150, die_poll_ns=S)
    platform.unplug_core(2)
    platform.run(250 * S)
    warning = (LogLevel.WARNING, f"{HOTPLUG_CPU}CPU 1 (hwid 2) didn't die after 120 seconds")
    log = lines(guest)
    assert log.count(warning) == 2
    assert (LogLevel.ERR, "RTAS query-cpu-stopped-state failed: -3") in log
    assert guest.online_cpus() == [0]
    assert "DEVICE_DELETED core 2" not in platform.events
    platform.run(100 * S)
    assert "DEVICE_DELETED core 2" in platform.events
