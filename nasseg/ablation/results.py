"""Read an ablation back from its Optuna storage and compute its statistics table.

The study store (:mod:`nasseg.store`) holds an ablation record and one trial record per
run (``variant``, ``seed``, ``factors``, ``per_case``, ``cost``, ``split``), so the
numbers here come only from what was stored.

Example:
    >>> study = optuna.load_study(study_name="skips", storage="sqlite:///runs/skips/study.db")
    >>> result = analyze(study)
    >>> result.table[["variant", "dice_mean", "p_holm"]]   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd

from nasseg.ablation.cases import clip_intervals, clip_note, complete_cases, degenerate_runs
from nasseg.ablation.config import AblationConfig
from nasseg.ablation.design import Contrast, Variant, plan_contrasts, plan_variants
from nasseg.ablation.stats import compare, holm, significance, summarize_variant, tidy
from nasseg.errors import NassegError
from nasseg.store import study_record, trial_record

__all__ = ["AblationResult", "analyze", "per_case_frame", "runs_frame", "stored_config"]


def stored_config(study: optuna.Study) -> AblationConfig:
    """The (profile-merged) study config saved in the storage when the study was created."""
    rec = study_record(study)
    if rec is None or rec.nasseg_kind != "ablation":
        raise NassegError(f"study '{study.study_name}' is a {rec.nasseg_kind if rec else 'plain Optuna'} "
                          "study, not an ablation")
    return AblationConfig.model_validate(rec.config)


def runs_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per completed run: ``trial, variant, seed, dice, params, macs, split_hash,
    stopped_early, train_seconds``; when a (variant, seed) ran twice, the later trial wins."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        r = trial_record(t)
        if r.variant is None:
            continue
        cost = r.cost or {}
        rows.append({
            "trial": t.number, "variant": r.variant, "seed": r.seed,
            "dice": t.values[0] if t.values else np.nan,
            "params": cost.get("params", np.nan), "macs": cost.get("macs", np.nan),
            "split_hash": (r.split or {}).get("hash"),
            "stopped_early": bool(r.stopped_early),
            "train_seconds": np.nan if r.train_seconds is None else r.train_seconds,
        })
    cols = ["trial", "variant", "seed", "dice", "params", "macs", "split_hash", "stopped_early",
            "train_seconds"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.sort_values("trial").drop_duplicates(["variant", "seed"], keep="last")


def per_case_frame(study: optuna.Study) -> pd.DataFrame:
    """The tidy per-case table of every completed run (``variant, seed, case_id, class,
    dice, iou, hd95, assd, nsd, trial``), from the trials' stored ``per_case`` lists (the
    test cases; the validation cases for runs stored before test splits existed).

    Raises:
        NassegError: runs were evaluated on different splits (their split hashes differ),
            so they cannot be paired.
    """
    runs = runs_frame(study)
    hashes = set(runs["split_hash"].dropna())
    if len(hashes) > 1:
        raise NassegError(f"study '{study.study_name}': runs were evaluated on {len(hashes)} different "
                          "data splits; paired statistics need the same held-out cases for all")
    keep = set(runs["trial"])
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.number not in keep:
            continue
        r = trial_record(t)
        for case in (r.test_per_case or r.per_case) or []:
            rows.append({"variant": r.variant, "seed": r.seed,
                         "case_id": str(case["case_id"]), "class": case.get("class", 1),
                         "dice": case.get("dice"), "iou": case.get("iou"),
                         "hd95": case.get("hd95"), "assd": case.get("assd"), "nsd": case.get("nsd"),
                         "trial": t.number})
    cols = ["variant", "seed", "case_id", "class", "dice", "iou", "hd95", "assd", "nsd", "trial"]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("dice", "iou", "hd95", "assd", "nsd"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


@dataclass
class AblationResult:
    """Everything the tables and the report show about an ablation.

    Attributes:
        config: the stored study config.
        variants: the planned variants, baseline first.
        contrasts: the planned comparisons.
        runs: :func:`runs_frame`.
        per_case: :func:`per_case_frame`.
        table: one row per variant and contrast (see :func:`analyze`).
        scored_split: the cases the per-case values are on (``test``; ``val`` for studies
            run before three-way splits).
        notes: sentences for the table's note (cases used and dropped, runs left out,
            clipped intervals).
    """

    config: AblationConfig
    variants: list[Variant]
    contrasts: list[Contrast]
    runs: pd.DataFrame
    per_case: pd.DataFrame
    table: pd.DataFrame
    scored_split: str = "test"
    notes: list[str] = field(default_factory=list)

    def seed_means(self) -> pd.DataFrame:
        """Per (variant, seed): the mean Dice over the held-out cases."""
        t = tidy(self.per_case)
        return t.groupby(["variant", "seed"], as_index=False)["dice"].mean()


TABLE_COLUMNS = ["variant", "is_baseline", "n_seeds", "n_cases", "dice_mean", "dice_sd",
                 "dice_ci_low", "dice_ci_high", "interval", "reference", "factor", "n_pairs", "mean_diff",
                 "diff_ci_low", "diff_ci_high", "test", "statistic", "df", "p_value", "p_holm",
                 "effect_size", "effect_measure", "significance", "var_seed", "var_case", "var_res",
                 "params", "macs"]


def analyze(study: optuna.Study, config: AblationConfig | None = None) -> AblationResult:
    """Compute the statistics table of an ablation study from its storage.

    The table has one row per variant (baseline first) and, for ``contrasts: simple``,
    one row per (variant, contrast). Columns: :data:`TABLE_COLUMNS` plus one column per
    factor with the variant's level. Comparisons of variants without runs get NaN and do
    not count in the Holm correction.
    """
    cfg = config or stored_config(study)
    variants = plan_variants(cfg)
    contrasts = plan_contrasts(cfg, variants)
    runs = runs_frame(study)
    per_case = per_case_frame(study)
    notes = left_out(study, per_case)
    bad = set(degenerate_runs(tidy(per_case)))
    per_case = per_case[[k not in bad for k in zip(per_case["variant"], per_case["seed"])]]
    frame, cases = complete_cases(tidy(per_case), "dice")
    notes.insert(0, cases.note())
    conf = cfg.stats.bootstrap.confidence
    summary = {v.name: summarize_variant(frame, v.name, confidence=conf) for v in variants}
    cost = runs.groupby("variant")[["params", "macs"]].first()
    comps = [compare(frame, c.variant, c.reference, test=cfg.stats.test, confidence=conf)
             for c in contrasts]
    p_holm = holm([c.p_value for c in comps])
    rows = []
    for v in variants:
        base_row = {**summary[v.name], **v.levels, "is_baseline": v.is_baseline,
                    "params": cost["params"].get(v.name, np.nan),
                    "macs": cost["macs"].get(v.name, np.nan)}
        mine = [(c, r, ph) for c, r, ph in zip(contrasts, comps, p_holm, strict=True)
                if c.variant == v.name]
        if not mine:
            rows.append(base_row)
        for c, r, ph in mine:
            rows.append({**base_row, "reference": c.reference, "factor": c.factor,
                         "n_pairs": r.n_pairs, "mean_diff": r.mean_diff,
                         "diff_ci_low": r.diff_ci_low, "diff_ci_high": r.diff_ci_high,
                         "test": r.test, "statistic": r.statistic, "df": r.df, "p_value": r.p_value,
                         "var_seed": r.var_seed, "var_case": r.var_case, "var_res": r.var_res,
                         "p_holm": float(ph), "effect_size": r.effect_size,
                         "effect_measure": r.effect_measure,
                         "significance": significance(float(ph), cfg.stats.alpha)})
    cols = ["variant", *cfg.factors, *TABLE_COLUMNS[1:]]
    table, clipped = clip_intervals(pd.DataFrame(rows).reindex(columns=cols), "dice")
    scored = {"test" if trial_record(t).test_per_case or trial_record(t).per_case_split == "test" else "val"
              for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.number in set(runs["trial"])}
    return AblationResult(cfg, variants, contrasts, runs, per_case, table,
                          scored_split="test" if scored == {"test"} else "/".join(sorted(scored)) or "test",
                          notes=[*notes, *clip_note(clipped, "dice")])


def left_out(study: optuna.Study, per_case: pd.DataFrame) -> list[str]:
    """The sentence counting the runs the statistics leave out: failed runs (with their
    reason; degenerate runs fail as ``degenerate: ...``, see :mod:`nasseg.runs`) that no
    later run replaced, and completed runs stored before that rule with Dice 0 on every
    case."""
    done = set(zip(per_case["variant"], per_case["seed"]))
    failed: dict[tuple[str, int], str] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        r = trial_record(t)
        if r.variant is not None and (r.variant, r.seed) not in done and r.fail_reason not in (None, "interrupted"):
            failed[(r.variant, r.seed)] = str(r.fail_reason)
    for key in degenerate_runs(tidy(per_case)):
        failed[key] = "degenerate: Dice 0 on every case (no foreground found)"
    if not failed:
        return []
    items = "; ".join(f"{v} seed {s}: {why[:90]}" for (v, s), why in sorted(failed.items(), key=str))
    return [f"Left out {len(failed)} failed run{'s' if len(failed) != 1 else ''} ({items})."]
