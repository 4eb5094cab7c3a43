"""QEMU's deterministic guest randomness (``-seed N``): GLib's Mersenne Twister.

With ``-seed`` QEMU seeds a GRand from the 64-bit seed as an array of two 32-bit
words (init_by_array) and hands out bytes four at a time in host (little-endian)
order. Every vCPU thread QEMU starts draws 8 bytes for its own generator, so the
``/chosen/rng-seed`` of the device tree depends on how many vCPUs exist — which is
why the machine routes both through this one stream.
"""

from __future__ import annotations

import os

_N = 624
_MASK = 0xFFFFFFFF


def _init_genrand(seed: int) -> list[int]:
    mt = [0] * _N
    mt[0] = seed & _MASK
    for i in range(1, _N):
        mt[i] = (1812433253 * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i) & _MASK
    return mt


def _init_by_array(key: list[int]) -> list[int]:
    mt = _init_genrand(19650218)
    i, j = 1, 0
    for _ in range(max(_N, len(key))):
        mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525)) + key[j] + j) & _MASK
        i += 1
        j += 1
        if i >= _N:
            mt[0] = mt[_N - 1]
            i = 1
        if j >= len(key):
            j = 0
    for _ in range(_N - 1):
        mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941)) - i) & _MASK
        i += 1
        if i >= _N:
            mt[0] = mt[_N - 1]
            i = 1
    mt[0] = 0x80000000
    return mt


class MersenneTwister:
    """MT19937 producing the same 32-bit words as GLib's g_rand_int."""

    def __init__(self, state: list[int]) -> None:
        self._mt = state
        self._index = _N

    def _twist(self) -> None:
        mt = self._mt
        for k in range(_N):
            y = (mt[k] & 0x80000000) | (mt[(k + 1) % _N] & 0x7FFFFFFF)
            v = mt[(k + 397) % _N] ^ (y >> 1)
            if y & 1:
                v ^= 0x9908B0DF
            mt[k] = v
        self._index = 0

    def next_u32(self) -> int:
        if self._index >= _N:
            self._twist()
        y = self._mt[self._index]
        self._index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & _MASK


class GuestRandom:
    """qemu_guest_getrandom: deterministic with ``-seed``, OS randomness otherwise."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._mt: MersenneTwister | None = None
        if seed is not None:
            seed &= (1 << 64) - 1
            self._mt = MersenneTwister(_init_by_array([seed & _MASK, seed >> 32]))

    def getrandom(self, length: int) -> bytes:
        """``length`` bytes, four per 32-bit word in little-endian order (as on x86)."""
        if self._mt is None:
            return os.urandom(length)
        out = bytearray()
        while len(out) < length:
            out += self._mt.next_u32().to_bytes(4, "little")
        return bytes(out[:length])

    def snapshot(self) -> tuple[int, list[int]] | None:
        """The stream's position (None without -seed), for :meth:`restore`."""
        if self._mt is None:
            return None
        return self._mt._index, list(self._mt._mt)

    def restore(self, state: tuple[int, list[int]] | None) -> None:
        """Go back to a :meth:`snapshot` (a host operation undone draws nothing)."""
        if state is not None and self._mt is not None:
            self._mt._index, self._mt._mt = state[0], list(state[1])

    def vcpu_thread_started(self) -> None:
        """A vCPU thread drew its own 8-byte seed (qemu_guest_random_seed_thread_part1)."""
        if self._mt is not None:
            self.getrandom(8)
