"""Proposals and the budget: only trained networks use it up.

A search proposes networks; before one is trained it is screened
(:func:`nasseg.search.objective.screen`): an invalid network, one over a limit of the
space (params/MACs counted on the meta device, cached) and one already trained under
the same settings are *rejected*: recorded with their ``outcome`` (``invalid``,
``infeasible``, ``duplicate``), told to the sampler (an infeasible one with its
constraint values, so constrained samplers learn from it) and **not** counted against
``budget.trials``, which counts trained networks. Every worker and every resume samples
from its own random stream (:func:`worker_seed`: the study seed, the worker index and
the number of trials already stored; the same history gives the same seeds).

A search whose sampler keeps proposing rejected networks ends by itself
(:func:`used_up`): after :data:`REUSE_STREAK` proposals in a row of networks it had
already proposed (nothing new left), or after at least :data:`REJECT_STREAK` rejections in a row, and at least
ten times the proposals one trained network had cost before them (so a space where 1 in
20 proposals is feasible is not stopped by chance). A space whose feasible fraction is tiny
is refused before the search starts (:mod:`nasseg.search.feasibility`).

Example:
    >>> worker_seed(0, 0, 0) != worker_seed(0, 1, 0) != worker_seed(0, 0, 12)
    True
"""
from __future__ import annotations

import hashlib

from optuna.trial import FrozenTrial, TrialState

from nasseg.search.feasibility import DRAWS
from nasseg.store.read import REJECTED, counted, field, outcome, retries

__all__ = ["budget_used", "distinct_counts", "used_up", "worker_seed"]

REJECT_STREAK = 50
"""At least this many rejected proposals in a row end a search (any budget)."""
REUSE_STREAK = 10
"""This many proposals in a row of networks proposed before end a search (any budget)."""


def worker_seed(study_seed: int, worker: int, stored_trials: int) -> int:
    """A 31-bit sampler seed from the study seed, the worker and the trials stored so far."""
    digest = hashlib.sha256(f"{study_seed}:{worker}:{stored_trials}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _finished(trials: list[FrozenTrial]) -> list[tuple[FrozenTrial, str]]:
    retried = retries(trials)
    return [(t, outcome(t, retried)) for t in sorted(trials, key=lambda t: t.number)
            if counted(t, retried)]


def budget_used(trials: list[FrozenTrial]) -> tuple[int, int]:
    """``(trained, proposals)``: distinct networks trained or in training (a just-asked
    trial not yet screened counts as one), and all counted proposals. Rejected proposals
    (:data:`~nasseg.store.read.REJECTED`) use up no budget."""
    seen = _finished(trials)
    live = [t for t, o in seen if o not in REJECTED]
    ids = [field(t, "arch_id") for t in live]
    return len(set(ids) - {None}) + ids.count(None), len(seen)


def used_up(trials: list[FrozenTrial]) -> bool:
    """Whether the sampler has stopped finding new feasible networks: its last
    :data:`REUSE_STREAK` proposals were all networks it had proposed before (a small or
    converged space), or the trailing run of rejected proposals is at least
    :data:`REJECT_STREAK` long and at least ten times the proposals per trained network
    before it (before any network was trained: ten times the feasibility estimate's draws)."""
    seen = [(t, o) for t, o in _finished(trials) if t.state != TrialState.RUNNING]
    ids: set[str] = set()
    repeats = []
    for t, _ in seen:
        aid = field(t, "arch_id")
        repeats.append(aid is not None and aid in ids)
        ids.add(aid)
    if len(repeats) >= REUSE_STREAK and all(repeats[-REUSE_STREAK:]):
        return True
    streak = 0
    for _, o in reversed(seen):
        if o not in REJECTED:
            break
        streak += 1
    accepted = sum(o not in REJECTED for _, o in seen)
    if not accepted:  # the feasibility check found >= 1 feasible network in DRAWS draws
        return streak >= 10 * DRAWS
    return streak >= max(REJECT_STREAK, 10 * (len(seen) - streak) / accepted)


def distinct_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """``{"proposals", "trained", "infeasible", "invalid", "duplicate"}``: counted
    proposals, distinct networks trained, and the rejected ones by kind."""
    seen = _finished(trials)
    trained = {field(t, "arch_id") for t, o in seen if o == "trained"} - {None}
    return {"proposals": len(seen), "trained": len(trained),
            **{k: sum(o == k for _, o in seen) for k in REJECTED}}
