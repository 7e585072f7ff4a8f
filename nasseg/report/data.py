"""What a report shows, as plain data: one small table or dataclass per figure.

Nothing here imports plotly; :mod:`nasseg.report.figures` draws these, and the tests
check them directly. Strings are returned as stored (unescaped): escaping is the
drawing side's job, see :mod:`nasseg.report.figures` and :mod:`nasseg.report.html`.

Everything is read through the study store (:mod:`nasseg.store`): the study and trial
records, the objectives (registry records), feasibility, Pareto sets, hypervolume and
the architecture summary are the ones ``nasseg pareto`` uses.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from nasseg.store import Objective, arch_summary, feasible, objectives_of, outcome_counts, study_record, trial_record
from nasseg.store import hypervolume as study_hypervolume
from nasseg.store.pareto import pareto_indices

__all__ = ["Header", "Objective", "arch_summary", "feasible", "header_info",
           "hypervolume_history_info", "importance_info", "learning_curves_info", "objectives_of", "parallel_info", "pareto_info", "pareto_table_info"]


# --- objectives and trials ----------------------------------------------------------------

def completed(study: optuna.Study) -> list[FrozenTrial]:
    """The :func:`feasible` trials, in trial-number order."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in trials if feasible(t)), key=lambda t: t.number)


@dataclass
class ParetoInfo:
    """Every completed trial with its objective values, Pareto flag and hover text.

    ``points`` columns: ``trial, arch_id, summary, is_pareto`` and one per objective.
    """

    objectives: list[Objective]
    points: pd.DataFrame


def pareto_info(study: optuna.Study) -> ParetoInfo:
    """Data of the Pareto-front figure."""
    objs = objectives_of(study)
    rows = []
    for t in completed(study):
        r = trial_record(t)
        row = {"trial": t.number, "arch_id": r.arch_id or "", "summary": arch_summary(r.arch)}
        row.update({o.name: float(v) for o, v in zip(objs, t.values, strict=False)})
        rows.append(row)
    points = pd.DataFrame(rows, columns=["trial", "arch_id", "summary", *[o.name for o in objs]])
    front = set(pareto_indices(points[[o.name for o in objs]].to_numpy().tolist(), [o.direction for o in objs]))
    points["is_pareto"] = [i in front for i in range(len(points))]
    return ParetoInfo(objs, points)


# --- hypervolume ----------------------------------------------------------------------------

def hypervolume_history_info(study: optuna.Study) -> pd.DataFrame:
    """Normalised hypervolume after each completed trial (``trial, hypervolume``), against
    the stored ``reference_point`` (:func:`nasseg.store.hypervolume`, the number
    ``nasseg pareto`` prints); empty for single-objective studies."""
    rec = study_record(study)
    trials = completed(study)
    if len(objectives_of(study)) < 2 or rec is None or not rec.reference_point or not trials:
        return pd.DataFrame(columns=["trial", "hypervolume"])
    rows = [{"trial": t.number, "hypervolume": round(study_hypervolume(study, trials[: i + 1]), 12)}
            for i, t in enumerate(trials)]
    return pd.DataFrame(rows)


# --- parallel coordinates and importances ---------------------------------------------------

@dataclass
class Dimension:
    """One axis of the parallel-coordinates plot; categorical axes carry their tick labels."""

    label: str
    values: list[float]
    ticktext: list[str] | None = None


@dataclass
class ParallelInfo:
    """Axes (the searched parameters, then the objectives) and the colour (first objective)."""

    dimensions: list[Dimension]
    color: list[float]
    color_label: str


def _numeric(values: list[Any]) -> tuple[list[float], list[str] | None]:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    cats = sorted({str(v) for v in values})
    return [float(cats.index(str(v))) for v in values], cats


def parallel_info(study: optuna.Study) -> ParallelInfo | None:
    """Data of the parallel-coordinates plot: the parameters every completed trial has
    (Optuna params, or failing those, the stored architectures' stage widths/blocks/skips),
    then the objectives. ``None`` with fewer than two completed trials."""
    trials = completed(study)
    objs = objectives_of(study)
    if len(trials) < 2:
        return None
    names = sorted(set.intersection(*(set(t.params) for t in trials)))
    dims = []
    if names:
        for n in names:
            vals, ticks = _numeric([t.params[n] for t in trials])
            dims.append(Dimension(n, vals, ticks))
    else:
        feats = [_arch_features(trial_record(t).arch) for t in trials]
        for key in feats[0]:
            if all(key in f for f in feats):
                vals, ticks = _numeric([f[key] for f in feats])
                dims.append(Dimension(key, vals, ticks))
    for j, o in enumerate(objs):
        dims.append(Dimension(o.name, [float(t.values[j]) for t in trials]))
    return ParallelInfo(dims, [float(t.values[0]) for t in trials], objs[0].name)


def _arch_features(arch: dict[str, Any] | None) -> dict[str, Any]:
    if not arch or not arch.get("stages"):
        return {}
    st = arch["stages"]
    return {"stages": len(st), "width_0": st[0].get("width"), "total_depth": sum(s.get("depth", 1) for s in st),
            "block": st[0].get("block", {}).get("type"), "skip": st[0].get("skip", {}).get("type")}


@dataclass
class ImportanceInfo:
    """Parameter importances per objective (``objective, param, importance``), or why not."""

    table: pd.DataFrame
    note: str = ""
    skipped: list[str] = field(default_factory=list)


def importance_info(study: optuna.Study, min_trials: int = 4) -> ImportanceInfo:
    """Optuna's parameter importances (its default evaluator) for each objective.

    Skipped, with a note, when fewer than ``min_trials`` trials completed or no searched
    parameter varies.
    """
    trials = completed(study)
    cols = ["objective", "param", "importance"]
    if len(trials) < min_trials:
        return ImportanceInfo(pd.DataFrame(columns=cols),
                              f"parameter importances need at least {min_trials} completed trials "
                              f"(this study has {len(trials)})")
    varying = {n for t in trials for n in t.params
               if len({repr(u.params.get(n)) for u in trials}) > 1}
    if not varying:
        return ImportanceInfo(pd.DataFrame(columns=cols), "no searched parameter varies across trials")
    rows, skipped = [], []
    for j, o in enumerate(objectives_of(study)):
        sign = -1.0 if o.maximize else 1.0  # the default evaluator ranks for *low* targets
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*low `target` values.*")
                imp = optuna.importance.get_param_importances(
                    study, target=lambda t, j=j, sign=sign: sign * t.values[j])
        except (RuntimeError, ValueError) as err:
            skipped.append(f"{o.name}: {err}")
            continue
        rows += [{"objective": o.name, "param": k, "importance": float(v)} for k, v in imp.items()]
    table = pd.DataFrame(rows, columns=cols)
    note = "" if not skipped else "importances skipped for " + "; ".join(skipped)
    return ImportanceInfo(table, note, skipped)


# --- learning curves, tables, header --------------------------------------------------------

def learning_curves_info(study: optuna.Study, metric: str = "dice") -> pd.DataFrame:
    """One row per (trial, epoch) with its validation ``metric``, for every trial with a
    stored history (complete, stopped or failed): ``trial, state, label, epoch, value,
    stopped_early``. ``label`` is the ablation variant, or the architecture id."""
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        r = trial_record(t)
        label = r.variant or r.arch_id or f"trial {t.number}"
        for h in r.history or []:
            value = h.get(metric)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            rows.append({"trial": t.number, "state": t.state.name, "label": str(label),
                         "epoch": int(h.get("epoch", 0)), "value": float(value),
                         "stopped_early": bool(r.stopped_early)})
    return pd.DataFrame(rows, columns=["trial", "state", "label", "epoch", "value", "stopped_early"])


def pareto_table_info(study: optuna.Study) -> pd.DataFrame:
    """The Pareto set: ``trial, arch_id``, the objectives (in the units of ``trial.values``),
    ``params``/``macs`` counts unless they are objectives, ``summary``, ``config`` (the
    stored architecture as YAML), best first by the first objective; an architecture
    evaluated twice (a search reuses results of duplicates) is listed once."""
    info = pareto_info(study)
    by_number = {t.number: t for t in completed(study)}
    names = [o.name for o in info.objectives]
    extra = [c for c in ("params", "macs") if c not in names]  # raw counts from the stored cost
    rows = []
    front = info.points[info.points["is_pareto"]]
    for _, p in front[~(front["arch_id"].astype(bool) & front["arch_id"].duplicated())].iterrows():
        r = trial_record(by_number[int(p["trial"])])
        cost = r.cost or {}
        rows.append({"trial": int(p["trial"]), "arch_id": p["arch_id"],
                     **{c: cost.get(c) for c in extra},  # objectives (in their units) win below
                     **{o.name: p[o.name] for o in info.objectives},
                     "summary": p["summary"],
                     "config": yaml.safe_dump(r.arch or {}, sort_keys=False)})
    first = info.objectives[0] if info.objectives else None
    cols = ["trial", "arch_id", *names, *extra, "summary", "config"]
    table = pd.DataFrame(rows, columns=cols)
    if first is not None and len(table):
        table = table.sort_values(first.name, ascending=not first.maximize, kind="stable")
    return table


@dataclass
class Header:
    """The report's header: what was run, on what, with what, and how to reproduce it."""

    name: str
    kind: str
    description: str
    dataset: dict[str, Any]
    split: dict[str, Any]
    seeds: list[int]
    versions: dict[str, str]
    command: str
    created: str
    objectives: list[Objective]
    states: dict[str, int]
    config: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)


def _optuna_states(trials: list) -> dict[str, int]:
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    return states


def header_info(study: optuna.Study) -> Header:
    """Collect the header from the study's attributes and its trials."""
    rec = study_record(study)
    trials = study.get_trials(deepcopy=False)
    records = [trial_record(t) for t in trials]
    states = outcome_counts(trials) if rec is None or rec.nasseg_kind == "search" else _optuna_states(trials)
    split = next((r.split for r in records if r.split), {})
    seeds = sorted({int(r.seed) for r in records if r.seed is not None})
    config = rec.config if rec else {}
    if rec is not None and rec.nasseg_kind == "ablation" and config.get("seeds") is not None:
        s = config["seeds"]
        seeds = sorted(set(seeds) | set(range(s) if isinstance(s, int) else s))
    return Header(name=study.study_name, kind=rec.nasseg_kind if rec else "search",
                  description=str(config.get("description", "") or ""),
                  dataset=dict(rec.dataset if rec else {}), split=dict(split), seeds=seeds,
                  versions=dict(rec.versions if rec else {}), command=rec.command if rec else "",
                  created=rec.created if rec else "", objectives=objectives_of(study), states=states,
                  config=config, provenance=dict((rec.provenance if rec else None) or {}))
