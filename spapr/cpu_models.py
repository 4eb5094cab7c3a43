"""The CPU model table: one entry per CPU model that has an sPAPR core type in QEMU 7.2.

Everything the device tree, QMP and HMP say about a model comes from here: the
PVR, the QOM type names (CPU thread and spapr core), the device-tree node name
prefix, cache geometry, SLB size, the hash-MMU page sizes, the pa-features table of
its ISA level, radix page encodings and decrementer width. Values are facts read
from QEMU's target/ppc sources; see protocol.md §1.6 and §6.2.
"""

from __future__ import annotations

import enum

import attrs

from spapr.cpu_names import CPU_ALIASES, KNOWN_CPU_TYPES

#: Suffixes QEMU appends to a CPU type name.
CPU_TYPE_SUFFIX = "-powerpc64-cpu"
CORE_TYPE_SUFFIX = "-spapr-cpu-core"
#: The abstract parent of every core type (device_add refuses it).
ABSTRACT_CORE_TYPE = "spapr-cpu-core"


class IsaLevel(enum.IntEnum):
    """Architecture level; selects the pa-features table and compat PVRs."""

    V2_03 = 203
    V2_06 = 206
    V2_07 = 207
    V3_00 = 300
    V3_10 = 310


@attrs.frozen
class PageEncoding:
    """One (actual page size, PTE encoding) pair inside a segment page size."""

    page_shift: int
    pte_enc: int


@attrs.frozen
class SegmentPageSize:
    """A hash-MMU base page size: its SLB encoding and the page sizes it can map."""

    page_shift: int
    slb_enc: int
    encodings: tuple[PageEncoding, ...]


def _sps(shift: int, slb_enc: int, *encs: tuple[int, int]) -> SegmentPageSize:
    return SegmentPageSize(shift, slb_enc, tuple(PageEncoding(s, e) for s, e in encs))


#: ppc_hash64_opts_basic (970, POWER5+): 4K and 16M, 64-entry SLB, 256M segments only.
_SPS_BASIC = (
    _sps(12, 0x000, (12, 0x0)),
    _sps(24, 0x100, (24, 0x0)),
)
#: ppc_hash64_opts_POWER7 (POWER7 to POWER10): 4K, 64K, 16M, 16G.
_SPS_POWER7 = (
    _sps(12, 0x000, (12, 0x0), (16, 0x7), (24, 0x38)),
    _sps(16, 0x110, (16, 0x1), (24, 0x8)),
    _sps(24, 0x100, (24, 0x0)),
    _sps(34, 0x120, (34, 0x3)),
)

#: ibm,pa-features base tables by ISA level (before per-machine tweaks).
PA_FEATURES: dict[IsaLevel, bytes] = {
    IsaLevel.V2_06: bytes([6, 0, 0xF6, 0x1F, 0xC7, 0x00, 0x80, 0xC0]),
    IsaLevel.V2_07: bytes(
        [24, 0]
        + [0xF6, 0x1F, 0xC7, 0xC0, 0x80, 0xF0]
        + [0x80, 0x00, 0x00, 0x00, 0x00, 0x00]
        + [0x00, 0x00, 0x00, 0x00, 0x80, 0x00]
        + [0x80, 0x00, 0x80, 0x00, 0x00, 0x00]
    ),
    IsaLevel.V3_00: bytes(
        [66, 0]
        + [0xF6, 0x1F, 0xC7, 0xC0, 0x80, 0xF0]  # 0-5
        + [0x80, 0x00, 0x00, 0x00, 0x00, 0x00]  # 6-11
        + [0x00, 0x00, 0x00, 0x00, 0x80, 0x00]  # 12-17
        + [0x80, 0x00, 0x80, 0x00, 0x00, 0x00]  # 18-23
        + [0x80, 0x00, 0x80, 0x00, 0x80, 0x00]  # 24-29
        + [0x80, 0x00, 0x80, 0x00, 0xC0, 0x00]  # 30-35
        + [0x80, 0x00, 0x80, 0x00, 0x80, 0x00]  # 36-41
        + [0x80, 0x00, 0x80, 0x00, 0x80, 0x00]  # 42-47
        + [0x80, 0x00, 0x80, 0x00, 0x80, 0x00]  # 48-53
        + [0x80, 0x00, 0x80, 0x00, 0x80, 0x00]  # 54-59
        + [0x80, 0x00, 0x80, 0x00, 0x00, 0x00]  # 60-65
    ),
}

#: Radix page-size encodings of ISA 3.00 CPUs (ibm,processor-radix-AP-encodings).
RADIX_AP_ENCODINGS = (0x0000000C, 0xA0000010, 0x20000015, 0x4000001E)


@attrs.frozen
class CpuModel:
    """A CPU model with an sPAPR core type, and its per-model device-tree values."""

    cpu_type: str  # QOM CPU type without suffix, e.g. "power9_v2.0"
    description: str  # e.g. "POWER9 v2.0"
    pvr: int
    family: str  # POWER7, POWER8, POWER9, POWER10, 970, POWER5P
    fw_name: str  # device-tree node name prefix, e.g. "PowerPC,POWER9"
    isa: IsaLevel
    dcache_size: int
    icache_size: int
    slb_size: int
    has_1t_segments: bool
    has_purr: bool
    has_altivec: bool
    has_vsx: bool
    has_dfp: bool
    has_htm: bool
    dec_bits: int  # large-decrementer width (used when cap-large-decr is on)
    segment_page_sizes: tuple[SegmentPageSize, ...]
    radix_ap_encodings: tuple[int, ...] = ()
    max_compat: str | None = None  # highest compat mode the model supports
    host_threads: int = 8  # threads per core of such a host (KVM VSMT)
    cache_line_size: int = 128

    @property
    def thread_type(self) -> str:
        """QOM type of each vCPU thread, e.g. ``power9_v2.0-powerpc64-cpu``."""
        return self.cpu_type + CPU_TYPE_SUFFIX

    @property
    def core_type(self) -> str:
        """QOM type of the hotplug unit, e.g. ``power9_v2.0-spapr-cpu-core``."""
        return self.cpu_type + CORE_TYPE_SUFFIX

    @property
    def legacy_core_type(self) -> str:
        """The QEMU 2.7-2.9 spelling of the core type, e.g. ``POWER8E-spapr-cpu-core``."""
        return self.description.split(" ")[0] + CORE_TYPE_SUFFIX

    @property
    def has_radix(self) -> bool:
        return bool(self.radix_ap_encodings)


def _model(
    cpu_type: str,
    description: str,
    pvr: int,
    family: str,
    fw_name: str,
    isa: IsaLevel,
    **kw: object,
) -> CpuModel:
    server = isa >= IsaLevel.V2_06
    defaults: dict[str, object] = {
        "dcache_size": 0x8000,
        "icache_size": 0x8000 if server else 0x10000,
        "slb_size": 32 if server else 64,
        "has_1t_segments": server,
        "has_purr": server,
        "has_altivec": family != "POWER5P",
        "has_vsx": server,
        "has_dfp": server,
        "has_htm": isa >= IsaLevel.V2_07,
        "dec_bits": 56 if isa >= IsaLevel.V3_00 else 32,
        "segment_page_sizes": _SPS_POWER7 if server else _SPS_BASIC,
        "radix_ap_encodings": RADIX_AP_ENCODINGS if isa >= IsaLevel.V3_00 else (),
    }
    defaults.update(kw)
    return CpuModel(cpu_type, description, pvr, family, fw_name, isa, **defaults)  # type: ignore[arg-type]


#: The CPU models QEMU 7.2 registers an sPAPR core type for (spapr_cores[]).
CPU_MODELS: tuple[CpuModel, ...] = (
    _model("970_v2.2", "970 v2.2", 0x00390202, "970", "PowerPC,UNKNOWN", IsaLevel.V2_03),
    _model("970mp_v1.0", "970MP v1.0", 0x00440100, "970", "PowerPC,UNKNOWN", IsaLevel.V2_03),
    _model("970mp_v1.1", "970MP v1.1", 0x00440101, "970", "PowerPC,UNKNOWN", IsaLevel.V2_03),
    _model(
        "power5+_v2.1",
        "POWER5+ v2.1",
        0x003B0201,
        "POWER5P",
        "PowerPC,POWER5",
        IsaLevel.V2_03,
        max_compat="power6",
    ),
    _model(
        "power7_v2.3",
        "POWER7 v2.3",
        0x003F0203,
        "POWER7",
        "PowerPC,POWER7",
        IsaLevel.V2_06,
        max_compat="power7",
        host_threads=4,
    ),
    _model(
        "power7+_v2.1",
        "POWER7+ v2.1",
        0x004A0201,
        "POWER7",
        "PowerPC,POWER7",
        IsaLevel.V2_06,
        max_compat="power7",
        host_threads=4,
    ),
    _model(
        "power8_v2.0",
        "POWER8 v2.0",
        0x004D0200,
        "POWER8",
        "PowerPC,POWER8",
        IsaLevel.V2_07,
        max_compat="power8",
    ),
    _model(
        "power8e_v2.1",
        "POWER8E v2.1",
        0x004B0201,
        "POWER8",
        "PowerPC,POWER8",
        IsaLevel.V2_07,
        max_compat="power8",
    ),
    _model(
        "power8nvl_v1.0",
        "POWER8NVL v1.0",
        0x004C0100,
        "POWER8",
        "PowerPC,POWER8",
        IsaLevel.V2_07,
        max_compat="power8",
    ),
    _model(
        "power9_v1.0",
        "POWER9 v1.0",
        0x004E0100,
        "POWER9",
        "PowerPC,POWER9",
        IsaLevel.V3_00,
        max_compat="power9",
        host_threads=4,
    ),
    _model(
        "power9_v2.0",
        "POWER9 v2.0",
        0x004E1200,
        "POWER9",
        "PowerPC,POWER9",
        IsaLevel.V3_00,
        max_compat="power9",
        host_threads=4,
    ),
    _model(
        "power10_v1.0",
        "POWER10 v1.0",
        0x00800100,
        "POWER10",
        "PowerPC,POWER10",
        IsaLevel.V3_10,
        max_compat="power10",
    ),
    _model(
        "power10_v2.0",
        "POWER10 v2.0",
        0x00800200,
        "POWER10",
        "PowerPC,POWER10",
        IsaLevel.V3_10,
        max_compat="power10",
    ),
)

_BY_CPU_TYPE: dict[str, CpuModel] = {m.cpu_type: m for m in CPU_MODELS}
_BY_CORE_TYPE: dict[str, CpuModel] = {m.core_type: m for m in CPU_MODELS}
_BY_LEGACY_CORE_TYPE: dict[str, CpuModel] = {}
for _m in CPU_MODELS:
    # The first (newest-described) model of a legacy name wins, as the family alias does.
    _alias_target = CPU_ALIASES.get(_m.description.split(" ")[0].lower())
    if _alias_target == _m.cpu_type:
        _BY_LEGACY_CORE_TYPE[_m.legacy_core_type] = _m


@attrs.frozen
class CompatMode:
    """A ``max-cpu-compat`` level: its logical PVR, ISA level and thread limit."""

    name: str
    logical_pvr: int
    isa: IsaLevel
    max_vthreads: int


#: QEMU's compat table, oldest first (target/ppc/compat.c).
COMPAT_MODES: tuple[CompatMode, ...] = (
    CompatMode("power6", 0x0F000002, IsaLevel.V2_03, 2),
    CompatMode("power7", 0x0F000003, IsaLevel.V2_06, 4),
    CompatMode("power7+", 0x0F100003, IsaLevel.V2_06, 4),
    CompatMode("power8", 0x0F000004, IsaLevel.V2_07, 8),
    CompatMode("power9", 0x0F000005, IsaLevel.V3_00, 8),
    CompatMode("power10", 0x0F000006, IsaLevel.V3_10, 8),
)
_COMPAT_BY_NAME = {c.name: c for c in COMPAT_MODES}
_COMPAT_BY_PVR = {c.logical_pvr: c for c in COMPAT_MODES}


def compat_mode(name: str) -> CompatMode | None:
    """The compat mode called ``name`` (``power8``, ...), or None."""
    return _COMPAT_BY_NAME.get(name)


def compat_by_pvr(pvr: int) -> CompatMode | None:
    """The compat mode whose logical PVR is ``pvr``, or None."""
    return _COMPAT_BY_PVR.get(pvr)


def cpu_supports_compat(
    model: CpuModel, compat: CompatMode, max_compat: CompatMode | None = None
) -> bool:
    """QEMU's ``ppc_type_check_compat(cpu, compat, 0, max_compat)``.

    A CPU supports the compat levels of its ISA and older, POWER7 and newer only
    (970 and POWER5+ have no compat support); ``max_compat`` caps the level.
    """
    if max_compat is not None and COMPAT_MODES.index(compat) > COMPAT_MODES.index(max_compat):
        return False
    return model.isa >= IsaLevel.V2_06 and compat.isa <= model.isa


def by_cpu_type(cpu_type: str) -> CpuModel | None:
    """The model whose CPU type is ``cpu_type`` (exact, e.g. ``power9_v2.0``)."""
    return _BY_CPU_TYPE.get(cpu_type)


def by_core_type(core_type: str, *, legacy_names: bool = False) -> CpuModel | None:
    """The model of a spapr core QOM type name (case-sensitive, as device_add is).

    With ``legacy_names`` the QEMU 2.7-era spelling (``POWER8E-spapr-cpu-core``) is
    accepted as an alias of the versioned type.
    """
    model = _BY_CORE_TYPE.get(core_type)
    if model is None and legacy_names:
        model = _BY_LEGACY_CORE_TYPE.get(core_type)
    return model


def is_cpu_core_type_name(name: str) -> bool:
    """Whether ``name`` is the abstract or a concrete spapr core QOM type."""
    return name == ABSTRACT_CORE_TYPE or name in _BY_CORE_TYPE


def resolve_cpu_name(name: str) -> str | None:
    """Resolve a ``-cpu`` name the way QEMU does; return the CPU type or None.

    Matching is case-insensitive; aliases (``power9``) map to versioned types. The
    result may be a model without a spapr core (``7400_v2.9``); callers check that.
    """
    lowered = name.lower()
    cpu_type = CPU_ALIASES.get(lowered, lowered)
    return cpu_type if cpu_type in KNOWN_CPU_TYPES else None
