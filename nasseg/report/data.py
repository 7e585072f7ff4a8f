"""What a report shows, as plain data: one small table or dataclass per figure.

Nothing here imports plotly; :mod:`nasseg.report.figures` draws these, and the tests
check them directly. Strings are returned as stored (unescaped): escaping is the
drawing side's job, see :mod:`nasseg.report.figures` and :mod:`nasseg.report.html`.

Storage format read here (shared with ``nasseg.search``): ``study.user_attrs`` has
``nasseg_kind`` (``search``/``ablation``), ``config``, ``objectives`` (``[{name,
direction}]`` in the order of ``trial.values``), ``reference_point`` (objective -> worst
bound, searches), ``dataset``, ``versions``, ``command``, ``created``; each trial's
``user_attrs`` has ``arch``, ``arch_id``, ``cost``, ``history``, ``stopped_early``,
``seed``, ``split``, ``per_case`` and, for ablations, ``variant``, ``factors``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from nasseg.errors import NassegError

__all__ = ["Header", "Objective", "arch_summary", "feasible", "header_info", "hypervolume",
           "hypervolume_history_info", "importance_info", "learning_curves_info", "normalized_losses",
           "objectives_of", "parallel_info", "pareto_info", "pareto_mask", "pareto_table_info"]

IDEAL = {"dice": 1.0, "iou": 1.0}
"""Best possible value of maximised objectives; minimised ones (params, MACs, latency,
memory) are non-negative with ideal 0. Used to normalise the hypervolume."""


# --- objectives and trials ----------------------------------------------------------------

@dataclass(frozen=True)
class Objective:
    """One objective, in the order of ``trial.values``, with the unit of those values
    (``user_attrs['units']``, e.g. ``GMACs``; empty when not stored)."""

    name: str
    direction: str  # "maximize" | "minimize"
    unit: str = ""

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


def objectives_of(study: optuna.Study) -> list[Objective]:
    """The study's objectives from ``user_attrs['objectives']`` (or its directions)."""
    stored = study.user_attrs.get("objectives")
    units = study.user_attrs.get("units") or {}
    if stored:
        return [Objective(str(o["name"]), str(o["direction"]), str(units.get(o["name"], "")))
                for o in stored]
    return [Objective(f"objective {i}", d.name.lower()) for i, d in enumerate(study.directions)]


def feasible(t: FrozenTrial) -> bool:
    """COMPLETE with finite values, trained, and within every constraint (a search stores
    ``trained: False`` and positive ``constraints`` for networks over its limits)."""
    if t.state != TrialState.COMPLETE or not t.values:
        return False
    if t.user_attrs.get("trained", True) is False:
        return False
    if any(c > 0 for c in (t.user_attrs.get("constraints") or {}).values()):
        return False
    return all(v is not None and math.isfinite(v) for v in t.values)


def completed(study: optuna.Study) -> list[FrozenTrial]:
    """The :func:`feasible` trials, in trial-number order."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in trials if feasible(t)), key=lambda t: t.number)


def arch_summary(arch: dict[str, Any] | None) -> str:
    """One line describing a network: blocks, widths, kernels, skips, attention.

    Example:
        >>> arch_summary({"stages": [{"width": 8, "block": {"type": "conv", "kernel_size": 3},
        ...     "skip": {"type": "concat"}}, {"width": 16, "block": {"type": "conv",
        ...     "kernel_size": 3}, "skip": {"type": "concat"}}]})
        'conv x2 | widths 8-16 | k 3-3 | skip concat'
    """
    if not arch or not arch.get("stages"):
        return "(no architecture stored)"
    st = arch["stages"]

    def uniq(values: list[Any]) -> str:
        return "/".join(dict.fromkeys(str(v) for v in values))

    blocks = uniq([s.get("block", {}).get("type", "?") for s in st])
    parts = [f"{blocks} x{len(st)}", "widths " + "-".join(str(s.get("width", "?")) for s in st)]
    kernels = [s.get("block", {}).get("kernel_size") for s in st]
    if any(k is not None for k in kernels):
        parts.append("k " + "-".join(str(k) for k in kernels))
    depths = [s.get("depth", 1) for s in st]
    if any(d != 1 for d in depths):
        parts.append("depths " + "-".join(str(d) for d in depths))
    parts.append("skip " + uniq([s.get("skip", {}).get("type", "?") for s in st[:-1]] or ["-"]))
    att = [(s.get("skip_attention") or {}).get("type") for s in st[:-1]]
    if any(att):
        parts.append("attention " + uniq([a or "none" for a in att]))
    return " | ".join(parts)


def pareto_mask(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Which rows of ``values`` (n x m) no other row dominates.

    Example:
        >>> pareto_mask(np.array([[0.9, 5.0], [0.8, 6.0], [0.7, 1.0]]), [True, False]).tolist()
        [True, False, True]
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(0, dtype=bool)
    loss = np.where(np.asarray(maximize), -v, v)
    keep = np.ones(len(loss), dtype=bool)
    for i in range(len(loss)):
        others = np.delete(loss, i, axis=0)
        dominated = np.all(others <= loss[i], axis=1) & np.any(others < loss[i], axis=1)
        keep[i] = not dominated.any()
    return keep


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
        row = {"trial": t.number, "arch_id": t.user_attrs.get("arch_id", ""),
               "summary": arch_summary(t.user_attrs.get("arch"))}
        row.update({o.name: float(v) for o, v in zip(objs, t.values, strict=False)})
        rows.append(row)
    points = pd.DataFrame(rows, columns=["trial", "arch_id", "summary", *[o.name for o in objs]])
    mask = pareto_mask(points[[o.name for o in objs]].to_numpy(), [o.maximize for o in objs])
    points["is_pareto"] = mask
    return ParetoInfo(objs, points)


# --- hypervolume --------------------------------------------------------------------------

def normalized_losses(values: np.ndarray, objectives: list[Objective], reference: dict[str, float],
                      ideal: dict[str, float] | None = None) -> np.ndarray:
    """Map objective values to [0, 1] losses: 0 = ideal, 1 = the reference (worst) bound.

    ``(v - ideal) / (ref - ideal)``, the ideal taken from ``ideal`` (a search stores its
    ``ideal_point``) or else 1 for maximised Dice/IoU and 0 for the minimised costs; values
    worse than the reference come out above 1. One minus these is the "1 = best" scale of
    :mod:`nasseg.search.pareto`, so both give the same hypervolume.

    Raises:
        NassegError: an objective has no reference bound, or its bound equals its ideal.
    """
    v = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    out = np.empty_like(v)
    for j, o in enumerate(objectives):
        if o.name not in reference:
            raise NassegError(f"reference_point has no bound for objective '{o.name}'")
        best = (ideal or {}).get(o.name)
        best = float(best) if best is not None else (IDEAL.get(o.name, 1.0) if o.maximize else 0.0)
        span = float(reference[o.name]) - best
        if span == 0 or (o.maximize and span > 0) or (not o.maximize and span < 0):
            raise NassegError(f"reference_point['{o.name}'] = {reference[o.name]} is not worse than "
                              f"the ideal {best}")
        out[:, j] = (v[:, j] - best) / span
    return out


def hypervolume(losses: np.ndarray) -> float:
    """Hypervolume dominated by normalised losses inside the unit box (reference 1, ..., 1).

    Points outside the box on any axis contribute nothing. Computed exactly by
    :func:`nasseg.search.pareto.hypervolume` on ``1 - losses``, so the report shows the
    same numbers as ``nasseg search``.

    Example:
        >>> hypervolume(np.array([[0.2, 0.6], [0.5, 0.3]]))  # 0.8*0.4 + 0.5*0.7 - 0.5*0.4
        0.47
    """
    from nasseg.search.pareto import hypervolume as gain_hypervolume

    pts = np.asarray(losses, dtype=float)
    if pts.size == 0:
        return 0.0
    return round(float(gain_hypervolume(1.0 - pts)), 12)


def hypervolume_history_info(study: optuna.Study) -> pd.DataFrame:
    """Normalised hypervolume after each completed trial (``trial, hypervolume``), against
    the stored ``reference_point``; empty for single-objective studies."""
    objs = objectives_of(study)
    ref = study.user_attrs.get("reference_point")
    trials = completed(study)
    if len(objs) < 2 or not ref or not trials:
        return pd.DataFrame(columns=["trial", "hypervolume"])
    losses = normalized_losses(np.array([t.values for t in trials]), objs, ref,
                               study.user_attrs.get("ideal_point"))
    rows = [{"trial": t.number, "hypervolume": hypervolume(losses[: i + 1])}
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
        feats = [_arch_features(t.user_attrs.get("arch")) for t in trials]
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
        a = t.user_attrs
        label = a.get("variant") or a.get("arch_id") or f"trial {t.number}"
        for h in a.get("history") or []:
            value = h.get(metric)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            rows.append({"trial": t.number, "state": t.state.name, "label": str(label),
                         "epoch": int(h.get("epoch", 0)), "value": float(value),
                         "stopped_early": bool(a.get("stopped_early", False))})
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
        t = by_number[int(p["trial"])]
        cost = t.user_attrs.get("cost") or {}
        rows.append({"trial": int(p["trial"]), "arch_id": p["arch_id"],
                     **{c: cost.get(c) for c in extra},  # objectives (in their units) win below
                     **{o.name: p[o.name] for o in info.objectives},
                     "summary": p["summary"],
                     "config": yaml.safe_dump(t.user_attrs.get("arch") or {}, sort_keys=False)})
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


def header_info(study: optuna.Study) -> Header:
    """Collect the header from the study's attributes and its trials."""
    a = study.user_attrs
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    split = next((t.user_attrs["split"] for t in trials if t.user_attrs.get("split")), {})
    seeds = sorted({int(t.user_attrs["seed"]) for t in trials if t.user_attrs.get("seed") is not None})
    config = a.get("config") or {}
    if a.get("nasseg_kind") == "ablation" and config.get("seeds") is not None:
        s = config["seeds"]
        seeds = sorted(set(seeds) | set(range(s) if isinstance(s, int) else s))
    return Header(name=study.study_name, kind=str(a.get("nasseg_kind", "search")),
                  description=str(config.get("description", "") or ""),
                  dataset=dict(a.get("dataset") or {}), split=dict(split), seeds=seeds,
                  versions={str(k): str(v) for k, v in (a.get("versions") or {}).items()},
                  command=str(a.get("command", "")), created=str(a.get("created", "")),
                  objectives=objectives_of(study), states=states, config=config)
