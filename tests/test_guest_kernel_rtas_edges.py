"""Edges of the guest kernel's RTAS path: the call itself, its buffers, sensors, dying CPUs.

What Linux 6.1 does, which the model reproduces and these tests check:

* ``arch/powerpc/kernel/rtas.c: rtas_call``: a service without a token
  (RTAS_UNKNOWN_SERVICE) returns -1 without entering RTAS; otherwise the buffer is
  (token, nargs, nret, args..., rets...) and the platform writes the rets in place;
  outputs[i] = rets[i + 1]; the status is rets[0] when nret > 0, else 0
  (``ret = (nret > 0) ? be32_to_cpu(args->rets[0]) : 0``). QEMU 7.2 writes rets[0]
  even when nret is 0 (docs/conformance.md), which the guest must not read.
* The argument buffers are allocated once (the global ``rtas.args``, the per-CPU
  ``paca->rtas_args_reentrant`` from ``new_rtas_args`` at boot), never per call; in
  this model each hardware thread has its own, so calls of two threads that are in
  flight at the same time (each vCPU waits in its own H_RTAS) cannot overwrite one
  another's arguments or rets.
* ``rtas_get_sensor``: ``rtas_error_rc`` maps -1/-3/-9000/-9001/-9002 to
  -EIO/-EINVAL/-EFAULT/-EEXIST/-ENODEV and anything else to -ERANGE with
  ``KERN_ERR "rtas_error_rc: unexpected RTAS error %d"``; a status >= 0 is returned
  as is, with the state output.
* ``platforms/pseries/hotplug-cpu.c: pseries_cpu_die``: the controlling CPU polls
  query-cpu-stopped-state (interrupts enabled, ``cond_resched``) and warns when
  ``time_after(jiffies, timeout)`` -- strictly more than 120 s since the poll began
  or since the last warning; afterwards the CPU is offline and its paca's
  ``cpu_start`` is 0, so a thread that enters ``generic_secondary_smp_init``
  without ``__cpu_up`` asking for it spins there and never comes online.
* ``pseries_remove_processor`` sets a departed CPU's hard id to -1: a CPU without
  a hardware thread is hwid -1 in the guest's RTAS trace.
* ``prom_init.c``: option vector 7 is ``linux_banner`` copied with
  ``prom_strscpy_pad`` into 256 bytes (NUL-padded); vector 5's ``max_cpus`` is a
  ``__be32``; ``prom_check_platform_support`` reads
  ``ibm,arch-vec-5-platform-support`` as (index, value) byte pairs.

The platform is the fake of ``tests/test_guest_platform.py`` (QEMU 7.2's answers);
some tests drive the kernel's generators directly, playing the platform themselves,
so that they choose when each H_RTAS is answered.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Any

import pytest
from test_guest_platform import CPU_DRC_BASE, IRQ_HOTPLUG, FakePlatform, Icp, booted, build_tree

from guest import (
    SECONDARY_ENTRY,
    CpuState,
    GuestTiming,
    LinuxGuest,
    LogLevel,
    Misbehavior,
    WrongIndices,
)
from guest.cas import OV7_LENGTH, CasRequest, PlatformSupport
from guest.kernel import Kernel, RtasResult
from guest.state import LogicalCpu
from rtas import RtasCall
from rtas.hcalls import EXECUTE, Hcall, HcallReturn
from rtas.tokens import RtasToken

S = 1_000_000_000
MS = 1_000_000
X2 = CPU_DRC_BASE | 2
X3 = CPU_DRC_BASE | 3
DR_ENTITY_SENSE = 9003
ENOENT, EIO, EINVAL, ERANGE = 2, 5, 22, 34
HOTPLUG_CPU = "pseries-hotplug-cpu: "


def quiet() -> LinuxGuest:
    return LinuxGuest(timing=GuestTiming(event_scan=False))


def kernel_of_two() -> Kernel:
    """A guest booted on two cores (hwids 0 and 1), every QEMU 7.2 token known."""
    _platform, guest = booted(quiet(), build_tree(slots=4, boot_cores=2))
    assert guest.hwids() == {0: 0, 1: 1}
    return guest.kernel


def enter(gen: Generator[Any, Any, Any]) -> int:
    """Run a kernel generator up to its H_RTAS; the buffer address it passes."""
    op = next(gen)
    assert op[0] == Hcall.KVMPPC_H_RTAS
    return int(op[1])


def leave(gen: Generator[Any, Any, Any], hret: int = HcallReturn.H_SUCCESS) -> Any:
    """Give H_RTAS's return to a generator waiting in it; what the generator returns."""
    with pytest.raises(StopIteration) as stop:
        gen.send(hret)
    return stop.value.value


def answer_sensor(kernel: Kernel, addr: int) -> None:
    """Answer the get-sensor-state now in the buffer: success, state = index & 0xF."""
    call = RtasCall.decode(kernel.memory, addr, None)
    assert call.token == RtasToken.GET_SENSOR_STATE
    call.set_ret(0, 0)
    call.set_ret(1, call.args[1] & 0xF)


# ------------------------------------------------------------------- rtas_call


def test_outputs_past_the_rets_the_platform_wrote_read_zero() -> None:
    """outputs[i] is rets[i + 1]; an output the call had no ret for reads 0 (never
    rets[0], never a made-up 1): a status-only answer has no state."""
    assert RtasResult(0, (0, 7)).out(0) == 7
    assert RtasResult(0, (0,)).out(0) == 0
    assert RtasResult(-3, (-3, 5)).out(1) == 0
    assert RtasResult(-1).out(0) == 0


def test_a_service_without_a_token_is_minus_one_and_never_reaches_the_platform() -> None:
    """rtas_call: token == RTAS_UNKNOWN_SERVICE returns -1 at once, no H_RTAS."""
    kernel = kernel_of_two()
    calls = kernel.rtas_calls
    gen = kernel.rtas_call(kernel.cpus[0], "ibm,no-such-service", [1, 2], 2)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == RtasResult(-1, ())
    assert kernel.rtas_calls == calls


def test_a_call_without_rets_has_status_zero_whatever_rets0_holds() -> None:
    """nret = 0: Linux returns 0 without reading rets[0]; QEMU writes rets[0] anyway
    (-3 here, where rets[0] would be), and that word is not the call's status."""
    kernel = kernel_of_two()
    gen = kernel.rtas_call(kernel.cpus[0], "ibm,int-off", [0x1000], 0)
    addr = enter(gen)
    call = RtasCall.decode(kernel.memory, addr, None)
    assert (call.nargs, call.nret) == (1, 0)
    call.set_ret(0, -3)
    result = leave(gen)
    assert result.status == 0
    assert result.rets == ()


def test_the_trace_keeps_h_rtas_status_beside_the_rets() -> None:
    """A token the platform does not serve (the fake has no get-time-of-day): QEMU's
    dispatcher writes rets[0] = -3 and H_RTAS returns H_PARAMETER (-4) (protocol.md
    §3). The call's status is -3, its outputs 0, and the guest's trace keeps the
    hypercall's own -4 beside the rets."""
    platform, guest = booted(quiet(), build_tree(slots=4, boot_cores=2))
    kernel = guest.kernel
    gen = kernel.rtas_call(kernel.cpus[1], "get-time-of-day", [], 8)
    hret = platform.dispatcher.hcall_rtas(platform.memory, enter(gen), platform.vcpus[1])
    assert hret == HcallReturn.H_PARAMETER
    result = leave(gen, hret)
    assert result == RtasResult(-3, (-3, 0, 0, 0, 0, 0, 0, 0))
    record = kernel.rtas_trace[-1]
    assert (record.hwid, record.service, record.args, record.rets) == (
        1,
        "get-time-of-day",
        (),
        result.rets,
    )
    assert record.hcall_status == HcallReturn.H_PARAMETER


def test_calls_of_two_threads_in_flight_at_once_get_their_own_answers() -> None:
    """Thread 0 and thread 1 each wait in H_RTAS; the platform answers thread 1
    first, then thread 0, each from what its buffer holds then. Each thread reads
    the answer to its own call, and after its call the running code is still the
    caller's (kernel.current), though the other thread ran meanwhile."""
    kernel = kernel_of_two()
    cpu0, cpu1 = kernel.cpus[0], kernel.cpus[1]
    first = kernel.rtas_call(cpu0, "get-sensor-state", [DR_ENTITY_SENSE, X2], 2)
    addr0 = enter(first)
    second = kernel.rtas_call(cpu1, "get-sensor-state", [DR_ENTITY_SENSE, X3], 2)
    addr1 = enter(second)
    assert addr0 != addr1
    answer_sensor(kernel, addr1)
    assert leave(second).rets == (0, 3)
    assert kernel.current is cpu1
    answer_sensor(kernel, addr0)
    assert leave(first).rets == (0, 2)
    assert kernel.current is cpu0


def test_a_new_threads_first_call_does_not_borrow_another_threads_buffer() -> None:
    """A thread calling RTAS for the first time (hwid 5 here, no buffer yet) while
    thread 0's call is in flight: the two calls keep their own arguments."""
    kernel = kernel_of_two()
    newcomer = LogicalCpu(5, hwid=5, present=True)
    first = kernel.rtas_call(kernel.cpus[0], "get-sensor-state", [DR_ENTITY_SENSE, X2], 2)
    addr0 = enter(first)
    second = kernel.rtas_call(newcomer, "get-sensor-state", [DR_ENTITY_SENSE, X3], 2)
    addr5 = enter(second)
    answer_sensor(kernel, addr5)
    answer_sensor(kernel, addr0)
    assert leave(second).rets == (0, 3)
    assert leave(first).rets == (0, 2)


def test_stop_self_does_not_overwrite_another_threads_call_in_flight() -> None:
    """A dying thread (hwid 1) calls stop-self while thread 0 waits in its own
    H_RTAS: thread 0's buffer still holds its call when the platform gets to it."""
    kernel = kernel_of_two()
    first = kernel.rtas_call(kernel.cpus[0], "get-sensor-state", [DR_ENTITY_SENSE, X2], 2)
    addr0 = enter(first)
    stop = kernel.rtas_stop_self(kernel.cpus[1])
    addr_stop = enter(stop)
    stop.close()
    stop_call = RtasCall.decode(kernel.memory, addr_stop, None)
    assert (stop_call.token, stop_call.nargs, stop_call.nret) == (RtasToken.STOP_SELF, 0, 1)
    answer_sensor(kernel, addr0)
    assert leave(first).rets == (0, 2)


def test_a_threads_buffer_is_allocated_once() -> None:
    """Like Linux's per-CPU rtas_args (allocated at boot), a thread's buffer is one
    fixed place: the same address each time, one per thread, and calls do not
    take more guest memory."""
    kernel = kernel_of_two()
    assert kernel.rtas_buffer(7) == kernel.rtas_buffer(7)
    assert kernel.rtas_buffer(7) != kernel.rtas_buffer(8)
    addrs = set()
    probe = 0
    for i in range(4):
        if i == 1:
            probe = kernel.alloc(1, 1)
        gen = kernel.rtas_call(kernel.cpus[1], "get-sensor-state", [DR_ENTITY_SENSE, X2], 2)
        addr = enter(gen)
        addrs.add(addr)
        answer_sensor(kernel, addr)
        leave(gen)
    assert len(addrs) == 1
    assert kernel.alloc(1, 1) == probe + 1


def test_hotplug_cycles_take_no_more_guest_memory() -> None:
    """Adding and removing the same core again and again (each removal ending in
    the thread's stop-self) allocates nothing after the first cycle: a guest that
    runs for days must not run out of RAM for RTAS buffers."""
    platform, guest = booted(quiet(), build_tree(slots=4, boot_cores=1))

    def cycle() -> None:
        platform.plug_core(2)
        platform.run(S)
        assert guest.online_cpus() == [0, 1]
        platform.unplug_core(2)
        platform.run(S)
        assert guest.online_cpus() == [0]

    cycle()
    probe = guest.kernel.alloc(1, 1)
    for _ in range(3):
        cycle()
    assert [c.name for c in platform.calls].count("stop-self") == 4
    assert guest.kernel.alloc(1, 1) == probe + 1


def test_a_cpu_without_a_hard_id_is_traced_as_hwid_minus_one() -> None:
    """A logical CPU with no hardware thread has hard id -1 in Linux
    (pseries_remove_processor); its RTAS calls, stop-self included, are recorded
    with hwid -1 (never a real thread's id)."""
    kernel = kernel_of_two()
    orphan = LogicalCpu(6)
    gen = kernel.rtas_call(orphan, "get-sensor-state", [DR_ENTITY_SENSE, X2], 2)
    answer_sensor(kernel, enter(gen))
    assert leave(gen).rets == (0, 2)
    assert kernel.rtas_trace[-1].hwid == -1
    stop = kernel.rtas_stop_self(orphan)
    enter(stop)
    stop.close()
    record = kernel.rtas_trace[-1]
    assert (record.service, record.hwid) == ("stop-self", -1)


# ------------------------------------------------------------- rtas_get_sensor


@pytest.mark.parametrize(
    ("status", "rc", "unexpected"),
    [
        (0, 0, False),
        (1, 1, False),
        (-1, -EIO, False),
        (-3, -EINVAL, False),
        (-9999, -ERANGE, True),
        (-4, -ERANGE, True),
    ],
)
def test_get_sensor_maps_a_failing_status_as_rtas_error_rc(
    status: int, rc: int, unexpected: bool
) -> None:
    """rtas_get_sensor returns a status >= 0 as is, a negative one through
    rtas_error_rc; only statuses outside its table print the KERN_ERR
    "unexpected RTAS error" line. The state output comes back beside it."""
    kernel = kernel_of_two()
    kernel._current = kernel.cpus[0]
    gen = kernel.rtas_get_sensor(DR_ENTITY_SENSE, X2)
    call = RtasCall.decode(kernel.memory, enter(gen), None)
    assert call.args == (DR_ENTITY_SENSE, X2)
    call.set_ret(0, status)
    call.set_ret(1, 2)
    assert leave(gen) == (rc, 2)
    line = (LogLevel.ERR, f"rtas_error_rc: unexpected RTAS error {status}")
    printed = [entry for entry in lines_of(kernel) if "unexpected RTAS error" in entry[1]]
    assert printed == ([line] if unexpected else [])


@pytest.mark.parametrize("service", ["get-sensor-state", "set-indicator"])
def test_sensor_and_indicator_without_their_service_are_enoent(service: str) -> None:
    """Linux 6.1's rtas_get_sensor and rtas_set_indicator check their token first:
    RTAS_UNKNOWN_SERVICE returns -ENOENT (2) without a call, not rtas_error_rc(-1)'s
    -EIO, so "Failed to acquire DRC, rc: -2" is what such a platform would print."""
    kernel = kernel_of_two()
    kernel._current = kernel.cpus[0]
    del kernel.tokens[service]
    calls = kernel.rtas_calls
    if service == "get-sensor-state":
        gen: Generator[Any, Any, Any] = kernel.rtas_get_sensor(DR_ENTITY_SENSE, X2)
        want: Any = (-ENOENT, 0)
    else:
        gen = kernel.rtas_set_indicator(9003, X2, 1)
        want = -ENOENT
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == want
    assert kernel.rtas_calls == calls


def lines_of(kernel: Kernel) -> list[tuple[LogLevel, str]]:
    return [(e.level, e.text) for e in kernel.log.kernel()]


# ------------------------------------------------------------- pseries_cpu_die


class SlowDeathPlatform(FakePlatform):
    """QEMU 7.2's fake, except that thread 2 reads NOT_STOPPED (2) to the next
    ``not_stopped`` query-cpu-stopped-state calls, whatever it is doing."""

    not_stopped = 0

    def _query_cpu_stopped_state(self, call: RtasCall) -> None:
        if self.not_stopped and call.args == (2,) and call.nret == 2:
            self.not_stopped -= 1
            call.set_ret(0, 0)
            call.set_ret(1, 2)
            return
        super()._query_cpu_stopped_state(call)


def dying(not_stopped: int, die_poll_ns: int) -> tuple[SlowDeathPlatform, LinuxGuest]:
    """Core 2 (thread 2, logical CPU 1) hot-added; its death will be slow to show."""
    guest = LinuxGuest(timing=GuestTiming(event_scan=False, die_poll_ns=die_poll_ns))
    platform = SlowDeathPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.boot()
    platform.run(2 * S)
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    platform.not_stopped = not_stopped
    return platform, guest


def test_a_cpu_that_does_not_die_is_warned_about_strictly_after_120_seconds() -> None:
    """time_after(jiffies, timeout): polling once a second, the first warning comes
    at the first poll more than 120 s after the poll began (121 s), the next one at
    the first poll more than 120 s after that (242 s)."""
    platform, guest = dying(260, die_poll_ns=S)
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(250 * S)
    queries = [c.time for c in platform.calls[mark:] if c.name == "query-cpu-stopped-state"]
    assert queries[1] - queries[0] == S
    warnings = [
        e.time_ns - queries[0]
        for e in guest.log.kernel()
        if e.text == f"{HOTPLUG_CPU}CPU 1 (hwid 2) didn't die after 120 seconds"
    ]
    assert warnings == [121 * S, 242 * S]
    assert all(e.level is LogLevel.WARNING for e in guest.log.kernel() if "didn't die" in e.text)


def test_interrupts_are_taken_while_a_dying_cpu_is_polled() -> None:
    """The controlling CPU polls with interrupts enabled: an interrupt arriving in
    the middle of a 1 s poll interval is taken then (check-exception at once), and
    the poll goes on until the thread reads stopped."""
    platform, guest = dying(4, die_poll_ns=S)
    mark = len(platform.calls)
    platform.unplug_core(2)
    platform.run(2 * S + 500 * MS)
    pulse = platform.now
    platform.spurious_pulse(IRQ_HOTPLUG)
    platform.run(10 * S)
    after = [(c.time - pulse, c.name) for c in platform.calls[mark:] if c.time >= pulse]
    assert after[0][1] == "check-exception"
    assert after[0][0] < MS
    # the next poll still comes within the interval the interrupt cut into
    assert after[1][1] == "query-cpu-stopped-state"
    assert after[1][0] < S
    assert guest.online_cpus() == [0]
    assert "DEVICE_DELETED core 2" in platform.events


def test_an_offlined_cpu_is_offline_and_not_waiting_to_start() -> None:
    """After echo 0 > online, the CPU is OFFLINE and cpu_start is clear: its thread,
    entering the secondary entry point without the kernel asking (a stray
    start-cpu), is parked and does not come online; the kernel's own online later
    still works through query-cpu-stopped-state."""
    platform, guest = booted(quiet(), build_tree(slots=4, boot_cores=2))
    guest.request_cpu_offline(1)
    platform.run(S)
    assert guest.online_cpus() == [0]
    cpu = guest.kernel.cpus[1]
    assert cpu.state is CpuState.OFFLINE
    assert not cpu.cpu_start
    vcpu = platform.vcpus[1]
    assert not vcpu.running
    vcpu.program = guest.program_factory(1, SECONDARY_ENTRY, 1)
    vcpu.running = True
    platform.icps[1] = Icp(1, platform)
    mark = len(platform.hcalls)
    platform._schedule(1, platform.now, None)
    platform.run(S)
    assert guest.online_cpus() == [0]
    assert {op[0] for hwid, op in platform.hcalls[mark:] if hwid == 1} == {Hcall.H_CEDE}


class StormPlatform(SlowDeathPlatform):
    """After each query-cpu-stopped-state, the caller's next ``storm`` stretches of
    guest code are cut short before any time passes (interrupts keep arriving and
    going, an interrupt storm): thread 0's program runs through :func:`stalling`."""

    storm = 0
    stalled = 0

    def _query_cpu_stopped_state(self, call: RtasCall) -> None:
        super()._query_cpu_stopped_state(call)
        self.storm = 2


def stalling(
    platform: StormPlatform, program: Generator[Any, Any, None]
) -> Generator[Any, Any, None]:
    """``program`` (already running), except that an EXECUTE during a storm comes
    back at once with all of its time left undone. Primed: send it what
    ``program`` waits for."""
    value: Any = yield None
    while True:
        op = program.send(value)
        if op[0] == EXECUTE and platform.storm:
            platform.storm -= 1
            platform.stalled += 1
            value = op[1]
            continue
        value = yield op


def test_a_dying_cpu_poll_rides_out_an_interrupt_storm() -> None:
    """The poll's wait between two queries, on a CPU that an interrupt storm keeps
    from making progress (each stretch of code comes back undone, twice in a row):
    the CPU checks for interrupts (H_XIRR) and goes on waiting; the thread is
    reaped once it reads stopped, and the CPU stays usable."""
    guest = LinuxGuest(timing=GuestTiming(event_scan=False, die_poll_ns=S))
    platform = StormPlatform(guest, build_tree(slots=4, boot_cores=1))
    platform.boot()
    platform.run(2 * S)
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
    vcpu0 = platform.vcpus[0]
    assert vcpu0.program is not None
    vcpu0.program = stalling(platform, vcpu0.program)
    next(vcpu0.program)
    platform.storm = 0
    platform.not_stopped = 3
    mark = len(platform.hcalls)
    platform.unplug_core(2)
    platform.run(5 * S)
    assert platform.stalled >= 2 * 3  # each wait between two queries was stalled twice
    assert any(op[0] == Hcall.H_XIRR for hwid, op in platform.hcalls[mark:] if hwid == 0)
    assert guest.online_cpus() == [0]
    assert "DEVICE_DELETED core 2" in platform.events
    platform.plug_core(3)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]


# ------------------------------------------------------------ wrong-index guest


def test_every_line_a_wrong_index_guest_prints_has_a_printk_level() -> None:
    """The log's lines all carry a printk level, the wrong-index guest's own report
    of each call it corrupted included (a warning)."""
    guest = LinuxGuest(
        misbehavior=Misbehavior(wrong_indices=WrongIndices(frozenset({"get-sensor-state"}))),
        timing=GuestTiming(event_scan=False),
    )
    platform, _ = booted(guest, build_tree(slots=4, boot_cores=1))
    platform.plug_core(2)
    platform.run(S)
    reports = [e for e in guest.log.kernel() if e.text.startswith("wrong-index guest:")]
    assert reports
    assert all(e.level is LogLevel.WARNING for e in reports)
    assert all(isinstance(e.level, LogLevel) for e in guest.log.entries)


# ------------------------------------------------------------------------- CAS


def vector7(request: CasRequest) -> bytes:
    """Option vector 7 of a CAS table: after the PVRs, the count and vectors 1..6."""
    table = request.table()
    pos = 14 * 8 + 1
    for _ in range(6):
        pos += 1 + table[pos] + 1
    length = table[pos] + 1
    return table[pos + 1 : pos + 1 + length]


def test_vector7_is_the_banner_nul_padded_to_256_bytes() -> None:
    """prom_strscpy_pad: the OS id is linux_banner, then NULs to 256 bytes."""
    vec7 = vector7(CasRequest())
    assert len(vec7) == OV7_LENGTH
    text, _, pad = vec7.partition(b"\0")
    assert text.startswith(b"Linux version ")
    assert pad == bytes(OV7_LENGTH - len(text) - 1)


def test_vector5_max_cpus_is_an_unsigned_word() -> None:
    """max_cpus (bytes 9..12) is a __be32: 2^31 cores encode as 0x80000000."""
    vec5 = CasRequest(nr_cpus=0x8000_0000).vector5()
    assert vec5[8:12] == b"\x80\x00\x00\x00"
    assert struct.unpack(">I", CasRequest(nr_cpus=0xFFFF_FFFF).vector5()[8:12]) == (0xFFFF_FFFF,)


def test_platform_support_is_read_two_bytes_at_a_time() -> None:
    """(index, value) pairs: (25, 26) says hash options 26 and (0x40, 0) nothing; the
    26 is a value, never read as the radix-options index with 0x40 (GTSE)."""
    chosen = build_tree(slots=1, boot_cores=1, platform_support=bytes([25, 26, 0x40, 0])).find(
        "/chosen"
    )
    assert PlatformSupport.from_chosen(chosen) == PlatformSupport()
    gtse = build_tree(slots=1, boot_cores=1, platform_support=bytes([26, 0x40])).find("/chosen")
    assert PlatformSupport.from_chosen(gtse).radix_gtse
