"""``python -m robustness [--long] [--only AREA,...] [--seed N]``: run the campaign, report.

The exit status is 1 when any rule broke. ``--long`` runs the on-demand version
and prints progress to stderr while it runs.
"""

from __future__ import annotations

import argparse
import sys

from robustness.campaign import AREAS, LONG, SHORT, render, run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m robustness", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long, on-demand version")
    parser.add_argument("--only", default="", help=f"areas to run: {', '.join(AREAS)}")
    parser.add_argument("--seed", type=int, default=1, help="the generators' seed")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    only = [a for a in args.only.split(",") if a]
    unknown = [a for a in only if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; have {', '.join(AREAS)}")
    budget = LONG if args.long else SHORT
    progress = None if args.quiet else sys.stderr
    reports = run(budget, only=only, seed=args.seed, progress_out=progress)
    sys.stdout.write(render(budget, reports))
    return 1 if any(r.failed for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
