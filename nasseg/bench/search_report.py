"""``nasseg bench search --replay``: search strategies compared on a recorded table.

For every strategy (:func:`nasseg.bench.replay.parse_strategy`) and every seed
``0..n_seeds-1``, a search is replayed (:func:`nasseg.bench.replay.replay`) to a budget of
``budget`` training epochs. After every trial the hypervolume of the front chosen on
validation Dice is measured with the test Dice (:func:`nasseg.bench.replay.front_test_hv`,
normalised as in :mod:`nasseg.store.pareto`: Dice 0..1, MACs and parameters between 0
and the space's limits), giving a step curve HV(b) for b = 1..budget epochs spent.

Reported per strategy: mean HV at 25/50/100 % of the budget with a 95 % t-interval over
seeds; the ratio to random search's mean at the same budget; the two-sided Wilcoxon
signed-rank test of the per-seed differences against random (seeds paired: the same
seed uses the same training-seed column of the table); and the smallest budget at which
the strategy's mean HV reaches random search's mean HV at 100 %, with a 95 % percentile
bootstrap interval over seeds (:func:`reach_interval`).

One family, one primary endpoint, declared here before any run: **HV at 50 % of the
budget** (:data:`PRIMARY`), every strategy of the run against random (GP included when
it is replayed in the same run), Holm-corrected over that one family. HV at 25 % and 100 %
are secondary endpoints: their p-values are reported unadjusted and are descriptive, not
tests of the claim. Strategies replayed in a separate run (e.g. ``--strategies gp``) are a
separate family; replay them together to test them together.

Outputs in ``out``: ``summary.md``, ``results.json``, ``hv_curve.csv`` (mean and CI per
strategy and epoch) and ``hv_vs_budget.html`` (one plotly figure with plotly.js inlined).

Example:
    >>> res = run_replay_bench("reports/bench/table/dsb2018_64.csv.gz", n_seeds=50)  # doctest: +SKIP
    >>> res["summary"]["random"]["hv"]["1.0"]["mean"]                                 # doctest: +SKIP
    0.41
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats
from statsmodels.stats.multitest import multipletests

from nasseg.bench.replay import DEFAULT_CURRENT, Trial, front_test_hv, replay
from nasseg.bench.table import Table
from nasseg.errors import ConfigError
from nasseg.search.space_parse import load_space
from nasseg.store.objectives import OBJECTIVES

STRATEGIES = ["random", "rsnap", "nsga2", "tpe", "nsga2p20+pareto", "default", "random+moasha", "random+pareto",
              "tpe+moasha", "nsga2+moasha", "tpe+pareto"]
"""The strategies replayed by default (each seed takes milliseconds to a second)."""
SLOW_STRATEGIES = ["gp", "gp+moasha"]
"""Replayed only when named (``--strategies gp gp+moasha``): Optuna's GPSampler optimises its
acquisition function over the space's ~20 mixed parameters at every trial, 15-35 s per seed
at a 120-epoch budget on one CPU core, so 50 seeds take 15-30 minutes."""
FRACTIONS = (0.25, 0.5, 1.0)
PRIMARY = 0.5
"""The pre-declared primary endpoint: HV at this fraction of the budget (Holm over strategies)."""
N_BOOT = 2000
"""Bootstrap resamples of the seeds for the reach-budget interval."""


def _name(strategy: str) -> str:
    return DEFAULT_CURRENT if strategy == "default" else strategy


def hv_steps(table: Table, run: Any, budget: int, reference: dict[str, float]) -> np.ndarray:
    """HV after b = 0..budget epochs spent (trials that ended within b), shape ``(budget + 1,)``."""
    out = np.zeros(budget + 1)
    last_b, last_hv = 0, 0.0
    for k, t in enumerate(run.trials):
        if t.reused or t.spent_after > budget:
            continue
        hv = front_test_hv(table, run.trials[: k + 1], reference)
        out[last_b:t.spent_after] = last_hv
        last_b, last_hv = t.spent_after, hv
    out[last_b:] = last_hv
    return out


def ci95(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t-interval."""
    m = float(np.mean(x))
    if len(x) < 2:
        return m, m, m
    h = float(stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


def run_replay_bench(table_path: str | Path, *, strategies: list[str] | None = None, n_seeds: int = 100,
                     budget: int | None = None, out: str | Path = "reports/bench/search",
                     log: Any = print) -> dict[str, Any]:
    """Replay every strategy x seed, compare with random search, write the report."""
    table_path = Path(table_path)
    table = Table.load(table_path)
    sidecar = table_path.with_name(table_path.name.removesuffix(".csv.gz") + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    space = load_space(meta.get("config", {}).get("space", "search_spaces/lightweight_2d.yaml"))
    limits = space.constraints.limits()
    reference = {"dice": 0.0, "macs": limits.get("macs", float(table.gmacs.max())),
                 "params": limits.get("params", float(table.params.max()))}
    strategies = list(strategies or STRATEGIES)
    if "random" not in strategies:
        strategies.insert(0, "random")
    E = table.epochs
    budget = budget or E * math.ceil(len(table) / 5)
    if n_seeds < 2:
        raise ConfigError("--seeds: the comparison needs at least 2 seeds")
    curves: dict[str, np.ndarray] = {}
    extra: dict[str, dict[str, float]] = {}
    for s in strategies:
        t0 = time.perf_counter()
        rows, trials, stopped = [], [], []
        for seed in range(n_seeds):
            run = replay(table, space, _name(s), seed, budget, limits=limits)
            rows.append(hv_steps(table, run, budget, reference))
            trained = [t for t in run.trials if not t.reused]
            trials.append(len(trained))
            stopped.append(sum(t.epochs_run < E for t in trained))
        curves[s] = np.array(rows)
        extra[s] = {"trained_trials_mean": float(np.mean(trials)), "stopped_trials_mean": float(np.mean(stopped)),
                    "seconds": round(time.perf_counter() - t0, 2)}
        log(f"  {s:<22} {n_seeds} seeds in {extra[s]['seconds']:.1f} s, HV@100% "
            f"{curves[s][:, budget].mean():.4f}")
    ceiling = _table_ceiling(table, reference)
    summary = _summarise(curves, strategies, budget, extra)
    result = {"settings": {"table": str(table_path), "archs": len(table), "seeds_per_arch": len(table.seeds),
                           "epochs": E, "budget_epochs": budget, "n_seeds": n_seeds, "reference": reference,
                           "strategies": {s: _name(s) for s in strategies}, "recording": meta.get("config"),
                           "table_front_hv_test": ceiling},
              "summary": summary}
    write(Path(out), result, curves)
    return result


def _table_ceiling(table: Table, reference: dict[str, float]) -> float:
    """HV of the whole table (front on the seed-mean final validation Dice, HV with test Dice)."""
    val, test = table.val[:, :, -1].mean(1), table.test[:, :, -1].mean(1)
    trials = [Trial(i, i, table.epochs, float(val[i]), float(test[i]), 0) for i in range(len(table))]
    return front_test_hv(table, trials, reference)


def first_reach(curves: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The first budget at which the mean curve reaches ``target``, per resample.

    Args:
        curves: ``[..., seeds, budget + 1]`` HV curves (leading axes: resamples).
        target: ``[...]`` the HV to reach.

    Returns:
        ``[...]`` budgets; ``inf`` where the mean curve never reaches the target.
    """
    ok = curves.mean(-2) >= target[..., None] - 1e-12
    return np.where(ok.any(-1), ok.argmax(-1), np.inf)


def reach_interval(curve: np.ndarray, rand: np.ndarray, budget: int, *, n_boot: int = N_BOOT,
                   seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of "the budget at which the strategy's mean HV
    reaches random's mean final HV": seeds resampled with replacement, the same indices for
    both (seeds are paired), the statistic recomputed per resample; ``inf`` = not reached
    within the budget.

    Example:
        >>> c = np.tile(np.arange(5.0), (4, 1)); r = c.copy()
        >>> reach_interval(c, r, 4)
        (4.0, 4.0)
    """
    idx = np.random.default_rng(seed).integers(0, curve.shape[0], size=(n_boot, curve.shape[0]))
    reach = first_reach(curve[idx], rand[idx][..., budget].mean(-1))
    # "lower"/"higher" pick resampled values, never interpolate with an inf
    return float(np.percentile(reach, 2.5, method="lower")), float(np.percentile(reach, 97.5, method="higher"))


def _summarise(curves: dict[str, np.ndarray], strategies: list[str], budget: int,
               extra: dict[str, dict[str, float]]) -> dict[str, Any]:
    rand = curves["random"]
    target = float(rand[:, budget].mean())
    others = [s for s in strategies if s != "random"]
    pvals: dict[str, dict[str, float]] = {s: {} for s in strategies}
    for f in FRACTIONS:
        b = int(round(f * budget))
        raw = [wilcoxon_p(curves[s][:, b], rand[:, b]) for s in others]
        holm = multipletests(raw, method="holm")[1] if raw and f == PRIMARY else [None] * len(raw)
        for s, p, q in zip(others, raw, holm):
            pvals[s][str(f)] = {"p": p, "endpoint": "primary" if f == PRIMARY else "secondary",
                                **({"p_holm": float(q)} if q is not None else {})}
    out: dict[str, Any] = {}
    for s in strategies:
        c = curves[s]
        reach = first_reach(c, np.array(target))
        lo, hi = reach_interval(c, rand, budget)
        out[s] = {"hv": {}, "reach_random_final_epochs": int(reach) if np.isfinite(reach) else None,
                  "reach_ci": [lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None],
                  "holm_family": others, **extra[s]}
        for f in FRACTIONS:
            b = int(round(f * budget))
            m, lo, hi = ci95(c[:, b])
            out[s]["hv"][str(f)] = {"budget": b, "mean": m, "ci": [lo, hi],
                                    "ratio_to_random": m / float(rand[:, b].mean()) if rand[:, b].mean() else None,
                                    **pvals[s].get(str(f), {})}
    return out


def write(out: Path, result: dict[str, Any], curves: dict[str, np.ndarray]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    rows = []
    for s, c in curves.items():
        for b in range(c.shape[1]):
            m, lo, hi = ci95(c[:, b])
            rows.append({"strategy": s, "epochs_spent": b, "hv_mean": m, "ci_low": lo, "ci_high": hi})
    df = pd.DataFrame(rows)
    df.to_csv(out / "hv_curve.csv", index=False)
    (out / "summary.md").write_text(markdown(result))

    fig = go.Figure()
    for s in curves:
        d = df[df["strategy"] == s]
        fig.add_trace(go.Scatter(x=d["epochs_spent"], y=d["hv_mean"], name=s, mode="lines", line_shape="hv",
                                 error_y={"type": "data", "symmetric": False, "array": d["ci_high"] - d["hv_mean"],
                                          "arrayminus": d["hv_mean"] - d["ci_low"], "thickness": 0.5}))
    st = result["settings"]
    fig.update_layout(title=f"Replayed search on {Path(st['table']).name}: test-Dice hypervolume vs budget "
                            f"({st['n_seeds']} seeds, mean and 95% CI)",
                      xaxis_title="training epochs spent", yaxis_title="normalised hypervolume (test Dice)")
    fig.write_html(out / "hv_vs_budget.html", include_plotlyjs=True, full_html=True)


def meets(v: dict[str, Any], budget: int) -> bool:
    """The issue's bar: at 50 % of the budget >= 1.3x random's mean HV, or random's final
    mean HV reached with <= 50 % of the budget; either with Holm p < 0.05 at 50 %."""
    h = v["hv"]["0.5"]
    reach = v["reach_random_final_epochs"]
    better = (h.get("ratio_to_random") or 0) >= 1.3 or (reach is not None and reach <= 0.5 * budget)
    return bool(better and h.get("p_holm", 1.0) < 0.05 and h["mean"] > 0)


def verdict(result: dict[str, Any]) -> list[str]:
    """Which strategies clear the bar of :func:`meets`, in plain sentences."""
    st, s = result["settings"], result["summary"]
    ok = [k for k, v in s.items() if k != "random" and meets(v, st["budget_epochs"])]
    rec = st.get("recording") or {}
    lines = []
    planned = rec.get("n_archs")
    if planned and st["archs"] < planned:
        lines.append(f"- The table holds {st['archs']} of the {planned} planned architectures (x "
                     f"{st['seeds_per_arch']} seeds): the recording was cut by the CPU time available. "
                     "Conclusions hold for this table only.")
    few = max(v["trained_trials_mean"] for v in s.values())
    if few < 10:
        lines.append(f"- At most {few:.1f} trained trials per search on average: TPE and GP start with 10 "
                     "independent random trials and NSGA-II's first generation is random, so every Optuna "
                     "sampler is random sampling (snapped to the table) at this budget; their rows differ "
                     "from `random` only by the snapping.")
    if ok:
        lines.append("- Clear the bar (>= 1.3x random's mean HV at 50% of the budget, or random's final HV "
                     "with <= 50% of it; Holm p < 0.05 at 50%): " + ", ".join(f"`{k}`" for k in ok) + ".")
    else:
        lines.append("- No strategy clears the bar (>= 1.3x random's mean HV at 50% of the budget, or "
                     "random's final HV with <= 50% of it, Holm p < 0.05 at 50%).")
    return lines


def markdown(result: dict[str, Any]) -> str:
    st, s = result["settings"], result["summary"]
    rec = st.get("recording") or {}
    family = next(iter(s.values())).get("holm_family", [k for k in s if k != "random"])
    lines = [
        "# nasseg bench search --replay", "",
        f"Table `{st['table']}`: {st['archs']} architectures of `{rec.get('space', '?')}` x "
        f"{st['seeds_per_arch']} training seeds, {st['epochs']} epochs each "
        f"({rec.get('data', '?')} at {rec.get('size', '?')} px, split {rec.get('n_train')}/{rec.get('n_val')}/"
        f"{rec.get('n_test')} train/val/test). Budget {st['budget_epochs']} training epochs per search, "
        f"{st['n_seeds']} seeds per strategy. HV: normalised hypervolume of the front chosen on "
        f"validation Dice, measured with test Dice (reference Dice 0, {OBJECTIVES['macs'].describe(st['reference']['macs'])}, "
        f"{OBJECTIVES['params'].describe(st['reference']['params'])}). The whole table's front reaches "
        f"{st['table_front_hv_test']:.4f}.", "",
        "| strategy | HV @25% [95% CI] | HV @50% [95% CI] (primary) | x random @50% | Holm p @50% (primary) | "
        "HV @100% [95% CI] | p @100% (secondary, unadjusted) | epochs to random's final HV [95% CI] | "
        "trained trials | stopped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in s.items():
        h = v["hv"]

        def cell(f: str) -> str:
            return f"{h[f]['mean']:.4f} [{h[f]['ci'][0]:.4f}, {h[f]['ci'][1]:.4f}]"

        def p(f: str, key: str) -> str:
            return f"{h[f][key]:.2g}" if key in h[f] else "-"

        reach = v["reach_random_final_epochs"]
        reach_s = "not reached" if reach is None else f"{reach} ({100 * reach / st['budget_epochs']:.0f}%)"
        if "reach_ci" in v:  # results written before the interval existed have none
            reach_s += " [" + ", ".join("not reached" if x is None else f"{x:g}" for x in v["reach_ci"]) + "]"
        lines.append(f"| {name} | {cell('0.25')} | {cell('0.5')} | {h['0.5']['ratio_to_random']:.3f} | {p('0.5', 'p_holm')} | "
                     f"{cell('1.0')} | {p('1.0', 'p')} | {reach_s} | {v['trained_trials_mean']:.1f} | "
                     f"{v['stopped_trials_mean']:.1f} |")
    lines += ["", "## Verdict", ""] + verdict(result) + ["", "Strategies: `random` draws untried table architectures uniformly; `rsnap` (Optuna's "
              "RandomSampler), `nsga2` (population 6), `tpe` (Optuna 5 multi-objective TPE), `gp` "
              "(GPSampler; constraints = the space's limits) suggest the space's parameters, snapped to the "
              "nearest untried recorded architecture (`rsnap` against `random` shows what snapping alone "
              "does: networks with many unrecorded neighbours are drawn more often); "
              f"`default` is nasseg's default search when this ran, `{st.get('strategies', {}).get('default', DEFAULT_CURRENT)}` "
              "(the study defaults; earlier defaults: `random+moasha` until the NAS-Bench-201 replay, "
              "`nsga2p20+pareto`, NSGA-II with population 20 and Pareto-aware stopping, before this table); "
              "`+moasha` adds the MO-ASHA rung rule (eta 2, "
              "rungs 1, 2, ...), `+pareto` the Pareto-aware stopping rule. p: two-sided Wilcoxon "
              "signed-rank test against random over seeds (paired by seed). Primary endpoint, declared before "
              f"the runs: HV at {PRIMARY:.0%} of the budget, Holm-corrected over the one family of every strategy "
              f"of this run against random ({len(family)}: {', '.join(family)}); HV at 25% and 100% are secondary "
              "endpoints "
              "(p unadjusted, descriptive). Strategies replayed in another run are not in this family. Epochs to "
              "random's final HV: the first budget at which the strategy's mean HV reaches random's mean HV at "
              f"100%, with a 95% percentile bootstrap interval over seeds ({N_BOOT} resamples, seeds resampled "
              "jointly for both curves).", "",
              "Produced by `nasseg bench search --replay`; curves in hv_curve.csv, figure in hv_vs_budget.html."]
    return "\n".join(lines) + "\n"
