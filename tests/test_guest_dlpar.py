"""The guest's DLPAR checks and error paths, as Linux 6.1 runs them.

Sources: Linux 6.1 ``arch/powerpc/platforms/pseries/hotplug-cpu.c``
(``dlpar_cpu_add``, ``valid_cpu_drc_index``, ``drc_info_valid_index``,
``dlpar_cpu_exists``, ``dlpar_cpu_remove``) and ``dlpar.c`` (``dlpar_acquire_drc``,
``dlpar_release_drc``, ``dlpar_unisolate_drc``); the ``ibm,drc-info`` layout is
PAPR's (LoPAPR §C.6.5.1: a count, then per entry the type string, the name prefix
string, and five cells: first index, first name suffix, number of sequential
elements, sequential increment, power domain). QEMU 7.2 publishes
``ibm,drc-indexes`` only, so a guest sees ``ibm,drc-info`` only from a platform
that offers it; Linux then trusts it instead of ``ibm,drc-indexes``.

The guest runs on the fake platform of ``tests/test_guest_platform.py`` (QEMU 7.2's
answers); what is checked is what a platform sees (the RTAS calls) and what the
guest prints.
"""

from __future__ import annotations

import struct

import pytest
from test_guest_platform import CPU_DRC_BASE, booted, build_tree

import fdt
from guest import GuestTiming, LinuxGuest, LogLevel
from guest.dlpar import valid_cpu_drc_index

S = 1_000_000_000
QUIET = GuestTiming(event_scan=False)
HOTPLUG_CPU = "pseries-hotplug-cpu: "


def drc_info(*entries: tuple[str, str, int, int, int, int]) -> bytes:
    """An ``ibm,drc-info`` value: (type, prefix, first index, first suffix, count, step)."""
    out = struct.pack(">I", len(entries))
    for kind, prefix, start, suffix, count, step in entries:
        out += kind.encode() + b"\0" + prefix.encode() + b"\0"
        out += struct.pack(">IIIII", start, suffix, count, step, 0xFFFFFFFF)
    return out


def cpus_with(info: bytes | None, indexes: tuple[int, ...] = ()) -> fdt.Node:
    """A /cpus node with the given ``ibm,drc-info`` and ``ibm,drc-indexes``."""
    node = fdt.Node("cpus")
    node.append_property(fdt.Property.cells("ibm,drc-indexes", len(indexes), *indexes))
    if info is not None:
        node.append_property(fdt.Property("ibm,drc-info", info))
    return node


CPU = CPU_DRC_BASE


@pytest.mark.parametrize(
    ("info", "index", "valid"),
    [
        # one CPU entry: indexes start, start + step, ... (count of them)
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU + 3, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU + 4, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1)), CPU - 1, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 8, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 24, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 4, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 8)), CPU + 32, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 1, 1)), CPU, True),
        (drc_info(("CPU", "CPU ", CPU, 0, 1, 1)), CPU + 1, False),
        # an entry with no elements holds nothing
        (drc_info(("CPU", "CPU ", CPU, 0, 0, 1)), CPU, False),
        # a second CPU entry is searched too
        (
            drc_info(("CPU", "CPU ", CPU, 0, 2, 1), ("CPU", "CPU ", CPU + 16, 0, 2, 1)),
            CPU + 17,
            True,
        ),
        # ... but the search stops at the first entry that is not a CPU one
        (drc_info(("MEM", "LMB ", 0x80000000, 0, 4, 1), ("CPU", "CPU ", CPU, 0, 4, 1)), CPU, False),
        # the type is compared on its first three characters only ("CPU" prefix)
        (drc_info(("CPUX", "CPU ", CPU, 0, 4, 1)), CPU + 1, True),
        # no entries, or a value too short for its count or for its cells
        (drc_info(), CPU, False),
        (b"", CPU, False),
        (b"\0\0\0", CPU, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1))[:-1], CPU, False),
        (drc_info(("CPU", "CPU ", CPU, 0, 4, 1))[:8], CPU, False),
        (struct.pack(">I", 2) + drc_info(("CPU", "CPU ", CPU, 0, 1, 1))[4:], CPU, True),
    ],
)
def test_drc_info_decides_which_indexes_are_cpus(info: bytes, index: int, valid: bool) -> None:
    """valid_cpu_drc_index with ``ibm,drc-info``: drc_info_valid_index walks the CPU
    entries (Linux 6.1 hotplug-cpu.c), ignoring ``ibm,drc-indexes`` (which here lists
    every index, so only drc-info can refuse one)."""
    parent = cpus_with(info, indexes=tuple(range(CPU - 1, CPU + 40)))
    assert valid_cpu_drc_index(parent, index) is valid


def test_without_drc_info_the_indexes_list_decides() -> None:
    """No ``ibm,drc-info``: the index must be in ``ibm,drc-indexes``."""
    parent = cpus_with(None, indexes=(CPU, CPU + 1))
    assert valid_cpu_drc_index(parent, CPU + 1)
    assert not valid_cpu_drc_index(parent, CPU + 2)


def tree_with_drc_info(info: bytes) -> fdt.Node:
    tree = build_tree(slots=4, boot_cores=1)
    cpus = tree.find("/cpus")
    assert cpus is not None
    cpus.append_property(fdt.Property("ibm,drc-info", info))
    return tree


def test_add_of_an_index_drc_info_does_not_list_is_refused_before_any_drc_call() -> None:
    """dlpar_cpu_add: an index valid_cpu_drc_index refuses is "Cannot find CPU (drc
    index %x) to add." and -EINVAL, before dlpar_acquire_drc touches the connector."""
    info = drc_info(("CPU", "CPU ", CPU, 0, 2, 1))  # cores 0 and 1 only
    platform, guest = booted(LinuxGuest(timing=QUIET), tree_with_drc_info(info))
    mark = len(platform.calls)
    platform.plug_core(2)
    platform.run(S)
    names = [c.name for c in platform.calls[mark:]]
    assert names == ["check-exception"]
    assert (LogLevel.WARNING, f"{HOTPLUG_CPU}Cannot find CPU (drc index {CPU + 2:x}) to add.") in [
        (e.level, e.text) for e in guest.log.kernel()
    ]
    assert guest.online_cpus() == [0]


def test_add_of_an_index_drc_info_lists_goes_ahead() -> None:
    """The same platform: an index drc-info lists is acquired and comes online."""
    info = drc_info(("CPU", "CPU ", CPU, 0, 4, 1))
    platform, guest = booted(LinuxGuest(timing=QUIET), tree_with_drc_info(info))
    platform.plug_core(2)
    platform.run(S)
    assert guest.online_cpus() == [0, 1]
