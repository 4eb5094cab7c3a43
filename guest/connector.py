"""The guest's side of ibm,configure-connector: reading the work area and building nodes.

Each call leaves its answer in the 4 KiB work area: for a node (status 2, or 1 for a
sibling) the name at ``name_offset``; for a property (status 3) the name, and
``prop_length`` bytes at ``prop_offset``. :class:`ConnectorWalk` turns the stream of
answers into device-tree nodes with Linux 6.1's pointer logic (dlpar.c): the first
node hangs under the parent given at the start, NEXT_CHILD makes the node the child
of the previous one, NEXT_SIBLING a sibling, PREV_PARENT climbs one level.
Malformed answers are :class:`ConnectorError` (Linux would read past its buffer or
dereference NULL, or rewrite the live parent's pointers; the model refuses instead).

PAPR's encoding (a node's first child NEXT_CHILD, the next ones NEXT_SIBLING,
PREV_PARENT when a level is done) round-trips any tree or forest. QEMU's encoding
gives every node as NEXT_CHILD and every node end as PREV_PARENT, so a second child
arrives as PREV_PARENT, NEXT_CHILD, and NEXT_CHILD *sets* the parent's child
pointer: Linux 6.1 (and drmgr) then keep only a node's last child. A CPU core's
fragment is a single node, so hotplug never meets this; the model keeps Linux's
behaviour rather than hiding it.
"""

from __future__ import annotations

import enum
import struct

import attrs

import fdt
from rtas.codes import CC_WORK_AREA_SIZE, ConfigureConnector

_WA_HEADER = struct.Struct(">IIIII")
#: Offsets of the work-area fields.
WA_DRC_INDEX = 0
WA_ZERO = 4
WA_NAME_OFFSET = 8
WA_PROP_LENGTH = 12
WA_PROP_OFFSET = 16


class ConnectorError(ValueError):
    """A configure-connector answer the guest cannot turn into a node or property."""


class CcAction(enum.Enum):
    """What the guest does with a configure-connector status (Linux 6.1's switch)."""

    DONE = enum.auto()
    NODE = enum.auto()
    RETRY = enum.auto()
    FAIL = enum.auto()


#: RTAS_BUSY and the extended-delay range, retried by rtas_busy_delay.
RTAS_BUSY = -2
EXTENDED_DELAY_MIN = 9900
EXTENDED_DELAY_MAX = 9905


def busy_delay_ms(status: int) -> int | None:
    """rtas_busy_delay: None if ``status`` is not busy, else the pause in ms (1..1000)."""
    if status == RTAS_BUSY:
        return 0
    if EXTENDED_DELAY_MIN <= status <= EXTENDED_DELAY_MAX:
        return min(10 ** (status - EXTENDED_DELAY_MIN), 1000)
    return None


def initial_work_area(drc_index: int) -> bytearray:
    """A zeroed work area with the DRC index in word 0 (what Linux kzallocs)."""
    area = bytearray(CC_WORK_AREA_SIZE)
    struct.pack_into(">II", area, 0, drc_index & 0xFFFF_FFFF, 0)
    return area


def _cstring(area: bytes, offset: int, what: str) -> str:
    if not 0 <= offset < len(area):
        raise ConnectorError(f"{what} offset {offset} outside the {len(area)}-byte work area")
    end = area.find(b"\0", offset)
    if end < 0:
        raise ConnectorError(f"{what} at offset {offset} is not NUL-terminated")
    return area[offset:end].decode("latin-1")


def read_node_name(area: bytes) -> str:
    """The node name of a NEXT_CHILD / NEXT_SIBLING answer."""
    _index, _zero, name_offset, _length, _value_offset = _WA_HEADER.unpack_from(area)
    return _cstring(area, name_offset, "node name")


def read_property(area: bytes) -> fdt.Property:
    """The property of a NEXT_PROPERTY answer (name and value bytes)."""
    _index, _zero, name_offset, length, value_offset = _WA_HEADER.unpack_from(area)
    name = _cstring(area, name_offset, "property name")
    if value_offset + length > len(area):
        raise ConnectorError(
            f"property {name!r}: {length} bytes at offset {value_offset} run past the work area"
        )
    try:
        return fdt.Property(name, bytes(area[value_offset : value_offset + length]))
    except (fdt.FdtError, ValueError) as exc:
        raise ConnectorError(f"bad property name {name!r}: {exc}") from exc


@attrs.define
class _CcNode:
    name: str
    parent: _CcNode | None
    properties: list[fdt.Property] = attrs.field(factory=list)
    child: _CcNode | None = None
    sibling: _CcNode | None = None


@attrs.define
class ConnectorWalk:
    """Builds the nodes of one configure-connector sequence (dlpar_configure_connector)."""

    drc_index: int
    #: Statuses seen, in call order.
    statuses: list[int] = attrs.field(factory=list)
    _first: _CcNode | None = attrs.field(default=None, init=False)
    _last: _CcNode | None = attrs.field(default=None, init=False)
    #: The parent the first node attaches to (a sentinel standing for /cpus).
    _root: _CcNode = attrs.field(factory=lambda: _CcNode("", None), init=False)

    @staticmethod
    def action(status: int) -> CcAction:
        """How Linux 6.1 treats a status: 0 done, 1..4 a step, busy retried, else failure."""
        if busy_delay_ms(status) is not None:
            return CcAction.RETRY
        if status == ConfigureConnector.SUCCESS:
            return CcAction.DONE
        if status in (
            ConfigureConnector.NEXT_SIBLING,
            ConfigureConnector.NEXT_CHILD,
            ConfigureConnector.NEXT_PROPERTY,
            ConfigureConnector.PREV_PARENT,
        ):
            return CcAction.NODE
        return CcAction.FAIL

    def step(self, status: int, area: bytes) -> None:
        """Apply one answer (status 1..4) read from ``area``; ConnectorError if malformed."""
        self.statuses.append(status)
        if status == ConfigureConnector.NEXT_CHILD:
            node = _CcNode(self._checked_name(read_node_name(area)), None)
            if self._first is None:
                node.parent = self._root
                self._first = node
            else:
                self._refuse_above_parent("NEXT_CHILD")
                node.parent = self._last
                if self._last is not None:
                    # Linux overwrites the child pointer (an earlier child is lost).
                    self._last.child = node
            self._last = node
        elif status == ConfigureConnector.NEXT_SIBLING:
            if self._last is None:
                raise ConnectorError("NEXT_SIBLING before any node")
            self._refuse_above_parent("NEXT_SIBLING")
            node = _CcNode(self._checked_name(read_node_name(area)), self._last.parent)
            self._last.sibling = node
            self._last = node
        elif status == ConfigureConnector.NEXT_PROPERTY:
            if self._last is None or self._last is self._root:
                raise ConnectorError("NEXT_PROPERTY before any node")
            self._last.properties.append(read_property(area))
        elif status == ConfigureConnector.PREV_PARENT:
            if self._last is None or self._last.parent is None:
                raise ConnectorError("PREV_PARENT above the parent node")
            self._last = self._last.parent
        else:
            raise ConnectorError(f"status {status} is not a configure-connector step")

    def _refuse_above_parent(self, what: str) -> None:
        """ConnectorError when PREV_PARENT has climbed out of the first node.

        The walk then stands on the parent it was given (Linux's live /cpus node),
        and Linux would hang the new node off that node's child or sibling
        pointer, unlinking its existing children or splicing a node beside it. The
        fragment would lose the node silently; the model refuses instead.
        """
        if self._last is self._root:
            raise ConnectorError(f"{what} above the configure-connector parent")

    @staticmethod
    def _checked_name(name: str) -> str:
        try:
            fdt.Node(name)
        except fdt.FdtError as exc:
            raise ConnectorError(f"bad node name {name!r}: {exc}") from exc
        return name

    def nodes(self) -> list[fdt.Node]:
        """The first node and its siblings, each with its subtree, as fdt nodes."""
        out = []
        node = self._first
        while node is not None:
            out.append(self._to_fdt(node, 0))
            node = node.sibling
        return out

    def _to_fdt(self, node: _CcNode, depth: int) -> fdt.Node:
        if depth > fdt.MAX_DEPTH:
            raise ConnectorError("configure-connector nodes nest too deep")
        out = fdt.Node(node.name)
        for prop in node.properties:
            out.append_property(prop)
        child = node.child
        children = []
        while child is not None:
            children.append(self._to_fdt(child, depth + 1))
            child = child.sibling
        for c in children:
            try:
                out.append_subnode(c)
            except fdt.FdtError as exc:
                raise ConnectorError(str(exc)) from exc
        return out
