"""The help texts: ``-h``, ``-version``, ``-cpu help``, ``-device help``, ``-device TYPE,help``.

The emulator lists only what it models, so its texts are compared line for line
with QEMU's for what both have: every QEMU-section line of ``-h`` is one of
QEMU's lines and the entries keep QEMU's order; ``-cpu help`` is QEMU's list
filtered to the models with an sPAPR core; ``-device help`` is QEMU's "CPU
devices" category; ``-device TYPE,help`` is QEMU's text. Against the recordings in
tests/data/cli (QEMU 7.2.22) and, where ``qemu-system-ppc64`` is installed, against
the live binary. The project's options have a section of their own in ``-h``, and
every option the parser accepts is documented there or in QEMU's sections.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
from pathlib import Path

import pytest
from oracle_tools import QEMU

from machine.cli.main import main
from machine.cli.runner import split_runner_options
from machine.config import cmdline
from machine.config.cli_help import (
    PROJECT_OPTIONS,
    PROJECT_SECTION,
    QEMU_SECTIONS,
    documented_options,
)
from machine.config.cmdline import parse_argv
from spapr.cpu_models import CPU_MODELS

DATA = Path(__file__).parent / "data" / "cli"
VERSION_LINE = re.compile(r"QEMU emulator version 7\.2\.22 \((.+)\)")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def qemu(*argv: str) -> subprocess.CompletedProcess[str]:
    assert QEMU is not None
    return subprocess.run([QEMU, *argv], capture_output=True, text=True, timeout=60, check=False)


def qemu_section_lines(text: str) -> list[str]:
    """The lines of our ``-h`` before the project's section, headers excluded."""
    body = text.split(PROJECT_SECTION)[0].splitlines()
    return body[3:]  # version, copyright, usage


# -- -h ---------------------------------------------------------------------------


def check_help_against(ours: str, qemu_text: str) -> None:
    """Every QEMU-section line is QEMU's; entries and sections keep QEMU's order."""
    qemu_lines = qemu_text.splitlines()
    positions = []
    for line in qemu_section_lines(ours):
        if not line:
            continue
        assert line in qemu_lines, f"not a line of QEMU's -h: {line!r}"
        if not line.startswith(" "):  # an option's first line, or a section title
            positions.append(qemu_lines.index(line))
    assert positions == sorted(positions), "entries are not in QEMU's order"


def test_h_prints_qemus_lines_for_the_modelled_options() -> None:
    rc, out, err = run(["-h"])
    assert (rc, err) == (0, "")
    check_help_against(out, recorded("qemu72_h.txt"))
    first = out.splitlines()[:3]
    assert VERSION_LINE.fullmatch(first[0])
    assert first[1] == recorded("qemu72_version.txt").splitlines()[1]
    assert first[2] == "usage: qemu-system-ppc64 [options]"
    assert [run(["-help"])[1], run(["--help"])[1]] == [out, out]


def test_h_lists_the_projects_options_in_their_own_section() -> None:
    out = run(["-h"])[1]
    head, _, tail = out.partition(PROJECT_SECTION + "\n")
    assert tail, "no project section"
    assert "not QEMU's" in PROJECT_SECTION
    for name in ("-scenario", "-guest", "-trace-json", "-host-cpu", "-legacy-core-names"):
        assert re.search(rf"^{re.escape(name)}\b", tail, re.M), name
        assert not re.search(rf"^{re.escape(name)}\b", head, re.M), name
    assert "manual" in tail  # -guest manual is explained where the option is
    assert all(line not in recorded("qemu72_h.txt").splitlines() for line in tail.splitlines())


def _accepted_options() -> set[str]:
    """Every option name the command line takes (the parser's and the runner's)."""
    names = set(cmdline._ARG_OPTIONS) | set(cmdline.FLAG_OPTIONS) | set(cmdline._HELP_OPTIONS)
    names |= {"scenario", "allow-remote-qmp"}
    return names


def test_every_accepted_option_is_documented_and_every_documented_one_accepted() -> None:
    documented = documented_options()
    assert _accepted_options() - documented == set()
    assert documented - _accepted_options() == set()
    for entry in PROJECT_OPTIONS:
        for name in entry.names:
            assert name in _accepted_options()


def test_runner_options_do_not_hide_help() -> None:
    options, rest = split_runner_options(["-scenario", "seed", "-h"])
    assert options.scenario == "seed" and rest == ["-h"]
    assert parse_argv(rest).help_text is not None


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (["-h", "-bogus"], "qemu-system-ppc64: -bogus: invalid option\n"),
        (["-version", "-cpu"], "qemu-system-ppc64: -cpu: requires an argument\n"),
        (["-cpu", "help", "-bogus"], "qemu-system-ppc64: -bogus: invalid option\n"),
    ],
)
def test_every_option_is_checked_before_help_acts(argv: list[str], stderr: str) -> None:
    """QEMU's first pass: an unknown option or a missing argument wins over -h/-version."""
    rc, out, err = run(argv)
    assert (rc, out, err) == (1, "", stderr)


def test_help_acts_before_later_options_are_read() -> None:
    rc, out, err = run(["-h", "-smp", "bogus=1", "-kernel", "x"])
    assert rc == 0 and out.startswith("QEMU emulator version") and err == ""


# -- -version ---------------------------------------------------------------------


def test_version_has_qemus_two_lines_naming_this_emulator() -> None:
    rc, out, err = run(["-version"])
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    match = VERSION_LINE.fullmatch(lines[0])
    assert match and "spapr-hotplug" in match.group(1)
    assert lines[1] == recorded("qemu72_version.txt").splitlines()[1]
    assert run(["--version"])[1] == out


# -- -cpu help ----------------------------------------------------------------------


def _modelled_cpu_lines(qemu_text: str) -> list[str]:
    """QEMU's -cpu help lines that name a model with an sPAPR core (or an alias of one)."""
    models = {m.cpu_type for m in CPU_MODELS}
    keep = []
    for line in qemu_text.splitlines():
        words = line.split()
        alias_of = re.search(r"\(alias for (\S+)\)", line)
        if words[1] in models or (alias_of and alias_of.group(1) in models):
            keep.append(line)
    return keep


def test_cpu_help_is_qemus_list_of_the_modelled_models() -> None:
    rc, out, err = run(["-cpu", "help"])
    assert (rc, err) == (0, "")
    assert out.splitlines() == _modelled_cpu_lines(recorded("qemu72_cpu_help.txt"))
    assert len(out.splitlines()) >= len(CPU_MODELS)
    assert run(["-cpu", "?"])[1] == out


def test_a_later_cpu_option_cancels_cpu_help() -> None:
    assert parse_argv(["-cpu", "help", "-cpu", "power9"]).help_text is None


def test_machine_help_wins_over_cpu_and_device_help() -> None:
    for argv in (["-cpu", "help", "-M", "help"], ["-device", "help", "-M", "help"]):
        assert run(argv)[1].startswith("Supported machines are:")
    assert run(["-device", "help", "-cpu", "help"])[1].startswith("PowerPC ")


# -- -device help --------------------------------------------------------------------


def _cpu_devices_section(text: str) -> str:
    start = text.index("CPU devices:\n")
    return text[start : text.index("\n\n", start) + 2]


def test_device_help_is_qemus_cpu_devices_category() -> None:
    rc, out, err = run(["-device", "help"])
    assert (rc, err) == (0, "")
    assert out == _cpu_devices_section(recorded("qemu72_device_help.txt"))
    for spelling in ("?", "driver=help", "help,foo=1"):
        assert run(["-device", spelling])[1] == out


def test_device_type_help_is_qemus_property_list() -> None:
    rc, out, err = run(["-device", "power9_v2.0-spapr-cpu-core,help"])
    assert (rc, out, err) == (
        0,
        recorded("qemu72_device_power9_v2.0-spapr-cpu-core_help.txt"),
        "",
    )
    for model in CPU_MODELS:
        text = run(["-device", f"{model.core_type},?"])[1]
        assert text.splitlines()[0] == f"{model.core_type} options:"
        assert text.splitlines()[1:] == out.splitlines()[1:]


@pytest.mark.parametrize(
    ("driver", "error"),
    [
        ("foo", "Device 'foo' not found"),
        ("POWER9-spapr-cpu-core", "Device 'POWER9-spapr-cpu-core' not found"),
        ("spapr-cpu-core", "Parameter 'typename' expects a non-abstract device type"),
        ("cpu-core", "Parameter 'typename' expects a non-abstract device type"),
    ],
)
def test_device_help_refusals_are_qemus_and_exit_0(driver: str, error: str) -> None:
    """QEMU prints these on stderr and still exits 0 (the help was what was asked for)."""
    rc, out, err = run(["-device", f"{driver},help"])
    assert (rc, out, err) == (0, "", f"qemu-system-ppc64: -device {driver},help: {error}\n")


def test_every_section_title_is_qemus() -> None:
    qemu_lines = recorded("qemu72_h.txt").splitlines()
    assert all(title in qemu_lines for title, _ in QEMU_SECTIONS)


# -- live comparisons ---------------------------------------------------------------


@pytest.mark.qemu
def test_live_h_and_version() -> None:
    live = qemu("-h")
    assert live.returncode == 0
    check_help_against(run(["-h"])[1], live.stdout)
    version = qemu("-version").stdout.splitlines()
    ours = run(["-version"])[1].splitlines()
    assert VERSION_LINE.fullmatch(version[0]) and ours[1] == version[1]


@pytest.mark.qemu
def test_live_cpu_help() -> None:
    assert run(["-cpu", "help"])[1].splitlines() == _modelled_cpu_lines(qemu("-cpu", "help").stdout)


@pytest.mark.qemu
def test_live_device_help_and_every_core_types_properties() -> None:
    assert run(["-device", "help"])[1] == _cpu_devices_section(qemu("-device", "help").stdout)
    for model in CPU_MODELS:
        live = qemu("-device", f"{model.core_type},help")
        assert run(["-device", f"{model.core_type},help"])[1] == live.stdout


@pytest.mark.qemu
@pytest.mark.parametrize("driver", ["foo", "spapr-cpu-core"])
def test_live_device_help_refusals(driver: str) -> None:
    live = qemu("-device", f"{driver},help")
    rc, out, err = run(["-device", f"{driver},help"])
    assert (rc, out, err) == (live.returncode, live.stdout, live.stderr)


@pytest.mark.qemu
@pytest.mark.parametrize("argv", [["-h", "-bogus"], ["-cpu", "help", "-cpu"]])
def test_live_first_pass_errors(argv: list[str]) -> None:
    live = qemu(*argv)
    rc, out, err = run(argv)
    assert (rc, out, err) == (live.returncode, live.stdout, live.stderr)
