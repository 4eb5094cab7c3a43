"""HMP ``xp /fmt addr``: guest physical memory as QEMU 7.2's monitor dumps it.

A learner playing the guest (``-guest manual``) reads what an RTAS call left in a
buffer or in the configure-connector work area this way, as on a real QEMU. The
``/fmt`` syntax, its sticky defaults and the dump's layout follow QEMU 7.2
(monitor/hmp.c's ``/`` argument, monitor/misc.c ``memory_dump``):

* ``/[count][format][size]``: formats ``x`` ``d`` ``u`` ``o`` ``c`` ``i``, sizes ``b``
  ``h`` ``w`` ``g`` (``L`` = ``g``); what is left out is the last one used (at first
  ``x`` and ``w``); without ``/fmt`` one unit;
* 8 bytes a line for byte units, 16 otherwise, each line led by the address as 16
  hex digits; units are big-endian (the guest's order); ``x`` pads to the unit's hex
  digits, ``d``/``u``/``o`` right-align to the widest value (QEMU prints the unsigned
  unit, so ``d`` never shows a minus sign); ``c`` quotes each byte, and counts units
  of the last size given, as QEMU does;
* a line that is not wholly guest RAM prints ``Cannot access memory`` and ends the dump.

Not modelled: ``/i`` (QEMU disassembles; there is no disassembler here) and reads of
device pages (the XIVE ESB/TIMA: QEMU would perform the load, with its side effects).
"""

from __future__ import annotations

import attrs

from rtas.memory import GuestMemory

#: The format letters and size letters of ``/fmt`` (monitor_parse_arguments).
FORMATS = "oduxic"
SIZES = {"b": 1, "h": 2, "w": 4, "g": 8, "L": 8}
_ADDR_MASK = (1 << 64) - 1


class DumpSyntaxError(Exception):
    """The ``/fmt`` or the address could not be read (the message is QEMU's)."""


@attrs.define
class DumpFormat:
    """The monitor's sticky ``/fmt`` defaults (QEMU's default_fmt_format/size)."""

    format: str = "x"
    size: int = 4

    def parse(self, text: str) -> tuple[int, str, int, str]:
        """Read ``/fmt`` at the start of ``text``: (count, format, size, the rest)."""
        text = text.lstrip()
        if not text.startswith("/"):
            return 1, self.format, (-1 if self.format == "i" else self.size), text
        pos, count = 1, 1
        digits_end = pos
        while digits_end < len(text) and text[digits_end].isdigit():
            digits_end += 1
        if digits_end > pos:
            count = int(text[pos:digits_end])
            pos = digits_end
        fmt, size = "", -1
        while pos < len(text):
            ch = text[pos]
            if ch in FORMATS:
                fmt = ch
            elif ch in SIZES:
                size = SIZES[ch]
            else:
                break
            pos += 1
        if pos < len(text) and not text[pos].isspace():
            raise DumpSyntaxError(f"invalid char in format: '{text[pos]}'")
        fmt = fmt or self.format
        if fmt != "i":
            if size < 0:
                size = self.size
            self.size = size
        self.format = fmt
        return count, fmt, size, text[pos:]


def _wrap(value: int) -> int:
    """C's int64_t arithmetic: wrap to 64 bits, signed."""
    value &= _ADDR_MASK
    return value - (1 << 64) if value >> 63 else value


class _Expression:
    """monitor/hmp.c's expression parser (get_expr): sums of logic of products of unary
    terms; numbers as strtoull reads them, character constants, parentheses."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._skip()

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> None:
        if self.pos < len(self.text):
            self.pos += 1
            self._skip()

    def sum(self) -> int:
        value = self.logic()
        while (op := self._peek()) in ("+", "-"):
            self._next()
            other = self.logic()
            value = _wrap(value + other if op == "+" else value - other)
        return value

    def logic(self) -> int:
        value = self.product()
        while (op := self._peek()) in ("&", "|", "^"):
            self._next()
            other = self.product()
            value = _wrap(
                value & other if op == "&" else value | other if op == "|" else value ^ other
            )
        return value

    def product(self) -> int:
        value = self.unary()
        while (op := self._peek()) in ("*", "/", "%"):
            self._next()
            other = self.unary()
            if op == "*":
                value = _wrap(value * other)
                continue
            if other == 0:
                raise DumpSyntaxError("division by zero")
            quotient = abs(value) // abs(other) * (1 if (value < 0) == (other < 0) else -1)
            value = _wrap(quotient if op == "/" else value - quotient * other)
        return value

    def unary(self) -> int:
        ch = self._peek()
        if ch in ("+", "-", "~"):
            self._next()
            value = self.unary()
            return value if ch == "+" else _wrap(-value) if ch == "-" else _wrap(~value)
        if ch == "(":
            self._next()
            value = self.sum()
            if self._peek() != ")":
                raise DumpSyntaxError("')' expected")
            self._next()
            return value
        if ch == "'":
            self.pos += 1
            if self.pos >= len(self.text):
                raise DumpSyntaxError("character constant expected")
            value = ord(self.text[self.pos])
            self.pos += 1
            if self._peek() != "'":
                raise DumpSyntaxError("missing terminating ' character")
            self._next()
            return value
        if ch == "$":
            raise DumpSyntaxError("xp: registers ($pc ...) are not modelled by this emulator")
        if not ch:
            raise DumpSyntaxError("unexpected end of expression")
        return self._number()

    def _number(self) -> int:
        """strtoull(..., 0): 0x hex, a leading 0 octal, else decimal; stops at the first
        character that cannot continue the number."""
        text, start = self.text, self.pos
        if text[start : start + 2].lower() == "0x" and text[start + 2 : start + 3] in _HEX:
            base, pos = 16, start + 2
        elif text[start] == "0":
            base, pos = 8, start
        else:
            base, pos = 10, start
        digits = {16: _HEX, 10: _HEX[:10], 8: _HEX[:8]}[base]
        end = pos
        while end < len(text) and text[end] in digits:
            end += 1
        if end == pos:
            raise DumpSyntaxError(f"invalid char '{text[start]}' in expression")
        value = int(text[pos:end], base)
        if value > _ADDR_MASK:
            raise DumpSyntaxError("number too large")
        self.pos = end
        self._skip()
        return _wrap(value)


_HEX = "0123456789abcdefABCDEF"


def parse_address(text: str) -> tuple[int, str]:
    """The ``addr:l`` argument: its value as 64 bits, and the text after it."""
    expr = _Expression(text)
    value = expr.sum()
    return value & _ADDR_MASK, text[expr.pos :]


def _printc(byte: int) -> str:
    """monitor_printc: one byte as a quoted C character."""
    special = {ord("'"): "\\'", ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r"}
    if byte in special:
        return f"'{special[byte]}'"
    return f"'{chr(byte)}'" if 32 <= byte <= 126 else f"'\\x{byte:02x}'"


def memory_dump(memory: GuestMemory, count: int, fmt: str, size: int, addr: int) -> list[str]:
    """memory_dump for physical addresses: the lines QEMU prints."""
    if fmt == "i":
        return ["xp /i: this emulator has no disassembler (not modelled)"]
    length = size * count
    line_size = 8 if size == 1 else 16
    digits = {"o": (size * 8 + 2) // 3, "x": size * 2, "u": (size * 80 + 32) // 33}
    digits["d"] = digits["u"]
    if fmt == "c":
        size = 1
    lines: list[str] = []
    while length > 0:
        chunk = min(length, line_size)
        head = f"{addr:016x}:"
        if addr + chunk > memory.size:
            lines.append(head + " Cannot access memory")
            break
        data = memory.read(addr, chunk)
        parts = []
        for i in range(0, chunk, size):
            value = int.from_bytes(data[i : i + size], "big")
            if fmt == "c":
                parts.append(_printc(value))
            elif fmt == "o":
                parts.append(f"{'0' + format(value, 'o') if value else '0':>{digits['o']}}")
            elif fmt in "du":
                parts.append(f"{value:>{digits[fmt]}d}")
            else:
                parts.append(f"0x{value:0{digits['x']}x}")
        lines.append(head + "".join(" " + p for p in parts))
        addr = (addr + chunk) & _ADDR_MASK
        length -= chunk
    return lines
