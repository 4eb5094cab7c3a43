"""RtasDispatcher: QEMU's h_rtas/spapr_rtas_call behaviour and the observer hook."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rtas.call import RtasCall, encode_call, read_rets
from rtas.codes import RtasStatus
from rtas.dispatch import OBSERVED_RETS_MAX, RtasDispatcher
from rtas.hcalls import HcallReturn
from rtas.memory import GuestMemory
from rtas.tokens import RTAS_SERVICE_NAMES, RtasToken

BUF = 0x1000
H_SUCCESS = 0
H_PARAMETER = -4


def test_hcall_codes_match_qemu() -> None:
    assert HcallReturn.H_SUCCESS == H_SUCCESS
    assert HcallReturn.H_PARAMETER == H_PARAMETER
    assert int(RtasStatus.PARAM_ERROR) == -3


def sensor_handler(call: RtasCall[object]) -> None:
    """A stand-in get-sensor-state: nargs 2 / nret 2, answers args[0] + args[1]."""
    if call.nargs != 2 or call.nret != 2:
        call.set_ret(0, -3)
        return
    call.set_ret(0, 0)
    call.set_ret(1, call.args[0] + call.args[1])


def make() -> tuple[RtasDispatcher[object], GuestMemory]:
    dispatcher: RtasDispatcher[object] = RtasDispatcher()
    dispatcher.register(RtasToken.GET_SENSOR_STATE, "get-sensor-state", sensor_handler)
    return dispatcher, GuestMemory(0x2000)


def test_registered_token_runs_its_handler() -> None:
    dispatcher, mem = make()
    encode_call(mem, BUF, 0x201D, [9003, 7], 2)
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_SUCCESS
    assert read_rets(mem, BUF) == (0, 9010)


def test_handler_status_does_not_change_the_hcall_status() -> None:
    dispatcher, mem = make()
    encode_call(mem, BUF, 0x201D, [9003], 1)
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_SUCCESS
    assert read_rets(mem, BUF) == (-3,)


@given(token=st.integers(0, 0xFFFF_FFFF), nargs=st.integers(0, 6), nret=st.integers(1, 4))
def test_unknown_token_gets_minus_3_and_h_parameter(token: int, nargs: int, nret: int) -> None:
    assume(token not in (0x201D, 0xA))
    dispatcher, mem = make()
    encode_call(mem, BUF, token, list(range(nargs)), nret)
    mem.write(BUF + 12 + 4 * nargs, b"\x55" * 4 * nret)
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_PARAMETER
    assert read_rets(mem, BUF)[0] == -3
    # Only rets[0] is written.
    assert mem.read(BUF + 16 + 4 * nargs, 4 * (nret - 1)) == b"\x55" * 4 * (nret - 1)


def test_unknown_token_with_nret_0_still_writes_rets0() -> None:
    # QEMU's spapr_rtas_call stores rets[0] without looking at nret.
    dispatcher, mem = make()
    encode_call(mem, BUF, 0x2001, [1, 2], 0)
    mem.st32(BUF + 20, 0x12345678)
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_PARAMETER
    assert mem.ld32(BUF + 20) == 0xFFFF_FFFD


def test_unknown_token_whose_rets_lie_outside_memory() -> None:
    dispatcher, mem = make()
    encode_call(mem, mem.size - 12, 0x2001, [], 0)
    assert dispatcher.hcall_rtas(mem, mem.size - 12, None) == H_PARAMETER


@given(nibble=st.integers(0, 15), low=st.integers(0, 0x100).map(lambda x: x * 4))
def test_buffer_address_is_masked(nibble: int, low: int) -> None:
    dispatcher, mem = make()
    encode_call(mem, low, 0x201D, [1, 2], 2)
    assert dispatcher.hcall_rtas(mem, (nibble << 60) | low, None) == H_SUCCESS
    assert read_rets(mem, low) == (0, 3)


@pytest.mark.parametrize("addr", [0x2000, 0x1FFC, 0x0FFF_FFFF_FFFF_FFF0, 0xFFFF_FFFF_FFFF_FFFF, -4])
def test_unreachable_buffer_is_h_parameter(addr: int) -> None:
    dispatcher, mem = make()
    seen: list[object] = []
    dispatcher.add_observer(lambda call, status, rets: seen.append(call))
    assert dispatcher.hcall_rtas(mem, addr, None) == H_PARAMETER
    assert seen == []
    assert mem.read(0, mem.size) == bytes(mem.size)


def test_args_outside_memory_is_h_parameter_without_running_the_handler() -> None:
    dispatcher, mem = make()
    ran: list[RtasCall[object]] = []
    dispatcher.register(RtasToken.POWER_OFF, "power-off", ran.append)
    addr = mem.size - 16
    mem.write(addr, (0x2003).to_bytes(4, "big") + (2).to_bytes(4, "big") + (1).to_bytes(4, "big"))
    assert dispatcher.hcall_rtas(mem, addr, None) == H_PARAMETER
    assert ran == []


def test_handler_touching_memory_outside_ram_is_h_parameter() -> None:
    dispatcher, mem = make()

    def bad_buffer(call: RtasCall[object]) -> None:
        call.memory.write(call.args[0], b"log")

    dispatcher.register(RtasToken.CHECK_EXCEPTION, "check-exception", bad_buffer)
    encode_call(mem, BUF, 0x200E, [0x100000], 1)
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_PARAMETER


def test_other_handler_exceptions_propagate() -> None:
    dispatcher, mem = make()

    def broken(call: RtasCall[object]) -> None:
        raise RuntimeError("model bug")

    dispatcher.register(RtasToken.QUIESCE, "quiesce", broken)
    encode_call(mem, BUF, 0x2011, [], 1)
    with pytest.raises(RuntimeError):
        dispatcher.hcall_rtas(mem, BUF, None)


def test_caller_reaches_the_handler() -> None:
    dispatcher, mem = make()
    callers: list[object] = []
    dispatcher.register(RtasToken.STOP_SELF, "stop-self", lambda call: callers.append(call.caller))
    vcpu = object()
    encode_call(mem, BUF, 0x2007, [], 1)
    dispatcher.hcall_rtas(mem, BUF, vcpu)
    assert callers == [vcpu]


def test_legacy_display_character_token() -> None:
    dispatcher, mem = make()
    encode_call(mem, BUF, 0xA, [ord("x")], 1)
    # Not registered: an unknown token like any other.
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_PARAMETER
    assert read_rets(mem, BUF) == (-3,)

    printed: list[tuple[int, int]] = []

    def display_character(call: RtasCall[object]) -> None:
        printed.append((call.token, call.args[0]))
        call.set_ret(0, 0)

    dispatcher.register(RtasToken.DISPLAY_CHARACTER, "display-character", display_character)
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_SUCCESS
    assert read_rets(mem, BUF) == (0,)
    assert printed == [(0xA, ord("x"))]


def test_register_validation() -> None:
    dispatcher, _mem = make()
    with pytest.raises(ValueError):
        dispatcher.register(0x202D, "ibm,nmi-interlock", sensor_handler)
    with pytest.raises(ValueError):
        dispatcher.register(0x1FFF, "display-character", sensor_handler)
    with pytest.raises(ValueError):
        dispatcher.register(RtasToken.START_CPU, "stop-self", sensor_handler)
    with pytest.raises(ValueError):
        dispatcher.register(RtasToken.GET_SENSOR_STATE, "get-sensor-state", sensor_handler)


def test_registered_lists_tokens_in_order_with_their_names() -> None:
    dispatcher, _mem = make()
    dispatcher.register(RtasToken.START_CPU, "start-cpu", sensor_handler)
    dispatcher.register(
        RtasToken.IBM_CONFIGURE_CONNECTOR, "ibm,configure-connector", sensor_handler
    )
    assert dispatcher.registered() == [
        (0x2006, "start-cpu"),
        (0x201D, "get-sensor-state"),
        (0x201E, "ibm,configure-connector"),
    ]


def test_every_token_can_be_registered() -> None:
    dispatcher: RtasDispatcher[None] = RtasDispatcher()
    for token, name in RTAS_SERVICE_NAMES.items():
        dispatcher.register(token, name, lambda call: None)
    assert len(dispatcher.registered()) == 0x202D - 0x2000


def test_observers_see_each_call_after_it_ran() -> None:
    dispatcher, mem = make()
    seen: list[tuple[int, int, int, tuple[int, ...]]] = []
    also: list[int] = []

    def observer(call: RtasCall[object], status: int, rets: tuple[int, ...]) -> None:
        seen.append((call.token, call.args[0] if call.args else -1, status, rets))

    dispatcher.add_observer(observer)
    dispatcher.add_observer(lambda call, status, rets: also.append(status))
    encode_call(mem, BUF, 0x201D, [9001, 2], 2)
    dispatcher.hcall_rtas(mem, BUF, None)
    encode_call(mem, BUF, 0x2099, [5], 1)
    dispatcher.hcall_rtas(mem, BUF, None)
    assert seen == [(0x201D, 9001, H_SUCCESS, (0, 9003)), (0x2099, 5, H_PARAMETER, (-3,))]
    assert also == [H_SUCCESS, H_PARAMETER]

    dispatcher.remove_observer(observer)
    dispatcher.hcall_rtas(mem, BUF, None)
    assert len(seen) == 2
    assert len(also) == 3


def test_observer_rets_are_bounded() -> None:
    dispatcher, mem = make()
    seen: list[tuple[int, ...]] = []
    dispatcher.add_observer(lambda call, status, rets: seen.append(rets))
    mem.write(BUF, (0x2099).to_bytes(4, "big") + bytes(4) + (0xFFFF_FFFF).to_bytes(4, "big"))
    assert dispatcher.hcall_rtas(mem, BUF, None) == H_PARAMETER
    assert seen[0][0] == -3
    assert len(seen[0]) == OBSERVED_RETS_MAX


@given(back=st.integers(-8, 40))
def test_buffers_straddling_the_end_of_memory(back: int) -> None:
    # get-sensor-state needs 12 + 8 + 8 bytes: all of it in RAM, or H_PARAMETER.
    dispatcher, mem = make()
    addr = mem.size - back
    header = b"".join(v.to_bytes(4, "big") for v in (0x201D, 2, 2))
    mem.write_clipped(addr, header)
    status = dispatcher.hcall_rtas(mem, addr, None)
    assert status == (H_SUCCESS if back >= 28 else H_PARAMETER)
