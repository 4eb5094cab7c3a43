"""The host-side trace of device_add / device_del / system_reset against QEMU 7.2's own.

The oracle runs enabled ``-trace 'spapr_drc*' ... -trace 'xics*'`` and logged every
event from machine creation to quit. Replaying the same QMP commands against the
emulator must give the same lines in the same order — connector realizes, attaches,
resets (with QEMU's container order and its restart after a completed unplug),
unplug requests, and the masked-pending pulses of the EPOW interrupt. Only QEMU's
``handle_qmp_command`` lines (monitor I/O, with a pointer value) are left out.
"""

from __future__ import annotations

import fnmatch
import io
import json
from pathlib import Path

import pytest

from machine.board.build import build_machine
from spapr.errors import QemuError

DATA = Path(__file__).parent / "data" / "trace"
PATTERNS = ["spapr_drc*", "spapr_rtas*", "spapr_cpu*", "spapr_irq*", "spapr_update_dt*",
            "spapr_cas*", "xics*", "xive*"]  # fmt: skip
COMMON = "-m 1G -nographic -display none -nodefaults -S -seed 1".split()
CASES = {
    "hotplug_unplug_p8e": "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4",
    "cmdline_core2_unplug_reset_p8e": "-M pseries -cpu POWER8E -smp 2,cores=4,threads=1,maxcpus=4 "
    "-device power8e_v2.1-spapr-cpu-core,id=core2,core-id=2",
}


def replay(name: str) -> tuple[list[str], list[dict]]:
    machine = build_machine(CASES[name].split() + COMMON, io.StringIO())
    machine.reset()
    responses: list[dict] = []
    for line in (DATA / f"{name}.jsonl").read_text().splitlines():
        msg = json.loads(line)
        if msg["dir"] != "out":
            continue
        command, args = msg["msg"]["execute"], msg["msg"].get("arguments", {})
        if command not in ("device_add", "device_del", "system_reset"):
            continue
        try:
            if command == "device_add":
                machine.device_add(args)
            elif command == "device_del":
                machine.device_del(args["id"])
            else:
                machine.system_reset()
            responses.append({"return": {}})
        except QemuError as err:
            responses.append({"error": {"class": err.error_class, "desc": err.message}})
    lines = [
        e.qemu_line()
        for e in machine.trace.events
        if any(fnmatch.fnmatchcase(e.name, p) for p in PATTERNS)
    ]
    return lines, responses


@pytest.mark.parametrize("name", sorted(CASES))
def test_trace_equals_qemu(name: str) -> None:
    ours, _ = replay(name)
    theirs = [
        line
        for line in (DATA / f"{name}.trace").read_text().splitlines()
        if not line.startswith("handle_qmp_command")
    ]
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(CASES))
def test_replayed_commands_answer_like_qemu(name: str) -> None:
    _, responses = replay(name)
    expected = [
        json.loads(line)["msg"]
        for line in (DATA / f"{name}.jsonl").read_text().splitlines()
        if json.loads(line)["dir"] == "in"
        and ("return" in json.loads(line)["msg"] or "error" in json.loads(line)["msg"])
    ]
    # drop qmp_capabilities' and quit's answers: the replay sends neither
    assert responses == expected[1 : 1 + len(responses)]
