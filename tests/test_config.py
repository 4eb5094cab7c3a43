"""Command line and start-up order against real QEMU 7.2 output.

Sources of truth: the oracle's refused command lines (errors/cmdline.json), the
stderr of every dumpdtb run in manifest.json, and command lines recorded from the
real qemu-system-ppc64 7.2.22 on this machine (data/machine_config). When the
binary is installed, a live differential test re-runs a sample.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from machine.config.cmdline import StartupError, parse_argv
from machine.config.machine_types import find_machine, machine_help_text
from machine.config.startup import MachineSetup, creation_done_warnings, reset_warnings, startup
from spapr.errors import QemuError

DATA = Path(__file__).parent / "data"
CMDLINE = json.loads((DATA / "errors" / "cmdline.json").read_text())
MANIFEST = json.loads((DATA / "manifest.json").read_text())
RECORDED = json.loads((DATA / "machine_config" / "recorded_cmdline.json").read_text())["cases"]


def model_stderr(argv: list[str]) -> tuple[int, list[str], MachineSetup | None]:
    """Exit code and stderr lines of the model up to the first machine reset."""
    lines: list[str] = []
    try:
        config = parse_argv(argv)
        if config.help_text is not None:
            return 0, [], None
        setup = startup(config)
        lines += [w.report() for w in setup.warnings]
        lines += [w.report() for w in creation_done_warnings(setup)]
        lines += [w.report() for w in reset_warnings(setup)]
    except StartupError as err:
        return 1, lines + "\n".join(err.stderr_lines()).split("\n"), None
    return 0, "\n".join(lines).split("\n") if lines else [], setup


def qemu_stderr(text: str) -> list[str]:
    """QEMU's stderr lines without the final "dtb dumped" line (the dumper's job)."""
    return [line for line in text.splitlines() if "dtb dumped" not in line]


def _id(case: dict) -> str:
    return " ".join(case["argv"][1:])[:90]


CMDLINE_CASES = [c for c in CMDLINE if "-device" not in c["argv"]]


@pytest.mark.parametrize("case", CMDLINE_CASES, ids=[c["case"] for c in CMDLINE_CASES])
def test_oracle_refused_command_lines(case: dict) -> None:
    code, lines, _ = model_stderr(case["argv"][1:])
    assert code == case["exit_code"]
    assert lines == qemu_stderr(case["stderr"])


def test_oracle_refusals_carry_the_option_as_location() -> None:
    case = next(c for c in CMDLINE if c["case"] == "-numa cpu with socket-id")
    with pytest.raises(StartupError) as info:
        startup(parse_argv(case["argv"][1:]))
    assert info.value.location == "-numa cpu,node-id=1,socket-id=0"
    assert info.value.message == "socket-id is not supported"


DTB_RUNS = {
    name: entry
    for name, entry in MANIFEST["files"].items()
    if name.startswith("dtb/") and entry["argv"][0] == "qemu-system-ppc64"
}


@pytest.mark.parametrize("name", sorted(DTB_RUNS))
def test_manifest_dumpdtb_runs(name: str) -> None:
    entry = DTB_RUNS[name]
    argv = entry["argv"][1:]
    if "-device" in argv:
        # Cold-plugged cores are the core device's business; drop them here.
        i = argv.index("-device")
        argv = argv[:i] + argv[i + 2 :]
    code, lines, _ = model_stderr(argv)
    assert code == entry["exit_code"]
    assert lines == qemu_stderr(entry["stderr"])


@pytest.mark.parametrize("case", RECORDED, ids=[_id(c) for c in RECORDED])
def test_recorded_real_qemu_runs(case: dict) -> None:
    code, lines, _ = model_stderr(case["argv"][1:])
    assert (code, lines) == (case["exit_code"], qemu_stderr(case["stderr"]))


def test_unknown_option_is_refused_like_qemu() -> None:
    with pytest.raises(StartupError) as info:
        parse_argv(["-smp", "2", "-frobnicate"])
    assert info.value.report() == "qemu-system-ppc64: -frobnicate: invalid option"


def test_unmodeled_qemu_option_is_refused_clearly() -> None:
    with pytest.raises(StartupError) as info:
        parse_argv(["-kernel", "vmlinux"])
    assert "not modeled" in info.value.message
    assert info.value.location == "-kernel"


def test_missing_argument() -> None:
    with pytest.raises(StartupError) as info:
        parse_argv(["-numa"])
    assert info.value.report() == "qemu-system-ppc64: -numa: requires an argument"


def test_warnings_before_an_error_are_kept_in_order() -> None:
    # Output of the real QEMU 7.2 for this command line.
    option = "memory-backend-ram,id=m0,size=512M,prealloc"
    with pytest.raises(StartupError) as info:
        startup(parse_argv(["-object", option, "-smp", "0,threads=2"]))
    assert info.value.stderr_lines() == [
        f"qemu-system-ppc64: -object {option}: warning: short-form boolean option 'prealloc'"
        " deprecated\nPlease use prealloc=on instead",
        "qemu-system-ppc64: warning: Deprecated CPU topology (considered invalid): CPU topology"
        " parameters must be greater than zero",
        "qemu-system-ppc64: TCG cannot support more than 1 thread/core on a pseries machine",
    ]


def test_project_options_are_stored() -> None:
    config = parse_argv(
        ["-trace-json", "t.jsonl", "-host-cpu", "POWER8", "-legacy-core-names", "-guest", "linux"]
    )
    assert config.trace_json == "t.jsonl"
    assert config.kvm_host.model.cpu_type == "power8_v2.0"
    assert config.legacy_core_names
    assert config.guest == "linux"


def test_other_options_are_stored() -> None:
    config = parse_argv(
        [
            "-qmp", "unix:qmp.sock,server=on,wait=off", "-qmp", "tcp:localhost:4444,server=on",
            "-monitor", "stdio", "-incoming", "defer", "-trace", "spapr_drc*",
            "-trace", "events=ev.txt", "-D", "log.txt", "-seed", "0x10", "-name", "vm1",
            "-S", "-nodefaults", "-nographic",
        ]
    )  # fmt: skip
    assert config.qmp == ["unix:qmp.sock,server=on,wait=off", "tcp:localhost:4444,server=on"]
    assert config.monitors == ["stdio"]
    assert config.incoming == "defer"
    assert [t.enable for t in config.traces] == ["spapr_drc*", None]
    assert config.traces[1].events == "ev.txt"
    assert (config.log_file, config.seed, config.name) == ("log.txt", 16, "vm1")
    assert config.freeze and config.nodefaults and config.nographic


def test_devices_are_kept_raw_with_their_location() -> None:
    spec = "power8e_v2.1-spapr-cpu-core,id=core2,core-id=2"
    config = parse_argv(["-device", spec, "-device", '{"driver": "x", "id": "j"}'])
    first, second = config.devices
    assert first.location == f"-device {spec}"
    assert first.driver == "power8e_v2.1-spapr-cpu-core"
    assert first.id == "core2"
    assert ("core-id", "2") in first.props
    assert second.json is not None and second.driver == "x" and second.id == "j"


def test_duplicate_device_id_is_refused_when_read() -> None:
    with pytest.raises(StartupError) as info:
        parse_argv(["-device", "a,id=x", "-device", "b,id=x"])
    assert info.value.report() == "qemu-system-ppc64: -device b,id=x: Duplicate ID 'x' for device"


def test_setup_values_for_the_classic_configuration() -> None:
    argv = ["-M", "pseries", "-cpu", "POWER8E", "-smp", "2,cores=4,threads=1,maxcpus=4"]
    setup = startup(parse_argv([*argv, "-m", "1G"]))
    assert setup.machine.name == "pseries-7.2"
    assert setup.core_type == "power8e_v2.1-spapr-cpu-core"
    assert setup.ram_size == 1 << 30
    assert setup.ic_mode == "xics"  # dual falls back to XICS without POWER9
    assert setup.resize_hpt == "enabled"
    assert setup.modern_hotplug_events
    assert setup.caps.value_name("cfpc") == "workaround"
    assert setup.caps.hpt_max_page_shift == 16


def test_pseries_2_7_defaults() -> None:
    setup = startup(parse_argv(["-M", "pseries-2.7,cap-htm=off"]))
    assert setup.cpu.model is not None and setup.cpu.model.cpu_type == "power7_v2.3"
    assert not setup.modern_hotplug_events
    assert setup.ic_mode == "xics-legacy"
    assert setup.topology.vsmt == 8


def test_user_max_cpu_compat_and_dumpdtb() -> None:
    setup = startup(parse_argv(["-M", "pseries,max-cpu-compat=power8,dumpdtb=out.dtb"]))
    assert setup.max_compat is not None and setup.max_compat.name == "power8"
    assert setup.dumpdtb == "out.dtb"
    # No POWER9 compat: no large decrementer, and XIVE is not offered.
    assert setup.caps.level("large-decr") == 0
    assert setup.ic_mode == "xics"


def test_legacy_compat_spellings_under_kvm() -> None:
    setup = startup(parse_argv(["-enable-kvm", "-cpu", "host,compat=power7"]))
    assert setup.max_compat is not None and setup.max_compat.name == "power7"
    assert any("'compat' was removed in QEMU 6.0" in w.message for w in setup.warnings)
    setup = startup(
        parse_argv(
            [
                "-enable-kvm",
                "-cpu",
                "host",
                "-global",
                "driver=host-powerpc64-cpu,property=compat,value=power7",
            ]
        )
    )
    assert setup.max_compat is not None and setup.max_compat.name == "power7"
    warning = next(w for w in setup.warnings if "compat" in w.message)
    assert warning.location == "-global driver=host-powerpc64-cpu,property=compat,value=power7"


def test_explicit_max_cpu_compat_wins_over_legacy_compat() -> None:
    setup = startup(
        parse_argv(["-enable-kvm", "-cpu", "host,compat=power7", "-M", "max-cpu-compat=power8"])
    )
    assert setup.max_compat is not None and setup.max_compat.name == "power8"


def test_unknown_global_driver_is_refused() -> None:
    with pytest.raises(StartupError) as info:
        parse_argv(["-global", "virtio-blk-pci.x=1"])
    assert info.value.location == "-global virtio-blk-pci.x=1"
    assert "not modeled" in info.value.message


def test_core_globals_are_handed_to_the_core_device() -> None:
    setup = startup(parse_argv(["-global", "spapr-cpu-core.pre-3.0-migration=on"]))
    assert [(g.driver, g.property, g.value) for g in setup.core_globals] == [
        ("spapr-cpu-core", "pre-3.0-migration", "on")
    ]


def test_kvm_refuses_a_cpu_that_is_not_the_host() -> None:
    with pytest.raises(StartupError) as info:
        startup(parse_argv(["-enable-kvm", "-cpu", "POWER8"]))
    assert 'only "-cpu host" is possible' in info.value.message


def test_kvm_vcpu_limits() -> None:
    config = parse_argv(["-accel", "kvm", "-smp", "1,maxcpus=200"])
    setup = startup(config)
    warning = setup.warnings[0]
    assert warning.location == "-accel kvm"
    assert warning.message == (
        "Number of hotpluggable cpus requested (200) exceeds the recommended cpus supported by "
        f"KVM ({config.kvm_host.present_cpus})"
    )
    with pytest.raises(StartupError) as info:
        startup(parse_argv(["-accel", "kvm", "-smp", "1,maxcpus=4096"]))
    assert info.value.report() == (
        "Number of hotpluggable cpus requested (4096) exceeds the maximum cpus supported by "
        "KVM (2048)"
    )


def test_kvm_has_no_tcg_cap_warnings() -> None:
    setup = startup(parse_argv(["-enable-kvm"]))
    assert reset_warnings(setup) == []


def test_machine_help() -> None:
    # -M help acts when met (the bad -m after it is never read), but QEMU's first pass
    # has checked every option name before: "-M help -frobnicate" is "invalid option"
    config = parse_argv(["-M", "help", "-m", "foo"])
    assert config.help_text is not None
    with pytest.raises(StartupError, match="invalid option"):
        parse_argv(["-M", "help", "-frobnicate"])
    assert "pseries              pSeries Logical Partition (PAPR compliant) (alias of" in (
        config.help_text
    )


LIVE_SAMPLE = [
    "-M pseries,vsmt=x,cap-htm=maybe -smp 4,maxcpus=2",
    "-M pseries-4.1,ic-mode=xive -cpu POWER8 -smp 2,threads=2",
    "-m 100M -smp 2,threads=2 -cpu POWER9",
    "-M pseries-2.7 -cpu POWER9 -smp 1,maxcpus=2",
    "-numa node,cpus=0-1,bogus -smp 4",
]


@pytest.mark.qemu
@pytest.mark.parametrize("line", LIVE_SAMPLE)
def test_live_against_real_qemu(line: str, tmp_path: Path) -> None:
    argv = line.split()
    m_index = argv.index("-M") + 1 if "-M" in argv else None
    if m_index is None:
        argv = ["-M", "pseries,dumpdtb=out.dtb", *argv]
    else:
        argv[m_index] += ",dumpdtb=out.dtb"
    argv += ["-nographic", "-display", "none", "-nodefaults", "-S"]
    real = subprocess.run(
        ["qemu-system-ppc64", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    code, lines, _ = model_stderr(argv)
    assert (code, lines) == (real.returncode, qemu_stderr(real.stderr))


def test_machine_help_lists_the_pseries_versions_like_qemu() -> None:
    # The pseries lines of the real `qemu-system-ppc64 -M help`.
    expected = (DATA / "machine_config" / "machine_help_pseries.txt").read_text().rstrip("\n")
    assert machine_help_text() == expected


@pytest.mark.parametrize(
    ("name", "cpu", "vsmt_is_threads", "prefer_sockets", "hotplug", "modern_events"),
    [
        ("pseries", "power9_v2.0", True, False, True, True),
        ("pseries-6.2", "power9_v2.0", True, False, True, True),
        ("pseries-6.1", "power9_v2.0", True, True, True, True),
        ("pseries-4.2", "power9_v2.0", True, True, True, True),
        ("pseries-4.1", "power9_v2.0", False, True, True, True),
        ("pseries-4.0", "power9_v2.0", False, True, True, True),
        ("pseries-3.1", "power8_v2.0", False, True, True, True),
        ("pseries-2.8", "power8_v2.0", False, True, True, True),
        ("pseries-2.7", "power7_v2.3", False, True, True, False),
        ("pseries-2.6", "power7_v2.3", False, True, False, False),
    ],
)
def test_machine_version_settings(
    name: str,
    cpu: str,
    vsmt_is_threads: bool,
    prefer_sockets: bool,
    hotplug: bool,
    modern_events: bool,
) -> None:
    machine = find_machine(name)
    assert machine.default_cpu_type == cpu
    assert machine.smp_threads_vsmt == vsmt_is_threads
    assert machine.prefer_sockets == prefer_sockets
    assert machine.has_hotpluggable_cpus == hotplug
    assert machine.default_modern_hotplug_events == modern_events
    assert machine.max_cpus == 4096


def test_machine_aliases_and_qom_names() -> None:
    assert find_machine("pseries") is find_machine("pseries-7.2")
    assert find_machine("pseries").qom_type == "pseries-7.2-machine"
    assert find_machine("pseries-2.12-sxxm").default_caps["ibs"] == 3
    assert find_machine("pseries-2.11").default_caps["htm"] == 1
    assert not find_machine("pseries-3.1").dr_phb_enabled
    assert find_machine("pseries-4.0").dr_phb_enabled
    with pytest.raises(QemuError) as info:
        find_machine("pseries-9.9")
    assert info.value.message == (
        "unsupported machine type\nUse -machine help to list supported machines"
    )


def test_tcg_cap_warnings_follow_the_cpu() -> None:
    # Real QEMU 7.2: POWER7 has no cfpc workaround, POWER5+ only ccf-assist.
    def warned(cpu: str) -> list[str]:
        setup = startup(parse_argv(["-cpu", cpu]))
        return [w.message.rsplit(", ", 1)[1] for w in reset_warnings(setup)]

    assert warned("POWER9") == ["cap-cfpc=workaround", "cap-sbbc=workaround",
                                "cap-ibs=workaround", "cap-ccf-assist=on"]  # fmt: skip
    assert warned("POWER7") == ["cap-sbbc=workaround", "cap-ibs=workaround", "cap-ccf-assist=on"]
    assert warned("POWER5+") == ["cap-ccf-assist=on"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-M", "pseries-2.12-sxxm", "-enable-kvm", "-host-cpu", "POWER8"],
         "Requested safe indirect branch capability level not supported by KVM\n"
         "Try appending -machine cap-ibs=workaround"),
        (["-M", "cap-large-decr=on", "-enable-kvm", "-host-cpu", "POWER8"],
         "No large decrementer support\nTry appending -machine cap-large-decr=off"),
        (["-M", "cap-htm=on", "-enable-kvm", "-host-cpu", "POWER7"],
         "KVM implementation does not support Transactional Memory\n"
         "Try appending -machine cap-htm=off"),
        (["-M", "cap-hpt-max-page-size=16M", "-enable-kvm"],
         "Can't support 16384 kiB guest pages with 64 kiB host pages with this KVM "
         "implementation"),
    ],
)  # fmt: skip
def test_kvm_cap_refusals_at_reset(argv: list[str], message: str) -> None:
    setup = startup(parse_argv(argv))
    with pytest.raises(StartupError) as info:
        reset_warnings(setup)
    assert info.value.message == message


def test_caps_defaults_follow_version_and_cpu() -> None:
    setup = startup(parse_argv(["-M", "pseries-2.12", "-cpu", "POWER9", "-M", "cap-htm=off"]))
    assert setup.caps.hpt_max_page_shift == 34  # everything, under TCG
    assert setup.caps.level("large-decr") == 0  # off for <= 3.1
    assert setup.caps.cmdline == frozenset({"htm"})
    kvm = startup(parse_argv(["-M", "pseries-2.12,cap-htm=off", "-enable-kvm"]))
    assert kvm.caps.hpt_max_page_shift == 16  # host pages under KVM-HV
