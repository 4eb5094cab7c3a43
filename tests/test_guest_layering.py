"""The guest sees the machine only as a real guest does: it imports fdt, rtas, stdlib, attrs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import guest

ALLOWED_TOP_LEVEL = {"guest", "fdt", "rtas", "attrs", "__future__"}
FORBIDDEN = {"spapr", "machine"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a source file imports (absolute imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def guest_sources() -> list[Path]:
    return sorted(Path(guest.__file__).parent.glob("*.py"))


def test_guest_sources_exist() -> None:
    names = {p.name for p in guest_sources()}
    assert {"__init__.py", "kernel.py", "dlpar.py"} <= names


def test_guest_never_imports_spapr_or_machine() -> None:
    for source in guest_sources():
        modules = imported_modules(source)
        assert not modules & FORBIDDEN, f"{source.name} imports {sorted(modules & FORBIDDEN)}"


def test_guest_imports_only_fdt_rtas_stdlib_and_attrs() -> None:
    for source in guest_sources():
        third_party = {m for m in imported_modules(source) if m not in sys.stdlib_module_names}
        assert third_party <= ALLOWED_TOP_LEVEL, f"{source.name} imports {sorted(third_party)}"


def test_relative_imports_are_not_used_to_sneak_around() -> None:
    for source in guest_sources():
        tree = ast.parse(source.read_text())
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, f"{source.name} uses a relative import"


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from spapr.drc import Drc\nimport machine.pseries\n")
    assert imported_modules(bad) & FORBIDDEN == {"spapr", "machine"}


def test_public_api_is_exported() -> None:
    for name in guest.__all__:
        assert hasattr(guest, name), name
