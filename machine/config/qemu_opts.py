"""QEMU 7.2's two option syntaxes and its value parsers, with QEMU's error texts.

* QemuOpts (``-numa``, ``-m``, ``-device``, ``-object``, ``-global``, ``-accel``,
  ``-name``, ``-trace``): ``key=value,...`` with an implied first key, ``,,`` for a
  literal comma, repeated keys kept in order, short-form flags (``foo`` means
  ``foo=on``, ``nofoo`` means ``foo=off``, with a deprecation warning), typed
  values checked when the option is parsed.
* keyval (``-M``/``-machine``, ``-smp``): the same surface syntax but values stay
  strings, keys may be dotted paths (``smp.cpus=2``) building nested dicts, and the
  last value of a key wins. Values get their types when the machine property is set.

Also here: QEMU's number, size and bool parsers (``qemu_strtou64``, ``qemu_strtosz``,
``qapi_bool_parse`` semantics) and the iteration order of a QDict (QEMU sets machine
properties in that order, so it decides which of two bad ``-M`` values is reported).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Union

import attrs

from spapr.errors import QemuError

U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


@attrs.frozen
class QemuWarning:
    """A non-fatal diagnostic QEMU prints as ``prog: [location: ]warning: message``.

    ``message`` may hold extra lines (QEMU's hints), printed without the prefix.
    ``kind`` is ``"warning"``, ``"info"`` (``info: dtb dumped ...``) or ``"error"``
    for a non-fatal ``error_report`` (printed with no label, QEMU carries on).
    """

    message: str
    location: str | None = None
    kind: str = "warning"

    def report(self, prog: str = "qemu-system-ppc64") -> str:
        """The text QEMU writes to stderr (without the final newline)."""
        where = f"{self.location}: " if self.location else ""
        label = "" if self.kind == "error" else f"{self.kind}: "
        return f"{prog}: {where}{label}{self.message}"


# --------------------------------------------------------------------------
# C library number parsing, as QEMU's cutils wrappers see it


def _c_strtoull(text: str, base: int) -> tuple[int, int, bool]:
    """C ``strtoull``: (value, characters consumed, overflowed).

    Leading blanks and one sign are accepted; ``-N`` wraps modulo 2**64 as in C.
    Nothing converted gives (0, 0, False).
    """
    i = 0
    while i < len(text) and text[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < len(text) and text[i] in "+-":
        neg = text[i] == "-"
        i += 1
    start_digits = i
    if base == 0:
        if text[i : i + 2].lower() == "0x" and i + 2 < len(text) and _digit(text[i + 2], 16):
            base, i = 16, i + 2
        elif text[i : i + 1] == "0":
            base = 8
        else:
            base = 10
    elif (
        base == 16
        and text[i : i + 2].lower() == "0x"
        and i + 2 < len(text)
        and _digit(text[i + 2], 16)
    ):
        i += 2
    j = i
    while j < len(text) and _digit(text[j], base):
        j += 1
    if j == i:
        # "0x" with no hex digit still converts the leading 0
        if start_digits < len(text) and text[start_digits] == "0":
            return 0, start_digits + 1, False
        return 0, 0, False
    value = int(text[i:j], base)
    if value > U64_MAX:
        return U64_MAX, j, True
    if neg:
        value = (-value) & U64_MAX
    return value, j, False


def _digit(ch: str, base: int) -> bool:
    try:
        return int(ch, 36) < base
    except ValueError:
        return False


def strtou64(text: str) -> int | None:
    """``qemu_strtou64(text, NULL, 0)``: the whole string as a C unsigned, or None.

    Raises OverflowError when the number does not fit (QEMU's -ERANGE).
    """
    value, end, overflow = _c_strtoull(text, 0)
    if end == 0 or end != len(text):
        return None
    if overflow:
        raise OverflowError(text)
    return value


def strtoi64(text: str) -> int | None:
    """``qemu_strtoi64(text, NULL, 0)``: the whole string as a signed 64-bit int, or None.

    Out-of-range values also give None (QEMU reports them like bad syntax).
    """
    stripped = text.lstrip(" \t\n\v\f\r")
    neg = stripped.startswith("-")
    body = stripped[1:] if stripped[:1] in "+-" else stripped
    value, end, overflow = _c_strtoull(body, 0)
    if end == 0 or end != len(body) or body[:1] in "+-" or overflow:
        return None
    signed = -value if neg else value
    if not I64_MIN <= signed <= I64_MAX:
        return None
    return signed


def parse_uint_full(text: str) -> int | None:
    """QEMU's ``parse_uint_full(text, &v, 0)``: no sign allowed, whole string, or None."""
    if text.lstrip(" \t\n\v\f\r").startswith("-"):
        return None
    value, end, overflow = _c_strtoull(text, 0)
    if end == 0 or end != len(text) or overflow:
        return None
    return value


_SUFFIXES = "BKMGTPE"
_SIZE_RE = re.compile(r"[ \t\n\v\f\r]*\+?(?P<int>[0-9]+)(?P<frac>\.[0-9]*)?(?P<rest>.*)\Z", re.S)
_HEX_RE = re.compile(r"[ \t\n\v\f\r]*\+?0[xX](?P<hex>[0-9a-fA-F]+)(?P<rest>.*)\Z", re.S)


class SizeError(ValueError):
    """A size string QEMU refuses; ``out_of_range`` is QEMU's -ERANGE case."""

    def __init__(self, text: str, *, out_of_range: bool = False) -> None:
        super().__init__(text)
        self.out_of_range = out_of_range


def _suffix_mul(ch: str, unit: int) -> int | None:
    upper = ch.upper()
    if len(ch) != 1 or upper not in _SUFFIXES:
        return None
    return unit ** _SUFFIXES.index(upper)


def parse_size(
    text: str, *, default_suffix: str = "B", warnings: list[QemuWarning] | None = None
) -> int:
    """``qemu_strtosz``: ``1G``, ``512M``, ``1.5G``, ``0x1000``; bytes, or SizeError.

    ``default_suffix`` ``M`` gives ``qemu_strtosz_MiB`` (legacy ``-numa node,mem=``).
    A multiplier suffix on a hex number works but appends QEMU's deprecation warning.
    """
    hex_match = _HEX_RE.match(text)
    fraction = 0.0
    if hex_match:
        value = int(hex_match["hex"], 16)
        rest = hex_match["rest"]
        if rest.startswith("."):
            raise SizeError(text)
        if value > U64_MAX:
            raise SizeError(text, out_of_range=True)
        hexadecimal = True
    else:
        match = _SIZE_RE.match(text)
        if match is None:
            raise SizeError(text)
        value = int(match["int"])
        if value > U64_MAX:
            raise SizeError(text, out_of_range=True)
        rest = match["rest"]
        frac = match["frac"]
        if frac and len(frac) > 1:
            if rest[:1] in ("e", "E"):
                raise SizeError(text)
            fraction = float("0" + frac)
        hexadecimal = False
    mul = _suffix_mul(rest[:1], 1024) if rest else None
    if mul is not None:
        if hexadecimal and warnings is not None:
            warnings.append(
                QemuWarning(f"Using a multiplier suffix on hex numbers is deprecated: {text}")
            )
        rest = rest[1:]
    else:
        mul = _suffix_mul(default_suffix, 1024)
        assert mul is not None
    if rest:
        raise SizeError(text)
    valf = int(fraction * 2.0**64) if fraction else 0
    if mul == 1:
        if valf:
            raise SizeError(text)
        return value
    whole = value * mul
    frac_product = valf * mul
    whole += frac_product >> 64
    whole += (frac_product & U64_MAX) >> 63  # round 0.5 up
    if whole > U64_MAX:
        raise SizeError(text, out_of_range=True)
    return whole


_TRUE_WORDS = ("on", "yes", "true", "y")
_FALSE_WORDS = ("off", "no", "false", "n")


def parse_bool(text: str) -> bool | None:
    """``qapi_bool_parse``: on/yes/true/y and off/no/false/n (case-sensitive), else None."""
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    return None


def invalid_value(name: str, expected: str) -> str:
    """QEMU's QERR_INVALID_PARAMETER_VALUE text."""
    return f"Parameter '{name}' expects {expected}"


def id_wellformed(ident: str) -> bool:
    """QEMU's ``id_wellformed``: a letter, then letters, digits, ``-``, ``.`` or ``_``."""
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*", ident))


ID_HINT = "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."


# --------------------------------------------------------------------------
# QemuOpts


class OptType(enum.Enum):
    """Type of a described QemuOpts key."""

    STRING = "str"
    BOOL = "bool"
    NUMBER = "num"
    SIZE = "size"


@attrs.frozen
class OptsList:
    """A QemuOptsList: its name, implied first key and key descriptions.

    An empty ``desc`` accepts any key (checked later by whoever consumes them).
    """

    name: str
    implied: str | None = None
    merge_lists: bool = False
    desc: Mapping[str, OptType] = attrs.field(factory=dict)

    @property
    def accepts_any(self) -> bool:
        return not self.desc


OptValue = str | bool | int


@attrs.frozen
class QemuOpt:
    """One ``key=value`` of a QemuOpts: the key, the text, and the typed value."""

    name: str
    text: str
    value: OptValue


@attrs.define
class QemuOpts:
    """The parsed keys of one option (or of all of them, for merged lists)."""

    opts_list: OptsList
    id: str | None
    location: str | None
    opts: list[QemuOpt] = attrs.field(factory=list)

    def get(self, name: str) -> str | None:
        """The last text given for ``name`` (QemuOpts' lookup), or None."""
        for opt in reversed(self.opts):
            if opt.name == name:
                return opt.text
        return None

    def get_value(self, name: str) -> OptValue | None:
        """The last typed value for ``name``, or None."""
        for opt in reversed(self.opts):
            if opt.name == name:
                return opt.value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every text given for ``name``, in order (``-numa node,cpus=0,cpus=2``)."""
        return [opt.text for opt in self.opts if opt.name == name]

    def names(self) -> list[str]:
        """Keys in order of appearance, repeated keys repeated."""
        return [opt.name for opt in self.opts]


def _get_opt_value(params: str, pos: int) -> tuple[str, int]:
    """Read a value up to a single comma; ``,,`` stands for ``,``. Returns (value, end)."""
    out: list[str] = []
    while True:
        comma = params.find(",", pos)
        if comma < 0:
            out.append(params[pos:])
            return "".join(out), len(params)
        if comma + 1 < len(params) and params[comma + 1] == ",":
            out.append(params[pos : comma + 1])
            pos = comma + 2
            continue
        out.append(params[pos:comma])
        return "".join(out), comma


def _is_help(name: str) -> bool:
    return name in ("help", "?")


def _opt_name_values(
    params: str, firstname: str | None, location: str | None
) -> Iterator[tuple[str, str, bool, QemuWarning | None]]:
    """Split ``params`` QemuOpts-style: (name, value, is_help_flag, flag warning)."""
    pos = 0
    while pos < len(params):
        length = _span_to_delim(params, pos)
        is_help = False
        warning: QemuWarning | None = None
        if pos + length >= len(params) or params[pos + length] != "=":
            if firstname is not None:
                name = firstname
                value, pos = _get_opt_value(params, pos)
            else:
                name = params[pos : pos + length]
                pos += length
                prefix = ""
                if name.startswith("no"):
                    name, value, prefix = name[2:], "off", "no"
                else:
                    value = "on"
                    is_help = _is_help(name)
                if not is_help:
                    use = (
                        f"nodelay={'on' if prefix else 'off'}"
                        if name == "delay"
                        else f"{name}={value}"
                    )
                    warning = QemuWarning(
                        f"short-form boolean option '{prefix}{name}' deprecated\n"
                        f"Please use {use} instead",
                        location,
                    )
        else:
            name = params[pos : pos + length]
            value, pos = _get_opt_value(params, pos + length + 1)
        yield name, value, is_help, warning
        firstname = None
        if pos < len(params) and params[pos] == ",":
            pos += 1


def _span_to_delim(text: str, pos: int) -> int:
    """``strcspn(text + pos, "=,")``."""
    end = pos
    while end < len(text) and text[end] not in "=,":
        end += 1
    return end - pos


def _typed(olist: OptsList, name: str, text: str, location: str | None) -> OptValue:
    opt_type = olist.desc.get(name)
    if opt_type is None:
        if not olist.accepts_any:
            raise QemuError(f"Invalid parameter '{name}'", location=location)
        return text
    if opt_type is OptType.BOOL:
        flag = parse_bool(text)
        if flag is None:
            raise QemuError(invalid_value(name, "'on' or 'off'"), location=location)
        return flag
    if opt_type is OptType.NUMBER:
        try:
            number = strtou64(text)
        except OverflowError:
            raise QemuError(
                f"Value '{text}' is too large for parameter '{name}'", location=location
            ) from None
        if number is None:
            raise QemuError(invalid_value(name, "a number"), location=location)
        return number
    if opt_type is OptType.SIZE:
        try:
            return parse_size(text)
        except SizeError as err:
            if err.out_of_range:
                raise QemuError(
                    f"Value '{text}' is out of range for parameter '{name}'", location=location
                ) from None
            raise QemuError(
                invalid_value(name, "a non-negative number below 2^64")
                + "\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                "and exabytes, respectively.",
                location=location,
            ) from None
    return text


@attrs.define
class OptsStore:
    """The instances of one QemuOptsList collected from a command line.

    ``parse`` is ``qemu_opts_parse_noisily``: duplicate ids, malformed ids and bad
    values are refused with QEMU's text and the option as location; short-form
    flags add deprecation warnings to ``warnings``.
    """

    opts_list: OptsList
    instances: list[QemuOpts] = attrs.field(factory=list)

    def parse(
        self,
        params: str,
        *,
        location: str | None,
        warnings: list[QemuWarning],
        permit_abbrev: bool = True,
    ) -> QemuOpts:
        """Parse one occurrence of the option and record it (merged lists share one)."""
        firstname = self.opts_list.implied if permit_abbrev else None
        # The id is looked up first, reading every item as key=value or flag.
        ident: str | None = None
        for name, value, _, _ in _opt_name_values(params, None, None):
            if name == "id":
                ident = value
                break
        opts = self._create(ident, location)
        for name, value, is_help, warning in _opt_name_values(params, firstname, location):
            if warning is not None:
                warnings.append(warning)
            if is_help and not self.opts_list.accepts_any:
                raise QemuError(
                    f"help for -{self.opts_list.name} options is not modeled by this emulator",
                    location=location,
                )
            if name == "id":
                continue
            opts.opts.append(QemuOpt(name, value, _typed(self.opts_list, name, value, location)))
        return opts

    def _create(self, ident: str | None, location: str | None) -> QemuOpts:
        if self.opts_list.merge_lists:
            if ident is not None:
                raise QemuError("Invalid parameter 'id'", location=location)
            for existing in self.instances:
                if existing.id is None:
                    existing.location = location
                    return existing
        elif ident is not None:
            if not id_wellformed(ident):
                raise QemuError(
                    invalid_value("id", "an identifier") + "\n" + ID_HINT, location=location
                )
            if any(existing.id == ident for existing in self.instances):
                raise QemuError(
                    f"Duplicate ID '{ident}' for {self.opts_list.name}", location=location
                )
        opts = QemuOpts(self.opts_list, ident, location)
        self.instances.append(opts)
        return opts


def parse_qemu_opts(
    olist: OptsList, params: str, *, location: str | None = None
) -> tuple[QemuOpts, list[QemuWarning]]:
    """Parse one option string on its own (a fresh store); returns opts and warnings."""
    warnings: list[QemuWarning] = []
    opts = OptsStore(olist).parse(params, location=location, warnings=warnings)
    return opts, warnings


# --------------------------------------------------------------------------
# keyval


KeyvalValue = Union[str, "KeyvalDict", list["KeyvalValue"]]
KeyvalDict = dict[str, KeyvalValue]


@attrs.frozen
class KeyvalResult:
    """A parsed keyval string: the (nested) dict and whether ``help`` was asked."""

    values: KeyvalDict
    help: bool


def _parse_qapi_name(text: str, pos: int) -> int:
    """Length of the QAPI name starting at ``pos`` (0 if none), as ``parse_qapi_name``."""
    p = pos
    if p < len(text) and text[p] == "_":
        p += 1
        if p >= len(text) or text[p] != "_":
            return 0
        p += 1
        while p < len(text) and (text[p].isascii() and (text[p].isalnum() or text[p] in "-.")):
            p += 1
        if p >= len(text) or text[p] != "_":
            return 0
        p += 1
    if p >= len(text) or not (text[p].isascii() and text[p].isalpha()):
        return 0
    p += 1
    while p < len(text) and text[p].isascii() and (text[p].isalnum() or text[p] in "-_"):
        p += 1
    return p - pos


def _key_index_len(text: str, pos: int) -> int:
    j = pos
    while j < len(text) and text[j].isdigit() and text[j].isascii():
        j += 1
    return j - pos


def _keyval_put(cur: KeyvalDict, key: str, value: str | None, full_key_prefix: str) -> KeyvalValue:
    old = cur.get(key)
    if old is not None:
        if isinstance(old, dict) != (value is None):
            raise QemuError(f"Parameters '{full_key_prefix}.*' used inconsistently")
        if value is None:
            return old
    new: KeyvalValue = {} if value is None else value
    cur[key] = new
    return new


def _starts_with_help(text: str) -> int:
    for word in ("help", "?"):
        if text.startswith(word):
            return len(word)
    return 0


def parse_keyval_into(target: KeyvalDict, params: str, implied_key: str | None) -> KeyvalResult:
    """``keyval_parse_into``: parse ``params`` into ``target`` (which it updates).

    Raises QemuError with QEMU's text (no location; callers add the option).
    """
    help_wanted = False
    pos = 0
    implied = implied_key
    while pos < len(params):
        rest = params[pos:]
        length = _span_to_delim(params, pos)
        key_text = params
        key_start = pos
        val_end: int | None = None
        if length and (pos + length >= len(params) or params[pos + length] != "="):
            if _starts_with_help(rest) == length:
                help_wanted = True
                pos += length
                if pos < len(params) and params[pos] == ",":
                    pos += 1
                implied = None
                continue
            if implied:
                key_text, key_start = implied, 0
                val_end = pos + length
                length = len(implied)
        key_end = key_start + length
        cur = target
        s = key_start
        key_in_cur = ""
        while True:
            if s != key_start and _key_index_len(key_text, s) > 0:
                frag = _key_index_len(key_text, s)
            else:
                frag = _parse_qapi_name(key_text, s)
            if not frag or (s + frag < key_end and key_text[s + frag] != "."):
                raise QemuError(f"Invalid parameter '{key_text[key_start:key_end]}'")
            if frag >= 128:
                kind = " fragment" if s != key_start or s + frag != key_end else ""
                raise QemuError(f"Parameter{kind} '{key_text[s : s + frag]}' is too long")
            if s != key_start:
                nxt = _keyval_put(cur, key_in_cur, None, key_text[key_start : s - 1])
                assert isinstance(nxt, dict)
                cur = nxt
            key_in_cur = key_text[s : s + frag]
            s += frag
            if s >= len(key_text) or key_text[s] != ".":
                break
            s += 1
        if val_end is not None:
            value = params[pos:val_end]
            pos = val_end
            if pos < len(params) and params[pos] == ",":
                pos += 1
        else:
            if s >= len(params) or params[s] != "=":
                raise QemuError(f"Expected '=' after parameter '{params[key_start:s]}'")
            value, pos = _get_opt_value(params, s + 1)
            if pos < len(params) and params[pos] == ",":
                pos += 1
        _keyval_put(cur, key_in_cur, value, key_text[key_start:key_end])
        implied = None
    listified = _listify(target, [])
    assert listified is target
    return KeyvalResult(target, help_wanted)


def parse_keyval(params: str, implied_key: str | None = None) -> KeyvalResult:
    """``keyval_parse``: a fresh dict from ``params``."""
    return parse_keyval_into({}, params, implied_key)


def _is_index(key: str) -> bool:
    return key.isdigit() and key.isascii()


def _listify(cur: KeyvalDict, path: list[str]) -> KeyvalValue:
    has_index = has_member = False
    for key in list(cur):
        if _is_index(key):
            has_index = True
        else:
            has_member = True
        value = cur[key]
        if isinstance(value, dict):
            replaced = _listify(value, [*path, key])
            if replaced is not value:
                cur[key] = replaced
    prefix = "".join(f"{p}." for p in path)
    if has_index and has_member:
        raise QemuError(f"Parameters '{prefix}*' used inconsistently")
    if not has_index:
        return cur
    indexed = {int(k): v for k, v in cur.items()}
    items: list[KeyvalValue] = []
    for i in range(min(len(cur) + 1, max(indexed) + 1)):
        if i not in indexed or i > len(cur):
            raise QemuError(f"Parameter '{prefix}{i}' missing")
        items.append(indexed[i])
    return items


def keyval_merge(dest: KeyvalDict, merged: Mapping[str, KeyvalValue], path: str = "") -> None:
    """``keyval_merge``: dicts merge recursively, lists append, scalars: ``merged`` wins."""
    for key, value in merged.items():
        old = dest.get(key)
        if old is not None:
            if type(old) is not type(value):
                raise QemuError(f"Parameter '{path}{key}' used inconsistently")
            if isinstance(value, dict):
                assert isinstance(old, dict)
                keyval_merge(old, value, f"{path}{key}.")
                continue
            if isinstance(value, list):
                assert isinstance(old, list)
                old.extend(value)
                continue
        dest[key] = value


# --------------------------------------------------------------------------
# QDict iteration order

QDICT_BUCKET_MAX = 512


def qemu_string_bytes(text: str) -> bytes:
    """The bytes QEMU holds for ``text``: UTF-8, with U+0000 as modified UTF-8's C0 80.

    QEMU's strings are NUL-terminated, so its JSON parser stores a decoded U+0000
    (``\\u0000`` or C0 80 on the wire) as the two bytes C0 80; hashes and lengths
    are taken over those bytes.
    """
    data = text.encode()
    return data.replace(b"\0", b"\xc0\x80") if b"\0" in data else data


def qdict_bucket(key: str) -> int:
    """The QDict bucket of ``key`` (QEMU's ``tdb_hash`` modulo 512)."""
    data = qemu_string_bytes(key)
    value = (0x238F13AF * len(data)) & 0xFFFFFFFF
    for i, byte in enumerate(data):
        value = (value + (byte << (i * 5 % 24))) & 0xFFFFFFFF
    return ((1103515243 * value + 12345) & 0xFFFFFFFF) % QDICT_BUCKET_MAX


def qdict_order(keys_in_insertion_order: Iterable[str]) -> list[str]:
    """Keys in the order QEMU iterates a QDict holding them.

    Buckets ascending; inside a bucket the most recently inserted key comes first.
    A key whose value was replaced keeps its original place.
    """
    keyed = [(qdict_bucket(k), -i, k) for i, k in enumerate(keys_in_insertion_order)]
    return [k for _, _, k in sorted(keyed)]


def ghash_order(keys_in_insertion_order: Sequence[str]) -> list[str]:
    """Keys in the order a GLib string hash table filled in that order iterates them."""
    from machine.config.ghash import GHashTableModel

    return GHashTableModel.from_keys(keys_in_insertion_order).keys()


def is_power_of_2(value: int) -> bool:
    """QEMU's ``is_power_of_2`` (0 is not)."""
    return value > 0 and value & (value - 1) == 0


def ctz64(value: int) -> int:
    """Count of trailing zero bits of a non-zero value."""
    return int(math.log2(value & -value))
