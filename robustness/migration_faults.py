"""Area 4: migration faults — broken streams, mismatched targets, targets that go away.

The source is a running machine with two hot-plugged cores. Its stream is saved
once, then broken: truncated at many points, bytes flipped, members removed or
given other types, the version and format changed, the journal and the sections
tampered with. Targets are started with the right command line and with wrong
ones (a missing, extra or different ``-device``, another ``-smp``, ``-cpu``, ``-m``
or machine version).

The rules: a target that cannot become the source refuses with a clear error (a
``QemuError`` or a start-up refusal: one line, QEMU's text where QEMU has one, never
an exception) and, through the command line, exits non-zero with that line on
stderr; a target that loads must be the source exactly; the source is untouched by
whatever happened to its targets and can migrate again, to a good target that
resumes it. A target that accepts the stream's connection and dies makes the
source's migration fail, not the source: it keeps running, unchanged, and migrates
again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine.cli.main import main
from machine.config.cmdline import StartupError
from machine.migration.replay import incoming_machine, save
from machine.monitor.control import MachineControl
from robustness.harness import P9, P9_CORE, fingerprint, new_control, wait_for
from robustness.report import AreaReport, Progress
from spapr.errors import QemuError

PROG = "qemu-system-ppc64:"
#: The source's command line (new_control adds -seed 1; the guest comes from the stream).
BASE = [*P9, "-seed", "1"]
DEVICES = ["-device", f"{P9_CORE},id=h1,core-id=1", "-device", f"{P9_CORE},id=h2,core-id=2"]

Mutation = Callable[[dict[str, Any]], None]


def _source() -> MachineControl:
    control = new_control(P9)
    control.device_add({"driver": P9_CORE, "id": "h1", "core-id": 1})
    control.settle()
    control.device_add({"driver": P9_CORE, "id": "h2", "core-id": 2})
    control.settle()
    return control


def _json_mutations(rng: random.Random) -> list[tuple[str, Mutation]]:
    def set_path(*path: Any, value: Any) -> Mutation:
        def mutate(doc: dict[str, Any]) -> None:
            node: Any = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value

        return mutate

    def drop(*path: Any) -> Mutation:
        def mutate(doc: dict[str, Any]) -> None:
            node: Any = doc
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]

        return mutate

    out: list[tuple[str, Mutation]] = [
        ("version 2", set_path("version", value=2)),
        ("version '1'", set_path("version", value="1")),
        ("format", set_path("format", value="qemu-savevm")),
        ("no journal", drop("journal")),
        ("journal not a list", set_path("journal", value={"a": 1})),
        ("no sections", drop("sections")),
        ("sections a list", set_path("sections", value=[])),
        ("no source", drop("source")),
        ("time negative", set_path("source", "time_ns", value=-1)),
        ("time a string", set_path("source", "time_ns", value="5")),
        ("argv not a list", set_path("source", "argv", value="x")),
        ("argv other smp", set_path("source", "argv", value=[*P9[:5], "2,maxcpus=4", *P9[6:]])),
        ("argv seedless", set_path("source", "argv", value=P9)),
        ("runstate unknown", set_path("source", "runstate", value="exploded")),
        ("journal entry unknown", set_path("journal", 0, "command", value="format_disk")),
        ("journal entry time", set_path("journal", 0, "t", value=10**20)),
        ("journal entry args", set_path("journal", 0, "args", value={"driver": P9_CORE})),
        ("journal entry core", set_path("journal", 0, "args", "core-id", value=3)),
        ("journal entry dropped", drop("journal", 1)),
        ("journal entry deep", set_path("journal", 0, "args", "x", value=[[[[[[1]]]]]])),
        ("section drc state", set_path("sections", "spapr_drc", 0, "state", value=99)),
        ("section cores", set_path("sections", "cores", value=[])),
        ("section guest", set_path("sections", "guest", value=None)),
        ("extra member", set_path("extra", value=1)),
    ]
    rng.shuffle(out)
    return out


TARGETS: list[tuple[str, list[str]]] = [
    ("no -device", [*BASE]),
    ("one -device missing", [*BASE, *DEVICES[:2]]),
    ("extra -device", [*BASE, *DEVICES, "-device", f"{P9_CORE},id=h3,core-id=3"]),
    ("other id", [*BASE, "-device", f"{P9_CORE},id=x1,core-id=1", *DEVICES[2:]]),
    ("other core-id", [*BASE, "-device", f"{P9_CORE},id=h1,core-id=3", *DEVICES[2:]]),
    ("other -smp", [*BASE[:5], "1,maxcpus=8", *BASE[6:], *DEVICES]),
    ("other -cpu", [*BASE[:3], "POWER8", *BASE[4:], *DEVICES]),
    ("other -m", [*BASE[:7], "2G", *BASE[8:], *DEVICES]),
    ("other machine version", ["-M", "pseries-7.1", *BASE[2:], *DEVICES]),
    ("other -seed", [*P9, "-seed", "2", *DEVICES]),
]


def run(report: AreaReport, rounds: int, seed: int, *, progress: Progress | None = None) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="campaign-migration-") as tmp_name:
        tmp = Path(tmp_name)
        source = _source()
        before = fingerprint(source.machine)
        good = tmp / "good.json"
        save(source.machine, str(good))
        data = good.read_bytes()
        document = json.loads(data)
        cases: list[tuple[str, str, bytes, list[str]]] = []
        for cut in sorted({0, 1, 7, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1}):
            cases.append(("truncated", f"cut at {cut} of {len(data)}", data[:cut], BASE + DEVICES))
        for n in range(8 * rounds):
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            cases.append(("corrupted", f"bytes flipped #{n}", bytes(flipped), BASE + DEVICES))
        for name, mutate in _json_mutations(rng):
            doc = json.loads(data)
            try:
                mutate(doc)
            except (KeyError, IndexError, TypeError):
                continue
            cases.append(("tampered", name, json.dumps(doc).encode(), BASE + DEVICES))
        for name, argv in TARGETS:
            cases.append(("wrong target", name, data, argv))
        for n, (kind, name, stream, argv) in enumerate(cases, 1):
            report.count(kind)
            path = tmp / f"case{n}.json"
            path.write_bytes(stream)
            problem = _load(path, argv, document)
            if problem:
                report.fail(kind, name, problem)
            if progress is not None:
                progress.step(n)
        for name, argv, stream in (
            ("command line: truncated stream", BASE + DEVICES, data[: len(data) // 2]),
            ("command line: wrong -device", BASE, data),
        ):
            report.count("exit status")
            path = tmp / "cli.json"
            path.write_bytes(stream)
            problem = _exit_status(argv, path)
            if problem:
                report.fail("exit status", name, problem)
        if fingerprint(source.machine) != before:
            report.fail("source", "after the broken targets", "the source changed")
        _again(report, source, before, tmp)
        _dying_target(report, source, tmp)
        _unix_target_refuses(report, tmp, data)


def _load(path: Path, argv: list[str], source_doc: dict[str, Any]) -> str | None:
    """Load ``path`` on a target built from ``argv``: a clear refusal or the source itself."""
    try:
        target = incoming_machine(str(path), [*argv, "-incoming", f"file:{path}"], io.StringIO())
    except (QemuError, StartupError) as exc:
        text = exc.message if isinstance(exc, QemuError) else " ".join(exc.stderr_lines("q"))
        if not text or "\n" in text.strip() or "Traceback" in text:
            return f"an unclear refusal: {text!r}"
        return None
    except Exception as exc:
        return f"raised {exc!r} instead of refusing"
    # it loaded: it must then be the source (same hotplug state), not something else
    with contextlib.suppress(Exception):
        loaded = [c.qom_path for c in target.cores]
        wanted = [c["qom_path"] for c in source_doc["sections"]["cores"]]
        if loaded != wanted:
            return f"loaded as a different machine: cores {loaded} != {wanted}"
    return None


def _exit_status(argv: list[str], path: Path) -> str | None:
    """Through the command line: a non-zero status and one ``qemu-system-ppc64:`` line."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main([*argv, "-incoming", f"file:{path}", "-qmp", "unix:/nonexistent/x"])
    lines = [ln for ln in err.getvalue().splitlines() if "warning:" not in ln]
    if status == 0:
        return "the target exited 0"
    if not lines or not lines[-1].startswith(PROG) or "Traceback" in err.getvalue():
        return f"stderr is not a clear error: {err.getvalue()[-400:]!r}"
    return None


def _again(report: AreaReport, source: MachineControl, before: dict[str, Any], tmp: Path) -> None:
    """The source migrates again, to a good target that is the source."""
    report.count("migrates again")
    path = tmp / "again.json"
    source.migrate(f"file:{path}")
    if source.runstate.state.value != "postmigrate":
        report.fail("migrates again", "migrate file:", "the source did not complete")
    target = incoming_machine(
        str(path), [*BASE, *DEVICES, "-incoming", f"file:{path}"], io.StringIO()
    )
    got, want = fingerprint(target), before
    if got["hotpluggable"] != want["hotpluggable"] or got["drcs"] != want["drcs"]:
        report.fail("migrates again", "the good target", "the target is not the source")
    source.cont()


def _dying_target(report: AreaReport, source: MachineControl, tmp: Path) -> None:
    """A target that takes the connection and dies: the migration fails, the source runs on."""
    report.count("target dies")
    sock_path = tmp / "dying.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(1)

    def die() -> None:
        conn, _ = listener.accept()
        conn.recv(100)
        conn.close()

    thread = threading.Thread(target=die, daemon=True)
    thread.start()
    before = fingerprint(source.machine)
    with contextlib.suppress(QemuError):
        source.migrate(f"unix:{sock_path}")
    thread.join(5)
    listener.close()
    status = source.migration.query().get("status")
    if status != "failed" or not source.runstate.running:
        report.fail("target dies", "unix: target closes mid-stream", f"status {status}")
    if fingerprint(source.machine) != before:
        report.fail("target dies", "unix: target closes mid-stream", "the source changed")
    path = tmp / "after-dying.json"
    source.migrate(f"file:{path}")
    if source.runstate.state.value != "postmigrate":
        report.fail("target dies", "migrating again", "the source could not migrate again")
    source.cont()


def _unix_target_refuses(report: AreaReport, tmp: Path, data: bytes) -> None:
    """A target process listening on unix: gets a corrupted stream: status 1, one clear line."""
    report.count("target process")
    sock = tmp / "incoming.sock"
    qmp = tmp / "qmp.sock"
    argv = [sys.executable, "-m", "spapr", *BASE, *DEVICES, "-incoming", f"unix:{sock}"]
    argv += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
    )
    try:
        if not wait_for(sock.exists, 30):
            report.fail("target process", "unix: target", "the target never listened")
            return
        time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(sock))
            client.sendall(data[: len(data) // 2] + b"\x00garbage")
        status = proc.wait(timeout=30)
        err = proc.stderr.read().decode() if proc.stderr else ""
        last = [ln for ln in err.splitlines() if "warning:" not in ln][-1:]
        if status == 0 or not last or not last[0].startswith(f"{PROG} load of migration failed"):
            report.fail("target process", "unix: corrupted stream", f"status {status}: {err!r}")
        if sock.exists() or qmp.exists():
            report.fail("target process", "unix: corrupted stream", "a socket file was left")
    except subprocess.TimeoutExpired:
        report.fail("target process", "unix: corrupted stream", "the target hung")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
