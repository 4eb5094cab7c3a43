"""``-smp``: key checks, completion of missing values and QEMU 7.2's refusals.

Expected topologies come from the rules of protocol.md §1.1 (and QEMU's
``machine_parse_smp_config``), written out here; refusal texts from the oracle.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machine.config.machine_types import find_machine
from machine.config.qemu_opts import QemuWarning, parse_keyval
from machine.config.smp import (
    ZERO_VALUE_WARNING,
    SmpRequest,
    SmpTopology,
    read_smp_keys,
    resolve_smp,
)
from spapr.errors import QemuError

P72 = find_machine("pseries")
P61 = find_machine("pseries-6.1")


def smp(text: str, machine: str = "pseries") -> SmpTopology:
    return resolve_smp(read_smp_keys(parse_keyval(text, "cpus").values), find_machine(machine))


def shape(topo: SmpTopology) -> tuple[int, int, int, int, int]:
    return topo.sockets, topo.cores, topo.threads, topo.cpus, topo.max_cpus


@pytest.mark.parametrize(
    ("text", "machine", "expected"),
    [
        # cpus and maxcpus given: 7.2 prefers cores, sockets and threads default to 1.
        ("1,maxcpus=4", "pseries", (1, 4, 1, 1, 4)),
        ("2,maxcpus=8,sockets=2", "pseries", (2, 4, 1, 2, 8)),
        ("2,cores=4,threads=1,maxcpus=8", "pseries", (2, 4, 1, 2, 8)),
        ("8,maxcpus=32,threads=8", "pseries", (1, 4, 8, 8, 32)),
        # pseries-6.1 and older prefer sockets.
        ("1,maxcpus=4", "pseries-6.1", (4, 1, 1, 1, 4)),
        ("2,maxcpus=8,cores=2", "pseries-6.1", (4, 2, 1, 2, 8)),
        ("2,maxcpus=8,sockets=2", "pseries-6.1", (2, 4, 1, 2, 8)),
        # Neither cpus nor maxcpus: missing values are 1, maxcpus is the product.
        ("sockets=2,cores=3", "pseries", (2, 3, 1, 6, 6)),
        ("threads=2", "pseries", (1, 1, 2, 2, 2)),
        # Only maxcpus: cpus follows it.
        ("maxcpus=4", "pseries", (1, 4, 1, 4, 4)),
        # Threads computed last.
        ("4,sockets=2,cores=1", "pseries", (2, 1, 2, 4, 4)),
        # Base 0 numbers, as strtoll reads them.
        ("0x4,maxcpus=010", "pseries", (1, 8, 1, 4, 8)),
    ],
)
def test_completion(text: str, machine: str, expected: tuple[int, ...]) -> None:
    assert shape(smp(text, machine)) == expected


def test_zero_values_only_warn() -> None:
    warnings: list[QemuWarning] = []
    topo = resolve_smp(SmpRequest(cpus=0), P72, warnings)
    assert [w.message for w in warnings] == [ZERO_VALUE_WARNING]
    assert shape(topo) == (1, 1, 1, 1, 1)


def test_no_smp_is_the_machine_default() -> None:
    assert shape(SmpTopology.machine_default(P72)) == (1, 1, 1, 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4,maxcpus=2", "Invalid CPU topology: maxcpus must be equal to or greater than smp: "
         "sockets (1) * cores (2) * threads (1) == maxcpus (2) < smp_cpus (4)"),
        ("2,sockets=2,cores=4,threads=1,maxcpus=4", "Invalid CPU topology: product of the "
         "hierarchy must match maxcpus: sockets (2) * cores (4) * threads (1) != maxcpus (4)"),
        ("5,cores=4,threads=1", "Invalid CPU topology: product of the hierarchy must match "
         "maxcpus: sockets (1) * cores (4) * threads (1) != maxcpus (5)"),
        ("2,dies=2", "dies not supported by this machine's CPU topology"),
        ("2,clusters=2", "clusters not supported by this machine's CPU topology"),
        ("1,cores=4097,threads=1,maxcpus=4097",
         "Invalid SMP CPUs 4097. The max CPUs supported by machine 'pseries-7.2' is 4096"),
    ],
)  # fmt: skip
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(QemuError) as info:
        smp(text)
    assert info.value.message == message


def test_values_are_32_bit_after_reading() -> None:
    # 4294967297 = 2**32 + 1: QEMU keeps the low 32 bits.
    assert smp("4294967297").cpus == 1


def test_max_cpus_is_per_machine_name() -> None:
    with pytest.raises(QemuError) as info:
        smp("4097", "pseries-2.1")
    assert info.value.message.endswith("machine 'pseries-2.1' is 4096")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cores=x", "Parameter 'smp.cores' expects integer"),
        ("2,foo=3", "Parameter 'smp.foo' is unexpected"),
        ("cpus=1.5", "Parameter 'smp.cpus' expects integer"),
        ("cpus.x=1", "Parameters 'smp.cpus.*' are unexpected"),
    ],
)
def test_key_errors(text: str, message: str) -> None:
    with pytest.raises(QemuError) as info:
        read_smp_keys(parse_keyval(text, "cpus").values)
    assert info.value.message == message


def test_type_errors_come_in_declaration_order() -> None:
    # cpus is visited before maxcpus whatever the order on the command line.
    with pytest.raises(QemuError) as info:
        read_smp_keys(parse_keyval("maxcpus=y,cpus=x", "cpus").values)
    assert info.value.message == "Parameter 'smp.cpus' expects integer"


small = st.one_of(st.none(), st.integers(0, 12))


@given(cpus=small, sockets=small, cores=small, threads=small, maxcpus=small, old=st.booleans())
def test_accepted_topologies_are_consistent(
    cpus: int | None,
    sockets: int | None,
    cores: int | None,
    threads: int | None,
    maxcpus: int | None,
    old: bool,
) -> None:
    request = SmpRequest(cpus=cpus, sockets=sockets, cores=cores, threads=threads, maxcpus=maxcpus)
    try:
        topo = resolve_smp(request, P61 if old else P72)
    except QemuError as err:
        assert err.message.startswith("Invalid CPU topology") or "Invalid SMP CPUs" in err.message
        return
    assert topo.sockets * topo.cores * topo.threads == topo.max_cpus >= topo.cpus >= 1
    # Explicit non-zero values are kept.
    for given_value, got in (
        (cpus, topo.cpus),
        (sockets, topo.sockets),
        (cores, topo.cores),
        (threads, topo.threads),
        (maxcpus, topo.max_cpus),
    ):
        if given_value:
            assert got == given_value
