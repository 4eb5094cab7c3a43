"""The vCPU RTAS handlers as registered, and what start-cpu hands the scheduler.

QEMU 7.2 ``hw/ppc/spapr_rtas.c`` (protocol.md §11): stop-self (0x2007) halts the
*calling* thread and writes no status; start-cpu (0x2006) starts the target with
MSR SF|ME and copies the calling CPU's interrupt endianness (LPCR_ILE) and, on ISA
3.00, its radix/hash mode bits, so the scheduler must be told who called
(``rtas_start_cpu(PowerPCCPU *callcpu, ...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtas import GuestMemory, RtasCall, encode_call
from rtas.codes import RtasStatus
from rtas.tokens import RtasToken
from spapr.cpu_rtas import CpuRtas

ARGS = 0x100
MARK = 0x5A5A5A5A


class Vcpus:
    """VcpuControl over three threads, vCPU ids 0..2; thread 1 is halted."""

    def __init__(self) -> None:
        self.halted = {0: False, 1: True, 2: False}
        self.log: list[tuple[Any, ...]] = []

    def find_vcpu(self, vcpu_id: int) -> Any | None:
        return vcpu_id if vcpu_id in self.halted else None

    def is_halted(self, vcpu: Any) -> bool:
        return self.halted[vcpu]

    def start_vcpu(self, vcpu: Any, caller: Any, entry: int, r3: int) -> None:
        self.log.append(("start", vcpu, caller, entry, r3))
        self.halted[vcpu] = False

    def stop_self(self, vcpu: Any) -> None:
        self.log.append(("stop", vcpu))
        self.halted[vcpu] = True


def registered() -> tuple[Vcpus, dict[int, tuple[str, Callable[[RtasCall[Any]], None]]]]:
    vcpus = Vcpus()
    services: dict[int, tuple[str, Callable[[RtasCall[Any]], None]]] = {}
    CpuRtas(vcpus).register_rtas(lambda t, name, h: services.__setitem__(t, (name, h)))
    return vcpus, services


def make_call(
    memory: GuestMemory, token: int, args: list[int], nret: int, caller: int
) -> tuple[RtasCall[Any], int]:
    encode_call(memory, ARGS, token, args, nret)
    rets = ARGS + 12 + 4 * len(args)
    for i in range(max(nret, 1)):
        memory.st32(rets + 4 * i, MARK)
    return RtasCall.decode(memory, ARGS, caller), rets


def test_the_three_calls_are_registered_under_their_tokens() -> None:
    """0x2005 query-cpu-stopped-state, 0x2006 start-cpu, 0x2007 stop-self."""
    _, services = registered()
    assert {t: name for t, (name, _) in services.items()} == {
        RtasToken.QUERY_CPU_STOPPED_STATE: "query-cpu-stopped-state",
        RtasToken.START_CPU: "start-cpu",
        RtasToken.STOP_SELF: "stop-self",
    }


def test_the_registered_stop_self_halts_the_caller_and_writes_nothing() -> None:
    """stop-self from thread 2 halts thread 2 (the caller, not an argument) and leaves
    the ret word as it was."""
    vcpus, services = registered()
    memory = GuestMemory(0x1000)
    call, rets = make_call(memory, RtasToken.STOP_SELF, [], 1, caller=2)
    services[RtasToken.STOP_SELF][1](call)
    assert vcpus.log == [("stop", 2)]
    assert vcpus.halted[2] is True
    assert memory.ld32(rets) == MARK


def test_start_cpu_tells_the_scheduler_who_called() -> None:
    """start-cpu of halted thread 1 from thread 2: the target, entry and r3 of the
    arguments and the calling thread (whose mode the new thread copies) reach
    start_vcpu; the status is 0."""
    vcpus, services = registered()
    memory = GuestMemory(0x1000)
    call, rets = make_call(memory, RtasToken.START_CPU, [1, 0x4000, 0x1234], 1, caller=2)
    services[RtasToken.START_CPU][1](call)
    assert vcpus.log == [("start", 1, 2, 0x4000, 0x1234)]
    assert memory.ld32(rets) == RtasStatus.SUCCESS
