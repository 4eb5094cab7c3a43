"""cas_check_pvr: the guest's PVR list against the CPU and max-cpu-compat (QEMU's rules)."""

from __future__ import annotations

from rtas import GuestMemory
from spapr.cas import cas_check_pvr
from spapr.cpu_models import by_cpu_type, compat_mode

P9 = by_cpu_type("power9_v2.0")
P8E = by_cpu_type("power8e_v2.1")
POWER7 = by_cpu_type("power7_v2.3")
P970 = by_cpu_type("970_v2.2")
LOGICAL = {"power7": 0x0F000003, "power8": 0x0F000004, "power9": 0x0F000005}


def pvr_list(records: list[tuple[int, int]]) -> tuple[GuestMemory, int]:
    memory = GuestMemory(0x10000)
    addr = 0x1000
    for mask, pvr in records + [(0, 0xFFFFFFFF)]:
        memory.st32(addr, mask)
        memory.st32(addr + 4, pvr)
        addr += 8
    return memory, addr


def linux_like_list() -> list[tuple[int, int]]:
    """Raw family masks first, then the logical PVRs, as prom_init lists them."""
    return [
        (0xFFFF0000, 0x004E0000),
        (0xFFFF0000, 0x004B0000),
        (0xFFFFFFFF, LOGICAL["power9"]),
        (0xFFFFFFFF, LOGICAL["power8"]),
        (0xFFFFFFFF, LOGICAL["power7"]),
    ]


def test_best_logical_pvr_and_raw_match() -> None:
    assert P9 is not None and P8E is not None
    memory, end = pvr_list(linux_like_list())
    choice = cas_check_pvr(memory, 0x1000, P9, None)
    assert (choice.best_compat_pvr, choice.explicit_match, choice.table_addr) == (
        LOGICAL["power9"],
        True,
        end,
    )
    # POWER8E cannot run POWER9 compat: power8 is the best it supports
    assert cas_check_pvr(memory, 0x1000, P8E, None).best_compat_pvr == LOGICAL["power8"]


def test_max_cpu_compat_caps_the_choice() -> None:
    assert P9 is not None
    memory, _ = pvr_list(linux_like_list())
    choice = cas_check_pvr(memory, 0x1000, P9, compat_mode("power8"))
    assert choice.best_compat_pvr == LOGICAL["power8"]


def test_no_compat_and_no_raw_pvr_is_not_negotiable() -> None:
    assert POWER7 is not None and P970 is not None
    memory, _ = pvr_list([(0xFFFFFFFF, LOGICAL["power9"])])
    choice = cas_check_pvr(memory, 0x1000, POWER7, None)
    assert (choice.best_compat_pvr, choice.explicit_match, choice.negotiable) == (0, False, False)
    # 970 has no compat modes at all; only its raw PVR can match
    memory, _ = pvr_list([(0xFFFF0000, 0x00390000), (0xFFFFFFFF, LOGICAL["power7"])])
    choice = cas_check_pvr(memory, 0x1000, P970, None)
    assert (choice.best_compat_pvr, choice.explicit_match) == (0, True)
