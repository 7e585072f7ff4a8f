"""nasseg's crossed mixed model against R's lme4/lmerTest on the same tables.

For each seeds x cases table of paired differences, nasseg's closed-form REML
(:func:`nasseg.ablation.stats.fit_crossed`) and R's ``lmer(d ~ 1 + (1|seed) + (1|case),
REML = TRUE)`` with lmerTest's Satterthwaite t-test (``benchmarks/lmer_fit.R``) are
fitted; the script prints both side by side, the largest differences of estimate, SE,
Satterthwaite df and its p, and nasseg's REML log-likelihood minus R's (>= 0 means nasseg's optimum is at
least as good; at a variance component on the boundary lme4 can stop short of it).

Tables: the committed BUSI ablation's per-case CSV (skip_fusion vs concat, Dice and HD95,
5 seeds x 129 test cases) and simulated null and shifted tables of 2-8 seeds x 5-60 cases,
a third of them with no seed variance (so that the seed component sits on the boundary).

Usage::

    python benchmarks/mixed_model_vs_r.py --sim 60 --out reports/evidence/mixed_model_vs_R.csv
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from nasseg.ablation.stats import fit_crossed, paired_differences, reml_loglik, tidy

R_SCRIPT = Path(__file__).with_name("lmer_fit.R")
BUSI = Path(__file__).parents[1] / "reports/evidence/busi_skip_fusion_vs_concat/per_case.csv"


def r_available() -> str:
    """``""`` when Rscript with lme4 and lmerTest runs here, else the reason it does not."""
    if shutil.which("Rscript") is None:
        return "Rscript not found (apt-get install -y r-base-core r-cran-lme4 r-cran-lmertest)"
    res = subprocess.run(["Rscript", "-e", "suppressMessages({library(lme4); library(lmerTest)})"],
                         capture_output=True, text=True)
    return "" if res.returncode == 0 else f"R lacks lme4/lmerTest: {res.stderr.strip()[:200]}"


def fit_r(tables: dict[str, np.ndarray]) -> pd.DataFrame:
    """R's fit of every table (index: the table's name)."""
    rows = [{"table": name, "seed": s, "case": f"c{c}", "d": y[s, c]}
            for name, y in tables.items() for s in range(y.shape[0]) for c in range(y.shape[1])]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        pd.DataFrame(rows).to_csv(src, index=False, float_format="%.17g")
        subprocess.run(["Rscript", str(R_SCRIPT), str(src), str(dst)], check=True, capture_output=True)
        return pd.read_csv(dst, dtype={"table": str}).set_index("table")


def fit_nasseg(tables: dict[str, np.ndarray]) -> pd.DataFrame:
    """nasseg's fit of every table, in the columns of :func:`fit_r`."""
    rows = {}
    for name, y in tables.items():
        f = fit_crossed(y)
        p = float(2 * sps.t.sf(abs(f.mean / f.se), f.df))  # Satterthwaite's df, as lmerTest
        rows[name] = {"estimate": f.mean, "se": f.se, "df": f.df, "p": p, "df_test": f.dft,
                      "p_test": f.t_p()[1], "var_seed": f.var_seed,
                      "var_case": f.var_case, "var_res": f.var_res,
                      "loglik": reml_loglik(y, f.var_seed, f.var_case, f.var_res)}
    return pd.DataFrame.from_dict(rows, orient="index")


def compare_with_r(tables: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per table: nasseg's and R's values and their differences."""
    n, r = fit_nasseg(tables), fit_r(tables)
    out = n.add_suffix("_nasseg").join(r.add_suffix("_r"))
    for k in ("estimate", "se", "df", "p"):
        out[f"{k}_absdiff"] = (out[f"{k}_nasseg"] - out[f"{k}_r"]).abs()
    out["se_reldiff"] = out["se_absdiff"] / out["se_r"]
    out["loglik_nasseg_minus_r"] = out["loglik_nasseg"] - out["loglik_r"]
    out["boundary"] = (out["var_seed_nasseg"] == 0) | (out["var_case_nasseg"] == 0)
    return out


def busi_tables() -> dict[str, np.ndarray]:
    frame = pd.read_csv(BUSI).rename(columns={"case": "case_id"})
    return {f"busi_{m}": paired_differences(tidy(frame, m), "concat", "skip_fusion", m).to_numpy(dtype=float)
            for m in ("dice", "hd95")}


def simulated_tables(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        s, c = int(rng.integers(2, 9)), int(rng.integers(5, 61))
        seed_sd = 0.0 if i % 3 == 0 else float(rng.uniform(0.005, 0.05))
        y = (0.01 * (i % 2) + rng.normal(0, seed_sd, (s, 1)) + rng.normal(0, rng.uniform(0, 0.05), (1, c))
             + rng.normal(0, 0.03, (s, c)))
        out[f"sim{i:03d}_{s}x{c}"] = y
    return out


def summary(res: pd.DataFrame) -> str:
    lines = ["| tables | max abs diff estimate | max abs diff SE | max rel diff SE | max abs diff df | "
             "max abs diff p | min loglik nasseg - R | max loglik nasseg - R |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, sub in (("all", res), ("boundary (a component 0 in nasseg)", res[res["boundary"]]),
                       ("interior", res[~res["boundary"]])):
        if sub.empty:
            continue
        lines.append(f"| {label} ({len(sub)}) | {sub['estimate_absdiff'].max():.2e} | {sub['se_absdiff'].max():.2e} | "
                     f"{sub['se_reldiff'].max():.2e} | {sub['df_absdiff'].max():.2e} | {sub['p_absdiff'].max():.2e} | "
                     f"{sub['loglik_nasseg_minus_r'].min():+.2e} | {sub['loglik_nasseg_minus_r'].max():+.2e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim", type=int, default=60, help="simulated tables")
    ap.add_argument("--out", help="CSV with every table's two fits")
    args = ap.parse_args()
    why = r_available()
    if why:
        raise SystemExit(why)
    res = compare_with_r({**busi_tables(), **simulated_tables(args.sim)})
    if args.out:
        res.to_csv(args.out, index_label="table")
    cols = ["estimate_nasseg", "estimate_r", "se_nasseg", "se_r", "df_nasseg", "df_r", "p_nasseg", "p_r",
            "var_seed_nasseg", "var_seed_r", "loglik_nasseg", "loglik_r"]
    print(res.loc[[k for k in res.index if k.startswith("busi")], cols].T.to_string())
    print()
    print(summary(res))
