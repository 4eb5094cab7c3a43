"""libvirt's conversations with QEMU 7.2, replayed to this emulator.

tests/data/libvirt/ holds every QMP message libvirt 9.0 exchanged with real QEMU
7.2: the capability probe (``probe.jsonl``, under ``-machine none``) and a running
domain's session through two ``setvcpus`` (``session.jsonl``). Each request is sent
to the emulator in the same order, and its reply is compared with QEMU's where the
two emulate the same thing: equal for the machine's own answers (versions, hotplug,
events, migration capabilities), and for the self-descriptions (types, machines,
CPU models, options, schema) every fact the emulator states must be QEMU's fact for
the same name — the emulator lists less, never something else.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from machine.board.build import build_machine
from machine.config.cmdline import parse_argv
from machine.monitor.control import MachineControl
from machine.monitor.none_machine import NoneMachineCommands, NoneMachineHost
from machine.monitor.qmp_commands import CommandTable, QmpCommands
from machine.monitor.qmp_protocol import QmpConnection

DATA = Path(__file__).parent / "data" / "libvirt"


def exchanges(name: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(request, QEMU's messages up to and including its reply) in order."""
    out: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for line in (DATA / name).read_text().splitlines():
        record = json.loads(line)
        if record["dir"] == "->":
            out.append((record["msg"], []))
        elif out:
            out[-1][1].append(record["msg"])
    return out


def ask(conn: QmpConnection, request: dict[str, Any]) -> list[dict[str, Any]]:
    conn.receive_data(json.dumps(request).encode())
    data = conn.data_to_send()
    return [json.loads(line) for line in data.split(b"\r\n") if line]


def connected(commands: CommandTable) -> QmpConnection:
    conn = QmpConnection(commands)
    conn.connected()
    conn.data_to_send()
    return conn


def replies_to(commands: CommandTable, name: str) -> list[tuple[dict[str, Any], Any, Any]]:
    """(request, QEMU's reply, the emulator's reply) for every exchange of a recording."""
    conn = connected(commands)
    out = []
    for request, qemu in exchanges(name):
        ours = ask(conn, request)
        out.append((request, qemu[-1], ours[-1]))
    return out


@pytest.fixture(scope="module")
def probe() -> dict[str, list[tuple[dict[str, Any], Any, Any]]]:
    config = parse_argv(
        ["-S", "-no-user-config", "-nodefaults", "-nographic", "-machine", "none,accel=tcg"]
    )
    assert config.machine_opts["type"] == "none" and config.process.no_user_config
    commands = NoneMachineCommands(NoneMachineHost(freeze=True, is_kvm=False, warn=print))
    by_command: dict[str, list[tuple[dict[str, Any], Any, Any]]] = {}
    for request, qemu, ours in replies_to(commands, "probe.jsonl"):
        by_command.setdefault(request["execute"], []).append((request, qemu, ours))
    return by_command


def only(probe: dict[str, Any], name: str) -> tuple[Any, Any]:
    [(_, qemu, ours)] = probe[name]
    return qemu["return"], ours["return"]


def test_every_probe_request_is_answered_with_its_id(probe: dict[str, Any]) -> None:
    for exchanges_of in probe.values():
        for request, qemu, ours in exchanges_of:
            assert ours["id"] == request["id"] == qemu["id"]
            assert ("return" in ours) or ours["error"]["class"] in ("DeviceNotFound",
                                                                     "CommandNotFound")  # fmt: skip


def test_version_target_and_migration_capabilities_are_qemus(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "query-version")
    assert ours["qemu"] == qemu["qemu"]
    assert only(probe, "query-target")[1] == only(probe, "query-target")[0]
    qemu_caps, our_caps = only(probe, "query-migrate-capabilities")
    assert our_caps == qemu_caps


def test_kvm_is_the_modeled_one(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "query-kvm")
    assert set(ours) == set(qemu)
    assert ours == {"enabled": False, "present": True}  # accel=tcg; the modeled KVM is there


def test_machines_are_qemus_entries(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "query-machines")
    theirs = {m["name"]: m for m in qemu}
    assert [m["name"] for m in ours if m["name"].startswith("pseries")] == sorted(
        (n for n in theirs if n.startswith("pseries")),
        key=lambda n: [m["name"] for m in ours].index(n),
    )
    for entry in ours:
        assert entry == theirs[entry["name"]]
        assert list(entry) == list(theirs[entry["name"]])  # QEMU's member order


def test_types_have_qemus_parents(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "qom-list-types")
    parents = {t["name"]: t.get("parent") for t in qemu}
    names = [t["name"] for t in ours]
    assert "power9_v2.0-spapr-cpu-core" in names and "pseries-7.2-machine" in names
    assert "tcg-accel" in names and "secret" in names
    for t in ours:
        if t["name"] == "kvm-accel":  # the modeled KVM; this QEMU (an x86 host) has none
            assert t["parent"] == "accel" and "tcg-accel" in parents
            continue
        assert t["name"] in parents, t
        assert t.get("parent") == parents[t["name"]], t


def test_cpu_aliases_name_qemus_types(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "query-cpu-definitions")
    theirs = {c["name"]: c for c in qemu}
    assert ours
    for cpu in ours:
        assert set(cpu) == set(theirs[cpu["name"]])
        if theirs[cpu["name"]]["typename"]:
            assert cpu == theirs[cpu["name"]]


def test_device_properties_only_for_devices_the_emulator_creates(probe: dict[str, Any]) -> None:
    for request, _qemu, ours in probe["device-list-properties"]:
        assert ours["error"] == {
            "class": "DeviceNotFound",
            "desc": f"Device '{request['arguments']['typename']}' not found",
        }


def test_class_properties_are_a_subset_of_qemus(probe: dict[str, Any]) -> None:
    for request, qemu, ours in probe["qom-list-properties"]:
        theirs = {p["name"]: p["type"] for p in qemu["return"]}
        assert ours["return"], request
        for prop in ours["return"]:
            assert theirs.get(prop["name"]) == prop["type"], (request, prop)


def test_command_line_options_are_a_subset_of_qemus(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "query-command-line-options")
    theirs = {o["option"]: {p["name"]: p["type"] for p in o["parameters"]} for o in qemu}
    assert {"sandbox", "overcommit", "msg", "name", "mon", "rtc", "boot-opts"} <= {
        o["option"] for o in ours
    }
    for option in ours:
        for param in option["parameters"]:
            assert theirs[option["option"]][param["name"]] == param["type"], (option, param)


def _schema_index(schema: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in schema}


def _members(index: dict[str, dict[str, Any]], name: str) -> dict[str, bool]:
    entity = index[name]
    return {m["name"]: "default" in m for m in entity.get("members", [])}


def test_schema_commands_and_events_are_qemus(probe: dict[str, Any]) -> None:
    qemu, ours = only(probe, "query-qmp-schema")
    theirs, mine = _schema_index(qemu), _schema_index(ours)
    commands = [e for e in ours if e["meta-type"] == "command"]
    names = {e["name"] for e in commands}
    assert {"query-hotpluggable-cpus", "device_add", "device_del", "query-cpus-fast"} <= names
    qemu_commands = {c["name"] for c in only(probe, "query-commands")[0]}
    assert {c["name"] for c in only(probe, "query-commands")[1]} == names <= qemu_commands
    for entity in ours:
        if entity["meta-type"] not in ("command", "event"):
            continue
        assert theirs[entity["name"]]["meta-type"] == entity["meta-type"]
        ours_args = _members(mine, entity["arg-type"])
        their_args = _members(theirs, theirs[entity["name"]]["arg-type"])
        for arg, optional in ours_args.items():
            assert their_args.get(arg) == optional, (entity["name"], arg)


def _session_machine() -> QmpCommands:
    """The domain of session.jsonl as libvirt started it, without the USB controller and balloon."""
    words = [w for w in (DATA / "domain-cmdline.txt").read_text().replace("\\\n", " ").split()]
    argv = ["-M", "pseries-7.2", "-cpu", "POWER9", "-m", "1024", "-S", "-smp",
            "2,maxcpus=4,sockets=1,dies=1,cores=4,threads=1", "-nodefaults",
            "-display", "none"]  # fmt: skip
    assert "pseries-7.2,usb=off,dump-guest-core=off,memory-backend=ppc_spapr.ram" in words
    machine = build_machine(argv, io.StringIO())
    machine.reset()
    return QmpCommands(MachineControl(machine))


def test_session_replies_match_qemus() -> None:
    commands = _session_machine()
    conn = connected(commands)
    commands.control.sinks.append(conn.event)
    compared = 0
    for request, qemu_messages in exchanges("session.jsonl"):
        name = request["execute"]
        qemu = [m for m in qemu_messages if "event" not in m]
        ours = ask(conn, request)
        if name in ("balloon", "query-balloon"):  # the balloon is not modeled (refused at start)
            assert ours[-1]["error"]["class"] == "CommandNotFound"
            continue
        if name == "qom-list":  # QEMU's domain had the USB controller and the balloon
            assert ours[-1]["return"] == [{"name": "type", "type": "string"}]
            continue
        if name == "query-chardev":  # the socket is the runner's (test_libvirt_live)
            continue
        if name == "query-cpus-fast":
            for entry in qemu[-1]["return"] + ours[-1]["return"]:
                entry.pop("thread-id")
        if name == "device_add":
            commands.control.settle()
        if name == "device_del":
            commands.control.settle()
            ours += [json.loads(x) for x in conn.data_to_send().split(b"\r\n") if x]
            events = [m["data"] for m in ours if m.get("event") == "DEVICE_DELETED"]
            assert events[-1] == {"device": "vcpu2", "path": "/machine/peripheral/vcpu2"}
            assert ours[0] == {"return": {}, "id": request["id"]} or ours[-1].get("event")
            compared += 1
            continue
        reply = [m for m in ours if "event" not in m][-1]
        assert reply == qemu[-1], name
        compared += 1
    assert compared >= 15


def test_reconnecting_drivers_get_qemus_replies() -> None:
    """Two later embedded virsh processes reconnect and re-read the machine (reconnect.jsonl).

    Each new connection begins with ``qmp_capabilities``; every reply must be
    QEMU's, since libvirt kills the domain when any of these queries fails.
    """
    commands = _session_machine()
    conn = connected(commands)
    ask(conn, {"execute": "qmp_capabilities"})
    events_on = [{"capability": "events", "state": True}]
    ask(conn, {"execute": "migrate-set-capabilities", "arguments": {"capabilities": events_on}})
    ask(conn, {"execute": "cont"})
    compared = connections = 0
    for request, qemu_messages in exchanges("reconnect.jsonl"):
        name = request["execute"]
        if name == "qmp_capabilities":  # a new virsh, a new connection to the same machine
            conn = connected(commands)
            commands.control.sinks.append(conn.event)
            connections += 1
        qemu = [m for m in qemu_messages if "event" not in m]
        ours = ask(conn, request)
        if name == "query-chardev":  # the socket is the runner's (test_libvirt_live)
            continue
        if name == "query-cpus-fast":
            for entry in qemu[-1]["return"] + ours[-1]["return"]:
                entry.pop("thread-id")
        if name in ("device_add", "device_del"):
            commands.control.settle()
            ours += [json.loads(x) for x in conn.data_to_send().split(b"\r\n") if x]
        if name == "device_del":
            deleted = [m["data"] for m in ours if m.get("event") == "DEVICE_DELETED"]
            assert deleted[-1] == {"device": "vcpu2", "path": "/machine/peripheral/vcpu2"}
        reply = next(m for m in ours if "event" not in m)
        assert reply == qemu[-1], name
        compared += 1
    assert connections == 2 and compared == 24
