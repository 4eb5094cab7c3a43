"""QMP argument checking as QEMU's generated marshallers do it (the QObject input visitor).

Members are visited in schema order: a missing mandatory member is "Parameter 'x'
is missing", a value of the wrong JSON type "Invalid parameter type for 'x',
expected: integer", an unknown enum value "Parameter 'x' does not accept value
'y'"; whatever is left over is reported as "Parameter 'k' is unexpected", the
first leftover key in GLib hash-table order (the visitor keeps the unvisited keys
in a ``GHashTable``), which is why the key QEMU names can look arbitrary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from machine.config.ghash import GHashTableModel
from machine.monitor.qmp_json import INT64_MAX, INT64_MIN, qdict_keys
from spapr.errors import QemuError


class ArgType(enum.Enum):
    """QAPI member types the modelled commands use."""

    STR = "str"
    INT = "int"
    BOOL = "bool"
    ENUM = "enum"
    ENUM_LIST = "enum-list"
    #: A list of structs (``members``), e.g. migrate-set-capabilities' capabilities.
    STRUCT_LIST = "struct-list"
    ANY = "any"


@attrs.frozen
class Arg:
    """One member of a command's argument struct."""

    name: str
    type: ArgType
    optional: bool = False
    #: Allowed values of an enum (for ENUM and ENUM_LIST).
    values: tuple[str, ...] = ()
    #: The members of each struct of a STRUCT_LIST, in schema order.
    members: tuple[Arg, ...] = ()


def missing(name: str) -> QemuError:
    """QERR_MISSING_PARAMETER."""
    return QemuError(f"Parameter '{name}' is missing")


def invalid_type(name: str, expected: str) -> QemuError:
    """QERR_INVALID_PARAMETER_TYPE."""
    return QemuError(f"Invalid parameter type for '{name}', expected: {expected}")


def invalid_value(name: str, expected: str) -> QemuError:
    """QERR_INVALID_PARAMETER_VALUE."""
    return QemuError(f"Parameter '{name}' expects {expected}")


def is_int64(value: Any) -> bool:
    """qnum_get_try_int: a JSON integer that fits int64 (not a bool, not a float)."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    )


def _list_items(name: str, value: Any) -> list[tuple[str, Any]]:
    """A list member's elements with their paths (``name[0]``, ...); not a list: refused."""
    if not isinstance(value, list):
        raise invalid_type(name, "array")
    return [(f"{name}[{i}]", item) for i, item in enumerate(value)]


def _check(name: str, arg: Arg, value: Any) -> Any:
    """One member's value; ``name`` is its path in the arguments (``capabilities[0].state``)."""
    if arg.type is ArgType.STR:
        if not isinstance(value, str):
            raise invalid_type(name, "string")
        return value
    if arg.type is ArgType.INT:
        if not is_int64(value):
            raise invalid_type(name, "integer")
        return value
    if arg.type is ArgType.BOOL:
        if not isinstance(value, bool):
            raise invalid_type(name, "boolean")
        return value
    if arg.type is ArgType.ENUM:
        if not isinstance(value, str):
            raise invalid_type(name, "string")
        if value not in arg.values:
            # QEMU 7.2 names the member here, not its path (seen live: 'capability').
            raise QemuError(f"Parameter '{arg.name}' does not accept value '{value}'")
        return value
    if arg.type is ArgType.STRUCT_LIST:
        structs = []
        for item_name, item in _list_items(name, value):
            if not isinstance(item, dict):
                raise invalid_type(item_name, "object")
            structs.append(_visit_struct(item, arg.members, f"{item_name}."))
        return structs
    if arg.type is ArgType.ENUM_LIST:
        items = []
        for item_name, item in _list_items(name, value):
            if not isinstance(item, str):
                raise invalid_type(item_name, "string")
            if item not in arg.values:
                # QEMU 7.2 names a list element's enum by a NULL name, printed as "null".
                raise QemuError(f"Parameter 'null' does not accept value '{item}'")
            items.append(item)
        return items
    return value


def visit_arguments(args: Mapping[str, Any], schema: Sequence[Arg]) -> dict[str, Any]:
    """Check ``args`` against ``schema``; the accepted values, or QemuError with QEMU's text."""
    return _visit_struct(args, schema, "")


def _visit_struct(args: Mapping[str, Any], schema: Sequence[Arg], prefix: str) -> dict[str, Any]:
    """Members in schema order, then the leftovers; ``prefix`` is the struct's path + "."."""
    unvisited = GHashTableModel.from_keys(qdict_keys(dict(args)))
    out: dict[str, Any] = {}
    for arg in schema:
        if arg.name not in args:
            if arg.optional:
                continue
            raise missing(prefix + arg.name)
        unvisited.remove(arg.name)
        out[arg.name] = _check(prefix + arg.name, arg, args[arg.name])
    leftover = unvisited.keys()
    if leftover:
        raise QemuError(f"Parameter '{prefix}{leftover[0]}' is unexpected")
    return out
