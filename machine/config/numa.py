"""``-numa`` and ``-object memory-backend-ram``: NUMA nodes and the node of every CPU slot.

QEMU 7.2 keeps each ``-numa`` as raw QemuOpts when the command line is read and
interprets them later (``parse_numa_opts``, after ``-cpu`` is resolved), through
QAPI's NumaOptions and the "opts visitor": keys are checked in declaration order,
lists accept ranges (``cpus=0-3``) and repeats (``cpus=0,cpus=2``), leftovers are
"Invalid parameter". Then at board init the configuration is completed: pseries
enables NUMA implicitly (one node 0 with all RAM), node ids must be dense, node
memory must add up to RAM, and CPU slots without a node get the default mapping
(``slot / cores % nodes``) or, if some were mapped explicitly, node 0 with a warning.

CPU slots are cores: ``-numa node,cpus=N`` names a thread index (cpu_index), which
selects the slot ``N / threads``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import attrs

from machine.config.qemu_opts import (
    QemuOpts,
    QemuWarning,
    SizeError,
    ghash_order,
    invalid_value,
    parse_bool,
    parse_size,
)
from spapr.errors import QemuError

MAX_NODES = 128
NUMA_DISTANCE_MIN = 10
#: OPTS_VISITOR_RANGE_MAX: a range may span fewer than this many values.
RANGE_MAX = 65536
U64_MAX = (1 << 64) - 1

HMAT_DISABLED = (
    "ACPI Heterogeneous Memory Attribute Table (HMAT) is disabled, enable it with "
    "-machine hmat=on before using any of hmat specific options"
)

#: QAPI ObjectType values (qom-type of -object); only memory-backend-ram is modeled.
OBJECT_TYPES = frozenset(
    [
        "authz-list",
        "authz-listfile",
        "authz-pam",
        "authz-simple",
        "can-bus",
        "can-host-socketcan",
        "colo-compare",
        "cryptodev-backend",
        "cryptodev-backend-builtin",
        "cryptodev-backend-lkcf",
        "cryptodev-vhost-user",
        "dbus-vmstate",
        "filter-buffer",
        "filter-dump",
        "filter-mirror",
        "filter-redirector",
        "filter-replay",
        "filter-rewriter",
        "input-barrier",
        "input-linux",
        "iothread",
        "main-loop",
        "memory-backend-epc",
        "memory-backend-file",
        "memory-backend-memfd",
        "memory-backend-ram",
        "pef-guest",
        "pr-manager-helper",
        "qtest",
        "rng-builtin",
        "rng-egd",
        "rng-random",
        "secret",
        "secret_keyring",
        "sev-guest",
        "thread-context",
        "s390-pv-guest",
        "throttle-group",
        "tls-creds-anon",
        "tls-creds-psk",
        "tls-creds-x509",
        "tls-cipher-suites",
        "x-remote-object",
        "x-vfio-user-server",
    ]
)


# --------------------------------------------------------------------------
# The opts visitor


class _OptsVisitor:
    """QEMU's OptsVisitor over one QemuOpts: typed reads that consume keys."""

    def __init__(self, opts: QemuOpts) -> None:
        self.location = opts.location
        self.unprocessed: dict[str, list[str]] = {}
        for opt in opts.opts:
            self.unprocessed.setdefault(opt.name, []).append(opt.text)
        if opts.id is not None:
            self.unprocessed.setdefault("id", []).append(opts.id)

    def error(self, message: str) -> QemuError:
        return QemuError(message, location=self.location)

    def present(self, name: str) -> bool:
        return name in self.unprocessed

    def _scalar(self, name: str) -> str:
        if name not in self.unprocessed:
            raise self.error(f"Parameter '{name}' is missing")
        return self.unprocessed[name][-1]

    def string(self, name: str) -> str:
        value = self._scalar(name)
        del self.unprocessed[name]
        return value

    def enum(self, name: str, allowed: Sequence[str] | frozenset[str]) -> str:
        value = self.string(name)
        if value not in allowed:
            raise self.error(f"Parameter '{name}' does not accept value '{value}'")
        return value

    def boolean(self, name: str) -> bool:
        flag = parse_bool(self._scalar(name))
        if flag is None:
            raise self.error(invalid_value(name, "'on' or 'off'"))
        del self.unprocessed[name]
        return flag

    def uint(self, name: str, bits: int) -> int:
        text = self._scalar(name)
        value = _parse_uint(text)
        if value is None or value[1] != len(text):
            raise self.error(invalid_value(name, "a uint64 value"))
        if value[0] >= 1 << bits:
            raise self.error(invalid_value(name, f"uint{bits}_t"))
        del self.unprocessed[name]
        return value[0]

    def int64(self, name: str) -> int:
        text = self._scalar(name)
        value = _parse_int64(text)
        if value is None:
            raise self.error(invalid_value(name, "an int64 value"))
        del self.unprocessed[name]
        return value

    def size(self, name: str) -> int:
        text = self._scalar(name)
        try:
            value = parse_size(text)
        except SizeError:
            raise self.error(invalid_value(name, "a size value")) from None
        del self.unprocessed[name]
        return value

    def uint_list(self, name: str, bits: int) -> list[int]:
        """A list of unsigned values; each repeated key adds one value or one range."""
        out: list[int] = []
        for text in self.unprocessed.pop(name, []):
            first = _parse_uint(text)
            if first is None:
                raise self.error(invalid_value(name, "a uint64 value or range"))
            low, end = first
            if end == len(text):
                values = [low]
            else:
                high = _parse_uint(text[end + 1 :]) if text[end] == "-" else None
                if (
                    high is None
                    or high[1] != len(text) - end - 1
                    or low > high[0]
                    or high[0] - low >= RANGE_MAX
                ):
                    raise self.error(invalid_value(name, "a uint64 value or range"))
                values = list(range(low, high[0] + 1))
            for value in values:
                if value >= 1 << bits:
                    # List elements are visited without a name.
                    raise self.error(invalid_value("null", f"uint{bits}_t"))
                out.append(value)
        return out

    def check_struct(self) -> None:
        if self.unprocessed:
            first = ghash_order(list(self.unprocessed))[0]
            raise self.error(f"Invalid parameter '{first}'")


def _parse_uint(text: str) -> tuple[int, int] | None:
    """QEMU's ``parse_uint`` with base 0: (value, end) of the leading number, no sign."""
    i = 0
    while i < len(text) and text[i] in " \t\n\v\f\r":
        i += 1
    if i < len(text) and text[i] == "-":
        return None
    j = i + 1 if i < len(text) and text[i] == "+" else i
    if text[j : j + 2].lower() == "0x" and j + 2 < len(text) and text[j + 2] in _HEX:
        k, base, start = j + 2, 16, j + 2
    elif text[j : j + 1] == "0":
        k, base, start = j + 1, 8, j
    else:
        k, base, start = j, 10, j
    digits = "01234567" if base == 8 else ("0123456789" if base == 10 else _HEX)
    while k < len(text) and text[k] in digits:
        k += 1
    if k == start:
        return None
    value = int(text[start:k], base) if k > start else 0
    if value > U64_MAX:
        return None
    return value, k


_HEX = "0123456789abcdefABCDEF"


def _parse_int64(text: str) -> int | None:
    """``strtoll(text, &end, 0)`` consuming the whole string, in range, or None."""
    from machine.config.qemu_opts import strtoi64

    return strtoi64(text) if text else None


# --------------------------------------------------------------------------
# -object memory-backend-ram


@attrs.frozen
class MemoryBackend:
    """A ``memory-backend-ram`` object: its id, size and option text."""

    id: str
    size: int
    location: str | None
    prealloc: bool = False
    share: bool = False


_BACKEND_BOOLS = ("dump", "merge", "prealloc", "share", "reserve")
#: The memory backends -object creates, with the keys of their own (QEMU's names). In
#: this model every backend only gives the RAM its id and size: no guest RAM is ever
#: allocated, so a file or memfd backend is checked as QEMU checks it and used as one.
MEMORY_BACKEND_TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "memory-backend-ram": (),
    "memory-backend-file": (
        ("mem-path", "string"),
        ("align", "int"),
        ("discard-data", "bool"),
        ("pmem", "bool"),
        ("readonly", "bool"),
    ),
    "memory-backend-memfd": (("hugetlb", "bool"), ("hugetlbsize", "int"), ("seal", "bool")),
}
_HOST_MEM_POLICIES = ("default", "preferred", "bind", "interleave")


def parse_memory_backend(opts: QemuOpts) -> MemoryBackend:
    """Check a ``-object`` the way QEMU's visitor does when the option is read.

    Only ``memory-backend-ram`` is modeled; other valid QOM object types are refused
    with a clear message, unknown ones with QEMU's text.
    """
    v = _OptsVisitor(opts)
    if not v.present("qom-type"):
        raise v.error("Parameter 'qom-type' is missing")
    qom_type = v.enum("qom-type", OBJECT_TYPES)
    if qom_type not in MEMORY_BACKEND_TYPES:
        raise v.error(f"-object {qom_type} is not modeled by this emulator")
    ident = v.string("id")
    for name, kind in MEMORY_BACKEND_TYPES[qom_type]:
        if not v.present(name):
            continue
        if kind == "bool":
            v.boolean(name)
        elif kind == "int":
            v.size(name)
        else:
            v.string(name)
    if qom_type == "memory-backend-file":
        if not v.present("mem-path"):
            raise v.error("mem-path property not set")
        path = v.string("mem-path")
        if not os.path.exists(path) and not os.path.isdir(os.path.dirname(path) or "."):
            raise v.error(
                f"can't open backing store {path} for guest RAM: No such file or directory"
            )
    values: dict[str, bool] = {}
    for name in ("dump", "host-nodes", "merge", "policy", "prealloc", "prealloc-threads",
                 "prealloc-context", "share", "reserve"):  # fmt: skip
        if not v.present(name):
            continue
        if name in _BACKEND_BOOLS:
            values[name] = v.boolean(name)
        elif name == "host-nodes":
            v.uint_list(name, 16)
        elif name == "policy":
            v.enum(name, _HOST_MEM_POLICIES)
        elif name == "prealloc-threads":
            v.uint(name, 32)
        else:
            v.string(name)
    size = v.size("size")
    if v.present("x-use-canonical-path-for-ramblock-id"):
        v.boolean("x-use-canonical-path-for-ramblock-id")
    v.check_struct()
    return MemoryBackend(
        ident, size, opts.location, values.get("prealloc", False), values.get("share", False)
    )


def create_memory_backend(backend: MemoryBackend) -> None:
    """Object creation checks (late backends): a zero size is refused."""
    if backend.size == 0:
        raise QemuError("property 'size' of memory-backend-ram doesn't take value '0'")


# --------------------------------------------------------------------------
# -numa options


@attrs.frozen
class NumaNodeOption:
    """``-numa node``: node id, thread indexes, memory (size or backend id)."""

    nodeid: int | None
    cpus: tuple[int, ...]
    mem: int | None
    memdev: str | None
    initiator: int | None
    location: str | None


@attrs.frozen
class NumaCpuOption:
    """``-numa cpu``: CPU instance properties to match and the node to give them."""

    node_id: int | None
    socket_id: int | None
    die_id: int | None
    cluster_id: int | None
    core_id: int | None
    thread_id: int | None
    location: str | None


@attrs.frozen
class NumaDistOption:
    """``-numa dist``: distance from ``src`` to ``dst``."""

    src: int
    dst: int
    val: int
    location: str | None


NumaOption = NumaNodeOption | NumaCpuOption | NumaDistOption

_NUMA_TYPES = ("node", "dist", "cpu", "hmat-lb", "hmat-cache")


def read_numa_option(opts: QemuOpts) -> NumaOption:
    """Interpret one ``-numa`` (visitor errors carry the option as location)."""
    v = _OptsVisitor(opts)
    kind = v.enum("type", _NUMA_TYPES)
    if kind == "node":
        nodeid = v.uint("nodeid", 16) if v.present("nodeid") else None
        cpus = tuple(v.uint_list("cpus", 16)) if v.present("cpus") else ()
        mem: int | None = None
        if v.present("mem"):
            raw = v._scalar("mem")
            v.size("mem")
            # The legacy value is re-read with MiB as the default unit.
            mem = parse_size(raw, default_suffix="M")
        memdev = v.string("memdev") if v.present("memdev") else None
        initiator = v.uint("initiator", 16) if v.present("initiator") else None
        v.check_struct()
        return NumaNodeOption(nodeid, cpus, mem, memdev, initiator, opts.location)
    if kind == "dist":
        src = v.uint("src", 16)
        dst = v.uint("dst", 16)
        val = v.uint("val", 8)
        v.check_struct()
        return NumaDistOption(src, dst, val, opts.location)
    if kind == "cpu":
        ids = {
            key: (v.int64(key) if v.present(key) else None)
            for key in ("node-id", "socket-id", "die-id", "cluster-id", "core-id", "thread-id")
        }
        v.check_struct()
        return NumaCpuOption(
            ids["node-id"],
            ids["socket-id"],
            ids["die-id"],
            ids["cluster-id"],
            ids["core-id"],
            ids["thread-id"],
            opts.location,
        )
    # HMAT options are checked, then refused: pseries cannot enable HMAT.
    if kind == "hmat-lb":
        v.uint("initiator", 16)
        v.uint("target", 16)
        v.enum("hierarchy", ("memory", "first-level", "second-level", "third-level"))
        v.enum("data-type", _HMAT_DATA_TYPES)
        if v.present("latency"):
            v.uint("latency", 64)
        if v.present("bandwidth"):
            v.size("bandwidth")
    else:
        v.uint("node-id", 32)
        v.size("size")
        v.uint("level", 8)
        v.enum("associativity", ("none", "direct", "complex"))
        v.enum("policy", ("none", "write-back", "write-through"))
        v.uint("line", 16)
    v.check_struct()
    raise QemuError(HMAT_DISABLED, location=opts.location)


_HMAT_DATA_TYPES = (
    "access-latency",
    "read-latency",
    "write-latency",
    "access-bandwidth",
    "read-bandwidth",
    "write-bandwidth",
)


# --------------------------------------------------------------------------
# NUMA state


@attrs.define
class NumaNode:
    """One defined node: its memory and the backend holding it."""

    node_mem: int = 0
    memdev: str | None = None
    distances: dict[int, int] = attrs.field(factory=dict)


@attrs.define
class NumaState:
    """Nodes being defined, and the node of each possible-CPU slot (None = unmapped).

    ``ensure_slots(location)`` builds the possible-CPU list the first time it is
    needed (it raises "Unable to find sPAPR CPU Core definition" for a CPU without
    a core, naming the ``-numa`` option being processed).
    """

    max_cpus: int
    threads: int
    cores: int
    slot_count: int
    ensure_slots: Callable[[str | None], None]
    numa_mem_supported: bool
    nodes: dict[int, NumaNode] = attrs.field(factory=dict)
    slot_nodes: list[int | None] = attrs.field(init=False)
    have_memdevs: bool = False
    have_mem: bool = False
    have_distance: bool = False
    max_nodeid: int = 0

    def __attrs_post_init__(self) -> None:
        self.slot_nodes = [None] * self.slot_count

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def set_cpu_node(
        self, node_id: int, location: str | None, *, core_id: int | None = None,
        unsupported: str | None = None,
    ) -> None:  # fmt: skip
        """``machine_set_cpu_numa_node``: give matching slots ``node_id``."""
        self.ensure_slots(location)
        matched = False
        for index in range(self.slot_count):
            if unsupported is not None:
                raise QemuError(f"{unsupported} is not supported", location=location)
            if core_id is not None and core_id != index * self.threads:
                continue
            current = self.slot_nodes[index]
            if current is not None and current != node_id:
                raise QemuError(f"CPU is already assigned to node-id: {current}", location=location)
            matched = True
            self.slot_nodes[index] = node_id
        if not matched:
            raise QemuError("no match found", location=location)

    def add_node(
        self,
        option: NumaNodeOption,
        backends: Mapping[str, MemoryBackend],
        warnings: list[QemuWarning],
    ) -> None:
        """``parse_numa_node``."""
        loc = option.location
        nodenr = option.nodeid if option.nodeid is not None else self.num_nodes
        if nodenr >= MAX_NODES:
            raise QemuError(f"Max number of NUMA nodes reached: {nodenr}", location=loc)
        if nodenr in self.nodes:
            raise QemuError(f"Duplicate NUMA nodeid: {nodenr}", location=loc)
        if option.initiator is not None:
            raise QemuError(HMAT_DISABLED, location=loc)
        for cpu in option.cpus:
            if cpu >= self.max_cpus:
                raise QemuError(
                    f"CPU index ({cpu}) should be smaller than maxcpus ({self.max_cpus})",
                    location=loc,
                )
            self.set_cpu_node(nodenr, loc, core_id=(cpu // self.threads) * self.threads)
        self.have_memdevs = self.have_memdevs or option.memdev is not None
        self.have_mem = self.have_mem or option.mem is not None
        if (option.mem is not None and self.have_memdevs) or (
            option.memdev is not None and self.have_mem
        ):
            raise QemuError(
                "numa configuration should use either mem= or memdev=,mixing both is not allowed",
                location=loc,
            )
        node = NumaNode()
        if option.mem is not None:
            if not self.numa_mem_supported:
                raise QemuError(
                    "Parameter -numa node,mem is not supported by this machine type\n"
                    "Use -numa node,memdev instead",
                    location=loc,
                )
            node.node_mem = option.mem
            warnings.append(
                QemuWarning(
                    "Parameter -numa node,mem is deprecated, use -numa node,memdev instead", loc
                )
            )
        if option.memdev is not None:
            backend = backends.get(option.memdev)
            if backend is None:
                raise QemuError(f"memdev={option.memdev} is ambiguous", location=loc)
            node.node_mem = backend.size
            node.memdev = backend.id
        self.nodes[nodenr] = node
        self.max_nodeid = max(self.max_nodeid, nodenr + 1)

    def add_cpu(self, option: NumaCpuOption) -> None:
        """``-numa cpu``: map the matching slot(s) to an existing node."""
        loc = option.location
        if option.node_id is None:
            raise QemuError("Missing mandatory node-id property", location=loc)
        if option.node_id not in self.nodes:
            raise QemuError(
                f"Invalid node-id={option.node_id}, NUMA node must be defined with "
                "-numa node,nodeid=ID before it's used with -numa cpu,node-id=ID",
                location=loc,
            )
        unsupported = None
        for key, value in (
            ("thread-id", option.thread_id),
            ("cluster-id", option.cluster_id),
            ("socket-id", option.socket_id),
            ("die-id", option.die_id),
        ):
            if value is not None:
                unsupported = key
                break
        self.set_cpu_node(option.node_id, loc, core_id=option.core_id, unsupported=unsupported)

    def add_distance(self, option: NumaDistOption) -> None:
        """``parse_numa_distance``."""
        loc = option.location
        if option.src >= MAX_NODES or option.dst >= MAX_NODES:
            which = "src" if option.src >= MAX_NODES else "dst"
            raise QemuError(
                f"Parameter '{which}' expects an integer between 0 and {MAX_NODES - 1}",
                location=loc,
            )
        if option.src not in self.nodes or option.dst not in self.nodes:
            raise QemuError(
                "Source/Destination NUMA node is missing. "
                "Please use '-numa node' option to declare it first.",
                location=loc,
            )
        if option.val < NUMA_DISTANCE_MIN:
            raise QemuError(
                f"NUMA distance ({option.val}) is invalid, it shouldn't be less than "
                f"{NUMA_DISTANCE_MIN}.",
                location=loc,
            )
        if option.src == option.dst and option.val != NUMA_DISTANCE_MIN:
            raise QemuError(
                f"Local distance of node {option.src} should be {NUMA_DISTANCE_MIN}.",
                location=loc,
            )
        self.nodes[option.src].distances[option.dst] = option.val
        self.have_distance = True

    def apply(
        self,
        option: NumaOption,
        backends: Mapping[str, MemoryBackend],
        warnings: list[QemuWarning],
    ) -> None:
        """Apply one interpreted ``-numa`` option."""
        if isinstance(option, NumaNodeOption):
            self.add_node(option, backends, warnings)
        elif isinstance(option, NumaCpuOption):
            self.add_cpu(option)
        else:
            self.add_distance(option)

    def complete(self, ram_size: int) -> None:
        """``numa_complete_configuration`` for pseries (NUMA always enabled)."""
        if self.num_nodes == 0:
            self.nodes[0] = NumaNode(node_mem=ram_size)
            self.max_nodeid = 1
        for i in range(self.max_nodeid - 1, -1, -1):
            if i not in self.nodes:
                raise QemuError(f"numa: Node ID missing: {i}")
        total = sum(node.node_mem for node in self.nodes.values())
        if total != ram_size:
            raise QemuError(
                f"total memory for NUMA nodes (0x{total:x}) should equal RAM size (0x{ram_size:x})"
            )
        if self.have_distance:
            self._validate_distances()

    def _validate_distances(self) -> None:
        n = self.num_nodes
        dist = {(s, d): self.nodes[s].distances.get(d, 0) for s in range(n) for d in range(n)}
        asymmetric = False
        for src in range(n):
            for dst in range(src, n):
                if dist[src, dst] == 0 and dist[dst, src] == 0 and src != dst:
                    raise QemuError(
                        f"The distance between node {src} and {dst} is missing, at least one "
                        "distance value between each nodes should be provided."
                    )
                if dist[src, dst] and dist[dst, src] and dist[src, dst] != dist[dst, src]:
                    asymmetric = True
        if asymmetric:
            for src in range(n):
                for dst in range(n):
                    if src != dst and dist[src, dst] == 0:
                        raise QemuError(
                            "At least one asymmetrical pair of distances is given, please "
                            "provide distances for both directions of all node pairs."
                        )
        for src in range(n):
            for dst in range(n):
                if dist[src, dst] == 0:
                    value = NUMA_DISTANCE_MIN if src == dst else dist[dst, src]
                    self.nodes[src].distances[dst] = value

    def finish_cpu_init(self, warnings: list[QemuWarning]) -> tuple[int, ...]:
        """``machine_numa_finish_cpu_init``: every slot gets a node; returns them.

        No explicit mapping: slot i goes to node ``i / cores % nodes``. Partial
        mapping: the rest go to node 0 and QEMU's two warnings are added.
        """
        self.ensure_slots(None)
        default_mapping = all(node is None for node in self.slot_nodes)
        unmapped: list[str] = []
        for index, node in enumerate(self.slot_nodes):
            if node is not None:
                continue
            if default_mapping:
                self.slot_nodes[index] = index // self.cores % self.num_nodes
            else:
                unmapped.append(f"CPU {index} [core-id: {index * self.threads}]")
                self.slot_nodes[index] = 0
        if unmapped:
            warnings.append(
                QemuWarning(f"CPU(s) not present in any NUMA nodes: {', '.join(unmapped)}")
            )
            warnings.append(
                QemuWarning(
                    "All CPU(s) up to maxcpus should be described in NUMA config, ability to "
                    "start up with partial NUMA mappings is obsoleted and will be removed in "
                    "future"
                )
            )
        return tuple(node if node is not None else 0 for node in self.slot_nodes)

    def node0_size(self, ram_size: int) -> int:
        """``spapr_node0_size``: the RMA must fit in the first node that has memory."""
        for i in sorted(self.nodes):
            mem = self.nodes[i].node_mem
            if mem:
                return min(1 << (mem.bit_length() - 1), ram_size)
        return ram_size

    def node_memory(self) -> tuple[int, ...]:
        """Memory of nodes 0..n-1."""
        return tuple(self.nodes[i].node_mem for i in range(self.num_nodes))

    def distance_table(self) -> tuple[tuple[int, ...], ...] | None:
        """The completed distance matrix, or None if no ``-numa dist`` was given."""
        if not self.have_distance:
            return None
        n = self.num_nodes
        return tuple(tuple(self.nodes[s].distances[d] for d in range(n)) for s in range(n))
