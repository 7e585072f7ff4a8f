"""Helping choose a network from a search's Pareto set: data only (figures in
:mod:`nasseg.report.choose_html`).

For each Pareto member: its costs, its validation Dice with a 95 % interval over the
held-out cases (the statistics' mixed model, one seed), and its architecture as YAML. Then the recommendations:

- **knee point**: the member closest to the ideal point (Dice 1, costs 0) after each
  objective is scaled to [0, 1] over the front's own range -- the compromise that gives
  up least on every objective at once (the "closest to the utopia point" rule of
  compromise programming, Zeleny 1973; for a convex 2-objective front it is where the
  Dice gained per unit of cost drops most).
- **best under each constraint the study names** (``limits``: max params, MACs, ...):
  the highest-Dice member within the limit, and within half and a quarter of it.
- **the preset the study started from** (``initial_archs``): each recommendation's Dice
  difference to it and its cost ratios. Once ``nasseg confirm`` has run, the difference is
  on the confirmed test cases (:func:`nasseg.ablation.stats.compare`: the mixed model with
  at least 3 seeds, else a per-case comparison conditional on the trained networks, without
  p). Before that, only the difference on the validation cases that chose the network is
  given, without an interval: those cases selected it, so the difference is optimistic.

Example:
    >>> info = choice_info(study)                             # doctest: +SKIP
    >>> [(r.label, r.trial) for r in info.recommendations]    # doctest: +SKIP
    [('knee point', 7), ('highest Dice', 9), ...]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml

from nasseg.ablation.cases import complete_cases
from nasseg.ablation.stats import MIN_MODEL_SEEDS, case_t_interval, tidy
from nasseg.ablation.stats import compare as compare_variants
from nasseg.report.data import objectives_of, pareto_table_info
from nasseg.store import arch_summary, study_record, trial_record
from nasseg.store.objectives import OBJECTIVES, cost_values, get

__all__ = ["ChoiceInfo", "Member", "Recommendation", "choice_info", "case_dice", "compare", "confirmed_frame",
           "mean_ci"]

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
    """Interval of one trained network's mean over cases: a t interval over the cases
    (:func:`nasseg.ablation.stats.case_t_interval`), conditional on that network (one
    training seed: training randomness is not in it).

    Example:
        >>> lo, hi = mean_ci(np.array([0.8, 0.9, 0.85, 0.95]))
        >>> round(lo, 3), round(hi, 3)
        (0.772, 0.978)
    """
    return case_t_interval(np.asarray(values, dtype=float), confidence)


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
            o = get(name)
            label = f"best with {o.column} <= {o.text(limit * frac)}"
            if frac < 1 and any(r.trial == best.trial and r.label.startswith(f"best with {o.column} <=")
                                for r in recs):
                continue  # the same network as under the looser budget
            recs.append(Recommendation(label, best.trial, f"{o.describe(best.costs.get(name))} "
                                       f"({best.costs.get(name, 0) / limit:.0%} of the study's limit)"))
    by_trial = {m.trial: m for m in members}
    if preset is not None:
        confirmed = confirmed_frame(study)
        for r in recs:
            r.vs_preset = compare(by_trial[r.trial], preset, confirmed)
    return ChoiceInfo(members, recs, preset, limits)


def confirmed_frame(study: optuna.Study) -> pd.DataFrame | None:
    """The tidy per-case test Dice of ``nasseg confirm`` (variants ``trial_N``), or ``None``
    before confirmation (or when its per-case file is gone)."""
    record = study_record(study)
    path = ((record.confirm if record else None) or {}).get("per_case_csv")
    if not path or not Path(path).is_file():
        return None
    frame = pd.read_csv(path).rename(columns={"case": "case_id"}).astype({"variant": str, "case_id": str})
    return tidy(frame, "dice")


def compare(m: Member, ref: Member, confirmed: pd.DataFrame | None = None) -> str:
    """How a member differs from the starting preset, e.g. ``"vs cmunext_s: +0.052 Dice
    [+0.031, +0.074] on 40 confirmed test cases x 3 seeds (mixed model, p = 0.002); 0.41x
    Params, 0.38x MACs"``.

    Args:
        m, ref: the member and the preset.
        confirmed: :func:`confirmed_frame`; ``None`` before ``nasseg confirm``, when only the
            validation difference is given, without an interval (those cases chose the network).
    """
    if m.trial == ref.trial:
        return f"is the starting preset {ref.initial_arch}"
    parts = [_dice_difference(m, ref, confirmed)]
    for o in OBJECTIVES.values():
        if o.measured == "counter" and m.costs.get(o.name) and ref.costs.get(o.name):
            parts.append(f"{m.costs[o.name] / ref.costs[o.name]:.2f}x {o.label}")
    return f"vs {ref.initial_arch}: " + ", ".join(parts)


def _dice_difference(m: Member, ref: Member, confirmed: pd.DataFrame | None) -> str:
    a, b = f"trial_{m.trial}", f"trial_{ref.trial}"
    if confirmed is not None and {a, b} <= set(confirmed["variant"]):
        pair, cases = complete_cases(confirmed[confirmed["variant"].isin([a, b])], "dice")
        c = compare_variants(pair, a, b)
        where = f"on {len(cases.kept)} confirmed test cases x {c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}"
        how = (f"conditional on the trained networks, no p-value with fewer than {MIN_MODEL_SEEDS} seeds"
               if c.test == "conditional" else f"mixed model, p = {c.p_value:.2g}")
        return f"{c.mean_diff:+.3f} Dice [{c.diff_ci_low:+.3f}, {c.diff_ci_high:+.3f}] {where} ({how})"
    common = sorted(set(m.cases) & set(ref.cases))
    d = np.array([m.cases[k] - ref.cases[k] for k in common]) if common else np.array([m.dice - ref.dice])
    why = ("not both confirmed by nasseg confirm" if confirmed is not None
           else "run nasseg confirm to compare on test cases")
    return (f"{d.mean():+.3f} Dice on the {len(common) or 'same'} validation cases that chose it "
            f"(optimistic, no interval: {why})")


def _member(t: optuna.trial.FrozenTrial, yaml_text: str, summary: str, values: dict[str, float]) -> Member:
    a = trial_record(t)
    cases = case_dice(a.per_case)
    dice = float(np.mean(list(cases.values()))) if cases else float(values.get("dice", np.nan))
    cost = dict(a.cost or {})
    # every counted objective in the units of trial.values and of the limits (the registry's)
    costs = {k: float(v) for k, v in cost_values(cost).items() if v is not None}
    costs.update({k: v for k, v in values.items() if k in OBJECTIVES and OBJECTIVES[k].measured == "counter"})
    return Member(t.number, a.arch_id or "", summary, yaml_text, values, costs, dice,
                  mean_ci(np.array(list(cases.values()))), cases, a.checkpoint, a.initial_arch)


def _preset(study: optuna.Study, trials: dict[int, Any], names: set[str]) -> Member | None:
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
