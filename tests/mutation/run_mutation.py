"""Run mutmut over the protocol core and print the mutation score per package.

Why a script: mutmut writes its mutated copy (``mutants/``), its results and the
tests' caches into the directory it runs in, and other engineers edit this work
tree while a run takes its half hour. So the script copies the work tree (every
file git tracks or would track) to a scratch directory outside the repository,
writes ``tests/mutation/mutmut.cfg`` there as ``setup.cfg`` (test-file globs
expanded, ``source_paths`` narrowed to the packages asked for), runs ``mutmut run``
in that copy and reads ``mutmut results`` back. Nothing lands in the repository.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python tests/mutation/run_mutation.py                 # fdt and rtas
    .venv/bin/python tests/mutation/run_mutation.py --package fdt   # one package
    .venv/bin/python tests/mutation/run_mutation.py --package spapr --workdir /tmp/mut-spapr
    .venv/bin/python tests/mutation/run_mutation.py --survivors     # + their diffs
    .venv/bin/python tests/mutation/run_mutation.py 'fdt._dts.*'    # only these mutants

Each package has a ``[package:NAME]`` section in ``mutmut.cfg``: the modules mutated
(``modules``, mutmut's ``only_mutate``), optionally the functions of them measured
(``mutants``, name globs) and the test files it adds to the selection (``tests``).
Mutant names (or globs, as ``mutmut run`` takes them) on the command line restrict
the run further; the other mutants are then "not checked" and left out of the
score, which then covers only the mutants that ran. Two runs at once need two
``--workdir``s.

``--baseline DIR`` reruns only the mutants that survived the run in ``DIR`` (an
earlier scratch directory), in a fresh copy, and reports the earlier run's
results with those mutants' new ones (repeatable: a mutant detected in any of
the runs counts as detected, so a second rerun can build on the first): after
adding tests, the score without running again the mutants already detected.
(Sound while the measured code is unchanged: mutant names then denote the same
mutants, and a mutant the old tests detected is still detected when tests are
only added.)

The score of a package is (killed + timed out) / mutants that ran: a mutant that
no selected test reaches ("no tests") counts as a survivor, not as excluded.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("mutmut.cfg")
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "spapr-mutation"
#: Statuses that count as the tests noticing the mutant.
DETECTED = frozenset({"killed", "timeout"})
#: Statuses of mutants that never ran (left out of the score's denominator).
NOT_RUN = frozenset({"skipped", "not checked", "check was interrupted by user"})
#: Directories never copied into the scratch tree (caches and the venv).
SKIP_PARTS = frozenset({".git", ".venv", "mutants", "__pycache__", ".hypothesis"})


def tree_files(repo: Path) -> list[Path]:
    """Files of the work tree as git sees them (tracked or not ignored), relative to ``repo``."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    paths = [Path(p) for p in out.decode().split("\0") if p]
    return [p for p in paths if (repo / p).is_file() and not SKIP_PARTS.intersection(p.parts)]


def copy_tree(repo: Path, workdir: Path) -> None:
    """Replace ``workdir`` by a copy of the work tree's files."""
    if workdir.exists():
        shutil.rmtree(workdir)
    for rel in tree_files(repo):
        target = workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target)


def read_config() -> configparser.ConfigParser:
    """``mutmut.cfg`` (UTF-8: mutmut's method names contain ``ǁ``)."""
    parser = configparser.ConfigParser()
    with open(CONFIG, encoding="utf-8") as f:
        parser.read_file(f)
    return parser


def package_names(parser: configparser.ConfigParser) -> list[str]:
    """The packages ``mutmut.cfg`` has a ``[package:NAME]`` section for."""
    return [s.split(":", 1)[1] for s in parser.sections() if s.startswith("package:")]


def package_scope(parser: configparser.ConfigParser, package: str) -> list[str]:
    """Mutant-name globs of what a package measures (all its mutants by default)."""
    return parser[f"package:{package}"].get("mutants", f"{package}.*").split()


def write_setup_cfg(workdir: Path, packages: list[str]) -> list[str]:
    """Write the scratch copy's setup.cfg; return the expanded test selection."""
    parser = read_config()
    section = parser["mutmut"]
    patterns = section["pytest_add_cli_args_test_selection"].split()
    only_mutate: list[str] = []
    for package in packages:
        extra = parser[f"package:{package}"]
        patterns += extra.get("tests", "").split()
        only_mutate += extra.get("modules", f"{package}/*").split()
    tests: list[str] = []
    for pattern in patterns:
        matches = sorted(str(p.relative_to(workdir)) for p in workdir.glob(pattern))
        if not matches:
            raise SystemExit(f"mutation: test pattern {pattern!r} matches no file")
        tests += [m for m in matches if m not in tests]
    section["pytest_add_cli_args_test_selection"] = "\n" + "\n".join(tests)
    section["source_paths"] = "\n" + "\n".join(f"{p}/" for p in packages)
    section["only_mutate"] = "\n" + "\n".join(only_mutate)
    section["also_copy"] = "\n" + "\n".join(
        p for p in section["also_copy"].split() if p.rstrip("/") not in packages
    )
    out = configparser.ConfigParser()
    out["mutmut"] = section
    with open(workdir / "setup.cfg", "w", encoding="utf-8") as f:
        out.write(f)
    return tests


def results(mutmut: Path, workdir: Path) -> dict[str, str]:
    """Every mutant's name and status, as ``mutmut results --all true`` prints them."""
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[name] = status
    return statuses


def score_by_package(statuses: dict[str, str], depth: int = 1) -> dict[str, dict[str, object]]:
    """Per package (``depth`` 1) or module (2): counts by status and the score in percent."""
    by_package: dict[str, Counter[str]] = {}
    for name, status in statuses.items():
        by_package.setdefault(".".join(name.split(".")[:depth]), Counter())[status] += 1
    report: dict[str, dict[str, object]] = {}
    for package, counts in sorted(by_package.items()):
        ran = sum(n for s, n in counts.items() if s not in NOT_RUN)
        detected = sum(counts[s] for s in DETECTED)
        report[package] = {
            "mutants": sum(counts.values()),
            "ran": ran,
            "detected": detected,
            "score": round(100.0 * detected / ran, 1) if ran else None,
            "by_status": dict(counts),
        }
    return report


def within_scope(given: list[str], scope: list[str]) -> list[str]:
    """The names or globs given, narrowed to the package's measured functions: a scope glob
    inside a given one (``guest.kernel.*`` keeps only the RTAS-path functions of
    kernel.py, not all of its mutants) and a given name or glob inside the scope."""
    kept = [g for g in scope if any(fnmatch.fnmatchcase(g, u) for u in given)]
    kept += [u for u in given if any(fnmatch.fnmatchcase(u, g) for g in scope) and u not in kept]
    return kept


def main(argv: list[str] | None = None) -> int:
    """Copy, run, report; exit 0 whatever the score (the numbers are the output)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--package",
        action="append",
        choices=package_names(read_config()),
        help="package to mutate (repeatable; default: fdt and rtas)",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        help="rerun only the survivors of the run(s) in this scratch directory (repeatable)",
    )
    parser.add_argument(
        "--max-children", type=int, default=min(2, os.cpu_count() or 1), help="parallel mutants"
    )
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--report", action="store_true", help="only report the results already in --workdir"
    )
    parser.add_argument("mutants", nargs="*", help="mutant names or globs to run (default: all)")
    args = parser.parse_args(argv)
    packages = args.package or ["fdt", "rtas"]
    workdir: Path = args.workdir.resolve()
    if workdir == REPO or REPO in workdir.parents:
        raise SystemExit("mutation: the scratch directory must lie outside the repository")
    mutmut = Path(sys.executable).with_name("mutmut")
    if not mutmut.exists():
        raise SystemExit(f"mutation: {mutmut} not found; install the pinned mutmut into the venv")

    config = read_config()
    scope = [glob for p in packages for glob in package_scope(config, p)]
    started = time.time()
    returncode = 0
    baseline: dict[str, str] = {}
    for earlier in args.baseline or []:
        for name, status in results(mutmut, earlier.resolve()).items():
            if not any(fnmatch.fnmatchcase(name, glob) for glob in scope):
                continue
            replaces = status in DETECTED or name not in baseline or status not in NOT_RUN
            if replaces and baseline.get(name) not in DETECTED:
                baseline[name] = status
    if not args.report:
        copy_tree(REPO, workdir)
        tests = write_setup_cfg(workdir, packages)
        # A package narrowed to some functions runs only those; otherwise no names,
        # so that mutmut keeps the results it already has.
        narrowed = any("mutants" in config[f"package:{p}"] for p in packages)
        names = within_scope(args.mutants, scope) if args.mutants else (scope if narrowed else [])
        if baseline:  # its survivors (those matching the names given, if any)
            names = sorted(
                n
                for n, s in baseline.items()
                if s not in DETECTED | NOT_RUN
                and (not args.mutants or any(fnmatch.fnmatchcase(n, g) for g in args.mutants))
            )
        print(f"mutation: {', '.join(packages)} in {workdir} with {len(tests)} test files")
        sys.stdout.flush()
        returncode = subprocess.run(
            [str(mutmut), "run", "--max-children", str(args.max_children), *names],
            cwd=workdir,
            check=False,
        ).returncode
    minutes = (time.time() - started) / 60
    statuses = {
        name: status
        for name, status in results(mutmut, workdir).items()
        if any(fnmatch.fnmatchcase(name, glob) for glob in scope)
    }
    if baseline:  # the earlier results, with the rerun survivors' new ones
        # (a survivor the new code no longer has -- its function was deleted -- is dropped)
        # (a survivor not rerun, e.g. an interrupted run, keeps its earlier status)
        rerun = statuses
        statuses = {
            n: rerun[n] if s not in DETECTED | NOT_RUN and rerun[n] not in NOT_RUN else s
            for n, s in baseline.items()
            if s in DETECTED | NOT_RUN or n in rerun
        }
    report = score_by_package(statuses)
    modules = score_by_package(statuses, depth=2)
    (workdir / "mutation-score.json").write_text(
        json.dumps({"minutes": round(minutes, 1), "packages": report, "modules": modules}, indent=2)
        + "\n"
    )
    print(f"\nmutmut ran {minutes:.1f} min")
    for table in (report, modules):
        for package, row in table.items():
            print(
                f"{package}: {row['detected']}/{row['ran']} detected ({row['score']} %), "
                f"{row['by_status']}"
            )
    survivors = sorted(n for n, s in statuses.items() if s not in DETECTED | NOT_RUN)
    print(f"\nsurvivors ({len(survivors)}):")
    for name in survivors:
        print(f"  {name}: {statuses[name]}")
        if args.survivors:
            diff = subprocess.run(
                [str(mutmut), "show", name], cwd=workdir, capture_output=True, text=True
            ).stdout
            print("    " + diff.replace("\n", "\n    "))
    return returncode


if __name__ == "__main__":
    sys.exit(main())
