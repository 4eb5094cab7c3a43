"""Device-tree properties: a name and raw big-endian bytes, with typed constructors.

The blob stores no types, so a :class:`Property` is its name and its value bytes;
``kind`` only remembers how the value was built (a rendering hint) and takes no
part in equality. ``Property.cells("reg", 1)`` builds a value and ``prop.cells()``
reads one back: the same attribute is a constructor on the class and a reader on
an instance.
"""

from __future__ import annotations

import builtins
import enum
import functools
import struct
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar, overload

import attrs

from fdt._error import FdtError

_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

#: Characters allowed in property and node names: printable ASCII without space.
NAME_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


class PropKind(enum.Enum):
    """How a property value was built; a typing hint only (not stored in a blob)."""

    EMPTY = enum.auto()
    CELLS = enum.auto()
    U64 = enum.auto()
    STRING = enum.auto()
    STRINGS = enum.auto()
    BYTES = enum.auto()


def check_property_name(name: str) -> str:
    """Return ``name`` if it can be a property name in a blob, else raise FdtError."""
    if not isinstance(name, str):
        raise FdtError(f"property name must be a str, not {type(name).__name__}")
    if not name or not NAME_CHARS.issuperset(name):
        raise FdtError(f"invalid property name {name!r}")
    return name


def _validate_name(_inst: object, _attr: object, name: str) -> None:
    check_property_name(name)


def _as_value(value: bytes | bytearray | memoryview) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"property value must be bytes, not {type(value).__name__}")


def _cells_of(values: Iterable[int], limit: int, what: str) -> list[int]:
    out = []
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{what} must be int, not {type(v).__name__}")
        if not 0 <= v <= limit:
            raise ValueError(f"{what} {v:#x} out of range 0..{limit:#x}")
        out.append(v)
    return out


def _make_empty(name: str) -> Property:
    """A property with no value (e.g. ``64-bit``)."""
    return Property(name, b"", PropKind.EMPTY)


def _make_cells(name: str, *cells: int) -> Property:
    """Big-endian u32 cells; each must be 0..0xFFFFFFFF (write -1 as 0xFFFFFFFF)."""
    values = _cells_of(cells, _U32_MAX, "cell")
    return Property(name, struct.pack(f">{len(values)}I", *values), PropKind.CELLS)


def _make_u64(name: str, *values: int) -> Property:
    """Big-endian 64-bit numbers (two cells each)."""
    nums = _cells_of(values, _U64_MAX, "u64")
    return Property(name, struct.pack(f">{len(nums)}Q", *nums), PropKind.U64)


def _encode_string(s: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"string value must be str, not {type(s).__name__}")
    if "\0" in s:
        raise ValueError(f"string {s!r} contains NUL")
    try:
        return s.encode() + b"\0"
    except UnicodeEncodeError as exc:
        raise ValueError(f"string {s!r} is not encodable as UTF-8") from exc


def _make_string(name: str, s: str) -> Property:
    """One NUL-terminated string."""
    return Property(name, _encode_string(s), PropKind.STRING)


def _make_strings(name: str, strings: Iterable[str]) -> Property:
    """A string list: each string NUL-terminated, concatenated."""
    if isinstance(strings, str):
        raise TypeError("strings() takes an iterable of str, not one str")
    return Property(name, b"".join(_encode_string(s) for s in strings), PropKind.STRINGS)


def _make_bytes(name: str, b: bytes | bytearray | memoryview) -> Property:
    """Raw bytes."""
    return Property(name, _as_value(b), PropKind.BYTES)


def _read_cells(prop: Property) -> tuple[int, ...]:
    if len(prop.value) % 4:
        raise FdtError(f"{prop.name}: length {len(prop.value)} is not a multiple of 4")
    return struct.unpack(f">{len(prop.value) // 4}I", prop.value)


def _decode(prop: Property, raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise FdtError(f"{prop.name}: string is not valid UTF-8") from exc


def _read_string(prop: Property) -> str:
    value = prop.value
    if not value or value[-1] != 0 or value.index(0) != len(value) - 1:
        raise FdtError(f"{prop.name}: value is not one NUL-terminated string")
    return _decode(prop, value[:-1])


def _read_strings(prop: Property) -> list[str]:
    value = prop.value
    if not value:
        return []
    if value[-1] != 0:
        raise FdtError(f"{prop.name}: string list is not NUL-terminated")
    return [_decode(prop, part) for part in value[:-1].split(b"\0")]


_CtorT = TypeVar("_CtorT", bound="Callable[..., Property]")
_ReadT = TypeVar("_ReadT")


class _ConstructorOrReader(Generic[_CtorT, _ReadT]):
    """On the class: a typed constructor; on an instance: the matching reader."""

    def __init__(self, constructor: _CtorT, reader: Callable[[Property], _ReadT]) -> None:
        self._constructor = constructor
        self._reader = reader

    @overload
    def __get__(self, instance: None, owner: type[Property]) -> _CtorT: ...

    @overload
    def __get__(self, instance: Property, owner: type[Property]) -> Callable[[], _ReadT]: ...

    def __get__(
        self, instance: Property | None, owner: type[Property]
    ) -> _CtorT | Callable[[], _ReadT]:
        if instance is None:
            return self._constructor
        return functools.partial(self._reader, instance)


@attrs.frozen
class Property:
    """One property: ``name`` and raw ``value``; equality is (name, value), not kind."""

    name: str = attrs.field(validator=_validate_name)
    value: builtins.bytes = attrs.field(converter=_as_value)
    kind: PropKind = attrs.field(default=PropKind.BYTES, eq=False)

    def u64s(self) -> tuple[int, ...]:
        """The value read as big-endian 64-bit numbers."""
        if len(self.value) % 8:
            raise FdtError(f"{self.name}: length {len(self.value)} is not a multiple of 8")
        return struct.unpack(f">{len(self.value) // 8}Q", self.value)

    # Typed constructors; cells/string/strings double as readers on an instance.
    # (``bytes`` here shadows the builtin inside this class body, hence builtins.bytes.)
    empty = staticmethod(_make_empty)
    u64 = staticmethod(_make_u64)
    cells = _ConstructorOrReader(_make_cells, _read_cells)
    string = _ConstructorOrReader(_make_string, _read_string)
    strings = _ConstructorOrReader(_make_strings, _read_strings)
    bytes = staticmethod(_make_bytes)
