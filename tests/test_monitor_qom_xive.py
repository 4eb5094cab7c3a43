"""QOM of the interrupt controllers against QEMU 7.2: spapr-xive, its sources and regions,
each thread's xive-tctx and icp, the ics in dual mode.

Expected answers are real QEMU 7.2's (tests/data/xive/qom_qemu72.json, written by
tests/data/xive/capture_qom.py): for ``ic-mode=xive`` and the default dual mode on
POWER9 and POWER10 with ``-nodefaults -S``, every listed path's ``qom-list`` and
every property's ``qom-get`` (value or error), before and after a ``device_add``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from machine.board.build import build_machine
from machine.monitor.control import MachineControl
from machine.monitor.qom_props import QomView
from spapr.errors import QemuError

CAPTURE = json.loads((Path(__file__).parent / "data" / "xive" / "qom_qemu72.json").read_text())
COMMON = ["-m", "1G", "-nographic", "-display", "none", "-nodefaults", "-S"]
CASES = [
    (config["args"], phase, path)
    for config in CAPTURE["configs"]
    for phase in ("before", "after")
    for path in config[phase]
]


def _machine(args: str) -> MachineControl:
    machine = build_machine([*args.split(), *COMMON], io.StringIO())
    machine.reset()
    return MachineControl(machine)


_CONTROLS: dict[tuple[str, str], MachineControl] = {}


def _control(args: str, phase: str) -> MachineControl:
    """One machine per configuration and phase (the core added for ``after``)."""
    key = (args, phase)
    if key not in _CONTROLS:
        control = _machine(args)
        if phase == "after":
            config = next(c for c in CAPTURE["configs"] if c["args"] == args)
            control.device_add(dict(config["device_add"]))
            control.view.sync()
        _CONTROLS[key] = control
    return _CONTROLS[key]


def _answer(view: QomView, path: str, prop: str) -> dict[str, Any]:
    node = view.resolve(path)
    assert node is not None, path
    try:
        return {"return": view.qom_get(node, prop)}
    except QemuError as err:
        return {"error": {"class": "GenericError", "desc": str(err)}}


@pytest.mark.parametrize(("args", "phase", "path"), CASES)
def test_qom_list_and_every_property_as_qemu(args: str, phase: str, path: str) -> None:
    recorded = next(c for c in CAPTURE["configs"] if c["args"] == args)[phase][path]
    view = _control(args, phase).view
    node = view.resolve(path)
    assert node is not None, path
    assert {"return": view.qom_list(node)} == recorded["qom-list"]
    for prop, reply in recorded.get("qom-get", {}).items():
        assert _answer(view, path, prop) == reply, prop
