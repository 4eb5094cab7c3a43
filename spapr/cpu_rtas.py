"""RTAS calls on vCPU threads: query-cpu-stopped-state, start-cpu, stop-self.

QEMU answers from the thread's ``halted`` flag, which is set both for a thread that
never started (or called stop-self) and for an online thread idling in H_CEDE; so a
ceded thread reads as stopped and start-cpu accepts it (protocol.md §4.9–4.11,
§9 item 21). The machine's vCPU scheduler implements :class:`VcpuControl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rtas import RtasCall
from rtas.codes import CpuStoppedState, RtasStatus
from rtas.tokens import RtasToken

RtasRegister = Callable[[int, str, Callable[[RtasCall], None]], None]


class VcpuControl(Protocol):
    """The vCPU operations these calls need from the machine."""

    def find_vcpu(self, vcpu_id: int) -> Any | None:
        """The thread with this vCPU id (hardware thread id), or None."""
        ...

    def is_halted(self, vcpu: Any) -> bool:
        """QEMU's CPUState.halted: stopped, never started, or idle in H_CEDE."""
        ...

    def start_vcpu(self, vcpu: Any, caller: Any, entry: int, r3: int) -> None:
        """Unhalt ``vcpu`` at ``entry`` with r3, copying the caller's mode bits."""
        ...

    def stop_self(self, vcpu: Any) -> None:
        """Halt the calling thread until start-cpu."""
        ...


class CpuRtas:
    """The three vCPU RTAS handlers over a :class:`VcpuControl`."""

    def __init__(self, vcpus: VcpuControl) -> None:
        self.vcpus = vcpus

    def query_cpu_stopped_state(self, call: RtasCall) -> None:
        """nargs 1, nret 2; rets[1] = 0 (STOPPED) when halted else 2 (NOT_STOPPED)."""
        if call.nargs != 1 or call.nret != 2:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        vcpu = self.vcpus.find_vcpu(call.args[0])
        if vcpu is None:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        state = (
            CpuStoppedState.STOPPED if self.vcpus.is_halted(vcpu) else CpuStoppedState.NOT_STOPPED
        )
        call.set_ret(1, state)
        call.set_ret(0, RtasStatus.SUCCESS)

    def start_cpu(self, call: RtasCall) -> None:
        """nargs 3, nret 1: (vcpu id, entry, r3); -3 unknown id, -1 not halted."""
        if call.nargs != 3 or call.nret != 1:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        vcpu_id, entry, r3 = call.args[0], call.args[1], call.args[2]
        vcpu = self.vcpus.find_vcpu(vcpu_id)
        if vcpu is None:
            call.set_ret(0, RtasStatus.PARAM_ERROR)
            return
        if not self.vcpus.is_halted(vcpu):
            call.set_ret(0, RtasStatus.HW_ERROR)
            return
        self.vcpus.start_vcpu(vcpu, call.caller, entry, r3)
        call.set_ret(0, RtasStatus.SUCCESS)

    def stop_self(self, call: RtasCall) -> None:
        """No argument checks and no return value: the caller halts."""
        self.vcpus.stop_self(call.caller)

    def register_rtas(self, register: RtasRegister) -> None:
        """Register the three calls with an RTAS dispatcher."""
        register(
            RtasToken.QUERY_CPU_STOPPED_STATE,
            "query-cpu-stopped-state",
            self.query_cpu_stopped_state,
        )
        register(RtasToken.START_CPU, "start-cpu", self.start_cpu)
        register(RtasToken.STOP_SELF, "stop-self", self.stop_self)
