"""The kit's pytest plugin: fixtures for machines, QMP clients, guests and QEMU; the qemu marker.

Registered through the ``pytest11`` entry point (named ``conformance.plugin``, as the module),
so a test file needs no conftest; before the package is installed with that entry
point, ``pytest -p conformance.plugin`` loads it.

Fixtures:

``spapr_argv``
    The machine's command line (a list of words, no program name): the
    ``spapr_machine`` marker's argument, else ``--spapr-machine``, else the oracle's
    POWER9 configuration (2 of 4 cores).
``machine_args``
    The same as a :class:`~conformance.MachineArgs` when it is one of the kit's
    (from the marker ``spapr_machine(MachineArgs(...))``), else None.
``spapr_machine``
    The emulated machine (:class:`~machine.board.pseries.PseriesMachine`), built,
    reset, with the guest the ``guest`` marker names (default: none).
``spapr_control``
    Its :class:`~machine.monitor.control.MachineControl` (run state, stop/cont,
    device_add/del as the monitor does them, settle).
``emulator_qmp``
    A connected ``qemu.qmp`` client (``QEMUMonitorProtocol``) talking to the
    emulator over a real UNIX socket.
``emulator_session``
    An in-process :class:`~conformance.EmulatorSession` (QMP without sockets).
``reference_guest`` / ``guest_behaviour``
    The reference guest, behaving as the ``guest`` marker's ``-guest`` spelling
    says (``linux``, ``drmgr``, ``linux+ignore-unplug``, ...), and that behaviour.
``qemu_binary``
    The installed ``qemu-system-ppc64`` (the test is skipped when there is none).
``qemu_session`` / ``qemu_qmp``
    Real QEMU on the same command line (with the oracle's ``-S -nodefaults ...``):
    an in-kit :class:`~conformance.QemuSession`, or a connected ``qemu.qmp`` client.

Markers: ``qemu`` (needs real QEMU: skipped when absent), ``spapr_machine(argv or
MachineArgs)``, ``guest(option)``.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.config import MachineArgs
from conformance.guests import ReferenceGuest
from conformance.guests import reference_guest as make_reference_guest
from conformance.qmp import NO_GUEST, ORACLE_OPTIONS, EmulatorSession, QemuSession
from conformance.qmp import qemu_binary as find_qemu
from conformance.serve import EmulatorQmpServer
from conformance.strategies import P9_CLASSIC, GuestBehaviour
from machine.board.build import build_machine
from machine.board.guest_loader import parse_guest_option
from machine.board.pseries import PseriesMachine
from machine.monitor.control import MachineControl

DEFAULT_MACHINE = P9_CLASSIC


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--spapr-machine`` and the campaign's options."""
    group = parser.getgroup("conformance", "pseries CPU-hotplug conformance kit")
    group.addoption(
        "--spapr-machine",
        default=None,
        help="command line of the machine the fixtures build (default: the oracle's POWER9, "
        "-smp 2,cores=4,threads=1,maxcpus=4 -m 1G)",
    )
    group.addoption(
        "--conformance-examples",
        type=int,
        default=20,
        help="examples a differential campaign runs in all (python -m conformance qemu)",
    )
    group.addoption(
        "--conformance-seed",
        type=int,
        default=0,
        help="the campaign's base seed; each worker draws from its own range above it",
    )
    group.addoption(
        "--conformance-report",
        default=None,
        help="where the campaign writes its findings (a JSON-lines file)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers."""
    config.addinivalue_line(
        "markers", "qemu: needs a real qemu-system-ppc64 7.2 (skipped when it is not installed)"
    )
    config.addinivalue_line(
        "markers",
        "spapr_machine(argv): the machine the fixtures build (a command line string, a list "
        "of words or a conformance.MachineArgs)",
    )
    config.addinivalue_line(
        "markers", "guest(option): the reference guest, as -guest spells it (default: none)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``qemu``-marked test when qemu-system-ppc64 is not installed."""
    if item.get_closest_marker("qemu") is not None and find_qemu() is None:
        pytest.skip("needs qemu-system-ppc64 (QEMU 7.2), which is not installed")


# ---------------------------------------------------------------- the machine


def _marked(request: pytest.FixtureRequest, name: str) -> Any:
    marker = request.node.get_closest_marker(name)
    return marker.args[0] if marker is not None and marker.args else None


@pytest.fixture
def machine_args(request: pytest.FixtureRequest) -> MachineArgs | None:
    """The ``spapr_machine`` marker's MachineArgs, or the default when nothing is given."""
    marked = _marked(request, "spapr_machine")
    if isinstance(marked, MachineArgs):
        return marked
    if marked is None and request.config.getoption("--spapr-machine") is None:
        return DEFAULT_MACHINE
    return None


@pytest.fixture
def spapr_argv(request: pytest.FixtureRequest, machine_args: MachineArgs | None) -> list[str]:
    """The machine's command line (no program name, no -qmp, no oracle options)."""
    if machine_args is not None:
        return machine_args.argv()
    marked = _marked(request, "spapr_machine")
    text = marked if marked is not None else request.config.getoption("--spapr-machine")
    return shlex.split(text) if isinstance(text, str) else list(text)


@pytest.fixture
def guest_option(request: pytest.FixtureRequest) -> str:
    """The ``guest`` marker's -guest value (default ``none``)."""
    marked = _marked(request, "guest")
    return str(marked) if marked is not None else "none"


@pytest.fixture
def guest_behaviour(guest_option: str) -> GuestBehaviour:
    """The reference guest's behaviour the ``guest`` marker names (``none`` gives Linux)."""
    choice = parse_guest_option(guest_option if guest_option != "none" else "linux")
    assert choice.mode is not None
    return GuestBehaviour(choice.mode, choice.misbehavior, choice.timing)


@pytest.fixture
def reference_guest(guest_behaviour: GuestBehaviour) -> ReferenceGuest:
    """A fresh reference guest (not yet loaded in a machine)."""
    return make_reference_guest(guest_behaviour)


@pytest.fixture
def spapr_machine(spapr_argv: list[str], guest_option: str) -> PseriesMachine:
    """The emulated machine, built from :func:`spapr_argv` with the marked guest, and reset."""
    import io

    words = [*spapr_argv, "-nodefaults", "-seed", "1", "-guest", guest_option]
    machine = build_machine(words, io.StringIO())
    machine.reset()
    return machine


@pytest.fixture
def spapr_control(spapr_machine: PseriesMachine) -> MachineControl:
    """The machine as its monitors see it (run state, device_add/del, settle)."""
    return MachineControl(spapr_machine)


@pytest.fixture
def emulator_session(spapr_argv: list[str]) -> Iterator[EmulatorSession]:
    """QMP with the emulator in-process (with the oracle's options, no guest)."""
    with EmulatorSession(spapr_argv) as session:
        yield session


def _connect(address: str) -> Any:
    from qemu.qmp import ConnectError
    from qemu.qmp.legacy import QEMUMonitorProtocol

    client = QEMUMonitorProtocol(address)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.connect()
            return client
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture
def emulator_qmp(spapr_argv: list[str]) -> Iterator[Any]:
    """A connected qemu.qmp client of the emulator (oracle options, no guest)."""
    with EmulatorQmpServer([*spapr_argv, *ORACLE_OPTIONS, *NO_GUEST]) as server:
        client = _connect(str(server.socket_path))
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.close()


# ---------------------------------------------------------------- real QEMU


@pytest.fixture(scope="session")
def qemu_binary() -> str:
    """The installed qemu-system-ppc64 (skips the test when there is none)."""
    found = find_qemu()
    if found is None:
        pytest.skip("needs qemu-system-ppc64 (QEMU 7.2), which is not installed")
    return found


@pytest.fixture
def qemu_session(spapr_argv: list[str], qemu_binary: str) -> Iterator[QemuSession]:
    """Real QEMU on the same command line, QMP negotiated."""
    with QemuSession(spapr_argv, binary=qemu_binary) as session:
        yield session


@pytest.fixture
def qemu_qmp(spapr_argv: list[str], qemu_binary: str) -> Iterator[Any]:
    """A connected qemu.qmp client of real QEMU on the same command line."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="conformance-qemu-") as tmp:
        sock = Path(tmp) / "qmp.sock"
        proc = subprocess.Popen(
            [
                *[qemu_binary],
                *spapr_argv,
                *ORACLE_OPTIONS,
                "-qmp",
                f"unix:{sock},server=on,wait=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"QEMU did not start: {' '.join(spapr_argv)}")
                time.sleep(0.01)
            client = _connect(str(sock))
            try:
                yield client
            finally:
                with contextlib.suppress(Exception):
                    client.close()
        finally:
            proc.kill()
            proc.wait()
