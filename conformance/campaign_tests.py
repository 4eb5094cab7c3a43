"""The differential campaign as pytest items, for pytest-xdist to spread over the cores.

``python -m conformance qemu`` runs this file. The campaign's examples are cut
into chunks, one test item each, and every chunk draws its examples from its own
seed (:func:`conformance.campaign.chunk_seed`), so whichever worker runs it, the
chunk is the same and a finding replays from the seed printed with it. Each item
reports what it ran in its ``user_properties`` (read by the progress display)
and, on a finding, fails with the shrunk QMP transcript.
"""

from __future__ import annotations

import json

import pytest

from conformance.campaign import Tally, chunk_seed, chunks, run_examples

#: Examples per test item: small enough for a steady progress display and balance.
CHUNK = 10


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per chunk of the campaign's examples."""
    if "chunk" in metafunc.fixturenames:
        total = int(metafunc.config.getoption("--conformance-examples"))
        parts = list(chunks(total, CHUNK))
        metafunc.parametrize(
            ("chunk", "count"), parts, ids=[f"chunk{number}" for number, _ in parts]
        )


def test_campaign(chunk: int, count: int, request: pytest.FixtureRequest) -> None:
    """Run ``count`` examples from this chunk's seed against QEMU and the emulator."""
    base = int(request.config.getoption("--conformance-seed"))
    seed = chunk_seed(base, chunk)
    tally = Tally()
    try:
        run_examples(count, seed, tally=tally)
    finally:
        summary = {
            "chunk": chunk,
            "seed": seed,
            "examples": tally.examples,
            "steps": tally.steps,
            "known_crashes": dict(tally.known_crashes),
            "unresponsive": tally.unresponsive,
            "seconds": round(tally.seconds, 3),
        }
        request.node.user_properties.append(("campaign", json.dumps(summary)))
