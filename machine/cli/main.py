"""The command line: ``python -m spapr`` / ``spapr``, spelled like qemu-system-ppc64.

Start-up follows QEMU: parse, board init (validation in QEMU's order), ``-device``
cores, creation done, the first machine reset (printing the TCG caps warnings),
then ``dumpdtb`` exits after writing the tree, as QEMU does. Every refusal prints
QEMU's exact text to stderr, prefixed ``qemu-system-ppc64:``, and exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from machine.board.build import build_machine, print_warnings
from machine.cli.runner import load_scenario, run_machine, split_runner_options
from machine.cli.trace_tools import SUBCOMMANDS, write_trace_html
from machine.config.cmdline import PROG, StartupError, parse_argv
from machine.migration.replay import incoming_machine_and_stream, runstate_after_incoming
from spapr.errors import QemuError


def incoming_file(args: Sequence[str]) -> str | None:
    """The PATH of ``-incoming file:PATH`` (other -incoming forms wait for the monitor)."""
    for i, word in enumerate(args[:-1]):
        if word.lstrip("-") == "incoming" and args[i + 1].startswith("file:"):
            return args[i + 1][len("file:") :]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with qemu-system-ppc64's command line; returns the exit status.

    The runner's own options (``-scenario``, ``-allow-remote-qmp``) are taken out
    first; a scenario's first line supplies the machine's arguments. A first word
    naming a subcommand (``trace-draw``, ``trace-report``) runs that tool instead.
    """
    out, err = sys.stdout, sys.stderr
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in SUBCOMMANDS:
        return SUBCOMMANDS[words[0]](words[1:])
    try:
        options, args = split_runner_options(words)
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
        if config_probe.help_error is not None:
            print(f"{PROG}: {config_probe.help_error}", file=err)
        return 0
    try:
        incoming = incoming_file(args)
        incoming_runstate: str | None = None
        if incoming is not None:
            machine, stream = incoming_machine_and_stream(incoming, args, err)
            autostart = not machine.setup.config.freeze
            incoming_runstate = runstate_after_incoming(stream, autostart)
        else:
            machine = build_machine(args, err)
            print_warnings(machine.reset(), err)
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
    try:
        return run_machine(
            machine,
            out=out,
            err=err,
            options=options,
            scenario=scenario,
            incoming_runstate=incoming_runstate,
        )
    finally:
        write_trace_html(machine, err)


if __name__ == "__main__":
    sys.exit(main())
