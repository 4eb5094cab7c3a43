"""Differential campaigns: generated QMP sequences against real QEMU 7.2 and this emulator.

Each example is a machine configuration QEMU accepts under TCG and a sequence of
host-side steps -- QMP commands and queries (device_add/device_del with every
kind of argument, resets, stop/cont, qom-list/qom-get, HMP text, queries,
failed migrations) and wall time passing -- run on a fresh ``qemu-system-ppc64``
(``-S``: SLOF, no guest kernel, as the oracle ran) and a fresh emulator (``-guest
none``). Replies and the events before them must be identical, member order
included, timestamps and host thread ids aside.

QEMU 7.2's own limits and crashes are respected: before each step the kit asks
whether the step would crash QEMU (:func:`known_crash`, each case recorded under
tests/data/errors/defect_*.jsonl or in the project's tests); if so the step is still
sent, QEMU's death is confirmed, and the example ends as a *known QEMU crash*,
not a mismatch. A fresh QEMU per example keeps its TCG vCPU limit from ending a
run. A mismatch fails the example; hypothesis then shrinks it to the shortest
sequence and :class:`Mismatch` prints it as a QMP transcript to replay by hand.

``python -m conformance qemu`` runs a campaign on all cores with pytest-xdist
(:mod:`conformance.campaign_tests`); :func:`run_examples` runs examples in-process.
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from conformance.config import MachineArgs
from conformance.qmp import (
    EmulatorSession,
    Exchange,
    QemuExited,
    QemuSession,
    QemuUnresponsive,
    Transcript,
    compact,
    normalize,
)
from conformance.strategies import (
    core_device_args,
    cpu_drc_indexes,
    invalid_core_device_args,
    machine_configs,
)

#: Wall time (ms) one "time passes" step waits at most.
MAX_IDLE_MS = 40
#: How long QEMU may take to answer one request (it answers in milliseconds).
RESPONSE_TIMEOUT_S = 5.0


@attrs.frozen
class Step:
    """One step of an example: a QMP request, or (request None) ``idle_ms`` of wall time."""

    request: dict[str, Any] | None = None
    idle_ms: int = 0

    def text(self) -> str:
        """The step as a transcript line."""
        if self.request is None:
            return f"# ... {self.idle_ms} ms pass"
        return "-> " + compact(self.request)


@attrs.frozen
class Example:
    """A configuration and the steps run on it."""

    config: MachineArgs
    steps: tuple[Step, ...]


# ---------------------------------------------------------------------------
# Generating examples
# ---------------------------------------------------------------------------


@functools.cache
def unattached_layout(argv: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(child name, type) of /machine/unattached for a command line (the emulator's answer)."""
    with EmulatorSession(argv) as emulator:
        reply = emulator.execute(
            {"execute": "qom-list", "arguments": {"path": "/machine/unattached"}}
        ).response
    assert reply is not None
    return tuple(
        (e["name"], e["type"][len("child<") : -1])
        for e in reply["return"]
        if str(e["type"]).startswith("child<") and str(e["name"]).startswith("device[")
    )


def campaign_configs() -> st.SearchStrategy[MachineArgs]:
    """Small TCG configurations: few possible vCPUs keep each QEMU quick to start."""
    return machine_configs("tcg", max_cpus=6, numa=True, coldplug=True, incoming=True)


IDS = ("c1", "c2", "c3")
CORE_PROPS = ("core-id", "node-id", "nr-threads", "hotplugged", "hotpluggable", "realized")
DRC_PROPS = ("index", "id", "fdt", "device", "hotplugged", "hotpluggable", "realized")
HMP_INFO = ("info hotpluggable-cpus", "info cpus", "info status", "info qom-tree")


def _paths(config: MachineArgs) -> dict[str, list[str]]:
    """QOM paths of this configuration worth naming, by kind."""
    layout = unattached_layout(tuple(config.argv()))
    cores = [f"/machine/unattached/{n}" for n, t in layout if t.endswith("-spapr-cpu-core")]
    others = [
        f"/machine/unattached/{n}"
        for n, t in layout
        if not t.endswith("-spapr-cpu-core") and t != "spapr-pci-host-bridge"
    ]
    drcs = [f"/machine/dr-connector[{i}]" for i in cpu_drc_indexes(config)]
    peripheral = [f"/machine/peripheral/{i}" for i in IDS] + [
        f"/machine/peripheral/{c.dev_id}" for c in config.coldplug
    ]
    anon = [f"/machine/peripheral-anon/device[{i}]" for i in range(2)]
    return {"boot": cores, "others": others, "drcs": drcs, "peripheral": peripheral, "anon": anon}


@st.composite
def device_add_requests(draw: st.DrawFn, config: MachineArgs) -> dict[str, Any]:
    """device_add of a core: valid, invalid in one way, or in the spellings QEMU reads oddly."""
    kind = draw(st.sampled_from(("valid", "valid", "valid", "invalid", "odd")))
    if kind == "valid" and config.free_core_ids:
        args = dict(draw(core_device_args(config, ids=IDS)).args)
    elif kind in ("valid", "invalid"):
        args = dict(draw(invalid_core_device_args(config)).args)
    else:
        args = {"driver": config.core_type}
        dev_id = draw(st.one_of(st.none(), st.sampled_from(IDS)))
        if dev_id is not None:
            args["id"] = dev_id
        core_id = draw(st.sampled_from(config.core_ids))
        args["core-id"] = draw(
            st.sampled_from(
                [
                    float(core_id),
                    core_id + 0.5,
                    1e300,
                    True,
                    [core_id],
                    {"n": core_id},
                    f" {core_id}",
                    f"{core_id} ",
                    f"+{core_id}",
                    f"0{core_id}",
                    -0.0,
                    core_id + 2**32,
                    core_id + 2**31,
                    2**63 + core_id,
                    None,
                ]
            )
        )
        if args["core-id"] is None:
            del args["core-id"]
        extra: dict[str, Any] = draw(
            st.sampled_from(
                [
                    {},
                    {"realized": False},
                    {"realized": "off"},
                    {"realized": 1},
                    {"realized": True},
                    {"node-id": float(config.node_of(core_id))},
                    {"nr-threads": float(config.threads)},
                    {"pre-3.0-migration": draw(st.sampled_from([True, "on", "x", 1]))},
                ]
            )
        )
        args.update(extra)
    return {"execute": "device_add", "arguments": args}


@st.composite
def device_del_requests(draw: st.DrawFn, config: MachineArgs) -> dict[str, Any]:
    """device_del of an id or a QOM path: cores, non-devices, other devices, odd spellings."""
    paths = _paths(config)
    cores = paths["boot"] + paths["peripheral"] + paths["anon"]
    core = draw(st.sampled_from(cores))
    target = draw(
        st.sampled_from(
            [
                *IDS,
                *IDS,
                *(c.dev_id for c in config.coldplug),
                core,
                core,
                core + "/",
                "/" + core,
                core.replace("/machine/", "/machine//"),
                "c1/",
                "",
                "/",
                "nope",
                "/machine",
                "/machine/peripheral",
                "/machine/peripheral-anon",
                *paths["others"],
                core + "/thread[0]",
                core + "/thread[0]/icp",
                draw(st.sampled_from(paths["drcs"])),
            ]
        )
    )
    return {"execute": "device_del", "arguments": {"id": target}}


@st.composite
def query_requests(draw: st.DrawFn, config: MachineArgs) -> dict[str, Any]:
    """Queries: run state, hotpluggable CPUs, CPUs, QOM listings and properties, HMP text."""
    paths = _paths(config)
    cores = paths["boot"] + paths["peripheral"] + paths["anon"]
    kind = draw(st.sampled_from(("status", "cpus", "list", "get", "get", "hmp", "migrate")))
    if kind == "status":
        return {"execute": draw(st.sampled_from(("query-status", "query-hotpluggable-cpus")))}
    if kind == "cpus":
        return {"execute": "query-cpus-fast"}
    if kind == "list":
        path = draw(
            st.sampled_from(
                [
                    "/machine/peripheral",
                    "/machine/peripheral-anon",
                    *cores,
                    draw(st.sampled_from(cores)) + "/thread[0]",
                    *paths["drcs"],
                ]
            )
        )
        return {"execute": "qom-list", "arguments": {"path": path}}
    if kind == "get":
        if draw(st.booleans()):
            path, prop = draw(st.sampled_from(cores)), draw(st.sampled_from(CORE_PROPS))
        else:
            path, prop = draw(st.sampled_from(paths["drcs"])), draw(st.sampled_from(DRC_PROPS))
        return {"execute": "qom-get", "arguments": {"path": path, "property": prop}}
    if kind == "hmp":
        line = draw(
            st.sampled_from(
                [
                    *HMP_INFO,
                    f"info qom-tree {draw(st.sampled_from(cores))}",
                    f"device_add {config.core_type},id=h1,"
                    f"core-id={draw(st.sampled_from(config.core_ids))}",
                    "device_del h1",
                    f"device_del {draw(st.sampled_from(IDS))}",
                ]
            )
        )
        return {"execute": "human-monitor-command", "arguments": {"command-line": line}}
    if draw(st.booleans()):
        return {"execute": "query-migrate"}
    uri = draw(st.sampled_from(("bogus:", "nope", "", "file")))
    return {"execute": "migrate", "arguments": {"uri": uri}}


@st.composite
def steps_for(draw: st.DrawFn, config: MachineArgs, *, max_steps: int = 14) -> tuple[Step, ...]:
    """A sequence of host-side steps for ``config``."""
    count = draw(st.integers(1, max_steps))
    out: list[Step] = []
    for _ in range(count):
        kind = draw(st.sampled_from(("add", "add", "del", "del", "query", "query", "run", "idle")))
        if kind == "add":
            out.append(Step(draw(device_add_requests(config))))
        elif kind == "del":
            out.append(Step(draw(device_del_requests(config))))
        elif kind == "query":
            out.append(Step(draw(query_requests(config))))
        elif kind == "run":
            command = draw(st.sampled_from(("system_reset", "stop", "cont", "system_reset")))
            out.append(Step({"execute": command}))
        else:
            out.append(Step(None, draw(st.integers(0, MAX_IDLE_MS))))
    if draw(st.integers(0, 9)) == 0:
        out.append(Step({"execute": "quit"}))
    return tuple(out)


@st.composite
def examples(draw: st.DrawFn) -> Example:
    """A configuration and a step sequence for it."""
    config = draw(campaign_configs())
    return Example(config, draw(steps_for(config)))


# ---------------------------------------------------------------------------
# QEMU 7.2's known crashes
# ---------------------------------------------------------------------------

#: Known QEMU 7.2 crashes: name -> where the project recorded it.
KNOWN_CRASHES = {
    "reset-after-unplug": "tests/data/errors/defect_hotplug_unplug_reset_p8e.jsonl "
    "(SIGSEGV: a system_reset once a core has been unplugged)",
    "device-del-without-hotplug-handler": "tests/data/errors/defect_device_del_thread_p8e.jsonl "
    "(assertion hotplug_ctrl: device_del of a CPU thread, its interrupt presenter or a DR "
    "connector)",
    "tcg-vcpu-limit": "tests/data/errors/defect_tcg_vcpu_limit_p8e.jsonl (assertion "
    "n < tcg_max_ctxs: more vCPUs created over the VM's life than maxcpus)",
    "core-id-wraps-negative": "tests/test_machine_qmp_errors.py (SIGSEGV: a core-id that "
    "wraps to a negative C int, e.g. 2**31)",
    "realized-on": "tests/test_machine_qmp_errors.py (assertion in qdev_realize: device_add "
    "with realized=on)",
    "cpu-unplug-race": "found by the campaign, not reproducible at will (SIGSEGV, or SIGABRT "
    "with 'free(): corrupted unsorted chunks': now and then when device_del releases a "
    "hot-added core at once and its vCPU thread is torn down)",
}

_WRAPPED = re.compile(r"core id -\d+ out of range")
_THREADISH = re.compile(r"/thread\[\d+\](/|$)|/dr-connector\[\d+\]/?$")


def _arguments(request: dict[str, Any]) -> dict[str, Any]:
    arguments = request.get("arguments")
    return arguments if isinstance(arguments, dict) else {}


@attrs.define
class CrashPredictor:
    """Follows a session to say, before each step, whether QEMU 7.2 would crash on it.

    It reads only what the emulator answered so far (which cores exist, what
    DEVICE_DELETED said) and the request itself.
    """

    max_cpus: int
    created_vcpus: int
    threads: int
    released_core: bool = False

    @classmethod
    def for_config(cls, config: MachineArgs) -> CrashPredictor:
        created = (config.boot_cores + len(config.coldplug)) * config.threads
        return cls(config.maxcpus, created, config.threads)

    def before(self, request: dict[str, Any], emulator: Exchange) -> str | None:
        """The known crash ``request`` triggers in QEMU (given the emulator's answer), or None."""
        command = request.get("execute")
        args = _arguments(request)
        hmp = str(args.get("command-line", "")) if command == "human-monitor-command" else ""
        if command == "system_reset" or hmp.strip() == "system_reset":
            return "reset-after-unplug" if self.released_core else None
        if command == "device_del" or hmp.startswith("device_del "):
            target = str(args.get("id", "")) if command == "device_del" else hmp.split()[1]
            if _THREADISH.search(target) and "not found" not in compact(emulator.response):
                return "device-del-without-hotplug-handler"
            return None
        if command == "device_add" or hmp.startswith("device_add "):
            answer = compact(emulator.response)
            if _WRAPPED.search(answer):
                return "core-id-wraps-negative"
            if "realized' is not writable" in answer:  # the emulator's answer to the abort
                return "realized-on"
            accepted = emulator.response == {"return": {}} or (
                bool(hmp) and emulator.response == {"return": ""}
            )
            if accepted and self.created_vcpus + self.threads > self.max_cpus:
                return "tcg-vcpu-limit"
        return None

    def after(self, request: dict[str, Any], emulator: Exchange) -> None:
        """Note what the step did (vCPUs created, cores released)."""
        command = request.get("execute")
        args = _arguments(request)
        hmp = str(args.get("command-line", "")) if command == "human-monitor-command" else ""
        accepted = emulator.response == {"return": {}} or (
            bool(hmp) and emulator.response == {"return": ""}
        )
        if (command == "device_add" or hmp.startswith("device_add ")) and accepted:
            self.created_vcpus += self.threads
        for event in emulator.events:
            data = event.get("data", {})
            if event.get("event") == "DEVICE_DELETED" and "/thread[" not in data.get("path", ""):
                self.released_core = True


# ---------------------------------------------------------------------------
# Running examples
# ---------------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """How an example ended: ``match``, ``known-crash`` (with its name), or a finding."""

    kind: str
    steps_run: int
    crash: str | None = None
    report: str = ""


class Mismatch(AssertionError):
    """QEMU and the emulator answered a step differently (the message is the transcript)."""


class UnexpectedCrash(AssertionError):
    """QEMU died on a step no known crash predicts."""


def _transcript(
    example: Example, exchanges: list[tuple[Step, Exchange | None, Exchange | None]]
) -> list[str]:
    lines = Transcript(tuple(example.config.argv()), ()).lines()
    for step, qemu, emu in exchanges:
        lines.append(step.text())
        if step.request is None:
            for event in qemu.events if qemu else ():
                lines.append("<- " + compact(normalize(event)))
            continue
        if qemu is not None and emu is not None and qemu.normalized() == emu.normalized():
            lines.extend("<- " + compact(normalize(e)) for e in qemu.events)
            lines.append("<- " + compact(normalize(qemu.response)))
            continue
        if qemu is not None:
            lines.extend("<- (QEMU 7.2) " + compact(normalize(e)) for e in qemu.events)
            lines.append("<- (QEMU 7.2) " + compact(normalize(qemu.response)))
        if emu is not None:
            lines.extend("<- (emulator) " + compact(normalize(e)) for e in emu.events)
            lines.append("<- (emulator) " + compact(normalize(emu.response)))
    return lines


def _releases_a_core(exchange: Exchange) -> bool:
    """The step released a core (the emulator announced its DEVICE_DELETED)."""
    return any(
        e.get("event") == "DEVICE_DELETED" and "/thread[" not in e.get("data", {}).get("path", "")
        for e in exchange.events
    )


def run_example(example: Example, *, qemu_binary: str | None = None) -> Outcome:
    """Run ``example`` on fresh QEMU and emulator sessions; raise on a finding.

    Returns an :class:`Outcome` for a match or a known QEMU crash; raises
    :class:`Mismatch` or :class:`UnexpectedCrash` (the message is a QMP transcript).
    QEMU running SLOF (after ``cont``) on a busy host sometimes leaves its monitor
    unanswered for seconds: such an example is run again once, and if QEMU is
    still silent it ends as ``qemu-unresponsive`` (counted apart, not a mismatch).
    """
    for attempt in (1, 2):
        try:
            return _run_once(example, qemu_binary)
        except QemuUnresponsive:
            if attempt == 2:
                return Outcome("qemu-unresponsive", 0)
    raise AssertionError("unreachable")


def _run_once(example: Example, qemu_binary: str | None) -> Outcome:
    argv = example.config.argv()
    predictor = CrashPredictor.for_config(example.config)
    done: list[tuple[Step, Exchange | None, Exchange | None]] = []
    with (
        QemuSession(argv, binary=qemu_binary, timeout=RESPONSE_TIMEOUT_S) as qemu,
        EmulatorSession(argv) as emulator,
    ):
        for step in example.steps:
            if step.request is None:
                late_q = qemu.idle(step.idle_ms / 1000)
                late_e = emulator.idle(step.idle_ms / 1000)
                pair = (Exchange(None, late_q, None), Exchange(None, late_e, None))
                done.append((step, *pair))
                if compact(normalize(list(late_q))) != compact(normalize(list(late_e))):
                    raise Mismatch("\n".join(_transcript(example, done)))
                continue
            emu = emulator.execute(step.request)
            crash = predictor.before(step.request, emu)
            try:
                answer = qemu.execute(step.request)
            except QemuExited as died:
                done.append((step, None, emu))
                if crash is None and _releases_a_core(emu):
                    crash = "cpu-unplug-race"
                if crash is not None:
                    return Outcome("known-crash", len(done), crash)
                lines = _transcript(example, done)
                lines.append(f"# QEMU died: {died}")
                raise UnexpectedCrash("\n".join(lines)) from None
            done.append((step, answer, emu))
            if answer.normalized() != emu.normalized():
                lines = _transcript(example, done)
                if crash is not None:
                    lines.append(f"# (a known QEMU crash, {crash}, was expected here)")
                raise Mismatch("\n".join(lines))
            predictor.after(step.request, emu)
            if step.request.get("execute") == "quit":
                break
    return Outcome("match", len(done))


@attrs.define
class Tally:
    """What a run of examples found."""

    examples: int = 0
    steps: int = 0
    known_crashes: Counter[str] = attrs.field(factory=Counter)
    mismatches: int = 0
    seconds: float = 0.0
    #: A finding happened: the runs after it are hypothesis shrinking it, not new examples.
    found: bool = False
    #: Examples QEMU left unanswered twice (see :func:`run_example`).
    unresponsive: int = 0

    def add(self, outcome: Outcome) -> None:
        if self.found:
            return
        self.examples += 1
        self.steps += outcome.steps_run
        if outcome.crash is not None:
            self.known_crashes[outcome.crash] += 1
        if outcome.kind == "qemu-unresponsive":
            self.unresponsive += 1


def run_examples(
    count: int,
    seed: int,
    *,
    tally: Tally | None = None,
    qemu_binary: str | None = None,
    shrink: bool = True,
) -> Tally:
    """Run ``count`` generated examples from ``seed`` (hypothesis; a finding is shrunk and raised).

    The examples of one seed are always the same, so a finding replays with the
    same ``count`` and ``seed``.
    """
    result = tally if tally is not None else Tally()
    start = time.monotonic()
    phases = (Phase.generate, Phase.shrink) if shrink else (Phase.generate,)

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(examples())
    def campaign(example: Example) -> None:
        try:
            outcome = run_example(example, qemu_binary=qemu_binary)
        except AssertionError:
            if not result.found:
                result.examples += 1
                result.mismatches += 1
                result.found = True
            raise
        result.add(outcome)

    try:
        campaign()
    finally:
        result.seconds += time.monotonic() - start
    return result


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(chunk number, examples in it) covering ``total`` examples in chunks of ``size``."""
    number = 0
    while total > 0:
        n = min(size, total)
        yield number, n
        total -= n
        number += 1


def chunk_seed(base: int, chunk: int) -> int:
    """The seed of a chunk: every chunk (and so every worker) draws from its own range."""
    return base * 1_000_003 + chunk


def describe_known_crashes(names: Sequence[str]) -> list[str]:
    """Readable lines naming known QEMU crashes and where each is recorded."""
    return [f"{name}: {KNOWN_CRASHES[name]}" for name in names]
