"""A guest model with one DLPAR bug, and the kit finding it.

``EarlyReleaseGuest`` is the reference Linux guest with a deliberate mistake of
the kind hand-written DLPAR code makes: as soon as it reads a REMOVE event it
gives the connector back (isolate, then allocation-state unusable) -- before it
has taken the CPU offline, so the core's thread is still running when QEMU
unrealizes it. Linux offlines every thread (stop-self, confirmed with
query-cpu-stopped-state) first (protocol.md §7.2).

Run it with ``pytest docs/examples/broken_guest.py``: the test fails, and
hypothesis prints the shortest sequence it found (docs/conformance.md shows it).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from conformance import HotplugMachine, MachineArgs, ReferenceGuest, kit_settings
from guest import GuestTiming
from rtas import RtasCall, decode_event_log, encode_call
from rtas.errlog import HotplugAction
from rtas.hcalls import Hcall
from rtas.tokens import TOKENS_BY_NAME

#: A scratch RTAS buffer of our own, below where the guest allocates (16 MiB up).
SCRATCH = 0x00F0_0000


class EarlyReleaseGuest(ReferenceGuest):
    """Linux, except that a REMOVE event makes it release the connector at once."""

    def program_factory(self, vcpu_id: int, entry: int, r3: int) -> Generator[Any, Any, Any]:
        return self._release_early(super().program_factory(vcpu_id, entry, r3))

    def _release_early(self, program: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        """Pass the guest's operations through; after a check-exception that returned a
        REMOVE event, first isolate and release that connector (the bug)."""
        assert self.memory is not None
        try:
            op = next(program)
            while True:
                result = yield op
                if op[0] == Hcall.KVMPPC_H_RTAS:
                    call = RtasCall.decode(self.memory, op[1], None)
                    if call.token == TOKENS_BY_NAME["check-exception"] and call.ret(0) == 0:
                        log = decode_event_log(self.memory.read(call.args[4], 116))
                        hotplug = log.hotplug
                        if hotplug is not None and hotplug.action is HotplugAction.REMOVE:
                            for indicator in (9001, 9003):  # isolate, then unusable
                                args = [indicator, hotplug.drc_index or 0, 0]
                                encode_call(
                                    self.memory, SCRATCH, TOKENS_BY_NAME["set-indicator"], args, 1
                                )
                                yield (Hcall.KVMPPC_H_RTAS, SCRATCH)
                op = program.send(result)
        except StopIteration:
            return
        finally:
            program.close()


class EarlyReleaseGuestMachine(HotplugMachine):
    """The kit's machine with this guest booted in it: one boot core, one free slot."""

    machine_args = MachineArgs(cpu="POWER9", cpus=1, cores=2, maxcpus=2)
    settle_limit_ns = 500_000_000  # a stuck guest is given half a second of virtual time

    def make_guest(self) -> EarlyReleaseGuest:
        # Polls for a dying CPU every 10 ms (Linux: 100 us): a guest left waiting for
        # a CPU that is gone costs the search less.
        return EarlyReleaseGuest(timing=GuestTiming(die_poll_ns=10_000_000))


EarlyReleaseGuestMachine.TestCase.settings = kit_settings(max_examples=300, stateful_step_count=20)
TestEarlyReleaseGuest = EarlyReleaseGuestMachine.TestCase
