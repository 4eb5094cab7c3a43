"""Playing the guest at the HMP prompt (``-guest manual``): the hotplug handshake by hand.

The person at the prompt makes each RTAS call with ``rtas``; the manual guest's
thread writes the buffer into guest memory and traps with H_RTAS, and the machine
answers through its one dispatcher. The expected answers come from PAPR and QEMU
7.2 (protocol.md §3.4 state tables, §4 calls, §6.4 the walk of a POWER9 core,
§7 the handshake), not from what the emulator printed: a hand-made add brings
the core online, a hand-made remove ends in DEVICE_DELETED, every call in the
wrong order gets QEMU's status with a ``why:`` line, and input that cannot become
a call changes nothing at all.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from oracle_tools import QEMU

from machine.board.build import build_machine
from machine.board.manual_guest import ManualGuest
from machine.cli.main import main
from machine.monitor.control import MachineControl
from machine.monitor.hmp import HmpMonitor
from machine.sched import VcpuState
from rtas.tokens import RTAS_SERVICE_NAMES
from spapr.drc import DRCState

ARGS = "-M pseries -cpu POWER9 -smp 1,maxcpus=4 -m 512M -nodefaults -seed 1 -guest manual"
CORE = "power9_v2.0-spapr-cpu-core"
INDEX = 0x10000001
HMP_DATA = Path(__file__).parent / "data" / "hmp"
STATUS = re.compile(r"^  status (-?\d+) ", re.M)


class Prompt:
    """A machine with the manual guest, its HMP monitor, settled after each line."""

    def __init__(self, args: str = ARGS) -> None:
        self.machine = build_machine(args.split(), io.StringIO())
        self.machine.reset()
        self.control = MachineControl(self.machine)
        self.hmp = HmpMonitor(self.control)
        self.control.settle()

    def __call__(self, line: str) -> str:
        text = self.hmp.execute(line)
        self.control.settle()
        return text

    def status(self, line: str) -> int:
        """Run an ``rtas`` line and return the status it printed."""
        text = self(line)
        match = STATUS.search(text)
        assert match, text
        return int(match.group(1))

    @property
    def guest(self) -> ManualGuest:
        guest = self.machine.guest
        assert isinstance(guest, ManualGuest)
        return guest

    def drc_state(self, index: int = INDEX) -> DRCState:
        drc = self.machine.drc(index)
        assert drc is not None
        return drc.state

    def walk(self, index: int = INDEX) -> list[int]:
        """configure-connector until it stops answering 2/3/4; the statuses."""
        codes = []
        for _ in range(100):
            codes.append(self.status(f"rtas ibm,configure-connector {index:#x}"))
            if codes[-1] not in (2, 3, 4):
                break
        return codes

    def add_by_hand(self) -> None:
        """device_add, then the whole add handshake by hand up to start-cpu."""
        assert self(f"device_add {CORE},id=core1,core-id=1") == ""
        assert self.status("rtas check-exception") == 0
        assert self.status(f"rtas get-sensor-state 9003 {INDEX:#x}") == 0
        assert self.status(f"rtas set-indicator 9003 {INDEX:#x} 1") == 0
        assert self.status(f"rtas set-indicator 9001 {INDEX:#x} 1") == 0
        assert self.walk()[-1] == 0
        assert self.status("rtas start-cpu 1") == 0


@pytest.fixture
def prompt() -> Prompt:
    return Prompt()


def machine_state(p: Prompt) -> dict[str, Any]:
    """Everything a call could change, to check that refused input changed nothing."""
    m = p.machine
    return {
        "drcs": [(d.index, d.state, d.unplug_requested, d.ccs_offset) for d in m.drcs],
        "events": [e.summary for e in m.events],
        "qmp": list(m.qmp_events),
        "rtas_calls": len(m.trace.select("rtas_call")),
        "now": m.sched.now,
        "threads": [(t.vcpu_id, m.sched.state(t.vcpu_id)) for t in m.iter_threads()],
        "memory": m.memory.read(p.guest.work_area, 64) + m.memory.read(p.guest.errlog_buffer, 128),
    }


# -- the handshakes --------------------------------------------------------------------


def test_the_add_handshake_by_hand_brings_the_core_online(prompt: Prompt) -> None:
    p = prompt
    assert "CPU #1" not in p("info cpus")
    assert p(f"device_add {CORE},id=core1,core-id=1") == ""
    # QEMU queued an ADD and raised hot-plug-events (the guest negotiated it at CAS)
    assert "hotplug ADD CPU drc index 0x10000001 -> hot-plug-events" in p("info pending")
    text = p("rtas check-exception")
    assert STATUS.search(text).group(1) == "0"  # type: ignore[union-attr]
    assert "summary 0x063460e5" in text  # §5.3: v6, EVENT, NOT_RECOVERED, HOTPLUG, 0xE5
    assert "hotplug: ADD CPU, by DRC_INDEX 0x10000001" in text
    # §7.1 #8: the connector reads 2 UNUSABLE with the device attached
    text = p(f"rtas get-sensor-state 9003 {INDEX:#x}")
    assert "status 0 SUCCESS" in text and "state 2 UNUSABLE" in text
    assert p.status(f"rtas set-indicator 9003 {INDEX:#x} 1") == 0
    assert p.drc_state() is DRCState.LOGICAL_AVAILABLE
    assert p.status(f"rtas set-indicator 9001 {INDEX:#x} 1") == 0
    assert p.drc_state() is DRCState.LOGICAL_UNISOLATE
    # §6.4: 2, one 3 per property (30 for a radix POWER9 TCG core), then 0 -> CONFIGURED
    codes = p.walk()
    assert codes == [2] + [3] * 30 + [0]
    assert p.drc_state() is DRCState.LOGICAL_CONFIGURED
    node = p("dt show /cpus/PowerPC,POWER9@1")
    assert node.startswith("PowerPC,POWER9@1 {")
    assert "ibm,my-drc-index = <0x10000001>;" in node and "reg = <0x01>;" in node
    # §7.1 #13: the new thread is stopped until start-cpu
    assert "state 0 STOPPED" in p("rtas query-cpu-stopped-state 1")
    assert p.machine.sched.state(1) is VcpuState.STOPPED
    assert "(stopped)" in p("info cpus").splitlines()[1]
    assert p.status("rtas start-cpu 1") == 0
    assert p.machine.sched.state(1) is not VcpuState.STOPPED
    lines = p("info cpus").splitlines()
    assert re.fullmatch(r"  CPU #1: thread_id=\d+ \(online\)", lines[1])
    # and the thread really runs guest code: it can make calls itself
    assert p("vcpu 1") == "rtas calls are now made from vCPU 1\n"
    assert p.status("rtas query-cpu-stopped-state 0") == 0


def test_a_hand_made_remove_ends_in_device_deleted(prompt: Prompt) -> None:
    p = prompt
    p.add_by_hand()
    assert p("device_del core1") == ""
    assert "no DEVICE_DELETED events yet" in p("info events DEVICE_DELETED")
    text = p("rtas check-exception")
    assert "hotplug: REMOVE CPU, by DRC_INDEX 0x10000001" in text
    # the dying thread stops itself (§7.2 #6): stop-self never returns
    p("vcpu 1")
    text = p("rtas stop-self")
    assert "no return" in text and "status" not in text
    assert p.machine.sched.state(1) is VcpuState.STOPPED
    assert "state 0 STOPPED" in p("rtas query-cpu-stopped-state 1")
    assert "state 1 PRESENT" in p(f"rtas get-sensor-state 9003 {INDEX:#x}")
    assert p.status(f"rtas set-indicator 9001 {INDEX:#x} 0") == 0  # C -> A
    assert p.machine.qmp_events == []
    text = p(f"rtas set-indicator 9003 {INDEX:#x} 0")  # A -> U, release (§2.5)
    assert "status 0 SUCCESS" in text and "DEVICE_DELETED" in text
    events = [(e.name, dict(e.data)) for e in p.machine.qmp_events]
    assert events[-1] == (
        "DEVICE_DELETED",
        {"device": "core1", "path": "/machine/peripheral/core1"},
    )
    shown = p("info events DEVICE_DELETED").splitlines()[-1]
    assert re.fullmatch(
        r" *\d+\.\d{6} s  DEVICE_DELETED "
        + re.escape(json.dumps({"device": "core1", "path": "/machine/peripheral/core1"})),
        shown,
    )
    assert "CPU #1" not in p("info cpus")
    assert "PowerPC,POWER9@1" not in p("dt show /cpus")  # the guest detached its node
    assert p.drc_state() is DRCState.LOGICAL_UNUSABLE


def test_a_guest_that_unisolates_during_an_unplug_rejects_it(prompt: Prompt) -> None:
    """§3.4: UNISOLATE on a CONFIGURED connector with an unplug pending is a rejection."""
    p = prompt
    p.add_by_hand()
    p("device_del core1")
    p("rtas check-exception")
    text = p(f"rtas set-indicator 9001 {INDEX:#x} 1")
    assert "status 0 SUCCESS" in text and "refusing the unplug" in text
    assert [e.name for e in p.machine.qmp_events] == ["DEVICE_UNPLUG_GUEST_ERROR"]
    assert p.drc_state() is DRCState.LOGICAL_CONFIGURED


# -- calls in the wrong order -------------------------------------------------------------

#: (setup steps, the call, QEMU's status, a phrase of the why: line). Statuses from
#: protocol.md: §3.4 (connector states), §4.5 (sensors), §4.6 (configure-connector),
#: §4.7/4.8 (events), §4.9/4.11 (threads).
WRONG_ORDER = [
    ("added", f"ibm,configure-connector {INDEX:#x}", -9003, "only when it is UNISOLATE"),
    ("usable", f"ibm,configure-connector {INDEX:#x}", -9003, "LOGICAL_AVAILABLE"),
    ("plain", "ibm,configure-connector 0x10000009", -3, "no connector with index 0x10000009"),
    ("added", f"set-indicator 9001 {INDEX:#x} 1", -3, "LOGICAL_UNUSABLE"),
    ("unisolated", f"set-indicator 9003 {INDEX:#x} 0", -3, "LOGICAL_UNISOLATE"),
    ("unisolated", f"set-indicator 9001 {INDEX:#x} 0", -3, "finish the walk"),
    ("configured", f"set-indicator 9003 {INDEX:#x} 0", -3, "LOGICAL_CONFIGURED"),
    ("plain", "set-indicator 9003 0x10000002 1", -3, "nothing is attached"),
    ("plain", "set-indicator 9003 0x10000009 1", -3, "no connector"),
    ("added", f"set-indicator 9003 {INDEX:#x} 2", -3, "0 or 1 only"),
    ("added", f"set-indicator 9002 {INDEX:#x} 1", -3, "physical (PCI) connectors only"),
    ("added", f"set-indicator 9004 {INDEX:#x} 1", -3, "9001, 9002 and 9003 only"),
    ("plain", "get-sensor-state 9 0", -3, "only sensor 9003"),
    ("plain", "get-sensor-state 9003 0x10000009", -3, "no connector"),
    ("plain", "check-exception", 1, "no pending event"),
    ("added", "check-exception epow", 1, "no pending event belongs to the classes epow"),
    ("plain", "event-scan", 1, "QEMU returns no event from event-scan"),
    ("plain", "start-cpu 0", -1, "already runs guest code"),
    ("plain", "start-cpu 7", -3, "no thread with hardware id 7"),
    ("plain", "query-cpu-stopped-state 7", -3, "no thread with hardware id 7"),
]


def _setup(p: Prompt, stage: str) -> None:
    if stage == "plain":
        return
    p(f"device_add {CORE},id=core1,core-id=1")
    p("rtas check-exception")
    if stage == "added":
        return
    p(f"rtas set-indicator 9003 {INDEX:#x} 1")
    if stage == "usable":
        return
    p(f"rtas set-indicator 9001 {INDEX:#x} 1")
    if stage == "unisolated":
        return
    p.walk()


@pytest.mark.parametrize(
    ("stage", "call", "status", "why"), WRONG_ORDER, ids=[f"{c[0]}:{c[1]}" for c in WRONG_ORDER]
)
def test_a_call_in_the_wrong_order_gets_qemus_answer_explained(
    prompt: Prompt, stage: str, call: str, status: int, why: str
) -> None:
    _setup(prompt, stage)
    drcs = [(d.index, d.state, d.unplug_requested) for d in prompt.machine.drcs]
    text = prompt(f"rtas {call}")
    assert prompt.status(f"rtas {call}") == status, text
    assert why in text, text
    assert "why:" in text
    assert [(d.index, d.state, d.unplug_requested) for d in prompt.machine.drcs] == drcs


def test_names_and_numbers_mean_the_same(prompt: Prompt) -> None:
    p = prompt
    _setup(p, "added")
    by_name = p(f"rtas get-sensor-state entity-sense {INDEX:#x}")
    by_token = p(f"rtas 0x201d 9003 {INDEX:#x}")
    assert by_name == by_token and "state 2 UNUSABLE" in by_name
    assert p.status(f"rtas set-indicator allocation-state {INDEX:#x} usable") == 0
    assert p.status(f"rtas set-indicator isolation-state {INDEX:#x} unisolated") == 0
    assert p.drc_state() is DRCState.LOGICAL_UNISOLATE


def test_the_prompt_supplies_the_buffers_and_the_walk_keeps_its_work_area(
    prompt: Prompt,
) -> None:
    p = prompt
    _setup(p, "unisolated")
    assert "work-area=" in p(f"rtas ibm,configure-connector {INDEX:#x}")
    wa = p.guest.work_area
    assert p.machine.memory.ld32(wa) == INDEX  # the guest names the DRC in word 0
    text = p(f"rtas ibm,configure-connector {INDEX:#x}")
    assert 'property name = "PowerPC,POWER9@1"' in text  # §6.4 call 2
    assert p.machine.memory.ld32(wa + 8) == 20  # name offset (§4.6)
    text = p("rtas check-exception")  # nothing pending now
    assert f"buffer={p.guest.errlog_buffer:#x} length=2048" in text


# -- input that is no call -----------------------------------------------------------------

BAD_INPUT = [
    ("rtas no-such-call", "no service 'no-such-call' in the guest's /rtas node"),
    ("rtas 0x2050 1", "token 0x2050 is not in the guest's /rtas node"),
    ("rtas set-indicator 9003 0x10000001", "takes 3 arguments, not 2"),
    ("rtas get-sensor-state 9003 0x10000001 7", "takes 2 arguments, not 3"),
    ("rtas get-sensor-state 9003 banana", "'banana' is not a number"),
    ("rtas get-sensor-state 9003 0x1ffffffff", "does not fit in 32 bits"),
    ("rtas set-indicator 9003 0x10000001 maybe", "neither a number nor one of"),
    ("rtas check-exception 0x500 0x1001 hot-plug 0 0x1ffffc00 2048", "lies past guest memory"),
    ("rtas event-scan hot-plug 0 0x7ffffff0 2048", "lies past guest memory"),
    ("rtas ibm,get-system-parameter 20 0x1ffffff0 4096", "lies past guest memory"),
    ("rtas ibm,configure-connector", "usage: rtas ibm,configure-connector index"),
    ("rtas check-exception bogus-class", "neither a number nor one of"),
    ("rtas", "usage: rtas NAME|TOKEN"),
]


@pytest.mark.parametrize(("line", "message"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_gets_a_clear_message_and_changes_nothing(
    prompt: Prompt, line: str, message: str
) -> None:
    _setup(prompt, "added")
    before = machine_state(prompt)
    text = prompt.hmp.execute(line)  # no settling: nothing may have moved at all
    assert message in text, text
    assert "buffer" not in text.split("\n", 1)[-1] or "past guest memory" in text
    assert machine_state(prompt) == before


def test_a_stopped_vcpu_makes_no_calls_and_vcpu_names_only_real_ones(prompt: Prompt) -> None:
    p = prompt
    assert "there is no vCPU 5" in p("vcpu 5")
    p(f"device_add {CORE},id=core1,core-id=1")
    assert "stopped" in p("vcpu 1")
    before = machine_state(p)
    assert "vCPU 1 is stopped" in p.hmp.execute(f"rtas get-sensor-state 9003 {INDEX:#x}")
    assert machine_state(p) == before


def test_a_paused_vm_makes_no_calls(prompt: Prompt) -> None:
    p = prompt
    p("stop")
    before = machine_state(p)
    assert "the VM is paused" in p.hmp.execute("rtas event-scan")
    assert machine_state(p) == before


def test_rtas_needs_the_manual_guest() -> None:
    p = Prompt(ARGS.replace("-guest manual", "-guest none"))
    assert "only with -guest manual" in p("rtas event-scan")
    assert "only with -guest manual" in p("vcpu 0")


def test_help_rtas_lists_every_service_with_its_arguments(prompt: Prompt) -> None:
    text = prompt("help rtas")
    assert text.startswith("rtas name|token [arg...] -- [emulator addition]")
    for name in RTAS_SERVICE_NAMES.values():
        assert re.search(rf"^  {re.escape(name)}( |$)", text, re.M), name
    assert "  set-indicator indicator index value" in text
    assert "      or: check-exception [event-mask]" in text


def test_every_service_the_guest_finds_in_rtas_can_be_called(prompt: Prompt) -> None:
    """Each /rtas service answers with some status (the PCI/EEH/DDW ones: no device)."""
    names = sorted(prompt.guest.tokens)
    assert names == sorted(RTAS_SERVICE_NAMES.values())
    for name in ("ibm,read-pci-config", "ibm,query-pe-dma-window", "nvram-fetch", "quiesce"):
        text = prompt(f"rtas {name} " + " ".join(["0"] * _arity(prompt, name)))
        assert STATUS.search(text), text


def _arity(p: Prompt, name: str) -> int:
    usage = next(line for line in p("help rtas").splitlines() if line.startswith(f"  {name}"))
    return len(usage.split("--")[0].split()) - 1


# -- views -------------------------------------------------------------------------------------


def test_info_drc_shows_every_connector(prompt: Prompt) -> None:
    p = prompt
    lines = p("info drc").splitlines()
    assert lines[0].split() == ["index", "name", "state", "sense", "device", "notes"]
    assert len(lines) - 1 == len(p.machine.drcs)
    cpu = p("info drc cpu").splitlines()[1:]
    assert [line.split()[:5] for line in cpu[:2]] == [
        ["0x10000000", "CPU", "0", "LOGICAL_CONFIGURED", "PRESENT"],
        ["0x10000001", "CPU", "1", "LOGICAL_UNUSABLE", "UNUSABLE"],
    ]
    assert "no connector with index 0x10000009" in p("info drc 0x10000009")


def test_dt_show_prints_the_guests_tree_as_dtc_does(prompt: Prompt) -> None:
    p = prompt
    root = p("dt show")
    assert root.startswith("/dts-v1/;\n\n/ {")
    assert p("dt show /event-sources").startswith("event-sources {")
    assert "no node /nope" in p("dt show /nope")


def _normalize_pic(text: str) -> str:
    return re.sub(r"(ICS \S+) 0x[0-9a-f]+", r"\1 PTR", text)


@pytest.mark.parametrize("config", ["p8_xics", "p9_xics"])
def test_info_pic_is_qemus_text(config: str) -> None:
    """QEMU 7.2 recorded on -S machines (tests/data/hmp/qemu72_info_pic.json)."""
    session = json.loads((HMP_DATA / "qemu72_info_pic.json").read_text())[config]
    argv = [w for w in session["argv"][1:] if w not in ("-monitor", "stdio")]
    machine = build_machine([*argv, "-guest", "none"], io.StringIO())
    machine.reset()
    hmp = HmpMonitor(MachineControl(machine))
    for command, expected in session["steps"]:
        assert _normalize_pic(hmp.execute(command)) == _normalize_pic(expected), command


def test_info_pic_in_xive_mode_shows_the_xive_state() -> None:
    """ic-mode=xive: the thread contexts and sources, QEMU's layout (tests/test_xive.py)."""
    p = Prompt("-M pseries,ic-mode=xive -cpu POWER9 -smp 1 -nodefaults -guest none")
    lines = p("info pic").splitlines()
    assert lines[0] == "CPU[0000]:   QW   NSR CPPR IPB LSMFB ACK# INC AGE PIPR  W2"
    assert "  LISN         PQ    EISN     CPU/PRIO EQ" in lines
    assert "  00001001 MSI -Q  M 00000000 " in lines
    assert lines[-1] == "irqchip: emulated"


def test_info_events_lists_qmp_events_with_virtual_time(prompt: Prompt) -> None:
    p = prompt
    assert p("info events") == "no QMP events yet\n"
    p("system_reset")
    line = p("info events").splitlines()[-1]
    assert re.fullmatch(r" *\d+\.\d{6} s  RESET \{.*\}", line)


def test_the_guest_takes_its_interrupts_and_notes_them(prompt: Prompt) -> None:
    p = prompt
    p(f"device_add {CORE},id=core1,core-id=1")
    assert "interrupts the guest took and has not answered: 1" in p("info pending")
    p("rtas check-exception")
    pending = p("info pending")
    assert "events QEMU holds for the guest: 0" in pending
    assert "interrupts the guest took and has not answered: 0" in pending


def qemu_hmp_session(argv: list[str], commands: list[str]) -> list[str]:
    """Run HMP ``commands`` on a real QEMU (-monitor stdio); each command's output."""
    assert QEMU is not None
    proc = subprocess.run(
        [QEMU, *argv],
        input="\n".join([*commands, "quit"]) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stdout).replace("\r", "")
    chunks = text.split("(qemu) ")[1:]
    return [chunk.split("\n", 1)[1] if "\n" in chunk else "" for chunk in chunks[: len(commands)]]


@pytest.mark.qemu
@pytest.mark.parametrize("config", ["p8_xics", "p9_xics"])
def test_live_info_pic_matches_qemu(config: str) -> None:
    session = json.loads((HMP_DATA / "qemu72_info_pic.json").read_text())[config]
    commands = [command for command, _ in session["steps"]]
    live = qemu_hmp_session(session["argv"][1:], commands)
    argv = [w for w in session["argv"][1:] if w not in ("-monitor", "stdio")]
    machine = build_machine([*argv, "-guest", "none"], io.StringIO())
    machine.reset()
    hmp = HmpMonitor(MachineControl(machine))
    for command, expected in zip(commands, live, strict=True):
        assert _normalize_pic(hmp.execute(command)) == _normalize_pic(expected), command


def test_the_play_guest_scenario_walks_both_handshakes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-scenario", "play-guest"]) == 0
    out = capsys.readouterr().out
    assert out.count("(qemu) rtas ibm,configure-connector 0x10000001") == 32
    assert "status 0 SUCCESS: the walk is complete" in out
    assert re.search(r"^  CPU #1: thread_id=\d+ \(online\)$", out, re.M)
    assert '# event DEVICE_DELETED {"device": "core1", "path": "/machine/peripheral/core1"}' in out
    assert out.rstrip().endswith("rtas calls from here)")
