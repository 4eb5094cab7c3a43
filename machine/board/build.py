"""Creating a pseries machine from its configuration, in ``qemu_init``'s order.

Start-up checks (printing their warnings), the reference guest ``-guest`` names,
the board with its trace recorder, the ``-device`` cores cold-plugged, then the
warnings about ``-global``\\ s that matched nothing. The command line, the monitor's
``-incoming`` path and migration's replay all create machines through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

from machine.board.guest_loader import parse_guest_option
from machine.board.pseries import PseriesMachine
from machine.board.trace_sinks import trace_recorder
from machine.config.cmdline import PROG, DeviceSpec, MachineConfig, parse_argv
from machine.config.qemu_opts import QemuWarning
from machine.config.startup import creation_done_warnings, startup
from spapr.trace import TraceRecorder


def print_warnings(warnings: Sequence[QemuWarning], err: TextIO | None) -> None:
    """Print diagnostics as QEMU does (``qemu-system-ppc64: warning: ...``); None drops them."""
    if err is None:
        return
    for warning in warnings:
        print(warning.report(PROG), file=err)


def cmdline_device_props(spec: DeviceSpec) -> dict[str, Any]:
    """A ``-device`` option as device_add arguments (its id travels separately in QemuOpts)."""
    if spec.json is not None:
        return dict(spec.json)
    props: dict[str, Any] = dict(spec.props)
    if spec.id is not None:
        props["id"] = spec.id
    return props


def create_machine(
    config: MachineConfig,
    trace: Callable[[], TraceRecorder],
    err: TextIO | None,
    *,
    with_guest: bool = True,
) -> PseriesMachine:
    """Board init, the guest (unless ``with_guest`` is False) and the ``-device`` cores.

    Raises StartupError / QemuError as QEMU refuses; warnings go to ``err`` as they arise.
    """
    setup = startup(config)
    print_warnings(setup.warnings, err)
    guest = parse_guest_option(config.guest).create() if with_guest else None
    machine = PseriesMachine(setup, trace=trace())
    if guest is not None:
        machine.load_guest(guest)
    for spec in config.devices:
        machine.add_cmdline_device(cmdline_device_props(spec), spec.location)
    print_warnings(creation_done_warnings(setup), err)
    return machine


def build_machine(argv: Sequence[str], err: TextIO) -> PseriesMachine:
    """Parse a command line and create its machine, with the trace sinks it asks for.

    Raises StartupError / QemuError after printing only the warnings; the caller reports.
    """
    config = parse_argv(list(argv))
    return create_machine(config, lambda: trace_recorder(config, err), err)
