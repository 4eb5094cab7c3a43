"""One number format and one set of names for every picture (machine/diagrams/words.py).

The expected texts are written out here from PAPR's names and the brief's example
(``set-indicator(9003 allocation-state, 0x10000001, usable) → 0 success``); the
names of codes must be rtas/codes.py's, for every member.
"""

from __future__ import annotations

import pytest

from machine.diagrams.words import (
    describe_call,
    describe_event_log,
    mask_label,
    property_value_text,
    words,
)
from rtas.codes import ConfigureConnector, RtasStatus
from rtas.errlog import HotplugAction, HotplugIdType, HotplugResource, epow_event, hotplug_event


def test_set_indicator_reads_as_papr_names_it() -> None:
    call = describe_call("set-indicator", [9003, 0x10000001, 1], [0])
    assert call.line() == "set-indicator(9003 allocation-state, 0x10000001, usable) → 0 success"
    assert not call.refused
    iso = describe_call("set-indicator", [9001, 0x10000002, 0], [-3])
    assert (
        iso.line() == "set-indicator(9001 isolation-state, 0x10000002, isolated) → -3 param error"
    )
    assert iso.refused
    dr = describe_call("set-indicator", [9002, 0x40000005, 2], [0])
    assert dr.call == "set-indicator(9002 dr-indicator, 0x40000005, identify)"


def test_get_sensor_state_names_the_sensor_and_its_value() -> None:
    call = describe_call("get-sensor-state", [9003, 0x10000002], [0, 2])
    assert call.line() == (
        "get-sensor-state(9003 entity-sense, 0x10000002) → 0 success; sense 2 unusable"
    )
    assert dict(call.args) == {"sensor": "9003 entity-sense", "drc index": "0x10000002"}
    assert dict(call.outputs) == {"sense": "2 unusable"}


def test_addresses_in_hex_lengths_and_ids_in_decimal() -> None:
    call = describe_call("check-exception", [0x500, 0x1001, 0x10000000, 0, 0x1000000, 2048], [0])
    assert call.call == (
        "check-exception(0x500, 0x1001 hot-plug-events, 0x10000000 hot-plug, 0, 0x1000000, 2048)"
    )
    assert describe_call("start-cpu", [2, 0x10060, 2], [0]).call == "start-cpu(2, 0x10060, 2)"
    stopped = describe_call("query-cpu-stopped-state", [2], [0, 0])
    assert stopped.result == "0 success; state 0 stopped"
    xive = describe_call("ibm,get-xive", [0x1000], [0, 0, 5])
    assert xive.line() == "ibm,get-xive(0x1000 epow-events) → 0 success; server 0, priority 5"
    # a service without a signature: large words hex, small ones decimal
    assert describe_call("nvram-fetch", [3, 0x2000, 16], [0]).call == "nvram-fetch(3, 0x2000, 16)"


@pytest.mark.parametrize("code", list(ConfigureConnector))
def test_configure_connector_codes_carry_rtas_codes_names(code: ConfigureConnector) -> None:
    call = describe_call("ibm,configure-connector", [0x1001000, 0], [int(code)])
    assert call.status == f"{int(code)} {code.name.lower().replace('_', ' ')}"
    assert call.refused == (code < 0)


@pytest.mark.parametrize("status", sorted({int(s) for s in RtasStatus}))
def test_every_status_is_named_by_its_first_rtas_codes_name(status: int) -> None:
    canonical = RtasStatus(status).name  # -3: QEMU's aliases share one name
    assert describe_call("set-indicator", [9003, 1, 1], [status]).status == (
        f"{status} {words(canonical)}"
    )


def test_masks_name_every_class() -> None:
    assert mask_label(0x10000000) == "0x10000000 hot-plug"
    assert mask_label(0x50000000) == "0x50000000 epow+hot-plug"
    assert mask_label(0x1) == "0x1"


def test_event_logs_in_a_few_words_from_rtas_own_decoder() -> None:
    entry = hotplug_event(
        HotplugResource.CPU,
        HotplugAction.REMOVE,
        HotplugIdType.DRC_INDEX,
        drc_index=0x10000002,
        plid=7,
        date=(2016, 9, 1),
        time=(0, 0, 0),
    )
    assert describe_event_log(entry.to_bytes()) == "hotplug remove cpu 0x10000002 (plid 7)"
    epow = epow_event(plid=1, date=(2016, 9, 1), time=(0, 0, 0))
    assert describe_event_log(epow.to_bytes()) == "epow action 3 (plid 1)"
    assert describe_event_log(b"\x00").startswith("unreadable event log:")


def test_property_values_as_dtc_writes_them() -> None:
    assert property_value_text(b"PowerPC,POWER9@2\0") == '"PowerPC,POWER9@2"'
    assert property_value_text(b"a\0bc\0") == '"a", "bc"'
    assert property_value_text(bytes.fromhex("0000003800000002")) == "<0x00000038 0x00000002>"
    assert property_value_text(b"\x01\x02\x03") == "[01 02 03]"
    assert property_value_text(b"") == ""
