"""Typed device trees: the tree model, DTB in/out, dtc-exact DTS text, and the flat walk.

Trees are built with libfdt's insertion semantics (``Node.set_property`` puts a new
property first, ``Node.add_subnode`` puts a new child before the others), so a tree
built in QEMU's creation order has QEMU's stored order. ``walk`` is the step-by-step
view ibm,configure-connector hands to the guest.
"""

from fdt._dtb import from_dtb, to_dtb
from fdt._dts import to_dts
from fdt._error import FdtError
from fdt._property import Property, PropKind
from fdt._tree import MAX_DEPTH, DeviceTree, Node
from fdt._walk import WalkOrder, WalkStep, WalkTag, walk

__all__ = [
    "MAX_DEPTH",
    "DeviceTree",
    "FdtError",
    "Node",
    "PropKind",
    "Property",
    "WalkOrder",
    "WalkStep",
    "WalkTag",
    "from_dtb",
    "to_dtb",
    "to_dts",
    "walk",
]
