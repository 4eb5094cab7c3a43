"""All 42 device_add / device_del cases of QEMU 7.2's qmp_errors.json, on the machine API.

Cases run in file order on one machine per configuration (later cases depend on
earlier ones: "duplicate id" follows the first successful add), with the command
line QEMU used for that configuration. The monitor's own tests replay the same
table through a real QMP client; this one checks the machine underneath.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from spapr.errors import QemuError

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = json.loads((DATA / "errors" / "qmp_errors.json").read_text())
MANIFEST = json.loads((DATA / "dtb" / "manifest.json").read_text())["files"]


def machine_for(config: str) -> PseriesMachine:
    argv = [a for a in MANIFEST[f"dtb/{config}.dtb"]["argv"][1:]]
    argv = [a.replace(f",dumpdtb={config}.dtb", "") for a in argv]
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    return machine


def execute(machine: PseriesMachine, request: dict[str, Any]) -> dict[str, Any]:
    args = request.get("arguments", {})
    try:
        if request["execute"] == "device_add":
            machine.device_add(args)
        else:
            if "id" not in args:
                raise QemuError("Parameter 'id' is missing")
            machine.device_del(args["id"])
    except QemuError as err:
        return {"error": {"class": err.error_class, "desc": err.message}}
    return {"return": {}}


def test_every_case_answers_like_qemu() -> None:
    machines: dict[str, PseriesMachine] = {}
    mismatches = []
    for case in CASES:
        machine = machines.setdefault(case["config"], machine_for(case["config"]))
        got = execute(machine, case["request"])
        if got != case["response"]:
            mismatches.append((case["case"], got, case["response"]))
    assert mismatches == []
    assert len(CASES) == 42


def snapshot(machine: PseriesMachine) -> tuple[Any, ...]:
    drcs = [(d.index, d.state, d.device is not None, d.unplug_requested) for d in machine.drcs]
    return (
        machine.query_hotpluggable_cpus(),
        machine.query_cpus_fast(),
        drcs,
        sorted(machine.qom.peripheral.children),
        len(machine.events),
    )


@pytest.mark.parametrize("config", sorted({c["config"] for c in CASES}))
def test_refusals_leave_the_machine_unchanged(config: str) -> None:
    machine = machine_for(config)
    refused = 0
    for case in CASES:
        if case["config"] != config:
            continue
        before = snapshot(machine)
        got = execute(machine, case["request"])
        if "error" in got:
            refused += 1
            assert snapshot(machine) == before, case["case"]
    assert refused > 0


def test_requests_that_crash_qemu_72_get_a_clear_refusal() -> None:
    """Checked against the installed QEMU 7.2: a core-id of 2**31 segfaults it (the C int
    wraps negative) and realized=on trips an assertion; the emulator refuses both."""
    machine = machine_for("p8e_classic")
    add = {"execute": "device_add", "arguments": {"driver": "power8e_v2.1-spapr-cpu-core"}}
    wrapped = {**add, "arguments": {**add["arguments"], "core-id": 2**31}}
    assert execute(machine, wrapped) == {
        "error": {"class": "GenericError", "desc": "core id -2147483648 out of range"}
    }
    realized = {**add, "arguments": {**add["arguments"], "core-id": 2, "realized": True}}
    assert execute(machine, realized) == {
        "error": {
            "class": "GenericError",
            "desc": "Property 'power8e_v2.1-spapr-cpu-core.realized' is not writable",
        }
    }
    # 2**32 + 3 wraps to core-id 3, as QEMU's int property does
    wraps = {**add, "arguments": {**add["arguments"], "id": "w", "core-id": 2**32 + 3}}
    assert execute(machine, wraps) == {"return": {}}
    assert machine.query_hotpluggable_cpus()[0]["qom-path"] == "/machine/peripheral/w"
