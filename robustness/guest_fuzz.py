"""Area 2: a hostile guest's RTAS calls and hypercalls.

:class:`HostileGuest` is loaded where the reference guest would be and reaches the
machine only as a guest does (its memory, H_RTAS and the other hypercalls, from
its vCPU threads). Each of its threads makes generated calls: any token (the
registered ones, the rest of QEMU's token range, anything), any ``nargs``/``nret``,
argument words chosen to hit the edges (DRC indexes of every kind, sensor and
indicator numbers, states, addresses at and past the end of guest memory),
argument buffers at and past the end of memory, configure-connector walks out of
order and abandoned, start-cpu on running, stopped and absent vCPUs with any
entry point, stop-self from whichever thread, set-indicator with every bad index
and value, set-time-of-day with any date, CAS with any vector, the XICS
hypercalls with any server and priority, unknown hypercall numbers.

The rules, checked after every call: the hypercall answers with a PAPR hcall
code, the RTAS status word (when the buffer is in memory) is a PAPR status, and
the machine keeps its invariants (:func:`robustness.harness.invariants`). Every
so often the host adds, removes or resets, so calls meet connectors in every
state; at the end the host operations must all work whatever the guest did (its
clock, its buffers, its interrupt set-up must not make them fail).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Generator
from typing import Any

from machine.monitor.control import MachineControl
from robustness.harness import P8E, P8E_CORE, P9, P9_CORE, invariants, new_control
from robustness.report import AreaReport, Progress
from rtas import GuestMemory, encode_call
from rtas.hcalls import EXECUTE, Hcall, HcallReturn
from rtas.tokens import TOKENS_BY_NAME
from spapr.errors import QemuError

Program = Generator[Any, Any, None]
U32 = 0xFFFF_FFFF
#: RTAS statuses a PAPR call may leave in rets[0] (configure-connector's codes included).
PAPR_STATUSES = frozenset({0, 1, 2, 3, 4, 5, -1, -2, -3, -9000, -9001, -9002, -9003, -9005, -9999})
HCALL_CODES = frozenset(int(c) for c in HcallReturn) | {-9005}
STOP_SELF = TOKENS_BY_NAME["stop-self"]
#: Where the guest keeps its buffers (well inside RAM, away from the device tree).
BUFFER_BASE = 0x0100_0000
ENTRY = 0x4000


class Stop(Exception):
    """The run has made the calls it was asked for."""


class HostileGuest:
    """A guest whose every thread makes generated calls (see the module docstring)."""

    entry_point = ENTRY

    def __init__(self, rng: random.Random, check: Callable[[str, Any, str], None]) -> None:
        self.rng = rng
        self.check = check
        self.memory: GuestMemory | None = None
        self.calls = 0
        self.last = ""
        self.drc_indexes: list[int] = []
        self.vcpus: list[int] = [0]

    def attach(self, memory: GuestMemory, timebase: Callable[[], int] | None = None) -> None:
        self.memory = memory

    def program_factory(self, vcpu: int, entry: int, r3: int) -> Program:
        return self._run(vcpu)

    # ------------------------------------------------------------ one thread

    def _run(self, vcpu: int) -> Program:
        while True:
            yield (EXECUTE, self.rng.choice([100, 1000, 20_000]))
            yield from self._one_call(vcpu)

    def _one_call(self, vcpu: int) -> Program:
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:
            yield from self._rtas(vcpu, *self._rtas_request())
        elif kind < 0.60:
            yield from self._walk(vcpu)
        elif kind < 0.70:
            yield from self._indicator(vcpu)
        elif kind < 0.78:
            yield from self._start_stop(vcpu)
        elif kind < 0.82:
            yield from self._clock(vcpu)
        else:
            yield from self._hcall(vcpu)

    def _word(self) -> int:
        rng = self.rng
        ram = self.memory.size if self.memory is not None else 1 << 30
        return rng.choice(
            [
                rng.choice(self.drc_indexes or [0x10000000]),
                0x10000000 | rng.randrange(16),
                0x20000000 | rng.randrange(40),
                0x40000000 | rng.randrange(300),
                rng.choice([9001, 9002, 9003, 9, 9004, 0, 1, 2, 3, 4, 5]),
                rng.choice([ram - 4, ram - 1, ram, ram + 16, U32, 0x7FFFFFFF, 0x80000000]),
                rng.randrange(1 << 32),
                rng.randrange(8),
                -rng.randrange(1, 10),
            ]
        )

    def _buffer(self, vcpu: int, size: int) -> int:
        rng = self.rng
        ram = self.memory.size if self.memory is not None else 1 << 30
        pick = rng.random()
        if pick < 0.7:
            return BUFFER_BASE + (vcpu % 64) * 0x2000 + rng.choice([0, 0, 4, 1, 2])
        if pick < 0.85:
            return ram - rng.randrange(1, size + 16)
        if pick < 0.95:
            return ram + rng.randrange(0, 64)
        return rng.choice([U32, (1 << 64) - 8, 0xF000_0000_0000_0000 | BUFFER_BASE])

    def _rtas_request(self) -> tuple[int, list[int], int]:
        rng = self.rng
        pick = rng.random()
        if pick < 0.6:
            token = int(rng.choice(list(TOKENS_BY_NAME.values())))
        elif pick < 0.8:
            token = 0x2000 + rng.randrange(0x30)
        else:
            token = rng.choice([0, 0xA, rng.randrange(1 << 32)])
        nargs = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, rng.randrange(17)])
        nret = rng.choice([0, 1, 2, 3, 4, rng.randrange(17)])
        return token, [self._word() for _ in range(nargs)], nret

    def _rtas(self, vcpu: int, token: int, args: list[int], nret: int) -> Program:
        """Write the buffer (where it fits), H_RTAS, check the codes."""
        memory = self.memory
        assert memory is not None
        addr = self._buffer(vcpu, 12 + 4 * (len(args) + nret))
        if self.rng.random() < 0.03:
            nargs_word, nret_word = self.rng.choice([(255, 255), (U32, 1), (1, U32)])
            header = [token, nargs_word, nret_word]
            self.last = f"H_RTAS at {addr:#x}: raw header {header}"
            with contextlib.suppress(Exception):
                for i, word in enumerate(header):
                    memory.st32(addr + 4 * i, word & U32)
        else:
            self.last = f"H_RTAS at {addr:#x}: token {token:#x} args {args} nret {nret}"
            # a buffer past the end: the hypercall meets whatever is there
            with contextlib.suppress(Exception):
                encode_call(memory, addr, token, [a & U32 for a in args], nret)
        what = self.last
        result = yield (Hcall.KVMPPC_H_RTAS, addr)
        self._note_hcall(result, what)
        return result

    def _walk(self, vcpu: int) -> Program:
        """configure-connector steps on one DRC, out of order, abandoned at any point."""
        rng = self.rng
        memory = self.memory
        assert memory is not None
        index = rng.choice(self.drc_indexes or [0x10000001])
        wa = (
            BUFFER_BASE + 0x100000 + (vcpu % 64) * 0x2000
            if rng.random() < 0.8
            else self._buffer(vcpu, 4096)
        )
        with contextlib.suppress(Exception):
            memory.st32(wa, index)
        cc = TOKENS_BY_NAME["ibm,configure-connector"]
        for _ in range(rng.randrange(1, 40)):
            if rng.random() < 0.1:
                yield from self._indicator(vcpu, index)
            yield from self._rtas(vcpu, cc, [wa & U32, rng.choice([0, wa >> 32, 1])], 1)

    def _indicator(self, vcpu: int, index: int | None = None) -> Program:
        rng = self.rng
        index = index if index is not None else self._word()
        kind = rng.choice([9001, 9002, 9003, 9, 9004, 0, U32, rng.randrange(1 << 32)])
        value = rng.choice([0, 1, 2, 3, 4, 5, U32, 0x80000000, rng.randrange(1 << 32)])
        if rng.random() < 0.5:
            token, args, nret = TOKENS_BY_NAME["set-indicator"], [kind, index, value], 1
        else:
            token, args, nret = TOKENS_BY_NAME["get-sensor-state"], [kind, index], 2
        yield from self._rtas(vcpu, token, args, nret)

    def _start_stop(self, vcpu: int) -> Program:
        rng = self.rng
        if rng.random() < 0.15:
            yield from self._rtas(vcpu, TOKENS_BY_NAME["stop-self"], [], 0)
            return
        target = rng.choice([*self.vcpus, 0, 1, 2, 3, 7, 8, 0x7FFFFFFF, U32])
        entry = rng.choice([ENTRY, 0, 0x100, U32, rng.randrange(1 << 32)])
        if rng.random() < 0.7:
            yield from self._rtas(
                vcpu, TOKENS_BY_NAME["start-cpu"], [target, entry, rng.randrange(1 << 32)], 1
            )
        else:
            yield from self._rtas(vcpu, TOKENS_BY_NAME["query-cpu-stopped-state"], [target], 2)

    def _clock(self, vcpu: int) -> Program:
        rng = self.rng
        if rng.random() < 0.3:
            yield from self._rtas(vcpu, TOKENS_BY_NAME["get-time-of-day"], [], 8)
            return
        when = [
            rng.choice([1, 1970, 2016, 9999, 10000, 65535, U32]),
            rng.choice([0, 1, 2, 12, 13]),
            rng.choice([0, 1, 28, 29, 31, 32]),
            rng.choice([0, 23, 24]),
            rng.choice([0, 59, 60]),
            rng.choice([0, 59, 60]),
            rng.choice([0, 999_999_999, U32]),
        ]
        yield from self._rtas(vcpu, TOKENS_BY_NAME["set-time-of-day"], when, 1)

    def _hcall(self, vcpu: int) -> Program:
        rng = self.rng
        server = rng.choice([*self.vcpus, 0, 1, 5, 0x7FFFFFFF, U32, -1])
        pick = rng.randrange(12)
        op: tuple[Any, ...]
        if pick == 0:
            op = (Hcall.H_XIRR,)
        elif pick == 1:
            op = (Hcall.H_XIRR_X,)
        elif pick == 2:
            op = (Hcall.H_EOI, rng.choice([0, 2, 0x1000, 0xFF001001, rng.randrange(1 << 32)]))
        elif pick == 3:
            op = (Hcall.H_CPPR, rng.choice([0, 5, 0xFF, 0x100, -1]))
        elif pick == 4:
            op = (Hcall.H_IPI, server, rng.choice([0, 5, 0xFF, 0x100, -1]))
        elif pick == 5:
            op = (Hcall.H_IPOLL, server)
        elif pick == 6:
            size = rng.choice([0, 16, 4096, 1 << 20])
            # the tree comes back in a region of its own (it would overwrite other buffers)
            reply = rng.choice([BUFFER_BASE + 0x200000, self._buffer(vcpu, size)])
            op = (Hcall.KVMPPC_H_CAS, self._buffer(vcpu, 64), reply, size)
        elif pick == 7:
            op = (Hcall.H_PROD, server)
        elif pick == 8:
            op = (Hcall.H_CEDE,)
        elif pick == 9:
            op = (Hcall.H_CONFER, server, 0)
        elif pick == 10:
            op = (rng.choice([Hcall.H_REGISTER_VPA, Hcall.H_SET_MODE, Hcall.H_JOIN]), 1, 2, 3)
        else:
            op = (rng.choice([4, 0x1000, 0xF001, 0xF003, 0xF004, rng.randrange(1 << 16)]), 0)
        what = self.last = f"hcall {op}"
        result = yield op
        self._note_hcall(result, what)

    def _note_hcall(self, result: Any, what: str) -> None:
        self.calls += 1
        status = result[0] if isinstance(result, tuple) else result
        self.check("hcall", status, what)


def _stand(control: MachineControl, rng: random.Random, core: str, report: AreaReport) -> None:
    """A host operation now and then, so calls meet connectors in every state."""
    machine = control.machine
    pick = rng.random()
    try:
        if pick < 0.5:
            free = [s for s in machine.slots if s.core is None]
            if free:
                slot = rng.choice(free)
                control.device_add(
                    {"driver": core, "id": f"h{slot.core_id}", "core-id": slot.core_id}
                )
        elif pick < 0.9:
            hot = [c for c in machine.cores if c.dev_id is not None]
            if hot:
                control.device_del(rng.choice(hot).dev_id or "")
        else:
            control.system_reset()
    except QemuError:
        pass


def run(report: AreaReport, count: int, seed: int, *, progress: Progress | None = None) -> None:
    """Make ``count`` generated calls on two machines (POWER9 and POWER8E)."""
    rng = random.Random(seed)
    done = 0
    configs = [(P9, P9_CORE), (P8E, P8E_CORE)]
    round_no = 0
    while done < count:
        argv, core = configs[round_no % len(configs)]
        round_no += 1
        done += _one_machine(report, rng, argv, core, min(count - done, 2000), progress, done)


def _one_machine(
    report: AreaReport,
    rng: random.Random,
    argv: list[str],
    core: str,
    calls: int,
    progress: Progress | None,
    done_before: int,
) -> int:
    control = new_control(argv, guest="none")
    machine = control.machine
    problems: list[tuple[str, str]] = []

    def check(kind: str, value: Any, call: str) -> None:
        if kind == "hcall" and value not in HCALL_CODES:
            problems.append((call, f"hypercall returned {value!r}, not a PAPR hcall code"))
        elif kind == "rtas-status" and value not in PAPR_STATUSES:
            problems.append((call, f"RTAS status {value} is not a PAPR status"))
        broken = invariants(machine)
        if broken:
            problems.append((call, "invariant: " + "; ".join(broken)))

    guest = HostileGuest(rng, check)

    def observe(call: Any, status: int, rets: Any) -> None:
        # the status word as the call left it (read by the dispatcher, before any other
        # thread of this guest could write over a buffer it shares)
        # stop-self never returns (QEMU writes no status; the thread just stops)
        if status == HcallReturn.H_SUCCESS and call.nret and rets and call.token != STOP_SELF:
            check("rtas-status", rets[0], guest.last)

    machine.rtas.add_observer(observe)
    guest.drc_indexes = [d.index for d in machine.drcs]
    machine.load_guest(guest)
    control.system_reset()
    made = 0
    while guest.calls < calls:
        before = guest.calls
        guest.vcpus = sorted(machine.threads_by_vcpu)
        try:
            machine.sched.run_until(machine.sched.now + 2_000_000)
        except Exception as exc:
            report.fail("crash", guest.last, f"the machine raised {exc!r}")
            return max(guest.calls, 1)
        made = guest.calls - before
        report.count("guest-call", made)
        for call, problem in problems[:3]:
            report.fail("rule", call, problem)
        problems.clear()
        if progress is not None:
            progress.step(done_before + guest.calls)
        if rng.random() < 0.15 or made == 0:
            _stand(control, rng, core, report)
        if made == 0 and rng.random() < 0.5:
            control.system_reset()  # every thread stopped itself: boot again
    _host_after(report, control, core)
    return guest.calls


def _host_after(report: AreaReport, control: MachineControl, core: str) -> None:
    """Whatever the guest did, host operations work: add every free slot, remove, reset."""
    machine = control.machine
    report.count("host-after")
    try:
        for slot in list(machine.slots):
            if slot.core is None:
                control.device_add(
                    {"driver": core, "id": f"z{slot.core_id}", "core-id": slot.core_id}
                )
        for c in list(machine.cores):
            if c.dev_id is not None:
                control.device_del(c.dev_id)
        control.system_reset()
        machine.query_hotpluggable_cpus()
        broken = invariants(machine)
        if broken:
            report.fail("host-after", "host operations after the guest", "; ".join(broken))
    except Exception as exc:
        report.fail("host-after", "device_add every free slot, device_del, system_reset", repr(exc))
