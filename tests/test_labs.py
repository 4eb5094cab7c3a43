"""The labs in docs/labs run as written and still print what they show.

The lab text is the source of this test. docs/labs/README.md states the convention:

* a ```` ```lab-file NAME ```` block is a file the reader saves as NAME (written into
  the lab's scratch directory before the commands after it run);
* a ```` ```lab-run ```` block holds shell command lines, run by bash in that directory
  exactly as written (the venv's ``spapr`` first on PATH, as after
  ``. .venv/bin/activate``); every block of one lab shares the directory, in order;
* the ```` ```lab-output ```` blocks after a run, up to the next run, are what it prints
  on stdout, concatenated in order (prose may sit between them to explain each
  part); ```` ```lab-stderr ```` blocks, when a lab shows them, are its stderr, which
  is otherwise not compared;
* ``{{any}}`` in an output stands for text that varies from run to run (wall-clock
  times): it matches any characters within one line.

Each lab also has its goal, questions and answers (``## Goal``, ``## Questions``,
``## Answers``, as many answers as questions).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

LABS = Path(__file__).resolve().parent.parent / "docs" / "labs"
LAB_FILES = sorted(p for p in LABS.glob("*.md") if p.name != "README.md")
PLACEHOLDER = "{{any}}"
FENCE = re.compile(r"^```([a-z-]+)(?: +(\S+))?\n(.*?)^```$", re.M | re.S)
KINDS = ("lab-file", "lab-run", "lab-output", "lab-stderr")


@attrs.frozen
class Block:
    """One fenced block of a lab: its kind, argument (a lab-file's name), text, line."""

    kind: str
    arg: str | None
    text: str
    line: int


@attrs.define
class Step:
    """A run and what the lab says it prints; or a file to write (``run`` is None)."""

    line: int
    run: str | None = None
    file: tuple[str, str] | None = None
    stdout: list[str] = attrs.field(factory=list)
    stderr: list[str] | None = None


def blocks(text: str) -> list[Block]:
    """The lab blocks of a Markdown text, in order (other fenced blocks are prose)."""
    found = []
    for match in FENCE.finditer(text):
        kind, arg, body = match.group(1), match.group(2), match.group(3)
        if kind in KINDS:
            found.append(Block(kind, arg, body, text.count("\n", 0, match.start()) + 1))
    return found


def steps(text: str) -> list[Step]:
    """Group the blocks: each run with the outputs that follow it; files on their own."""
    out: list[Step] = []
    run: Step | None = None
    for block in blocks(text):
        if block.kind == "lab-file":
            assert block.arg, f"line {block.line}: a lab-file block needs a file name"
            out.append(Step(block.line, file=(block.arg, block.text)))
        elif block.kind == "lab-run":
            run = Step(block.line, run=block.text)
            out.append(run)
        else:
            assert run is not None, f"line {block.line}: {block.kind} before any lab-run"
            if block.kind == "lab-output":
                run.stdout.append(block.text)
            else:
                run.stderr = [*(run.stderr or []), block.text]
    for step in out:
        if step.run is not None:
            assert step.stdout, f"line {step.line}: a lab-run without a lab-output"
    return out


def pattern(expected: str) -> re.Pattern[str]:
    """The expected text as a regex: literal, except {{any}} = any text within a line."""
    parts = [re.escape(part) for part in expected.split(PLACEHOLDER)]
    return re.compile("[^\n]*".join(parts), re.S)


def first_difference(expected: str, actual: str) -> str:
    """Where the output stops being what the lab shows (the line, both ways)."""
    want, got = expected.splitlines(), actual.splitlines()
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        if not pattern(w).fullmatch(g):
            return f"output line {i + 1}:\n  lab says: {w!r}\n  tool says: {g!r}"
    return f"the lab shows {len(want)} lines, the tool printed {len(got)}"


def environment() -> dict[str, str]:
    """The shell the labs assume: the venv active (its spapr first on PATH)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    # A learner's shell, not CI's: with CI set, hypothesis (in lab 6's pytest run)
    # would load its "ci" profile and search otherwise than the lab shows.
    env.pop("CI", None)
    return env


def test_the_labs_are_there() -> None:
    assert len(LAB_FILES) >= 6
    index = (LABS / "README.md").read_text()
    for lab in LAB_FILES:
        assert f"]({lab.name})" in index, f"docs/labs/README.md does not link {lab.name}"


@pytest.mark.parametrize("lab", LAB_FILES, ids=[p.stem for p in LAB_FILES])
def test_a_lab_has_a_goal_questions_and_answers(lab: Path) -> None:
    text = lab.read_text()
    for heading in ("## Goal", "## Questions", "## Answers"):
        assert re.search(rf"^{heading}$", text, re.M), f"{lab.name}: no '{heading}'"
    questions = text.split("## Questions", 1)[1].split("## Answers", 1)[0]
    answers = text.split("## Answers", 1)[1]
    asked = re.findall(r"^\d+\. ", questions, re.M)
    answered = re.findall(r"^\d+\. ", answers, re.M)
    assert asked and len(asked) == len(answered), f"{lab.name}: {asked} vs {answered}"
    assert text.index("## Answers") > text.rindex("```lab-"), "answers come at the end"


@pytest.mark.parametrize("lab", LAB_FILES, ids=[p.stem for p in LAB_FILES])
def test_a_lab_runs_as_written_and_prints_what_it_shows(lab: Path, tmp_path: Path) -> None:
    env = environment()
    lab_steps = steps(lab.read_text())
    assert any(s.run for s in lab_steps), f"{lab.name} runs nothing"
    for step in lab_steps:
        if step.file is not None:
            name, content = step.file
            (tmp_path / name).write_text(content)
            continue
        assert step.run is not None
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", step.run],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        where = f"{lab.name} line {step.line}: {step.run.strip()}"
        expected = "".join(step.stdout)
        if not pattern(expected).fullmatch(done.stdout):
            pytest.fail(f"{where}\n{first_difference(expected, done.stdout)}", pytrace=False)
        if step.stderr is not None:
            wanted = "".join(step.stderr)
            if not pattern(wanted).fullmatch(done.stderr):
                pytest.fail(f"{where} (stderr)\n{first_difference(wanted, done.stderr)}")


# -- the convention itself ------------------------------------------------------------------


def test_the_parser_pairs_runs_with_their_outputs() -> None:
    text = (
        "Intro.\n\n```lab-file a.hmp\n-M pseries\ninfo status\n```\n\n"
        "```lab-run\nspapr -scenario a.hmp\n```\n\nFirst:\n\n```lab-output\none\n```\n\n"
        "then:\n\n```lab-output\ntwo\n```\n\n```lab-stderr\nwarn\n```\n\n"
        "```sh\nnot a lab block\n```\n\n```lab-run\ntrue\n```\n\n```lab-output\n```\n"
    )
    got = steps(text)
    assert [s.file for s in got] == [("a.hmp", "-M pseries\ninfo status\n"), None, None]
    assert got[1].run == "spapr -scenario a.hmp\n"
    assert got[1].stdout == ["one\n", "two\n"] and got[1].stderr == ["warn\n"]
    assert got[2].run == "true\n" and got[2].stdout == [""] and got[2].stderr is None


def test_the_placeholder_matches_within_one_line_only() -> None:
    assert pattern("total time: {{any}} ms\n").fullmatch("total time: 56 ms\n")
    assert not pattern("a{{any}}b\n").fullmatch("a\nb\n")
    assert not pattern("x (1)\n").fullmatch("x 1\n")  # everything else is literal
