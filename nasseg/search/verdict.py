"""Why a search produced nothing: the summary behind a non-zero exit.

A search whose budget ended with no feasible COMPLETE trial (every candidate over a
constraint, every training failed) used to exit 0 with an empty front and no word. Now
:func:`search_verdict` says how many trials there were, how many went over which limit
and the most common failure reasons, and ``nasseg search`` exits with code 3.

Example:
    >>> search_verdict(study)  # doctest: +SKIP
    'no feasible trial: 12 trials, 0 complete and feasible; over a limit: 9 x params (limit 0.05 M) ...'
"""
from __future__ import annotations

import re
from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasseg.store import constraints, fail_reason, feasible, retries, study_record

__all__ = ["search_verdict"]


def _short(reason: str) -> str:
    """A failure reason without its numbers, so that equal causes count together."""
    reason = reason.split(";")[0]
    return re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "N", reason)[:120]


def search_verdict(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> str | None:
    """``None`` when the study has a feasible COMPLETE trial, else one line saying why not.

    The line names: how many trials ran and finished, how many went over each constraint
    (with its limit), the three most common failure reasons, and what to change.
    """
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    if any(t.state == TrialState.COMPLETE and feasible(t) for t in trials):
        return None
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)]
    if not done:
        return "no trial finished (the budget or the time limit ended the search first); raise budget.trials or " \
               "budget.time_s"
    record = study_record(study)
    limits = record.limits if record is not None else {}
    over: Counter[str] = Counter()
    for t in done:
        for name, value in constraints(t).items():
            if value > 0:
                over[name] += 1
    retried = retries(trials)
    failed = Counter(_short(fail_reason(t, retried) or "no reason recorded")
                     for t in done if t.state == TrialState.FAIL)
    complete = sum(t.state == TrialState.COMPLETE for t in done)
    parts = [f"no feasible trial: {len(done)} trials finished, {complete} complete, "
             f"{sum(failed.values())} failed, 0 feasible"]
    if over:
        parts.append("over a limit: " + ", ".join(
            f"{n} x {name}" + (f" (limit {limits[name]:g})" if name in limits else "") for name, n in over.most_common()))
    if failed:
        parts.append("most common failures: " + ", ".join(f"{n} x '{r}'" for r, n in failed.most_common(3)))
    fixes = []
    if over:
        fixes.append("loosen the constraints or narrow the space to smaller networks")
    if failed:
        fixes.append("see every reason with `nasseg pareto STUDY --all`")
    return "; ".join(parts) + ("; " + " and ".join(fixes) if fixes else "")
