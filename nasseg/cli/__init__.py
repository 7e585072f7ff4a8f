"""The ``nasseg`` command line.

Each pipeline stage owns one module here that adds its sub-commands through
``register(subparsers)``; this file only assembles them. Errors that users can
fix (:class:`nasseg.errors.NassegError`) are printed as one clear message with
exit code 2, never as a traceback.
"""
from __future__ import annotations

import argparse
import sys

from nasseg.errors import NassegError

from . import arch_cmds, report_cmds, search_cmds, train_cmds

_MODULES = (arch_cmds, train_cmds, search_cmds, report_cmds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasseg",
        description="Architecture search and ablation studies for U-shaped segmentation networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _MODULES:
        module.register(sub)
    search_cmds.add_bench(train_cmds.bench_subparsers(sub))  # `nasseg bench train|search`
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NassegError as err:
        print(f"nasseg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasseg: interrupted; everything completed so far is saved.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
