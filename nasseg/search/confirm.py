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

Results go to the study's storage (``user_attrs["confirm"]``, read by ``nasseg pareto`` and
the report) and to ``<out>/confirm/`` (``per_case.csv``, the input of ``nasseg stats``;
``confirm.csv``; one run folder per member and seed). A killed confirmation resumes: pairs
already in ``per_case.csv`` are not re-trained.

Example:
    >>> res = confirm_search("studies/quickstart.yaml", seeds=3)   # doctest: +SKIP
    >>> res.table[["trial", "val_dice", "test_dice", "test_ci_low", "stays_on_front"]]  # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasseg.ablation.stats import MIN_MODEL_SEEDS, summarize_variant, tidy
from nasseg.errors import ConfigError
from nasseg.runs import study_data
from nasseg.store import front, locate, objectives_of, study_record, trial_record, unique_feasible, update_record
from nasseg.store.claims import job_lock, run_lock
from nasseg.store.pareto import normalised_hypervolume, pareto_indices
from nasseg.versions import provenance

__all__ = ["ConfirmResult", "confirm_columns", "confirm_search", "confirmed_table"]


@dataclass
class ConfirmResult:
    """Per member: ``trial, arch_id, val_dice, test_dice, test_ci_low, test_ci_high,
    test_sd_seeds, n_seeds, n_cases``, the cost objectives, ``on_val_front`` and
    ``stays_on_front``; ``hv_val``/``hv_test``: normalised hypervolume of the members with
    validation / confirmed Dice."""

    table: pd.DataFrame
    hv_val: float
    hv_test: float
    out_dir: Path


def _members(study: Any, top: int | None) -> list[Any]:
    if top is None:
        return front(study)
    names = [o.name for o in objectives_of(study)]
    pool = [t for t in unique_feasible(study.get_trials(deepcopy=False)) if t.values]
    return sorted(pool, key=lambda t: -t.values[names.index("dice")])[:top]


def confirm_search(path: str | Path, *, seeds: int = 3, top: int | None = None, epochs: int | None = None,
                   progress: bool = False, echo: Callable[[str], None] = print) -> ConfirmResult:
    """Re-train the Pareto members (or the ``top`` K by validation Dice) of the search study
    ``path`` with ``seeds`` seeds and score them on its test split.

    Raises:
        ConfigError: the study has no test split (``test_fraction: 0``), no completed trials,
            or no Dice objective.
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
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "per_case.csv"
    tcfg = prep.setup.train
    if epochs is not None:
        tcfg = tcfg.model_copy(update={"epochs": epochs})
    split_hashes = set()
    echo(f"confirming {len(members)} members x {seeds} seeds of '{study.study_name}' on the test split "
         f"({tcfg.epochs} epochs each)")
    archs = {f"trial_{t.number}": load_arch({**trial_record(t).arch, "name": f"{study.study_name}_trial_{t.number}"})
             for t in members}

    def run(name: str, seed: int) -> None:
        res = train(archs[name], prep.setup.data, tcfg.model_copy(update={"seed": seed}),
                    run_dir=out / f"{name}-seed{seed}", progress=progress)
        split_hashes.add(res.split["hash"])
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
    ref = record.reference_point
    ideal = {o.name: o.ideal for o in objs} | (record.ideal_point or {})
    val_pts = [[r["val_dice"] if n == "dice" else r[n] for n in names] for r in rows]
    test_pts = [[r["test_dice"] if n == "dice" else r[n] for n in names] for r in rows]
    table["on_val_front"] = [i in set(pareto_indices(val_pts, dirs)) for i in range(len(rows))]
    table["stays_on_front"] = [i in set(pareto_indices(test_pts, dirs)) for i in range(len(rows))]
    hv_val = normalised_hypervolume(val_pts, names, dirs, ref, ideal)
    hv_test = normalised_hypervolume(test_pts, names, dirs, ref, ideal)
    table.to_csv(out / "confirm.csv", index=False)
    update_record(study, confirm={
        "seeds": seeds, "epochs": tcfg.epochs, "selection": "pareto" if top is None else f"top {top}",
        "hv_val": hv_val, "hv_test": hv_test, "per_case_csv": str(csv), "split_hashes": sorted(split_hashes),
        "members": _plain(table.to_dict(orient="records")),
        "provenance": _plain(provenance(data=prep.setup.data, seeds=list(range(seeds)), device=tcfg.device))})
    return ConfirmResult(table, hv_val, hv_test, out)


def _done(csv: Path) -> set[tuple[str, int]]:
    """The (member, seed) pairs already in the confirmation's per-case table."""
    if not csv.exists():
        return set()
    done = pd.read_csv(csv, usecols=["variant", "seed"])
    return set(zip(done["variant"].astype(str), done["seed"].astype(int)))


def _plain(x: Any) -> Any:
    """JSON-safe copies of numpy scalars (Optuna stores user attrs as JSON)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


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
