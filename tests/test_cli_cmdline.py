"""Every refused (and warned-about) command line of QEMU 7.2's oracle, end to end.

Each case runs ``machine.cli.main`` with the oracle's argv and compares stderr and
the exit status with what qemu-system-ppc64 7.2 printed (tests/data/errors/cmdline.json).
``dumpdtb`` targets are redirected into a temporary directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from machine.cli.main import main

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "errors" / "cmdline.json").read_text())


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_cmdline_case_matches_qemu(case: dict, tmp_path: Path) -> None:
    rc, _out, err = run_cli(case["argv"][1:], tmp_path)
    assert err == case["stderr"]
    assert rc == case["exit_code"]
