"""``nasseg bench search``: the live confirmation of the replayed benchmark.

The strategies are compared on the recorded table (``nasseg bench search --replay``,
:mod:`nasseg.bench.replay`); this module checks, with real training, that the chosen
default still beats random search. On a real dataset (``data``; the recorded run used
dsb2018_96: a seeded sample of 192 cases at 64x64, split 50/25/25 train/val/test), for each seed:

- ``default``: ``nasseg search`` with the study defaults (sampler and early stopping as
  :class:`nasseg.search.study.StudyConfig` sets them);
- ``random``: Optuna's RandomSampler, no early stopping;
- ``nsga2_nostop`` (only if asked for): NSGA-II without early stopping;

both with no initial architecture, in the search space ``space`` (the recorded run:
``search_spaces/lightweight_2d.yaml``), with
objectives Dice, MACs and parameters, the same data, split, training settings and a
budget of ``budget_epochs`` trained epochs (``budget.trial_epochs``). After every trial the
normalised hypervolume of the front chosen on validation Dice is recorded twice: with the
validation Dice (the search's own view) and with the members' test Dice
(:func:`nasseg.store.hypervolume_on_test`), the number reported.

Outputs in ``out`` (default ``reports/bench/search/live`` under the working directory):
``results.json`` (every number
and the settings), ``hv_curve.csv`` (every run's curve), ``summary.md``. The studies (YAML
and SQLite storage) live in ``out/runs/`` (git-ignored), so an interrupted benchmark
resumes where it stopped.

Example:
    >>> run_bench(data="../shared/data/dsb2018_96", space="search_spaces/lightweight_2d.yaml",
    ...           seeds=[0], budget_epochs=16)          # doctest: +SKIP
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
from nasseg.search.runner import run_search
from nasseg.store import OBJECTIVES, trial_record

METHODS = {
    "default": {},  # the study defaults
    "random": {"sampler": "random", "early_stopping": {"enabled": False}},
    # the ablation that separates the sampler from the stopping rule (``--methods``)
    "nsga2_nostop": {"sampler": "nsga2", "early_stopping": {"enabled": False}},
}


def study_dict(method: str, seed: int, data: str, budget_epochs: int, epochs: int,
               max_cases: int, size: int | None, out: Path, space: str | Path) -> dict[str, Any]:
    """The study one run of the benchmark uses."""
    extra = {"size": size} if size else {}
    return {
        "name": f"bench_{method}_s{seed}",
        "description": f"nasseg bench search: {method}, seed {seed}",
        "data": {"path": str(Path(data).resolve()), "max_cases": max_cases,
                 "split": {"val_fraction": 0.25, "test_fraction": 0.25}, **extra},
        "space": str(Path(space).resolve()),
        "objectives": ["dice", "macs", "params"],
        "budget": {"trial_epochs": budget_epochs, "trials": 10 * budget_epochs},
        "epochs": epochs, "train": {"batch_size": 8, "lr": 0.003, "num_threads": 1},
        "seed": seed, "output_dir": str(out / "runs" / f"{method}_s{seed}"), "initial_archs": [],
        **METHODS[method],
    }


def saved_epochs(study: Any, epochs: int) -> int:
    """Epochs early stopping did not train: ``epochs - epochs_run`` over stopped trials."""
    records = [trial_record(t) for t in study.trials]
    return sum(epochs - (r.epochs_run if r.epochs_run is not None else epochs) for r in records
               if r.stopped_early and r.reused_from is None)


def run_bench(*, data: str, space: str | Path, seeds: list[int] = (0, 1, 2),
              budget_epochs: int = 40, epochs: int = 4, max_cases: int = 192, size: int | None = 64,
              out: str | Path = "reports/bench/search/live", progress: bool = True,
              methods: list[str] = ("default", "random")) -> dict[str, Any]:
    """Run (or resume) every method x seed and write the results; returns ``results.json``'s dict."""
    out = Path(out)
    (out / "runs" / "studies").mkdir(parents=True, exist_ok=True)
    runs, curves = [], []
    for seed in seeds:
        for method in methods:
            cfg = study_dict(method, seed, data, budget_epochs, epochs, max_cases, size, out, space)
            path = out / "runs" / "studies" / f"{method}_s{seed}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            t0 = time.perf_counter()
            run_search(path, progress=progress, command=f"nasseg bench search ({method}, seed {seed})")
            study = open_result(path)
            curve = hv_curve(study).assign(method=method, seed=seed)
            curves.append(curve)
            within = curve[curve["epochs_spent"] <= budget_epochs]
            last = within.iloc[-1] if len(within) else None
            runs.append({
                "method": method, "seed": seed, "study": cfg["name"],
                "storage": str(Path(cfg["output_dir"]) / "study.db"),
                "trials": int(len(curve)), "epochs_spent": int(curve["epochs_spent"].iloc[-1]),
                "hv_test_at_budget": float(last["hv_test"]) if last is not None else 0.0,
                "hv_val_at_budget": float(last["hv"]) if last is not None else 0.0,
                "hv_val_final": float(hypervolume(study)),
                "stopped_trials": sum(bool(trial_record(t).stopped_early) for t in study.trials),
                "saved_epochs": saved_epochs(study, epochs),
                "wall_s_this_invocation": round(time.perf_counter() - t0, 1),
            })
    result = summarise(runs, budget_epochs, epochs, max_cases, size, data, list(seeds), list(methods), str(space))
    write(out, result, pd.concat(curves, ignore_index=True))
    return result


def summarise(runs: list[dict], budget_epochs: int, epochs: int, max_cases: int, size: int | None,
              data: str, seeds: list[int], methods: list[str], space: str) -> dict[str, Any]:
    """Per method: mean and SD over seeds; per other method: the paired test-HV differences
    against ``random`` seed by seed."""
    summary = {}
    for method in methods:
        rs = [r for r in runs if r["method"] == method]
        hv = [r["hv_test_at_budget"] for r in rs]
        summary[method] = {
            "hv_test_mean": statistics.fmean(hv), "hv_test_sd": statistics.stdev(hv) if len(hv) > 1 else 0.0,
            "hv_val_mean": statistics.fmean(r["hv_val_at_budget"] for r in rs),
            "trials_mean": statistics.fmean(r["trials"] for r in rs),
            "saved_epochs_mean": statistics.fmean(r["saved_epochs"] for r in rs),
            "saved_share_of_budget": statistics.fmean(r["saved_epochs"] for r in rs) / budget_epochs,
        }
        if method != "random" and "random" in methods:
            rand = {r["seed"]: r["hv_test_at_budget"] for r in runs if r["method"] == "random"}
            summary[method]["diff_vs_random_by_seed"] = [r["hv_test_at_budget"] - rand[r["seed"]] for r in rs
                                                         if r["seed"] in rand]
    return {"settings": {"data": data, "max_cases": max_cases, "size": size, "split": "50/25/25 train/val/test",
                         "budget_trial_epochs": budget_epochs, "epochs_per_trial": epochs, "seeds": seeds,
                         "space": space, "objectives": ["dice", "macs", "params"],
                         "methods": {m: METHODS[m] or "study defaults" for m in methods}},
            "runs": runs, "summary": summary}


def write(out: Path, result: dict[str, Any], curves: pd.DataFrame) -> None:
    """``results.json``, ``hv_curve.csv`` and ``summary.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    curves.to_csv(out / "hv_curve.csv", index=False)
    s, st = result["summary"], result["settings"]
    lines = [
        "# nasseg bench search (live)", "",
        f"{Path(st['data']).name}, a seeded sample of {st['max_cases']} cases ({st['split']}), "
        f"{'resized to ' + str(st['size']) + 'x' + str(st['size']) if st['size'] else 'native size'}, "
        f"space {Path(st.get('space') or 'lightweight_2d').stem} (costs at its constraints.input_size), objectives "
        f"{' / '.join(OBJECTIVES[o].label for o in ('dice', 'macs', 'params'))}, {st['epochs_per_trial']} epochs per trial, budget "
        f"{st['budget_trial_epochs']} trained epochs per run, seeds {st['seeds']}, no initial architecture. "
        "HV: normalised hypervolume of the front chosen on validation Dice, measured with test Dice "
        "(validation HV beside it).", "",
        "| method | test HV at budget (mean ± sd) | val HV | test HV - random, by seed | trials | "
        "epochs saved by early stopping |",
        "|---|---|---|---|---|---|",
    ]
    for m, v in s.items():
        diffs = ", ".join(f"{d:+.4f}" for d in v.get("diff_vs_random_by_seed", [])) or "-"
        lines.append(f"| {m} | {v['hv_test_mean']:.4f} ± {v['hv_test_sd']:.4f} | {v['hv_val_mean']:.4f} | "
                     f"{diffs} | {v['trials_mean']:.1f} | {v['saved_epochs_mean']:.1f} "
                     f"({100 * v['saved_share_of_budget']:.1f}% of the budget) |")
    lines += ["", "| method | seed | trials | epochs spent | test HV at budget | val HV at budget | stopped trials "
              "| epochs saved |", "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['method']} | {r['seed']} | {r['trials']} | {r['epochs_spent']} | "
                     f"{r['hv_test_at_budget']:.4f} | {r['hv_val_at_budget']:.4f} | {r['stopped_trials']} | "
                     f"{r['saved_epochs']} |")
    lines += ["", f"{len(st['seeds'])} seeds give no significance test (an exact Wilcoxon over 3 pairs cannot "
              "go below p = 0.25): this run checks the direction of the replayed ranking with real training; "
              "the comparison with CIs and Holm-corrected p-values is the replay's (`nasseg bench search "
              "--replay`, ../summary.md).", "",
              "Produced by `nasseg bench search`; curves in hv_curve.csv, studies in runs/ (not committed)."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
