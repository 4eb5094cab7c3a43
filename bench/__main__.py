"""``python -m bench [NAME] [ARGS...]``: run one benchmark (with its own ARGS) or all of them."""

from __future__ import annotations

import sys

from bench import available, run_one


def main(argv: list[str]) -> int:
    """Dispatch to the named benchmark, or run every benchmark in turn."""
    names = available()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(names))
        return 0
    if argv and not argv[0].startswith("-"):
        name, args = argv[0], argv[1:]
        if name not in names:
            print(f"unknown benchmark {name!r}; have: {', '.join(names)}", file=sys.stderr)
            return 2
        run_one(name, args)
        return 0
    for name in names:
        run_one(name, list(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
