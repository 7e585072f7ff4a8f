"""The Optuna sampler a study names.

Constraints need no wiring: every trial stores its constraint values before it is told,
as Optuna 5's ``constraints:<name>`` system attrs (what ``Trial.set_constraint`` writes;
``constraints_func`` is deprecated in Optuna 5), and NSGA-II, NSGA-III, TPE and GP read
them from ``FrozenTrial.constraints``, so over-budget networks teach the sampler without
being trained. Random and grid samplers ignore constraints.

Example:
    >>> make_sampler(cfg, space).__class__.__name__
    'NSGAIISampler'
"""
from __future__ import annotations

import optuna

from nasseg.search.space import SearchSpace
from nasseg.search.strategies import LocalSearchSampler, MOREASampler, PredictorSampler
from nasseg.search.study import StudyConfig


class GridSearch(optuna.samplers.GridSampler):
    """Optuna's GridSampler without its ``study.stop()`` (which only works inside
    ``study.optimize``); the nasseg workers stop when :meth:`is_exhausted`."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        return None


def exhausted(study: optuna.Study) -> bool:
    """True when a grid study has visited every grid point."""
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def make_sampler(cfg: StudyConfig, space: SearchSpace, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Build the sampler of ``cfg.sampler`` (seeded with ``seed`` or the study's seed)."""
    s = cfg.sampler
    seed = cfg.seed if seed is None else seed
    trials = cfg.budget.trials or 60
    pop = s.population_size or max(4, min(50, trials // 3))
    startup = {} if s.n_startup_trials is None else {"n_startup_trials": s.n_startup_trials}
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=seed)
    if s.name == "nsga3":
        return optuna.samplers.NSGAIIISampler(population_size=pop, seed=seed)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=cfg.workers > 1, **startup)
    if s.name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **startup)
    if s.name == "grid":
        return GridSearch(space.grid(), seed=seed)
    if s.name == "local":
        return LocalSearchSampler(seed=seed, **startup)
    if s.name == "morea":
        size = s.population_size or 20
        return MOREASampler(population_size=size, sample_size=max(1, min(5, size // 4)), seed=seed)
    if s.name == "predictor":
        return PredictorSampler(seed=seed, **startup)
    return optuna.samplers.RandomSampler(seed=seed)
