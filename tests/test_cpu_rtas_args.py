"""The vCPU RTAS calls' own checks, through guest memory and H_RTAS on the machine.

QEMU 7.2 ``hw/ppc/spapr_rtas.c`` (protocol.md §11): query-cpu-stopped-state needs
nargs 1 and nret 2, start-cpu nargs 3 and nret 1, else rets[0] = -3 (and nothing
else happens); an id no thread has is -3; start-cpu of a thread that is not halted
is -1 (HW_ERROR). Each status lands in rets[0] of the caller's buffer, which is
filled with a marker first so that "not written" cannot pass for 0.
"""

from __future__ import annotations

import io
from collections.abc import Generator
from typing import Any

import pytest
from guest_calls import ARGS_ADDR

from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine
from rtas import encode_call
from rtas.hcalls import EXECUTE, Hcall
from rtas.tokens import TOKENS_BY_NAME

ARGV = (
    "-M pseries -cpu POWER9 -smp 1,cores=4,threads=1,maxcpus=4 -m 1G -nographic "
    "-display none -nodefaults -S -seed 1 -guest none"
).split()
ENTRY = 0x4000
MARK = 0x5A5A5A5A


def idle(vcpu: int, entry: int, r3: int) -> Generator[Any, Any, None]:
    yield (EXECUTE, 1000)
    while True:
        yield (Hcall.H_CEDE,)


def machine_with_core_1() -> PseriesMachine:
    machine = build_machine(ARGV, io.StringIO())
    machine.guest_program_factory = idle
    machine.reset()
    machine.device_add({"driver": "power9_v2.0-spapr-cpu-core", "id": "c1", "core-id": 1})
    return machine


def call(machine: PseriesMachine, name: str, args: list[int], nret: int) -> list[int]:
    """One call from thread 0 with every ret word pre-set to MARK; the ret words after."""
    memory = machine.memory
    encode_call(memory, ARGS_ADDR, TOKENS_BY_NAME[name], args, nret)
    rets = ARGS_ADDR + 12 + 4 * len(args)
    for i in range(max(nret, 3)):
        memory.st32(rets + 4 * i, MARK)
    machine._hcall(0, Hcall.KVMPPC_H_RTAS, (ARGS_ADDR,))
    return [memory.ld32(rets + 4 * i) for i in range(max(nret, 3))]


def signed(word: int) -> int:
    return word - (1 << 32) if word & 0x80000000 else word


@pytest.mark.parametrize(("args", "nret"), [([1, 0], 2), ([], 2), ([1], 1), ([1], 3)])
def test_query_cpu_stopped_state_with_the_wrong_counts_is_minus_3(
    args: list[int], nret: int
) -> None:
    machine = machine_with_core_1()
    rets = call(machine, "query-cpu-stopped-state", args, nret)
    assert signed(rets[0]) == -3
    assert rets[1:] == [MARK] * (len(rets) - 1)


def test_query_cpu_stopped_state_answers_status_and_state() -> None:
    machine = machine_with_core_1()
    assert call(machine, "query-cpu-stopped-state", [1], 2)[:3] == [0, 0, MARK]  # halted
    assert signed(call(machine, "query-cpu-stopped-state", [7], 2)[0]) == -3
    assert call(machine, "query-cpu-stopped-state", [7], 2)[1] == MARK


@pytest.mark.parametrize(
    ("args", "nret"),
    [([1, ENTRY], 1), ([1, ENTRY, 1, 0], 1), ([1, ENTRY, 1], 2), ([1, ENTRY, 1], 0)],
)
def test_start_cpu_with_the_wrong_counts_is_minus_3_and_starts_nothing(
    args: list[int], nret: int
) -> None:
    machine = machine_with_core_1()
    rets = call(machine, "start-cpu", args, nret)
    if nret:
        assert signed(rets[0]) == -3
    assert rets[max(nret, 1) :] == [MARK] * (len(rets) - max(nret, 1))
    assert call(machine, "query-cpu-stopped-state", [1], 2)[:2] == [0, 0]  # still halted


def test_start_cpu_writes_its_status_and_refuses_a_running_thread() -> None:
    machine = machine_with_core_1()
    assert signed(call(machine, "start-cpu", [9, ENTRY, 9], 1)[0]) == -3  # no such thread
    assert call(machine, "start-cpu", [1, ENTRY, 1], 1)[:2] == [0, MARK]
    assert call(machine, "query-cpu-stopped-state", [1], 2)[:2] == [0, 2]  # running
    assert signed(call(machine, "start-cpu", [1, ENTRY, 1], 1)[0]) == -1
