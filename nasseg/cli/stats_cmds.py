"""Sub-command ``nasseg stats``: the statistics table of a long-format per-case results CSV.

Examples::

    nasseg stats runs/busi/report/per_case.csv --baseline skip_fusion
    nasseg stats my_results.csv --baseline unet --metric dice --metric hd95 -o tables/
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasseg.cli.vocabulary import add_out
from nasseg.configio import validate


def register(sub: Any) -> None:
    """Add ``stats`` to the ``nasseg`` command line."""
    p = sub.add_parser("stats", help="statistics table (mixed model) of a per-case results CSV",
                       description="Compare variants on long-format per-case results (columns variant, "
                                   "seed, case and metric columns; from nasseg or any other source) with "
                                   "the table an ablation report shows: a linear mixed model with crossed "
                                   "random seed and case effects by default (with fewer than 3 seeds per "
                                   "variant no p-value: a per-case comparison conditional on the trained "
                                   "networks). Means and comparisons are over the cases every run has; runs "
                                   "with Dice 0 on every case are left out; the note counts both. Prints "
                                   "Markdown and writes CSV, Markdown and LaTeX per metric.")
    p.add_argument("results", help="the CSV (e.g. an ablation's report/per_case.csv)")
    p.add_argument("--baseline", required=True, help="the reference variant")
    p.add_argument("--metric", action="append", help="metric column(s) to analyse (default: every numeric column but ids and the voxel counts inter, pred_voxels, label_voxels)")
    p.add_argument("--test", choices=["mixed", "wilcoxon", "ttest"], default="mixed",
                   help="mixed (default): crossed random seed and case effects; wilcoxon/ttest: per-case "
                        "tests over seed-averaged values")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (default 0.05)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default 0.95)")
    add_out(p, "folder for the tables (default: beside the CSV, stats/)", dest="output")
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    from nasseg.ablation.config import BootstrapConfig, StatsConfig  # lazy: CLI startup (pandas, scipy)
    from nasseg.ablation.csvstats import csv_stats  # lazy: CLI startup (pandas, scipy)
    from nasseg.ablation.tables import to_markdown, write_tables  # lazy: CLI startup (pandas, scipy)

    st = validate(StatsConfig, {"test": args.test, "alpha": args.alpha,
                                "bootstrap": BootstrapConfig(confidence=args.confidence).model_dump()}, "nasseg stats")
    results = csv_stats(args.results, args.baseline, metrics=args.metric, stats=st)
    out = Path(args.output) if args.output else Path(args.results).parent / "stats"
    for metric, res in results.items():
        print(f"## {metric}\n\n{to_markdown(res)}")
        paths = write_tables(res, out, stem=f"stats_{metric}")
        print(f"tables: {', '.join(str(p) for p in paths[:3])}\n")
    return 0
