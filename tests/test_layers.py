"""The layers: every project module in one layer, imports only downward, no import circles.

The module graph is read from the sources with ``ast``: ``import``/``from`` at any
depth (inside functions and ``TYPE_CHECKING`` blocks too), relative imports, and
``importlib.import_module``/``__import__`` calls with a literal name. The one
upward reference allowed is a ``__main__`` module whose whole job is to call the
top layer's entry point (``python -m spapr``). docs/architecture.md draws the same
table.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. A layer may import itself and the layers named in its row. The
# diagrams (sequence, state and report pages drawn from a trace) need only the core.
_CORE = ("fdt", "rtas", "spapr")
_BOARD = (*_CORE, "guest", "machine.config", "machine.sched")
LAYERS: dict[str, tuple[str, ...]] = {
    "fdt": (),
    "rtas": ("fdt",),
    "spapr": ("fdt", "rtas"),
    "guest": ("fdt", "rtas"),
    "machine.config": _CORE,
    "machine.sched": _CORE,
    "machine.diagrams": _CORE,
    "machine.board": _BOARD,
    "machine.migration": (*_BOARD, "machine.board"),
    "machine.monitor": (*_BOARD, "machine.board", "machine.migration", "machine.diagrams"),
    "machine.cli": (
        *_BOARD, "machine.board", "machine.migration", "machine.diagrams", "machine.monitor",
    ),
    "bench": (
        *_BOARD, "machine.board", "machine.migration", "machine.diagrams", "machine.monitor",
        "machine.cli",
    ),
    # The public conformance kit: the top layer, over everything (nothing imports it).
    "conformance": (
        *_BOARD, "machine.board", "machine.migration", "machine.diagrams", "machine.monitor",
        "machine.cli", "bench",
    ),
    # The robustness campaign drives the whole program from outside (nothing imports it).
    "robustness": (
        *_BOARD, "machine.board", "machine.migration", "machine.diagrams", "machine.monitor",
        "machine.cli",
    ),
}  # fmt: skip
# The packages that only hold layers (their __init__ is a docstring).
CONTAINERS = ("machine",)
# Third-party packages a layer may use besides the standard library.
THIRD_PARTY: dict[str, frozenset[str]] = {
    "fdt": frozenset({"attrs"}),
    "rtas": frozenset({"attrs"}),
    "guest": frozenset({"attrs"}),
}
# ``python -m spapr`` hands over to the top layer's entry point.
MAIN_ENTRY = {"spapr.__main__": "machine.cli.main"}


@attrs.frozen
class Import:
    """One import statement or call: who imports what, where."""

    source: str
    target: str
    line: int


def project_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of the given top-level packages, by dotted name."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _literal_import_call(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[Import]:
    """The project modules ``module`` imports, resolved to the deepest existing module."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] if base else []
        elif isinstance(node, ast.Call):
            literal = _literal_import_call(node)
            names = [literal] if literal else []
        for name in names:
            target = resolve(name)
            if target is not None and target != module:
                yield Import(module, target, getattr(node, "lineno", 0))


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, list[Import]]:
    modules = project_modules(root, packages)
    return {m: list(imports_of(m, p, modules)) for m, p in modules.items()}


def find_cycle(graph: Mapping[str, list[Import]]) -> list[str] | None:
    """One import circle as a module path that ends where it starts, or None."""
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        colour[module] = 1
        path.append(module)
        for imp in graph.get(module, []):
            if colour.get(imp.target) == 1:
                return [*path[path.index(imp.target) :], imp.target]
            if imp.target not in colour and (found := visit(imp.target)):
                return found
        path.pop()
        colour[module] = 2
        return None

    for module in sorted(graph):
        if module not in colour and (found := visit(module)):
            return found
    return None


def layer_of(module: str, layers: Mapping[str, tuple[str, ...]] = LAYERS) -> str | None:
    """The longest layer name that is ``module`` or one of its packages."""
    best = None
    for layer in layers:
        if (module == layer or module.startswith(layer + ".")) and (
            best is None or len(layer) > len(best)
        ):
            best = layer
    return best


def upward_imports(
    graph: Mapping[str, list[Import]], layers: Mapping[str, tuple[str, ...]] = LAYERS
) -> list[str]:
    """Every import that leaves its layer for one not below it, as readable lines."""
    found = []
    for module, imports in sorted(graph.items()):
        if module in MAIN_ENTRY or module in CONTAINERS:
            continue
        own = layer_of(module, layers)
        for imp in imports:
            target = layer_of(imp.target, layers)
            if own is None or target == own or target in layers[own]:
                continue
            found.append(f"{module}:{imp.line} ({own}) imports {imp.target} ({target})")
    return found


PACKAGES = ("fdt", "rtas", "spapr", "guest", "machine", "bench", "conformance", "robustness")


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph(ROOT, PACKAGES)


def test_every_module_belongs_to_a_layer(graph: dict[str, list[Import]]) -> None:
    homeless = [m for m in graph if layer_of(m) is None and m not in CONTAINERS]
    assert not homeless, f"modules in no layer: {homeless}"


def test_no_module_is_in_an_import_circle(graph: dict[str, list[Import]]) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_every_import_points_down(graph: dict[str, list[Import]]) -> None:
    assert upward_imports(graph) == []


def test_layer_containers_hold_no_code(graph: dict[str, list[Import]]) -> None:
    for container in CONTAINERS:
        assert graph[container] == [], f"{container}/__init__.py imports {graph[container]}"


def test_main_modules_only_call_the_top_entry_point(graph: dict[str, list[Import]]) -> None:
    for module, entry in MAIN_ENTRY.items():
        assert [imp.target for imp in graph[module]] == [entry]


def test_lower_layers_use_only_the_standard_library_and_their_allowances() -> None:
    for layer, allowed in THIRD_PARTY.items():
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                tops: list[str] = []
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                for top in tops:
                    ok = top in sys.stdlib_module_names or top in allowed or top in PACKAGES
                    assert ok, f"{path.relative_to(ROOT)} imports {top}"


# The checker itself, on small trees built for it.


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, list[Import]]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path, ("a", "b"))


def test_checker_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "a/__init__.py": "",
            "a/x.py": "from a import y\n",
            "a/y.py": "def f():\n    from a.z import g\n",
            "a/z.py": "import a.x\n",
        },
    )
    assert find_cycle(graph) == ["a.x", "a.y", "a.z", "a.x"]


def test_checker_follows_importlib_and_relative_imports(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "a/__init__.py": "",
            "a/p/__init__.py": "from . import q\n",
            "a/p/q.py": "from ..r import thing\n",
            "a/r.py": "import importlib\nM = importlib.import_module('a.p')\n",
        },
    )
    assert {imp.target for imp in graph["a.p"]} == {"a.p.q"}
    assert {imp.target for imp in graph["a.p.q"]} == {"a.r"}
    assert find_cycle(graph) == ["a.p", "a.p.q", "a.r", "a.p"]


def test_checker_names_an_upward_import(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {"a/__init__.py": "", "a/low.py": "import b.high\n", "b/__init__.py": "", "b/high.py": ""},
    )
    layers = {"a": (), "b": ("a",)}
    assert upward_imports(graph, layers) == ["a.low:1 (a) imports b.high (b)"]
    assert find_cycle(graph) is None


def test_project_code_uses_only_absolute_imports(graph: dict[str, list[Import]]) -> None:
    """A relative import hides which layer a module reaches into; the code spells it out."""
    modules = project_modules(ROOT, PACKAGES)
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        relative = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, f"{module} uses relative imports at lines {relative}"


@pytest.mark.parametrize("package", ["fdt", "rtas", "guest", "machine.sched", "conformance"])
def test_a_layers_public_api_exists(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it lacks: {missing}"
