"""Test-wide settings.

Hypothesis: no per-example deadline (CI machines are slower and busier than a
laptop; tests here never assert on time). Under CI (``CI`` set in the environment,
as .ci/run does) examples are derandomized, so a red run is reproducible from its
log; locally they stay random and keep finding new cases.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
