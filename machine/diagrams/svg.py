"""Small helpers for writing SVG by hand with :mod:`xml.etree.ElementTree`.

The pictures are standalone files that need nothing to view: plain SVG 1.1 elements,
a ``<style>`` sheet inside, no scripts, no external references. Text widths are
estimated (no font metrics here), generously, so labels do not run off the canvas.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

SVG_NS = "http://www.w3.org/2000/svg"
#: Estimated advance of one character of the 12 px labels.
CHAR_WIDTH = 7.0
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"


def text_width(text: str, char_width: float = CHAR_WIDTH) -> float:
    """A generous estimate of a label's width in pixels."""
    return len(text) * char_width


def num(value: float) -> str:
    """A coordinate as SVG text: integers without a fraction, else one decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def sub(
    parent: ET.Element,
    tag: str,
    attrib: Mapping[str, object] | None = None,
    text: str | None = None,
) -> ET.Element:
    """Append a child element; attribute values are turned into text (floats tidily)."""
    element = ET.SubElement(
        parent,
        tag,
        {k: num(v) if isinstance(v, float) else str(v) for k, v in (attrib or {}).items()},
    )
    if text is not None:
        element.text = text
    return element


def svg_root(width: float, height: float, css_class: str, title: str) -> ET.Element:
    """An ``<svg>`` element with its size, viewBox, class and ``<title>``."""
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "version": "1.1",
            "width": num(width),
            "height": num(height),
            "viewBox": f"0 0 {num(width)} {num(height)}",
            "class": css_class,
            "font-family": FONT,
        },
    )
    sub(root, "title", text=title)
    return root


def arrow_markers(defs: ET.Element, markers: Mapping[str, str]) -> None:
    """One filled arrowhead ``<marker>`` per id, in the given colours."""
    for marker_id, colour in markers.items():
        marker = sub(
            defs,
            "marker",
            {
                "id": marker_id,
                "viewBox": "0 0 10 10",
                "refX": 9,
                "refY": 5,
                "markerWidth": 8,
                "markerHeight": 8,
                "markerUnits": "userSpaceOnUse",
                "orient": "auto",
            },
        )
        sub(marker, "path", {"d": "M0,0 L10,5 L0,10 z", "fill": colour})


def to_text(root: ET.Element, *, declaration: bool = True) -> str:
    """The SVG as text (with the XML declaration for a standalone file)."""
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n") if declaration else body
