"""Running ``-machine none``: only the monitors, answering questions about the emulator.

This is how libvirt probes an emulator (``-S -no-user-config -nodefaults -nographic
-machine none,accel=kvm:tcg -qmp unix:SOCK,server=on,wait=off -pidfile FILE
-daemonize``). No board is built; the QMP servers are served until ``quit`` or a
terminating signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TextIO

from machine.cli.signals import SignalWatch
from machine.config.accel import configure_accelerator
from machine.config.cmdline import PROG, MachineConfig
from machine.config.qemu_opts import QemuWarning
from machine.monitor.none_machine import NoneMachineCommands, NoneMachineHost
from machine.monitor.qmp_server import QmpServer, parse_qmp_endpoint
from spapr.errors import QemuError

_TICK_S = 0.01


def is_none_machine(config: MachineConfig) -> bool:
    """Whether the command line asks for QEMU's board-less ``none`` machine."""
    return config.machine_opts.get("type") == "none"


def run_none_machine(
    config: MachineConfig,
    *,
    err: TextIO,
    signals: SignalWatch | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Serve the monitors of a board-less process; the exit status."""
    warnings: list[QemuWarning] = []
    try:
        accel_name = config.machine_opts.get("accel")
        accel = configure_accelerator(
            config.accel_opts,
            accel_name if isinstance(accel_name, str) else None,
            config.kvm_host,
            warnings,
        )
        endpoints = [parse_qmp_endpoint(spec) for spec in config.qmp]
    except QemuError as exc:
        print(exc.report(PROG), file=err)
        return 1
    if config.monitors:
        print(f"{PROG}: -machine none: only QMP monitors are modeled here", file=err)
        return 1
    host = NoneMachineHost(
        freeze=config.freeze,
        is_kvm=accel.is_kvm,
        warn=lambda line: print(line, file=err, flush=True),
    )
    if signals is not None:
        signals.on_signal = lambda _t: setattr(host, "quit_requested", True)
    commands = NoneMachineCommands(host)

    async def serve() -> int:
        servers = [QmpServer(e, commands) for e in endpoints]
        for server in servers:
            try:
                await server.start()
            except OSError as exc:
                print(f"{PROG}: -qmp {server.endpoint.spec}: Failed to bind socket: "
                      f"{exc.strerror}", file=err)  # fmt: skip
                return 1
        if on_ready is not None:
            on_ready()
        while not host.quit_requested:
            await asyncio.sleep(_TICK_S)
        if signals is not None and signals.received is not None:
            print(signals.received.report(PROG), file=err, flush=True)
            host.emit("SHUTDOWN", {"guest": False, "reason": "host-signal"})
        for server in servers:
            await server.close()
        return 0

    return asyncio.run(serve())


__all__ = ["is_none_machine", "run_none_machine"]
