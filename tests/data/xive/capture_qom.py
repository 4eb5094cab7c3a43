"""Record QEMU 7.2's QOM view of the interrupt controllers: tests/data/xive/qom_qemu72.json.

Run from the repository root with qemu-system-ppc64 7.2 installed:
``python tests/data/xive/capture_qom.py > tests/data/xive/qom_qemu72.json``.

For each configuration (``-nodefaults -S``, TCG) the script lists every path below
with ``qom-list`` and reads every property it lists with ``qom-get`` (the answer or
QEMU's error, as QEMU sends them; ``/machine`` and
``/machine/unattached`` are only listed), first on the machine as created, then after
``device_add`` of one more core, whose thread's presenters are read too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

COMMON = ["-m", "1G", "-nographic", "-display", "none", "-nodefaults", "-S"]
XIVE = "/machine/unattached/device[0]"
XIVE_PATHS = [
    XIVE,
    f"{XIVE}/source",
    f"{XIVE}/source/xive.esb[0]",
    f"{XIVE}/source/xive.esb-emulated[0]",
    f"{XIVE}/end_source",
    f"{XIVE}/end_source/xive.end[0]",
    f"{XIVE}/xive.tima[0]",
]
#: Paths only listed (their properties are not XIVE's).
LISTED = ["/machine", "/machine/unattached"]
#: (arguments, paths before the hotplug, the core to add, paths after it).
CONFIGS: list[tuple[str, list[str], dict[str, Any], list[str]]] = [
    (
        "-M pseries,ic-mode=xive -cpu POWER9 -smp 1,cores=4,threads=1,maxcpus=4",
        XIVE_PATHS + ["/machine/unattached/device[1]/thread[0]/xive-tctx"],
        {"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1},
        ["/machine/peripheral/core1/thread[0]/xive-tctx"],
    ),
    (
        "-M pseries -cpu POWER9 -smp 1,cores=4,threads=1,maxcpus=4",
        XIVE_PATHS
        + [
            "/machine/ics",
            "/machine/unattached/device[1]/thread[0]/xive-tctx",
            "/machine/unattached/device[1]/thread[0]/icp",
        ],
        {"driver": "power9_v2.0-spapr-cpu-core", "id": "core1", "core-id": 1},
        [
            "/machine/peripheral/core1/thread[0]/xive-tctx",
            "/machine/peripheral/core1/thread[0]/icp",
        ],
    ),
    (
        "-M pseries -cpu POWER10 -smp 2,maxcpus=8",
        XIVE_PATHS + ["/machine/ics", "/machine/unattached/device[1]/thread[0]/xive-tctx"],
        {"driver": "power10_v2.0-spapr-cpu-core", "id": "core5", "core-id": 5},
        ["/machine/peripheral/core5/thread[0]/xive-tctx"],
    ),
]


class Qmp:
    """One qemu-system-ppc64 with QMP on its stdio."""

    def __init__(self, args: str) -> None:
        argv = ["qemu-system-ppc64", *args.split(), *COMMON, "-qmp", "stdio"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._reply()  # greeting
        self.command({"execute": "qmp_capabilities"})

    def _reply(self) -> Any:
        assert self.proc.stdout is not None
        while True:
            msg = json.loads(self.proc.stdout.readline())
            if "event" not in msg:
                return msg

    def command(self, cmd: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.command({"execute": "quit"})
        self.proc.wait(timeout=30)


def views(qmp: Qmp, paths: list[str]) -> dict[str, Any]:
    """Each path's qom-list answer and every listed property's qom-get answer."""
    out: dict[str, Any] = {}
    for path in paths:
        listed = qmp.command({"execute": "qom-list", "arguments": {"path": path}})
        gets = {}
        for prop in listed.get("return", []):
            args = {"path": path, "property": prop["name"]}
            gets[prop["name"]] = qmp.command({"execute": "qom-get", "arguments": args})
        out[path] = {"qom-list": listed, "qom-get": gets}
    for path in LISTED:
        listed = qmp.command({"execute": "qom-list", "arguments": {"path": path}})
        out[path] = {"qom-list": listed}
    return out


def main() -> None:
    out: dict[str, Any] = {"qemu": subprocess.check_output(
        ["qemu-system-ppc64", "--version"], text=True).splitlines()[0], "configs": []}  # fmt: skip
    for args, before, core, after in CONFIGS:
        qmp = Qmp(args)
        try:
            entry = {"args": args, "before": views(qmp, before), "device_add": core}
            entry["device_add reply"] = qmp.command({"execute": "device_add", "arguments": core})
            entry["after"] = views(qmp, after + before)
        finally:
            qmp.close()
        out["configs"].append(entry)
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
