"""Benchmarks: ``python -m bench NAME`` runs one, ``python -m bench`` runs them all.

A benchmark is a module ``bench/<name>.py`` (no leading underscore) defining
``run(args: list[str]) -> dict[str, Any]``: it prints a readable table and
returns its figures, which the runner prints as one JSON object on the last
line (``"bench": <name>`` first). Adding ``bench/foo.py`` registers ``foo``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from typing import Any

BenchmarkRun = Callable[[list[str]], dict[str, Any]]


def available() -> list[str]:
    """Names of the benchmarks in this package, sorted."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )


def load(name: str) -> BenchmarkRun:
    """The ``run`` function of benchmark ``name`` (KeyError if there is none)."""
    if name not in available():
        raise KeyError(name)
    module = importlib.import_module(f"{__name__}.{name}")
    run: BenchmarkRun = module.run
    return run


def run_one(name: str, args: list[str]) -> dict[str, Any]:
    """Run benchmark ``name`` and print its figures as the last line (one JSON object)."""
    figures = load(name)(args)
    out: dict[str, Any] = {"bench": name}
    out.update({k: v for k, v in figures.items() if k != "bench"})
    print(json.dumps(out, sort_keys=False), flush=True)
    return out
