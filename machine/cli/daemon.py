"""``-daemonize`` and ``-pidfile``: detaching from the caller as QEMU does.

With ``-daemonize`` the process forks before anything is built; the parent waits
until the child reports that start-up is over (its monitors listen) and exits 0,
or exits 1 if the child failed first, its error already on the shared stderr. The
child then starts a session, moves to ``/`` and points its standard streams at
``/dev/null``. ``-pidfile FILE`` creates FILE, locks it and writes the process id
(after the fork, so it is the daemon's), and removes it when the process ends.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os

from spapr.errors import QemuError


class Daemon:
    """The parent's wait and the child's report of a ``-daemonize`` start."""

    def __init__(self) -> None:
        self._report_fd: int | None = None

    def fork(self) -> int | None:
        """Fork: in the parent, the exit status once the child is ready; None in the child."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as pipe:
                status = pipe.read(1)
            if status == b"\0":
                return 0
            os.waitpid(pid, 0)
            return 1
        os.close(read_fd)
        os.setsid()
        self._report_fd = write_fd
        return None

    def ready(self) -> None:
        """The child has started: release the parent, leave the caller's streams and cwd."""
        if self._report_fd is None:
            return
        os.write(self._report_fd, b"\0")
        os.close(self._report_fd)
        self._report_fd = None
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)


def write_pidfile(path: str) -> None:
    """Create, lock and fill the pid file; it is removed at exit (QemuError on failure)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise QemuError(
            f"cannot create PID file: Could not create '{path}': {exc.strerror}"
        ) from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise QemuError(
            f"cannot create PID file: Cannot lock pid file '{path}': Resource temporarily "
            "unavailable"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    pid = os.getpid()

    def remove() -> None:
        if os.getpid() == pid:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)

    atexit.register(remove)


__all__ = ["Daemon", "write_pidfile"]
