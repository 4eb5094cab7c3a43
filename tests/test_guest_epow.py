"""The guest's EPOW (environmental and power warning) handling, as Linux 6.1 does it.

Linux 6.1 ``arch/powerpc/platforms/pseries/ras.c``: ``ras_epow_interrupt`` reads
sensor 9 (``EPOW_SENSOR_TOKEN``, index 0), calls check-exception with the EPOW mask
and ``critical`` = 1 when the sensor reads above 3, logs the event, then
``rtas_parse_epow_errlog`` acts on the "EP" section's action code (sensor value,
low nibble) and, for SYSTEM_SHUTDOWN, on its event modifier
(``handle_system_shutdown``): which message at which printk level, and whether the
kernel powers off (``orderly_poweroff`` then ``kernel_power_off``, which ends in RTAS
power-off(-1, -1)). Every action but RESET counts an EPOW event; RESET prints
"cleared" only when such an event is outstanding. The EPOW section layout is PAPR's
(and QEMU 7.2's ``struct epow_extended_log`` in ``hw/ppc/spapr_events.c``): the
action code is byte 8 of the section, the modifier byte 9.

The guest runs on the fake platform of ``tests/test_guest_platform.py``, whose
event queue and RTAS answers are QEMU 7.2's.
"""

from __future__ import annotations

import pytest
from test_guest_platform import IRQ_EPOW, MASK_EPOW, FakePlatform, booted, build_tree

from guest import GuestTiming, LinuxGuest, LogLevel
from rtas import RtasCall
from rtas.errlog import EpowAction, EventLogEntry, epow_event

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)
# Linux 6.1 ras.c's messages (pr_info / pr_emerg / pr_err).
COOLING = "Non-critical cooling issue detected. Check RTAS error log for details"
POWER = "Non-critical power issue detected. Check RTAS error log for details"
CLEARED = "Non critical power/cooling issue cleared"
HALT = "Critical power/cooling issue detected. Check RTAS error log for details. Powering off."
LOSE_POWER = (
    "System about to lose power. Check RTAS error log  for details. Powering off immediately."
)
POWER_OFF_REQUESTED = "Power off requested"
ON_UPS = (
    "Loss of system power detected. System is running on UPS/battery. "
    "Check RTAS error log for details"
)
CRITICAL_FUNCTIONS = "Loss of system critical functions detected. Check RTAS error log for details"
AMBIENT = "High ambient temperature detected. Check RTAS error log for details"


def epow_entry(action: int, modifier: int = 1, plid: int = 0) -> EventLogEntry:
    """An EPOW log as QEMU queues it, with the EP section's action and modifier bytes set."""
    entry = epow_event(plid=plid, date=(2024, 1, 1), time=(0, 0, 0))
    extended = bytearray(entry.extended)
    section = extended.index(b"EP")
    extended[section + 8] = action
    extended[section + 9] = modifier
    return EventLogEntry(entry.summary, bytes(extended))


def guest_on_fake() -> tuple[FakePlatform, LinuxGuest]:
    return booted(LinuxGuest(timing=QUIET), build_tree(slots=2, boot_cores=1))


def deliver(
    platform: FakePlatform, guest: LinuxGuest, entry: EventLogEntry
) -> list[tuple[LogLevel, str]]:
    """Queue ``entry``, run one second; the kernel lines printed meanwhile."""
    before = len(guest.log.kernel())
    platform.enqueue(entry)
    platform.run(S)
    return [(e.level, e.text) for e in guest.log.kernel()[before:]]


def powered_off_with_rtas(platform: FakePlatform, mark: int) -> bool:
    """Whether the guest called RTAS power-off(-1, -1) after ``mark``."""
    return any(
        c.short() == ("power-off", (0xFFFFFFFF, 0xFFFFFFFF), (0,)) for c in platform.calls[mark:]
    )


@pytest.mark.parametrize(
    ("action", "modifier", "level", "text", "powers_off"),
    [
        (EpowAction.WARN_COOLING, 0, LogLevel.INFO, COOLING, False),
        (EpowAction.WARN_POWER, 0, LogLevel.INFO, POWER, False),
        (EpowAction.SYSTEM_SHUTDOWN, 1, LogLevel.EMERG, POWER_OFF_REQUESTED, True),
        (EpowAction.SYSTEM_SHUTDOWN, 2, LogLevel.EMERG, ON_UPS, False),
        (EpowAction.SYSTEM_SHUTDOWN, 3, LogLevel.EMERG, CRITICAL_FUNCTIONS, True),
        (EpowAction.SYSTEM_SHUTDOWN, 4, LogLevel.EMERG, AMBIENT, True),
        (
            EpowAction.SYSTEM_SHUTDOWN,
            5,
            LogLevel.ERR,
            "Unknown power/cooling shutdown event (modifier = 5)",
            False,
        ),
        (
            EpowAction.SYSTEM_SHUTDOWN,
            0,
            LogLevel.ERR,
            "Unknown power/cooling shutdown event (modifier = 0)",
            False,
        ),
        (EpowAction.SYSTEM_HALT, 0, LogLevel.EMERG, HALT, True),
        (EpowAction.MAIN_ENCLOSURE, 0, LogLevel.EMERG, LOSE_POWER, True),
        (EpowAction.POWER_OFF, 0, LogLevel.EMERG, LOSE_POWER, True),
        (6, 0, LogLevel.ERR, "Unknown power/cooling event (action code  = 6)", False),
        (8, 0, LogLevel.ERR, "Unknown power/cooling event (action code  = 8)", False),
    ],
)
def test_each_epow_action_prints_linuxs_message_and_powers_off_when_linux_does(
    action: int, modifier: int, level: LogLevel, text: str, powers_off: bool
) -> None:
    """rtas_parse_epow_errlog / handle_system_shutdown (Linux 6.1 ras.c): one message
    per action code (and shutdown modifier), at Linux's level; power-off only for a
    normal shutdown, lost critical functions, high temperature, halt, main enclosure
    and power-off. The high nibble of either byte is ignored (``& 0xF``)."""
    platform, guest = guest_on_fake()
    mark = len(platform.calls)
    lines = deliver(platform, guest, epow_entry(action | 0xF0, modifier | 0xF0))
    assert (level, text) in lines
    platform.run(S)
    assert powered_off_with_rtas(platform, mark) is powers_off
    assert guest.powered_off is powers_off
    if powers_off:
        assert (LogLevel.EMERG, "reboot: Power down") in [
            (e.level, e.text) for e in guest.log.kernel()
        ]


def test_reset_clears_only_an_outstanding_warning() -> None:
    """RESET prints "cleared" only while a non-RESET EPOW event is counted
    (num_epow_events, Linux 6.1 ras.c), and each RESET consumes one count."""
    platform, guest = guest_on_fake()
    assert (LogLevel.INFO, CLEARED) not in deliver(platform, guest, epow_entry(EpowAction.RESET))
    deliver(platform, guest, epow_entry(EpowAction.WARN_COOLING, plid=1))
    deliver(platform, guest, epow_entry(EpowAction.WARN_POWER, plid=2))
    assert (LogLevel.INFO, CLEARED) in deliver(
        platform, guest, epow_entry(EpowAction.RESET, plid=3)
    )
    assert (LogLevel.INFO, CLEARED) in deliver(
        platform, guest, epow_entry(EpowAction.RESET, plid=4)
    )
    assert (LogLevel.INFO, CLEARED) not in deliver(
        platform, guest, epow_entry(EpowAction.RESET, plid=5)
    )
    assert not guest.powered_off


def test_unknown_actions_count_as_outstanding_events() -> None:
    """Every action but RESET increments num_epow_events, an unknown one too."""
    platform, guest = guest_on_fake()
    deliver(platform, guest, epow_entry(9))
    assert (LogLevel.INFO, CLEARED) in deliver(
        platform, guest, epow_entry(EpowAction.RESET, plid=1)
    )


def test_two_shutdown_requests_power_off_once() -> None:
    """orderly_poweroff runs its work once: a second request while powering off adds no
    second power-off call."""
    platform, _guest = guest_on_fake()
    mark = len(platform.calls)
    platform.enqueue(epow_entry(EpowAction.SYSTEM_SHUTDOWN, 1))
    platform.enqueue(epow_entry(EpowAction.SYSTEM_HALT, 0, plid=1))
    platform.run(2 * S)
    offs = [c for c in platform.calls[mark:] if c.name == "power-off"]
    assert len(offs) == 1


@pytest.mark.parametrize(("sensor", "critical"), [(0, 0), (3, 0), (4, 1), (5, 1)])
def test_check_exception_is_critical_when_the_epow_sensor_reads_above_3(
    sensor: int, critical: int
) -> None:
    """ras_epow_interrupt: sensor 9 index 0 read first; ``critical`` (check-exception's
    4th argument) is 1 when its state is above 3 (Linux 6.1 ras.c)."""

    class EpowSensorPlatform(FakePlatform):
        """QEMU 7.2 has no sensor 9 (it answers -3); this platform reads ``sensor``."""

        def _get_sensor_state(self, call: RtasCall) -> None:
            if tuple(call.args) == (9, 0):
                call.set_ret(0, 0)
                call.set_ret(1, sensor)
            else:
                super()._get_sensor_state(call)

    guest = LinuxGuest(timing=QUIET)
    platform = EpowSensorPlatform(guest, build_tree(slots=2, boot_cores=1))
    platform.boot()
    platform.run(2 * S)
    mark = len(platform.calls)
    deliver(platform, guest, epow_entry(EpowAction.WARN_COOLING))
    checks = [c for c in platform.calls[mark:] if c.name == "check-exception"]
    assert checks, "the EPOW interrupt made no check-exception"
    vector, irq, mask, crit, _buf, length = checks[0].args
    assert (vector, irq, mask, crit, length) == (0x500, IRQ_EPOW, MASK_EPOW, critical, 2048)
