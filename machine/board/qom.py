"""A QOM-style object tree: the paths QEMU's monitor shows for cores, threads and DRCs.

Objects have a type name, named children (``child<T>`` properties) and links.
Paths follow QEMU 7.2: boot cores at ``/machine/unattached/device[N]``, cores with
an id at ``/machine/peripheral/ID`` (without one at ``/machine/peripheral-anon/
device[N]``), threads at ``<core>/thread[i]``, DR connectors at
``/machine/dr-connector[<decimal index>]`` with links ``/dr-connector/<hex>``.
A ``[*]`` name takes the lowest free number, as QOM's object_property_add does, so
freed numbers are reused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs


@attrs.define(eq=False)
class QomObject:
    """One object of the tree; ``payload`` is the model object it stands for, if any."""

    type_name: str
    payload: Any = None
    name: str = ""
    parent: QomObject | None = None
    children: dict[str, QomObject] = attrs.field(factory=dict)
    links: dict[str, tuple[str, Any]] = attrs.field(factory=dict)

    @property
    def path(self) -> str:
        if self.parent is None:
            return ""
        return f"{self.parent.path}/{self.name}"

    @property
    def canonical_path(self) -> str:
        return self.path or "/"

    def child(self, name: str) -> QomObject | None:
        return self.children.get(name)

    def walk(self) -> Iterator[QomObject]:
        """This object and its descendants, depth first, children in insertion order."""
        yield self
        for child in self.children.values():
            yield from child.walk()


class QomTree:
    """The object tree rooted at ``/`` with the machine's containers."""

    def __init__(self, machine_type: str) -> None:
        self.root = QomObject("container")
        self.machine = self.add_child(self.root, "machine", QomObject(machine_type))
        self.unattached = self.add_child(self.machine, "unattached", QomObject("container"))
        self.peripheral = self.add_child(self.machine, "peripheral", QomObject("container"))
        self.peripheral_anon = self.add_child(
            self.machine, "peripheral-anon", QomObject("container")
        )
        self.dr_connectors = self.add_child(self.root, "dr-connector", QomObject("container"))

    @staticmethod
    def add_child(parent: QomObject, name: str, obj: QomObject) -> QomObject:
        """Add ``obj`` under ``parent``; ``name`` may end in ``[*]`` (lowest free number)."""
        if name.endswith("[*]"):
            stem = name[:-3]
            i = 0
            while f"{stem}[{i}]" in parent.children:
                i += 1
            name = f"{stem}[{i}]"
        if name in parent.children:
            raise ValueError(f"attempt to add duplicate property '{name}' to object")
        obj.name = name
        obj.parent = parent
        parent.children[name] = obj
        return obj

    @staticmethod
    def unparent(obj: QomObject) -> None:
        """Remove ``obj`` (and its subtree) from its parent."""
        if obj.parent is not None:
            del obj.parent.children[obj.name]
            obj.parent = None

    def resolve(self, path: str) -> QomObject | None:
        """An absolute path (``/machine/peripheral/core1``) to its object, or None."""
        if not path.startswith("/"):
            return None
        node = self.root
        for part in path.split("/")[1:]:
            if part == "":
                continue
            nxt = node.children.get(part)
            if nxt is None:
                link = node.links.get(part)
                if link is None or not isinstance(link[1], QomObject):
                    return None
                nxt = link[1]
            node = nxt
        return node

    def find_payload(self, payload: Any) -> QomObject | None:
        """The object standing for ``payload``."""
        for obj in self.root.walk():
            if obj.payload is payload:
                return obj
        return None
