"""Record which events QEMU 7.2's ``-trace`` patterns select: tests/data/xive/trace_patterns.json.

Run from the repository root with qemu-system-ppc64 7.2 installed:
``python tests/data/xive/capture_trace_patterns.py > tests/data/xive/trace_patterns.json``.
Each case starts ``-M pseries,ic-mode=xive -cpu POWER9`` stopped (``-S``), whose
creation claims the XIVE sources (``spapr_xive_claim_irq``), with the case's
``-trace`` options in order (``events=FILE`` lines written to a file first), and
records the ``-D`` log and what QEMU wrote to stderr besides the TCG warnings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ARGS = "-M pseries,ic-mode=xive -cpu POWER9 -smp 1,maxcpus=2 -m 1G -nodefaults -nographic -S"
#: (-trace values, or an events file's lines as {"events": [...]}).
CASES: list[list[Any]] = [
    ["spapr_xive*"],
    ["spapr_xive_?laim_irq"],
    ["spapr_xive_[c]*"],
    ["spapr_xive*", "-spapr_xive_claim*"],
    ["-spapr_xive*", "spapr_xive_claim*"],
    ["spapr_xive|xive_"],
    [{"events": ["# comment", "spapr_xive*", "-spapr_xive_claim_irq"]}],
    [{"events": ["spapr_xive_claim*"]}],
]


def run(case: list[Any], tmp: Path) -> dict[str, Any]:
    log = tmp / "trace.log"
    argv = ["qemu-system-ppc64", *ARGS.split(), "-qmp", "stdio", "-D", str(log)]
    for item in case:
        if isinstance(item, dict):
            events = tmp / "events"
            events.write_text("".join(f"{line}\n" for line in item["events"]))
            argv += ["-trace", f"events={events}"]
        else:
            argv += ["-trace", item]
    qmp = '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'
    proc = subprocess.run(argv, input=qmp, capture_output=True, text=True, timeout=60)
    stderr = [ln for ln in proc.stderr.splitlines() if "TCG doesn't support" not in ln]
    return {"trace": case, "log": log.read_text() if log.exists() else "", "stderr": stderr}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = {"args": ARGS, "cases": [run(case, Path(tmp)) for case in CASES]}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
