"""The command line: ``python -m spapr`` / ``spapr``, spelled like qemu-system-ppc64.

Start-up follows QEMU: parse, board init (validation in QEMU's order), ``-device``
cores, creation done, the first machine reset (printing the TCG caps warnings),
then ``dumpdtb`` exits after writing the tree, as QEMU does. Every refusal prints
QEMU's exact text to stderr, prefixed ``qemu-system-ppc64:``, and exits 1.

Robustness at the edge, as QEMU: output whose reader has gone is dropped and the
run goes on (``machine.cli.streams``); SIGTERM, SIGINT and SIGHUP end the run
cleanly with QEMU's "terminating on signal" line (``machine.cli.signals``). The
signal watch must be in place before any thread starts (numpy's BLAS starts one
when it loads), so :func:`main` installs it first and only then imports the
machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO, cast

from machine.cli.signals import SignalWatch
from machine.cli.streams import DRAIN_S, TolerantStream


def incoming_file(args: Sequence[str]) -> str | None:
    """The PATH of ``-incoming file:PATH`` (other -incoming forms wait for the monitor)."""
    for i, word in enumerate(args[:-1]):
        if word.lstrip("-") == "incoming" and args[i + 1].startswith("file:"):
            return args[i + 1][len("file:") :]
    return None


#: After a terminating signal, how long the run may take to end before it is cut short.
GRACE_S = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with qemu-system-ppc64's command line; returns the exit status.

    The runner's own options (``-scenario``, ``-allow-remote-qmp``) are taken out
    first; a scenario's first line supplies the machine's arguments. A first word
    naming a subcommand (``trace-draw``, ``trace-report``) runs that tool instead.
    """
    # as QEMU (SIGPIPE ignored): output whose reader has gone is dropped, the run goes on
    out = cast(TextIO, TolerantStream(sys.stdout))
    err = cast(TextIO, TolerantStream(sys.stderr))
    words = list(sys.argv[1:] if argv is None else argv)
    with SignalWatch(grace_s=GRACE_S).installed() as signals:
        try:
            return _main(words, out, err, signals)
        finally:
            # still under the watch: a reader that stalls cannot hold the end of the run
            streams = [cast(TolerantStream, out), cast(TolerantStream, err)]
            deadline = time.monotonic() + DRAIN_S  # one wait for both (they may share a pipe)
            for stream in streams:
                stream.finish(deadline)
            for stream in streams:
                stream.restore()


#: The runner's own options (``machine.cli.runner.split_runner_options`` takes them out);
#: only a command line naming one needs the runner before the machine is built.
RUNNER_OPTION_NAMES = frozenset({"scenario", "allow-remote-qmp"})


def _names_runner_option(words: Sequence[str]) -> bool:
    return any(w.startswith("-") and w.lstrip("-") in RUNNER_OPTION_NAMES for w in words)


def _main(words: list[str], out: TextIO, err: TextIO, signals: SignalWatch) -> int:
    """:func:`main` once the signal watch is in place (the machine's modules load here).

    Each module loads when the command needs it (start-up time is what ``-M help``,
    ``-version`` or a ``dumpdtb`` costs): the command line first, the machine only
    to build one, the runner, monitors and trace tools only to run it.
    """
    from machine.config.cmdline import PROG, StartupError, parse_argv
    from spapr.errors import QemuError

    if words and not words[0].startswith("-"):
        from machine.cli.trace_tools import SUBCOMMANDS

        if words[0] in SUBCOMMANDS:
            for tolerant in (out, err):  # the tools print to sys.stdout: a blocking one
                cast(TolerantStream, tolerant).restore()
            return SUBCOMMANDS[words[0]](words[1:])
    options = None
    scenario = None
    args = list(words)
    if _names_runner_option(words):
        from machine.cli.runner import load_scenario, split_runner_options

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
    process = config_probe.process
    daemon = None
    if process.daemonize:
        from machine.cli.daemon import Daemon

        daemon = Daemon()
        parent_status = daemon.fork()
        if parent_status is not None:
            return parent_status
        signals.after_fork()
    if process.pidfile is not None:
        from machine.cli.daemon import write_pidfile

        try:
            write_pidfile(process.pidfile)
        except QemuError as exc:
            print(exc.report(PROG), file=err)
            return 1
    on_ready = daemon.ready if daemon is not None else None
    from machine.cli.none_runner import is_none_machine, run_none_machine

    if is_none_machine(config_probe):
        return run_none_machine(config_probe, err=err, signals=signals, on_ready=on_ready)
    from machine.board.build import build_machine, print_warnings

    try:
        incoming = incoming_file(args)
        incoming_runstate: str | None = None
        if incoming is not None:
            from machine.migration.replay import (
                incoming_machine_and_stream,
                runstate_after_incoming,
            )

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
    from machine.cli.runner import run_machine
    from machine.cli.trace_tools import write_trace_html

    try:
        return run_machine(
            machine,
            out=out,
            err=err,
            options=options,
            scenario=scenario,
            incoming_runstate=incoming_runstate,
            signals=signals,
            on_ready=on_ready,
        )
    finally:
        write_trace_html(machine, err)


if __name__ == "__main__":
    sys.exit(main())
