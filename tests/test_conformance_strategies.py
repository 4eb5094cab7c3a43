"""The conformance kit's strategies draw what QEMU 7.2 accepts, and refusals with QEMU's text.

Every template an invalid-configuration or invalid-device strategy uses is first
checked against QEMU's own recorded output (tests/data/errors); then generated
values are checked against the emulator (which reproduces those recordings) and,
with qemu-system-ppc64 installed, against real QEMU 7.2.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from oracle_tools import QEMU

import conformance
from conformance import strategies as S
from conformance.config import MachineArgs, fatal
from conformance.guests import reference_guest
from conformance.qmp import ORACLE_OPTIONS
from machine.board.build import build_machine
from machine.board.guest_loader import parse_guest_option
from machine.cli.main import main
from spapr.errors import QemuError

DATA = Path(__file__).parent / "data" / "errors"
RECORDED_CMDLINE = {c["case"]: c for c in json.loads((DATA / "cmdline.json").read_text())}
RECORDED_QMP = json.loads((DATA / "qmp_errors.json").read_text())
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def emulator_stderr(args: tuple[str, ...] | list[str], tmp_path: Path) -> tuple[int, str]:
    """Start the emulator as QEMU is started (dumpdtb so an accepted line exits)."""
    err = io.StringIO()
    argv = [*args, *ORACLE_OPTIONS, "-M", f"dumpdtb={tmp_path / 'out.dtb'}"]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    return status, err.getvalue()


def qemu_stderr(args: tuple[str, ...] | list[str], tmp_path: Path) -> tuple[int, str]:
    assert QEMU is not None
    argv = [QEMU, *args, *ORACLE_OPTIONS, "-M", f"dumpdtb={tmp_path / 'out.dtb'}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stderr


def test_the_public_api_is_what_all_names() -> None:
    assert all(hasattr(conformance, name) for name in conformance.__all__)
    assert conformance.HotplugMachine.__doc__ and conformance.Guest.__doc__


# ---------------------------------------------------------------- templates vs recordings


def _recorded(case: str) -> str:
    return str(RECORDED_CMDLINE[case]["stderr"])


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("config p8e_smt4", fatal(S.TCG_SMT)),
        ("maxcpus < cpus", fatal(S.TOPOLOGY_MAXCPUS.format(s=1, c=2, t=1, m=2, n=4))),
        (
            "sockets*cores*threads != maxcpus",
            fatal(S.TOPOLOGY_PRODUCT.format(s=2, c=4, t=1, m=4)),
        ),
        ("dies given", fatal(S.UNSUPPORTED_LEVEL.format(level="dies"))),
        ("clusters given", fatal(S.UNSUPPORTED_LEVEL.format(level="clusters"))),
        ("pseries-2.7 without cap-htm=off", fatal(S.NO_HTM)),
        ("pseries-2.6 with maxcpus > cpus", fatal(S.NO_CPU_HOTPLUG)),
        ("unknown CPU model", fatal(S.UNKNOWN_CPU.format(cpu="POWER11"))),
        (
            "-device core with a boot core's core-id",
            fatal(
                S.CORE_POPULATED.format(n=1),
                "-device power8e_v2.1-spapr-cpu-core,id=core1,core-id=1",
            ),
        ),
        (
            "-device core with core-id out of range",
            fatal(
                S.CORE_OUT_OF_RANGE.format(n=5),
                "-device power8e_v2.1-spapr-cpu-core,id=core5,core-id=5",
            ),
        ),
        (
            "-device core of the wrong type",
            fatal(
                S.CORE_TYPE.format(core_type="power8e_v2.1-spapr-cpu-core"),
                "-device power9_v2.0-spapr-cpu-core,id=core2,core-id=2",
            ),
        ),
        (
            "-device with the CPU model name (POWER8E-spapr-cpu-core)",
            fatal(
                S.NOT_A_DEVICE_MODEL.format(driver="POWER8E-spapr-cpu-core"),
                "-device POWER8E-spapr-cpu-core,id=core2,core-id=2",
            ),
        ),
        (
            "-device core with node-id mismatch",
            fatal(
                S.NODE_ID.format(node=0),
                "-device power8e_v2.1-spapr-cpu-core,id=core2,core-id=2,node-id=3",
            ),
        ),
        (
            "-device core with nr-threads mismatch",
            fatal(
                S.NR_THREADS.format(n=2, threads=1),
                "-device power8e_v2.1-spapr-cpu-core,id=core2,core-id=2,nr-threads=2",
            ),
        ),
        ("NUMA without memdev", fatal(S.NUMA_NO_MEMDEV.format(ram=1 << 30))),
        (
            "NUMA cpus= index >= maxcpus",
            fatal(S.NUMA_CPU_INDEX.format(i=4, m=4), "-numa node,nodeid=0,cpus=0-4,memdev=m0"),
        ),
        (
            "-numa cpu with core-id that does not exist",
            fatal(S.NUMA_NO_MATCH, "-numa cpu,node-id=1,core-id=7"),
        ),
        (
            "-numa cpu with socket-id",
            fatal(S.NUMA_SOCKET_ID, "-numa cpu,node-id=1,socket-id=0"),
        ),
        (
            "-numa cpu with undefined node",
            fatal(S.NUMA_UNDEFINED_NODE.format(n=2), "-numa cpu,node-id=2,core-id=1"),
        ),
    ],
)
def test_invalid_config_templates_are_qemus_recorded_texts(case: str, text: str) -> None:
    assert text == _recorded(case)


def _recorded_desc(config: str, args: dict[str, Any]) -> str | None:
    for entry in RECORDED_QMP:
        if entry["config"] == config and entry["request"].get("arguments") == args:
            return str(entry["response"]["error"]["desc"]) if "error" in entry["response"] else None
    raise KeyError(args)


P8E_CORE = "power8e_v2.1-spapr-cpu-core"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ({"driver": P8E_CORE, "id": "c", "core-id": 4}, S.CORE_OUT_OF_RANGE.format(n=4)),
        ({"driver": P8E_CORE, "id": "c", "core-id": 1}, S.CORE_POPULATED.format(n=1)),
        (
            {"driver": "power9_v2.0-spapr-cpu-core", "id": "c", "core-id": 2},
            S.CORE_TYPE.format(core_type=P8E_CORE),
        ),
        (
            {"driver": "POWER8E-spapr-cpu-core", "id": "c", "core-id": 2},
            S.NOT_A_DEVICE_MODEL.format(driver="POWER8E-spapr-cpu-core"),
        ),
        (
            {"driver": P8E_CORE, "id": "c", "core-id": 2, "node-id": 1},
            S.NODE_ID.format(node=0),
        ),
        (
            {"driver": P8E_CORE, "id": "c", "core-id": 2, "nr-threads": 2},
            S.NR_THREADS.format(n=2, threads=1),
        ),
    ],
)
def test_core_refusal_templates_are_qemus_recorded_texts(args: dict[str, Any], text: str) -> None:
    assert _recorded_desc("p8e_classic", args) == text


# ---------------------------------------------------------------- valid configurations


def _check_machine(config: MachineArgs) -> None:
    machine = build_machine([*config.argv(), *ORACLE_OPTIONS, "-guest", "none"], io.StringIO())
    machine.reset()
    slots = machine.query_hotpluggable_cpus()
    assert len(slots) == config.max_cores
    assert {e["props"]["core-id"] for e in slots} == set(config.core_ids)
    for entry in slots:
        assert entry["type"] == config.core_type
        assert entry["vcpus-count"] == config.threads
        assert entry["props"]["node-id"] == config.node_of(entry["props"]["core-id"])
    taken = {e["props"]["core-id"] for e in slots if "qom-path" in e}
    assert taken == set(config.core_ids) - set(config.free_core_ids)


@FAST
@given(S.machine_configs("tcg"))
def test_valid_tcg_configurations_start(config: MachineArgs) -> None:
    _check_machine(config)


@FAST
@given(S.machine_configs("kvm"))
def test_valid_kvm_configurations_start(config: MachineArgs) -> None:
    _check_machine(config)


@pytest.mark.qemu
@settings(max_examples=12, deadline=None)
@given(S.machine_configs("tcg", coldplug=True))
def test_valid_tcg_configurations_start_in_qemu(config: MachineArgs) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        status, stderr = qemu_stderr(config.argv(), Path(tmp))
    assert status == 0, stderr
    assert "error" not in stderr.lower(), stderr


# ---------------------------------------------------------------- invalid configurations


@FAST
@given(S.invalid_machine_configs())
def test_invalid_configurations_get_qemus_error(invalid: Any) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        assert emulator_stderr(invalid.args, Path(tmp)) == (invalid.exit_code, invalid.stderr)


@pytest.mark.qemu
@settings(max_examples=15, deadline=None)
@given(S.invalid_machine_configs())
def test_invalid_configurations_get_the_same_error_from_qemu(invalid: Any) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        assert qemu_stderr(invalid.args, Path(tmp)) == (invalid.exit_code, invalid.stderr)


def test_invalid_configurations_cover_every_kind() -> None:
    kinds: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(S.invalid_machine_configs())
    def collect(invalid: Any) -> None:
        kinds.add(invalid.kind)

    collect()
    assert len(kinds) == 18, kinds


# ---------------------------------------------------------------- core arguments


def _fresh(config: MachineArgs) -> Any:
    machine = build_machine([*config.argv(), *ORACLE_OPTIONS, "-guest", "none"], io.StringIO())
    machine.reset()
    return machine


@FAST
@given(st.data())
def test_valid_core_arguments_are_accepted(data: st.DataObject) -> None:
    config = data.draw(S.machine_configs(data.draw(st.sampled_from(["tcg", "kvm"]))))
    if not config.free_core_ids:
        return
    core = data.draw(S.core_device_args(config))
    machine = _fresh(config)
    added = machine.device_add(core.args)
    assert added.core_id in config.free_core_ids


@FAST
@given(st.data())
def test_invalid_core_arguments_get_qemus_refusal(data: st.DataObject) -> None:
    config = data.draw(S.machine_configs("tcg", coldplug=False))
    bad = data.draw(S.invalid_core_device_args(config))
    assert bad.refusal is not None
    with pytest.raises(QemuError) as refused:
        _fresh(config).device_add(bad.args)
    assert (refused.value.error_class, refused.value.message) == (
        bad.refusal.error_class,
        bad.refusal.desc,
    )


# ---------------------------------------------------------------- host and guest actions


@FAST
@given(st.data())
def test_host_operations_apply_with_only_qemus_refusals(data: st.DataObject) -> None:
    from machine.monitor.control import MachineControl

    config = data.draw(S.machine_configs("tcg", numa=False))
    ops = data.draw(S.host_sequences(config, max_size=12, migrate=False))
    machine = _fresh(config)
    control = MachineControl(machine)
    for op in ops:
        try:
            if isinstance(op, S.DeviceAdd):
                control.device_add(op.args)
            elif isinstance(op, S.DeviceDel):
                control.device_del(op.target)
            elif isinstance(op, S.SystemReset):
                control.system_reset()
            elif isinstance(op, S.Stop):
                control.stop()
            elif isinstance(op, S.Cont):
                control.cont()
            elif isinstance(op, S.TimePasses) and control.runstate.running:
                machine.sched.run_for(op.ns)
        except QemuError as err:
            assert err.error_class in ("GenericError", "DeviceNotFound"), err


@FAST
@given(st.data())
def test_rtas_calls_get_papr_statuses(data: st.DataObject) -> None:
    from conformance.statemachine import HotplugMachine

    class Hostile(HotplugMachine):
        guest_behaviour = None

    machine = Hostile()
    for _ in range(10):
        call = data.draw(S.rtas_calls(machine.config, callers=tuple(machine._vcpus())))
        if not machine._vcpus():
            break
        if call.name == "stop-self":
            continue
        caller = call.caller if call.caller in machine._vcpus() else machine._vcpus()[0]
        machine.rtas(
            "any", list(call.args), call.nret, caller=caller, token=call.token, buffer=call.buffer
        )
        machine.connectors_follow_the_papr_table()
    machine.teardown()


@settings(max_examples=8, deadline=None)
@given(S.guest_behaviours())
def test_guest_behaviours_boot_and_spell_their_option(behaviour: S.GuestBehaviour) -> None:
    option = behaviour.option()
    if option is not None:
        choice = parse_guest_option(option)
        assert (choice.mode, choice.misbehavior) == (behaviour.mode, behaviour.misbehavior)
    machine = build_machine(
        [*S.P9_CLASSIC.argv(), "-nodefaults", "-seed", "1", "-guest", "none"], io.StringIO()
    )
    guest = reference_guest(behaviour)
    machine.load_guest(guest)
    machine.reset()
    machine.sched.run_for(200_000_000)
    assert guest.online_hwids() <= {t.vcpu_id for t in machine.iter_threads()}
