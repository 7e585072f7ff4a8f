"""Multi-objective regularized evolution (MOREA).

Real, Aggarwal, Huang, Le, "Regularized evolution for image classifier architecture search"
(AAAI 2019): keep the last ``P`` evaluated networks (the oldest ages out), pick a parent as
the best of ``S`` of them drawn at random, evaluate a one-parameter mutation of it. The
multi-objective form follows Syne Tune's ``MultiObjectiveRegularizedEvolution``
(Schmucker et al. 2021): "best" is by non-dominated sorting, ties within a front by NSGA-II
crowding distance (:func:`nasseg.search.mofidelity.priority`, the order MO-ASHA's rungs use).

Here the population is the last ``P`` feasible results by trial number (so it is rebuilt
from the study: a resumed or parallel search evolves the same population); until it holds
``P``, proposals are random unknown configurations (after the enqueued ``initial_archs``).
A child that is already known is not proposed: the next unknown mutation of the parent, or
another tournament, or else a random unknown configuration.

Example:
    >>> sampler = MOREASampler(population_size=10, sample_size=3, seed=0)
"""
from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nasseg.search.mofidelity import priority
from nasseg.search.strategies.base import History, PlannedSampler

TOURNAMENTS = 10
"""Tournaments tried before a random configuration replaces a child (all parents exhausted)."""


class MOREASampler(PlannedSampler):
    """Regularized evolution with a non-dominated tournament (see the module docstring).

    Args:
        population_size: ``P``, the networks kept (default 20: a fifth of a 100-network budget).
        sample_size: ``S``, the tournament size (default 5).
        seed: seed of the random choices.
    """

    def __init__(self, population_size: int = 20, sample_size: int = 5, seed: int | None = None) -> None:
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(f"MOREA needs population_size >= 2 and 1 <= sample_size <= population_size, "
                             f"got {population_size} and {sample_size}")
        super().__init__(seed)
        self.population_size, self.sample_size = population_size, sample_size

    def propose(self, study: optuna.Study, trial: FrozenTrial, hist: History) -> dict[str, Any] | None:
        if len(hist.results) < self.population_size:
            return self.random_plan(hist)
        population = list(range(len(hist.results) - self.population_size, len(hist.results)))
        for _ in range(TOURNAMENTS):
            drawn = self._rng.choice(population, size=self.sample_size, replace=False)
            parent = hist.results[int(drawn[priority(hist.points[drawn])[0]])]
            children = self.mutants(parent, hist)
            if children:
                return children[int(self._rng.randint(len(children)))]
        return self.random_plan(hist)
