"""HotplugMachine: a hypothesis state machine over one emulated pseries machine.

The machine is driven the way a management stack and a guest drive QEMU: host
operations (device_add, device_del, system_reset, stop, cont, migration, time
passing) and the guest's own steps -- either a loaded guest running on virtual
time (the reference Linux guest by default, or a user's :class:`~conformance.protocols.Guest`),
or, with no guest loaded, the rules themselves making raw RTAS calls as a buggy or
hostile guest would. After every step the invariants are checked (see
docs/conformance.md for where each comes from):

* no core lost or duplicated, and every core that disappears was announced by
  exactly one DEVICE_DELETED;
* every CPU connector in a state of the PAPR table (spapr/drc.py's), answering
  every call as QEMU 7.2's connector does, and never giving a core back before all
  its threads stopped;
* query-hotpluggable-cpus, the QOM tree and the device tree agree;
* once quiet, the guest's online CPUs are the machine's threads;
* once quiet, every device_del has ended in DEVICE_DELETED or DEVICE_UNPLUG_GUEST_ERROR;
* the event queue holds no more entries than hotplug requests were made, and RTAS
  never writes outside the buffers it was given.

Expected refusals are asserted with QEMU 7.2's error class and text, computed by
an independent model of QEMU's checks (:meth:`HotplugMachine.expected_device_add`,
:meth:`HotplugMachine.expected_device_del`), never swallowed.

Users subclass it: set :attr:`HotplugMachine.machine_args`, override
:meth:`HotplugMachine.make_guest` or :attr:`HotplugMachine.connector_factory`, add
rules and invariants, override any of them. Everything is deterministic (``-seed 1``,
virtual time), so a failing example replays from hypothesis's seed and database.
"""

from __future__ import annotations

import copy
import io
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conformance.config import MachineArgs
from conformance.connectors import install_connectors
from conformance.guests import guest_booted, idle_program, online_hwids, reference_guest
from conformance.protocols import ConnectorFactory, Guest
from conformance.strategies import P9_CLASSIC, GuestBehaviour, Refusal
from machine.board.build import build_machine
from machine.board.pseries import PseriesMachine, QmpEvent
from machine.migration.replay import incoming_machine_and_stream, runstate_after_incoming
from machine.monitor.control import MachineControl
from machine.sched import VcpuState
from rtas import encode_call, read_rets
from rtas.codes import ConfigureConnector
from rtas.hcalls import HcallReturn
from rtas.tokens import TOKENS_BY_NAME, service_name
from spapr.cpu_core import SpaprCpuCore
from spapr.cpu_models import ABSTRACT_CORE_TYPE, by_core_type
from spapr.drc import DRC, LOGICAL
from spapr.errors import QemuError
from spapr.ovec import OV5_HP_EVT, OptionVector

#: Statuses QEMU 7.2's RTAS calls leave in rets[0] (configure-connector's codes included).
PAPR_STATUSES = frozenset({0, 1, 2, 3, 4, -1, -2, -3, -9002, -9003, -9005, -9999})
#: Scratch areas of the kit's own RTAS calls (guest physical addresses).
ARGS_ADDR = 0x0200_0000
WORK_AREA = 0x0200_1000
ERRLOG_BUF = 0x0200_3000
CAS_VECTOR = 0x0200_6000
CAS_FDT_BUF = 0x0201_0000
#: What RTAS may write at most: configure-connector's work area, rtas-error-log-max.
WORK_AREA_SIZE = 4096
ERRLOG_MAX = 2048
CANARY = b"\xa5\x5a\xc3\x3c"
#: Rets QEMU 7.2 writes whatever nret says: rets[0] always (even with nret 0), and
#: get-sensor-state also rets[1] (rtas_get_sensor_state's ``out:`` path).
RETS_ALWAYS_WRITTEN = {"get-sensor-state": 2}
#: Symbolic device_del targets the rule draws; :meth:`HotplugMachine.resolve_target` maps them.
DEL_TARGETS = (
    "added",
    "added",
    "c1",
    "c2",
    "c3",
    "boot0",
    "boot1",
    "boot-last",
    "anon0",
    "anon1",
    "cold",
    "nope",
    "/machine/peripheral",
)
#: How a valid core-id is spelled in device_add (all read as the same core-id by QEMU).
SPELLINGS = ("int", "str", "hex", "wrapped", "float")
#: The one rule an invalid device_add breaks.
FAULTS = (
    "unknown-driver",
    "cpu-model-name",
    "abstract-driver",
    "wrong-core-type",
    "bad-id",
    "negative-core-id",
    "non-integer-core-id",
    "out-of-range",
    "nr-threads",
    "node-id",
    "unknown-property",
    "read-only-property",
)
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*\Z")
#: Well-formed DLPAR steps the scripted guest takes on a slot's connector, in any order
#: (Linux's order for an add: sense, acquire, unisolate, configure, start; for a
#: remove: stop, isolate, release -- protocol.md §7.1, §7.2).
DLPAR_STEPS = (
    "check-exception",
    "sense",
    "acquire",
    "unisolate",
    "configure",
    "start",
    "stop",
    "isolate",
    "release",
)
#: A connector argument: small numbers name a slot's CPU connector, others are raw indexes.
CONNECTORS = st.one_of(
    st.integers(0, 7), st.integers(0, 7), st.integers(0, 7), st.integers(0, 0xFFFFFFFF)
)


def kit_settings(**overrides: Any) -> settings:
    """The kit's hypothesis settings on top of the profile loaded now, with ``overrides``.

    No deadline (virtual time; busy CI machines), no "explain" phase (it re-runs a
    slow example hundreds of times), the slow-test health checks off, 30 steps and
    50 examples unless overridden. Every :class:`HotplugMachine` subclass starts
    with these; a ``@settings(...)`` on the subclass replaces them.
    """
    values: dict[str, Any] = {
        "deadline": None,
        "phases": (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        "suppress_health_check": (HealthCheck.too_slow, HealthCheck.data_too_large),
        "stateful_step_count": 30,
        "max_examples": 50,
    }
    values.update(overrides)
    return settings(**values)


@attrs.define
class HostModel:
    """The kit's own account of the host side: which cores exist, their ids and paths.

    Kept from the commands' outcomes and the QMP events alone, independently of
    the emulator's internals, so refusals can be predicted.
    """

    #: QOM path -> core-id of every core the machine has.
    present: dict[str, int] = attrs.field(factory=dict)
    #: qdev id -> QOM path (cores under /machine/peripheral).
    ids: dict[str, str] = attrs.field(factory=dict)
    #: QOM paths of boot cores (slot order).
    boot: list[str] = attrs.field(factory=list)
    #: Paths DEVICE_DELETED announced (checked and consumed by the invariants).
    deleted: list[str] = attrs.field(factory=list)
    #: Accepted device_del of cores still waiting for DEVICE_DELETED or a guest refusal.
    pending_unplug: set[str] = attrs.field(factory=set)
    #: Hotplug requests (ADD/REMOVE events queued) since the queue was last emptied.
    requests_since_clear: int = 0
    #: QOM path of the core device_add created last.
    added: str | None = None


class HotplugMachine(RuleBasedStateMachine):
    """One emulated pseries machine under host operations and guest steps, checked every step.

    Class attributes a subclass sets: :attr:`machine_args` (the command line),
    :attr:`guest_behaviour` (the reference guest's behaviour; None: no guest, the
    rules make raw RTAS calls), :attr:`connector_factory` (the CPU connector
    implementation), :attr:`compare_connectors` (check every connector call
    against QEMU 7.2's), :attr:`settle_limit_ns`. Methods a subclass overrides:
    :meth:`make_guest` (bring your own guest model), the ``expected_*`` models,
    any rule or invariant.
    """

    machine_args: ClassVar[MachineArgs] = P9_CLASSIC
    guest_behaviour: ClassVar[GuestBehaviour | None] = GuestBehaviour()
    connector_factory: ClassVar[ConnectorFactory] = DRC
    compare_connectors: ClassVar[bool] = True
    #: With no guest loaded, also make raw hostile RTAS calls (any token, index,
    #: nargs/nret, buffer place); False keeps to well-formed DLPAR steps in any order.
    hostile_rtas: ClassVar[bool] = True
    #: Keep the machine's trace events in memory (for a test that reads them; costs time).
    keep_trace: ClassVar[bool] = False
    #: Longest virtual time one settle step lets the guest run before giving up.
    settle_limit_ns: ClassVar[int] = 2_000_000_000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TestCase.settings = kit_settings()

    def __init__(self) -> None:
        super().__init__()
        self.config = self.machine_args
        self.err = io.StringIO()
        self._tmp: Path | None = None
        self.guest: Guest | None = self.make_guest()
        self.guest_option = self._guest_option()
        argv = [
            *self.config.argv(),
            "-nodefaults",
            "-seed",
            "1",
            "-guest",
            self.guest_option or "none",
        ]
        self.argv = argv
        machine = build_machine(argv, self.err)
        machine.trace.keep = self.keep_trace
        if self.guest is not None:
            # The guest built from -guest is replaced by ours (the same behaviour), so
            # a migration target, rebuilding from -guest, still matches it.
            machine.load_guest(self.guest)
        else:
            machine.guest_program_factory = idle_program
        machine.reset()
        self.model = HostModel()
        self.quiet = False
        self._tree_checked: Any = None
        self._attach(machine, MachineControl(machine, warn=lambda line: None))
        self.model.boot = [
            c.qom_path for c in machine.cores if c.qom_path.startswith("/machine/unattached/")
        ]
        for core in machine.cores:
            self.model.present[core.qom_path] = core.core_id
            if core.dev_id is not None:
                self.model.ids[core.dev_id] = core.qom_path

    # ------------------------------------------------------------ set-up a subclass changes

    def make_guest(self) -> Guest | None:
        """The guest to boot: by default the reference guest with :attr:`guest_behaviour`.

        Return your own :class:`~conformance.protocols.Guest` to run it against the
        machine, or None for no guest (the RTAS rules then play a hostile guest).
        """
        if self.guest_behaviour is None:
            return None
        return reference_guest(self.guest_behaviour)

    def _guest_option(self) -> str | None:
        """The ``-guest`` spelling when the guest is the reference one made from options."""
        if self.guest is None or self.guest_behaviour is None:
            return None
        if type(self).make_guest is not HotplugMachine.make_guest:
            return None
        return self.guest_behaviour.option()

    def _attach(self, machine: PseriesMachine, control: MachineControl) -> None:
        self.machine = machine
        self.control = control
        machine.event_listeners.append(self._on_event)
        self.connectors = install_connectors(
            machine, type(self).connector_factory, compare=self.compare_connectors
        )

    @property
    def scripted(self) -> bool:
        """No guest is loaded: the RTAS rules act as the guest."""
        return self.guest is None

    @property
    def hostile(self) -> bool:
        """The raw hostile RTAS rules apply (no guest loaded, :attr:`hostile_rtas` set)."""
        return self.guest is None and self.hostile_rtas

    def teardown(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------ events

    def _on_event(self, event: QmpEvent) -> None:
        data = event.data
        if event.name == "DEVICE_DELETED":
            path = str(data.get("path", ""))
            if path in self.model.present:
                self.model.deleted.append(path)
                self.model.pending_unplug.discard(path)
        elif event.name == "DEVICE_UNPLUG_GUEST_ERROR":
            self.model.pending_unplug.discard(str(data.get("path", "")))
        elif event.name == "RESET":
            self.model.requests_since_clear = 0

    # ------------------------------------------------------------ the model of QEMU's checks

    def expected_device_add(self, args: Mapping[str, Any]) -> Refusal | None:
        """QEMU 7.2's refusal of a device_add on this machine now, or None if it is accepted.

        In qdev_device_add's order: the id's syntax, the driver, a duplicate id, each
        property's setter, then spapr_core_pre_plug's checks (type, core-id alignment,
        nr-threads, slot range, slot taken, node-id). Texts: tests/data/errors/qmp_errors.json.
        """
        g = Refusal.generic
        dev_id = args.get("id")
        if dev_id is not None and not _IDENT.match(str(dev_id)):
            return g("Parameter 'id' expects an identifier")
        driver = args.get("driver")
        if driver is None:
            return g("Parameter 'driver' is missing")
        if driver == ABSTRACT_CORE_TYPE:
            return g("Parameter 'driver' expects a non-abstract device type")
        if by_core_type(str(driver)) is None and driver != self.config.core_type:
            return g(f"'{driver}' is not a valid device model name")
        if dev_id is not None and dev_id in self.model.ids:
            return g(f"Duplicate device ID '{dev_id}'")
        shown_type = str(driver)
        core_id, nr_threads, node_id = 0, self.config.threads, -1
        for name, value in args.items():
            if name in ("driver", "id"):
                continue
            if name in ("hotplugged", "hotpluggable", "parent_bus", "type", "realized"):
                return g(f"Property '{shown_type}.{name}' is not writable")
            if name not in ("core-id", "nr-threads", "node-id"):
                return g(f"Property '{shown_type}.{name}' not found")
            number = _qemu_int(value)
            if number is None:
                return g(f"Parameter '{name}' expects integer")
            if name == "core-id":
                if number < 0:
                    return g(f"Invalid core id {number}")
                core_id = _wrap32(number)
            elif name == "nr-threads":
                nr_threads = _wrap32(number)
            else:
                node_id = number
        if driver != self.config.core_type:
            return g(f"CPU core type should be {self.config.core_type}")
        if (core_id & 0xFFFFFFFF) % self.config.threads:
            return g(f"invalid core id {core_id}")
        if nr_threads != self.config.threads:
            return g(f"invalid nr-threads {nr_threads}, must be {self.config.threads}")
        slot = (core_id & 0xFFFFFFFF) // self.config.threads
        if slot >= self.config.max_cores:
            return g(f"core id {core_id} out of range")
        if core_id in self.model.present.values():
            return g(f"core {core_id} already populated")
        right = self.config.node_of(core_id)
        if node_id not in (-1, right):
            return g(f"invalid node-id, must be {right}")
        return None

    def expected_device_del(self, target: str) -> Refusal | None:
        """QEMU 7.2's refusal of device_del of ``target`` now, or None if it is accepted.

        qmp_device_del resolves an id under /machine/peripheral or an absolute path
        (DeviceNotFound), refuses what is not a device, then spapr's unplug request
        refuses the boot core (core-id 0). A pending unplug is accepted again.
        """
        path = target if target.startswith("/") else self.model.ids.get(target)
        if target == "/machine/peripheral":
            return Refusal.generic(f"{target} is not a hotpluggable device")
        if path is None or path not in self.model.present:
            return Refusal("DeviceNotFound", f"Device '{target}' not found")
        if self.model.present[path] == 0:
            return Refusal.generic("Boot CPU core may not be unplugged")
        return None

    # ------------------------------------------------------------ host operations

    def core_args(
        self, slot: int, dev_id: str | None, spelling: str, fault: str | None
    ) -> dict[str, Any]:
        """device_add arguments for slot ``slot`` (modulo the slots), spelled, broken as asked."""
        config = self.config
        core_id = config.core_ids[slot % config.max_cores]
        spelled: Any = {
            "int": core_id,
            "str": str(core_id),
            "hex": hex(core_id),
            "wrapped": core_id + (1 << 32),
            "float": float(core_id),
        }[spelling]
        args: dict[str, Any] = {"driver": config.core_type}
        if dev_id is not None:
            args["id"] = dev_id
        args["core-id"] = spelled
        if fault is None:
            return args
        if fault == "unknown-driver":
            args["driver"] = "nope"
        elif fault == "cpu-model-name":
            args["driver"] = f"{config.cpu.upper()}-spapr-cpu-core"
        elif fault == "abstract-driver":
            args["driver"] = ABSTRACT_CORE_TYPE
        elif fault == "wrong-core-type":
            other = "power8e_v2.1-spapr-cpu-core"
            args["driver"] = other if other != config.core_type else "power9_v2.0-spapr-cpu-core"
        elif fault == "bad-id":
            args["id"] = "9bad"
        elif fault == "negative-core-id":
            args["core-id"] = -1 - core_id
        elif fault == "non-integer-core-id":
            args["core-id"] = "abc"
        elif fault == "out-of-range":
            args["core-id"] = config.maxcpus + core_id
        elif fault == "nr-threads":
            args["nr-threads"] = config.threads * 2
        elif fault == "node-id":
            args["node-id"] = config.node_of(core_id) + 1
        elif fault == "unknown-property":
            args["foo"] = 1
        elif fault == "read-only-property":
            args["hotplugged"] = "on"
        return args

    def _count_requests(self, n: int) -> None:
        self.model.requests_since_clear += n

    @rule(
        slot=st.integers(0, 7),
        dev_id=st.sampled_from([None, "c1", "c2", "c3"]),
        spelling=st.sampled_from(SPELLINGS),
        fault=st.one_of(st.none(), st.none(), st.sampled_from(FAULTS)),
    )
    def device_add(self, slot: int, dev_id: str | None, spelling: str, fault: str | None) -> None:
        """QMP device_add of a core (valid, or breaking one rule)."""
        self.quiet = False
        args = self.core_args(slot, dev_id, spelling, fault)
        expected = self.expected_device_add(args)
        before = set(map(id, self.machine.cores))
        try:
            self.control.device_add(args)
        except QemuError as err:
            assert expected is not None, (
                f"device_add {args} refused ({err.message}); QEMU accepts it"
            )
            assert (err.error_class, err.message) == (expected.error_class, expected.desc)
            return
        assert expected is None, f"device_add {args} accepted; QEMU refuses it: {expected.desc}"
        new = [c for c in self.machine.cores if id(c) not in before]
        assert len(new) == 1, "device_add must create exactly one core"
        core = new[0]
        self.model.present[core.qom_path] = core.core_id
        self.model.added = core.qom_path
        if core.dev_id is not None:
            self.model.ids[core.dev_id] = core.qom_path
        if self.control.runstate.state.value != "inmigrate":
            self._count_requests(1)

    def resolve_target(self, target: str) -> str:
        """A symbolic device_del target of :data:`DEL_TARGETS` as the id or path QMP gets.

        ``added`` is the core device_add created last (by id if it has one), ``bootN``
        and ``boot-last`` boot cores by QOM path, ``anonN`` cores without an id,
        ``cold`` the first ``-device`` core; other names are passed as they are.
        """
        if target == "added":
            if self.model.added is None:
                return "nope"
            path = self.model.added
            ids = [dev_id for dev_id, p in self.model.ids.items() if p == path]
            return ids[0] if ids else path
        if target.startswith("boot"):
            boot = self.model.boot
            if not boot:
                return "nope"
            index = {"boot0": 0, "boot1": 1}.get(target, len(boot) - 1)
            return boot[min(index, len(boot) - 1)]
        if target.startswith("anon"):
            return f"/machine/peripheral-anon/device[{target[4:]}]"
        if target == "cold":
            return self.config.coldplug[0].dev_id if self.config.coldplug else "cold0"
        return target

    @rule(who=st.sampled_from(DEL_TARGETS))
    def device_del(self, who: str) -> None:
        """QMP device_del by id or QOM path (``who`` is one of :data:`DEL_TARGETS`)."""
        self.quiet = False
        resolved = self.resolve_target(who)
        expected = self.expected_device_del(resolved)
        path = resolved if resolved.startswith("/") else self.model.ids.get(resolved)
        try:
            self.control.device_del(resolved)
        except QemuError as err:
            assert expected is not None, (
                f"device_del {resolved} refused ({err.message}); QEMU accepts it"
            )
            assert (err.error_class, err.message) == (expected.error_class, expected.desc)
            return
        assert expected is None, f"device_del {resolved} accepted; QEMU refuses it: {expected.desc}"
        assert path is not None
        self._count_requests(1)
        if path not in self.model.deleted:
            self.model.pending_unplug.add(path)

    @rule()
    def system_reset(self) -> None:
        """QMP system_reset: pending unplugs complete, the event queue empties."""
        self.quiet = False
        self.control.system_reset()
        self.model.requests_since_clear = 0

    @rule()
    def stop(self) -> None:
        """QMP stop (virtual time stops too)."""
        self.quiet = False
        self.control.stop()

    @rule()
    def cont(self) -> None:
        """QMP cont."""
        self.quiet = False
        self.control.cont()

    @rule(ns=st.integers(0, 2_000_000_000))
    def time_passes(self, ns: int) -> None:
        """Virtual time passes; a running guest runs."""
        self.quiet = False
        if self.control.runstate.running:
            self.machine.sched.run_for(ns)

    @precondition(lambda self: not self.scripted)
    @rule()
    def settle(self) -> None:
        """Let the guest run until the machine is quiet (bounded); view invariants then apply."""
        settled = self.control.settle(self.settle_limit_ns)
        self.quiet = (
            settled
            and self.control.runstate.running
            and self.control.quiet()
            and guest_booted(self.guest)
        )

    def migratable(self) -> bool:
        """Migration applies: the guest comes from its ``-guest`` option, boot cores all there."""
        return (
            self.guest_option is not None
            and self.control.runstate.running
            and all(p in self.model.present for p in self.model.boot)
        )

    @precondition(lambda self: self.migratable())
    @rule()
    def migrate(self) -> None:
        """Migrate to a file and continue on a destination started with the same cores."""
        self.quiet = False
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="conformance-migration-"))
        path = self._tmp / "stream"
        self.control.migrate(f"file:{path}")
        devices: list[str] = []
        for core in self.machine.cores:
            if core.qom_path in self.model.boot:
                continue
            spec = f"{self.config.core_type},core-id={core.core_id}"
            devices += ["-device", spec if core.dev_id is None else f"{spec},id={core.dev_id}"]
        target_argv = [*self.argv, *devices, "-incoming", f"file:{path}"]
        machine, stream = incoming_machine_and_stream(str(path), target_argv, self.err)
        self.machine.event_listeners.remove(self._on_event)
        control = MachineControl(
            machine,
            warn=lambda line: None,
            incoming_runstate=runstate_after_incoming(stream, True),
        )
        self.guest = machine.guest
        self._attach(machine, control)
        self.model.present = {c.qom_path: c.core_id for c in machine.cores}

    # ------------------------------------------------------------ the hostile guest (no OS)

    def _vcpus(self) -> list[int]:
        """vCPUs that can make a call now: they exist and are not stopped."""
        sched = self.machine.sched
        return [
            t.vcpu_id
            for t in self.machine.iter_threads()
            if sched.state(t.vcpu_id) is not VcpuState.STOPPED
        ]

    def guest_runs(self) -> bool:
        """A guest can act: the VM runs and some vCPU is not stopped (RTAS comes from one)."""
        return self.control.runstate.running and bool(self._vcpus())

    def _connector_index(self, connector: int) -> int:
        """Small numbers pick a slot's CPU connector; larger ones are raw DRC indexes."""
        if connector < 8:
            drc = self.machine.drc(
                self.machine.cpu_drc_index(self.config.core_ids[connector % self.config.max_cores])
            )
            return drc.index if drc is not None else connector
        return connector & 0xFFFFFFFF

    def rtas(
        self,
        name: str,
        args: list[int],
        nret: int,
        *,
        caller: int | None = None,
        token: int | None = None,
        buffer: int | None = None,
    ) -> tuple[int, ...]:
        """One RTAS call as the guest makes it (H_RTAS with a buffer in guest memory).

        ``buffer``: None for the scratch area, else an offset from the end of RAM.
        Checks that the hcall status is H_SUCCESS or H_PARAMETER, that rets[0] is a
        PAPR status, and that nothing was written past the rets QEMU writes (a canary
        after ``max(nret, RETS_ALWAYS_WRITTEN)`` rets).
        """
        memory = self.machine.memory
        vcpu = caller if caller is not None else self._vcpus()[0]
        tok = TOKENS_BY_NAME[name] if token is None else token
        if buffer is None:
            addr = ARGS_ADDR
            encode_call(memory, addr, tok, args, nret)
            service = service_name(tok) or name
            written = max(nret, RETS_ALWAYS_WRITTEN.get(service, 1))
            end = addr + 12 + 4 * (len(args) + written)
            memory.write(end, CANARY)
        else:
            addr = max(0, memory.size + buffer)
            words = [tok, len(args), nret, *args] + [0] * nret
            memory.write_clipped(addr, b"".join((w & 0xFFFFFFFF).to_bytes(4, "big") for w in words))
            end = None
        status = self.machine.rtas.hcall_rtas(memory, addr, vcpu)
        assert status in (HcallReturn.H_SUCCESS, HcallReturn.H_PARAMETER), (name, status)
        if end is None:
            return ()
        assert memory.read(end, 4) == CANARY, f"{name} wrote past its {nret} rets"
        rets = read_rets(memory, addr)
        if rets and nret:
            assert rets[0] in PAPR_STATUSES, (name, args, rets)
        return rets

    def _area(self, default: int, size: int, from_end: int | None) -> int:
        memory = self.machine.memory
        addr = default if from_end is None else memory.size - from_end
        if from_end is None or from_end > size:
            memory.write(addr + size, CANARY)
        return addr

    def _canary_intact(self, addr: int, size: int, from_end: int | None, what: str) -> None:
        if from_end is None or from_end > size:
            assert self.machine.memory.read(addr + size, 4) == CANARY, (
                f"{what} wrote past its bound"
            )

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(
        indicator=st.sampled_from([9001, 9002, 9003]),
        connector=CONNECTORS,
        value=st.sampled_from([0, 1, 0, 1, 2, 3, 7, 0xFFFFFFFF]),
        nargs=st.sampled_from([3, 3, 3, 2, 4]),
    )
    def set_indicator(self, indicator: int, connector: int, value: int, nargs: int) -> None:
        """RTAS set-indicator (isolation, dr-indicator, allocation state) on a connector."""
        self.quiet = False
        args = [indicator, self._connector_index(connector), value, 0][:nargs]
        self.rtas("set-indicator", args, 1)

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(
        sensor=st.sampled_from([9003, 9003, 9001, 9]),
        connector=CONNECTORS,
        nret=st.sampled_from([2, 2, 1, 3]),
    )
    def get_sensor_state(self, sensor: int, connector: int, nret: int) -> None:
        """RTAS get-sensor-state (dr-entity-sense) on a connector."""
        self.quiet = False
        rets = self.rtas("get-sensor-state", [sensor, self._connector_index(connector)], nret)
        if nret >= 2 and rets and rets[0] == 0:
            assert rets[1] in (0, 1, 2), rets

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(
        connector=CONNECTORS,
        steps=st.integers(1, 40),
        from_end=st.one_of(st.none(), st.none(), st.integers(0, 4096)),
    )
    def configure_connector(self, connector: int, steps: int, from_end: int | None) -> None:
        """A configure-connector walk of up to ``steps`` calls (any index, any state)."""
        self.quiet = False
        memory = self.machine.memory
        area = self._area(WORK_AREA, WORK_AREA_SIZE, from_end)
        if from_end is None or from_end >= 4:
            memory.write(area, self._connector_index(connector).to_bytes(4, "big"))
        for _ in range(steps):
            rets = self.rtas("ibm,configure-connector", [area & 0xFFFFFFFF, area >> 32], 1)
            self._canary_intact(area, WORK_AREA_SIZE, from_end, "configure-connector")
            if not rets or rets[0] not in (
                ConfigureConnector.NEXT_CHILD,
                ConfigureConnector.NEXT_PROPERTY,
                ConfigureConnector.PREV_PARENT,
            ):
                break

    @precondition(lambda self: self.scripted and self.guest_runs())
    @rule(
        slot=st.integers(0, 7),
        steps=st.lists(st.sampled_from(DLPAR_STEPS), min_size=1, max_size=4),
    )
    def dlpar(self, slot: int, steps: list[str]) -> None:
        """Well-formed steps of Linux's DLPAR on one slot's connector, in the order drawn.

        ``start`` starts the threads of the core in the slot (from the boot vCPU),
        ``stop`` has each of them call stop-self; ``configure`` walks
        configure-connector to its end; the others are the single RTAS call named
        (:data:`DLPAR_STEPS`). Drawing several steps at once lets a short example
        reach any order of them on the same connector.
        """
        self.quiet = False
        for step in steps:
            if not self.guest_runs():
                break  # the guest stopped its last running vCPU
            self.dlpar_step(slot, step)

    def dlpar_step(self, slot: int, step: str) -> None:
        """One step of :meth:`dlpar`."""
        index = self._connector_index(slot)
        core = self.machine.slots[slot % len(self.machine.slots)].core
        threads = [t.vcpu_id for t in core.threads] if core is not None else []
        if step == "check-exception":
            self.rtas("check-exception", [0x500, 0x1001, 0x50000000, 0, ERRLOG_BUF, ERRLOG_MAX], 1)
        elif step == "sense":
            self.rtas("get-sensor-state", [9003, index], 2)
        elif step == "acquire":
            self.rtas("set-indicator", [9003, index, 1], 1)
        elif step == "unisolate":
            self.rtas("set-indicator", [9001, index, 1], 1)
        elif step == "isolate":
            self.rtas("set-indicator", [9001, index, 0], 1)
        elif step == "release":
            self.rtas("set-indicator", [9003, index, 0], 1)
        elif step == "configure":
            self.configure_walk(index)
        elif step == "start":
            for vcpu in threads:
                self.rtas("start-cpu", [vcpu, 0x4000, vcpu], 1, caller=self._vcpus()[0])
        else:  # stop: each running thread of the core calls stop-self
            for vcpu in set(threads) & set(self._vcpus()):
                encode_call(self.machine.memory, ARGS_ADDR, TOKENS_BY_NAME["stop-self"], [], 1)
                self.machine.rtas.hcall_rtas(self.machine.memory, ARGS_ADDR, vcpu)

    def configure_walk(self, index: int, limit: int = 200) -> list[int]:
        """configure-connector on ``index`` until it stops answering 2/3/4; the codes."""
        self.machine.memory.write(WORK_AREA, index.to_bytes(4, "big") + bytes(4))
        codes: list[int] = []
        for _ in range(limit):
            rets = self.rtas("ibm,configure-connector", [WORK_AREA, 0], 1)
            codes.append(rets[0])
            if rets[0] not in (2, 3, 4):
                break
        return codes

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(
        mask=st.sampled_from([0x10000000, 0x40000000, 0x50000000, 0, 0xFFFFFFFF]),
        length=st.sampled_from([ERRLOG_MAX, 116, 8, 0]),
        from_end=st.one_of(st.none(), st.none(), st.integers(0, ERRLOG_MAX)),
    )
    def check_exception(self, mask: int, length: int, from_end: int | None) -> None:
        """RTAS check-exception: dequeue the first event of the asked classes."""
        self.quiet = False
        buf = self._area(ERRLOG_BUF, ERRLOG_MAX, from_end)
        self.rtas("check-exception", [0x500, 0x1001, mask, 0, buf, length], 1)
        self._canary_intact(buf, ERRLOG_MAX, from_end, "check-exception")

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule()
    def event_scan(self) -> None:
        """RTAS event-scan: re-pulses pending classes, returns 1."""
        self.quiet = False
        self.rtas("event-scan", [0xFFFFFFFF, 0, ERRLOG_BUF, ERRLOG_MAX], 1)

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(vcpu=st.integers(0, 16), caller=st.integers(0, 16))
    def start_cpu(self, vcpu: int, caller: int) -> None:
        """RTAS start-cpu of any vCPU id (running, stopped or absent), from any existing vCPU."""
        self.quiet = False
        vcpus = self._vcpus()
        self.rtas("start-cpu", [vcpu, 0x4000, vcpu], 1, caller=vcpus[caller % len(vcpus)])

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(caller=st.integers(0, 16))
    def stop_self(self, caller: int) -> None:
        """RTAS stop-self by any existing vCPU (possibly one no unplug asked to stop)."""
        self.quiet = False
        vcpus = self._vcpus()
        vcpu = vcpus[caller % len(vcpus)]
        tok = TOKENS_BY_NAME["stop-self"]
        encode_call(self.machine.memory, ARGS_ADDR, tok, [], 1)
        self.machine.rtas.hcall_rtas(self.machine.memory, ARGS_ADDR, vcpu)
        assert self.machine.sched.state(vcpu) is VcpuState.STOPPED

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(vcpu=st.integers(0, 16), nret=st.sampled_from([2, 2, 1]))
    def query_cpu_stopped_state(self, vcpu: int, nret: int) -> None:
        """RTAS query-cpu-stopped-state of any vCPU id."""
        self.quiet = False
        rets = self.rtas("query-cpu-stopped-state", [vcpu], nret)
        if nret == 2 and rets and rets[0] == 0:
            assert rets[1] in (0, 2), rets

    @precondition(lambda self: self.scripted and self.guest_runs())
    @rule(hp_evt=st.booleans())
    def cas(self, hp_evt: bool) -> None:
        """ibm,client-architecture-support from the boot vCPU (other threads stopped)."""
        self.quiet = False
        memory = self.machine.memory
        ov5 = OptionVector({OV5_HP_EVT} if hp_evt else set())
        # The ibm,client-architecture-support table: (mask, PVR) pairs, a terminator,
        # then option vectors 1..5 (PAPR B.5.2); only vector 5's hot-plug bit varies.
        table = (0xFFFFFFFF).to_bytes(4, "big") + self.machine.model.pvr.to_bytes(4, "big")
        table += (0).to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big")
        vectors = [bytes([0x80, 0x00, 0x80]), b"\0", b"\0", b"\0", ov5.to_bytes()]
        table += bytes([len(vectors) - 1])
        for data in vectors:
            table += bytes([len(data) - 1]) + data
        memory.write(CAS_VECTOR, table)
        vcpu = self._vcpus()[0]
        self.machine.h_client_architecture_support(vcpu, CAS_VECTOR, CAS_FDT_BUF, 0x100000)

    @precondition(lambda self: self.hostile and self.guest_runs())
    @rule(
        token=st.one_of(st.integers(0x2000, 0x202D), st.integers(0, 0xFFFFFFFF), st.just(0xA)),
        args=st.lists(st.integers(0, 0xFFFFFFFF), max_size=8),
        nret=st.integers(0, 4),
        buffer=st.one_of(st.none(), st.none(), st.none(), st.integers(-64, 64)),
    )
    def any_rtas_call(self, token: int, args: list[int], nret: int, buffer: int | None) -> None:
        """Any token, any arguments, any nret, the buffer anywhere (at and past the end of RAM)."""
        self.quiet = False
        harmful = {
            TOKENS_BY_NAME[n]
            for n in ("stop-self", "ibm,os-term", "power-off", "system-reboot", "ibm,suspend-me")
        }
        if token in harmful:
            token = TOKENS_BY_NAME["get-time-of-day"]
        self.rtas("any", args, nret, token=token, buffer=buffer)

    # ------------------------------------------------------------ invariants

    def check_all(self) -> None:
        """Run every invariant now, a subclass's too (for tests that drive the machine by hand)."""
        for name in sorted(dir(type(self))):
            member = getattr(type(self), name, None)
            if getattr(member, "hypothesis_stateful_invariant", None) is not None:
                getattr(self, name)()

    @invariant()
    def cores_neither_lost_nor_duplicated(self) -> None:
        """Every slot holds at most one core, each core is in one slot, in QOM, with its vCPUs.

        A core that leaves was announced by exactly one DEVICE_DELETED (QEMU's
        qdev unrealize; protocol.md §2.5).
        """
        machine = self.machine
        slotted = [s.core for s in machine.slots if s.core is not None]
        assert len(slotted) == len({id(c) for c in slotted}), "a core sits in two slots"
        assert {id(c) for c in slotted} == {id(c) for c in machine.cores}, "slots and cores differ"
        for core in machine.cores:
            assert machine.qom.resolve(core.qom_path) is not None, f"{core.qom_path} not in QOM"
            for thread in core.threads:
                assert machine.sched.find_vcpu(thread.vcpu_id) is not None, thread
        live = {c.qom_path for c in machine.cores}
        for path in list(self.model.present):
            if path not in live:
                assert self.model.deleted.count(path) == 1, (
                    f"{path} vanished with {self.model.deleted.count(path)} DEVICE_DELETED events"
                )
                self.model.deleted.remove(path)
                del self.model.present[path]
                self.model.pending_unplug.discard(path)
                self.model.ids = {k: v for k, v in self.model.ids.items() if v != path}
        assert not self.model.deleted, f"DEVICE_DELETED for live cores: {self.model.deleted}"
        for path in live - set(self.model.present):
            core = next(c for c in machine.cores if c.qom_path == path)
            raise AssertionError(f"core {path} (core-id {core.core_id}) appeared from nowhere")

    @invariant()
    def connectors_follow_the_papr_table(self) -> None:
        """Every CPU connector is in a logical-DRC state with a device where one is needed,
        and answered every call as QEMU 7.2's connector does (PAPR 13.5.3; spapr/drc.py)."""
        for checked in self.connectors:
            assert checked.state in LOGICAL.states, f"0x{checked.index:x} in {checked.state!r}"
            if checked.state != LOGICAL.empty_state:
                assert checked.device is not None, f"0x{checked.index:x} {checked.state!r} is empty"
            if checked.discrepancies:
                raise AssertionError(checked.discrepancies[0].describe())
        for checked in self.connectors:
            assert self.machine.drcs.get(checked.index) is checked, "a connector escaped the kit"

    @invariant()
    def guest_stops_threads_before_release(self) -> None:
        """A guest gives a core's connector back only once every thread of it has stopped.

        Linux's dlpar_cpu_remove offlines each thread (stop-self, confirmed with
        query-cpu-stopped-state) before isolating and releasing the connector
        (protocol.md §7.2 steps 5-10); QEMU then unrealizes the vCPUs. Checked for
        a loaded guest; the scripted hostile guest may break it on purpose.
        """
        if self.scripted:
            return
        for checked in self.connectors:
            if checked.early_releases:
                raise AssertionError(checked.early_releases[0].describe())

    @invariant()
    def monitor_qom_and_device_tree_agree(self) -> None:
        """query-hotpluggable-cpus, the QOM tree and the device tree tell the same story."""
        machine = self.machine
        entries = machine.query_hotpluggable_cpus()
        assert len(entries) == len(machine.slots)
        by_core_id = {e["props"]["core-id"]: e for e in entries}
        for slot in machine.slots:
            entry = by_core_id[slot.core_id]
            if slot.core is None:
                assert "qom-path" not in entry, entry
                continue
            assert entry.get("qom-path") == slot.core.qom_path, entry
            obj = machine.qom.resolve(slot.core.qom_path)
            assert obj is not None and obj.payload is slot.core
        key = (
            tuple((id(c), c.core_id, c.threads[0].vcpu_id) for c in machine.cores),
            tuple(c.index for c in self.connectors),
            machine.ov5_cas.to_bytes(),
        )
        if key == self._tree_checked:
            return  # the tree's CPU part depends on nothing else: checked already
        saved = copy.deepcopy(machine.random)
        try:
            tree = machine.device_tree(reset=False)
        finally:
            machine.random = saved
        cpus = tree.root.subnode("cpus")
        assert cpus is not None
        regs: dict[int, int | None] = {}
        for node in cpus.children:
            reg = node.get("reg")
            if reg is None:
                continue
            index = node.get("ibm,my-drc-index")
            regs[reg.cells()[0]] = index.cells()[0] if index is not None else None
        expected: dict[int, int | None] = {
            core.threads[0].vcpu_id: machine.cpu_drc_index(core.core_id) for core in machine.cores
        }
        if not machine.setup.machine.has_hotpluggable_cpus:
            expected = dict.fromkeys(expected)
        assert regs == expected, f"device tree cpus {regs} != cores {expected}"
        self._tree_checked = key

    @invariant()
    def guest_view_matches_once_quiet(self) -> None:
        """Once quiet, the guest runs exactly the machine's vCPU threads as online CPUs."""
        if not self.quiet or self.guest is None:
            return
        machine_view = {t.vcpu_id for t in self.machine.iter_threads()}
        assert set(online_hwids(self.guest)) == machine_view, (
            f"guest online {sorted(online_hwids(self.guest))} != machine threads "
            f"{sorted(machine_view)}"
        )

    @invariant()
    def every_device_del_ends(self) -> None:
        """Once quiet, every accepted device_del ended in DEVICE_DELETED or the guest's refusal."""
        if not (self.quiet or (self.scripted and self.control.quiet())):
            return
        assert not self.model.pending_unplug, (
            f"device_del of {sorted(self.model.pending_unplug)} neither completed "
            "(DEVICE_DELETED) nor refused by the guest (DEVICE_UNPLUG_GUEST_ERROR)"
        )

    @invariant()
    def queues_bounded(self) -> None:
        """The event queue never holds more entries than hotplug requests were made since it
        was last emptied (QEMU queues one per device_add/device_del; reset empties it)."""
        assert len(self.machine.events) <= self.model.requests_since_clear, (
            f"{len(self.machine.events)} queued events for "
            f"{self.model.requests_since_clear} requests"
        )


def _qemu_int(value: Any) -> int | None:
    """How QEMU reads a device_add property value as an integer (None: not one).

    JSON numbers become option strings (qemu_opts_from_qdict: integers in decimal,
    other numbers with ``%.17g``), then qemu_strtoi64 with base 0 parses them.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        text = f"{value:.17g}"
    elif isinstance(value, str):
        text = value
    else:
        return None
    text = text.strip()
    try:
        if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"-?[1-9][0-9]*|0", text):
            return int(text)
    except ValueError:
        return None
    return None


def _wrap32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def core_of(machine: PseriesMachine, path: str) -> SpaprCpuCore | None:
    """The core at QOM path ``path``, if any."""
    obj = machine.qom.resolve(path)
    return obj.payload if obj is not None and isinstance(obj.payload, SpaprCpuCore) else None


HotplugMachine.TestCase.settings = kit_settings()
