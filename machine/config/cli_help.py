"""What the command line prints when asked: ``-h``, ``-version``, ``-cpu help``, ``-device help``.

Each text has qemu-system-ppc64 7.2's layout and, line for line, QEMU's wording,
but lists only what this emulator has: the options it models (``-h``), the CPU
models with an sPAPR core (``-cpu help``), the spapr CPU core devices (``-device
help``) and their properties (``-device TYPE,help``). ``-h`` ends with the
project's own options in a section of their own, headed so that nobody takes
them for QEMU's. ``machine.config.cmdline`` decides when a text is printed; the
HMP ``device_add help`` shares the device lists.
"""

from __future__ import annotations

import attrs

from machine.config.version import version_string
from spapr.cpu_models import (
    ABSTRACT_CORE_TYPE,
    CORE_TYPE_SUFFIX,
    CPU_MODELS,
    by_core_type,
)
from spapr.cpu_names import CPU_ALIASES

PROG = "qemu-system-ppc64"

#: qdev_device_help for a spapr core type (QEMU 7.2's property list and defaults).
CORE_PROPERTY_HELP = (
    "  core-id=<int>",
    "  node-id=<int32>        -  (default: -1)",
    "  nr-threads=<int>",
    "  pre-3.0-migration=<bool> -  (default: false)",
)
#: Abstract QOM parents of the core types: -device cannot create them.
ABSTRACT_DEVICE_TYPES = (ABSTRACT_CORE_TYPE, "cpu-core")
#: Heading of the project's section of ``-h``.
PROJECT_SECTION = "Options of this emulator (spapr-hotplug additions, not QEMU's):"


@attrs.frozen
class OptionHelp:
    """One option's entry in ``-h``: its synopsis lines and the lines that explain it."""

    #: The option names the entry documents (``-h`` lists an option once).
    names: tuple[str, ...]
    #: The lines, exactly as printed.
    lines: tuple[str, ...]


def _entry(names: str, *lines: str) -> OptionHelp:
    return OptionHelp(tuple(names.split()), lines)


#: QEMU's ``-h`` sections, keeping only the options this emulator models and only the
#: lines of their entries that hold here (QEMU's wording, QEMU's order).
QEMU_SECTIONS: tuple[tuple[str, tuple[OptionHelp, ...]], ...] = (
    (
        "Standard options:",
        (
            _entry("h help", "-h or -help     display this help and exit"),
            _entry("version", "-version        display version information and exit"),
            _entry(
                "machine M",
                "-machine [type=]name[,prop[=value][,...]]",
                "                selects emulated machine ('-machine help' for list)",
                "                property accel=accel1[:accel2[:...]] selects accelerator",
            ),
            _entry("cpu", "-cpu cpu        select CPU ('-cpu help' for list)"),
            _entry("accel", "-accel [accel=]accelerator[,prop[=value][,...]]"),
            _entry(
                "smp",
                "-smp [[cpus=]n][,maxcpus=maxcpus][,sockets=sockets][,dies=dies]"
                "[,clusters=clusters][,cores=cores][,threads=threads]",
                "                set the number of initial CPUs to 'n' [default=1]",
                "                maxcpus= maximum number of total CPUs, including",
                "                offline CPUs for hotplug, etc",
                "                sockets= number of sockets on the machine board",
                "                dies= number of dies in one socket",
                "                clusters= number of clusters in one die",
                "                cores= number of cores in one cluster",
                "                threads= number of threads in one core",
            ),
            _entry(
                "numa",
                "-numa node[,mem=size][,cpus=firstcpu[-lastcpu]][,nodeid=node][,initiator=node]",
                "-numa node[,memdev=id][,cpus=firstcpu[-lastcpu]][,nodeid=node][,initiator=node]",
                "-numa dist,src=source,dst=destination,val=distance",
                "-numa cpu,node-id=node[,socket-id=x][,core-id=y][,thread-id=z]",
            ),
            _entry(
                "global",
                "-global driver.property=value",
                "-global driver=driver,property=property,value=value",
                "                set a global default for a driver property",
            ),
            _entry(
                "m",
                "-m [size=]megs[,slots=n,maxmem=size]",
                "                configure guest RAM",
                "                size: initial amount of guest memory",
                "                slots: number of hotplug slots (default: none)",
                "                maxmem: maximum amount of guest memory (default: none)",
            ),
            _entry(
                "device",
                "-device driver[,prop[=value][,...]]",
                "                add device (based on driver)",
                "                prop=value,... sets driver properties",
                "                use '-device help' to print all possible drivers",
                "                use '-device driver,help' to print all possible properties",
            ),
            _entry(
                "name",
                "-name string1[,process=string2][,debug-threads=on|off]",
                "                set the name of the guest",
            ),
        ),
    ),
    (
        "Display options:",
        (
            _entry("display", "-display none", "                select display backend type"),
            _entry(
                "nographic",
                "-nographic      disable graphical output and redirect serial I/Os to console",
            ),
        ),
    ),
    (
        "Debug/Expert options:",
        (
            _entry("monitor", "-monitor dev    redirect the monitor to char device 'dev'"),
            _entry("qmp", "-qmp dev        like -monitor but opens in 'control' mode"),
            _entry("S", "-S              freeze CPU at startup (use 'c' to start execution)"),
            _entry("D", "-D logfile      output log to logfile (default stderr)"),
            _entry("seed", "-seed number       seed the pseudo-random number generator"),
            _entry("enable-kvm", "-enable-kvm     enable KVM full virtualization support"),
            _entry(
                "incoming",
                "-incoming tcp:[host]:port[,to=maxport][,ipv4=on|off][,ipv6=on|off]",
                "-incoming unix:socketpath",
                "                prepare for incoming migration, listen on",
                "                specified protocol and socket address",
                "-incoming exec:cmdline",
                "                accept incoming migration on given file descriptor",
                "                or from given external command",
                "-incoming defer",
                "                wait for the URI to be specified via migrate_incoming",
            ),
            _entry("nodefaults", "-nodefaults     don't create default devices"),
            _entry(
                "trace",
                "-trace [[enable=]<pattern>][,events=<file>][,file=<file>]",
                "                specify tracing options",
            ),
        ),
    ),
    (
        "Generic object creation:",
        (
            _entry(
                "object",
                "-object TYPENAME[,PROP1=VALUE1,...]",
                "                create a new object of type TYPENAME setting properties",
                "                in the order they are specified.  Note that the 'id'",
                "                property must be set.  These objects are placed in the",
                "                '/objects' path.",
            ),
        ),
    ),
)

#: The project's options (and its ``file:`` migration URI), in the section of their own.
PROJECT_OPTIONS: tuple[OptionHelp, ...] = (
    _entry(
        "guest",
        "-guest KIND     the reference guest: linux (default), drmgr (rtas_errd + drmgr),",
        "                none (no OS, as QEMU sitting in SLOF), manual (no guest runs:",
        "                you are the guest at the HMP prompt, see 'help rtas'), or linux",
        "                with +ignore-unplug, +refuse-unplug, +abandon-configure=K,",
        "                +wrong-indices, +event-scan=off",
    ),
    _entry(
        "scenario",
        "-scenario NAME|FILE",
        "                run an HMP scenario: machine arguments on its first line,",
        "                HMP commands after",
    ),
    _entry(
        "trace-json",
        "-trace-json FILE",
        "                write every trace event as JSON lines (virtual time in ns)",
    ),
    _entry(
        "trace-html",
        "-trace-html FILE",
        "                at quit, write a page to step through the run's handshakes",
    ),
    _entry(
        "host-cpu",
        "-host-cpu MODEL with -enable-kvm: the modeled KVM host (default POWER9),",
        "                the model '-cpu host' stands for",
    ),
    _entry(
        "legacy-core-names",
        "-legacy-core-names",
        "                accept QEMU 2.7-era core type names (POWER8E-spapr-cpu-core)",
        "                as aliases; QEMU 7.2 refuses them",
    ),
    _entry(
        "allow-remote-qmp",
        "-allow-remote-qmp",
        "                let -qmp tcp: listen on addresses other than loopback",
    ),
    _entry(
        "incoming",
        "-incoming file:path",
        "                resume the stream 'migrate file:path' wrote (QEMU 7.2 has",
        "                no file: migration)",
    ),
)


def version_text() -> str:
    """``-version``: the version line and QEMU's copyright line."""
    return (
        f"QEMU emulator version {version_string()}\n"
        "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
    )


def help_text() -> str:
    """``-h``: the version, the usage line, QEMU's sections, then the project's options."""
    out = [version_text().rstrip("\n"), f"usage: {PROG} [options]"]
    for title, entries in QEMU_SECTIONS:
        out += ["", title]
        for entry in entries:
            out += entry.lines
    out += ["", PROJECT_SECTION]
    for entry in PROJECT_OPTIONS:
        out += entry.lines
    return "\n".join(out) + "\n"


def documented_options() -> frozenset[str]:
    """Every option name ``-h`` documents (QEMU's section and the project's)."""
    names = [n for _, entries in QEMU_SECTIONS for e in entries for n in e.names]
    names += [n for e in PROJECT_OPTIONS for n in e.names]
    return frozenset(names)


def cpu_help_text() -> str:
    """``-cpu help``: the CPU models with an sPAPR core, QEMU's lines in QEMU's order.

    QEMU lists models by PVR, each followed by the aliases that name it.
    """
    lines: list[str] = []
    for model in sorted(CPU_MODELS, key=lambda m: m.pvr):
        lines.append(f"PowerPC {model.cpu_type:<16} PVR {model.pvr:08x}")
        for alias, target in CPU_ALIASES.items():
            if target == model.cpu_type:
                lines.append(f"PowerPC {alias:<16} (alias for {target})")
    return "\n".join(lines) + "\n"


def device_list_lines() -> list[str]:
    """``-device help`` / ``device_add help``: QEMU's "CPU devices" category, blank line after."""
    lines = ["CPU devices:"]
    lines += [f'name "{core}"' for core in sorted(m.core_type for m in CPU_MODELS)]
    return [*lines, ""]


def device_help(driver: str, *, legacy_core_names: bool = False) -> tuple[list[str], str | None]:
    """``-device DRIVER,help``: (lines for stdout, error for stderr or None).

    A core type lists its properties; an abstract core type or anything else is
    refused with QEMU's text (QEMU still exits 0 after such a refusal).
    """
    if driver in ABSTRACT_DEVICE_TYPES:
        return [], "Parameter 'typename' expects a non-abstract device type"
    if driver.endswith(CORE_TYPE_SUFFIX) and by_core_type(driver, legacy_names=legacy_core_names):
        return [f"{driver} options:", *CORE_PROPERTY_HELP], None
    return [], f"Device '{driver}' not found"
