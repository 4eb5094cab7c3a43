"""The guest-facing half of the hotplug handshake against a real Linux 6.12 guest on QEMU 7.2.

Each recorded boot (tests/data/guest_oracle) is replayed on the emulator with the
reference guest (tests/guest_oracle_replay.py says how, and which calls depend on
timing and are left out). Compared call for call and byte for byte, the
recording being right:

* every RTAS call after boot: service, arguments, status and outputs, in order;
* the event logs check-exception returned (the first 192 bytes of the buffer);
* what ibm,configure-connector handed out: the property order, and on the boots
  where QEMU's fragment was read over QMP, every value and the node name.

Left out of the call sequences on both sides, because they depend on timing and
not on the protocol: event-scan polls (rtasd's period against the guest's
uptime), query-cpu-stopped-state polls answered "running" while a dying CPU
finishes (1 to 674 of them in the recording), and the calls a CPU makes after
the guest counts it offline, which Linux's RTAS tracepoints never see (the dying
CPU's ibm,get-xive and stop-self). A test below checks that nothing else is
dropped.

Which CPU made a call is not compared either: it is the guest scheduler's choice
(in one recorded removal the real hotplug worker ran on CPU 2).

Addresses the guest chooses (its check-exception buffer, the configure-connector
work area, the secondary entry point given to start-cpu) differ between any two
kernels; they are compared as "one buffer each, used every time" instead.
"""

from __future__ import annotations

import pytest
from guest_oracle_replay import POWER9_RUNS, RUNS, RtasCall, comparable, recording, replay

from rtas import HotplugAction, decode_event_log

#: Argument positions that carry a guest address: (service, position) -> what it is.
GUEST_ADDRESSES = {
    ("check-exception", 4): "ras_log_buf",
    ("ibm,configure-connector", 0): "rtas_data_buf",
    ("start-cpu", 1): "secondary entry point",
}
#: Bytes 32-39 of the event log: the Main-A section's creation date and time (BCD).
#: QEMU stamps its RTC, which follows the host's wall clock (2026-11-25 19:37 in the
#: recording); the emulator's RTC runs on virtual time from a fixed start, so runs are
#: reproducible. Every other byte, the platform log ids included, must match.
CREATION_DATE_TIME = slice(32, 40)
#: The interrupt controller's RTAS services (XICS).
XICS_SERVICES = {"ibm,set-xive", "ibm,get-xive", "ibm,int-on", "ibm,int-off"}
#: The guest's console (hvc0 on QEMU's spapr-vty) has interrupt 0x1100; the guest sets
#: it up when the console opens. The emulator models no VIO console.
VTY_IRQ = 0x1100
#: Services a CPU calls after the guest counts it offline (untraced by Linux, left out).
OFFLINE_CPU_SERVICES = {"ibm,get-xive", "ibm,set-xive", "stop-self"}


def is_bcd(data: bytes) -> bool:
    """Every nibble a decimal digit."""
    return all(b >> 4 < 10 and b & 0xF < 10 for b in data)


def action(log: bytes) -> HotplugAction:
    """The hotplug action of an event log."""
    hotplug = decode_event_log(log).hotplug
    assert hotplug is not None
    return hotplug.action


def shown(call: RtasCall) -> str:
    """A call as the recording's tracepoints print it, addresses named rather than valued."""
    args = [GUEST_ADDRESSES.get((call.name, i), f"0x{a:x}") for i, a in enumerate(call.args)]
    outputs = ",".join(f"0x{o:x}" for o in call.outputs)
    return f"{call.name}({','.join(args)}) -> {call.status} {{{outputs}}}"


@pytest.mark.parametrize("run", RUNS)
def test_rtas_calls_match_call_for_call(run: str) -> None:
    expected = [shown(c) for c in comparable(recording(run).rtas_calls())]
    got = [shown(c) for c in comparable(replay(run).rtas)]
    assert got == expected


@pytest.mark.parametrize("run", RUNS)
def test_guest_addresses_are_one_buffer_each(run: str) -> None:
    """Linux passes the same static buffer (and entry point) every time; so must the model."""
    for side in (recording(run).rtas_calls(), replay(run).rtas):
        for (service, position), what in GUEST_ADDRESSES.items():
            used = {c.args[position] for c in side if c.name == service}
            assert len(used) == 1, f"{run}: {what} should be one address, got {used}"


@pytest.mark.parametrize("run", RUNS)
def test_left_out_calls_are_only_the_timing_dependent_ones(run: str) -> None:
    """What the comparison drops is what the replay's docstring says, and nothing else."""
    calls = replay(run).rtas
    kept = set(map(id, comparable(calls)))
    dropped = [c for c in calls if id(c) not in kept]
    removals = sum(1 for log in recording(run).event_logs if action(log) is HotplugAction.REMOVE)
    for call in dropped:
        if call.name == "event-scan":
            assert call.status == 1, "an event-scan that found an event is not a poll"
        elif not call.traced:
            assert call.name in OFFLINE_CPU_SERVICES
        else:
            assert call.name == "query-cpu-stopped-state" and call.outputs == (2,)
    assert sum(1 for c in dropped if c.name == "stop-self") == removals
    recorded = recording(run).rtas_calls()
    assert all(c.name != "event-scan" for c in recorded), "no event-scan during the operations"


@pytest.mark.parametrize("run", RUNS)
def test_event_logs_byte_for_byte(run: str) -> None:
    expected = recording(run).event_logs
    got = replay(run).event_logs
    assert len(got) == len(expected)
    for n, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert len(have) == len(want)
        for log in (want, have):
            assert is_bcd(log[CREATION_DATE_TIME]), "the masked field is a BCD date and time"
        masked_want = want[: CREATION_DATE_TIME.start] + want[CREATION_DATE_TIME.stop :]
        masked_have = have[: CREATION_DATE_TIME.start] + have[CREATION_DATE_TIME.stop :]
        assert masked_have.hex() == masked_want.hex(), f"event log {n}"


@pytest.mark.parametrize("run", RUNS)
def test_configure_connector_property_order(run: str) -> None:
    expected = recording(run).cc_properties
    walks = replay(run).walks
    assert [[name for name, _value in w.properties] for w in walks] == expected
    assert all(len(w.nodes) == 1 for w in walks), "one node per SMT1 core"


@pytest.mark.parametrize("run", [r for r in RUNS if recording(r).qom_fdt() is not None])
def test_configure_connector_hands_out_qemus_fragment(run: str) -> None:
    """The first add's walk carries exactly the fragment QEMU's connector held (qom-get fdt)."""
    fragment = recording(run).qom_fdt()
    assert fragment is not None
    names = recording(run).cc_properties[0]
    assert sorted(names) == sorted(fragment), "the guest received every property"
    walk = replay(run).walks[0]
    assert walk.properties == [(name, fragment[name]) for name in names]
    assert walk.nodes == [fragment["name"].rstrip(b"\0").decode()]


@pytest.mark.parametrize("run", RUNS)
def test_boot_sets_up_the_event_sources_as_linux(run: str) -> None:
    """Per event source (EPOW, then hotplug): unmask, int-on, then the default affinity.

    On POWER9 the real guest negotiated XIVE at CAS (QEMU's default ic-mode=dual) and
    set its interrupts up with XIVE hcalls and ESB loads, so there is no RTAS call to
    compare: the reference guest, negotiating XIVE too, must make none either.
    """
    expected = [shown(c) for c in recording(run).boot_xics_calls() if c.args[0] != VTY_IRQ]
    got = [shown(c) for c in replay(run).boot_rtas if c.name in XICS_SERVICES]
    assert got == expected


@pytest.mark.parametrize("run", POWER9_RUNS)
def test_power9_real_guest_made_no_xics_calls(run: str) -> None:
    """With XIVE, no XICS RTAS call at all: not by the real guest, not by the model's."""
    assert recording(run).boot_xics_calls() == []
    assert not any(c.name in XICS_SERVICES for c in recording(run).rtas_calls())
    assert not any(c.name in XICS_SERVICES for c in replay(run).calls)
    assert replay(run).machine.xive_active, "the replayed POWER9 guest negotiated XIVE"
