"""``nasseg bench search``: the default search against random search at equal trial-epochs.

On a real dataset (dsb2018_96 by default; its first 120 cases resized to 64x64 so that
the whole benchmark fits a 2-core CPU in about an hour), for each seed:

- ``default``: the default search: NSGA-II (generations of 6), CMUNeXt-S enqueued first,
  Pareto-aware early stopping on (warm-up 2 epochs, 2 dominating trials, margin 0.02);
- ``random``: Optuna's RandomSampler, no early stopping, no seeding;
- ``nsga2_nostop`` (only if asked for): NSGA-II without early stopping, which tells the
  sampler's effect from the stopping rule's;

all in ``search_spaces/lightweight_2d.yaml`` with objectives Dice, GMACs and parameters,
the same data, split, training settings and a budget of ``budget_epochs`` trained
epochs (``budget.trial_epochs``). Normalised hypervolume (bounds stored with
each study) is recorded after every trial against the epochs spent; the saving of
early stopping is the epochs its stopped trials did not train, as a share of the budget.

Outputs in ``out`` (default ``reports/bench/search``): ``results.json`` (every number
and the settings), ``hv_curve.csv`` (every run's curve), ``summary.md``, and
``hv_vs_budget.html`` (plotly, loading plotly.js from its CDN). The studies (YAML and
SQLite storage) live in ``runs/`` (git-ignored), so an interrupted benchmark resumes
where it stopped, and ``nasseg pareto reports/bench/search/runs/default_s0`` reads one.

Example:
    >>> run_bench(seeds=[0], budget_epochs=16)          # doctest: +SKIP
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nasseg.search.results import hv_curve, hypervolume, open_result
from nasseg.store import trial_record

REPO = Path(__file__).resolve().parents[2]
METHODS = {
    "default": {"sampler": {"name": "nsga2", "population_size": 6}, "initial_archs": ["cmunext_s"],
                "early_stopping": {"enabled": True, "warmup_epochs": 2, "min_dominators": 2, "margin": 0.02}},
    "random": {"sampler": "random", "initial_archs": [], "early_stopping": {"enabled": False}},
    # the ablation that separates the sampler from the stopping rule (``--methods``)
    "nsga2_nostop": {"sampler": {"name": "nsga2", "population_size": 6}, "initial_archs": ["cmunext_s"],
                     "early_stopping": {"enabled": False}},
}


def study_dict(method: str, seed: int, data: str, budget_epochs: int, epochs: int,
               max_cases: int, size: int | None, out: Path) -> dict[str, Any]:
    """The study one run of the benchmark uses."""
    extra = {"size": size} if size else {}
    return {
        "name": f"bench_{method}_s{seed}",
        "description": f"nasseg bench search: {method}, seed {seed}",
        "data": {"source": str(Path(data).resolve()), "max_cases": max_cases, "val_fraction": 0.3, **extra},
        "space": str(REPO / "search_spaces" / "lightweight_2d.yaml"),
        "objectives": ["dice", "macs", "params"],
        "budget": {"trial_epochs": budget_epochs, "trials": 10 * budget_epochs},
        "epochs": epochs, "train": {"batch_size": 8, "lr": 0.003, "num_threads": 1},
        "seed": seed, "output_dir": str(out / "runs" / f"{method}_s{seed}"),
        **METHODS[method],
    }


def saved_epochs(study: Any, epochs: int) -> int:
    """Epochs early stopping did not train: ``epochs - epochs_run`` over stopped trials."""
    records = [trial_record(t) for t in study.trials]
    return sum(epochs - (r.epochs_run if r.epochs_run is not None else epochs) for r in records
               if r.stopped_early and r.reused_from is None)


def run_bench(*, data: str = "../shared/data/dsb2018_96", seeds: list[int] = (0, 1, 2),
              budget_epochs: int = 40, epochs: int = 4, max_cases: int = 120, size: int | None = 64,
              out: str | Path = "reports/bench/search", progress: bool = True,
              methods: list[str] = ("default", "random")) -> dict[str, Any]:
    """Run (or resume) every method x seed and write the results; returns ``results.json``'s dict."""
    from nasseg.search.runner import run_search

    out = Path(out)
    (out / "runs" / "studies").mkdir(parents=True, exist_ok=True)
    runs, curves = [], []
    for seed in seeds:
        for method in methods:
            cfg = study_dict(method, seed, data, budget_epochs, epochs, max_cases, size, out)
            path = out / "runs" / "studies" / f"{method}_s{seed}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            t0 = time.perf_counter()
            run_search(path, progress=progress, command=f"nasseg bench search ({method}, seed {seed})")
            study = open_result(path)
            curve = hv_curve(study).assign(method=method, seed=seed)
            curves.append(curve)
            within = curve[curve["epochs_spent"] <= budget_epochs]
            runs.append({
                "method": method, "seed": seed, "study": cfg["name"],
                "storage": str(Path(cfg["output_dir"]) / "study.db"),
                "trials": int(len(curve)), "epochs_spent": int(curve["epochs_spent"].iloc[-1]),
                "hv_at_budget": float(within["hv"].iloc[-1]) if len(within) else 0.0,
                "hv_final": float(hypervolume(study)),
                "stopped_trials": sum(bool(trial_record(t).stopped_early) for t in study.trials),
                "saved_epochs": saved_epochs(study, epochs),
                "wall_s_this_invocation": round(time.perf_counter() - t0, 1),
            })
    result = summarise(runs, budget_epochs, epochs, max_cases, size, data, list(seeds), list(methods))
    write(out, result, pd.concat(curves, ignore_index=True))
    return result


def summarise(runs: list[dict], budget_epochs: int, epochs: int, max_cases: int, size: int | None,
              data: str, seeds: list[int], methods: list[str]) -> dict[str, Any]:
    summary = {}
    for method in methods:
        rs = [r for r in runs if r["method"] == method]
        hv = [r["hv_at_budget"] for r in rs]
        summary[method] = {
            "hv_at_budget_mean": statistics.fmean(hv), "hv_at_budget_sd": statistics.stdev(hv) if len(hv) > 1 else 0.0,
            "trials_mean": statistics.fmean(r["trials"] for r in rs),
            "saved_epochs_mean": statistics.fmean(r["saved_epochs"] for r in rs),
            "saved_share_of_budget": statistics.fmean(r["saved_epochs"] for r in rs) / budget_epochs,
        }
    return {"settings": {"data": data, "max_cases": max_cases, "size": size, "budget_trial_epochs": budget_epochs,
                         "epochs_per_trial": epochs, "seeds": seeds,
                         "space": "search_spaces/lightweight_2d.yaml", "objectives": ["dice", "macs", "params"],
                         "methods": {m: METHODS[m] for m in methods}},
            "runs": runs, "summary": summary}


def write(out: Path, result: dict[str, Any], curves: pd.DataFrame) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    curves.to_csv(out / "hv_curve.csv", index=False)
    s, st = result["summary"], result["settings"]
    lines = [
        "# nasseg bench search", "",
        f"{Path(st['data']).name}, first {st['max_cases']} cases (70/30 split), "
        f"{'resized to ' + str(st['size']) + 'x' + str(st['size']) if st['size'] else 'native size'}, "
        "lightweight_2d space (costs counted at 256x256), objectives "
        f"Dice / GMACs / parameters, {st['epochs_per_trial']} epochs per trial, budget "
        f"{st['budget_trial_epochs']} trained epochs per run, seeds {st['seeds']}.", "",
        "| method | normalised HV at budget (mean ± sd) | trials | epochs saved by early stopping |",
        "|---|---|---|---|",
    ]
    for m, v in s.items():
        lines.append(f"| {m} | {v['hv_at_budget_mean']:.4f} ± {v['hv_at_budget_sd']:.4f} | "
                     f"{v['trials_mean']:.1f} | {v['saved_epochs_mean']:.1f} "
                     f"({100 * v['saved_share_of_budget']:.1f}% of the budget) |")
    lines += ["", "| method | seed | trials | epochs spent | HV at budget | stopped trials | epochs saved |",
              "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['method']} | {r['seed']} | {r['trials']} | {r['epochs_spent']} | "
                     f"{r['hv_at_budget']:.4f} | {r['stopped_trials']} | {r['saved_epochs']} |")
    lines += ["", "Produced by `nasseg bench search`; curves in hv_curve.csv, figure in hv_vs_budget.html, "
              "studies in runs/ (not committed)."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    try:
        import plotly.express as px

        fig = px.line(curves, x="epochs_spent", y="hv", color="method", line_dash="seed", markers=True,
                      labels={"epochs_spent": "trial-epochs spent", "hv": "normalised hypervolume"},
                      title="Hypervolume against budget: NSGA-II + Pareto stopping vs random search",
                      line_shape="hv")
        fig.write_html(out / "hv_vs_budget.html", include_plotlyjs="cdn")
    except ImportError:  # pragma: no cover
        pass
