"""lscpu, numactl -H and sysfs cpulists as the guest prints them."""

from __future__ import annotations

from test_guest_platform import booted, build_tree, oracle_tree

from guest import GuestTiming, LinuxGuest

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)


def field(lines: list[str], label: str) -> str:
    """The value of one lscpu row."""
    (line,) = [line for line in lines if line.startswith(label)]
    return line[len(label) :].strip()


def test_lscpu_after_a_hot_add_on_the_p9_oracle_tree() -> None:
    platform, guest = booted(LinuxGuest(timing=QUIET), oracle_tree("p9_classic"))
    platform.plug_core(2)
    platform.run(S)
    lines = guest.lscpu()
    assert lines[:8] == [
        "Architecture:        ppc64le",
        "Byte Order:          Little Endian",
        "CPU(s):              3",
        "On-line CPU(s) list: 0-2",
        "Thread(s) per core:  1",
        "Core(s) per socket:  3",
        "Socket(s):           1",
        "NUMA node(s):        1",
    ]
    assert field(lines, "Model:") == "2.0 (pvr 004e 1200)"
    # The fake platform keeps the raw PVR in cpu-version (no compat mode at CAS), so
    # Linux names the CPU from its real PVR; on the machine it reads "(architected)".
    assert field(lines, "Model name:") == "POWER9 (raw), altivec supported"
    assert field(lines, "NUMA node0 CPU(s):") == "0-2"
    assert all(line[20] == " " and line[21] != " " for line in lines)


def test_lscpu_smt4_two_sockets_and_an_offline_thread() -> None:
    platform, guest = booted(
        LinuxGuest(timing=QUIET),
        build_tree(slots=4, boot_cores=2, threads=4, cores_per_socket=1),
        threads=4,
    )
    guest.request_cpu_offline(5)
    platform.run(2 * S)
    lines = guest.lscpu()
    assert field(lines, "CPU(s):") == "8"
    assert field(lines, "On-line CPU(s) list:") == "0-4,6-7"
    assert field(lines, "Off-line CPU(s) list:") == "5"
    assert field(lines, "Thread(s) per core:") == "3"  # 7 online threads over 2 cores
    assert field(lines, "Core(s) per socket:") == "1"
    assert field(lines, "Socket(s):") == "2"
    assert guest.sys_cpu_online() == "0-4,6-7"
    assert guest.sys_cpu_present() == "0-7"
    assert guest.sys_cpu_possible() == "0-15"


def test_numactl_single_node() -> None:
    _platform, guest = booted(LinuxGuest(timing=QUIET), oracle_tree("p9_classic"))
    assert guest.numactl_hardware() == [
        "available: 1 nodes (0)",
        "node 0 cpus: 0 1",
        "node 0 size: 1024 MB",
        "node 0 free: 1024 MB",
        "node distances:",
        "node   0 ",
        "  0:  10 ",
    ]


def test_numa_tree_hot_add_follows_linux_per_node_id_memory() -> None:
    # -numa node,cpus=0,cpus=2 / node,cpus=1,cpus=3: slot i is on node i % 2.
    platform, guest = booted(
        LinuxGuest(timing=QUIET), oracle_tree("p8e_numa_cpus"), node_of_slot=lambda s: s % 2
    )
    assert guest.numactl_hardware()[:7] == [
        "available: 2 nodes (0-1)",
        "node 0 cpus: 0",
        "node 0 size: 512 MB",
        "node 0 free: 512 MB",
        "node 1 cpus: 1",
        "node 1 size: 512 MB",
        "node 1 free: 512 MB",
    ]
    assert guest.numactl_hardware()[-3:] == ["node   0   1 ", "  0:  10  20 ", "  1:  20  10 "]
    platform.plug_core(3)  # node 1 -> first free id not recorded for node 0: 2
    platform.run(S)
    assert guest.hwids()[2] == 3
    assert "node 1 cpus: 1 2" in guest.numactl_hardware()
    platform.unplug_core(3)
    platform.run(S)
    platform.plug_core(2)  # node 0 -> id 2 is remembered for node 1, so 3
    platform.run(S)
    assert guest.hwids() == {0: 0, 1: 1, 3: 2}
    assert "node 0 cpus: 0 3" in guest.numactl_hardware()
    lines = guest.lscpu()
    assert field(lines, "NUMA node(s):") == "2"
    assert field(lines, "NUMA node0 CPU(s):") == "0,3"
    assert field(lines, "NUMA node1 CPU(s):") == "1"


def test_dmesg_lines_carry_virtual_timestamps() -> None:
    platform, guest = booted(LinuxGuest(timing=QUIET), build_tree(slots=2, boot_cores=1))
    platform.unplug_core(0)
    platform.run(S)
    line = next(d for d in guest.dmesg() if "Unable to remove last online CPU" in d)
    seconds = float(line[1:13])
    assert 2.0 <= seconds < 3.0
