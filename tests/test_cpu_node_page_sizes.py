"""The CPU node's page-size properties under cap-hpt-max-page-size.

QEMU 7.2 ``hw/ppc/spapr.c: spapr_dt_pa_features``: byte 3 of ``ibm,pa-features``
(counting its 2-byte header) carries 0x20, "CI large pages", only when the machine's
cap-hpt-max-page-size is 64 KiB or more; ``spapr_caps.c`` keeps in
``ibm,segment-page-sizes`` only the page sizes up to the cap (and 16M). Recorded:
the default POWER9 machine's ``ibm,pa-features`` starts ``0x4200f63f``
(``/work/shared/oracle/dtb/p9_classic.dts``), 0x3f at byte 3.
"""

from __future__ import annotations

import io

import pytest

from machine.board.build import build_machine

ARGV = "-cpu POWER9 -smp 1 -m 1G -nodefaults -seed 1 -guest none".split()


def pa_features(cap: str | None) -> bytes:
    machine_opt = "pseries" + (f",cap-hpt-max-page-size={cap}" if cap else "")
    machine = build_machine(["-M", machine_opt, *ARGV], io.StringIO())
    node = machine.device_tree().root.find("/cpus/PowerPC,POWER9@0")
    assert node is not None
    return node["ibm,pa-features"].value


def test_the_default_machine_has_the_recorded_first_word() -> None:
    assert pa_features(None)[:4] == bytes.fromhex("4200f63f")


@pytest.mark.parametrize(("cap", "ci_large"), [("4k", False), ("64k", True), ("16M", True)])
def test_ci_large_pages_need_a_64k_cap(cap: str, ci_large: bool) -> None:
    value = pa_features(cap)
    assert bool(value[3] & 0x20) is ci_large
    assert value[3] & ~0x20 & 0xFF == 0x1F  # the other bits do not move
