"""Standard output and error that never stop the machine: a reader gone, or one that stalls.

QEMU ignores SIGPIPE: when whoever read its stdout or stderr has gone (``spapr ...
| head``), a write fails with EPIPE, the text is lost, and QEMU carries on with its
monitor input until ``quit``; and its monitor output waits in a buffer while the
terminal or pipe is full, so its main loop (QMP, timers, signals) keeps running.
:class:`TolerantStream` gives Python's text streams the same two properties:

* the first write or flush that fails because the reader has gone (or the device
  failed: a full disk) marks the stream broken; later writes are dropped, and the
  file descriptor is pointed at ``/dev/null`` so the interpreter's own flush at exit
  does not complain either;
* on a pipe or socket (never a terminal, whose file status is shared with the
  shell) the descriptor is made non-blocking and written directly: what the
  reader has no room for waits in a buffer of at most :data:`MAX_PENDING` bytes
  (past that, output is dropped and counted), and :meth:`TolerantStream.finish`
  gives a stalled reader :data:`DRAIN_S` seconds at exit before giving up, so a
  full pipe never blocks the run or its end.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import select
import stat
import time
from typing import TextIO

#: Output kept for a reader that is not reading (past it, output is dropped).
MAX_PENDING = 4 << 20
#: How long the end of the run waits for a stalled reader to take what is pending.
DRAIN_S = 2.0
#: Output written at once when this much waits (io.DEFAULT_BUFFER_SIZE, as Python's).
_BLOCK = io.DEFAULT_BUFFER_SIZE


class TolerantStream(io.TextIOBase):
    """A text stream whose writes never raise and never block on a pipe (see the module)."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self.inner = inner
        #: Set once a write failed (the reader closed its end, or the device failed).
        self.broken = False
        #: Bytes dropped because the reader left them pending past :data:`MAX_PENDING`.
        self.dropped = 0
        self._fd: int | None = None
        self._old_flags: int | None = None
        self._pending = bytearray()
        self._encoding = getattr(inner, "encoding", None) or "utf-8"
        self._line_buffering = bool(getattr(inner, "line_buffering", False))
        self._direct_on_pipe()

    def _direct_on_pipe(self) -> None:
        """Write a pipe or socket directly and without blocking (never a terminal)."""
        try:
            fd = self.inner.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
            return
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            return
        with contextlib.suppress(OSError, ValueError):
            self.inner.flush()
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            self._fd, self._old_flags = fd, flags

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        if self._fd is None:
            try:
                self.inner.write(text)
            except (OSError, ValueError):
                self._break()
            return len(text)
        data = text.encode(self._encoding, "backslashreplace")
        if len(self._pending) + len(data) > MAX_PENDING:
            self.dropped += len(data)
        else:
            self._pending += data
        # as the stream it stands for buffers: by line (stderr) or by block (stdout)
        if len(self._pending) >= _BLOCK or (self._line_buffering and b"\n" in data):
            self._drain()
        return len(text)

    def _drain(self) -> None:
        """Write what the reader has room for now."""
        fd = self._fd
        while self._pending and fd is not None and not self.broken:
            try:
                written = os.write(fd, self._pending)
            except BlockingIOError:
                return
            except OSError:
                self._break()
                return
            del self._pending[:written]

    def flush(self) -> None:
        if self.broken:
            return
        if self._fd is not None:
            self._drain()
            return
        try:
            self.inner.flush()
        except (OSError, ValueError):
            self._break()

    def finish(self, deadline: float | None = None) -> None:
        """At the end of the run: give a slow reader until ``deadline`` (monotonic) at most.

        The descriptor stays non-blocking (stdout and stderr may share it, ``2>&1``):
        :meth:`restore` gives it its flags back once every stream has finished.
        """
        fd = self._fd
        if fd is None:
            self.flush()
            return
        if deadline is None:
            deadline = time.monotonic() + DRAIN_S
        while self._pending and not self.broken:
            left = deadline - time.monotonic()
            if left <= 0:
                self.dropped += len(self._pending)
                self._pending.clear()
                break
            with contextlib.suppress(OSError, ValueError):
                select.select([], [fd], [], left)
            self._drain()

    def restore(self) -> None:
        """Give the descriptor its own flags back (after every stream's :meth:`finish`)."""
        fd, self._fd = self._fd, None
        if fd is not None and self._old_flags is not None and not self.broken:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, self._old_flags)

    def _break(self) -> None:
        """Drop whatever is still buffered: point the descriptor at /dev/null."""
        self.broken = True
        self._pending.clear()
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            fd = self.inner.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
            with contextlib.suppress(OSError, ValueError):
                self.inner.flush()

    def isatty(self) -> bool:
        try:
            return not self.broken and self.inner.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding
