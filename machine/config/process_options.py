"""The options that shape the QEMU process rather than the board, as libvirt writes them.

libvirt starts every QEMU with options that say how the process runs: where its
monitor is (``-chardev socket,...,fd=N`` with ``-mon ...,mode=control``), whether it
detaches (``-daemonize``, ``-pidfile``), what it does when the guest shuts down
(``-no-shutdown``), how messages look (``-msg timestamp=on``), and a few that only
matter to hardware this emulator does not model (``-rtc``, ``-boot``, ``-audiodev
none``, ``-overcommit``, ``-sandbox``). Each is checked here as QEMU 7.2 checks it
when the option is read, with QEMU's texts, and kept in :class:`ProcessOptions`.
What each one does (or, for the hardware-only ones, that it changes nothing in this
model) is said where it is used and in README's "With libvirt".
"""

from __future__ import annotations

import json
import re

import attrs

from machine.config.qemu_opts import (
    OptsList,
    OptsStore,
    OptType,
    QemuOpts,
    QemuWarning,
    parse_keyval,
)
from spapr.errors import QemuError

_ON_OFF = {"on": True, "off": False}

OVERCOMMIT_OPTS = OptsList("overcommit", desc={"mem-lock": OptType.BOOL, "cpu-pm": OptType.BOOL})
MSG_OPTS = OptsList("msg", desc={"timestamp": OptType.BOOL, "guest-name": OptType.BOOL})
SANDBOX_OPTS = OptsList(
    "sandbox",
    implied="enable",
    desc={
        "enable": OptType.BOOL,
        "obsolete": OptType.STRING,
        "elevateprivileges": OptType.STRING,
        "spawn": OptType.STRING,
        "resourcecontrol": OptType.STRING,
    },
)
RTC_OPTS = OptsList(
    "rtc",
    desc={"base": OptType.STRING, "clock": OptType.STRING, "driftfix": OptType.STRING},
)
CHARDEV_OPTS = OptsList("chardev", implied="backend")
MON_OPTS = OptsList(
    "mon",
    desc={
        "mode": OptType.STRING,
        "chardev": OptType.STRING,
        "pretty": OptType.BOOL,
    },
)
#: ``-boot``'s keys (a keyval option in QEMU 7.2, checked as BootConfiguration).
BOOT_KEYS = ("order", "once", "menu", "splash", "splash-time", "reboot-timeout", "strict")
_BOOT_BOOLS = ("menu", "strict")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")


@attrs.frozen
class ChardevSpec:
    """A ``-chardev socket``: the only backend modeled, a listening socket.

    ``fd`` is a listening socket the process inherited (libvirt's way); ``path`` a
    UNIX socket it creates itself.
    """

    id: str
    location: str
    fd: int | None = None
    path: str | None = None


@attrs.frozen
class MonitorSpec:
    """A ``-mon chardev=ID,mode=control``: a QMP monitor on a chardev."""

    chardev: str
    id: str | None
    location: str


@attrs.define
class ProcessOptions:
    """What the process-level options asked for (defaults are QEMU's)."""

    no_user_config: bool = False
    daemonize: bool = False
    pidfile: str | None = None
    no_shutdown: bool = False
    uuid: str | None = None
    mem_lock: bool = False
    msg_timestamp: bool = False
    sandbox: bool = False
    chardevs: list[ChardevSpec] = attrs.field(factory=list)
    mons: list[MonitorSpec] = attrs.field(factory=list)
    audiodevs: list[str] = attrs.field(factory=list)


#: Options parsed here, with whether each takes an argument.
PROCESS_ARG_OPTIONS = frozenset(
    "pidfile uuid overcommit msg sandbox rtc boot chardev mon audiodev".split()
)
PROCESS_FLAGS = frozenset(["no-user-config", "daemonize", "no-shutdown"])


class ProcessOptionParser:
    """Reads the process options of one command line, one QemuOpts store per option."""

    def __init__(self, options: ProcessOptions, warnings: list[QemuWarning]) -> None:
        self.options = options
        self.warnings = warnings
        self.stores = {
            o.name: OptsStore(o)
            for o in (OVERCOMMIT_OPTS, MSG_OPTS, SANDBOX_OPTS, RTC_OPTS, CHARDEV_OPTS, MON_OPTS)
        }

    def flag(self, name: str) -> None:
        """A flag option (``-daemonize``, ``-no-shutdown``, ``-no-user-config``)."""
        if name == "no-user-config":
            self.options.no_user_config = True  # no config file is ever read here
        elif name == "daemonize":
            self.options.daemonize = True
        elif name == "no-shutdown":
            self.options.no_shutdown = True

    def _opts(self, name: str, arg: str, location: str) -> QemuOpts:
        return self.stores[name].parse(arg, location=location, warnings=self.warnings)

    def option(self, name: str, arg: str, location: str) -> None:
        """An option with an argument; QemuError with QEMU's text on refusal."""
        o = self.options
        if name == "pidfile":
            o.pidfile = arg
        elif name == "uuid":
            if not _UUID.match(arg):
                raise QemuError("failed to parse UUID string: wrong format", location=location)
            o.uuid = arg.lower()
        elif name == "overcommit":
            opts = self._opts(name, arg, location)
            o.mem_lock = opts.get_value("mem-lock") is True
            if o.mem_lock:
                raise QemuError(
                    "-overcommit mem-lock=on is not modeled by this emulator", location=location
                )
        elif name == "msg":
            opts = self._opts(name, arg, location)
            o.msg_timestamp = opts.get_value("timestamp") is True
        elif name == "sandbox":
            opts = self._opts(name, arg, location)
            o.sandbox = opts.get_value("enable") is True
        elif name == "rtc":
            self._rtc(self._opts(name, arg, location))
        elif name == "boot":
            self._boot(arg)
        elif name == "chardev":
            o.chardevs.append(self._chardev(self._opts(name, arg, location), location))
        elif name == "mon":
            opts = self._opts(name, arg, location)
            chardev = opts.get("chardev")
            if chardev is None:
                raise QemuError("Parameter 'chardev' is missing", location=location)
            if (opts.get("mode") or "readline") != "control":
                raise QemuError(
                    "only QMP monitors (mode=control) are modeled by this emulator",
                    location=location,
                )
            if not any(c.id == chardev for c in o.chardevs):
                raise QemuError(f'chardev "{chardev}" not found', location=location)
            o.mons.append(MonitorSpec(chardev, opts.id, location))
        elif name == "audiodev":
            o.audiodevs.append(_audiodev(arg, location))

    @staticmethod
    def _rtc(opts: QemuOpts) -> None:
        base = opts.get("base")
        if base is not None and base not in ("utc", "localtime") and not _DATE.match(base):
            raise QemuError(
                "invalid datetime format\nvalid formats: '2006-06-17T16:01:21' or '2006-06-17'"
            )
        clock = opts.get("clock")
        if clock is not None and clock not in ("host", "rt", "vm"):
            raise QemuError(f"invalid option value '{clock}'", location=opts.location)
        driftfix = opts.get("driftfix")
        if driftfix is not None and driftfix not in ("none", "slew"):
            raise QemuError(f"invalid option value '{driftfix}'", location=opts.location)

    @staticmethod
    def _boot(arg: str) -> None:
        values = parse_keyval(arg, "order").values
        for key, value in values.items():
            if key not in BOOT_KEYS:
                raise QemuError(f"Parameter 'boot.{key}' is unexpected")
            if key in _BOOT_BOOLS and value not in _ON_OFF:
                raise QemuError(f"Parameter 'boot.{key}' expects 'on' or 'off'")

    @staticmethod
    def _chardev(opts: QemuOpts, location: str) -> ChardevSpec:
        if opts.id is None:
            raise QemuError("chardev: no id specified", location=location)
        backend = opts.get("backend")
        if backend != "socket":
            raise QemuError(
                f"chardev backend '{backend}' is not modeled by this emulator", location=location
            )
        server = opts.get("server") in ("on", "yes", "true")
        wait = opts.get("wait") not in ("off", "no", "false")
        if not server or wait:
            raise QemuError(
                "only listening sockets (server=on,wait=off) are modeled by this emulator",
                location=location,
            )
        fd_text, path = opts.get("fd"), opts.get("path")
        if fd_text is not None:
            if not fd_text.isdigit():
                raise QemuError(f"Unable to parse FD number {fd_text}", location=location)
            return ChardevSpec(opts.id, location, fd=int(fd_text))
        if path is None:
            raise QemuError(
                "only UNIX sockets (fd= or path=) are modeled by this emulator", location=location
            )
        return ChardevSpec(opts.id, location, path=path)


def _audiodev(arg: str, location: str) -> str:
    """``-audiodev``: only the ``none`` driver (no sound hardware is modeled); its id."""
    if arg.startswith("{"):
        try:
            data = json.loads(arg)
        except ValueError:
            raise QemuError("JSON parse error", location=location) from None
        if not isinstance(data, dict):
            raise QemuError("Invalid parameter type, expected 'object'", location=location)
        ident, driver = data.get("id"), data.get("driver")
    else:
        values = parse_keyval(arg, "driver").values
        ident, driver = values.get("id"), values.get("driver")
    if driver is None:
        raise QemuError("Parameter 'driver' is missing", location=location)
    if ident is None:
        raise QemuError("Parameter 'id' is missing", location=location)
    if driver != "none":
        raise QemuError(
            f"audio driver '{driver}' is not modeled by this emulator (only 'none')",
            location=location,
        )
    return str(ident)


__all__ = [
    "PROCESS_ARG_OPTIONS",
    "PROCESS_FLAGS",
    "ChardevSpec",
    "MonitorSpec",
    "ProcessOptionParser",
    "ProcessOptions",
]
