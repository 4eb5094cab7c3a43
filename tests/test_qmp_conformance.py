"""Every QEMU 7.2 QMP transcript of the oracle, replayed through qemu.qmp against the emulator.

For each transcript the emulator starts with the transcript's command line, the
public ``qemu.qmp`` client negotiates and sends the recorded requests one by one,
and each response must equal QEMU's — member order included (QMP prints objects
in QDict order) — with the same events before it. Normalised away: event
timestamps, host thread ids (``thread-id``, ``thread_id=`` in HMP text), and the
greeting's ``package`` and ``capabilities`` (this server names itself and does
not offer ``oob``, as it has no exec-oob). Nothing else is filtered: ``qom-list``
of ``/machine`` and ``/machine/unattached`` (with the PCI host bridge and the
parts the emulator does not model) and ``info qom-tree``/``info qtree`` must
come out exactly.

The three ``defect_*`` transcripts end where QEMU 7.2 crashed; the emulator gives
the behaviour QEMU intends instead (checked at the end of each).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_qmp_harness import (
    DATA,
    MANIFEST,
    QMP_DATA,
    emulator,
    normalize,
    oracle_argv,
    qmp_client,
    transcript,
)

#: Manifest name -> file in tests/data.
TRANSCRIPTS: dict[str, Path] = {}
for _name in sorted(MANIFEST):
    if not _name.endswith(".jsonl"):
        continue
    _group, _, _file = _name.partition("/")
    _path = {
        "qmp": QMP_DATA / _file,
        "errors": QMP_DATA / "errors" / _file,
        "trace": QMP_DATA / "trace" / _file,
        "hmp": DATA / "hmp" / _file,
    }[_group]
    TRANSCRIPTS[_name] = _path
DEFECTS = sorted(n for n in TRANSCRIPTS if "/defect_" in n)
CONFORMING = sorted(n for n in TRANSCRIPTS if n not in DEFECTS)


def greeting_view(greeting: dict[str, Any]) -> dict[str, Any]:
    """The parts of the greeting a client relies on (version numbers, shape)."""
    qmp = greeting["QMP"]
    return {"version": qmp["version"]["qemu"], "capabilities": type(qmp["capabilities"])}


def replay(name: str, tmp_path: Path) -> list[tuple[Any, Any, Any, Any, Any]]:
    """Send the transcript's requests; return (request, expected events, events, expected, got)."""
    greeting, steps = transcript(TRANSCRIPTS[name])
    results = []
    with emulator(oracle_argv(name), tmp_path) as emu, qmp_client(emu.sock_path) as qmp:
        assert qmp.greeting is not None
        assert greeting_view(qmp.greeting) == greeting_view(greeting)
        for request, expected_events, expected in steps:
            if request.get("execute") == "qmp_capabilities":
                continue  # negotiated by the client
            response = qmp.cmd_obj(request)
            events = qmp.get_events(wait=False)
            qmp.clear_events()
            results.append((request, expected_events, events, expected, response))
            if request.get("execute") == "quit":
                assert emu.wait_exit()
                break
    return results


@pytest.mark.parametrize("name", CONFORMING)
def test_transcript_matches_qemu(name: str, tmp_path: Path) -> None:
    results = replay(name, tmp_path)
    assert results, name
    for request, expected_events, events, expected, response in results:
        assert normalize(events) == normalize(expected_events), request
        # json.dumps keeps member order: the emulator must print objects as QEMU does.
        assert json.dumps(normalize(response)) == json.dumps(normalize(expected)), request


def test_every_oracle_transcript_is_replayed() -> None:
    assert len(TRANSCRIPTS) == 34
    assert len(DEFECTS) == 3
    assert all(p.exists() for p in TRANSCRIPTS.values())


def _replay_defect(name: str, tmp_path: Path) -> tuple[list[Any], Any]:
    """Replay up to the request QEMU crashed on; return the earlier results and its outcome."""
    _, steps = transcript(TRANSCRIPTS[name])
    earlier = []
    with emulator(oracle_argv(name), tmp_path) as emu, qmp_client(emu.sock_path) as qmp:
        for request, expected_events, expected in steps:
            if request.get("execute") == "qmp_capabilities":
                continue
            response = qmp.cmd_obj(request)
            events = qmp.get_events(wait=False)
            qmp.clear_events()
            if expected is None:
                hotpluggable = qmp.cmd_raw("query-hotpluggable-cpus")
                return earlier, (request, events, response, hotpluggable)
            assert normalize(events) == normalize(expected_events)
            assert normalize(response) == normalize(expected)
            earlier.append(response)
    raise AssertionError("the transcript has no crashing request")


def test_defect_reset_after_completed_unplug_completes(tmp_path: Path) -> None:
    """QEMU 7.2 segfaults; the reset should just happen (no pending unplug left)."""
    _, (request, events, response, slots) = _replay_defect(
        "errors/defect_hotplug_unplug_reset_p8e.jsonl", tmp_path
    )
    assert request == {"execute": "system_reset"}
    assert response == {"return": {}}
    assert [e["event"] for e in events] == ["RESET"]
    assert events[0]["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert [s.get("qom-path") for s in slots["return"]] == [
        None,
        None,
        "/machine/unattached/device[1]",
        "/machine/unattached/device[0]",
    ]


def test_defect_device_del_of_a_thread_is_refused(tmp_path: Path) -> None:
    """QEMU 7.2 aborts on ``(hotplug_ctrl)``; a thread is not a hotpluggable device."""
    _, (request, events, response, slots) = _replay_defect(
        "errors/defect_device_del_thread_p8e.jsonl", tmp_path
    )
    path = request["arguments"]["id"]
    assert path == "/machine/unattached/device[1]/thread[0]"
    assert response == {
        "error": {"class": "GenericError", "desc": f"{path} is not a hotpluggable device"}
    }
    assert events == []
    assert slots["return"][2]["qom-path"] == "/machine/unattached/device[1]"


def test_defect_vcpu_limit_slots_are_reused(tmp_path: Path) -> None:
    """QEMU 7.2/TCG aborts creating the (maxcpus+1)-th vCPU; the emulator reuses the slot."""
    earlier, (request, events, response, slots) = _replay_defect(
        "errors/defect_tcg_vcpu_limit_p8e.jsonl", tmp_path
    )
    assert len(earlier) == 4
    assert request["execute"] == "device_add"
    assert response == {"return": {}}
    assert events == []
    assert slots["return"][1]["qom-path"] == "/machine/peripheral/core2"


# ---------------------------------------------------------------- qmp_errors.json

ERROR_TABLE = json.loads((QMP_DATA / "errors" / "qmp_errors.json").read_text())
SESSION_OF_CONFIG = {
    "p8e_classic": "errors/device_add_del_p8e.jsonl",
    "p8e_numa_cpus": "errors/node_id_p8e_numa_cpus.jsonl",
    "p8e_numa_cpu": "errors/node_id_p8e_numa_cpu.jsonl",
    "p8e_smp2_nohotplug": "errors/nohotplug_p8e.jsonl",
    "p9_classic": "errors/wrong_type_p9.jsonl",
}


@pytest.mark.parametrize("config", sorted(SESSION_OF_CONFIG))
def test_error_table_entries_match_the_emulators_answers(config: str, tmp_path: Path) -> None:
    """Each case of qmp_errors.json, in its session, gets QEMU's class and text."""
    answers = [
        (request, response)
        for request, _, _, _, response in replay(SESSION_OF_CONFIG[config], tmp_path)
    ]
    cases = [c for c in ERROR_TABLE if c["config"] == config]
    assert cases
    position = 0
    for case in cases:
        while answers[position][0] != case["request"]:
            position += 1
        assert answers[position][1] == case["response"], case["case"]
        position += 1


def test_drc_properties_table_matches(tmp_path: Path) -> None:
    """drc_properties_p8e.json: each CPU DRC's properties, types and values at three moments."""
    table = json.loads((QMP_DATA / "drc_properties_p8e.json").read_text())
    core2 = {"driver": "power8e_v2.1-spapr-cpu-core", "id": "core2", "core-id": 2}
    steps = {
        "after_device_add": ("device_add", core2),
        "after_device_del": ("device_del", {"id": "core2"}),
    }
    argv = oracle_argv("qmp/hotplug_unplug_p8e.jsonl")
    with emulator(argv, tmp_path) as emu, qmp_client(emu.sock_path) as qmp:
        for moment in ("before_device_add", "after_device_add", "after_device_del"):
            if moment in steps:
                assert qmp.cmd_raw(*steps[moment]) == {"return": {}}
            for path, props in table[moment].items():
                listed = qmp.cmd_raw("qom-list", {"path": path})["return"]
                assert {p["name"]: p["type"] for p in listed} == {
                    name: prop["type"] for name, prop in props.items()
                }, (moment, path)
                for name, prop in props.items():
                    got = qmp.cmd_raw("qom-get", {"path": path, "property": name})
                    assert got == prop["qom-get"], (moment, path, name)
