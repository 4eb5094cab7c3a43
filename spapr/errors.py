"""The one host-side error type: a refusal carrying QEMU 7.2's exact message.

device_add/device_del refusals, command-line refusals and monitor argument errors
all raise :class:`QemuError`; the monitor turns it into a QMP error of its
``error_class`` and the command line prints ``qemu-system-ppc64: <message>``.
"""

from __future__ import annotations


class QemuError(Exception):
    """A refusal with QEMU's text and QMP error class (GenericError, DeviceNotFound, ...)."""

    def __init__(
        self, message: str, error_class: str = "GenericError", *, location: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        #: The command-line option QEMU names before the message (``-device ...: msg``).
        self.location = location

    def report(self, prog: str = "qemu-system-ppc64") -> str:
        """The line QEMU's error_report prints on stderr (without the newline)."""
        where = f"{self.location}: " if self.location else ""
        return f"{prog}: {where}{self.message}"

    def __repr__(self) -> str:
        return f"QemuError({self.message!r}, {self.error_class!r})"
