"""Iteration order of QOM property tables, as QEMU 7.2 linked against GLib 2.74 sees it.

QEMU keeps an object's properties (and the `/dr-connector` container's links)
in a GLib `GHashTable` and walks it in bucket order: for `qom-list`, for the
`ibm,drc-*` device-tree arrays and for the DRC reset pass at machine reset.
`GHashTableModel` replays GLib's open-addressing table (djb2 hash, quadratic
probing, tombstones, in-place resize) so those orders come out identical.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence

import attrs

# GLib never shrinks a table below 1 << 3 buckets.
HASH_TABLE_MIN_SHIFT = 3

# GLib's `prime_mod` table, indexed by shift (a prime just below 1 << shift from shift 2 on).
PRIME_MOD: tuple[int, ...] = (
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749,
    65521, 131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213,
    33554393, 67108859, 134217689, 268435399, 536870909, 1073741789, 2147483647,
)  # fmt: skip

# Reserved values of a bucket's stored hash; a real hash is always >= 2.
UNUSED_HASH_VALUE = 0
TOMBSTONE_HASH_VALUE = 1

_U32 = 0xFFFFFFFF


def g_str_hash(key: str) -> int:
    """GLib's `g_str_hash`: djb2 (h = h * 33 + c from 5381) over the UTF-8 bytes, 32-bit.

    GLib reads the bytes as `signed char`, so bytes >= 0x80 count as negative.
    """
    h = 5381
    for byte in key.encode():
        h = (h * 33 + (byte - 256 if byte >= 0x80 else byte)) & _U32
    return h


def _closest_shift(n: int) -> int:
    """Number of significant bits of `n` (GLib's `g_hash_table_find_closest_shift`)."""
    return max(n, 0).bit_length()


@attrs.define
class GHashTableModel:
    """A GLib 2.74 `GHashTable` keyed by strings, reduced to what decides iteration order.

    Buckets hold a stored hash (0 unused, 1 tombstone, else the key's hash) and a key.
    """

    _shift: int = attrs.field(default=HASH_TABLE_MIN_SHIFT, init=False)
    _hashes: list[int] = attrs.field(
        factory=lambda: [UNUSED_HASH_VALUE] * (1 << HASH_TABLE_MIN_SHIFT), init=False
    )
    _keys: list[str | None] = attrs.field(
        factory=lambda: [None] * (1 << HASH_TABLE_MIN_SHIFT), init=False
    )
    _nnodes: int = attrs.field(default=0, init=False)
    # Live entries plus tombstones.
    _noccupied: int = attrs.field(default=0, init=False)

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> GHashTableModel:
        """A table after inserting `keys` in the given order."""
        table = cls()
        for key in keys:
            table.insert(key)
        return table

    @property
    def size(self) -> int:
        """Number of buckets (a power of two)."""
        return 1 << self._shift

    @property
    def mod(self) -> int:
        """The prime that maps a hash to its home bucket."""
        return PRIME_MOD[self._shift]

    def __len__(self) -> int:
        return self._nnodes

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        index, _ = self._lookup(key)
        return self._hashes[index] >= 2

    def __iter__(self) -> Iterator[str]:
        for stored_hash, key in zip(self._hashes, self._keys):
            if stored_hash >= 2:
                assert key is not None
                yield key

    def keys(self) -> list[str]:
        """Keys in `g_hash_table_iter_next` order: occupied buckets in array order."""
        return list(self)

    def _home(self, key_hash: int) -> int:
        # GLib multiplies by 11 in guint arithmetic before taking the modulus.
        return ((key_hash * 11) & _U32) % self.mod

    def _lookup(self, key: str) -> tuple[int, int]:
        """GLib's `g_hash_table_lookup_node`: (bucket of `key`, or where to put it; hash)."""
        key_hash = g_str_hash(key)
        if key_hash < 2:
            key_hash = 2
        mask = self.size - 1
        index = self._home(key_hash)
        first_tombstone: int | None = None
        step = 0
        while (stored := self._hashes[index]) != UNUSED_HASH_VALUE:
            if stored == key_hash:
                if self._keys[index] == key:
                    return index, key_hash
            elif stored == TOMBSTONE_HASH_VALUE and first_tombstone is None:
                first_tombstone = index
            step += 1
            index = (index + step) & mask
        if first_tombstone is not None:
            return first_tombstone, key_hash
        return index, key_hash

    def insert(self, key: str) -> bool:
        """Add `key` (`g_hash_table_insert`); False if it was already present."""
        index, key_hash = self._lookup(key)
        old_hash = self._hashes[index]
        if old_hash >= 2:
            return False
        self._hashes[index] = key_hash
        self._keys[index] = key
        self._nnodes += 1
        if old_hash == UNUSED_HASH_VALUE:
            # Filling a tombstone neither raises occupancy nor triggers a resize.
            self._noccupied += 1
            self._maybe_resize()
        return True

    def remove(self, key: str) -> bool:
        """Delete `key` (`g_hash_table_remove`), leaving a tombstone; False if absent."""
        index, _ = self._lookup(key)
        if self._hashes[index] < 2:
            return False
        self._hashes[index] = TOMBSTONE_HASH_VALUE
        self._keys[index] = None
        self._nnodes -= 1
        self._maybe_resize()
        return True

    def _maybe_resize(self) -> None:
        """GLib's trigger: shrink below 1/4 live load, clean or grow above 15/16 occupancy."""
        size = self.size
        noccupied = self._noccupied
        if (size > self._nnodes * 4 and size > 1 << HASH_TABLE_MIN_SHIFT) or (
            size <= noccupied + noccupied // 16
        ):
            self._resize()

    def _resize(self) -> None:
        """GLib's in-place resize: drop tombstones and rehash by eviction chains.

        Buckets are visited in old array order; each live entry is moved to the first
        free-or-unclaimed slot on its probe path in the new geometry, and whatever
        it displaces continues the chain. A bitmap marks slots already settled.
        """
        old_size = self.size
        # GLib converts nnodes * 1.333 (a double) to int.
        self._shift = max(_closest_shift(int(self._nnodes * 1.333)), HASH_TABLE_MIN_SHIFT)
        new_size = self.size
        mask = new_size - 1
        hashes = self._hashes
        keys = self._keys
        if new_size > old_size:
            hashes.extend([UNUSED_HASH_VALUE] * (new_size - old_size))
            keys.extend([None] * (new_size - old_size))
        settled = bytearray(max(new_size, old_size))

        for i in range(old_size):
            node_hash = hashes[i]
            if node_hash < 2:
                hashes[i] = UNUSED_HASH_VALUE
                continue
            if settled[i]:
                continue
            hashes[i] = UNUSED_HASH_VALUE
            node_key = keys[i]
            keys[i] = None
            while True:
                target = self._home(node_hash)
                step = 0
                while settled[target]:
                    step += 1
                    target = (target + step) & mask
                settled[target] = 1
                replaced_hash = hashes[target]
                hashes[target] = node_hash
                node_key, keys[target] = keys[target], node_key
                if replaced_hash < 2:
                    break
                node_hash = replaced_hash

        if new_size < old_size:
            del hashes[new_size:]
            del keys[new_size:]
        self._noccupied = self._nnodes


def drc_link_name(drc_index: int) -> str:
    """Name of a DRC's link in the `/dr-connector` container: lower-case hex, no 0x."""
    return f"{drc_index:x}"


def drc_container_order(indexes_in_insertion_order: Sequence[int]) -> list[int]:
    """DRC indexes in the order QEMU walks `/dr-connector`, given their realize order.

    This order is used by the `ibm,drc-*` arrays (filtered by owner and type)
    and by the DRC reset pass.
    """
    table = GHashTableModel.from_keys(drc_link_name(i) for i in indexes_in_insertion_order)
    return [int(name, 16) for name in table]


def drc_reset_order(container_order: Sequence[int], unplug_requested: Collection[int]) -> list[int]:
    """DRC indexes in `spapr_drc_reset` trace order for one machine reset.

    QEMU restarts the container walk from its start each time a reset completes
    a pending unplug; the released DRC stays in the container (true for CPU
    connectors), so each pending DRC causes one partial walk before the full one.
    """
    pending = set(unplug_requested)
    order: list[int] = []
    while True:
        for index in container_order:
            order.append(index)
            if index in pending:
                pending.discard(index)
                break
        else:
            return order


def property_iteration_order(
    instance: GHashTableModel, class_chain: Sequence[GHashTableModel]
) -> list[str]:
    """Property names in `object_property_iter_next` order.

    The instance table comes first, then each class table from the most derived
    class up to `object`.
    """
    names = instance.keys()
    for klass in class_chain:
        names.extend(klass.keys())
    return names


def qom_list_order(instance: GHashTableModel, class_chain: Sequence[GHashTableModel]) -> list[str]:
    """Property names in the order `qom-list` answers: the iteration order reversed.

    QEMU builds the answer by prepending each property it visits.
    """
    return property_iteration_order(instance, class_chain)[::-1]
