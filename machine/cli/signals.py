"""Ending on SIGTERM, SIGINT and SIGHUP as QEMU 7.2 does.

QEMU's ``termsig_handler`` notes the signal and who sent it, and its main loop
then shuts down cleanly: a SHUTDOWN event (``"reason": "host-signal"``) to every
QMP client, ``qemu-system-ppc64: terminating on signal 15 from pid 686 (bash)`` on
stderr (the sender's name is the first word of its ``/proc/PID/cmdline``; a signal
without a sender, ^C at the terminal, prints ``terminating on signal 2``), its
sockets removed, its files flushed, exit status 0 (checked live against
qemu-system-ppc64 7.2).

Python's signal handlers do not see the sender, so :class:`SignalWatch` blocks the
three signals in the process (threads started later inherit the mask) and takes
them with ``sigtimedwait`` on a helper thread, which reports the number and the
sender's pid. Python handlers stay installed too, for a signal that arrives at a
thread that briefly unblocked them (``machine.migration.transport`` starts an
``exec:`` command with the default mask). Everything is restored when the watch
ends, so ``main()`` can run inside another program (the tests) without changing
its signals. The watch only records the signal and calls ``on_signal`` from its
thread; the runner turns that into a shutdown on its own thread.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import attrs

#: The signals QEMU's os_setup_signal_handling sends to termsig_handler.
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_POLL_S = 0.1


@attrs.frozen
class Termination:
    """A terminating signal: its number and its sender (0: none, as ^C at a terminal)."""

    signo: int
    pid: int = 0

    def report(self, prog: str) -> str:
        """QEMU's qemu_kill_report line."""
        if self.pid == 0:
            return f"{prog}: terminating on signal {self.signo}"
        return (
            f"{prog}: terminating on signal {self.signo} from pid {self.pid} "
            f"({sender_name(self.pid)})"
        )


def sender_name(pid: int) -> str:
    """qemu_get_pid_name: the first word of /proc/PID/cmdline, or QEMU's placeholder."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return "<unknown process>"
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class SignalWatch:
    """Records the first terminating signal and calls ``on_signal`` (from its own thread)."""

    def __init__(
        self,
        on_signal: Callable[[Termination], None] | None = None,
        *,
        grace_s: float | None = None,
        prog: str = "qemu-system-ppc64",
    ) -> None:
        self.on_signal = on_signal
        self.received: Termination | None = None
        #: With ``grace_s``: a run that has not ended that long after the signal (stuck in
        #: a blocking write, say) is ended anyway, after ``cleanups`` (sockets removed).
        self.grace_s = grace_s
        self.prog = prog
        self.cleanups: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = threading.Event()

    def deliver(self, termination: Termination) -> None:
        """Record the first terminating signal and pass it on (later ones are ignored)."""
        with self._lock:
            if self.received is not None:
                return
            self.received = termination
            callback = self.on_signal
        if self.grace_s is not None:
            threading.Thread(target=self._watchdog, name="signal-grace", daemon=True).start()
        if callback is not None:
            callback(termination)

    def _watchdog(self) -> None:
        """End a run that did not end within the grace period (as cleanly as it can)."""
        assert self.grace_s is not None and self.received is not None
        if self._ended.wait(self.grace_s):
            return
        for cleanup in list(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        line = (self.received.report(self.prog) + "\n").encode()
        with contextlib.suppress(OSError, ValueError):
            if select.select([], [2], [], 0)[1]:
                os.write(2, line)
        os._exit(0)

    def _handler(self, signo: int, frame: FrameType | None) -> None:
        self.deliver(Termination(signo))

    def _wait(self) -> None:
        while not self._stop.is_set():
            info = signal.sigtimedwait(TERMINATING_SIGNALS, _POLL_S)
            if info is not None:
                self.deliver(Termination(info.si_signo, info.si_pid))

    def after_fork(self) -> None:
        """In a forked child (``-daemonize``): the signals are still blocked but the
        watching thread stayed in the parent, so start the child's own."""
        threading.Thread(target=self._wait, name="signal-watch", daemon=True).start()

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalWatch]:
        """Watch for the signals (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[int, Any] = {s: signal.signal(s, self._handler) for s in TERMINATING_SIGNALS}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATING_SIGNALS)
        waiter = threading.Thread(target=self._wait, name="signal-watch", daemon=True)
        waiter.start()
        try:
            yield self
        finally:
            self._ended.set()
            self._stop.set()
            waiter.join()
            # a signal that arrived while blocked is taken by the watch, not left pending
            while (info := signal.sigtimedwait(TERMINATING_SIGNALS, 0)) is not None:
                self.deliver(Termination(info.si_signo, info.si_pid))
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            for signo, handler in previous.items():
                signal.signal(signo, handler)
