"""Multi-objective architecture search: declarative spaces and studies, Optuna studies that
survive crashes, Pareto-aware early stopping, and a Ray Tune backend.

The pipeline of one trial (:mod:`nasseg.search.objective`): sample a network from the
space, validate it, count its cost (cached), record it untrained if it breaks a
constraint, reuse the result of an identical network trained under the same settings,
otherwise train it with the stopping rule of :mod:`nasseg.search.stopping`; everything
goes into the study store (:mod:`nasseg.store` documents the stored records).

Names are imported on first use, so that reading a study config does not import torch.

Example:
    >>> from nasseg.search import run_search, open_result, front_table
    >>> run_search("studies/quickstart.yaml")                       # doctest: +SKIP
    >>> front_table(open_result("studies/quickstart.yaml"))          # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "dominates": "nasseg.store.pareto", "hypervolume": "nasseg.store.pareto",
    "normalised_hypervolume": "nasseg.store.pareto", "pareto_indices": "nasseg.store.pareto",
    "OBJECTIVES": "nasseg.store.objectives",
    "export_trial": "nasseg.search.results", "front_table": "nasseg.search.results",
    "front_trials": "nasseg.search.results", "hv_curve": "nasseg.search.results",
    "open_result": "nasseg.search.results", "trial_table": "nasseg.search.results",
    "run_search": "nasseg.search.runner",
    "Constraints": "nasseg.search.space", "SearchSpace": "nasseg.search.space",
    "load_space": "nasseg.search.space_parse", "parse_space": "nasseg.search.space_parse",
    "Curve": "nasseg.search.stopping", "ParetoStopper": "nasseg.search.stopping",
    "dominators": "nasseg.search.stopping", "should_stop": "nasseg.search.stopping",
    "StudyConfig": "nasseg.search.study", "load_study_config": "nasseg.search.study",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'nasseg.search' has no attribute '{name}'")
    return getattr(importlib.import_module(_WHERE[name]), name)
