"""Machines for the campaign: built in-process, served over a real QMP socket, inspected.

:func:`new_control` builds a machine from a qemu-system-ppc64 command line (plus
the project's ``-guest``), resets it and wraps it in the monitors' shared
:class:`~machine.monitor.control.MachineControl`. :class:`ServedMachine` serves
one over QMP on a UNIX socket from a background event loop, with the real
transport (:class:`~machine.monitor.qmp_server.QmpServer`). :func:`fingerprint` is
everything a host operation may change, to compare before and after;
:func:`invariants` lists the rules a machine must keep whatever happened to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from machine.monitor.control import MachineControl
from machine.monitor.qmp_commands import QmpCommands
from machine.monitor.qmp_server import QmpEndpoint, QmpServer
from spapr.cpu_core import SpaprCpuCore
from spapr.drc import DrcType

T = TypeVar("T")

#: The machine most areas use: POWER9, one boot core of four, linux guest unless told.
P9 = ["-M", "pseries", "-cpu", "POWER9", "-smp", "1,maxcpus=4", "-m", "1G", "-nodefaults"]
P9_CORE = "power9_v2.0-spapr-cpu-core"
#: The three QEMU 7.2 transcripts of sequences that crash QEMU (tests/data/errors) use this.
P8E = ["-M", "pseries", "-cpu", "POWER8E", "-smp", "2,cores=4,threads=1,maxcpus=4", "-m", "1G"]
P8E_CORE = "power8e_v2.1-spapr-cpu-core"
#: Pending events above which something is wrong (the queue is bounded well below).
MAX_SANE_PENDING = 4096


def new_control(argv: list[str], *, guest: str = "linux", seed: int = 1) -> MachineControl:
    """A reset machine (``-seed`` for determinism) and its control."""
    words = [*argv, "-seed", str(seed), "-guest", guest]
    machine = build_machine(words, io.StringIO())
    machine.reset()
    return MachineControl(machine, warn=lambda _line: None)


class ServedMachine:
    """A machine served over QMP on ``sock_path`` from a background thread."""

    def __init__(self, argv: list[str], sock_path: Path, *, guest: str = "none") -> None:
        self.sock_path = sock_path
        self.control = new_control(argv, guest=guest)
        self.loop = asyncio.new_event_loop()
        self.server: QmpServer | None = None
        self.problems: list[str] = []
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="campaign-qmp", daemon=True)
        self.loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception the loop caught (a transport callback raised): a defect to report."""
        self.problems.append(str(context.get("exception") or context.get("message")))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        commands = QmpCommands(self.control, hmp_stderr=lambda _line: None)
        endpoint = QmpEndpoint(
            f"unix:{self.sock_path},server=on,wait=off", "unix", path=str(self.sock_path)
        )
        self.server = QmpServer(endpoint, commands)
        self.server.report = self.problems.append
        await self.server.start()
        self._started.set()
        await self._stop.wait()
        await self.server.close()

    def start(self) -> ServedMachine:
        self._thread.start()
        if not self._started.wait(20):
            raise RuntimeError("the QMP server did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
        self.loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def inspect(self, fn: Callable[[MachineControl], T]) -> T:
        """Run ``fn(control)`` on the server's thread."""

        async def call() -> T:
            return fn(self.control)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(20)


@contextlib.contextmanager
def served(argv: list[str], sock_path: Path, *, guest: str = "none") -> Iterator[ServedMachine]:
    """A :class:`ServedMachine` for the duration of a block."""
    machine = ServedMachine(argv, sock_path, guest=guest).start()
    try:
        yield machine
    finally:
        machine.stop()


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def until_serving(sock: Path, timeout: float = 30.0) -> bool:
    """Wait until a process answers QMP on ``sock`` (its main loop runs: start-up is over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as client:
            client.settimeout(timeout)
            client.connect(str(sock))
            stream = client.makefile("rb")
            stream.readline()
            client.sendall(b'{"execute":"qmp_capabilities"}')
            if stream.readline():
                return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------ state and rules


def _qom_paths(machine: PseriesMachine) -> list[str]:
    out: list[str] = []
    stack = [machine.qom.root]
    while stack:
        obj = stack.pop()
        out.append(obj.path)
        stack.extend(obj.children.values())
    return sorted(out)


def fingerprint(machine: PseriesMachine) -> dict[str, Any]:
    """What a host operation may change: the views clients see and the state behind them."""
    sched = machine.sched
    cpu_drcs = [d for d in machine.drcs if d.type is DrcType.CPU]
    return {
        "hotpluggable": machine.query_hotpluggable_cpus(),
        "cpus": machine.query_cpus_fast(),
        "qom": _qom_paths(machine),
        "drcs": [
            (
                d.index,
                d.state.name,
                getattr(d.device, "qom_path", None),
                d.unplug_requested,
                d.ccs_offset,
            )
            for d in cpu_drcs
        ],
        "cores": [(c.qom_path, c.core_id, c.realized) for c in machine.cores],
        "slots": [getattr(s.core, "qom_path", None) for s in machine.slots],
        "vcpus": sorted((v, sched.state(v).name) for v in sched.vcpus()),
        "threads": sorted(machine.threads_by_vcpu),
        "icps": sorted(machine.xics.icps),
        "events": [e.to_bytes().hex() for e in machine.events],
        "plid": machine.events.plids.next_plid,
        "random": machine.random.getrandom(0) if machine.random.seed is None else _mt(machine),
    }


def _mt(machine: PseriesMachine) -> tuple[int, ...]:
    mt = machine.random._mt
    return () if mt is None else (mt._index, *mt._mt[:4])


def invariants(machine: PseriesMachine) -> list[str]:
    """Every rule the machine breaks now (empty when it keeps them all)."""
    problems: list[str] = []
    sched = machine.sched
    cores = list(machine.cores)
    core_ids = [c.core_id for c in cores]
    if len(set(core_ids)) != len(core_ids):
        problems.append(f"a core is duplicated: core-ids {core_ids}")
    expected_vcpus: set[int] = set()
    for core in cores:
        slot = machine.hotplug.find_slot(core.core_id)
        if slot is None or slot.core is not core:
            problems.append(f"core {core.qom_path} is not in its slot")
        obj = machine.qom.resolve(core.qom_path)
        if obj is None or obj.payload is not core:
            problems.append(f"core {core.qom_path} is not in the QOM tree")
        for thread in core.threads:
            expected_vcpus.add(thread.vcpu_id)
    for slot in machine.slots:
        if slot.core is not None and slot.core not in cores:
            problems.append(f"slot {slot.index} holds a core the machine lost")
    if set(machine.threads_by_vcpu) != expected_vcpus:
        problems.append(
            f"vCPU threads {sorted(machine.threads_by_vcpu)} != cores' {sorted(expected_vcpus)}"
        )
    if set(sched.vcpus()) != expected_vcpus:
        problems.append(f"scheduler vCPUs {sorted(sched.vcpus())} != {sorted(expected_vcpus)}")
    if set(machine.xics.icps) != expected_vcpus:
        problems.append(f"ICPs {sorted(machine.xics.icps)} != {sorted(expected_vcpus)}")
    for drc in machine.drcs:
        if drc.type is not DrcType.CPU:
            continue
        if drc.state not in drc.machine.states:
            problems.append(f"DRC 0x{drc.index:x} in an illegal state {drc.state!r}")
        device = drc.device
        if device is None:
            if drc.state != drc.machine.empty_state or drc.unplug_requested:
                problems.append(f"empty DRC 0x{drc.index:x} is {drc.state.name}")
        elif not isinstance(device, SpaprCpuCore) or device not in cores:
            problems.append(f"DRC 0x{drc.index:x} holds a device the machine lost")
    for core in cores:
        own = machine.drc(machine.cpu_drc_index(core.core_id))
        if own is not None and own.device is not core:
            problems.append(f"core {core.qom_path} is not attached to its DRC")
    if len(machine.events) > MAX_SANE_PENDING:
        problems.append(f"{len(machine.events)} pending events")
    try:
        machine.query_hotpluggable_cpus()
        machine.query_cpus_fast()
    except Exception as exc:  # a query that raises is itself a broken rule
        problems.append(f"a query raised {exc!r}")
    return problems
