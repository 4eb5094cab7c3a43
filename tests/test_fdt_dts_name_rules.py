"""DTS text around dtc's "redundant name property" rule, checked against dtc itself.

``dtc -I dtb -O dts`` drops a node's ``name`` property when it equals the node's
name without the unit address, but only when its checks get that far: a node
name with a character dtc does not allow, two ``@``, a property name dtc does not
allow, or any ``name`` property that is not one string anywhere in the tree stops
it, and then every ``name`` property is printed. Each tree below sits on one side
of one of those conditions; the expected text is what dtc 1.6.1 prints for the
same blob (forced with ``-f`` past its error-level checks, as fdt/_dts.py's
docstring says the renderer does).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fdt import Node, Property, to_dtb, to_dts

DTC = shutil.which("dtc")
pytestmark = [pytest.mark.dtc, pytest.mark.skipif(DTC is None, reason="dtc not installed")]


def dtc_text(blob: bytes) -> str:
    """What ``dtc -q -f -I dtb -O dts`` prints for ``blob``."""
    assert DTC is not None
    done = subprocess.run(
        [DTC, "-q", "-f", "-I", "dtb", "-O", "dts"], input=blob, capture_output=True, check=True
    )
    return done.stdout.decode("ascii")


def named(node_name: str, name_value: bytes, *children: Node) -> Node:
    """A node carrying a ``name`` property with the raw value given."""
    return Node(node_name, [Property("name", name_value)], list(children))


def redundant(node_name: str, *children: Node) -> Node:
    """A node whose ``name`` property repeats its base name (what dtc drops)."""
    return named(node_name, node_name.split("@")[0].encode() + b"\0", *children)


CASES = {
    # Unit addresses and nesting: both names are redundant and dropped.
    "unit-address-and-child": Node("", children=[redundant("cpu@0", redundant("l2-cache@1"))]),
    # A name that differs from the base name is kept.
    "differing-name": Node("", children=[named("cpu@0", b"cpu@0\0"), redundant("memory@0")]),
    # Two '@' in a node name stop the checks: nothing is dropped.
    "two-at-signs": Node("", children=[Node("a@1@2"), redundant("cpu@0")]),
    # Three '@' as well.
    "three-at-signs": Node("", children=[Node("a@1@2@3"), redundant("cpu@0")]),
    # A node-name character dtc refuses ('!') stops them too.
    "bad-node-char": Node("", children=[Node("x!y"), redundant("cpu@0")]),
    "bad-node-char-with-unit": Node("", children=[Node("x!y@1"), redundant("cpu@0")]),
    # So does a property-name character dtc refuses.
    "bad-property-char": Node(
        "", [Property("odd!prop", b"\0\0\0\1")], children=[redundant("cpu@0")]
    ),
    # A name property that is not one string (cells, empty, two strings) stops them.
    "name-as-cells": Node("", children=[named("a", b"\0\0\0\1"), redundant("cpu@0")]),
    "name-empty": Node("", children=[named("a", b""), redundant("cpu@0")]),
    "name-two-strings": Node("", children=[named("a", b"a\0b\0"), redundant("cpu@0")]),
    # ... but only when it is called "name": a lookalike property changes nothing.
    "name-lookalike": Node(
        "", children=[Node("a", [Property("NAME", b"\0\0\0\1")]), redundant("cpu@0")]
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_name_properties_render_as_dtc_renders_them(case: str) -> None:
    blob = to_dtb(CASES[case])
    assert to_dts(blob) == dtc_text(blob)


def test_dropping_is_visible_in_the_text() -> None:
    """The first case really exercises the drop (guarding the comparison above)."""
    text = to_dts(to_dtb(CASES["unit-address-and-child"]))
    assert "name =" not in text
    text = to_dts(to_dtb(CASES["two-at-signs"]))
    assert 'name = "cpu";' in text
