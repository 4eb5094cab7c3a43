"""``query-qmp-schema``: the introspection of this emulator's QMP, in QEMU 7.2's format.

Built from the command table itself (every command this emulator answers, with the
arguments its marshaller checks) and the return and event types below, which say
what the handlers really return. As in QEMU, type names other than the built-ins
are masked as numbers, given in the order of first use; optional members carry
``"default": null``; enums list ``values`` and ``members``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from machine.monitor.qapi_args import Arg, ArgType

#: A type: a built-in name, or ("obj", members), ("arr", element), ("enum", values).
Ty = str | tuple[str, Any]
Member = tuple[str, Ty, bool]

_BUILTIN_JSON = {
    "str": "string",
    "int": "int",
    "bool": "boolean",
    "number": "number",
    "null": "null",
    "any": "value",
}
EMPTY: Ty = ("obj", ())


def obj(*members: Member) -> Ty:
    """An object type with the members (name, type, optional)."""
    return ("obj", tuple(members))


def arr(element: Ty) -> Ty:
    """An array of ``element``."""
    return ("arr", element)


def enum(*values: str) -> Ty:
    """An enum of ``values``."""
    return ("enum", tuple(values))


_RUN_STATE = enum(
    "debug", "inmigrate", "internal-error", "io-error", "paused", "postmigrate",
    "prelaunch", "finish-migrate", "restore-vm", "running", "save-vm", "shutdown",
    "suspended", "watchdog", "guest-panicked", "colo",
)  # fmt: skip
_CPU_PROPS = obj(("node-id", "int", True), ("core-id", "int", True))
_VERSION = obj(
    ("qemu", obj(("major", "int", False), ("minor", "int", False), ("micro", "int", False)), False),
    ("package", "str", False),
)
_CAPABILITY_STATE = obj(("capability", "str", False), ("state", "bool", False))
_PROPERTY_INFO = obj(
    ("name", "str", False),
    ("type", "str", False),
    ("description", "str", True),
    ("default-value", "any", True),
)
_SHUTDOWN_CAUSE = enum(
    "none", "host-error", "host-qmp-quit", "host-qmp-system-reset", "host-signal",
    "host-ui", "guest-shutdown", "guest-reset", "guest-panic", "subsystem-reset",
    "snapshot-load",
)  # fmt: skip

#: What each command returns (commands absent here return an empty object).
RETURNS: Mapping[str, Ty] = {
    "query-status": obj(
        ("running", "bool", False), ("singlestep", "bool", False), ("status", _RUN_STATE, False)
    ),
    "query-version": _VERSION,
    "query-commands": arr(obj(("name", "str", False))),
    "qom-list": arr(
        obj(("name", "str", False), ("type", "str", False), ("description", "str", True))
    ),
    "qom-get": "any",
    "query-cpus-fast": arr(
        obj(
            ("cpu-index", "int", False),
            ("qom-path", "str", False),
            ("thread-id", "int", False),
            ("props", _CPU_PROPS, True),
            ("target", "str", False),
        )
    ),
    "query-hotpluggable-cpus": arr(
        obj(
            ("type", "str", False),
            ("vcpus-count", "int", False),
            ("props", _CPU_PROPS, False),
            ("qom-path", "str", True),
        )
    ),
    "human-monitor-command": "str",
    "query-migrate": obj(("status", "str", True)),
    "query-target": obj(("arch", "str", False)),
    "query-qmp-schema": arr("any"),
    "query-kvm": obj(("enabled", "bool", False), ("present", "bool", False)),
    "qom-list-types": arr(
        obj(("name", "str", False), ("abstract", "bool", True), ("parent", "str", True))
    ),
    "device-list-properties": arr(_PROPERTY_INFO),
    "qom-list-properties": arr(_PROPERTY_INFO),
    "query-machines": arr(
        obj(
            ("name", "str", False),
            ("alias", "str", True),
            ("is-default", "bool", True),
            ("cpu-max", "int", False),
            ("hotpluggable-cpus", "bool", False),
            ("numa-mem-supported", "bool", False),
            ("deprecated", "bool", False),
            ("default-cpu-type", "str", True),
            ("default-ram-id", "str", True),
        )
    ),
    "query-cpu-definitions": arr(
        obj(
            ("name", "str", False),
            ("migration-safe", "bool", True),
            ("static", "bool", False),
            ("unavailable-features", arr("str"), True),
            ("typename", "str", False),
            ("alias-of", "str", True),
            ("deprecated", "bool", False),
        )
    ),
    "query-command-line-options": arr(
        obj(
            ("option", "str", False),
            (
                "parameters",
                arr(
                    obj(
                        ("name", "str", False),
                        ("type", enum("string", "boolean", "number", "size"), False),
                        ("help", "str", True),
                        ("default", "str", True),
                    )
                ),
                False,
            ),
        )
    ),
    "query-migrate-capabilities": arr(_CAPABILITY_STATE),
    "query-chardev": arr(
        obj(("label", "str", False), ("filename", "str", False), ("frontend-open", "bool", False))
    ),
    "query-iothreads": arr(obj(("id", "str", False), ("thread-id", "int", False))),
    "query-block": arr(obj(("device", "str", False), ("locked", "bool", False))),
    "query-named-block-nodes": arr(obj(("node-name", "str", False), ("drv", "str", False))),
    "query-jobs": arr(
        obj(
            ("id", "str", False),
            ("type", "str", False),
            ("status", "str", False),
            ("current-progress", "int", False),
            ("total-progress", "int", False),
            ("error", "str", True),
        )
    ),
}

#: Arguments written out here rather than derived from the command table: those of the
#: commands whose marshaller takes them unchecked (``'gen': false``), and
#: migrate-set-capabilities' list of structs (the table's Arg visits it; its schema
#: type is this one).
UNCHECKED_ARGS: Mapping[str, Ty] = {
    "device_add": obj(("driver", "str", False), ("bus", "str", True), ("id", "str", True)),
    "migrate-set-capabilities": obj(("capabilities", arr(_CAPABILITY_STATE), False)),
}

#: The events this emulator emits, with their data.
EVENTS: Mapping[str, Ty] = {
    "SHUTDOWN": obj(("guest", "bool", False), ("reason", _SHUTDOWN_CAUSE, False)),
    "RESET": obj(("guest", "bool", False), ("reason", _SHUTDOWN_CAUSE, False)),
    "POWERDOWN": EMPTY,
    "STOP": EMPTY,
    "RESUME": EMPTY,
    "DEVICE_DELETED": obj(("device", "str", True), ("path", "str", False)),
    "DEVICE_UNPLUG_GUEST_ERROR": obj(("device", "str", True), ("path", "str", False)),
    "GUEST_PANICKED": obj(("action", enum("pause", "poweroff", "run"), False)),
    "MIGRATION": obj(("status", "str", False)),
}

_ARG_TYPES: Mapping[ArgType, str] = {
    ArgType.STR: "str",
    ArgType.INT: "int",
    ArgType.BOOL: "bool",
    ArgType.ANY: "any",
}


def args_type(args: Sequence[Arg]) -> Ty:
    """The argument object of a command whose marshaller checks ``args``."""
    members: list[Member] = []
    for arg in args:
        ty: Ty = arr(enum(*arg.values)) if arg.type is ArgType.ENUM_LIST else _ARG_TYPES[arg.type]
        members.append((arg.name, ty, arg.optional))
    return obj(*members)


class _Builder:
    """Numbers the types in order of first use and collects their entities."""

    def __init__(self) -> None:
        self.entities: list[dict[str, Any]] = []
        self.names: dict[Any, str] = {}
        self.builtins: list[str] = []
        self.count = 0

    def ref(self, ty: Ty) -> str:
        if isinstance(ty, str):
            if ty not in self.builtins:
                self.builtins.append(ty)
            return ty
        if ty in self.names:
            return self.names[ty]
        kind, body = ty
        if kind == "arr":
            element = self.ref(body)
            name = f"[{element}]"
            self.names[ty] = name
            self.entities.append({"name": name, "meta-type": "array", "element-type": element})
            return name
        name = str(self.count)
        self.count += 1
        self.names[ty] = name
        entity: dict[str, Any] = {"name": name}
        self.entities.append(entity)
        if kind == "enum":
            entity["meta-type"] = "enum"
            entity["values"] = list(body)
            entity["members"] = [{"name": v} for v in body]
        else:
            members = []
            for member_name, member_ty, optional in body:
                member: dict[str, Any] = {"name": member_name}
                if optional:
                    member["default"] = None
                member["type"] = self.ref(member_ty)
                members.append(member)
            entity["meta-type"] = "object"
            entity["members"] = members
        return name


def build_schema(commands: Iterable[tuple[str, Sequence[Arg] | None]]) -> list[dict[str, Any]]:
    """The whole introspection: commands (name, checked args), then events, then types."""
    b = _Builder()
    head: list[dict[str, Any]] = []
    b.ref(EMPTY)
    for name, args in commands:
        if name in UNCHECKED_ARGS:
            arg_ty = UNCHECKED_ARGS[name]
        else:
            arg_ty = args_type(args) if args is not None else EMPTY
        entity = {"name": name, "ret-type": b.ref(RETURNS.get(name, EMPTY)), "meta-type": "command"}
        entity["arg-type"] = b.ref(arg_ty)
        head.append(entity)
    for name, data in EVENTS.items():
        head.append({"name": name, "meta-type": "event", "arg-type": b.ref(data)})
    builtins = [
        {"name": n, "meta-type": "builtin", "json-type": _BUILTIN_JSON[n]} for n in b.builtins
    ]
    return head + b.entities + builtins


__all__ = ["EVENTS", "RETURNS", "UNCHECKED_ARGS", "arr", "build_schema", "enum", "obj"]
