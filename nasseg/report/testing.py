"""Write studies in nasseg's storage format from values you give: for tests of the report
and of the statistics, and for anyone checking that their own study reads back.

These only *store* what the caller passes (real Optuna storage, real trials through
``optuna.trial.create_trial``); they compute nothing and invent nothing.

Example:
    >>> study = new_study("sqlite:///tmp/s.db", "demo", "search",
    ...                   [("dice", "maximize"), ("macs", "minimize")], reference_point={"dice": 0, "macs": 2e9})
    >>> add_trial(study, [0.8, 1e9], arch=arch, params={"width": 16})   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

__all__ = ["add_trial", "new_study"]


def new_study(storage: str, name: str, kind: str, objectives: list[tuple[str, str]], *,
              config: dict[str, Any] | None = None, reference_point: dict[str, float] | None = None,
              dataset: dict[str, Any] | None = None, command: str = "", versions: dict[str, str] | None = None,
              created: str = "2025-01-01T00:00:00+00:00") -> optuna.Study:
    """Create a study with nasseg's study-level ``user_attrs``."""
    study = optuna.create_study(study_name=name, storage=storage, directions=[d for _, d in objectives])
    attrs = {"nasseg_kind": kind, "config": config or {}, "dataset": dataset or {},
             "objectives": [{"name": n, "direction": d} for n, d in objectives],
             "versions": versions or {}, "command": command, "created": created}
    if reference_point is not None:
        attrs["reference_point"] = reference_point
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    return study


def _distribution(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str) or value is None:
        return CategoricalDistribution([value])
    if isinstance(value, int):
        return IntDistribution(min(value, 0), max(value, 1))
    return FloatDistribution(min(float(value), 0.0), max(float(value), 1.0))


def add_trial(study: optuna.Study, values: list[float] | None, *, state: TrialState = TrialState.COMPLETE,
              params: dict[str, Any] | None = None, distributions: dict[str, Any] | None = None,
              **user_attrs: Any) -> optuna.trial.FrozenTrial:
    """Store one finished trial with the given values, params and ``user_attrs``.

    Args:
        study: from :func:`new_study`.
        values: objective values (``None`` for FAIL/PRUNED trials).
        state: the trial state.
        params: searched parameters; their distributions default to ones that contain them,
            or pass ``distributions`` (needed when categorical choices must be shared).
        **user_attrs: ``arch``, ``arch_id``, ``cost``, ``history``, ``per_case``, ...
    """
    params = params or {}
    dists = distributions or {k: _distribution(v) for k, v in params.items()}
    trial = optuna.trial.create_trial(state=state, values=values, params=params, distributions=dists,
                                      user_attrs=user_attrs)
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1]
