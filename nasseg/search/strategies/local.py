"""Multi-objective local search around the current non-dominated front.

White, Nolen, Savani, "Local search is state of the art for neural architecture search
benchmarks" (2020; UAI 2021 as "Exploring the loss landscape in neural architecture
search"): hill-climbing over one-operation changes from the best architecture found, with
random restarts at a local optimum, matches or beats BANANAS, REA and BOHB on
NAS-Bench-101/201 at small budgets. Its multi-objective form here replaces "the best
architecture" by the non-dominated front (the Pareto local search of Paquete, Chiarandini
and Stützle 2004):

1. fewer than ``n_startup_trials`` results in the study, or none since the last restart: a
   random unknown configuration (the study's enqueued ``initial_archs`` run before the
   sampler is asked and count as results);
2. otherwise the front of the results since the last restart; a front member drawn
   uniformly among those with unknown one-parameter mutations, and one of these drawn
   uniformly (a new result that joins the front moves the search: first-improvement hill
   climbing, one front at a time);
3. every front member's neighbourhood known (a local optimum): restart, i.e. forget the
   results so far for the choice of parents and propose a random unknown configuration.

With one objective the front is the best result, which is White et al.'s local search
(first-improvement variant). The restart point is kept in the sampler object, so a resumed
search climbs from the whole study's front again.

Example:
    >>> study = optuna.create_study(directions=["maximize", "minimize"], sampler=LocalSearchSampler(seed=0))
    >>> study.optimize(lambda t: (t.suggest_int("x", 0, 9), t.suggest_int("y", 0, 9)), n_trials=20)
"""
from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nasseg.search.strategies.base import History, PlannedSampler


class LocalSearchSampler(PlannedSampler):
    """Pareto local search with random restarts (see the module docstring).

    Args:
        n_startup_trials: random configurations before the first climb (default 10, as the
            predictor's random start; 1 is White et al.'s single random start).
        seed: seed of the random choices.
    """

    def __init__(self, n_startup_trials: int = 10, seed: int | None = None) -> None:
        super().__init__(seed)
        self.n_startup_trials = max(1, n_startup_trials)
        self._since = 0

    def propose(self, study: optuna.Study, trial: FrozenTrial, hist: History) -> dict[str, Any] | None:
        region = [i for i, t in enumerate(hist.results) if t.number >= self._since]
        if region and len(hist.results) >= self.n_startup_trials:
            front = hist.front(region)
            for k in self._rng.permutation(len(front)):
                moves = self.mutants(hist.results[front[k]], hist)
                if moves:
                    return moves[int(self._rng.randint(len(moves)))]
            self._since = trial.number
        return self.random_plan(hist)
