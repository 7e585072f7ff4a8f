"""The ``nasseg`` command line.

Each pipeline stage owns one module here that adds its sub-commands through
``register(subparsers)``; this file only assembles them and decides how a run ends:

- exit 0: done;
- exit 2: an error the user can fix (:class:`nasseg.errors.NassegError`, a bad count
  such as ``--trials -3``, out of memory, a read-only or full disk or a file where a folder
  is needed: :func:`nasseg.errors.environment_error`): one line naming the cause and the fix;
- exit 1: an internal error (a bug): one line, and the traceback only with ``--debug``;
- exit 3: a search that ended with no feasible or no completed trial (a summary says why);
- exit 130: interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from nasseg.cli.vocabulary import Parser, add_verbose
from nasseg.errors import MEMORY_HINT, NassegError, environment_error, is_out_of_memory, mask_url

from . import arch_cmds, bench_cmds, check_cmds, confirm_cmds, infer_cmds, report_cmds, search_cmds, stats_cmds, train_cmds

_MODULES = (arch_cmds, train_cmds, search_cmds, report_cmds, stats_cmds, confirm_cmds, infer_cmds, bench_cmds,
            check_cmds)
_COUNTS = ("trials", "workers", "epochs", "batch_size", "max_cases", "repeats", "eval_every", "patience",
           "threads", "budget_epochs", "seeds", "max_runs", "trials_per_gpu")
"""Options that count something: 0 or a negative value is refused before anything is created."""


def build_parser() -> Parser:
    parser = Parser(
        prog="nasseg",
        description="Architecture search and ablation studies for U-shaped segmentation networks.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of internal errors")
    add_verbose(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _MODULES:
        module.register(sub)
    for command in parser.leaves().values():  # `nasseg search X --verbose` as well as `nasseg --verbose search X`
        add_verbose(command)
    return parser


def check_counts(args: argparse.Namespace) -> None:
    """Refuse a count option (``--trials``, ``--workers``, ``--epochs`` ...) below 1.

    Raises:
        NassegError: naming the option and the value.

    Example:
        >>> check_counts(argparse.Namespace(trials=-3))
        Traceback (most recent call last):
        nasseg.errors.NassegError: --trials -3: must be at least 1
    """
    for name in _COUNTS:
        value = getattr(args, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise NassegError(f"--{name.replace('_', '-')} {value}: must be at least 1")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_counts(args)
        return int(args.func(args) or 0)
    except NassegError as err:
        print(f"nasseg: error: {mask_url(str(err))}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print("nasseg: interrupted; everything completed so far is saved.", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        fault = environment_error(err)  # read-only or full disk, a file where a folder is needed ...
        if fault is not None:
            print(f"nasseg: error: {mask_url(str(fault))}", file=sys.stderr)
            return 2
        if is_out_of_memory(err):
            detail = f" ({_first_line(err)})" if _first_line(err) else ""
            print(f"nasseg: error: out of memory{detail}; {MEMORY_HINT}", file=sys.stderr)
            return 2
        if args.debug:
            traceback.print_exc()
        print(f"nasseg: internal error: {type(err).__name__}: {mask_url(_first_line(err))}"
              + ("" if args.debug else " (rerun with --debug for the traceback; please report it)"),
              file=sys.stderr)
        return 1


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
