"""rtas sits below spapr: it imports only itself, fdt and the standard library / attrs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import rtas

ALLOWED_TOP_LEVEL = {"rtas", "fdt", "attrs", "__future__"}
FORBIDDEN = {"spapr", "machine", "guest"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_rtas_imports_nothing_above_it() -> None:
    package = Path(rtas.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert sources
    for source in sources:
        modules = imported_modules(source)
        assert not modules & FORBIDDEN, f"{source.name} imports {modules & FORBIDDEN}"

        third_party = {m for m in modules if m not in sys.stdlib_module_names}
        assert third_party <= ALLOWED_TOP_LEVEL, f"{source.name} imports {third_party}"


def test_public_api_is_exported() -> None:
    for name in rtas.__all__:
        assert hasattr(rtas, name), name
