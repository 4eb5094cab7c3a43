"""The flat walk of a subtree, as ibm,configure-connector hands it out step by step.

A walk is BEGIN_NODE (the node's own name), its properties, each child's walk,
then END_NODE. QEMU walks the blob, i.e. the stored order; the order can be
changed here for experiments (reversed, or any permutation function).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs

from fdt._error import FdtError
from fdt._property import Property
from fdt._tree import MAX_DEPTH, Node


class WalkTag(enum.Enum):
    """What one walk step carries."""

    BEGIN_NODE = enum.auto()
    PROPERTY = enum.auto()
    END_NODE = enum.auto()


class WalkOrder(enum.Enum):
    """Order in which a walk visits properties or children."""

    STORED = enum.auto()
    REVERSED = enum.auto()


@attrs.frozen
class WalkStep:
    """One step: a node's full name (BEGIN_NODE), a property's name and value, or END_NODE."""

    tag: WalkTag
    name: str = ""
    value: bytes = b""


_T = TypeVar("_T")

PropertyOrder = WalkOrder | Callable[[list[Property]], list[Property]]
ChildOrder = WalkOrder | Callable[[list[Node]], list[Node]]


def _ordered(items: list[_T], order: WalkOrder | Callable[[list[_T]], list[_T]]) -> list[_T]:
    if order is WalkOrder.STORED:
        return items
    if order is WalkOrder.REVERSED:
        return items[::-1]
    if callable(order):
        return list(order(list(items)))
    raise TypeError(f"walk order must be a WalkOrder or a callable, not {order!r}")


def walk(
    node: Node,
    *,
    property_order: PropertyOrder = WalkOrder.STORED,
    child_order: ChildOrder = WalkOrder.STORED,
) -> Iterator[WalkStep]:
    """Yield the flat walk of ``node`` and everything below it.

    Raises FdtError (when reached) on a loop or nesting beyond MAX_DEPTH.
    """
    end = WalkStep(WalkTag.END_NODE)
    on_path: list[Node] = []
    stack: list[Iterator[Node]] = []
    current: Node | None = node
    while True:
        if current is not None:
            if any(current is n for n in on_path):
                raise FdtError(f"loop: node {current.name!r} contains itself")
            if len(on_path) > MAX_DEPTH:
                raise FdtError(f"nesting deeper than {MAX_DEPTH} levels")
            yield WalkStep(WalkTag.BEGIN_NODE, current.name)
            for prop in _ordered(list(current.properties), property_order):
                yield WalkStep(WalkTag.PROPERTY, prop.name, prop.value)
            on_path.append(current)
            stack.append(iter(_ordered(list(current.children), child_order)))
        current = next(stack[-1], None)
        if current is None:
            stack.pop()
            on_path.pop()
            yield end
            if not stack:
                return
