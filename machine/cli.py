"""The command line: ``python -m spapr`` / ``spapr``, spelled like qemu-system-ppc64.

Start-up follows QEMU: parse, board init (validation in QEMU's order), ``-device``
cores, creation done, the first machine reset (printing the TCG caps warnings),
then ``dumpdtb`` exits after writing the tree, as QEMU does. Every refusal prints
QEMU's exact text to stderr, prefixed ``qemu-system-ppc64:``, and exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from machine.config import (
    PROG,
    DeviceSpec,
    StartupError,
    creation_done_warnings,
    parse_argv,
    startup,
)
from machine.pseries import PseriesMachine
from machine.qemu_opts import QemuWarning
from spapr.errors import QemuError


def _print_warnings(warnings: Sequence[QemuWarning], err: TextIO) -> None:
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


def build_machine(argv: Sequence[str], err: TextIO) -> PseriesMachine:
    """Parse, validate and create the machine with its -device cores, then reset it once.

    Raises StartupError / QemuError after printing nothing; the caller reports.
    """
    config = parse_argv(list(argv))
    setup = startup(config)
    _print_warnings(setup.warnings, err)
    machine = PseriesMachine(setup)
    for spec in config.devices:
        machine.add_cmdline_device(cmdline_device_props(spec), spec.location)
    _print_warnings(creation_done_warnings(setup), err)
    return machine


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with qemu-system-ppc64's command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    try:
        config_probe = parse_argv(args)
    except StartupError as exc:
        for line in exc.stderr_lines(PROG):
            print(line, file=err)
        return 1
    if config_probe.help_text is not None:
        out.write(config_probe.help_text)
        return 0
    try:
        machine = build_machine(args, err)
        _print_warnings(machine.reset(), err)
    except StartupError as exc:
        for line in exc.stderr_lines(PROG):
            print(line, file=err)
        return 1
    except QemuError as exc:
        print(exc.report(PROG), file=err)
        return 1
    dumpdtb = machine.setup.dumpdtb
    if dumpdtb:
        try:
            with open(dumpdtb, "wb") as f:
                f.write(machine.fdt_blob)
        except OSError as exc:
            print(f"{PROG}: Failed to write dtb to {dumpdtb}: {exc.strerror}", file=err)
            return 1
        print(f"{PROG}: info: dtb dumped to {dumpdtb}. Exiting.", file=err)
        return 0
    from machine.runner import run_machine

    return run_machine(machine, out=out, err=err)


if __name__ == "__main__":
    sys.exit(main())
