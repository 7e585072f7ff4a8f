"""``nasseg bench record``: record the benchmark table of learning curves (:mod:`nasseg.bench.record`).

Example:
    nasseg bench record --archs 150 --seeds 0 1 --epochs 4 --log reports/bench/table/record.log
"""
from __future__ import annotations

import argparse
from typing import Any


def add_bench(bench_sub: Any) -> None:
    """Add ``record`` to the sub-parsers of ``nasseg bench``."""
    from nasseg.bench.record import RecordConfig

    d = RecordConfig()
    p = bench_sub.add_parser("record", help="train a seeded sample of a space's networks and store their curves",
                             description="Train a seeded sample of feasible architectures of a search space, "
                                         "several training seeds each, and store per-epoch validation and test "
                                         "Dice with exact costs in reports/bench/table/ (resumes).")
    p.add_argument("--name", default=d.name, help="table name (file stem)")
    p.add_argument("--data", default=d.data, help="dataset folder")
    p.add_argument("--size", type=int, default=d.size, help="resize images to this size")
    p.add_argument("--space", default=d.space, help="search space YAML")
    p.add_argument("--archs", type=int, default=d.n_archs, help="architectures to sample")
    p.add_argument("--seeds", type=int, nargs="+", default=d.seeds, help="training seeds per architecture")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--split", type=int, nargs=3, default=[d.n_train, d.n_val, d.n_test],
                   metavar=("TRAIN", "VAL", "TEST"), help="cases in the three-way split")
    p.add_argument("--split-seed", type=int, default=d.split_seed)
    p.add_argument("--arch-seed", type=int, default=d.arch_seed)
    p.add_argument("--out", default=d.out, help="output folder")
    p.add_argument("--log", default=None, help="also append progress lines to this file")
    p.set_defaults(func=_record)


def _record(args: argparse.Namespace) -> int:
    from nasseg.bench.record import RecordConfig, record

    cfg = RecordConfig(name=args.name, data=args.data, size=args.size, space=args.space, n_archs=args.archs,
                       seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       n_train=args.split[0], n_val=args.split[1], n_test=args.split[2],
                       split_seed=args.split_seed, arch_seed=args.arch_seed, out=args.out)

    def log(line: str) -> None:
        print(line, flush=True)
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(line + "\n")

    path = record(cfg, log=log)
    log(f"table: {path}")
    return 0


DEFAULT_TABLE = "reports/bench/table/dsb2018_64.csv.gz"


def add_replay_args(p: argparse.ArgumentParser) -> None:
    """``--replay [TABLE]`` and its options on ``nasseg bench search``."""
    p.add_argument("--replay", nargs="?", const=DEFAULT_TABLE, default=None, metavar="TABLE",
                   help=f"replay strategies on a recorded table instead of training (default {DEFAULT_TABLE})")
    p.add_argument("--strategies", nargs="+", default=None,
                   help="with --replay: SAMPLER[+STOP] (samplers random rsnap nsga2 nsga2p20 tpe gp; stops pareto "
                        "moasha; default = nasseg's default search); default: all but the GPSampler ones "
                        "(gp, gp+moasha: 15-35 s per seed)")
    p.add_argument("--replay-seeds", type=int, default=100, help="with --replay: seeds per strategy")
    p.add_argument("--budget", type=int, default=None,
                   help="with --replay: training epochs per search (default: epochs x ceil(archs / 5))")


def replay_bench(args: argparse.Namespace) -> int:
    from nasseg.bench.search_report import run_replay_bench

    print(f"nasseg bench search --replay {args.replay}: {args.replay_seeds} seeds per strategy")
    res = run_replay_bench(args.replay, strategies=args.strategies, n_seeds=args.replay_seeds,
                           budget=args.budget, out=args.out)
    print()
    from nasseg.bench.search_report import markdown
    print(markdown(res))
    print(f"wrote {args.out}/summary.md, results.json, hv_curve.csv, hv_vs_budget.html")
    return 0
