"""Helping choose a network from a search's Pareto set: data only (figures in
:mod:`nasseg.report.choose_html`).

For each Pareto member: its costs, its validation Dice with a 95 % interval over the
held-out cases (the statistics' mixed model, one seed), and its architecture as YAML. Then the recommendations:

- **knee point**: the member closest to the ideal point (Dice 1, costs 0) after each
  objective is scaled to [0, 1] over the front's own range -- the compromise that gives
  up least on every objective at once (the "closest to the utopia point" rule of
  compromise programming, Zeleny 1973; for a convex 2-objective front it is where the
  Dice gained per unit of cost drops most).
- **best under each constraint the study names** (``limits``: max params, GMACs, ...):
  the highest-Dice member within the limit, and within half and a quarter of it.
- **the preset the study started from** (``initial_archs``): each recommendation's Dice
  difference to it, with a paired interval over the cases both were validated on, and its
  cost ratios.

Example:
    >>> info = choice_info(study)                             # doctest: +SKIP
    >>> [(r.label, r.trial) for r in info.recommendations]    # doctest: +SKIP
    [('knee point', 7), ('best with params <= 1.5 M', 9), ...]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from nasseg.report.data import objectives_of, pareto_table_info
from nasseg.store import study_record, trial_record

__all__ = ["ChoiceInfo", "Member", "Recommendation", "choice_info", "case_dice", "mean_ci"]

_LIMIT_NAMES = {"params": "params", "macs": "GMACs", "latency": "latency (ms)", "memory": "memory (MB)"}


@dataclass
class Member:
    """One network of the Pareto set (or the starting preset)."""

    trial: int
    arch_id: str
    summary: str
    yaml: str
    values: dict[str, float]
    costs: dict[str, float]
    dice: float
    ci: tuple[float, float]
    cases: dict[str, float] = field(repr=False, default_factory=dict)
    checkpoint: str | None = None
    initial_arch: str | None = None


@dataclass
class Recommendation:
    """A recommended member and why; ``vs_preset`` compares it with the starting preset."""

    label: str
    trial: int
    why: str
    vs_preset: str = ""


@dataclass
class ChoiceInfo:
    """The Pareto members (best Dice first), the recommendations and the preset."""

    members: list[Member]
    recommendations: list[Recommendation]
    preset: Member | None
    limits: dict[str, float]
    note: str = ""


def case_dice(per_case: list[dict] | None) -> dict[str, float]:
    """Per-case Dice (mean over foreground classes) from a trial's ``per_case`` rows.

    Example:
        >>> case_dice([{"case_id": "a", "class": 1, "dice": 0.5}, {"case_id": "a", "class": 2, "dice": 1.0}])
        {'a': 0.75}
    """
    by_case: dict[str, list[float]] = {}
    for r in per_case or []:
        if r.get("split", "val") in ("val", None) and r.get("dice") is not None:
            by_case.setdefault(str(r["case_id"]), []).append(float(r["dice"]))
    return {c: float(np.mean(v)) for c, v in by_case.items()}


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of the mean over cases from the statistics' mixed model
    (:func:`nasseg.ablation.stats.fit_crossed` with one training seed: a t interval).

    Example:
        >>> lo, hi = mean_ci(np.array([0.8, 0.9, 0.85, 0.95]))
        >>> round(lo, 3), round(hi, 3)
        (0.772, 0.978)
    """
    from nasseg.ablation.stats import fit_crossed

    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return (float("nan"), float("nan"))
    return fit_crossed(v[None, :]).ci(confidence)


def choice_info(study: optuna.Study) -> ChoiceInfo:
    """The data of the report's "Choosing a network" section."""
    objs = objectives_of(study)
    table = pareto_table_info(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    members = [_member(trials[int(r["trial"])], r.get("config") or "", str(r.get("summary") or ""),
                       {o.name: float(r[o.name]) for o in objs}) for _, r in table.iterrows()]
    members.sort(key=lambda m: -m.dice)
    record = study_record(study)
    limits = {k: float(v) for k, v in (record.limits if record else {}).items()}
    preset = _preset(study, trials, {o.name for o in objs})
    if not members:
        return ChoiceInfo([], [], preset, limits, "no feasible trained network yet")
    recs = [Recommendation("knee point", _knee(members, objs).trial,
                           "closest to the ideal (Dice 1, zero cost) with every objective scaled over the front")]
    recs.append(Recommendation("highest Dice", members[0].trial, "the most accurate member of the front"))
    for name, limit in limits.items():
        for frac in (1.0, 0.5, 0.25):
            within = [m for m in members if m.costs.get(name, np.inf) <= limit * frac]
            if not within:
                continue
            best = max(within, key=lambda m: m.dice)
            label = f"best with {_LIMIT_NAMES.get(name, name)} <= {_fmt(limit * frac, name)}"
            if frac < 1 and any(r.trial == best.trial and r.label.startswith(f"best with {_LIMIT_NAMES.get(name, name)}")
                                for r in recs):
                continue  # the same network as under the looser budget
            recs.append(Recommendation(label, best.trial, f"{_fmt(best.costs.get(name), name)} "
                                       f"({best.costs.get(name, 0) / limit:.0%} of the study's limit)"))
    by_trial = {m.trial: m for m in members}
    if preset is not None:
        for r in recs:
            r.vs_preset = compare(by_trial[r.trial], preset)
    return ChoiceInfo(members, recs, preset, limits)


def compare(m: Member, ref: Member) -> str:
    """``"+0.052 Dice [0.031, 0.074] vs cmunext_s; 0.41x params, 0.38x GMACs"``."""
    if m.trial == ref.trial:
        return f"is the starting preset {ref.initial_arch}"
    common = sorted(set(m.cases) & set(ref.cases))
    parts = []
    if common:
        d = np.array([m.cases[c] - ref.cases[c] for c in common])
        lo, hi = mean_ci(d)
        parts.append(f"{d.mean():+.3f} Dice [{lo:+.3f}, {hi:+.3f}] over {len(common)} paired cases")
    else:
        parts.append(f"{m.dice - ref.dice:+.3f} Dice")
    for k in ("params", "macs"):
        if m.costs.get(k) and ref.costs.get(k):
            parts.append(f"{m.costs[k] / ref.costs[k]:.2f}x {_LIMIT_NAMES[k]}")
    return f"vs {ref.initial_arch}: " + ", ".join(parts)


def _member(t: optuna.trial.FrozenTrial, yaml_text: str, summary: str, values: dict[str, float]) -> Member:
    a = trial_record(t)
    cases = case_dice(a.per_case)
    dice = float(np.mean(list(cases.values()))) if cases else float(values.get("dice", np.nan))
    cost = dict(a.cost or {})
    raw = {"params": cost.get("params"), "macs": cost["macs"] / 1e9 if cost.get("macs") is not None else None,
           "latency": cost.get("latency_ms"), "memory": cost.get("memory_mb")}  # the units of the limits
    costs = {k: float(v) for k, v in raw.items() if v is not None}
    costs.update({k: v for k, v in values.items() if k in _LIMIT_NAMES})
    return Member(t.number, a.arch_id or "", summary, yaml_text, values, costs, dice,
                  mean_ci(np.array(list(cases.values()))), cases, a.checkpoint, a.initial_arch)


def _preset(study: optuna.Study, trials: dict[int, Any], names: set[str]) -> Member | None:
    import yaml

    from nasseg.store import arch_summary

    for t in trials.values():
        a = trial_record(t)
        if a.initial_arch and a.trained and a.per_case and t.values:
            src = trials.get(a.reused_from, t)
            values = dict(zip([o.name for o in objectives_of(study)], t.values))
            m = _member(src, yaml.safe_dump(a.arch or {}, sort_keys=False), arch_summary(a.arch), values)
            m.trial, m.initial_arch = t.number, a.initial_arch
            return m
    return None


def _knee(members: list[Member], objs: list[Any]) -> Member:
    v = np.array([[m.values[o.name] for o in objs] for m in members], dtype=float)
    lo, hi = v.min(0), v.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    loss = np.where([o.maximize for o in objs], (hi - v) / span, (v - lo) / span)
    return members[int(np.argmin(np.sqrt((loss ** 2).sum(1))))]


def _fmt(v: float | None, name: str) -> str:
    if v is None:
        return "–"
    if name == "params":
        return f"{v / 1e6:.3g} M"
    return f"{v:.3g}"
