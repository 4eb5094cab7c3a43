"""libvirt's domain command line (tests/data/libvirt/domain-cmdline.txt), read as QEMU reads it.

Refusals are QEMU 7.2's texts, checked against qemu-system-ppc64 7.2 by hand when
written (each is what QEMU printed for the same option).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from machine.config.cmdline import StartupError, parse_argv
from machine.config.startup import startup
from spapr.errors import QemuError

DATA = Path(__file__).parent / "data" / "libvirt"


def libvirt_argv(tmp_path: Path, *, devices: bool) -> list[str]:
    lines = (DATA / "domain-cmdline.txt").read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if not line.endswith("\\"))
    text = " ".join(line.rstrip("\\") for line in lines[: end + 1])
    key = tmp_path / "master-key.aes"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    text = text.replace("$ROOT/lib/qemu/domain-1-hp1/master-key.aes", str(key))
    words = shlex.split(text)[1:]
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] == "-chardev" or words[i] == "-mon":  # the fd is libvirt's, not ours
            i += 2
            continue
        if not devices and words[i] == "-device":
            i += 2
            continue
        out.append(words[i])
        i += 1
    return out


def test_libvirts_domain_line_is_accepted_without_usb_and_balloon(tmp_path: Path) -> None:
    config = parse_argv(libvirt_argv(tmp_path, devices=False))
    assert config.name == "hp1" and config.freeze and config.nodefaults
    assert config.process.uuid == "b3fec80e-3f66-4142-b17f-a781c435cfb4"
    assert config.process.no_shutdown and config.process.msg_timestamp and config.process.sandbox
    assert [s.id for s in config.secrets] == ["masterKey0"]
    assert config.process.audiodevs == ["audio1"]
    setup = startup(config)
    assert setup.ram_size == 1 << 30


def test_the_usb_controller_is_refused_as_qemu_refuses_unknown_devices(tmp_path: Path) -> None:
    import io

    from machine.board.build import build_machine

    with pytest.raises(QemuError) as exc:
        build_machine(libvirt_argv(tmp_path, devices=True), io.StringIO())
    assert exc.value.report().endswith("'qemu-xhci' is not a valid device model name")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["-uuid", "xyz"], "-uuid xyz: failed to parse UUID string: wrong format"),
        (["-overcommit", "mem-lock=maybe"],
         "-overcommit mem-lock=maybe: Parameter 'mem-lock' expects 'on' or 'off'"),
        (["-overcommit", "foo=on"], "-overcommit foo=on: Invalid parameter 'foo'"),
        (["-msg", "timestamp=x"], "-msg timestamp=x: Parameter 'timestamp' expects 'on' or 'off'"),
        (["-boot", "strict=x"], "Parameter 'boot.strict' expects 'on' or 'off'"),
        (["-sandbox", "on,foo=x"], "-sandbox on,foo=x: Invalid parameter 'foo'"),
        (["-audiodev", "none"], "-audiodev none: Parameter 'id' is missing"),
        (["-mon", "chardev=nope,mode=control"],
         '-mon chardev=nope,mode=control: chardev "nope" not found'),
    ],
)  # fmt: skip
def test_refusals_are_qemus(args: list[str], error: str) -> None:
    with pytest.raises(StartupError) as exc:
        parse_argv(["-M", "pseries", *args])
    assert exc.value.report() == f"qemu-system-ppc64: {error}"


def test_memory_backend_must_exist_and_match_m() -> None:
    backend = '{"qom-type":"memory-backend-ram","id":"m","size":1073741824}'
    for extra, error in [
        (["-machine", "memory-backend=x"], "Memory backend 'x' not found"),
        (["-machine", "memory-backend=m", "-m", "512"],
         "Machine memory size does not match the size of the memory backend"),
    ]:  # fmt: skip
        with pytest.raises(StartupError) as exc:
            startup(parse_argv(["-M", "pseries", "-object", backend, *extra]))
        assert exc.value.report() == f"qemu-system-ppc64: {error}"


def test_probe_process_daemonizes_answers_and_ends_on_sigterm(tmp_path: Path) -> None:
    """libvirt's probe line: the parent returns once the socket listens; SIGTERM ends it."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    sock_path, pid_path = tmp_path / "qmp.sock", tmp_path / "qemu.pid"
    argv = [sys.executable, "-m", "spapr", "-S", "-no-user-config", "-nodefaults", "-nographic",
            "-machine", "none,accel=kvm:tcg", "-qmp", f"unix:{sock_path},server=on,wait=off",
            "-pidfile", str(pid_path), "-daemonize"]  # fmt: skip
    assert subprocess.run(argv, timeout=60, check=False).returncode == 0
    pid = int(pid_path.read_text())
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock_path))
            reader = s.makefile("rb")
            assert "QMP" in json.loads(reader.readline())
            s.sendall(b'{"execute":"qmp_capabilities"}{"execute":"query-target","id":1}')
            assert json.loads(reader.readline()) == {"return": {}}
            assert json.loads(reader.readline()) == {"return": {"arch": "ppc64"}, "id": 1}
    finally:
        os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not pid_path.exists():
            break
        time.sleep(0.05)
    assert not pid_path.exists() and not sock_path.exists()
