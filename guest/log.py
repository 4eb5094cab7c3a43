"""The guest's log: kernel messages (dmesg) and the user-space daemons' messages.

Every line carries the virtual time it was printed at, a printk level and the
program that printed it ("kernel" for dmesg, else e.g. "rtas_errd", "drmgr").
Message texts are Linux's own formats with the values filled in, so a test can
look for exactly what a real pseries guest would print.
"""

from __future__ import annotations

import enum

import attrs

#: Source name of kernel messages.
KERNEL = "kernel"


class LogLevel(enum.IntEnum):
    """printk levels (KERN_EMERG .. KERN_DEBUG)."""

    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7


@attrs.frozen
class LogEntry:
    """One printed line."""

    time_ns: int
    level: LogLevel
    text: str
    source: str = KERNEL

    def dmesg_line(self) -> str:
        """``[    1.000000] text`` as dmesg prints it (seconds and microseconds)."""
        seconds, rest = divmod(max(self.time_ns, 0), 1_000_000_000)
        return f"[{seconds:5d}.{rest // 1000:06d}] {self.text}"

    def syslog_line(self) -> str:
        """``source: text`` as a syslog reader shows a daemon's message."""
        return f"{self.source}: {self.text}"


#: Lines the log keeps: like the kernel's printk ring buffer, the log is bounded and
#: the oldest lines go first (about 4096 lines of some 60 bytes, the 256 KiB of a
#: CONFIG_LOG_BUF_SHIFT=18 kernel).
LOG_KEEP = 4096


@attrs.define
class GuestLog:
    """The lines printed since boot, in print order (the latest :data:`LOG_KEEP` to 1.5x)."""

    entries: list[LogEntry] = attrs.field(factory=list)
    #: Lines printed since boot that the bound pushed out.
    dropped: int = 0

    def emit(self, time_ns: int, level: LogLevel, text: str, source: str = KERNEL) -> LogEntry:
        """Append a line and return it (dropping the oldest lines past the bound)."""
        entry = LogEntry(time_ns, level, text, source)
        entries = self.entries
        entries.append(entry)
        if len(entries) >= LOG_KEEP + LOG_KEEP // 2:
            excess = len(entries) - LOG_KEEP
            del entries[:excess]
            self.dropped += excess
        return entry

    def clear(self) -> None:
        """Forget everything (a reboot)."""
        self.entries.clear()
        self.dropped = 0

    def kernel(self) -> list[LogEntry]:
        """The kernel's lines only (what dmesg reads)."""
        return [e for e in self.entries if e.source == KERNEL]

    def dmesg(self) -> list[str]:
        """The kernel ring buffer as ``dmesg`` prints it."""
        return [e.dmesg_line() for e in self.entries if e.source == KERNEL]

    def texts(self, source: str | None = None) -> list[str]:
        """Message texts, optionally of one source only."""
        return [e.text for e in self.entries if source is None or e.source == source]

    def contains(self, text: str, source: str | None = None) -> bool:
        """Whether some line of ``source`` (any if None) contains ``text``."""
        return any(text in t for t in self.texts(source))
