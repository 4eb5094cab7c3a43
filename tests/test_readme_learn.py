"""README's "Learn" section: its picture is today's drawing, its links and names are real.

The picture (docs/handshake.svg) is redrawn here the way README says to redraw it
(the seed scenario with ``-trace-json``, then ``spapr trace-draw --op 1``) and must
be byte for byte the committed file, so it cannot go stale. The section must sit
after Quick start, whose two commands (install and seed, the test command after
``<!-- test-command -->``) stay exactly as they were, and must name the views and
pictures a learner uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from machine.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PICTURE = ROOT / "docs" / "handshake.svg"
QUICK_START = "Quick start (a fresh machine with Python 3.11)"
INSTALL_AND_SEED = (
    ".venv/bin/pip install -q -e '.[test]' && .venv/bin/spapr -scenario seed && "
    ".venv/bin/spapr -scenario seed-smt4 && .venv/bin/spapr -scenario seed-numa"
)


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section (up to the next ``## ``)."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_the_committed_picture_is_what_the_tool_draws_today(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "seed.jsonl"
    drawn = tmp_path / "handshake.svg"
    assert main(["-scenario", "seed", "-trace-json", str(trace)]) == 0
    assert main(["trace-draw", str(trace), "--op", "1", "-o", str(drawn)]) == 0
    capsys.readouterr()
    assert drawn.read_bytes() == PICTURE.read_bytes(), (
        "docs/handshake.svg is stale: redraw it as README's Learn section says"
    )


def test_the_learn_section_follows_quick_start_and_keeps_its_commands() -> None:
    text = README.read_text()
    titles = re.findall(r"^## (.+)$", text, re.M)
    assert titles.index("Learn") == titles.index(QUICK_START) + 1
    quick = section(text, QUICK_START)
    assert f"```sh\npython3.11 -m venv .venv && {INSTALL_AND_SEED}\n```" in quick
    assert "<!-- test-command -->\n```sh\n.venv/bin/python -m pytest\n```" in quick


def test_the_learn_section_shows_the_picture_and_names_the_tools() -> None:
    learn = section(README.read_text(), "Learn")
    assert "](docs/handshake.svg)" in learn
    for target in re.findall(r"\]\(([^)#]+)\)", learn):
        assert (ROOT / target).exists(), target
    assert "docs/labs/README.md" in learn
    for name in (
        "trace diagram",
        "trace show",
        "guest lscpu",
        "dmesg",
        "info drc",
        "-trace-html",
        "-guest manual",
        "Virtual time",
    ):
        assert name in learn, name
