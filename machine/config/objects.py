"""``-object``: memory backends and secrets, in QEMU's key=value or JSON form.

libvirt writes ``-object`` as JSON (``{"qom-type":"secret",...}``) once QEMU's schema
says objects are QAPI-described; people write ``key=value``. Both come here. A
``memory-backend-ram`` becomes the :class:`~machine.config.numa.MemoryBackend` the
NUMA and RAM checks use; a ``secret`` (libvirt's master key) is read as QEMU reads it
when the object is created, and kept only as its id and length (nothing in this
model decrypts anything).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs

from machine.config.numa import MemoryBackend, parse_memory_backend
from machine.config.qemu_opts import OptsStore, QemuOpts, QemuWarning
from spapr.errors import QemuError

_SECRET_KEYS = ("qom-type", "id", "format", "data", "file", "keyid", "iv", "loaded")


@attrs.frozen
class SecretObject:
    """A ``secret`` object: its id and how many bytes it holds."""

    id: str
    length: int


ObjectSpec = MemoryBackend | SecretObject


def _keyval_text(data: dict[str, Any], location: str) -> str:
    """A JSON object as the equivalent key=value text (QEMU's types checked first)."""
    parts = []
    for key, value in data.items():
        if key == "size" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise QemuError("Parameter 'size' expects uint64", location=location)
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            raise QemuError(f"Parameter '{key}' is not modeled in JSON form", location=location)
        parts.append(f"{key}={text.replace(',', ',,')}")
    return ",".join(parts)


def parse_object(
    store: OptsStore, arg: str, location: str, warnings: list[QemuWarning]
) -> ObjectSpec:
    """One ``-object``; QemuError with QEMU's text on refusal."""
    if arg.startswith("{"):
        try:
            data = json.loads(arg)
        except ValueError:
            raise QemuError("JSON parse error, invalid -object value", location=location) from None
        if not isinstance(data, dict):
            raise QemuError("Invalid parameter type, expected 'object'", location=location)
        arg = _keyval_text(data, location)
    opts = store.parse(arg, location=location, warnings=warnings)
    if opts.get("qom-type") == "secret":
        return _secret(opts, location)
    return parse_memory_backend(opts)


def _secret(opts: QemuOpts, location: str) -> SecretObject:
    for name in opts.names():
        if name not in _SECRET_KEYS:
            raise QemuError(f"Parameter '{name}' is unexpected", location=location)
    ident = opts.id
    if ident is None:
        raise QemuError("Parameter 'id' is missing", location=location)
    fmt = opts.get("format") or "raw"
    if fmt not in ("raw", "base64"):
        raise QemuError(f"Parameter 'format' does not accept value '{fmt}'", location=location)
    data, path = opts.get("data"), opts.get("file")
    if (data is None) == (path is None):
        raise QemuError("'data' and 'file' are mutually exclusive" if data else
                        "Either 'data' or 'file' must be provided")  # fmt: skip
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise QemuError(
                f"Unable to read {path}: Failed to open file \u201c{path}\u201d: {exc.strerror}"
            ) from None
    else:
        raw = (data or "").encode()
    if fmt == "base64":
        try:
            raw = base64.b64decode(raw, validate=True)
        except ValueError:
            raise QemuError("Unable to decode secret data: invalid base64") from None
    return SecretObject(ident, len(raw))


__all__ = ["ObjectSpec", "SecretObject", "parse_object"]
