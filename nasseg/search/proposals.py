"""Distinct proposals: each worker and each resume samples from its own random stream,
and a re-proposed architecture does not use up the budget.

Every process used to seed its sampler with the study's seed, so a resumed or parallel
run replayed the first run's random proposals: across six quickstart runs, 12 trials
trained 1, 2, 2, 2, 3 and 8 distinct architectures. Now:

- :func:`worker_seed` derives a worker's sampler seed from the study seed, the worker
  index and the number of trials already stored (so a resume continues with new draws,
  and the same history gives the same seeds: runs stay reproducible);
- a proposal whose architecture was already trained is answered from the record
  (``reused_from``, see :mod:`nasseg.search.objective`; one over a limit is rejected again
  from its cached cost), and :func:`budget_used` counts distinct architectures, not
  proposals; :func:`max_proposals` caps all proposals and :func:`used_up` ends a search
  whose sampler only re-proposes known networks (a small or converged space), whatever
  its budget (trials, trial-epochs or time);
- :func:`distinct_counts` reports both numbers.

Example:
    >>> worker_seed(0, 0, 0) != worker_seed(0, 1, 0) != worker_seed(0, 0, 12)
    True
"""
from __future__ import annotations

import hashlib

from optuna.trial import FrozenTrial, TrialState

from nasseg.store.read import counted, field, retries

__all__ = ["budget_used", "distinct_counts", "max_proposals", "used_up", "worker_seed"]

PROPOSALS_PER_TRIAL = 3
"""At most this many proposals (re-proposed architectures included) per budgeted trial."""
REUSE_STREAK = 10
"""This many re-proposals of known networks in a row end a search (any budget): the
sampler has nothing new to offer in this space."""


def worker_seed(study_seed: int, worker: int, stored_trials: int) -> int:
    """A 31-bit sampler seed from the study seed, the worker and the trials stored so far."""
    digest = hashlib.sha256(f"{study_seed}:{worker}:{stored_trials}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _reused(t: FrozenTrial) -> bool:
    return field(t, "reused_from") is not None


def budget_used(trials: list[FrozenTrial]) -> tuple[int, int]:
    """``(evaluated, proposals)``: distinct architectures proposed (trained, over a limit
    or failed; a trial with no architecture yet counts on its own), and all counted
    proposals. A re-proposal of a known architecture uses up no budget.

    Known race (left open): with several workers, a just-asked trial with no architecture
    yet counts as a new network; if it then turns out to be a duplicate, a worker that
    checked the budget meanwhile may already have stopped, so a search can end one
    network short of its budget (seen with 2 workers on PostgreSQL: 3 of 4)."""
    retried = retries(trials)
    mine = [t for t in trials if counted(t, retried)]
    ids = [field(t, "arch_id") for t in mine]
    return len(set(ids) - {None}) + ids.count(None), len(mine)


def used_up(trials: list[FrozenTrial]) -> bool:
    """Whether the last :data:`REUSE_STREAK` finished proposals all re-proposed known networks."""
    retried = retries(trials)
    done = [t for t in sorted(trials, key=lambda t: t.number)
            if counted(t, retried) and t.state == TrialState.COMPLETE]
    tail = done[-REUSE_STREAK:]
    return len(tail) == REUSE_STREAK and all(_reused(t) for t in tail)


def max_proposals(trials_budget: int) -> int:
    """The most proposals a search with a budget of ``trials_budget`` trials makes."""
    return PROPOSALS_PER_TRIAL * trials_budget


def distinct_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """``{"proposals", "reused", "trained"}``: counted proposals, those answered from an
    earlier trial's record, and the distinct architectures actually trained."""
    retried = retries(trials)
    mine = [t for t in trials if counted(t, retried)]
    trained = {field(t, "arch_id") for t in mine if t.state == TrialState.COMPLETE
               and field(t, "trained") is not False and not _reused(t)} - {None}
    return {"proposals": len(mine), "reused": sum(_reused(t) for t in mine), "trained": len(trained)}
