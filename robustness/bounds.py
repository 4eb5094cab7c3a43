"""Area 6: resource bounds — message size, nesting, pending events, queued output, memory.

Each bound is pushed past its limit and the rule checked:

* a message over the size bound gets QEMU's "JSON token size limit exceeded" and a
  clean close; nesting past 1024 levels gets "JSON nesting depth limit exceeded"
  and the connection goes on;
* ``device_del`` repeated while the guest is stopped does not grow the pending-event
  queue past its bound, and no trace event lists more than a few pending entries;
* a client that sends and never reads holds at most the output bound, while
  another client is served;
* after many hotplug cycles what the machine keeps in memory (trace events, the
  guest's RTAS record and log, QMP events, the journal's memory part) is within
  its bounds, and a megabyte-long device id is not kept over and over.

The long version adds the soak: 20,000 add/remove cycles with the reference
guest, the process's resident memory noted at the start (after a warm-up), the
middle and the end; growth from the middle to the end is a failure.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import tempfile
import time
from pathlib import Path

import guest.kernel
import guest.log
from machine.board import journal, pseries
from machine.monitor.control import MachineControl
from machine.monitor.qmp_json import DEFAULT_MAX_MESSAGE_BYTES, MAX_NESTING
from machine.monitor.qmp_server import OUTPUT_LIMIT
from robustness.harness import P9, P9_CORE, new_control, served
from robustness.report import AreaReport, Progress
from spapr import events, trace

#: Growth of resident memory from the soak's middle to its end that counts as growth.
SOAK_GROWTH_LIMIT = 4 << 20


def rss_bytes() -> int:
    """The process's resident memory now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    import resource

    return pages * resource.getpagesize()


def _talk(path: str, payload: bytes, expect: int) -> tuple[list[bytes], bool]:
    """Negotiate, send, read ``expect`` lines; (lines, whether the server closed)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        buf = b""
        sock.sendall(b'{"execute":"qmp_capabilities"}' + payload)
        closed = False
        while buf.count(b"\r\n") < expect:
            chunk = sock.recv(1 << 20)
            if not chunk:
                closed = True
                break
            buf += chunk
        return [ln for ln in buf.split(b"\r\n") if ln], closed


def _messages(report: AreaReport) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="campaign-bounds-") as tmp,
        served(P9, Path(tmp) / "q.sock") as server,
    ):
        path = str(server.sock_path)
        report.count("message size")
        big = b'{"execute":"qom-get","arguments":{"path":"' + b"a" * DEFAULT_MAX_MESSAGE_BYTES
        lines, closed = _talk(path, big + b'"}}{"execute":"query-status"}', 4)
        if not (closed and b"JSON token size limit exceeded" in lines[-1]):
            report.fail("message size", "a 1 MiB string", f"{lines[-1:]}, closed={closed}")
        report.count("nesting")
        deep = b"[" * (MAX_NESTING + 1)
        lines, closed = _talk(path, deep + b"\n" + b'{"execute":"query-status"}', 4)
        if closed or b"nesting depth" not in lines[2] or b"return" not in lines[-1]:
            report.fail("nesting", f"{MAX_NESTING + 1} brackets", f"{lines[2:]}")
        report.count("queued output")
        lazy = socket.socket(socket.AF_UNIX)
        lazy.connect(path)
        lazy.settimeout(0.5)
        with contextlib.suppress(OSError):  # no longer read: as it should be
            lazy.sendall(
                b'{"execute":"qmp_capabilities"}' + b'{"execute":"query-cpus-fast"}' * 200_000
            )
        started = time.monotonic()
        lines, _closed = _talk(path, b'{"execute":"query-status"}', 3)
        waited = time.monotonic() - started
        held = server.inspect(
            lambda _c: (
                max(
                    (
                        c.transport.get_write_buffer_size()
                        for c in server.server.clients
                        if c.transport
                    ),
                    default=0,
                )
                if server.server
                else 0
            )
        )
        lazy.close()
        if b"return" not in lines[-1] or waited > 5 or held > OUTPUT_LIMIT:
            report.fail("queued output", "200000 requests never read", f"held {held} B")
        report.note(
            f"a client that never reads: {held >> 10} KiB held (bound {OUTPUT_LIMIT >> 20} MiB)"
        )


def _pending(report: AreaReport) -> None:
    report.count("pending events")
    control = new_control(P9)
    control.device_add({"driver": P9_CORE, "id": "h1", "core-id": 1})
    control.settle()
    control.stop()
    for _ in range(2 * events.MAX_PENDING + 50):
        control.device_del("h1")
    machine = control.machine
    longest = max(
        (len(e.fields.get("pending", [])) for e in machine.trace.select("event_queue")), default=0
    )
    if len(machine.events) > events.MAX_PENDING or longest > events.TRACE_PENDING_SHOWN:
        report.fail(
            "pending events",
            f"device_del x{2 * events.MAX_PENDING + 50} while stopped",
            f"{len(machine.events)} pending, a trace event lists {longest}",
        )
    control.cont()
    control.settle()
    if machine.query_hotpluggable_cpus()[-2].get("qom-path") is not None:
        report.fail("pending events", "cont after the repeated device_del", "the core stayed")


def _cycle(control: MachineControl, dev_id: str = "c1") -> None:
    control.device_add({"driver": P9_CORE, "id": dev_id, "core-id": 1})
    control.settle()
    control.device_del(dev_id)
    control.settle()


def _memory_kept(report: AreaReport, cycles: int) -> None:
    report.count("kept in memory")
    control = new_control(P9)
    machine = control.machine
    for _ in range(cycles):
        _cycle(control)
    _cycle(control, "x" * (1 << 20))  # a megabyte-long id: kept shortened, not whole
    kernel = machine.guest.kernel
    checks = {
        "trace events": (len(machine.trace.events), machine.trace.capacity * 3 // 2),
        "guest RTAS record": (len(kernel.rtas_trace), guest.kernel.RTAS_TRACE_KEEP * 3 // 2),
        "guest log": (len(machine.guest.log.entries), guest.log.LOG_KEEP * 3 // 2),
        "QMP events": (len(machine.qmp_events), pseries.QMP_EVENTS_KEEP * 3 // 2),
        "journal in memory": (machine.journal.in_memory, 2 * journal.JOURNAL_KEEP),
    }
    for what, (have, bound) in checks.items():
        if have > bound:
            report.fail("kept in memory", f"{cycles} cycles", f"{what}: {have} > {bound}")
    longest = max(len(str(e.fields)) for e in machine.trace.events)
    kept_ids = max(len(str(e.data)) for e in machine.qmp_events)
    if longest > 64 << 10 or kept_ids > 4 << 10:
        report.fail("kept in memory", "a 1 MiB device id", f"{longest} B in a trace event")
    report.note(
        f"after {cycles} cycles: {len(machine.trace.events)} trace events kept "
        f"({machine.trace.dropped} dropped), journal {len(machine.journal)} "
        f"({machine.journal.in_memory} in memory)"
    )


def soak(report: AreaReport, cycles: int, progress: Progress | None) -> None:
    """The long soak: RSS at the start (after warm-up), the middle and the end."""
    report.count("soak cycles", cycles)
    control = new_control(P9)
    warm = min(500, cycles // 10)
    for _ in range(warm):
        _cycle(control)
    gc.collect()
    start = rss_bytes()
    middle = 0
    started = time.monotonic()
    for n in range(1, cycles + 1):
        _cycle(control)
        if n == cycles // 2:
            gc.collect()
            middle = rss_bytes()
        if progress is not None and n % 500 == 0:
            progress.step(n, f"RSS {rss_bytes() >> 20} MiB")
    gc.collect()
    end = rss_bytes()
    took = time.monotonic() - started
    report.note(
        f"soak of {cycles} hotplug cycles with the reference guest ({took:.0f} s): RSS "
        f"{start / 2**20:.1f} MiB at the start, {middle / 2**20:.1f} MiB in the middle, "
        f"{end / 2**20:.1f} MiB at the end"
    )
    if end - middle > SOAK_GROWTH_LIMIT:
        report.fail("soak", f"{cycles} cycles", f"RSS grew {(end - middle) >> 20} MiB")


def run(report: AreaReport, soak_cycles: int, *, progress: Progress | None = None) -> None:
    _messages(report)
    _pending(report)
    _memory_kept(report, 60 if soak_cycles == 0 else 600)
    report.note(
        f"bounds: message {DEFAULT_MAX_MESSAGE_BYTES >> 20} MiB, nesting {MAX_NESTING}, "
        f"pending events {events.MAX_PENDING}, client output {OUTPUT_LIMIT >> 20} MiB, "
        f"trace {trace.DEFAULT_KEEP} events, journal {journal.JOURNAL_KEEP} entries in memory"
    )
    if soak_cycles:
        soak(report, soak_cycles, progress)
