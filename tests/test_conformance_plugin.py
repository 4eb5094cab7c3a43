"""The kit's pytest plugin: a user's test file, with no conftest, gets its fixtures and markers.

The files below are run by pytester in an empty directory (so this repository's
tests/conftest.py is not there), with no ``-p`` option: the installed package's
``pytest11`` entry point loads the plugin, as it does for a user. An explicit
``-p conformance.plugin`` (what the docs showed before the entry point) still works.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oracle_tools import QEMU

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subprocess finds the kit as an installed package would be found."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


PLUGIN = ("-p", "no:cacheprovider", "-q")

USER_TESTS = """
import pytest
from conformance import MachineArgs

def test_machine_and_control(spapr_machine, spapr_control):
    assert len(spapr_machine.query_hotpluggable_cpus()) == 4
    spapr_control.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "c2", "core-id": 2})
    assert spapr_machine.query_hotpluggable_cpus()[1]["qom-path"] == "/machine/peripheral/c2"

@pytest.mark.spapr_machine(MachineArgs(cpu="POWER8E", cpus=1, cores=2, maxcpus=2))
def test_marked_machine(spapr_machine, machine_args):
    assert machine_args.core_type == "power8e_v2.1-spapr-cpu-core"
    types = [e["type"] for e in spapr_machine.query_hotpluggable_cpus()]
    assert types == [machine_args.core_type] * 2

@pytest.mark.spapr_machine("-M pseries -cpu POWER10 -smp 1,cores=3,threads=1,maxcpus=3 -m 1G")
def test_machine_from_a_command_line(spapr_argv, emulator_session):
    assert "-cpu" in spapr_argv
    reply = emulator_session.execute({"execute": "query-hotpluggable-cpus"}).response
    assert len(reply["return"]) == 3

def test_a_qmp_client_of_the_emulator(emulator_qmp):
    assert emulator_qmp.cmd_raw("query-status")["return"]["status"] == "prelaunch"
    core = {"driver": "power9_v2.0-spapr-cpu-core", "id": "x", "core-id": 3}
    reply = emulator_qmp.cmd_raw("device_add", core)
    assert reply == {"return": {}}

@pytest.mark.guest("linux+ignore-unplug")
def test_the_reference_guest(spapr_machine, spapr_control, reference_guest, guest_behaviour):
    assert guest_behaviour.refuses_unplug and reference_guest.misbehavior.ignore_unplug
    spapr_control.settle()
    assert spapr_machine.guest.booted

@pytest.mark.qemu
def test_real_qemu(qemu_binary, qemu_session, qemu_qmp):
    assert qemu_binary.endswith("qemu-system-ppc64")
    status = qemu_session.execute({"execute": "query-status"}).response["return"]
    assert status["status"] == "prelaunch"
    assert qemu_qmp.cmd_raw("query-status")["return"]["running"] is False
"""


def test_a_user_test_file_needs_no_conftest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(*PLUGIN)
    if QEMU is not None:
        result.assert_outcomes(passed=6)
    else:
        result.assert_outcomes(passed=5, skipped=1)


def test_the_machine_option_sets_the_default_machine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_option="""
def test_option(spapr_machine, spapr_argv):
    assert spapr_argv[:2] == ["-M", "pseries"]
    assert len(spapr_machine.query_hotpluggable_cpus()) == 8
"""
    )
    result = pytester.runpytest_subprocess(
        *PLUGIN,
        "--spapr-machine=-M pseries -cpu POWER9 -smp 2,sockets=2,cores=4,threads=1,maxcpus=8 -m 1G",
    )
    result.assert_outcomes(passed=1)


def test_the_qemu_marker_skips_without_qemu(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marker="""
import pytest

@pytest.mark.qemu
def test_needs_qemu():
    pass
"""
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "--strict-markers")
    if QEMU is not None:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)


def test_an_explicit_plugin_option_finds_the_plugin_already_loaded(
    pytester: pytest.Pytester,
) -> None:
    """``-p conformance.plugin`` beside the entry point neither fails ("Plugin already
    registered") nor loads the plugin twice (its options would then clash)."""
    pytester.makepyfile(
        test_twice="""
def test_plugin_once(request):
    manager = request.config.pluginmanager
    name = "conformance.plugin"
    plugins = [p for p in manager.get_plugins() if getattr(p, "__name__", "") == name]
    assert len(plugins) == 1
    assert manager.get_plugin(name) is plugins[0]
"""
    )
    result = pytester.runpytest_subprocess("-p", "conformance.plugin", *PLUGIN)
    result.assert_outcomes(passed=1)
