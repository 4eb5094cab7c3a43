"""The command line: ``python -m spapr`` / ``spapr``, spelled like qemu-system-ppc64.

Start-up follows QEMU: parse, board init (validation in QEMU's order), ``-device``
cores, creation done, the first machine reset (printing the TCG caps warnings),
then ``dumpdtb`` exits after writing the tree, as QEMU does. Every refusal prints
QEMU's exact text to stderr, prefixed ``qemu-system-ppc64:``, and exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from machine.config import (
    PROG,
    DeviceSpec,
    MachineConfig,
    StartupError,
    creation_done_warnings,
    parse_argv,
    startup,
)
from machine.guest_loader import parse_guest_option
from machine.pseries import PseriesMachine
from machine.qemu_opts import QemuWarning
from spapr.errors import QemuError
from spapr.trace import TraceEvent, TraceRecorder


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


def trace_recorder(config: MachineConfig, err: TextIO) -> TraceRecorder:
    """The machine's recorder with the sinks ``-trace``/``-D`` and ``-trace-json`` ask for.

    As in QEMU, ``-trace PATTERN`` (or ``events=FILE`` listing patterns) selects
    events for the log, which goes to ``-D FILE`` or else to stderr, one
    ``name message`` line each; ``-trace-json FILE`` writes every event as JSON.
    """
    recorder = TraceRecorder()
    patterns: list[str] = []
    for spec in config.traces:
        if spec.enable:
            patterns.append(spec.enable)
        if spec.events:
            try:
                with open(spec.events) as f:
                    patterns += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
            except OSError as exc:
                raise QemuError(
                    f"could not open trace events file '{spec.events}': {exc.strerror}",
                    location=spec.location,
                ) from None
    if patterns:
        log: TextIO = err
        if config.log_file:
            try:
                log = open(config.log_file, "w", buffering=1)  # noqa: SIM115 (lives with the run)
            except OSError as exc:
                raise QemuError(f"could not open '{config.log_file}': {exc.strerror}") from None

        def write_log(event: TraceEvent) -> None:
            log.write(event.qemu_line() + "\n")

        recorder.subscribe(write_log, patterns)
    if config.trace_json:
        try:
            jsonl = open(config.trace_json, "w", buffering=1)  # noqa: SIM115
        except OSError as exc:
            raise QemuError(f"could not open '{config.trace_json}': {exc.strerror}") from None

        def write_json(event: TraceEvent) -> None:
            jsonl.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")

        recorder.subscribe(write_json)
    return recorder


def incoming_file(args: Sequence[str]) -> str | None:
    """The PATH of ``-incoming file:PATH`` (other -incoming forms wait for the monitor)."""
    for i, word in enumerate(args[:-1]):
        if word.lstrip("-") == "incoming" and args[i + 1].startswith("file:"):
            return args[i + 1][len("file:") :]
    return None


def build_machine(argv: Sequence[str], err: TextIO) -> PseriesMachine:
    """Parse, validate and create the machine with its -device cores and its guest.

    Raises StartupError / QemuError after printing nothing; the caller reports.
    """
    config = parse_argv(list(argv))
    setup = startup(config)
    _print_warnings(setup.warnings, err)
    guest = parse_guest_option(config.guest).create()
    machine = PseriesMachine(setup, trace=trace_recorder(config, err))
    if guest is not None:
        machine.load_guest(guest)
    for spec in config.devices:
        machine.add_cmdline_device(cmdline_device_props(spec), spec.location)
    _print_warnings(creation_done_warnings(setup), err)
    return machine


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with qemu-system-ppc64's command line; returns the exit status.

    The runner's own options (``-scenario``, ``-allow-remote-qmp``) are taken out
    first; a scenario's first line supplies the machine's arguments.
    """
    from machine.runner import load_scenario, run_machine, split_runner_options

    out, err = sys.stdout, sys.stderr
    try:
        options, args = split_runner_options(list(sys.argv[1:] if argv is None else argv))
        scenario = load_scenario(options.scenario) if options.scenario is not None else None
    except QemuError as exc:
        print(exc.report(PROG), file=err)
        return 1
    if scenario is not None:
        args = list(scenario.args) + args
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
        incoming = incoming_file(args)
        incoming_runstate: str | None = None
        if incoming is not None:
            from machine.migration import incoming_machine_and_stream, runstate_after_incoming

            machine, stream = incoming_machine_and_stream(incoming, args, err)
            autostart = not machine.setup.config.freeze
            incoming_runstate = runstate_after_incoming(stream, autostart)
        else:
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
    return run_machine(
        machine,
        out=out,
        err=err,
        options=options,
        scenario=scenario,
        incoming_runstate=incoming_runstate,
    )


if __name__ == "__main__":
    sys.exit(main())
