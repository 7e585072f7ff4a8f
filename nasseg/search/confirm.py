"""Confirm a search on unseen cases: re-train its Pareto members over several seeds and
score them once on the test split.

A search picks its Pareto set on the validation cases, the same cases that chose every
trial's best epoch: the set's Dice values are optimistic. Confirmation re-trains each member
(or the top K by validation Dice) with seeds ``0..n-1`` under the study's own data, split and
training settings, scores the test cases (never seen by the search), and reports per member
the validation Dice beside the confirmed test Dice with its 95% interval (the mixed model of
:mod:`nasseg.ablation.stats`, seeds and cases crossed), whether the member stays on the
Pareto front when Dice is replaced by the confirmed value (costs do not change), and the
hypervolume of the confirmed values beside that of the validation values.

Against a reference (``against=NAME``, ``nasseg confirm STUDY --against NAME``): NAME is a
preset or architecture YAML that the study trained as one of its trials (it is in
``initial_archs``; matched by architecture id, with the channels the data has). Only the
members whose every cost objective (each objective but Dice) is no worse than the reference
trial's are confirmed, and the reference is trained as one more arm with the same seeds.
Each member's test Dice minus the reference's comes from
:func:`nasseg.ablation.stats.compare` (the mixed model; with fewer than
:data:`~nasseg.ablation.stats.MIN_MODEL_SEEDS` seeds a comparison conditional on the
trained networks, without p), p-values Holm-adjusted over the members. The verdict is
``found`` when some member's difference has a 95% interval above 0 (and a Holm p below
0.05 where there is one), naming the one with the largest lower bound; else ``not found``
with the best member's difference. With no member at the reference's cost nothing is trained.

Results go to the study's storage (``user_attrs["confirm"]``, read by ``nasseg pareto`` and
the report; ``against`` holds the reference, the comparisons and the verdict) and to
``<out>/confirm/`` (``per_case.csv``, the input of ``nasseg stats``; ``confirm.csv``; one run
folder per member and seed). A killed confirmation resumes: pairs already in
``per_case.csv`` are not re-trained, and a pair killed while training continues from its
last epoch (``checkpoint_latest.pt``, :func:`nasseg.runs.train_or_continue`).

Example:
    >>> res = confirm_search("studies/quickstart.yaml", seeds=3)   # doctest: +SKIP
    >>> res.table[["trial", "val_dice", "test_dice", "test_ci_low", "stays_on_front"]]  # doctest: +SKIP
    >>> confirm_search("studies/busi_cmunext.yaml", seeds=5, against="cmunext_s").verdict  # doctest: +SKIP
    'found: trial_14 costs no more than cmunext_s (trial 0) and its test Dice is higher by +0.0121 ...'
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasseg.ablation.stats import MIN_MODEL_SEEDS, compare, holm, summarize_variant, tidy
from nasseg.errors import ConfigError
from nasseg.jsonsafe import json_safe
from nasseg.runs import study_data, train_or_continue
from nasseg.store import front, locate, objectives_of, study_record, trial_record, unique_feasible, update_record
from nasseg.store.claims import job_lock, run_lock
from nasseg.store.pareto import normalised_hypervolume, pareto_indices
from nasseg.versions import provenance

__all__ = ["ConfirmResult", "confirm_columns", "confirm_search", "confirmed_table"]

ALPHA = 0.05
"""The Holm-adjusted p below which a member's gain over the reference counts (with a p)."""


@dataclass
class ConfirmResult:
    """Per member: ``trial, arch_id, val_dice, test_dice, test_ci_low, test_ci_high,
    test_sd_seeds, n_seeds, n_cases``, the cost objectives, ``on_val_front`` and
    ``stays_on_front``; ``hv_val``/``hv_test``: normalised hypervolume of the members with
    validation / confirmed Dice. With ``against``: the table also has ``is_reference``,
    ``diff_vs_ref``, ``diff_ci_low``, ``diff_ci_high``, ``p_holm`` (NaN on the reference row
    and where there is no p); ``verdict`` (``found: ...`` / ``not found: ...``) and
    ``reference`` (its trial number) are set, and the table is empty when no member costs no
    more than the reference (nothing trained)."""

    table: pd.DataFrame
    hv_val: float
    hv_test: float
    out_dir: Path
    verdict: str | None = None
    reference: int | None = None


def _members(study: Any, top: int | None) -> list[Any]:
    if top is None:
        return front(study)
    names = [o.name for o in objectives_of(study)]
    pool = [t for t in unique_feasible(study.get_trials(deepcopy=False)) if t.values]
    return sorted(pool, key=lambda t: -t.values[names.index("dice")])[:top]


def _reference(study: Any, prep: Any, path: str | Path, name: str) -> Any:
    """The completed feasible trial that trained ``name`` (a preset or architecture YAML),
    matched by :func:`~nasseg.arch.arch_id` with the data's channels, as the search records it.

    Raises:
        ConfigError: ``name`` does not load, or no completed feasible trial is that network.
    """
    from nasseg.arch import arch_id, load_arch  # lazy: torch; nasseg pareto and report read confirmed_table without it

    try:
        arch = load_arch(name)
    except ConfigError as err:
        raise ConfigError(f"{path}: --against {name}: {err}") from None
    s = prep.setup  # channels converted to the data's, as the search enqueued its initial_archs
    aid = arch_id(arch.model_copy(update={"in_channels": s.in_channels, "out_channels": s.out_channels}))
    trials = study.get_trials(deepcopy=False)
    for t in unique_feasible(trials):
        if trial_record(t).arch_id == aid:
            return t
    same = [f"trial {t.number} ({t.state.name.lower()}, not feasible)" for t in trials
            if trial_record(t).arch_id == aid]
    raise ConfigError(f"{path}: --against {name}: no completed feasible trial of study '{study.study_name}' "
                      f"is that network (arch_id {aid}{'; ' + ', '.join(same) if same else ''}); compare against "
                      f"one of its trials: add {name} to initial_archs and run `nasseg search` again, or name one "
                      f"of initial_archs {prep.cfg.initial_archs}")


def _no_costlier(t: Any, ref: Any, objs: list[Any]) -> bool:
    """``t`` is no worse than ``ref`` on every cost objective (each objective but Dice)."""
    return all((v >= r) if o.maximize else (v <= r)
               for o, v, r in zip(objs, t.values, ref.values) if o.name != "dice")


def confirm_search(path: str | Path, *, seeds: int = 3, top: int | None = None, epochs: int | None = None,
                   against: str | None = None, progress: bool = False,
                   echo: Callable[[str], None] = print) -> ConfirmResult:
    """Re-train the Pareto members (or the ``top`` K by validation Dice) of the search study
    ``path`` with ``seeds`` seeds and score them on its test split.

    ``against``: a preset or architecture YAML that is one of the study's trials; only the
    members that cost no more than it are confirmed, it is trained as the reference arm, and
    each member's test Dice is compared with it (see the module docstring).

    Raises:
        ConfigError: the study has no test split (``test_fraction: 0``), no completed trials,
            or no Dice objective; ``against`` is not one of its completed feasible trials.
    """
    from nasseg.arch import load_arch  # lazy: torch; nasseg pareto and report read confirmed_table without it
    from nasseg.search.setup import prepare  # lazy: torch; nasseg pareto and report read confirmed_table without it
    from nasseg.train import train  # lazy: torch; nasseg pareto and report read confirmed_table without it

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    prep = prepare(path)
    study = locate(path)
    prep.setup.data = study_data(prep.setup.data, study, prep.output_dir)  # keeps a pre-grouping split
    objs = objectives_of(study)
    names, dirs = [o.name for o in objs], [o.direction for o in objs]
    if "dice" not in names:
        raise ConfigError(f"{path}: confirmation re-scores Dice, but the objectives are {names}")
    if prep.setup.data.split.test_fraction == 0 and prep.setup.data.split.method != "file":
        raise ConfigError(f"{path}: data has no test split (test_fraction 0); set test_fraction > 0 "
                          "before searching, so that the search never sees the confirmation cases")
    members = _members(study, top)
    if not members:
        raise ConfigError(f"{path}: no completed feasible trials to confirm")
    out = prep.output_dir / "confirm"
    ref = None
    if against is not None:
        ref = _reference(study, prep, path, against)
        members = [t for t in members if t.number != ref.number and _no_costlier(t, ref, objs)]
        if not members:
            verdict = f"not found: no front member costs no more than {against} (trial {ref.number})"
            echo(verdict + "; nothing trained")
            return ConfirmResult(pd.DataFrame(), math.nan, math.nan, out, verdict, ref.number)
        members = [ref, *members]
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "per_case.csv"
    tcfg = prep.setup.train
    if epochs is not None:
        tcfg = tcfg.model_copy(update={"epochs": epochs})
    arms = (f"{len(members) - 1} members + the reference trial_{ref.number} ({against})" if ref
            else f"{len(members)} members")
    echo(f"confirming {arms} x {seeds} seeds of '{study.study_name}' on the test split ({tcfg.epochs} epochs each)")
    archs = {f"trial_{t.number}": load_arch({**trial_record(t).arch, "name": f"{study.study_name}_trial_{t.number}"})
             for t in members}

    def run(name: str, seed: int) -> None:
        def note(**what: Any) -> None:
            echo(f"{name} seed {seed}: " + ("continued from its last epoch" if what.get("resumed")
                                            else f"trained anew ({what.get('resume_refused')})"))

        res = train_or_continue(train, note, archs[name], prep.setup.data, tcfg.model_copy(update={"seed": seed}),
                                run_dir=out / f"{name}-seed{seed}", progress=progress)
        rows = pd.DataFrame([{"variant": name, "seed": seed, "case": r["case_id"], "class": r["class"],
                              **{m: r.get(m) for m in ("dice", "iou", "hd95", "assd", "nsd")}}
                             for r in res.test_per_case])
        with run_lock(out):
            if (name, seed) not in _done(csv):
                rows.to_csv(csv, mode="a", header=not csv.exists(), index=False)
        echo(f"{name} seed {seed}: val Dice {res.best['dice']:.4f}, test Dice {res.test['dice']:.4f}")

    # One writer per (member, seed), as search and ablate have: a pair's lock file is held while
    # it trains; a second `nasseg confirm` takes the pairs nobody holds, then waits for the
    # others (and trains a pair whose holder died).
    for wait in (False, True):
        for name in archs:
            for seed in range(seeds):
                with job_lock(out / f".{name}-seed{seed}.lock", wait=wait) as held:
                    if held and (name, seed) not in _done(csv):
                        run(name, seed)
    frame = tidy(pd.read_csv(csv).rename(columns={"case": "case_id"}).astype({"variant": str}))
    split_hashes = {json.loads(f.read_text())["hash"] for name in archs for seed in range(seeds)
                    if (f := out / f"{name}-seed{seed}" / "split.json").is_file()}  # this call's pairs and earlier ones
    rows = []
    for t in members:
        name = f"trial_{t.number}"
        s = summarize_variant(frame, name)
        row = {"trial": t.number, "arch_id": trial_record(t).arch_id,
               "val_dice": t.values[names.index("dice")], "test_dice": s["dice_mean"],
               "test_ci_low": s["dice_ci_low"], "test_ci_high": s["dice_ci_high"],
               "test_sd_seeds": s["dice_sd"], "n_seeds": s["n_seeds"], "n_cases": s["n_cases"]}
        row.update({n: v for n, v in zip(names, t.values) if n != "dice"})
        rows.append(row)
    table = pd.DataFrame(rows)
    record = study_record(study)
    ref_point = record.reference_point
    ideal = {o.name: o.ideal for o in objs} | (record.ideal_point or {})
    val_pts = [[r["val_dice"] if n == "dice" else r[n] for n in names] for r in rows]
    test_pts = [[r["test_dice"] if n == "dice" else r[n] for n in names] for r in rows]
    table["on_val_front"] = [i in set(pareto_indices(val_pts, dirs)) for i in range(len(rows))]
    table["stays_on_front"] = [i in set(pareto_indices(test_pts, dirs)) for i in range(len(rows))]
    hv_val = normalised_hypervolume(val_pts, names, dirs, ref_point, ideal)
    hv_test = normalised_hypervolume(test_pts, names, dirs, ref_point, ideal)
    selection = "pareto" if top is None else f"top {top}"
    against_info, verdict = None, None
    if ref is not None:
        table, verdict = _against(table, frame, ref.number, against)
        selection += f", costing no more than {against}"
        diffs = table.loc[~table["is_reference"], ["trial", "diff_vs_ref", "diff_ci_low", "diff_ci_high", "p_holm"]]
        against_info = {"name": against, "reference_trial": ref.number, "verdict": verdict, "alpha": ALPHA,
                        "costs": {n: v for n, v in zip(names, ref.values) if n != "dice"},
                        "comparisons": json_safe(diffs.to_dict(orient="records"))}
    table.to_csv(out / "confirm.csv", index=False)
    prov = provenance(data=prep.setup.data, seeds=list(range(seeds)), device=tcfg.device)
    prov["split_hash"] = next(iter(split_hashes)) if len(split_hashes) == 1 else None  # None: the pairs' splits differ
    update_record(study, confirm={
        "seeds": seeds, "epochs": tcfg.epochs, "selection": selection,
        "hv_val": hv_val, "hv_test": hv_test, "per_case_csv": str(csv), "split_hashes": sorted(split_hashes),
        "members": json_safe(table.to_dict(orient="records")), "against": against_info,
        "provenance": json_safe(prov)})
    return ConfirmResult(table, hv_val, hv_test, out, verdict, ref.number if ref else None)


def _against(table: pd.DataFrame, frame: pd.DataFrame, ref: int, name: str) -> tuple[pd.DataFrame, str]:
    """``table`` with each member's test Dice compared with the reference trial's (paired on
    seeds and test cases, Holm over the members), and the verdict.

    Example:
        >>> import numpy as np
        >>> rows = [{"variant": v, "seed": s, "case_id": str(c), "dice": 0.5 + 0.1 * (v == "trial_1") + 0.01 * c}
        ...         for v in ("trial_0", "trial_1") for s in range(3) for c in range(4)]
        >>> t, verdict = _against(pd.DataFrame({"trial": [0, 1]}), tidy(pd.DataFrame(rows)), 0, "cmunext_s")
        >>> verdict[:60]
        'found: trial_1 costs no more than cmunext_s (trial 0) and it'
    """
    nan = math.nan
    is_ref = table["trial"] == ref
    comps = {int(n): compare(frame, f"trial_{n}", f"trial_{ref}", test="mixed") for n in table["trial"][~is_ref]}
    p_holm = dict(zip(comps, holm([c.p_value for c in comps.values()])))
    table = table.assign(
        is_reference=is_ref,
        diff_vs_ref=[comps[n].mean_diff if n in comps else nan for n in table["trial"]],
        diff_ci_low=[comps[n].diff_ci_low if n in comps else nan for n in table["trial"]],
        diff_ci_high=[comps[n].diff_ci_high if n in comps else nan for n in table["trial"]],
        p_holm=[p_holm.get(n, nan) for n in table["trial"]])
    gains = {n: c for n, c in comps.items()
             if c.diff_ci_low > 0 and (math.isnan(p_holm[n]) or p_holm[n] < ALPHA)}
    pool = gains or comps
    best = max(pool, key=lambda n: -math.inf if math.isnan(pool[n].diff_ci_low) else pool[n].diff_ci_low)
    c, p = pool[best], p_holm[best]
    how = (f"Holm-adjusted p {p:.3g}" if not math.isnan(p) else
           f"conditional on the trained networks ({c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}, fewer than "
           f"{MIN_MODEL_SEEDS}: no p)" if c.test == "conditional" else "no p")
    diff = f"{c.mean_diff:+.4f} [95% CI {c.diff_ci_low:+.4f}, {c.diff_ci_high:+.4f}], {how}"
    if gains:
        return table, (f"found: trial_{best} costs no more than {name} (trial {ref}) and its test Dice is "
                       f"higher by {diff}")
    return table, (f"not found: no member costing no more than {name} (trial {ref}) has a test Dice higher by a "
                   f"95% CI that excludes 0 (best: trial_{best} {diff})")


def _done(csv: Path) -> set[tuple[str, int]]:
    """The (member, seed) pairs already in the confirmation's per-case table."""
    if not csv.exists():
        return set()
    done = pd.read_csv(csv, usecols=["variant", "seed"])
    return set(zip(done["variant"].astype(str), done["seed"].astype(int)))


def confirmed_table(study: Any) -> pd.DataFrame | None:
    """The stored confirmation of a study (one row per member), or ``None``."""
    record = study_record(study)
    info = record.confirm if record else None
    if not info:
        return None
    return pd.DataFrame(info["members"])


def interval_note(conf: pd.DataFrame) -> str:
    """What the confirmed test intervals are, in words (for ``confirm``, ``pareto`` and the report).

    With at least :data:`~nasseg.ablation.stats.MIN_MODEL_SEEDS` seeds per member they are the
    mixed model's; with fewer they are conditional on the trained networks (a t interval over
    the test cases of the seed-averaged values), as :func:`~nasseg.ablation.stats.summarize_variant`
    makes them, and too narrow for a claim about the architectures.

    Example:
        >>> interval_note(pd.DataFrame({"n_seeds": [1, 1]}))[:60]
        '95% CI conditional on the trained networks (1 seed, fewer th'
    """
    n = int(conf["n_seeds"].min())
    if n >= MIN_MODEL_SEEDS:
        return "95% CI from a mixed model with crossed random seed and case effects"
    return (f"95% CI conditional on the trained networks ({n} seed{'s' if n != 1 else ''}, fewer than "
            f"{MIN_MODEL_SEEDS}: a t interval over the test cases, no p-value); it leaves training randomness "
            "out, so it is too narrow for a claim about the architectures")


def confirm_columns(study: Any, table: pd.DataFrame) -> pd.DataFrame | None:
    """``table`` (one row per trial) with ``test dice [95% CI]`` and ``stays`` columns from
    the stored confirmation (``"-"`` for trials not confirmed), or ``None`` without one."""
    conf = confirmed_table(study)
    if conf is None:
        return None
    by_trial = conf.set_index("trial")
    test, stays = [], []
    for n in table["trial"]:
        if n in by_trial.index:
            r = by_trial.loc[n]
            test.append(f"{r['test_dice']:.4f} [{r['test_ci_low']:.4f}, {r['test_ci_high']:.4f}]")
            stays.append("yes" if r["stays_on_front"] else "no")
        else:
            test.append("-")
            stays.append("-")
    return table.assign(**{"test dice [95% CI]": test, "stays": stays})
