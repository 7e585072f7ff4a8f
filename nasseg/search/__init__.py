"""Multi-objective architecture search: declarative spaces and studies, Optuna studies that
survive crashes, Pareto-aware early stopping, and a Ray Tune backend.

The pipeline of one trial (:mod:`nasseg.search.objective`): sample a network from the
space, validate it, count its cost (cached), record it untrained if it breaks a
constraint, reuse the result of an identical network trained under the same settings,
otherwise train it with the stopping rule of :mod:`nasseg.search.stopping`; everything
goes into the Optuna storage (:mod:`nasseg.search.setup` documents the study attributes).

Example:
    >>> from nasseg.search import run_search, open_result, front_table
    >>> run_search("studies/quickstart.yaml")                       # doctest: +SKIP
    >>> front_table(open_result("studies/quickstart.yaml"))          # doctest: +SKIP
"""
from nasseg.search.pareto import dominates, hypervolume, normalised_hypervolume, pareto_indices
from nasseg.search.results import (export_trial, front_table, front_trials, hv_curve, open_result,
                                   trial_table)
from nasseg.search.runner import run_search
from nasseg.search.space import Constraints, SearchSpace
from nasseg.search.space_parse import load_space, parse_space
from nasseg.search.stopping import Curve, ParetoStopper, dominators, should_stop
from nasseg.search.study import OBJECTIVES, StudyConfig, load_study_config

__all__ = [
    "OBJECTIVES", "Constraints", "Curve", "ParetoStopper", "SearchSpace", "StudyConfig", "dominates",
    "dominators", "export_trial", "front_table", "front_trials", "hv_curve", "hypervolume",
    "load_space", "load_study_config", "normalised_hypervolume", "open_result", "parse_space",
    "pareto_indices", "run_search", "should_stop", "trial_table",
]
