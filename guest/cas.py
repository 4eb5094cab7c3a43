"""ibm,client-architecture-support as Linux 6.1's prom_init builds it, and what it gets back.

The guest hands the platform one table in memory: 14 (mask, PVR) pairs -- the last
one, {0xfffffffe, 0x0f000001}, is also the terminator because ``~mask & pvr`` is
non-zero -- then the number of option vectors minus one, then each vector as a
length-minus-one byte followed by its bytes. Vector 5 carries the PAPR options;
the hotplug-event bit OV5_HP_EVT (byte 6, mask 0x04) is what routes hotplug events
to the hot-plug-events interrupt. After CAS the platform publishes the negotiated
vector 5 as ``/chosen/ibm,architecture-vec-5`` (length byte first, so byte ``n`` of
the vector is at index ``n``), which Linux reads feature by feature.

Feature names are Linux's encoding ``(byte << 8) | mask``.
"""

from __future__ import annotations

import struct

import attrs

import fdt

# Option vector 1: architecture levels.
OV1_PPC_2_00_TO_2_07 = 0xFF
OV1_PPC_3_00 = 0x80
OV1_PPC_3_1 = 0x40
# Option vector 2: firmware in real mode.
OV2_REAL_MODE = 0x20
# Option vector 3: FP, VMX, DFP.
OV3_FP = 0x80
OV3_VMX = 0x40
OV3_DFP = 0x20
# Option vector 4: minimum entitled capacity.
OV4_MIN_ENT_CAP = 0x01
# Option vector 6: Linux is the OS.
OV6_LINUX = 0x02

# Option vector 5 features, Linux's (byte << 8) | mask encoding.
OV5_LPAR = 0x0280
OV5_SPLPAR = 0x0240
OV5_DRCONF_MEMORY = 0x0220
OV5_LARGE_PAGES = 0x0210
OV5_DONATE_DEDICATE_CPU = 0x0202
OV5_MSI = 0x0201
OV5_CMO = 0x0480
OV5_XCMO = 0x0440
OV5_FORM1_AFFINITY = 0x0580
OV5_PRRN = 0x0540
OV5_FORM2_AFFINITY = 0x0520
OV5_HP_EVT = 0x0604
OV5_RESIZE_HPT = 0x0601
OV5_PFO_HW_RNG = 0x1180
OV5_PFO_HW_842 = 0x1140
OV5_PFO_HW_ENCR = 0x1120
OV5_SUB_PROCESSORS = 0x1501
OV5_DRMEM_V2 = 0x1680
OV5_DRC_INFO = 0x1640
OV5_XIVE_SUPPORT = 0x17C0
OV5_XIVE_LEGACY = 0x1700
OV5_XIVE_EXPLOIT = 0x1740
OV5_XIVE_EITHER = 0x1780
OV5_MMU_SUPPORT = 0x18C0
OV5_MMU_HASH = 0x1800
OV5_MMU_RADIX = 0x1840
OV5_MMU_EITHER = 0x1880
OV5_MMU_DYNAMIC = 0x18C0
OV5_RADIX_GTSE = 0x1A40

#: Linux 6.1's PVR list: (mask, value), the last pair doubling as the terminator.
CAS_PVRS: tuple[tuple[int, int], ...] = (
    (0xFFFE0000, 0x003A0000),  # POWER5/POWER5+
    (0xFFFF0000, 0x003E0000),  # POWER6
    (0xFFFF0000, 0x003F0000),  # POWER7
    (0xFFFF0000, 0x004B0000),  # POWER8E
    (0xFFFF0000, 0x004C0000),  # POWER8NVL
    (0xFFFF0000, 0x004D0000),  # POWER8
    (0xFFFF0000, 0x004E0000),  # POWER9
    (0xFFFF0000, 0x00800000),  # POWER10
    (0xFFFFFFFF, 0x0F000006),  # ISA 3.1
    (0xFFFFFFFF, 0x0F000005),  # ISA 3.00
    (0xFFFFFFFF, 0x0F000004),  # ISA 2.07
    (0xFFFFFFFF, 0x0F000003),  # ISA 2.06
    (0xFFFFFFFF, 0x0F000002),  # ISA 2.05
    (0xFFFFFFFE, 0x0F000001),  # ISA 2.04 and earlier
)

#: Linux's NR_CPUS for pseries (ppc64 defconfig).
NR_CPUS_DEFAULT = 2048
#: Length of option vector 5 in Linux 6.1 (bytes 1..26).
OV5_LENGTH = 26
#: Length of option vector 7 (the OS id string).
OV7_LENGTH = 256
#: Size of the CAS response header before the new blob (a BE u32 version).
CAS_RESPONSE_HEADER_SIZE = 4

_LINUX_BANNER = "Linux version 6.1.0 (reference guest model)"


def ov5_byte(feature: int) -> int:
    """Byte number (from 1) of a vector 5 feature."""
    return feature >> 8


def ov5_mask(feature: int) -> int:
    """Bit mask of a vector 5 feature inside its byte."""
    return feature & 0xFF


@attrs.frozen
class PlatformSupport:
    """What ``/chosen/ibm,arch-vec-5-platform-support`` says the platform can do."""

    radix_mmu: bool = False
    hash_mmu: bool = False
    radix_gtse: bool = False
    xive: bool = False

    @classmethod
    def from_chosen(cls, chosen: fdt.Node | None, *, xive_disabled: bool = True) -> PlatformSupport:
        """Parse the (index, value) byte pairs as prom_check_platform_support does."""
        prop = chosen.get("ibm,arch-vec-5-platform-support") if chosen is not None else None
        if prop is None or len(prop.value) <= 1:
            return cls()
        radix = hash_ = gtse = xive = False
        data = prop.value[:8]
        for i in range(0, len(data) - 1, 2):
            index, value = data[i], data[i + 1]
            if index == ov5_byte(OV5_MMU_SUPPORT):
                mmu = value & ov5_mask(OV5_MMU_SUPPORT)
                if mmu in (ov5_mask(OV5_MMU_DYNAMIC), ov5_mask(OV5_MMU_EITHER)):
                    radix, hash_ = True, True
                elif mmu == ov5_mask(OV5_MMU_RADIX):
                    radix = True
                elif mmu == ov5_mask(OV5_MMU_HASH):
                    hash_ = True
            elif index == ov5_byte(OV5_RADIX_GTSE):
                gtse = gtse or bool(value & ov5_mask(OV5_RADIX_GTSE))
            elif index == ov5_byte(OV5_XIVE_SUPPORT):
                mode = value & ov5_mask(OV5_XIVE_SUPPORT)
                if mode in (ov5_mask(OV5_XIVE_EITHER), ov5_mask(OV5_XIVE_EXPLOIT)):
                    xive = mode == ov5_mask(OV5_XIVE_EXPLOIT) or not xive_disabled
        return cls(radix, hash_, gtse, xive)


@attrs.frozen
class CasRequest:
    """The choices that vary between guests: hotplug events, MMU, interrupt controller."""

    hp_evt: bool = True
    platform: PlatformSupport = PlatformSupport()
    #: ibm,ppc-interrupt-server#s length of the first cpu node.
    threads_per_core: int = 1
    nr_cpus: int = NR_CPUS_DEFAULT

    @property
    def max_cores(self) -> int:
        """Cores passed to firmware: DIV_ROUND_UP(NR_CPUS, threads per core)."""
        threads = self.threads_per_core if 1 <= self.threads_per_core <= 64 else 1
        return -(-self.nr_cpus // threads)

    def vector5(self) -> bytes:
        """Option vector 5 (bytes 1..26) as prom_init fills it in."""
        vec = bytearray(OV5_LENGTH)

        def set_feature(feature: int) -> None:
            """Set one feature bit in the vector being built."""
            vec[ov5_byte(feature) - 1] |= ov5_mask(feature)

        for feature in (
            OV5_LPAR,
            OV5_SPLPAR,
            OV5_LARGE_PAGES,
            OV5_DRCONF_MEMORY,
            OV5_DONATE_DEDICATE_CPU,
            OV5_MSI,
            OV5_CMO,
            OV5_XCMO,
            OV5_FORM1_AFFINITY,
            OV5_PRRN,
            OV5_FORM2_AFFINITY,
            OV5_RESIZE_HPT,
            OV5_PFO_HW_RNG,
            OV5_PFO_HW_ENCR,
            OV5_PFO_HW_842,
            OV5_DRMEM_V2,
            OV5_DRC_INFO,
        ):
            set_feature(feature)
        if self.hp_evt:
            set_feature(OV5_HP_EVT)
        struct.pack_into(">I", vec, 8, self.max_cores)  # bytes 9..12: max_cpus
        vec[ov5_byte(OV5_SUB_PROCESSORS) - 1] = 1
        if self.platform.radix_mmu:
            set_feature(OV5_MMU_RADIX)
            if self.platform.radix_gtse:
                set_feature(OV5_RADIX_GTSE)
        # Hash (or legacy) leaves the MMU byte 0, which is OV5_MMU_HASH.
        if self.platform.xive:
            # "Asking for XIVE": exploitation mode; else the byte stays 0 (XICS)
            set_feature(OV5_XIVE_EXPLOIT)
        return bytes(vec)

    def table(self) -> bytes:
        """The whole ibm,architecture-vec table (PVR list, count, vectors 1..7)."""
        out = bytearray()
        for mask, pvr in CAS_PVRS:
            out += struct.pack(">II", mask, pvr)
        vec1 = bytes([0, OV1_PPC_2_00_TO_2_07, OV1_PPC_3_00 | OV1_PPC_3_1])
        vec2 = struct.pack(
            ">BHIIIIIIIBB",
            OV2_REAL_MODE,
            0,
            0xFFFFFFFF,  # real_base
            0xFFFFFFFF,  # real_size
            0xFFFFFFFF,  # virt_base
            0xFFFFFFFF,  # virt_size
            0xFFFFFFFF,  # load_base
            512,  # min_rma, MB
            0xFFFFFFFF,  # min_load: full client load
            0,  # min_rma_percent
            48,  # max_pft_size
        )
        vec3 = bytes([0, OV3_FP | OV3_VMX | OV3_DFP])
        vec4 = bytes([0, OV4_MIN_ENT_CAP])
        vec6 = bytes([0, 0, OV6_LINUX])
        vec7 = _LINUX_BANNER.encode().ljust(OV7_LENGTH, b"\0")[:OV7_LENGTH]
        vectors = (vec1, vec2, vec3, vec4, self.vector5(), vec6, vec7)
        # Linux declares 6 vectors; vector 7 follows but is not counted.
        out.append(6 - 1)
        for vec in vectors:
            out.append(len(vec) - 1)
            out += vec
        return bytes(out)


@attrs.frozen
class NegotiatedFeatures:
    """The negotiated vector 5 as ``/chosen/ibm,architecture-vec-5`` holds it."""

    #: Property value: length-minus-one byte, then vector bytes 1..n.
    ov5: bytes = b""

    @classmethod
    def from_tree(cls, root: fdt.Node) -> NegotiatedFeatures:
        """Read /chosen/ibm,architecture-vec-5 (empty when absent)."""
        chosen = root.find("/chosen")
        prop = chosen.get("ibm,architecture-vec-5") if chosen is not None else None
        return cls(prop.value if prop is not None else b"")

    def has(self, feature: int) -> bool:
        """Linux's test: ``index < len && vec5[index] & mask``."""
        index = ov5_byte(feature)
        return index < len(self.ov5) and bool(self.ov5[index] & ov5_mask(feature))

    @property
    def hp_evt(self) -> bool:
        """Hotplug events travel on the hot-plug-events interrupt."""
        return self.has(OV5_HP_EVT)

    @property
    def form1_affinity(self) -> bool:
        """FORM1 NUMA affinity was negotiated."""
        return self.has(OV5_FORM1_AFFINITY)

    @property
    def form2_affinity(self) -> bool:
        """FORM2 NUMA affinity was negotiated."""
        return self.has(OV5_FORM2_AFFINITY)

    @property
    def radix(self) -> bool:
        """The MMU byte says radix."""
        index = ov5_byte(OV5_MMU_SUPPORT)
        if index >= len(self.ov5):
            return False
        return self.ov5[index] & ov5_mask(OV5_MMU_SUPPORT) == ov5_mask(OV5_MMU_RADIX)

    @property
    def xive(self) -> bool:
        """The interrupt-controller byte says XIVE exploitation."""
        index = ov5_byte(OV5_XIVE_SUPPORT)
        if index >= len(self.ov5):
            return False
        return self.ov5[index] & ov5_mask(OV5_XIVE_SUPPORT) == ov5_mask(OV5_XIVE_EXPLOIT)

    def names(self) -> tuple[str, ...]:
        """Short names of the negotiated features this model cares about."""
        out = []
        for name, present in (
            ("hp-evt", self.hp_evt),
            ("form1-affinity", self.form1_affinity),
            ("form2-affinity", self.form2_affinity),
            ("radix", self.radix),
            ("xive", self.xive),
            ("drmem-v2", self.has(OV5_DRMEM_V2)),
        ):
            if present:
                out.append(name)
        return tuple(out)
