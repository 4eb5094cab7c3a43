"""The tree model: ordered nodes with libfdt's insertion semantics.

QEMU builds its trees with libfdt in read-write mode, where a new property goes
to the front of its node and a new subnode goes before the existing subnodes.
:meth:`Node.set_property` and :meth:`Node.add_subnode` do the same, so building a
tree in QEMU's creation order yields QEMU's stored order; ``append_*`` add at the
end instead (the order ``dtc`` and most hand-written trees use).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from fdt._error import FdtError
from fdt._property import NAME_CHARS, Property

#: Deepest nesting accepted (the root is depth 0); Linux's unflattener stops at 64 too.
MAX_DEPTH = 64


def check_node_name(name: str, *, root: bool = False) -> str:
    """Return ``name`` if it can name a node (``""`` only for a root), else raise FdtError."""
    if not isinstance(name, str):
        raise FdtError(f"node name must be a str, not {type(name).__name__}")
    if not name and root:
        return name
    if not name or "/" in name or not NAME_CHARS.issuperset(name):
        raise FdtError(f"invalid node name {name!r}")
    return name


def _property_list(items: Iterable[Property]) -> list[Property]:
    return list(items)


def _node_list(items: Iterable[Node]) -> list[Node]:
    return list(items)


def _validate_own_name(_inst: object, _attr: object, name: str) -> None:
    check_node_name(name, root=True)


@attrs.define
class Node:
    """A node: its full name (``cpus``, ``PowerPC,POWER9@8``; ``""`` for the root),
    ordered properties and ordered children; ``==`` is order-sensitive."""

    name: str = attrs.field(validator=_validate_own_name, on_setattr=attrs.setters.frozen)
    _properties: list[Property] = attrs.field(
        factory=list, converter=_property_list, alias="properties", on_setattr=attrs.setters.frozen
    )
    _children: list[Node] = attrs.field(
        factory=list, converter=_node_list, alias="children", on_setattr=attrs.setters.frozen
    )
    _prop_index: dict[str, Property] = attrs.field(
        init=False, factory=dict, eq=False, repr=False, on_setattr=attrs.setters.frozen
    )
    _child_index: dict[str, Node] = attrs.field(
        init=False, factory=dict, eq=False, repr=False, on_setattr=attrs.setters.frozen
    )

    def __attrs_post_init__(self) -> None:
        props, children = list(self._properties), list(self._children)
        self._properties.clear()
        self._children.clear()
        for prop in props:
            self.append_property(prop, replace=False)
        for child in children:
            self.append_subnode(child)

    # -- properties -------------------------------------------------------

    @property
    def properties(self) -> tuple[Property, ...]:
        """The properties in stored order."""
        return tuple(self._properties)

    def set_property(self, prop: Property) -> Property:
        """libfdt fdt_setprop: a new property goes first; an existing one is replaced in place."""
        if not self._replace(prop):
            self._properties.insert(0, prop)
            self._prop_index[prop.name] = prop
        return prop

    def append_property(self, prop: Property, *, replace: bool = True) -> Property:
        """Add ``prop`` last, or replace an existing one in place (FdtError if not ``replace``)."""
        if not isinstance(prop, Property):
            raise TypeError(f"expected a Property, not {type(prop).__name__}")
        if prop.name in self._prop_index:
            if not replace:
                raise FdtError(f"duplicate property {prop.name!r} in node {self.name!r}")
            self._replace(prop)
        else:
            self._properties.append(prop)
            self._prop_index[prop.name] = prop
        return prop

    def _replace(self, prop: Property) -> bool:
        if not isinstance(prop, Property):
            raise TypeError(f"expected a Property, not {type(prop).__name__}")
        if prop.name not in self._prop_index:
            return False
        for i, old in enumerate(self._properties):
            if old.name == prop.name:
                self._properties[i] = prop
                break
        self._prop_index[prop.name] = prop
        return True

    def get(self, name: str) -> Property | None:
        """The property called ``name``, or None."""
        return self._prop_index.get(name)

    def __getitem__(self, name: str) -> Property:
        return self._prop_index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._prop_index

    def remove_property(self, name: str) -> Property:
        """Delete and return the property ``name`` (KeyError if absent)."""
        prop = self._prop_index.pop(name)
        self._properties.remove(prop)
        return prop

    # -- children ---------------------------------------------------------

    @property
    def children(self) -> tuple[Node, ...]:
        """The subnodes in stored order."""
        return tuple(self._children)

    def add_subnode(self, node: Node) -> Node:
        """libfdt fdt_add_subnode: the new node goes before the existing subnodes."""
        self._index_child(node)
        self._children.insert(0, node)
        return node

    def append_subnode(self, node: Node) -> Node:
        """Add ``node`` after the existing subnodes."""
        self._index_child(node)
        self._children.append(node)
        return node

    def _index_child(self, node: Node) -> None:
        if not isinstance(node, Node):
            raise TypeError(f"expected a Node, not {type(node).__name__}")
        check_node_name(node.name)
        if node.name in self._child_index:
            raise FdtError(f"duplicate node {node.name!r} under {self.name or '/'!r}")
        if node is self:
            raise FdtError(f"node {node.name!r} cannot be its own child")
        self._child_index[node.name] = node

    def subnode(self, name: str) -> Node | None:
        """The child with exactly this name, or None."""
        return self._child_index.get(name)

    def remove_subnode(self, name: str) -> Node:
        """Delete and return the child ``name`` (KeyError if absent)."""
        node = self._child_index.pop(name)
        self._children.remove(node)
        return node

    # -- whole tree -------------------------------------------------------

    def find(self, path: str) -> Node | None:
        """The node at ``path`` below this one (``/cpus/PowerPC,POWER8@0``; ``/`` is this node).

        A component without a unit address matches an exact name first, else the
        first child whose name before ``@`` equals it (as libfdt does).
        """
        node = self
        for part in path.split("/"):
            if not part:
                continue
            found = node._child_index.get(part)
            if found is None and "@" not in part:
                found = next((c for c in node._children if c.name.split("@")[0] == part), None)
            if found is None:
                return None
            node = found
        return node

    def iter_nodes(self) -> Iterator[tuple[str, Node]]:
        """Every node depth-first (parents before children) with its path from this node.

        Raises FdtError on a loop (a node inside itself) or nesting beyond MAX_DEPTH.
        """
        yield "/", self
        on_path = {id(self)}
        stack: list[tuple[Node, str, Iterator[Node]]] = [(self, "", iter(self._children))]
        while stack:
            parent, parent_path, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                on_path.discard(id(parent))
                continue
            if id(child) in on_path:
                raise FdtError(f"loop: node {child.name!r} contains itself")
            if len(stack) > MAX_DEPTH:
                raise FdtError(f"nesting deeper than {MAX_DEPTH} levels")
            path = f"{parent_path}/{child.name}"
            yield path, child
            on_path.add(id(child))
            stack.append((child, path, iter(child._children)))

    def copy(self) -> Node:
        """A deep copy (properties are immutable and shared)."""
        for _ in self.iter_nodes():  # refuse loops before recursing
            pass
        return self._copy()

    def _copy(self) -> Node:
        return Node(self.name, self._properties, [c._copy() for c in self._children])

    def same_content(self, other: Node) -> bool:
        """Equal names, properties and children, ignoring property and child order."""
        if self.name != other.name or self._prop_index.keys() != other._prop_index.keys():
            return False
        if self._child_index.keys() != other._child_index.keys():
            return False
        if any(p.value != other._prop_index[n].value for n, p in self._prop_index.items()):
            return False
        return all(c.same_content(other._child_index[n]) for n, c in self._child_index.items())


def _as_reserve_map(entries: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out = []
    for entry in entries:
        address, size = entry
        for v in (address, size):
            if not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise FdtError(f"reserve-map value {v!r} is not a u64")
        if size == 0:
            raise FdtError("reserve-map entry of size 0 (that is the terminator)")
        out.append((address, size))
    return tuple(out)


def _check_boot_cpuid(_inst: object, _attr: object, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF_FFFF:
        raise FdtError(f"boot_cpuid_phys {value!r} is not a u32")


@attrs.frozen
class DeviceTree:
    """A whole blob's content: the root node, boot CPU and memory reservation map."""

    root: Node = attrs.field(factory=lambda: Node(""))
    boot_cpuid_phys: int = attrs.field(default=0, validator=_check_boot_cpuid)
    reserve_map: tuple[tuple[int, int], ...] = attrs.field(default=(), converter=_as_reserve_map)
