"""CPU node properties under compat modes and machine caps the recorded trees do not cover.

Baselines are QEMU 7.2's own output: ``ibm,pa-features`` of ``tests/data/dtb/
p8e_classic.dtb`` (POWER8E, ISA 2.07) and ``p9_classic.dtb`` (POWER9, ISA 3.00), both
dumped by qemu-system-ppc64 under TCG with default caps (cap-htm off, cap-vsx on,
cap-hpt-max-page-size 64K). The variations are QEMU 7.2's rules
(``hw/ppc/spapr.c: spapr_dt_pa_features, spapr_dt_cpu, spapr_fixup_cpu_smt_dt``;
protocol.md §7):

* the table is chosen by ``ppc_check_compat`` against the CPU's compat PVR: the
  newest of 2.06 ``{6, 0, f6 1f c7 00 80 c0}``, 2.07 and 3.00 the (compat) ISA
  level reaches;
* ``pa_features[3] |= 0x20`` when CI large pages are usable (64K pages survive the
  cap), as on every recorded tree (byte 3 reads 0x3f);
* with cap-htm on and a table longer than 24 bytes, ``pa_features[24] |= 0x80``;
* for a guest that told CAS it is pre-ISA 3.00, ``pa_features[40 + 2] &= ~0x80``
  (the radix bit) on a table longer than 40 bytes;
* ``ibm,vmx`` is 2 with cap-vsx on, else 1;
* ``cpu-version`` is rewritten with the CPU's compat PVR when it has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from fdt import Node, from_dtb
from spapr.cpu_models import CpuModel, by_cpu_type
from spapr.cpu_node import CpuNodeEnv, build_cpu_node

DTB = Path(__file__).parent / "data" / "dtb"
POWER7_COMPAT = 0x0F000003
POWER8_COMPAT = 0x0F000004
#: QEMU's pa_features_206 with the CI-large-page bit (0x20) of byte 3 set.
PA_FEATURES_206 = bytes([6, 0, 0xF6, 0x3F, 0xC7, 0x00, 0x80, 0xC0])


def model(cpu_type: str) -> CpuModel:
    found = by_cpu_type(cpu_type)
    assert found is not None
    return found


POWER7 = model("power7_v2.3")
POWER8E = model("power8e_v2.1")
POWER9 = model("power9_v2.0")


def recorded_pa_features(name: str) -> bytes:
    """ibm,pa-features of the first CPU node of a recorded QEMU 7.2 tree."""
    tree = from_dtb((DTB / name).read_bytes())
    cpus = tree.root.find("/cpus")
    assert cpus is not None
    return cpus.children[0]["ibm,pa-features"].value


P8E_PA = recorded_pa_features("p8e_classic.dtb")
P9_PA = recorded_pa_features("p9_classic.dtb")


def env(**kw: Any) -> CpuNodeEnv:
    """The default TCG machine of the recorded trees (caps as QEMU 7.2's defaults)."""
    return attrs.evolve(CpuNodeEnv(threads_per_core=1, cores_per_socket=4), **kw)


def node(cpu: CpuModel, e: CpuNodeEnv, compat_pvr: int | None = None) -> Node:
    return build_cpu_node(
        cpu,
        e,
        vcpu_id=1,
        cpu_index=1,
        node_id=0,
        drc_index=0x10000001,
        nr_threads=1,
        compat_pvr=compat_pvr,
    )


def with_byte(data: bytes, index: int, value: int) -> bytes:
    out = bytearray(data)
    out[index] = value
    return bytes(out)


def test_the_model_matches_the_recorded_tables() -> None:
    """Sanity for the baselines: with QEMU's default caps the model's nodes carry the
    recorded tables (the other tests vary one input from here)."""
    assert P8E_PA[:2] == bytes([24, 0]) and len(P8E_PA) == 26
    assert P9_PA[:2] == bytes([66, 0]) and len(P9_PA) == 68
    assert node(POWER8E, env())["ibm,pa-features"].value == P8E_PA
    assert node(POWER9, env())["ibm,pa-features"].value == P9_PA


def test_an_isa_206_cpu_gets_the_206_table() -> None:
    """POWER7 is ISA 2.06: the 8-byte 2.06 table, byte 3 with the CI-large-page bit."""
    assert node(POWER7, env())["ibm,pa-features"].value == PA_FEATURES_206


@pytest.mark.parametrize(
    ("compat", "expected"),
    [(POWER8_COMPAT, P8E_PA), (POWER7_COMPAT, PA_FEATURES_206)],
    ids=["power8", "power7"],
)
def test_a_compat_mode_selects_the_table_of_its_isa_level(compat: int, expected: bytes) -> None:
    """A POWER9 running in compat mode power8 (ISA 2.07) or power7 (ISA 2.06) shows that
    level's table, identical to what a real CPU of that level gets, and the compat PVR
    as cpu-version."""
    n = node(POWER9, env(compat_pvr=compat))
    assert n["ibm,pa-features"].value == expected
    assert n["cpu-version"].cells() == (compat,)


@pytest.mark.parametrize(
    ("cpu", "recorded"), [(POWER8E, P8E_PA), (POWER9, P9_PA)], ids=["power8e", "power9"]
)
def test_cap_htm_sets_the_transactional_memory_bit(cpu: CpuModel, recorded: bytes) -> None:
    """cap-htm on: byte 24 gains 0x80 (0x00 in both recorded tables); nothing else moves."""
    assert recorded[24] == 0x00
    value = node(cpu, env(cap_htm=True))["ibm,pa-features"].value
    assert value == with_byte(recorded, 24, 0x80)


def test_a_pre_isa3_guest_does_not_see_the_radix_bit() -> None:
    """A guest that did not claim ISA 3.00 at CAS: byte 42 (feature byte 40, radix MMU)
    loses 0x80 (0x80 in the recorded POWER9 table, so it reads 0x00); the rest is the
    recorded table."""
    assert P9_PA[42] == 0x80
    value = node(POWER9, env(pre_isa3_guest=True))["ibm,pa-features"].value
    assert value == with_byte(P9_PA, 42, 0x00)


def test_a_pre_isa3_guest_changes_nothing_in_a_short_table() -> None:
    """The 2.07 table has no byte 42: a pre-ISA 3.00 guest on POWER8E sees the recorded one."""
    assert node(POWER8E, env(pre_isa3_guest=True))["ibm,pa-features"].value == P8E_PA


@pytest.mark.parametrize(("vsx", "vmx"), [(True, 2), (False, 1)])
def test_ibm_vmx_follows_cap_vsx(vsx: bool, vmx: int) -> None:
    """ibm,vmx is 2 with cap-vsx on (the recorded POWER8E trees say 2), 1 with it off."""
    assert node(POWER8E, env(cap_vsx=vsx))["ibm,vmx"].cells() == (vmx,)


def test_the_cpus_own_compat_pvr_wins_over_the_machines() -> None:
    """build_cpu_node describes one CPU: its compat PVR (given explicitly) decides
    cpu-version and the pa-features level, whatever the machine-wide value is."""
    n = node(POWER9, env(), compat_pvr=POWER8_COMPAT)
    assert n["cpu-version"].cells() == (POWER8_COMPAT,)
    assert n["ibm,pa-features"].value == P8E_PA
    raw = node(POWER9, env(compat_pvr=POWER8_COMPAT), compat_pvr=0)
    assert raw["cpu-version"].cells() == (POWER9.pvr,)
    assert raw["ibm,pa-features"].value == P9_PA


def test_without_an_explicit_compat_the_machines_applies() -> None:
    """No compat PVR given for the CPU: the machine-wide one (CAS outcome) is used."""
    n = node(POWER9, env(compat_pvr=POWER8_COMPAT), compat_pvr=None)
    assert n["cpu-version"].cells() == (POWER8_COMPAT,)
    assert n["ibm,pa-features"].value == P8E_PA
