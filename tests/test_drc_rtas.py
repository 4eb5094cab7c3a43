"""The DR RTAS services (spapr/drc_rtas.py) driven through guest memory and the
RTAS dispatcher, as a guest drives them: protocol.md §4.4-4.6 and QEMU 7.2's
rtas_set_indicator / rtas_get_sensor_state / rtas_ibm_configure_connector.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fdt import Node, Property
from rtas import GuestMemory, RtasDispatcher, encode_call, read_rets
from spapr.drc import DRC, DrcError, DRCState, DrcTable, DrcType
from spapr.drc_rtas import register_drc_rtas
from spapr.trace import TraceRecorder

SET_INDICATOR = 0x201A
GET_SENSOR_STATE = 0x201D
CONFIGURE_CONNECTOR = 0x201E

MEM_SIZE = 0x10000
BUF = 0x100  # RTAS argument buffer
WA = 0x2000  # configure-connector work area
WA_LEN = 4096
SENTINEL = 0xA5

CPU2 = 0x10000002
PCI5 = 0x40000005


def core_fragment(device: Any) -> Node:
    """A core-like node with properties and, for generality, one child node."""
    child = Node("l2-cache@2010", properties=[Property("compatible", b"cache\0")])
    return Node(
        "PowerPC,POWER8E@2",
        properties=[
            Property("name", b"cpu\0"),
            Property("reg", b"\x00\x00\x00\x02"),
            Property("ibm,pft-size", b"\x00\x00\x00\x00\x00\x00\x00\x18"),
        ],
        children=[child],
    )


class Rig:
    """A DRC table with CPU 2 and PCI slot 5, a dispatcher and guest memory."""

    def __init__(self, fragment: Any = core_fragment) -> None:
        self.rec = TraceRecorder()
        self.table = DrcTable(self.rec)
        self.released: list[Any] = []
        self.rejected: list[Any] = []
        self.cpu = self.table.new(
            DrcType.CPU,
            2,
            on_release=lambda drc, dev: self.released.append(dev),
            on_unplug_rejected=lambda drc, dev: self.rejected.append(dev),
            build_fragment=fragment,
        )
        self.pci = self.table.new(DrcType.PCI, 5, build_fragment=fragment)
        self.dispatcher: RtasDispatcher[None] = RtasDispatcher()
        register_drc_rtas(self.dispatcher.register, self.table)
        self.mem = GuestMemory(MEM_SIZE)
        self.rec.clear()

    def rtas(self, token: int, args: list[int], nret: int, buf: int = BUF) -> tuple[int, ...]:
        encode_call(self.mem, buf, token, args, nret)
        assert self.dispatcher.hcall_rtas(self.mem, buf, None) == 0
        return read_rets(self.mem, buf)

    def set_indicator(self, kind: int, index: int, value: int) -> int:
        return self.rtas(SET_INDICATOR, [kind, index, value], 1)[0]

    def sensor(self, kind: int, index: int) -> tuple[int, ...]:
        return self.rtas(GET_SENSOR_STATE, [kind, index], 2)

    def configure(self, wa: int = WA, hi: int = 0) -> int:
        return self.rtas(CONFIGURE_CONNECTOR, [wa & 0xFFFFFFFF, hi], 1)[0]

    def acquire_cpu(self) -> None:
        """device_add's DRC side then the guest's acquire (U -> A -> I)."""
        self.cpu.attach("core2")
        assert self.set_indicator(9003, CPU2, 1) == 0
        assert self.set_indicator(9001, CPU2, 1) == 0
        self.rec.clear()

    def prepare_work_area(self, index: int, wa: int = WA) -> None:
        """The guest's work area: index, 0, then garbage the service must leave alone."""
        self.mem.write(wa, bytes([SENTINEL]) * (WA_LEN + 64))
        self.mem.write(wa, index.to_bytes(4, "big") + bytes(4))


def put32(buf: bytearray, offset: int, value: int) -> None:
    buf[offset : offset + 4] = value.to_bytes(4, "big")


def expect_node(buf: bytearray, name: str) -> None:
    """PAPR work-area answer for a node: name offset 20 at +8, the name at +20."""
    put32(buf, 8, 20)
    raw = name.encode() + b"\0"
    buf[20 : 20 + len(raw)] = raw


def expect_property(buf: bytearray, name: str, value: bytes) -> None:
    """For a property: also the length at +12 and the value offset at +16."""
    expect_node(buf, name)
    offset = 20 + len(name) + 1
    put32(buf, 12, len(value))
    put32(buf, 16, offset)
    buf[offset : offset + len(value)] = value


# --------------------------------------------------------------------------
# ibm,configure-connector through guest memory
# --------------------------------------------------------------------------


def test_configure_connector_walk_byte_for_byte() -> None:
    rig = Rig()
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    expected = bytearray(rig.mem.read(WA, WA_LEN + 64))
    script: list[tuple[int, Any]] = [
        (2, ("node", "PowerPC,POWER8E@2")),
        (3, ("prop", "name", b"cpu\0")),
        (3, ("prop", "reg", b"\x00\x00\x00\x02")),
        (3, ("prop", "ibm,pft-size", b"\x00\x00\x00\x00\x00\x00\x00\x18")),
        (2, ("node", "l2-cache@2010")),
        (3, ("prop", "compatible", b"cache\0")),
        (4, None),
        (0, None),
    ]
    for code, what in script:
        assert rig.configure() == code
        if what is not None and what[0] == "node":
            expect_node(expected, what[1])
        elif what is not None:
            expect_property(expected, what[1], what[2])
        assert rig.mem.read(WA, WA_LEN + 64) == bytes(expected)
    assert rig.cpu.state == DRCState.LOGICAL_CONFIGURED
    assert rig.rec.qemu_lines() == ["spapr_drc_set_configured drc: 0x10000002"]


def test_configure_connector_property_literal() -> None:
    rig = Rig()
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    assert rig.configure() == 2
    assert rig.mem.read(WA, 40) == (
        bytes.fromhex("10000002 00000000 00000014 a5a5a5a5 a5a5a5a5")
        + b"PowerPC,POWER8E@2\0"
        + b"\xa5\xa5"
    )
    assert rig.configure() == 3
    # name offset 20, length 4, value offset 25, "name\0" then "cpu\0" unaligned;
    # the rest of the node name written by the previous call stays behind.
    assert rig.mem.read(WA, 40) == (
        bytes.fromhex("10000002 00000000 00000014 00000004 00000019")
        + b"name\0cpu\0"
        + b"OWER8E@2\0"
        + b"\xa5\xa5"
    )


def test_configure_connector_restart_after_configured() -> None:
    rig = Rig()
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    codes = [rig.configure() for _ in range(8)]
    assert codes == [2, 3, 3, 3, 2, 3, 4, 0]
    assert [rig.configure() for _ in range(9)] == [2, 3, 3, 3, 2, 3, 4, 0, 2]
    assert rig.mem.read(WA + 20, 18) == b"PowerPC,POWER8E@2\0"


def test_configure_connector_cursor_reset_by_unisolate_and_reset() -> None:
    rig = Rig()
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    for _ in range(8):
        rig.configure()
    assert [rig.configure() for _ in range(3)] == [2, 3, 3]  # mid-walk in C
    assert rig.set_indicator(9001, CPU2, 0) == 0  # C -> A
    assert rig.set_indicator(9001, CPU2, 1) == 0  # A -> I: cursor rewound
    assert [rig.configure() for _ in range(2)] == [2, 3]
    rig.cpu.reset()  # reset with a device: C, cursor rewound
    assert rig.configure() == 2


def test_configure_connector_not_configurable_in_u_and_a() -> None:
    rig = Rig()
    rig.prepare_work_area(CPU2)
    before = rig.mem.read(WA, WA_LEN)
    assert rig.configure() == -9003  # U, empty
    rig.cpu.attach("core2")
    assert rig.configure() == -9003  # U with device
    assert rig.set_indicator(9003, CPU2, 1) == 0
    assert rig.configure() == -9003  # A
    assert rig.mem.read(WA, WA_LEN) == before
    assert rig.cpu.fragment is None


def test_configure_connector_unknown_index() -> None:
    rig = Rig()
    rig.prepare_work_area(0x10000007)
    assert rig.configure() == -3
    assert rig.rec.qemu_lines() == [
        "spapr_rtas_ibm_configure_connector_invalid DRC index: 0x10000007"
    ]


def test_configure_connector_physical() -> None:
    rig = Rig()
    rig.prepare_work_area(PCI5)
    assert rig.configure() == -9003  # POWERON
    rig.pci.attach("nic")
    assert rig.set_indicator(9001, PCI5, 1) == 0
    assert [rig.configure() for _ in range(8)] == [2, 3, 3, 3, 2, 3, 4, 0]
    assert rig.pci.state == DRCState.PHYSICAL_CONFIGURED


def test_configure_connector_build_failure() -> None:
    rig = Rig(fragment=lambda device: None)
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    assert rig.configure() == -1
    assert rig.cpu.state == DRCState.LOGICAL_UNISOLATE


def test_configure_connector_clips_at_work_area_end() -> None:
    big = bytes(range(256)) * 20  # 5120 bytes
    rig = Rig(fragment=lambda device: Node("n@1", properties=[Property("big", big)]))
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    assert rig.configure() == 2
    assert rig.configure() == 3
    area = rig.mem.read(WA, WA_LEN + 64)
    assert area[8:20] == bytes.fromhex("00000014 00001400 00000018")
    assert area[20:24] == b"big\0"
    assert area[24:WA_LEN] == big[: WA_LEN - 24]
    assert area[WA_LEN:] == bytes([SENTINEL]) * 64  # nothing past 4096


def test_configure_connector_overlong_name_quirk() -> None:
    # QEMU clips with MIN(len, 4096 - offset) in unsigned arithmetic: the name is
    # cut at the work-area end, but the value offset lies past 4096 and is not clipped.
    name = "p" * 4100
    rig = Rig(fragment=lambda device: Node("n@1", properties=[Property(name, b"VALUE")]))
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    assert rig.configure() == 2
    assert rig.configure() == 3
    area = rig.mem.read(WA, 4200)
    assert area[12:20] == (5).to_bytes(4, "big") + (20 + 4101).to_bytes(4, "big")
    assert area[20:WA_LEN] == b"p" * (WA_LEN - 20)
    assert area[WA_LEN : 20 + 4101] == bytes([SENTINEL]) * (20 + 4101 - WA_LEN)
    assert area[20 + 4101 : 20 + 4101 + 5] == b"VALUE"


def test_configure_connector_work_area_outside_memory() -> None:
    rig = Rig()
    rig.acquire_cpu()
    # Unmapped: the index reads as 0, no DRC has it -> -3 (QEMU's load of 0).
    assert rig.configure(wa=MEM_SIZE + 0x1000) == -3
    assert rig.configure(wa=WA, hi=1) == -3  # 4 GiB + WA is beyond RAM too
    assert rig.rec.qemu_lines() == [
        "spapr_rtas_ibm_configure_connector_invalid DRC index: 0x0",
        "spapr_rtas_ibm_configure_connector_invalid DRC index: 0x0",
    ]
    assert rig.cpu.ccs_offset == 0  # nothing walked


def test_configure_connector_work_area_straddling_memory_end() -> None:
    rig = Rig()
    rig.acquire_cpu()
    wa = MEM_SIZE - 24
    rig.mem.write(wa, CPU2.to_bytes(4, "big") + bytes(20))
    assert rig.configure(wa=wa) == 2  # the name falls off the end: dropped
    assert rig.mem.read(wa + 8, 4) == (20).to_bytes(4, "big")
    assert rig.mem.read(wa + 20, 4) == b"Powe"
    assert rig.configure(wa=wa) == 3


def test_configure_connector_address_top_nibble_is_dropped() -> None:
    rig = Rig()
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    assert rig.configure(wa=WA, hi=0xF0000000) == 2
    assert rig.mem.read(WA + 20, 18) == b"PowerPC,POWER8E@2\0"


@pytest.mark.parametrize(("nargs", "nret"), [(1, 1), (3, 1), (2, 0), (2, 2)])
def test_configure_connector_arg_counts(nargs: int, nret: int) -> None:
    rig = Rig()
    rig.acquire_cpu()
    rig.prepare_work_area(CPU2)
    args = [WA, 0, 0][:nargs]
    encode_call(rig.mem, BUF, CONFIGURE_CONNECTOR, args, nret)
    rets = BUF + 12 + 4 * nargs
    rig.mem.write(rets, b"\xee" * 8)
    assert rig.dispatcher.hcall_rtas(rig.mem, BUF, None) == 0
    assert rig.mem.read(rets, 8) == (-3 & 0xFFFFFFFF).to_bytes(4, "big") + b"\xee" * 4
    assert rig.cpu.fragment is None


# --------------------------------------------------------------------------
# set-indicator
# --------------------------------------------------------------------------


def test_set_indicator_handshake() -> None:
    rig = Rig()
    rig.cpu.attach("core2")
    assert rig.set_indicator(9003, CPU2, 1) == 0
    assert rig.set_indicator(9001, CPU2, 1) == 0
    assert rig.rec.qemu_lines() == [
        "spapr_drc_attach drc: 0x10000002",
        "spapr_drc_set_allocation_state drc: 0x10000002, state: 0x1",
        "spapr_drc_set_isolation_state drc: 0x10000002, state: 0x1",
    ]
    assert rig.cpu.state == DRCState.LOGICAL_UNISOLATE


@pytest.mark.parametrize("kind", [0, 9, 9000, 9004, 0xFFFFFFFF])
def test_set_indicator_unknown_type(kind: int) -> None:
    rig = Rig()
    rig.cpu.attach("core2")
    rig.rec.clear()
    assert rig.set_indicator(kind, CPU2, 1) == -3
    assert rig.cpu.state == DRCState.LOGICAL_UNUSABLE
    assert rig.rec.events == []


@pytest.mark.parametrize("kind", [9001, 9002, 9003])
@pytest.mark.parametrize("index", [0, 0x10000007, 0x30000000, 0xFFFFFFFF])
def test_set_indicator_unknown_index(kind: int, index: int) -> None:
    rig = Rig()
    assert rig.set_indicator(kind, index, 0) == -3
    assert rig.rec.events == []


def test_set_indicator_dr_indicator() -> None:
    rig = Rig()
    assert rig.set_indicator(9002, CPU2, 1) == -3  # logical: no such indicator
    assert rig.set_indicator(9002, PCI5, 2) == 0
    assert rig.pci.dr_indicator == 2
    assert rig.set_indicator(9002, PCI5, 4) == -3
    assert rig.set_indicator(9003, PCI5, 1) == -3  # physical: no allocation state
    assert rig.rec.qemu_lines() == ["spapr_drc_set_dr_indicator drc: 0x40000005, state: 0x2"]


def test_set_indicator_trace_shows_u32_value() -> None:
    rig = Rig()
    assert rig.set_indicator(9001, CPU2, 0xFFFFFFFF) == -3
    assert rig.rec.qemu_lines() == [
        "spapr_drc_set_isolation_state drc: 0x10000002, state: 0xffffffff"
    ]


@pytest.mark.parametrize(("nargs", "nret"), [(2, 1), (4, 1), (3, 0), (3, 2)])
def test_set_indicator_arg_counts(nargs: int, nret: int) -> None:
    rig = Rig()
    rig.cpu.attach("core2")
    rig.rec.clear()
    args = [9003, CPU2, 1, 0][:nargs]
    encode_call(rig.mem, BUF, SET_INDICATOR, args, nret)
    rets = BUF + 12 + 4 * nargs
    rig.mem.write(rets, b"\xee" * 8)
    assert rig.dispatcher.hcall_rtas(rig.mem, BUF, None) == 0
    # rets[0] = -3 even when nret is 0; nothing else is touched.
    assert rig.mem.read(rets, 8) == (-3 & 0xFFFFFFFF).to_bytes(4, "big") + b"\xee" * 4
    assert rig.cpu.state == DRCState.LOGICAL_UNUSABLE
    assert rig.rec.events == []


# --------------------------------------------------------------------------
# get-sensor-state
# --------------------------------------------------------------------------


def test_get_sensor_state_values() -> None:
    rig = Rig()
    assert rig.sensor(9003, CPU2) == (0, 2)  # empty CPU slot reads UNUSABLE
    rig.cpu.attach("core2")
    assert rig.sensor(9003, CPU2) == (0, 2)
    rig.cpu.reset()
    assert rig.sensor(9003, CPU2) == (0, 1)
    assert rig.sensor(9003, PCI5) == (0, 0)  # physical, empty
    rig.pci.attach("nic")
    assert rig.sensor(9003, PCI5) == (0, 1)
    assert rig.rec.qemu_lines("spapr_rtas*") == []


def test_get_sensor_state_unsupported_type() -> None:
    rig = Rig()
    encode_call(rig.mem, BUF, GET_SENSOR_STATE, [9, 0], 2)
    rig.mem.write(BUF + 20, b"\xee" * 8)
    rig.dispatcher.hcall_rtas(rig.mem, BUF, None)
    assert read_rets(rig.mem, BUF) == (-3, 0)  # Linux's EPOW sensor probe
    assert rig.sensor(9001, CPU2) == (-3, 0)
    assert rig.rec.qemu_lines() == [
        "spapr_rtas_get_sensor_state_not_supported sensor index: 0x0, type: 9",
        "spapr_rtas_get_sensor_state_not_supported sensor index: 0x10000002, type: 9001",
    ]


def test_get_sensor_state_unknown_index() -> None:
    rig = Rig()
    assert rig.sensor(9003, 0x10000009) == (-3, 0)
    assert rig.rec.qemu_lines() == ["spapr_rtas_get_sensor_state_invalid sensor index: 0x10000009"]


@pytest.mark.parametrize(("nargs", "nret"), [(1, 2), (3, 2), (2, 1), (2, 3), (2, 0)])
def test_get_sensor_state_arg_counts(nargs: int, nret: int) -> None:
    rig = Rig()
    rig.cpu.attach("core2")
    rig.cpu.reset()
    rig.rec.clear()
    args = [9003, CPU2, 0][:nargs]
    encode_call(rig.mem, BUF, GET_SENSOR_STATE, args, nret)
    rets = BUF + 12 + 4 * nargs
    rig.mem.write(rets, b"\xee" * 12)
    assert rig.dispatcher.hcall_rtas(rig.mem, BUF, None) == 0
    # QEMU writes rets[0] = -3 and rets[1] = 0 whatever nret says; rets[2] untouched.
    assert rig.mem.read(rets, 12) == bytes.fromhex("fffffffd 00000000 eeeeeeee")
    assert rig.rec.events == []


def test_rets_outside_memory_are_dropped() -> None:
    rig = Rig()
    buf = MEM_SIZE - 20  # header + 2 args fit; rets[0] is just past the end
    encode_call(rig.mem, buf, GET_SENSOR_STATE, [9003, CPU2], 0)
    assert rig.dispatcher.hcall_rtas(rig.mem, buf, None) == 0


def test_register_names() -> None:
    rig = Rig()
    assert rig.dispatcher.registered() == [
        (0x201A, "set-indicator"),
        (0x201D, "get-sensor-state"),
        (0x201E, "ibm,configure-connector"),
    ]


# --------------------------------------------------------------------------
# Stateful: host actions interleaved with arbitrary guest RTAS calls
# --------------------------------------------------------------------------

#: The codes a core_fragment walk yields, in order (node, 3 props, child, prop, up, done).
WALK_CODES = [2, 3, 3, 3, 2, 3, 4, 0]
_COMMON_VALUES = st.sampled_from([0, 1, 2, 3, 7, 0xFFFFFFFF])
VALUE = st.one_of(_COMMON_VALUES, _COMMON_VALUES, _COMMON_VALUES, st.integers(0, 0xFFFFFFFF))
_DR_KINDS = st.sampled_from([9001, 9002, 9003])
KIND = st.one_of(_DR_KINDS, _DR_KINDS, _DR_KINDS, st.integers(0, 0xFFFFFFFF))

U, A, I, C = "U", "A", "I", "C"  # noqa: E741 - protocol.md's letters
STATES = {
    U: DRCState.LOGICAL_UNUSABLE,
    A: DRCState.LOGICAL_AVAILABLE,
    I: DRCState.LOGICAL_UNISOLATE,
    C: DRCState.LOGICAL_CONFIGURED,
}


def expected_indicator(
    s: str, dev: bool, unplug: bool, kind: int, value: int
) -> tuple[str, int, bool, bool]:
    """(state, rc, released, rejected) after set-indicator, from protocol.md §3.4."""
    if kind == 9003 and value == 1:
        if s == U:
            return (A, 0, False, False) if dev and not unplug else (U, -3, False, False)
        return s, 0, False, False
    if kind == 9003 and value == 0:
        if s == U:
            return U, 0, False, False
        if s == A:
            return U, 0, unplug, False
        return s, -3, False, False
    if kind == 9001 and value == 1:
        if s == U:
            return U, -3, False, False
        if s == A:
            return I, 0, False, False
        return s, 0, False, unplug
    if kind == 9001 and value == 0:
        if s == I:
            return I, -3, False, False
        return (A if s == C else s), 0, False, False
    return s, -3, False, False  # other values, 9002 on a logical DRC, other types


class DrcHandshake(RuleBasedStateMachine):
    """One logical DRC; the guest calls anything in any order; the host plugs and unplugs.

    A model (state letter, device, unplug flag, walk position) is advanced from
    protocol.md's tables and compared with the DRC after every step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rig = Rig()
        self.drc: DRC = self.rig.cpu
        self.drc.on_release = self._on_release
        self.drc.on_unplug_rejected = self._on_rejected
        self.attached: list[str] = []
        self.released: list[str] = []
        self.rejected: list[str] = []
        self.host_release = False
        # the model
        self.state = U
        self.device: str | None = None
        self.unplug = False
        self.walk_pos = 0
        self.rig.prepare_work_area(CPU2)

    # callbacks check the moment they are called
    def _on_release(self, drc: DRC, device: Any) -> None:
        assert device is drc.device
        assert drc.unplug_requested or self.host_release
        self.released.append(device)

    def _on_rejected(self, drc: DRC, device: Any) -> None:
        assert device is drc.device
        self.rejected.append(device)

    def _model_release(self) -> None:
        self.device = None
        self.unplug = False

    # -- host -----------------------------------------------------------------

    @rule()
    def attach(self) -> None:
        if self.device is None:
            name = f"core-{len(self.attached)}"
            self.drc.attach(name)
            self.attached.append(name)
            self.device = name
        else:
            with pytest.raises(DrcError):
                self.drc.attach("intruder")

    @rule()
    def unplug_request(self) -> None:
        if self.device is None:
            with pytest.raises(DrcError):
                self.drc.unplug_request()
            return
        released = len(self.released)
        done = self.drc.unplug_request()
        if self.state == U:
            assert done is True
            assert self.released[released:] == [self.device]
            self._model_release()
        else:
            assert done is False
            assert len(self.released) == released
            self.unplug = True

    @rule()
    def reset(self) -> None:
        released = len(self.released)
        assert self.drc.reset() is self.unplug
        if self.unplug:
            assert self.released[released:] == [self.device]
            self._model_release()
        self.state = C if self.device is not None else U
        self.walk_pos = 0

    @rule()
    def release(self) -> None:
        if self.device is not None and self.state == U:
            self.host_release = True
            try:
                self.drc.release()
            finally:
                self.host_release = False
            assert self.released[-1] == self.device
            self._model_release()
        else:
            with pytest.raises(DrcError):
                self.drc.release()

    @rule()
    def migrate(self) -> None:
        section = self.drc.vmstate()
        if section is not None:
            self.drc.load_vmstate(section)
            self.walk_pos = 0  # the fragment is rebuilt and walked from the start

    # -- guest ----------------------------------------------------------------

    def _indicator(self, kind: int, value: int) -> None:
        new, code, release, reject = expected_indicator(
            self.state, self.device is not None, self.unplug, kind, value
        )
        released, rejected = len(self.released), len(self.rejected)
        assert self.rig.set_indicator(kind, CPU2, value) == code
        assert self.released[released:] == ([self.device] if release else [])
        assert self.rejected[rejected:] == ([self.device] if reject else [])
        if release:
            self._model_release()
        if reject:
            self.unplug = False
        if self.state == A and new == I:
            self.walk_pos = 0
        self.state = new

    @rule(kind=KIND, value=VALUE)
    def set_indicator(self, kind: int, value: int) -> None:
        self._indicator(kind, value)

    @rule()
    def guest_acquire(self) -> None:
        """What Linux does on an ADD event: allocate, then unisolate."""
        self._indicator(9003, 1)
        self._indicator(9001, 1)

    @rule()
    def guest_give_back(self) -> None:
        """What Linux does on a REMOVE event: isolate, then unallocate."""
        self._indicator(9001, 0)
        self._indicator(9003, 0)

    @rule(index=st.integers(0, 0xFFFFFFFF))
    def set_indicator_elsewhere(self, index: int) -> None:
        if index not in (CPU2, PCI5):
            assert self.rig.set_indicator(9003, index, 1) == -3

    @rule(calls=st.integers(1, 10))
    def configure_connector(self, calls: int) -> None:
        for _ in range(calls):
            code = self.rig.configure()
            if self.state in (U, A):
                assert code == -9003
                continue
            assert code == WALK_CODES[self.walk_pos]
            self.walk_pos = (self.walk_pos + 1) % len(WALK_CODES)
            if code == 0:
                self.state = C

    @rule()
    def sensor(self) -> None:
        assert self.rig.sensor(9003, CPU2) == (0, 2 if self.state == U else 1)

    # -- invariants -------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        assert self.drc.state == STATES[self.state]
        assert self.drc.device == self.device
        assert self.drc.unplug_requested == self.unplug

    @invariant()
    def legal_state(self) -> None:
        assert self.drc.state in STATES.values()
        if self.drc.state != DRCState.LOGICAL_UNUSABLE:
            assert self.drc.device is not None
        if self.drc.unplug_requested:
            assert self.drc.device is not None

    @invariant()
    def no_device_lost(self) -> None:
        current = [] if self.drc.device is None else [self.drc.device]
        assert self.attached == self.released + current
        assert len(set(self.released)) == len(self.released)

    @invariant()
    def empty_drc_has_no_fragment(self) -> None:
        if self.drc.device is None:
            assert self.drc.fragment is None


DrcHandshake.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDrcHandshake = DrcHandshake.TestCase
