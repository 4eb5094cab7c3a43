"""Area 3: host operations, run-state changes, migrations and guest steps in generated orders.

A sequence mixes ``device_add`` (with an id or anonymous, to free and taken slots),
``device_del`` (by id, by QOM path, of the boot core, of a thread's path),
``system_reset``, ``stop``/``cont``, migration to a new machine (through a stream
file, the target started with the source's command line and one ``-device`` per
hot-plugged core, as QEMU's target must be) and guest steps (virtual time for the
reference Linux guest to act: nothing, a little, until quiet). The three QEMU 7.2
transcripts that crash QEMU (``tests/data/errors/defect_*.jsonl``) are replayed as
sequences of their own.

The rules: after every step the machine keeps its invariants (no core lost or
duplicated, every connector in a legal state, threads, interrupt presenters and
QOM tree agreeing); a refusal is QEMU's (a ``QemuError``), never an exception; and
once the machine runs and is quiet, the guest sees exactly the machine's CPUs:
its present CPUs are the hardware threads of the machine's cores, all online.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from machine.migration.replay import incoming_machine, save
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from robustness.harness import P8E, P8E_CORE, P9, P9_CORE, invariants, new_control
from robustness.report import AreaReport, Progress
from spapr.errors import QemuError

ROOT = Path(__file__).resolve().parent.parent
DEFECTS = sorted((ROOT / "tests" / "data" / "errors").glob("defect_*.jsonl"))
MS = 1_000_000


def guest_view_problems(control: MachineControl) -> list[str]:
    """Once quiet: the guest's present CPUs are the machine's threads, all online."""
    machine = control.machine
    guest = machine.guest
    if guest is None or not getattr(guest, "booted", False):
        return []
    machine_hw = sorted(t.vcpu_id for t in machine.iter_threads())
    guest_cpus = guest.cpus()
    guest_hw = sorted(c.hwid for c in guest_cpus)
    problems = []
    if guest_hw != machine_hw:
        problems.append(f"the guest has CPUs {guest_hw}, the machine threads {machine_hw}")
    offline = [c.hwid for c in guest_cpus if not c.online]
    if offline:
        problems.append(f"guest CPUs {offline} are offline once quiet")
    return problems


class Sequence:
    """One generated sequence on one machine (replaced by the target when it migrates)."""

    def __init__(self, argv: list[str], core: str, rng: random.Random, tmp: Path) -> None:
        self.argv = argv
        self.core = core
        self.rng = rng
        self.tmp = tmp
        self.control = new_control(argv)
        self.steps: list[str] = []
        self.migrations = 0

    @property
    def machine(self) -> Any:
        return self.control.machine

    def step(self) -> None:
        """One generated operation."""
        rng = self.rng
        pick = rng.random()
        if pick < 0.25:
            self._add()
        elif pick < 0.45:
            self._del()
        elif pick < 0.52:
            self._do("system_reset", self.control.system_reset)
        elif pick < 0.58:
            self._do("stop", self.control.stop)
        elif pick < 0.66:
            self._do("cont", self.control.cont)
        elif pick < 0.72:
            self._migrate()
        else:
            self._guest_step()

    def _do(self, what: str, fn: Any, *args: Any) -> None:
        self.steps.append(what)
        with contextlib.suppress(QemuError):  # QEMU's refusal: allowed; the state after matters
            fn(*args)

    def _add(self) -> None:
        rng = self.rng
        slot = rng.choice(self.machine.slots)
        args: dict[str, Any] = {"driver": self.core, "core-id": slot.core_id}
        if rng.random() < 0.8:
            args["id"] = rng.choice(["a", "b", "c", "d", f"c{slot.core_id}"])
        self._do(f"device_add {json.dumps(args)}", self.control.device_add, args)

    def _del(self) -> None:
        rng = self.rng
        targets = [c.dev_id for c in self.machine.cores if c.dev_id]
        targets += [c.qom_path for c in self.machine.cores]
        targets += [f"{c.qom_path}/thread[0]" for c in self.machine.cores]
        targets += ["nosuch", "a"]
        target = rng.choice(targets)
        self._do(f"device_del {target}", self.control.device_del, target)

    def _guest_step(self) -> None:
        rng = self.rng
        pick = rng.random()
        if pick < 0.3:
            self.steps.append("settle")
            self.control.settle()
        else:
            span = rng.choice([0, 1, 5, 20, 100]) * MS // 10
            self.steps.append(f"run {span / MS} ms")
            if self.control.runstate.running:
                self.machine.sched.run_until(self.machine.sched.now + span)

    def _migrate(self) -> None:
        """Save, start a target with the -device list QEMU needs, and go on there."""
        machine = self.machine
        hot = [c for c in machine.cores if c.hotplugged]
        if any(c.dev_id is None for c in hot) or self.control.runstate.state.value != "running":
            self.steps.append("migrate (skipped: anonymous core or not running)")
            return
        self.steps.append("migrate")
        path = str(self.tmp / f"stream{self.migrations}.json")
        self.migrations += 1
        save(machine, path)
        devices = [
            w for c in hot for w in ("-device", f"{c.type_name},id={c.dev_id},core-id={c.core_id}")
        ]
        source_argv = list(machine.setup.config.argv)
        try:
            target = incoming_machine(
                path, [*source_argv, *devices, "-incoming", f"file:{path}"], io.StringIO()
            )
        except QemuError as exc:
            # a target QEMU cannot build either (a boot core unplugged on the source):
            # refused by name, and the source runs on untouched
            self.steps[-1] = f"migrate (refused: {exc.message})"
            return
        control = MachineControl(target, warn=lambda _line: None, incoming_runstate="running")
        self.control = control


def run(report: AreaReport, count: int, seed: int, *, progress: Progress | None = None) -> None:
    """``count`` generated sequences, then QEMU's crashing transcripts."""
    rng = random.Random(seed)
    configs = [(P9, P9_CORE), (P8E, P8E_CORE)]
    with tempfile.TemporaryDirectory(prefix="campaign-interleave-") as tmp:
        for n in range(count):
            argv, core = configs[n % len(configs)]
            sequence = Sequence(argv, core, rng, Path(tmp))
            length = rng.randint(4, 24)
            report.count("sequence")
            _run_sequence(report, sequence, length)
            if progress is not None:
                progress.step(n + 1)
    _defect_transcripts(report)


def _run_sequence(report: AreaReport, sequence: Sequence, length: int) -> None:
    for _ in range(length):
        try:
            sequence.step()
        except Exception as exc:
            report.fail("crash", " ; ".join(sequence.steps), f"raised {exc!r}")
            return
        broken = invariants(sequence.machine)
        if broken:
            report.fail("invariant", " ; ".join(sequence.steps), "; ".join(broken))
            return
    control = sequence.control
    try:
        if not control.runstate.running:
            control.cont()
        control.settle()
        control.settle()
    except Exception as exc:
        report.fail("crash", " ; ".join([*sequence.steps, "cont", "settle"]), repr(exc))
        return
    if control.quiet():
        report.count("quiet-views")
        problems = guest_view_problems(control) + invariants(control.machine)
        if problems:
            report.fail("views", " ; ".join(sequence.steps), "; ".join(problems))
    else:
        report.count("not-quiet")


def _defect_transcripts(report: AreaReport) -> None:
    """QEMU 7.2 crashes on these; the emulator must answer every request and keep its rules."""
    for path in DEFECTS:
        report.count("qemu-crash-transcript")
        requests = [
            json.loads(line)["msg"]
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["dir"] == "out"
        ]
        for guest in ("none", "linux"):
            control = new_control([*P8E, "-S"], guest=guest)
            commands = QmpCommands(control)
            problems: list[str] = []
            for request in requests:
                name = request.get("execute")
                if name in ("qmp_capabilities", "quit"):
                    continue
                try:
                    commands.execute(name, request.get("arguments", {}))
                except QemuError:
                    pass
                except Exception as exc:
                    problems.append(f"{name} raised {exc!r}")
                control.settle()
                problems += invariants(control.machine)
            if problems:
                report.fail("qemu-crash-transcript", f"{path.name} (guest {guest})", problems[0])
