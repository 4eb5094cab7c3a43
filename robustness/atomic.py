"""Area 7: all or nothing — a host operation that fails at any step leaves nothing behind.

Every step of ``device_add`` (pre-plug checks, the QOM object and its children, the
vCPU threads, their interrupt presenters and random seeds, the DRC attach, the
event and its log id) and of ``device_del`` (the request, the DRC's flag, the
event) is made to fail in turn: the N-th call among those steps raises
:class:`InjectedFault`, for N = 1, 2, ... until the operation gets through. After
each failure:

* the machine is exactly as before (:func:`robustness.harness.fingerprint`: the
  client-visible queries, the QOM tree, every CPU connector, the cores and slots,
  the scheduler's threads, the presenters, the pending events and their log-id
  counter, the guest random stream; host thread ids aside, as QEMU's are the host's);
* it keeps its invariants (no half-plugged core, no orphan vCPU thread, no
  connector left attached);
* the same operation, retried without the fault, succeeds, and the machine then
  equals one where it succeeded the first time (after the guest has acted on both).
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

from machine.board.guest_random import GuestRandom
from machine.board.qom import QomTree
from machine.monitor.control import MachineControl
from machine.sched import VcpuScheduler
from robustness.harness import P9, P9_CORE, fingerprint, invariants, new_control
from robustness.report import AreaReport, Progress
from spapr.cpu_core import CoreHotplugHandler
from spapr.drc import DRC
from spapr.errors import QemuError
from spapr.events import EventQueue
from spapr.xics import Xics


class InjectedFault(RuntimeError):
    """The failure the campaign injects into a step."""


Step = tuple[type, str]

ADD_STEPS: list[Step] = [
    (CoreHotplugHandler, "pre_plug"),
    (QomTree, "add_child"),
    (CoreHotplugHandler, "realize"),
    (VcpuScheduler, "add_vcpu"),
    (Xics, "add_icp"),
    (GuestRandom, "vcpu_thread_started"),
    (CoreHotplugHandler, "plug"),
    (DRC, "attach"),
    (EventQueue, "queue_hotplug"),
    (EventQueue, "_trace_change"),
]
DEL_STEPS: list[Step] = [
    (CoreHotplugHandler, "unplug_request"),
    (DRC, "unplug_request"),
    (EventQueue, "queue_hotplug"),
    (EventQueue, "_trace_change"),
]


@contextlib.contextmanager
def inject(steps: list[Step], at: int) -> Iterator[list[str]]:
    """Make the ``at``-th call (1-based) among ``steps`` raise; yields the calls' names."""
    calls: list[str] = []
    saved: list[tuple[type, str, Any]] = []

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if len(calls) == at:
                raise InjectedFault(f"injected into {name}")
            return original(*args, **kwargs)

        return step

    for owner, name in steps:
        raw = inspect.getattr_static(owner, name)
        saved.append((owner, name, raw))
        label = f"{owner.__name__}.{name}"
        if isinstance(raw, staticmethod):
            setattr(owner, name, staticmethod(wrap(label, raw.__func__)))
        else:
            setattr(owner, name, wrap(label, raw))
    try:
        yield calls
    finally:
        for owner, name, raw in reversed(saved):
            setattr(owner, name, raw)


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint without the host thread ids (QEMU's are the host's, run to run)."""
    out = dict(state)
    out["cpus"] = [{k: v for k, v in cpu.items() if k != "thread-id"} for cpu in state["cpus"]]
    return out


def _check_operation(
    report: AreaReport,
    category: str,
    prepare: Callable[[], MachineControl],
    operation: Callable[[MachineControl], None],
    steps: list[Step],
    *,
    renumbers: bool = False,
) -> int:
    """Fail each step in turn; returns how many failure points the operation has."""
    reference = prepare()
    operation(reference)
    reference.settle()
    want = _comparable(fingerprint(reference.machine))
    at = 1
    while True:
        control = prepare()
        before = _comparable(fingerprint(control.machine))
        raised: BaseException | None = None
        with inject(steps, at) as calls:
            try:
                operation(control)
            except (InjectedFault, QemuError) as exc:
                raised = exc
        where = calls[at - 1] if len(calls) >= at else "(no step)"
        if raised is None:
            return at - 1  # the operation got through: every step has been failed once
        report.count(category)
        label = f"fault at call {at} ({where})"
        after = _comparable(fingerprint(control.machine))
        if after != before:
            changed = sorted(k for k in before if before[k] != after[k])
            report.fail(category, label, f"the machine changed: {', '.join(changed)}")
        broken = invariants(control.machine)
        if broken:
            report.fail(category, label, "; ".join(broken))
        try:
            operation(control)
            control.settle()
        except Exception as exc:
            report.fail(category, label, f"the retry failed: {exc!r}")
        else:
            got, expected = _comparable(fingerprint(control.machine)), want
            if renumbers:
                # QEMU's anonymous device numbers are never reused: the retry's core is
                # the next device[N]; everything else must be as the first success
                got, expected = _renumbered(got), _renumbered(want)
            if got != expected:
                changed = sorted(k for k in expected if expected[k] != got[k])
                report.fail(category, label, f"after the retry: differs in {', '.join(changed)}")
        at += 1


def _renumbered(state: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint with peripheral-anon/device[N] numbers blanked out."""
    text = repr(state)
    return {"anon": re.sub(r"peripheral-anon/device\[\d+\]", "peripheral-anon/device[N]", text)}


def _booted() -> MachineControl:
    control = new_control(P9)
    control.settle()
    return control


def _with_core() -> MachineControl:
    control = _booted()
    control.device_add({"driver": P9_CORE, "id": "c1", "core-id": 1})
    control.settle()
    return control


def run(report: AreaReport, rounds: int, seed: int, *, progress: Progress | None = None) -> None:
    add = {"driver": P9_CORE, "id": "c2", "core-id": 2}
    points = _check_operation(
        report, "device_add", _booted, lambda c: c.device_add(dict(add)), ADD_STEPS
    )
    report.note(f"device_add: every one of its {points} step calls failed in turn")
    points = _check_operation(
        report, "device_del", _with_core, lambda c: c.device_del("c1"), DEL_STEPS
    )
    report.note(f"device_del: every one of its {points} step calls failed in turn")
    anon = {"driver": P9_CORE, "core-id": 3}
    _check_operation(
        report,
        "device_add (no id)",
        _booted,
        lambda c: c.device_add(dict(anon)),
        ADD_STEPS,
        renumbers=True,
    )
