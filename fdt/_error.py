"""The one error type of the fdt package."""

from __future__ import annotations


class FdtError(Exception):
    """A malformed blob or an invalid tree (bad header, bad nesting, bad name, a loop...)."""
