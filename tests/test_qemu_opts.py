"""QemuOpts and keyval syntax, value parsers and QDict order (QEMU 7.2 semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machine.config.qemu_opts import (
    OptsList,
    OptsStore,
    OptType,
    QemuWarning,
    SizeError,
    keyval_merge,
    parse_bool,
    parse_keyval,
    parse_qemu_opts,
    parse_size,
    qdict_bucket,
    qdict_order,
    strtoi64,
    strtou64,
)
from spapr.errors import QemuError

ANY = OptsList("device", implied="driver")
MEMORY = OptsList(
    "memory",
    implied="size",
    merge_lists=True,
    desc={"size": OptType.SIZE, "slots": OptType.NUMBER, "maxmem": OptType.SIZE},
)
FLAGS = OptsList("name", implied="guest", desc={"guest": OptType.STRING, "on": OptType.BOOL})


def test_implied_first_key_and_order() -> None:
    opts, warnings = parse_qemu_opts(ANY, "power9_v2.0-spapr-cpu-core,id=c2,core-id=2")
    assert opts.get("driver") == "power9_v2.0-spapr-cpu-core"
    assert opts.id == "c2"
    assert opts.names() == ["driver", "core-id"]
    assert warnings == []


def test_double_comma_is_a_literal_comma() -> None:
    opts, _ = parse_qemu_opts(ANY, "a,,b,path=x,,y,,,z=1")
    assert opts.get("driver") == "a,b"
    assert opts.get("path") == "x,y,"
    assert opts.get("z") == "1"


def test_repeated_keys_are_kept_in_order() -> None:
    opts, _ = parse_qemu_opts(OptsList("numa", implied="type"), "node,cpus=0,cpus=2,cpus=1")
    assert opts.get_all("cpus") == ["0", "2", "1"]
    assert opts.get("cpus") == "1"  # the last one wins for a scalar lookup


def test_short_form_flags_warn() -> None:
    opts, warnings = parse_qemu_opts(ANY, "x,prealloc,noshare", location="-device x")
    assert (opts.get("prealloc"), opts.get("share")) == ("on", "off")
    assert [w.report() for w in warnings] == [
        "qemu-system-ppc64: -device x: warning: short-form boolean option 'prealloc' deprecated"
        "\nPlease use prealloc=on instead",
        "qemu-system-ppc64: -device x: warning: short-form boolean option 'noshare' deprecated"
        "\nPlease use share=off instead",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("size=1x", "Parameter 'size' expects a non-negative number below 2^64\nOptional "
         "suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, "
         "respectively."),
        ("1G,slots=x", "Parameter 'slots' expects a number"),
        ("1G,slots=99999999999999999999",
         "Value '99999999999999999999' is too large for parameter 'slots'"),
        ("18446744073709551616", "Value '18446744073709551616' is out of range for parameter "
         "'size'"),
        ("1G,foo=1", "Invalid parameter 'foo'"),
        ("1G,id=x", "Invalid parameter 'id'"),
    ],
)  # fmt: skip
def test_typed_value_errors(text: str, message: str) -> None:
    with pytest.raises(QemuError) as info:
        parse_qemu_opts(MEMORY, text, location=f"-m {text}")
    assert info.value.message == message
    assert info.value.location == f"-m {text}"


def test_bool_values() -> None:
    for word in ("on", "yes", "true", "y"):
        assert parse_bool(word) is True
    for word in ("off", "no", "false", "n"):
        assert parse_bool(word) is False
    assert parse_bool("ON") is None
    with pytest.raises(QemuError) as info:
        parse_qemu_opts(FLAGS, "g,on=maybe")
    assert info.value.message == "Parameter 'on' expects 'on' or 'off'"


def test_ids_are_checked_and_unique() -> None:
    store = OptsStore(ANY)
    warnings: list[QemuWarning] = []
    store.parse("a,id=x", location="-device a,id=x", warnings=warnings)
    with pytest.raises(QemuError) as info:
        store.parse("b,id=x", location="-device b,id=x", warnings=warnings)
    assert info.value.message == "Duplicate ID 'x' for device"
    with pytest.raises(QemuError) as info:
        store.parse("b,id=9x", location=None, warnings=warnings)
    assert info.value.message == (
        "Parameter 'id' expects an identifier\n"
        "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."
    )


def test_merged_lists_share_one_instance() -> None:
    store = OptsStore(MEMORY)
    warnings: list[QemuWarning] = []
    store.parse("1G", location="-m 1G", warnings=warnings)
    store.parse("2G,maxmem=4G", location="-m 2G,maxmem=4G", warnings=warnings)
    assert len(store.instances) == 1
    assert store.instances[0].get_value("size") == 2 << 30
    assert store.instances[0].get_value("maxmem") == 4 << 30


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1G", 1 << 30),
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("1.5G", 3 << 29),
        ("1.k", 1024),
        ("4096", 4096),
        ("0x1000", 4096),
        ("1E", 1 << 60),
        ("0.5", None),
        ("1e3", None),
        ("-1", None),
        ("1,5G", None),
        ("16E", None),
    ],
)
def test_sizes(text: str, value: int | None) -> None:
    if value is None:
        with pytest.raises(SizeError):
            parse_size(text)
    else:
        assert parse_size(text) == value


def test_size_default_suffix_and_hex_suffix_warning() -> None:
    assert parse_size("512", default_suffix="M") == 512 << 20
    warnings: list[QemuWarning] = []
    assert parse_size("0x10M", warnings=warnings) == 16 << 20
    assert warnings[0].message == "Using a multiplier suffix on hex numbers is deprecated: 0x10M"


@given(st.integers(0, 1 << 40), st.sampled_from(["", "K", "M", "G", "k", "T"]))
def test_size_suffixes_scale_by_1024(number: int, suffix: str) -> None:
    power = {"": 0, "K": 1, "k": 1, "M": 2, "G": 3, "T": 4}[suffix]
    expected = number * 1024**power
    if expected >= 1 << 64:
        with pytest.raises(SizeError) as info:
            parse_size(f"{number}{suffix}")
        assert info.value.out_of_range
    else:
        assert parse_size(f"{number}{suffix}") == expected


@pytest.mark.parametrize(
    ("text", "u64", "i64"),
    [("42", 42, 42), ("0x10", 16, 16), ("010", 8, 8), ("-1", (1 << 64) - 1, -1), ("x", None, None)],
)
def test_numbers(text: str, u64: int | None, i64: int | None) -> None:
    assert strtou64(text) == u64
    assert strtoi64(text) == i64


def test_number_overflow() -> None:
    with pytest.raises(OverflowError):
        strtou64("18446744073709551616")
    assert strtoi64("9223372036854775808") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "core-id", "node-id"]),
            st.text(alphabet="xyz,=0-9", min_size=0, max_size=6),
        ),
        max_size=6,
    )
)
def test_escaped_values_round_trip(items: list[tuple[str, str]]) -> None:
    text = ",".join(["drv", *(f"{k}={v.replace(',', ',,')}" for k, v in items)])
    opts, _ = parse_qemu_opts(ANY, text)
    assert [(o.name, o.text) for o in opts.opts] == [("driver", "drv"), *items]


def test_keyval_nested_and_last_wins() -> None:
    result = parse_keyval("pseries,smp.cpus=2,smp.cores=2,vsmt=4,vsmt=8", "type")
    assert result.values == {"type": "pseries", "smp": {"cpus": "2", "cores": "2"}, "vsmt": "8"}
    assert not result.help


def test_keyval_help() -> None:
    assert parse_keyval("help", "type").help
    assert parse_keyval("pseries,help", "type").help


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pseries,=x", "Invalid parameter ''"),
        ("pseries,a..b=1", "Invalid parameter 'a..b'"),
        ("pseries,x", "Expected '=' after parameter 'x'"),
        (",pseries", "Invalid parameter ''"),
        ("pseries,smp=2,smp.cpus=1", "Parameters 'smp.*' used inconsistently"),
        ("pseries,x.0=1,x.2=1", "Parameter 'x.1' missing"),
        ("pseries,x.0=1,x.a=1", "Parameters 'x.*' used inconsistently"),
    ],
)
def test_keyval_errors(text: str, message: str) -> None:
    with pytest.raises(QemuError) as info:
        parse_keyval(text, "type")
    assert info.value.message == message


def test_keyval_lists() -> None:
    assert parse_keyval("x.1=b,x.0=a").values == {"x": ["a", "b"]}


def test_keyval_merge() -> None:
    dest = parse_keyval("pseries,smp.cpus=2", "type").values
    keyval_merge(dest, {"smp": {"cores": "4"}, "vsmt": "8"})
    assert dest == {"type": "pseries", "smp": {"cpus": "2", "cores": "4"}, "vsmt": "8"}
    with pytest.raises(QemuError) as info:
        keyval_merge(dest, {"smp": "2"})
    assert info.value.message == "Parameter 'smp' used inconsistently"


def test_qdict_order_matches_qemu_observations() -> None:
    # QEMU 7.2 reported the vsmt error for both "vsmt=x,foo=1" and "foo=1,vsmt=x",
    # and cap-htm before max-cpu-compat, and ic-mode before smp.
    assert qdict_order(["foo", "vsmt"]) == ["vsmt", "foo"]
    assert qdict_order(["max-cpu-compat", "cap-htm"])[0] == "cap-htm"
    assert qdict_order(["smp", "ic-mode"])[0] == "ic-mode"
    assert qdict_order(["cap-cfpc", "vsmt"])[0] == "vsmt"


@given(st.lists(st.text(alphabet="abcdefgh-", min_size=1, max_size=8), unique=True, max_size=12))
def test_qdict_order_is_a_permutation_sorted_by_bucket(keys: list[str]) -> None:
    order = qdict_order(keys)
    assert sorted(order) == sorted(keys)
    buckets = [qdict_bucket(k) for k in order]
    assert buckets == sorted(buckets)
    assert all(0 <= b < 512 for b in buckets)
