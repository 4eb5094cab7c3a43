"""sPAPR capabilities (``-machine cap-*``): levels, per-version defaults, checks.

A cap has a level (a small integer): off/on for booleans, an index into its value
names for the tri-states (``broken``/``workaround``/``fixed``...), or a page shift for
``hpt-max-page-size``. The machine version gives defaults, lowered for CPUs that
cannot have the feature (``default_caps_with_cpu``); user values win. At every
machine reset QEMU "applies" each cap in table order: under TCG this prints the
``TCG doesn't support requested feature`` warnings or refuses impossible ones
(``No Transactional Memory support in TCG``); under the modeled KVM it compares with
what the modeled host offers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from machine.config.machine_types import MachineType
from machine.config.qemu_opts import (
    QemuWarning,
    SizeError,
    ctz64,
    invalid_value,
    is_power_of_2,
    parse_bool,
    parse_size,
)
from spapr.cpu_models import (
    CompatMode,
    CpuModel,
    IsaLevel,
    compat_mode,
    cpu_supports_compat,
)
from spapr.errors import QemuError


class CapKind(enum.Enum):
    """How a cap's value is written on the command line."""

    BOOL = "bool"
    STRING = "string"
    PAGESIZE = "int"


@attrs.frozen
class CapInfo:
    """One entry of QEMU's capability table."""

    name: str
    kind: CapKind
    description: str
    values: tuple[str, ...] = ()
    help: str = ""

    @property
    def property_name(self) -> str:
        """The machine property, e.g. ``cap-htm``."""
        return f"cap-{self.name}"

    def value_name(self, level: int) -> str:
        """The text of a level (``workaround``, ``on``, ``64K``-style shifts as bytes)."""
        if self.kind is CapKind.STRING:
            return self.values[level]
        if self.kind is CapKind.BOOL:
            return "on" if level else "off"
        return str(1 << level)


_TRISTATE_HELP = (
    "broken - no protection, workaround - workaround available, fixed - fixed in hardware"
)

#: QEMU's capability table, in table (= apply) order.
CAPS: tuple[CapInfo, ...] = (
    CapInfo("htm", CapKind.BOOL, "Allow Hardware Transactional Memory (HTM)"),
    CapInfo("vsx", CapKind.BOOL, "Allow Vector Scalar Extensions (VSX)"),
    CapInfo("dfp", CapKind.BOOL, "Allow Decimal Floating Point (DFP)"),
    CapInfo(
        "cfpc",
        CapKind.STRING,
        "Cache Flush on Privilege Change (broken, workaround, fixed)",
        ("broken", "workaround", "fixed"),
        _TRISTATE_HELP,
    ),
    CapInfo(
        "sbbc",
        CapKind.STRING,
        "Speculation Barrier Bounds Checking (broken, workaround, fixed)",
        ("broken", "workaround", "fixed"),
        _TRISTATE_HELP,
    ),
    CapInfo(
        "ibs",
        CapKind.STRING,
        "Indirect Branch Speculation (broken, workaround, fixed-ibs,fixed-ccd, fixed-na)",
        ("broken", "workaround", "fixed-ibs", "fixed-ccd", "fixed-na"),
        "broken - no protection, workaround - count cache flush, fixed-ibs - indirect branch"
        " serialisation, fixed-ccd - cache count disabled, fixed-na - fixed in hardware"
        " (no longer applicable)",
    ),
    CapInfo("hpt-max-page-size", CapKind.PAGESIZE, "Maximum page size for Hash Page Table guests"),
    CapInfo("nested-hv", CapKind.BOOL, "Allow Nested KVM-HV"),
    CapInfo("large-decr", CapKind.BOOL, "Allow Large Decrementer"),
    CapInfo("ccf-assist", CapKind.BOOL, "Count Cache Flush Assist via HW Instruction"),
    CapInfo("fwnmi", CapKind.BOOL, "Implements PAPR FWNMI option"),
    CapInfo("rpt-invalidate", CapKind.BOOL, "Allow H_RPT_INVALIDATE"),
)
CAPS_BY_NAME: Mapping[str, CapInfo] = MappingProxyType({c.name: c for c in CAPS})
CAPS_BY_PROPERTY: Mapping[str, CapInfo] = MappingProxyType({c.property_name: c for c in CAPS})

#: Tri-state levels used by name.
BROKEN, WORKAROUND = 0, 1
FIXED_CCD = 3
#: hpt-max-page-size of pseries <= 2.12 when the host needs no contiguous pages: 16 GiB.
HPT_MAXPAGESIZE_ALL = 34
#: Page size of the modeled KVM host's RAM (64 KiB, as ppc64le distributions use).
KVM_HOST_PAGE_SHIFT = 16


def parse_cap_value(cap: CapInfo, text: str) -> int:
    """The level a ``cap-NAME=text`` machine option sets, or QemuError with QEMU's text."""
    if cap.kind is CapKind.BOOL:
        flag = parse_bool(text)
        if flag is None:
            raise QemuError(invalid_value(cap.property_name, "'on' or 'off'"))
        return int(flag)
    if cap.kind is CapKind.STRING:
        if text == "?":
            raise QemuError(cap.help)
        for level, name in enumerate(cap.values):
            if text.lower() == name:
                return level
        raise QemuError(f'Invalid capability mode "{text}" for {cap.property_name}')
    try:
        size = parse_size(text)
    except SizeError:
        raise QemuError(invalid_value(cap.property_name, "size")) from None
    if not is_power_of_2(size):
        raise QemuError(f"{cap.property_name} must be a power of 2")
    return ctz64(size)


def _compat(name: str) -> CompatMode:
    mode = compat_mode(name)
    assert mode is not None
    return mode


def default_caps_with_cpu(
    machine: MachineType, model: CpuModel, max_compat: CompatMode | None, *, kvm: bool = False
) -> dict[str, int]:
    """The machine version's default levels, lowered for what ``model`` cannot do."""
    caps = dict(machine.default_caps)
    if not cpu_supports_compat(model, _compat("power9"), max_compat):
        caps["large-decr"] = 0
    if not cpu_supports_compat(model, _compat("power8"), max_compat):
        caps["htm"] = 0
        caps["cfpc"] = BROKEN
    if not cpu_supports_compat(model, _compat("power7+"), max_compat):
        caps["sbbc"] = BROKEN
    if not cpu_supports_compat(model, _compat("power7"), max_compat):
        caps["vsx"] = 0
        caps["dfp"] = 0
        caps["ibs"] = BROKEN
    if caps["hpt-max-page-size"] == 0:
        # KVM-HV backs guest pages with host pages (64 KiB); TCG allows everything.
        caps["hpt-max-page-size"] = KVM_HOST_PAGE_SHIFT if kvm else HPT_MAXPAGESIZE_ALL
    return caps


@attrs.frozen
class KvmHostCaps:
    """What the modeled KVM host offers each cap (``kvmppc_get_cap_*``)."""

    htm: bool
    safe_cache: int
    safe_bounds_check: int
    safe_indirect_branch: int
    count_cache_flush_assist: int
    large_decr_bits: int
    nested_kvm_hv: bool
    fwnmi: bool
    rpt_invalidate: bool
    mmu_radix: bool

    @classmethod
    def for_host(cls, host: CpuModel) -> KvmHostCaps:
        """The modeled host caps of a host CPU model (documented choices, see module)."""
        isa300 = host.isa >= IsaLevel.V3_00
        return cls(
            htm=host.has_htm,
            safe_cache=WORKAROUND,
            safe_bounds_check=WORKAROUND,
            safe_indirect_branch=FIXED_CCD if isa300 else WORKAROUND,
            count_cache_flush_assist=1 if isa300 else 0,
            large_decr_bits=host.dec_bits if isa300 else 0,
            nested_kvm_hv=isa300,
            fwnmi=True,
            rpt_invalidate=False,
            mmu_radix=isa300,
        )


@attrs.frozen
class SpaprCaps:
    """Effective and default cap levels of a machine, and which the user set."""

    effective: Mapping[str, int]
    defaults: Mapping[str, int]
    cmdline: frozenset[str]

    def level(self, name: str) -> int:
        """The effective level of cap ``name`` (``htm``, ``cfpc``, ...)."""
        return self.effective[name]

    def is_on(self, name: str) -> bool:
        """Whether a boolean cap is on."""
        return bool(self.effective[name])

    @property
    def hpt_max_page_shift(self) -> int:
        """log2 of the largest hash-MMU page the guest may use (page-size filtering)."""
        return self.effective["hpt-max-page-size"]

    def value_name(self, name: str) -> str:
        """The effective value as the user would write it."""
        return CAPS_BY_NAME[name].value_name(self.effective[name])


def init_caps(
    machine: MachineType,
    model: CpuModel,
    max_compat: CompatMode | None,
    user: Mapping[str, int],
    *,
    kvm: bool = False,
) -> SpaprCaps:
    """``spapr_caps_init``: defaults for the CPU, user levels on top."""
    defaults = default_caps_with_cpu(machine, model, max_compat, kvm=kvm)
    effective = {cap.name: user.get(cap.name, defaults[cap.name]) for cap in CAPS}
    return SpaprCaps(MappingProxyType(effective), MappingProxyType(defaults), frozenset(user))


def apply_caps(
    caps: SpaprCaps,
    model: CpuModel,
    max_compat: CompatMode | None,
    *,
    kvm_host: KvmHostCaps | None,
    warnings: list[QemuWarning],
) -> None:
    """``spapr_caps_apply`` (every machine reset): warnings to ``warnings``, or QemuError.

    ``kvm_host`` None means TCG. Messages and hints are QEMU's, in table order.
    """
    tcg = kvm_host is None
    for cap in CAPS:
        val = caps.level(cap.name)
        hint_off = f"Try appending -machine {cap.property_name}=off"
        name = cap.name
        if name == "htm" and val:
            if tcg:
                raise QemuError(f"No Transactional Memory support in TCG\n{hint_off}")
            assert kvm_host is not None
            if not kvm_host.htm:
                raise QemuError(
                    f"KVM implementation does not support Transactional Memory\n{hint_off}"
                )
        elif name == "vsx" and val and not model.has_vsx:
            raise QemuError(f"VSX support not available\n{hint_off}")
        elif name == "dfp" and val and not model.has_dfp:
            raise QemuError(f"DFP support not available\n{hint_off}")
        elif name in ("cfpc", "sbbc", "ibs"):
            _apply_tristate(cap, val, kvm_host, warnings)
        elif name == "hpt-max-page-size":
            if val < 12:
                raise QemuError("Require at least 4kiB hpt-max-page-size")
            if val < 16:
                warnings.append(QemuWarning("Many guests require at least 64kiB hpt-max-page-size"))
            if kvm_host is not None and val > KVM_HOST_PAGE_SHIFT:
                raise QemuError(
                    f"Can't support {(1 << val) >> 10} kiB guest pages with "
                    f"{(1 << KVM_HOST_PAGE_SHIFT) >> 10} kiB host pages with this KVM"
                    " implementation"
                )
        elif name == "nested-hv" and val:
            if model.isa < IsaLevel.V3_00:
                raise QemuError(f"Nested-HV only supported on POWER9 and later\n{hint_off}")
            if kvm_host is not None:
                if not cpu_supports_compat(model, _compat("power9"), max_compat):
                    raise QemuError(
                        "Nested-HV only supported on POWER9 and later\n"
                        "Try appending -machine max-cpu-compat=power9"
                    )
                if not kvm_host.nested_kvm_hv:
                    raise QemuError(f"KVM implementation does not support Nested-HV\n{hint_off}")
        elif name == "large-decr" and val:
            if tcg:
                if not cpu_supports_compat(model, _compat("power9"), max_compat):
                    raise QemuError("Large decrementer only supported on POWER9\nTry -cpu POWER9")
            else:
                assert kvm_host is not None
                bits = kvm_host.large_decr_bits
                if not bits:
                    raise QemuError(f"No large decrementer support\n{hint_off}")
                if bits != model.dec_bits:
                    raise QemuError(
                        f"KVM large decrementer size ({bits}) differs to model "
                        f"({model.dec_bits})\n{hint_off}"
                    )
        elif name == "ccf-assist" and val:
            if tcg:
                warnings.append(
                    QemuWarning("TCG doesn't support requested feature, cap-ccf-assist=on")
                )
            else:
                assert kvm_host is not None
                if val > kvm_host.count_cache_flush_assist and (
                    kvm_host.safe_indirect_branch != FIXED_CCD
                ):
                    raise QemuError(
                        "Requested count cache flush assist capability level not supported"
                        f" by KVM\n{hint_off}"
                    )
        elif name == "fwnmi" and val and kvm_host is not None and not kvm_host.fwnmi:
            raise QemuError(
                "Firmware Assisted Non-Maskable Interrupts(FWNMI) not supported by KVM.\n"
                + hint_off
            )
        elif name == "rpt-invalidate" and val:
            if tcg:
                raise QemuError(f"No H_RPT_INVALIDATE support in TCG\n{hint_off}")
            assert kvm_host is not None
            if not kvm_host.mmu_radix:
                raise QemuError("H_RPT_INVALIDATE only supported on Radix")
            if not kvm_host.rpt_invalidate:
                raise QemuError(f"KVM implementation does not support H_RPT_INVALIDATE\n{hint_off}")


_KVM_TRISTATE_TEXT = {
    "cfpc": "safe cache",
    "sbbc": "safe bounds check",
    "ibs": "safe indirect branch",
}


def _apply_tristate(
    cap: CapInfo, val: int, kvm_host: KvmHostCaps | None, warnings: list[QemuWarning]
) -> None:
    if kvm_host is None:
        if val:
            warnings.append(
                QemuWarning(
                    f"TCG doesn't support requested feature, {cap.property_name}={cap.values[val]}"
                )
            )
        return
    host = {
        "cfpc": kvm_host.safe_cache,
        "sbbc": kvm_host.safe_bounds_check,
        "ibs": kvm_host.safe_indirect_branch,
    }[cap.name]
    if val > host:
        raise QemuError(
            f"Requested {_KVM_TRISTATE_TEXT[cap.name]} capability level not supported by KVM\n"
            f"Try appending -machine {cap.property_name}={cap.values[host]}"
        )
