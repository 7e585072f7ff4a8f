"""How often ``nasseg stats`` prints p < 0.05 when two variants do not differ.

Each replicate writes a long-format per-case CSV (variants ``a`` and ``b`` x seeds x cases,
no true difference), runs the real command in-process (``nasseg stats FILE --baseline a
--metric dice``, the same code path as the shell command) and reads the printed Markdown
row of ``b``: whether it printed a p-value, whether that p is below 0.05, and whether the
printed interval of the difference excludes 0. Beside it, for the same tables, the rate
at which the crossed model's own p would be below 0.05 (what 1-2 seed designs printed
before they were refused a p-value), and the same with Satterthwaite's df (lmerTest's)
instead of the test's df (:data:`nasseg.ablation.stats.SEED_DF_WEIGHT`).

Generators (per design: seeds x cases):

- ``gaussian``: Dice = 0.75 + shared case difficulty (sd 0.1) + variant-specific case
  effect (sd 0.03) + variant-specific training-seed effect (sd 0.02) + noise (sd 0.02);
  the generator of ``tests/test_ablation_stats.py``.
- ``dicelike``: the same, clipped to [0, 1], and each (variant, seed, case) cell is a
  miss (Dice 0) with probability 0.08: bounded, skewed, with zeros.

Usage::

    python benchmarks/null_simulation.py --reps 400 --out reports/evidence/null_simulation.csv
    python benchmarks/null_simulation.py --grid     # the model alone, 48 designs x 20000 tables

Prints one Markdown table; ``--out`` also writes it as CSV.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from nasseg.ablation.stats import crossed_reml, fit_crossed
from nasseg.cli import main

DESIGNS = [(1, 40), (2, 40), (3, 40), (5, 40)]


def null_table(rng: np.random.Generator, kind: str, seeds: int, cases: int) -> np.ndarray:
    """``[2, seeds, cases]`` values of two variants without a true difference."""
    shared = rng.normal(0, 0.1, (1, 1, cases))
    y = (0.75 + shared + rng.normal(0, 0.03, (2, 1, cases)) + rng.normal(0, 0.02, (2, seeds, 1))
         + rng.normal(0, 0.02, (2, seeds, cases)))
    if kind == "dicelike":
        y = np.clip(y, 0.0, 1.0)
        y[rng.random(y.shape) < 0.08] = 0.0
    return y


def to_csv(y: np.ndarray, path: Path) -> None:
    _, s, c = y.shape
    rows = [{"variant": v, "seed": k, "case": f"c{j:03d}", "dice": y[i, k, j]}
            for i, v in enumerate("ab") for k in range(s) for j in range(c)]
    pd.DataFrame(rows).to_csv(path, index=False)


ROW = re.compile(r"^\| b \|.*$", re.M)


def run_stats(csv: Path, out: Path) -> tuple[bool, bool, bool]:
    """``(printed a p, printed p < 0.05, printed interval excludes 0)`` for variant b."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["stats", str(csv), "--baseline", "a", "--metric", "dice", "-o", str(out)])
    if rc != 0:
        raise SystemExit(f"nasseg stats exited {rc} on {csv}:\n{buf.getvalue()}")
    cells = [c.strip() for c in ROW.search(buf.getvalue()).group(0).strip("|").split("|")]
    # Variant | Dice [CI] | SD | vs. | ΔDice [CI] | p (Holm) | Effect | Sig. | Params | MACs
    lo, hi = (float(x) for x in re.findall(r"[-+]\d+\.\d+", cells[4])[1:3])
    p = cells[5]
    printed = p not in ("–", "")
    below = printed and (p == "<0.001" or float(p) < 0.05)
    return printed, below, bool(lo > 0 or hi < 0)


def simulate(reps: int, seed: int = 0) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = Path(tmp) / "null.csv", Path(tmp) / "out"
        for kind in ("gaussian", "dicelike"):
            for s, c in DESIGNS:
                rng = np.random.default_rng([seed, s, c, kind == "dicelike"])
                printed = below = excl = model = satt = 0
                t0 = time.perf_counter()
                for _ in range(reps):
                    y = null_table(rng, kind, s, c)
                    to_csv(y, csv)
                    a, b, e = run_stats(csv, out)
                    printed, below, excl = printed + a, below + b, excl + e
                    fit = fit_crossed(y[1] - y[0])
                    model += bool(fit.t_p()[1] < 0.05)
                    satt += bool(fit.se > 0 and 2 * sps.t.sf(abs(fit.mean / fit.se), fit.df) < 0.05)
                rows.append({"generator": kind, "seeds": s, "cases": c, "replicates": reps,
                             "p_printed": printed / reps, "printed_p_lt_05": below / reps,
                             "printed_ci_excludes_0": excl / reps, "model_p_lt_05": model / reps,
                             "satterthwaite_p_lt_05": satt / reps,
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(rows[-1], file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def grid(reps: int = 20000, seed: int = 3) -> str:
    """The mixed model alone (no command line) over a grid of designs: the rate of p < 0.05
    under the null with the test's df and with Satterthwaite's, and the power at a true
    difference of +0.02; seed SD is per variant, as in :func:`null_table`."""
    lines = ["| generator | seeds x cases | seed SD | p < 0.05: df_test | p < 0.05: Satterthwaite | "
             "power at +0.02: df_test | power: Satterthwaite |", "|---|---|---:|---:|---:|---:|---:|"]
    for kind in ("gaussian", "dicelike"):
        for s in (3, 5, 8):
            for c in (10, 40):
                for sd in (0.0, 0.01, 0.02, 0.05):
                    rng = np.random.default_rng(seed)
                    shared = rng.normal(0, 0.1, (reps, 1, 1, c))
                    y = (0.75 + shared + rng.normal(0, 0.03, (reps, 2, 1, c)) + rng.normal(0, sd, (reps, 2, s, 1))
                         + rng.normal(0, 0.02, (reps, 2, s, c)))
                    if kind == "dicelike":
                        y = np.clip(y, 0.0, 1.0)
                        y[rng.random(y.shape) < 0.08] = 0.0
                    rates = []
                    for shift in (0.0, 0.02):
                        f = crossed_reml(y[:, 1] - y[:, 0] + shift)
                        t = np.abs(f["mean"] / f["se"])
                        rates += [float(np.mean(2 * sps.t.sf(t, f[k]) < 0.05)) for k in ("df_test", "df")]
                    lines.append(f"| {kind} | {s} x {c} | {sd:g} | " + " | ".join(f"{r:.4f}" for r in rates) + " |")
    return "\n".join(lines)


def markdown(df: pd.DataFrame) -> str:
    head = ("| generator | seeds x cases | replicates | p printed | printed p < 0.05 | printed interval excludes 0 | "
            "crossed model's p < 0.05 (not printed below 3 seeds) | same, Satterthwaite df (lmerTest's) |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r.generator} | {r.seeds} x {r.cases} | {r.replicates} | {r.p_printed:.3f} | {r.printed_p_lt_05:.3f} | "
        f"{r.printed_ci_excludes_0:.3f} | {r.model_p_lt_05:.3f} | {r.satterthwaite_p_lt_05:.3f} |\n"
        for r in df.itertuples(index=False))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="CSV of the rates")
    ap.add_argument("--grid", action="store_true", help="the model alone over a grid of designs (20000 tables each)")
    args = ap.parse_args()
    if args.grid:
        print(grid())
        raise SystemExit(0)
    table = simulate(args.reps, args.seed)
    if args.out:
        table.to_csv(args.out, index=False)
    print(markdown(table))
