"""The guest-visible numbers of sPAPR XIVE exploitation mode, both sides of them.

What a pseries guest and the platform agree on when interrupts go through XIVE
(PAPR's H_INT_* interface, QEMU's hw/ppc/xive_regs.h and Linux's asm/xive-regs.h
give the same values): the offsets of the special loads and stores in a source's
ESB management page, the thread interrupt management area's layout as the OS page
shows it, and the flag bits of the H_INT_* hypercalls (PPC bit numbering: bit 63
is the least significant). ``spapr.xive`` implements them, the guest uses them.
"""

from __future__ import annotations

# -- ESB pages: a load or store at one of these offsets of a source's page -------

#: Load: EOI (P cleared; a queued event notifies again). Store: trigger.
ESB_LOAD_EOI = 0x000
#: Store EOI (offered by the platform only with H_INT_GET_SOURCE_INFO's STORE_EOI).
ESB_STORE_EOI = 0x400
#: Store: inject an event without changing PQ.
ESB_INJECT = 0x800
#: Load: read PQ.
ESB_GET = 0x800
#: Loads that set PQ and return the old PQ: 00 (on, the EOI Linux uses), 01 (off),
#: 10 (pending) and 11 (queued).
ESB_SET_PQ_00 = 0xC00
ESB_SET_PQ_01 = 0xD00
ESB_SET_PQ_10 = 0xE00
ESB_SET_PQ_11 = 0xF00
#: The PQ bits in a value an ESB load returns.
ESB_VAL_P = 0x2
ESB_VAL_Q = 0x1

# -- the thread interrupt management area (TIMA) ---------------------------------

#: The TIMA is four 64 KiB pages: HW, HV, OS, USER (the OS is given the OS page).
TM_SHIFT = 16
TM_HW_PAGE, TM_HV_PAGE, TM_OS_PAGE, TM_USER_PAGE = 0, 1, 2, 3
#: The four rings (16 bytes each) and the bytes of a ring.
TM_QW0_USER, TM_QW1_OS, TM_QW2_HV_POOL, TM_QW3_HV_PHYS = 0x00, 0x10, 0x20, 0x30
TM_NSR, TM_CPPR, TM_IPB, TM_LSMFB, TM_ACK_CNT, TM_INC, TM_AGE, TM_PIPR = range(8)
TM_WORD2 = 0x8
#: NSR bit of the OS ring: an event-queue interrupt is signalled.
TM_QW1_NSR_EO = 0x80
#: Special operations start at this offset of a page.
TM_SPECIAL_OP = 0x800
#: 2-byte load: acknowledge the OS interrupt; returns NSR << 8 | the new CPPR.
TM_SPC_ACK_OS_REG = 0xC10
#: 1-byte store: mark a priority pending in the OS ring's IPB.
TM_SPC_SET_OS_PENDING = 0xC12

# -- H_INT_* flags ------------------------------------------------------------------

#: H_INT_GET_SOURCE_INFO: the ESB is reached with H_INT_ESB, not loads and stores.
SRC_H_INT_ESB = 1 << 3
#: H_INT_GET_SOURCE_INFO: a level-sensitive source.
SRC_LSI = 1 << 2
#: H_INT_GET_SOURCE_INFO: trigger and management on one page.
SRC_TRIGGER = 1 << 1
#: H_INT_GET_SOURCE_INFO: the source offers Store EOI.
SRC_STORE_EOI = 1 << 0
#: H_INT_SET_SOURCE_CONFIG: set the EISN (the number the queue entry carries).
SRC_SET_EISN = 1 << 1
#: H_INT_SET_SOURCE_CONFIG: mask the source in its EAS.
SRC_MASK = 1 << 0
#: H_INT_SET_QUEUE_CONFIG: notify the thread on every entry.
END_ALWAYS_NOTIFY = 1 << 0
#: H_INT_GET_QUEUE_CONFIG: return the queue's index and generation too.
END_DEBUG = 1 << 0
#: H_INT_ESB: a store (else a load).
ESB_STORE = 1 << 0
#: A priority argument that masks the source (H_INT_SET_SOURCE_CONFIG).
PRIORITY_MASKED = 0xFF
#: Event-queue entries: bit 31 is the generation, the rest the EISN.
EQ_GENERATION_BIT = 0x8000_0000
EQ_DATA_MASK = 0x7FFF_FFFF
