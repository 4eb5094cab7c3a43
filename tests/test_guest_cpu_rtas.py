"""The guest's vCPU RTAS calls: starting a thread and stopping itself, as Linux 6.1 makes them.

Sources: Linux 6.1 ``arch/powerpc/platforms/pseries/smp.c`` (``smp_startup_cpu``: a
thread that query-cpu-stopped-state reports NOT_STOPPED (2) is assumed to be spinning
and is not started; without a start-cpu token the same; start-cpu(pcpu, entry, pcpu)
failing prints "start-cpu failed: %i" and the kick fails with -ENOENT;
``smp_query_cpu_stopped``: without the token "Firmware doesn't support
query-cpu-stopped-state" once (KERN_INFO) and QCSS_HARDWARE_ERROR (-1)),
``hotplug-cpu.c`` (``rtas_stop_self``: stop-self with nargs 0 and nret 1; if it
returns, ``panic("Alas, I survived.")``; ``dlpar_cpu_add``: "Failed to online cpu
%pOFn, rc: %d, drc index: %x", then the node is detached and the DRC released).

The platform is the fake of ``tests/test_guest_platform.py`` (QEMU 7.2's answers).
"""

from __future__ import annotations

from test_guest_platform import CPU_DRC_BASE, FakePlatform, build_tree
from test_guest_rtas_errors import ScriptedPlatform, boot, dr, lines

from guest import SECONDARY_ENTRY, GuestTiming, LinuxGuest, LogLevel
from rtas import RtasCall
from rtas.tokens import RtasToken

S = 1_000_000_000
X2 = CPU_DRC_BASE | 2
HOTPLUG_CPU = "pseries-hotplug-cpu: "
ENOENT = 2


class StopSelfPlatform(FakePlatform):
    """Records each stop-self buffer; with ``returns`` set, the thread is not stopped."""

    returns = False
    stops: list[tuple[int, int, int]]

    def _stop_self(self, call: RtasCall) -> None:
        self.stops.append((call.caller.hwid, call.nargs, call.nret))
        if not self.returns:
            super()._stop_self(call)


def removal(returns: bool) -> tuple[StopSelfPlatform, LinuxGuest]:
    guest = LinuxGuest(timing=GuestTiming(event_scan=False))
    platform = StopSelfPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.stops = []
    platform.returns = returns
    platform.boot()
    platform.run(2 * S)
    platform.plug_core(2)
    platform.run(S)
    platform.unplug_core(2)
    platform.run(S)
    return platform, guest


def test_a_dying_thread_calls_stop_self_with_no_argument_and_one_return() -> None:
    """rtas_call_unlocked(stop-self, 0, 1): nargs 0, nret 1, from the dying thread;
    the guest's own RTAS trace records it with no argument and no return (it never
    returns) at the platform's time."""
    platform, guest = removal(returns=False)
    assert platform.stops == [(2, 0, 1)]
    (record,) = [r for r in guest.rtas_trace if r.service == "stop-self"]
    assert (record.hwid, record.token, record.args, record.rets, record.hcall_status) == (
        2,
        RtasToken.STOP_SELF,
        (),
        (),
        None,
    )
    (seen,) = [c for c in platform.calls if c.name == "stop-self"]
    assert record.time_ns == seen.time
    assert "DEVICE_DELETED core 2" in platform.events


def test_a_thread_that_survives_stop_self_panics_and_stays_parked() -> None:
    """If stop-self returns Linux panics ("Alas, I survived."); the thread does
    nothing more and the platform never sees it call again."""
    platform, guest = removal(returns=True)
    assert (LogLevel.EMERG, "Kernel panic - not syncing: Alas, I survived.") in lines(guest)
    mark = len(platform.calls)
    platform.run(5 * S)
    assert all(c.hwid != 2 for c in platform.calls[mark:])


def test_a_failed_start_cpu_rolls_the_add_back() -> None:
    """start-cpu failing: "start-cpu failed: -1", the online fails with -ENOENT, the
    node is detached and the DRC released (ISOLATE, then UNUSABLE)."""
    platform, guest = boot({("start-cpu", (2, SECONDARY_ENTRY, 2)): [(-1,)]})
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    log = lines(guest)
    assert (LogLevel.ERR, "start-cpu failed: -1") in log
    assert (
        LogLevel.WARNING,
        f"{HOTPLUG_CPU}Failed to online cpu PowerPC,POWER9, rc: {-ENOENT}, drc index: {X2:x}",
    ) in log
    assert dr(platform, mark)[-3:] == [
        ("get-sensor-state", (9003, X2), 0),
        ("set-indicator", (9001, X2, 0), 0),
        ("set-indicator", (9003, X2, 0), 0),
    ]
    assert guest.online_cpus() == [0]


def test_a_thread_already_running_is_not_started() -> None:
    """query-cpu-stopped-state answering NOT_STOPPED (2): no start-cpu; the thread
    never calls in, so the kernel gives up on it ("Processor 1 is stuck.")."""
    platform, guest = boot({("query-cpu-stopped-state", (2,)): [(0, 2)]})
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(120 * S)
    names = [c.name for c in platform.calls[mark:]]
    assert "start-cpu" not in names
    assert (LogLevel.ERR, "Processor 1 is stuck.") in lines(guest)
    assert guest.online_cpus() == [0]


def test_a_failing_query_does_not_stop_the_start() -> None:
    """A failing query-cpu-stopped-state (-3) is printed and is not NOT_STOPPED:
    start-cpu follows and the thread comes online."""
    platform, guest = boot({("query-cpu-stopped-state", (2,)): [(-3, 0)]})
    platform.plug_core(2)
    platform.run(S)
    assert (LogLevel.ERR, "RTAS query-cpu-stopped-state failed: -3") in lines(guest)
    assert guest.online_cpus() == [0, 1]


def without(service: str) -> tuple[ScriptedPlatform, LinuxGuest]:
    """A platform whose /rtas does not list ``service`` (the guest has no token)."""
    tree = build_tree(slots=4, boot_cores=1)
    rtas = tree.find("/rtas")
    assert rtas is not None
    rtas.remove_property(service)
    guest = LinuxGuest(timing=GuestTiming(event_scan=False))
    platform = ScriptedPlatform(guest, tree)
    platform.script = {}
    platform.boot()
    platform.run(2 * S)
    return platform, guest


def test_without_query_cpu_stopped_state_threads_are_started_and_reaped_blind() -> None:
    """No token: "Firmware doesn't support query-cpu-stopped-state" once, start-cpu
    is called anyway, and a dying thread's poll ends at once with the -1 warning."""
    platform, guest = without("query-cpu-stopped-state")
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    platform.unplug_core(2)
    platform.run(S)
    log = lines(guest)
    assert log.count((LogLevel.INFO, "Firmware doesn't support query-cpu-stopped-state")) == 1
    assert (LogLevel.WARNING, f"{HOTPLUG_CPU}CPU 1 (hwid 2) reported error while dying") in log
    assert not [c for c in platform.calls if c.name == "query-cpu-stopped-state"]
    assert guest.online_cpus() == [0]


def test_without_start_cpu_a_thread_is_assumed_to_be_spinning() -> None:
    """No start-cpu token: smp_startup_cpu returns success without a call; the
    thread, never started, does not call in."""
    platform, guest = without("start-cpu")
    platform.plug_core(2)
    platform.run(120 * S)
    assert not [c for c in platform.calls if c.name == "start-cpu"]
    assert (LogLevel.ERR, "Processor 1 is stuck.") in lines(guest)


def test_the_guests_rtas_trace_is_what_the_platform_saw() -> None:
    """Every RTAS call the guest records (LinuxGuest.rtas_trace) is one the platform
    received: same thread, time, service, arguments and returns, the token /rtas
    gives that service, and H_RTAS's status (0) -- through a hot add and remove."""
    guest = LinuxGuest(timing=GuestTiming(event_scan=False))
    platform = StopSelfPlatform(guest, build_tree(slots=4, boot_cores=2))
    platform.stops = []
    platform.boot()
    platform.run(2 * S)
    platform.plug_core(2)
    platform.run(S)
    platform.unplug_core(2)
    platform.run(S)
    rtas = platform.tree.find("/rtas")
    assert rtas is not None
    seen = [(c.hwid, c.time, c.name, c.args) for c in platform.calls]
    records = [r for r in guest.rtas_trace if r.service != "stop-self"]
    assert [(r.hwid, r.time_ns, r.service, r.args) for r in records] == [
        s for s in seen if s[2] != "stop-self"
    ]
    for record, call in zip(
        records, [c for c in platform.calls if c.name != "stop-self"], strict=True
    ):
        assert record.rets[: len(call.rets)] == call.rets[: len(record.rets)]
        assert record.token == int.from_bytes(rtas[record.service].value, "big")
        assert record.hcall_status == 0
    assert {r.hwid for r in records} >= {0, 2}
