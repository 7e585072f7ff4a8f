"""Reading a stored study: its record, its objectives, each trial's record, and the one
definition of a feasible trial, the Pareto front, an architecture's one-line summary and
a split's summary, shared by ``nasseg pareto``, the progress display, the report and the
ablation statistics.

Example:
    >>> study = locate("studies/quickstart.yaml")                 # doctest: +SKIP
    >>> [t.number for t in front(study)], hypervolume(study)       # doctest: +SKIP
    ([0, 5, 9], 0.41)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from nasseg.store import objectives as registry
from nasseg.store.objectives import Objective
from nasseg.store.pareto import normalised_hypervolume, pareto_indices
from nasseg.store.records import READABLE, TRIAL_FIELDS, StoreFormatError, StudyRecord, TrialRecord

__all__ = ["OUTCOMES", "REJECTED", "arch_summary", "constraints", "counted", "epochs_trained", "fail_reason", "feasible",
           "front", "hypervolume", "objectives_of", "outcome", "outcome_counts", "requeued", "retries", "split_summary",
           "study_record", "trial_record", "unique_feasible"]


def study_record(study: optuna.Study) -> StudyRecord | None:
    """The study's record; ``None`` for a plain Optuna study (no nasseg attrs).

    Raises:
        StoreFormatError: the study was written in a format this nasseg cannot read.
    """
    attrs = study.user_attrs
    if "nasseg_kind" not in attrs:
        return None
    fmt = attrs.get("format", 1)
    if fmt not in READABLE:
        raise StoreFormatError(
            f"study '{study.study_name}' is stored in nasseg format {fmt!r}; this nasseg reads formats "
            f"{', '.join(map(str, READABLE))} (use the nasseg version that wrote it, or a newer one)")
    try:
        return StudyRecord.model_validate({**attrs, "format": fmt})
    except ValidationError as err:
        raise StoreFormatError(f"study '{study.study_name}': its stored attributes do not match nasseg "
                               f"format {fmt}: {_first(err)}") from None


def trial_record(t: FrozenTrial) -> TrialRecord:
    """The record of one trial (every field ``None`` when not stored).

    Raises:
        StoreFormatError: a stored field has the wrong type.
    """
    try:
        return TrialRecord.model_validate(t.user_attrs)
    except ValidationError as err:
        raise StoreFormatError(f"trial {t.number}: its stored attributes do not match the nasseg "
                               f"format: {_first(err)}") from None


def field(t: Any, name: str) -> Any:
    """One record field of a trial (running or frozen), ``None`` when unset: what a hot path
    reads instead of validating the whole :func:`trial_record`.

    Raises:
        KeyError: ``name`` is no :class:`TrialRecord` field.
    """
    if name not in TRIAL_FIELDS:
        raise KeyError(f"'{name}' is not a TrialRecord field")
    return t.user_attrs.get(name)


def _first(err: ValidationError) -> str:
    e = err.errors()[0]
    return f"{'.'.join(map(str, e['loc']))}: {e['msg']}"


def objectives_of(study: optuna.Study) -> list[Objective]:
    """The study's objectives in the order of ``trial.values``, as registry records (the
    stored direction wins; a plain Optuna study gets ``objective i`` records)."""
    rec = study_record(study)
    if rec is None:
        names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
        return [dataclasses.replace(registry.get(n), direction=d.name.lower())
                for n, d in zip(names, study.directions)]
    return [dataclasses.replace(registry.get(o.name), direction=o.direction) for o in rec.objectives]


def constraints(t: FrozenTrial) -> dict[str, float]:
    """Constraint values (feasible when all <= 0): Optuna's, or a format-1 ``constraints`` attr."""
    return dict(t.constraints) or dict(t.user_attrs.get("constraints") or {})


def feasible(t: FrozenTrial) -> bool:
    """COMPLETE, trained (or not a search trial), within every constraint, values finite."""
    if t.state != TrialState.COMPLETE or not t.values:
        return False
    if t.user_attrs.get("trained", True) is False:
        return False
    if any(c > 0 for c in constraints(t).values()):
        return False
    return all(v is not None and math.isfinite(v) for v in t.values)


def unique_feasible(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Feasible trials in trial order, one per architecture (reused duplicates dropped)."""
    seen, out = set(), []
    for t in sorted(trials, key=lambda t: t.number):
        aid = t.user_attrs.get("arch_id") or f"trial{t.number}"
        if feasible(t) and aid not in seen:
            seen.add(aid)
            out.append(t)
    return out


def front(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The Pareto set of the feasible trials (one per architecture), in trial order."""
    pool = unique_feasible(trials if trials is not None else study.get_trials(deepcopy=False))
    dirs = [o.direction for o in objectives_of(study)]
    return [pool[i] for i in pareto_indices([t.values for t in pool], dirs)]


def hypervolume(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> float:
    """Normalised hypervolume of the feasible trials (see :mod:`nasseg.store.pareto`), against
    the study's stored reference point; NaN when it has none."""
    rec = study_record(study)
    if rec is None or not rec.reference_point:
        return float("nan")
    pool = unique_feasible(trials if trials is not None else study.get_trials(deepcopy=False))
    return _normalised(rec, objectives_of(study), [t.values for t in pool])


def _normalised(rec: StudyRecord, objs: list[Objective], points: list[Any]) -> float:
    """:func:`normalised_hypervolume` of ``points`` between the study's ideal and reference point."""
    ideal = {o.name: o.ideal for o in objs} | (rec.ideal_point or {})
    return normalised_hypervolume(points, [o.name for o in objs], [o.direction for o in objs],
                                  rec.reference_point, ideal)


def hypervolume_on_test(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> float:
    """Normalised hypervolume of the Pareto set *chosen on the stored (validation) values*,
    measured with each member's test Dice (``metrics["test"]["dice"]``, scored once with
    the best-by-val weights; a reused trial takes its source's). NaN without a reference
    point, a ``dice`` objective or a member without a test score."""
    rec = study_record(study)
    objs = objectives_of(study)
    names = [o.name for o in objs]
    if rec is None or not rec.reference_point or "dice" not in names:
        return float("nan")
    pool = trials if trials is not None else study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in pool}  # a reused trial's source finished before it
    members = front(study, pool)
    points = []
    for t in members:
        r = trial_record(t)
        source = trial_record(by_number[r.reused_from]) if r.reused_from in by_number else r
        test = ((source.metrics or {}).get("test") or {}).get("dice")
        if test is None:
            return float("nan")
        points.append([test if n == "dice" else v for n, v in zip(names, t.values)])
    return _normalised(rec, objs, points)


def retries(trials: list[FrozenTrial]) -> dict[int, FrozenTrial]:
    """``{number of a re-queued trial: the trial that re-runs it}``."""
    out = {}
    for t in trials:
        n = t.user_attrs.get("retry_of")
        if n is not None:
            out[int(n)] = t
    return out


def requeued(t: FrozenTrial, retried: dict[int, FrozenTrial]) -> bool:
    """Whether a FAIL trial was re-queued (its params run again in another trial)."""
    return t.state == TrialState.FAIL and (t.number in retried or bool(t.user_attrs.get("requeued")))


def fail_reason(t: FrozenTrial, retried: dict[int, FrozenTrial]) -> str | None:
    """Why a trial failed: its own record, else the reason its re-queued copy gives, else
    ``interrupted`` (told FAIL by a recovery without a reason); ``None`` unless FAIL."""
    if t.state != TrialState.FAIL:
        return t.user_attrs.get("fail_reason")
    if t.user_attrs.get("fail_reason"):
        return t.user_attrs["fail_reason"]
    retry = retried.get(t.number)
    if retry is not None and retry.user_attrs.get("retry_reason"):
        return f"interrupted: {retry.user_attrs['retry_reason']}; re-queued as trial {retry.number}"
    return "interrupted"


OUTCOMES = ("trained", "infeasible", "invalid", "duplicate", "failed", "running", "waiting", "requeued")
"""What a search trial is, as ``nasseg pareto``, the progress display and the report count it."""
REJECTED = ("infeasible", "invalid", "duplicate")
"""Proposals rejected before training: told to the sampler, never counted against the budget."""


def outcome(t: FrozenTrial, retried: dict[int, FrozenTrial] | None = None) -> str:
    """One of :data:`OUTCOMES`. Optuna's state cannot tell them apart (an infeasible or a
    duplicate proposal is told COMPLETE so that samplers learn from its values and
    constraints; an invalid one FAIL), so the record's ``outcome`` does, with a fallback
    for trials stored before it existed (``constraint_violation``, ``reused_from``, an
    ``invalid network`` reason)."""
    a = t.user_attrs
    if t.state == TrialState.WAITING:
        return "waiting"
    if t.state == TrialState.FAIL and retried is not None and requeued(t, retried):
        return "requeued"
    stored = a.get("outcome")
    if stored in REJECTED:
        return stored
    if a.get("reused_from") is not None:
        return "duplicate"
    if a.get("constraint_violation") or a.get("trained") is False:
        return "infeasible"
    if str(a.get("fail_reason") or "").startswith("invalid network"):
        return "invalid"
    if t.state == TrialState.RUNNING:
        return "running"
    return "trained" if t.state == TrialState.COMPLETE else "failed"


def outcome_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """``{outcome: count}`` over ``trials`` (outcomes with no trial left out), in
    :data:`OUTCOMES` order."""
    retried = retries(trials)
    found = [outcome(t, retried) for t in trials]
    return {o: found.count(o) for o in OUTCOMES if o in found}


def counted(t: FrozenTrial, retried: dict[int, FrozenTrial]) -> bool:
    """Whether a trial counts against the trial budget (all but re-queued and waiting ones)."""
    return t.state != TrialState.WAITING and not requeued(t, retried)


def epochs_trained(t: FrozenTrial) -> int:
    """Epochs this trial actually trained (0 when reused or infeasible; a failed or killed
    trial counts the epochs it validated)."""
    a = t.user_attrs
    if a.get("reused_from") is not None:
        return 0
    if t.state == TrialState.COMPLETE:
        return int(a.get("epochs_run") or len(a.get("history") or [])) if a.get("trained", True) else 0
    return len(a.get("history") or [])


def arch_summary(arch: dict[str, Any] | None) -> str:
    """One line describing a network: blocks, widths, kernels, depths, decoder depths,
    window, skips, attention (parts that are all default are left out).

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

    blocks = [s.get("block", {}) for s in st]
    parts = [f"{uniq([b.get('type', '?') for b in blocks])} x{len(st)}",
             "widths " + "-".join(str(s.get("width", "?")) for s in st)]
    kernels = [b.get("kernel_size") for b in blocks]
    if any(k is not None for k in kernels):
        parts.append("k " + "-".join(str(k) for k in kernels))
    windows = [b["window_size"] for b in blocks if b.get("window_size") is not None]
    if windows:
        parts.append("window " + uniq(windows))
    depths = [s.get("depth", 1) for s in st]
    if any(d != 1 for d in depths):
        parts.append("depths " + "-".join(str(d) for d in depths))
    dec = [s.get("decoder_depth", 1) for s in st[:-1]]
    if any(d != 1 for d in dec):
        parts.append("decoder " + "-".join(str(d) for d in dec))
    parts.append("skip " + uniq([s.get("skip", {}).get("type", "?") for s in st[:-1]] or ["-"]))
    att = [(s.get("skip_attention") or {}).get("type") for s in st[:-1]]
    if any(att):
        parts.append("attention " + uniq([a or "none" for a in att]))
    return " | ".join(parts)


def split_summary(split: dict[str, Any]) -> dict[str, Any]:
    """``{method, seed, n_train, n_val[, n_test], hash}`` of a training run's split.

    ``hash`` identifies the exact case ids of every part (ids compared as strings, so
    ``3`` and ``"3"`` are the same case), so runs on different splits are never paired.
    """
    parts = {k: sorted(map(str, split.get(k) or [])) for k in ("train", "val", "test")}
    if not parts["test"]:
        del parts["test"]
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    return {"method": split.get("method"), "seed": split.get("seed"),
            **{f"n_{k}": len(v) for k, v in parts.items()}, "hash": digest}
