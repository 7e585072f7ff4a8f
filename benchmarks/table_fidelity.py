"""Compare two recorded benchmark tables of the same architecture sample at two fidelities.

Issue 23 asks to choose the table's cheap fidelity by measurement: the cheapest one at which
two training seeds rank the architectures alike (Spearman rho >= 0.7). Given two tables
recorded with ``nasseg bench record`` from the same space and ``--arch-seed`` (so their
first architectures are the same networks), this prints, on the architectures in both:

- the seed-to-seed Spearman rho of final-epoch validation Dice in each table, with a
  percentile-bootstrap 95% interval (architectures resampled);
- the Spearman rho between the two fidelities' scores (mean over the two seeds), with its
  interval;
- the spread of scores over architectures against the seed-to-seed spread (the SD of one
  run around its architecture's mean, from ``|s0 - s1| / sqrt 2``);
- the training seconds per run (the ``seconds`` column: epochs, evaluation excluded).

Usage::

    python benchmarks/table_fidelity.py reports/bench/table/busi_64.csv.gz reports/bench/table/busi_96.csv.gz

Prints Markdown.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from nasseg.bench.table import Table, spearman_ci


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cheap", help="the cheaper table (.csv.gz)")
    ap.add_argument("dearer", help="the dearer table (.csv.gz), same space and --arch-seed")
    args = ap.parse_args()
    a, b = Table.load(args.cheap), Table.load(args.dearer)
    common = [x for x in b.arch_ids if x in a.index]
    if len(common) < 5:
        raise SystemExit(f"{args.cheap}, {args.dearer}: {len(common)} architectures in both; at least 5 needed")
    va = a.val[[a.index[x] for x in common], :2, -1]
    vb = b.val[[b.index[x] for x in common], :2, -1]
    print(f"{len(common)} architectures in both tables (final epoch, validation Dice, seeds "
          f"{a.seeds[:2]} and {b.seeds[:2]})\n")
    print("| | rho | 95% bootstrap CI |\n|---|---:|---|")
    for name, v in ((args.cheap, va), (args.dearer, vb)):
        r, lo, hi = spearman_ci(v[:, 0], v[:, 1])
        print(f"| seed 0 vs seed 1, {name} | {r:.2f} | [{lo:.2f}, {hi:.2f}] |")
    r, lo, hi = spearman_ci(va.mean(1), vb.mean(1))
    print(f"| cheap vs dearer (2-seed means) | {r:.2f} | [{lo:.2f}, {hi:.2f}] |\n")
    print("| table | architectures' 2-seed means: min-max (SD) | seed SD of one run | training s per run: median, mean, max |")
    print("|---|---|---:|---|")
    for name, v in ((args.cheap, va), (args.dearer, vb)):
        m = v.mean(1)
        runs = pd.read_csv(name).groupby(["arch_id", "seed"])["seconds"].sum()
        print(f"| {name} | {m.min():.3f}-{m.max():.3f} ({m.std(ddof=1):.3f}) | "
              f"{(np.abs(v[:, 0] - v[:, 1]) / np.sqrt(2)).mean():.3f} | "
              f"{runs.median():.0f}, {runs.mean():.0f}, {runs.max():.0f} ({len(runs)} runs) |")


if __name__ == "__main__":
    main()
