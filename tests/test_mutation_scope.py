"""The mutation script narrows names given on its command line to the measured functions.

docs/testing.md: guest/kernel.py is measured only on its RTAS path; a run asked for
``'guest.kernel.*'`` must mutate those functions, not all of kernel.py (which took an
hour for mutants the score then leaves out).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "mutation"))

from run_mutation import package_scope, read_config, within_scope


def test_a_module_glob_keeps_only_the_measured_functions() -> None:
    scope = package_scope(read_config(), "guest")
    kept = within_scope(["guest.kernel.*"], scope)
    assert kept and all(g.startswith("guest.kernel.") for g in kept)
    assert set(kept) == {g for g in scope if g.startswith("guest.kernel.")}
    assert "guest.kernel.*" not in kept


def test_single_names_are_kept_only_inside_the_scope() -> None:
    scope = package_scope(read_config(), "guest")
    inside = "guest.kernel.xǁKernelǁrtas_call__mutmut_3"
    outside = "guest.kernel.xǁKernelǁpark__mutmut_9"
    assert within_scope([inside, outside], scope) == [inside]
    assert within_scope(["guest.ras.*"], scope) == ["guest.ras.*"]
