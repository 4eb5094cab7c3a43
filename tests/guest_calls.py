"""A scripted guest for protocol tests: raw RTAS calls through guest memory and H_RTAS.

Unlike the reference guest it has no policy: a test says which call to make with
which arguments, and reads back exactly what the machine wrote. Buffers live in a
scratch area of guest memory, as a real guest's rtas_data_buf would.
"""

from __future__ import annotations

from collections.abc import Sequence

from fdt import Node, Property
from machine.board.pseries import PseriesMachine
from rtas import encode_call, read_rets
from rtas.codes import ConfigureConnector
from rtas.hcalls import Hcall
from rtas.tokens import TOKENS_BY_NAME

ARGS_ADDR = 0x0200_0000
WORK_AREA = 0x0200_1000
ERRLOG_BUF = 0x0200_3000
CAS_VECTOR = 0x0200_4000
CAS_FDT_BUF = 0x0201_0000


class ScriptedGuest:
    """Makes RTAS calls on ``machine`` as vCPU ``vcpu`` and returns the rets."""

    def __init__(self, machine: PseriesMachine, vcpu: int = 0) -> None:
        self.machine = machine
        self.vcpu = vcpu
        self.calls: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def rtas(
        self, name: str, args: Sequence[int], nret: int, token: int | None = None
    ) -> tuple[int, ...]:
        """One RTAS call; returns rets (signed), rets[0] being the status."""
        tok = TOKENS_BY_NAME[name] if token is None else token
        encode_call(self.machine.memory, ARGS_ADDR, tok, list(args), nret)
        self.machine._hcall(self.vcpu, Hcall.KVMPPC_H_RTAS, (ARGS_ADDR,))
        rets = read_rets(self.machine.memory, ARGS_ADDR)
        self.calls.append((name, tuple(args), rets))
        return rets

    def status(self, name: str, args: Sequence[int], nret: int = 1) -> int:
        return self.rtas(name, args, nret)[0]

    def check_exception(self, mask: int) -> tuple[int, bytes]:
        """check-exception as Linux calls it; returns the status and the 116-byte log."""
        memory = self.machine.memory
        memory.write(ERRLOG_BUF, bytes(2048))
        status = self.rtas("check-exception", [0x500, 0x1001, mask, 0, ERRLOG_BUF, 2048], 1)[0]
        return status, memory.read(ERRLOG_BUF, 116)

    def configure_connector(
        self, drc_index: int, max_calls: int = 200
    ) -> tuple[list[int], Node | None]:
        """Walk ibm,configure-connector to the end; returns the codes and the rebuilt node."""
        memory = self.machine.memory
        memory.write(WORK_AREA, bytes(4096))
        memory.st32(WORK_AREA, drc_index)
        codes: list[int] = []
        stack: list[Node] = []
        root: Node | None = None
        for _ in range(max_calls):
            code = self.status("ibm,configure-connector", [WORK_AREA, 0])
            codes.append(code)
            if code == ConfigureConnector.NEXT_CHILD:
                name_off = memory.ld32(WORK_AREA + 8)
                node = Node(memory.read_cstring(WORK_AREA + name_off, 4096).decode())
                if stack:
                    stack[-1].append_subnode(node)
                else:
                    root = node
                stack.append(node)
            elif code == ConfigureConnector.NEXT_PROPERTY:
                name_off = memory.ld32(WORK_AREA + 8)
                length = memory.ld32(WORK_AREA + 12)
                value_off = memory.ld32(WORK_AREA + 16)
                name = memory.read_cstring(WORK_AREA + name_off, 4096).decode()
                value = memory.read(WORK_AREA + value_off, length)
                stack[-1].append_property(Property.bytes(name, value))
            elif code == ConfigureConnector.PREV_PARENT:
                stack.pop()
            else:
                break
        return codes, root
