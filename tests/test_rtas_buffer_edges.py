"""RTAS argument buffers at their edges, as a guest and a service see them through H_RTAS.

Facts from protocol.md §4.1 (QEMU 7.2's h_rtas and spapr_rtas_call): the buffer
is big-endian words token, nargs, nret, args, rets; a service reads its
arguments with rtas_ld, which does not stop at nargs (past it, the words are the
rets); an unknown token gets rets[0] = -3 and H_PARAMETER; token 0xA is
display-character's legacy alias. This project reads a word outside guest RAM as
0 (an unassigned address), as rtas/call.py documents. The tokens and names are
§4.2's table.
"""

from __future__ import annotations

import struct

import pytest

from rtas import GuestMemory, RtasCall, RtasDispatcher, encode_call, read_rets
from rtas.hcalls import HcallReturn
from rtas.tokens import TOKENS_BY_NAME, RtasToken, service_name

MEM = 0x1000
BUF = 0x100
ECHO = RtasToken.GET_TIME_OF_DAY


class Echo:
    """A service that copies chosen argument indexes (read with call.arg) into its rets."""

    def __init__(self, indexes: list[int]) -> None:
        self.indexes = indexes
        self.seen: list[tuple[int, ...]] = []

    def __call__(self, call: RtasCall[None]) -> None:
        values = tuple(call.arg(i) for i in self.indexes)
        self.seen.append(values)
        for slot, value in enumerate(values):
            call.set_ret(slot, value)


def dispatcher_with(service: Echo) -> RtasDispatcher[None]:
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    dispatcher.register(ECHO, "get-time-of-day", service)
    return dispatcher


def raw_call(mem: GuestMemory, addr: int, token: int, args: list[int], rets: list[int]) -> None:
    """Write a buffer by hand: header, args, and rets pre-filled with the given words."""
    words = [token, len(args), len(rets), *args, *rets]
    mem.write(addr, struct.pack(f">{len(words)}I", *words))


# -- arguments -----------------------------------------------------------------


@pytest.mark.parametrize("nargs", [0, 1, 15, 16, 17, 40])
def test_every_argument_word_reaches_the_service(nargs: int) -> None:
    mem = GuestMemory(MEM)
    args = [0xA0000000 + i for i in range(nargs)]
    service = Echo(list(range(nargs)))
    raw_call(mem, BUF, ECHO, args, [0] * max(nargs, 1))
    assert dispatcher_with(service).hcall_rtas(mem, BUF, None) == HcallReturn.H_SUCCESS
    assert service.seen == [tuple(args)]
    assert read_rets(mem, BUF)[:nargs] == tuple(
        struct.unpack(f">{nargs}i", struct.pack(f">{nargs}I", *args))
    )


def test_reading_past_nargs_reads_the_ret_words_as_they_are() -> None:
    """rtas_ld(args, nargs + k) is rets[k]: what the guest left there before the call."""
    mem = GuestMemory(MEM)
    raw_call(mem, BUF, ECHO, [0x11, 0x22], [0xDEADBEEF, 0xCAFEF00D, 0x0BADC0DE])
    service = Echo([2, 3, 4])
    dispatcher_with(service).hcall_rtas(mem, BUF, None)
    assert service.seen == [(0xDEADBEEF, 0xCAFEF00D, 0x0BADC0DE)]


def test_words_past_the_end_of_ram_read_as_zero() -> None:
    """A one-argument call whose single ret is the last word of RAM, read past both."""
    mem = GuestMemory(MEM)
    buf = MEM - 20  # header 12 + one arg + one ret = 20 bytes, ending at the end of RAM
    raw_call(mem, buf, ECHO, [0x77], [0x11223344])
    service = Echo([0, 1, 2, 3])
    status = dispatcher_with(service).hcall_rtas(mem, buf, None)
    # arg 1 is rets[0] (the last word of RAM); args 2 and 3 lie past the end.
    assert service.seen == [(0x77, 0x11223344, 0, 0)]
    # The service's stores past rets[0] leave RAM: the call fails without raising.
    assert status == HcallReturn.H_PARAMETER
    assert mem.ld32(MEM - 4) == 0x77


# -- encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "word"),
    [(-0x8000_0000, 0x8000_0000), (-1, 0xFFFF_FFFF), (0, 0), (0xFFFF_FFFF, 0xFFFF_FFFF)],
)
def test_signed_and_unsigned_arguments_are_stored_as_32_bit_words(value: int, word: int) -> None:
    mem = GuestMemory(MEM)
    encode_call(mem, BUF, value, [value], 1)
    assert struct.unpack_from(">IIIII", mem.read(BUF, 20)) == (word, 1, 1, word, 0)


@pytest.mark.parametrize("value", [-0x8000_0001, 0x1_0000_0000])
def test_arguments_wider_than_32_bits_are_refused(value: int) -> None:
    mem = GuestMemory(MEM)
    with pytest.raises(ValueError):
        encode_call(mem, BUF, ECHO, [value], 1)
    with pytest.raises(ValueError):
        encode_call(mem, BUF, value, [], 1)
    with pytest.raises(ValueError):
        encode_call(mem, BUF, ECHO, [], -1)
    assert mem.read(BUF, 16) == bytes(16)


# -- dispatch -------------------------------------------------------------------


def test_an_unknown_token_is_not_handed_to_display_character() -> None:
    mem = GuestMemory(MEM)
    shown = Echo([0])
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    dispatcher.register(RtasToken.DISPLAY_CHARACTER, "display-character", shown)
    for token in (0x2100, RtasToken.START_CPU, 0x9):
        raw_call(mem, BUF, token, [ord("x")], [0x5555])
        assert dispatcher.hcall_rtas(mem, BUF, None) == HcallReturn.H_PARAMETER
        assert read_rets(mem, BUF) == (-3,)
    assert shown.seen == []
    raw_call(mem, BUF, 0xA, [ord("x")], [0x5555])
    assert dispatcher.hcall_rtas(mem, BUF, None) == HcallReturn.H_SUCCESS
    assert shown.seen == [(ord("x"),)]


@pytest.mark.parametrize("token", [0x1FFF, 0x202D, 0xA])
def test_tokens_outside_qemus_range_cannot_be_registered(token: int) -> None:
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    with pytest.raises(ValueError):
        dispatcher.register(token, "display-character", Echo([]))
    assert dispatcher.registered() == []


#: protocol.md §4.2, token by token.
TABLE = {
    0x2000: "display-character",
    0x2001: "get-time-of-day",
    0x2002: "set-time-of-day",
    0x2003: "power-off",
    0x2004: "system-reboot",
    0x2005: "query-cpu-stopped-state",
    0x2006: "start-cpu",
    0x2007: "stop-self",
    0x2008: "ibm,get-system-parameter",
    0x2009: "ibm,set-system-parameter",
    0x200A: "ibm,set-xive",
    0x200B: "ibm,get-xive",
    0x200C: "ibm,int-off",
    0x200D: "ibm,int-on",
    0x200E: "check-exception",
    0x200F: "event-scan",
    0x2010: "ibm,set-tce-bypass",
    0x2011: "quiesce",
    0x2012: "nvram-fetch",
    0x2013: "nvram-store",
    0x2014: "read-pci-config",
    0x2015: "write-pci-config",
    0x2016: "ibm,read-pci-config",
    0x2017: "ibm,write-pci-config",
    0x2018: "ibm,query-interrupt-source-number",
    0x2019: "ibm,change-msi",
    0x201A: "set-indicator",
    0x201B: "set-power-level",
    0x201C: "get-power-level",
    0x201D: "get-sensor-state",
    0x201E: "ibm,configure-connector",
    0x201F: "ibm,os-term",
    0x202A: "ibm,suspend-me",
    0x202B: "ibm,nmi-register",
    0x202C: "ibm,nmi-interlock",
}


def test_service_names_follow_qemus_token_table() -> None:
    for token, name in TABLE.items():
        assert service_name(token) == name
        assert TOKENS_BY_NAME[name] == token
    for token in range(0x2020, 0x202A):  # the EEH and DDW calls
        assert (service_name(token) or "").startswith("ibm,")
    for token in (0, 0xA, 0x1FFF, 0x202D, 0xF000, -1):
        assert service_name(token) is None
