"""Writing one trial's record, through Optuna's public trial API only.

:class:`TrialWriter` wraps the ``optuna.Trial`` a process asked for (``study.ask()``):
fields are checked against :class:`~nasseg.store.records.TrialRecord` (a typo is an
error, not a silently new attribute), made JSON-safe and stored with
``Trial.set_user_attr``; constraints go through ``Trial.set_constraint``, where Optuna's
samplers read them (``FrozenTrial.constraints``).

:func:`add_trial` stores a finished trial from given values (tests of the readers and
the report, and anyone checking that their own study reads back).

Example:
    >>> w = TrialWriter(study.ask())
    >>> w.set(arch_id="a1b2", seed=0)
    >>> w.constrain({"params": -1200.0})
"""
from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from nasseg.store.read import field
from nasseg.store.records import TRIAL_FIELDS, json_safe

__all__ = ["TrialWriter", "add_trial"]


class TrialWriter:
    """Writes the record of one running trial (see the module docstring)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.trial.params)

    def set(self, **fields: Any) -> None:
        """Store record fields (``KeyError`` for a name that is no TrialRecord field)."""
        for key, value in fields.items():
            if key not in TRIAL_FIELDS:
                raise KeyError(f"'{key}' is not a TrialRecord field")
            self.trial.set_user_attr(key, json_safe(value))

    def get(self, key: str) -> Any:
        """A stored record field, ``None`` when unset (``KeyError`` for a name that is no field)."""
        return field(self.trial, key)

    def constrain(self, values: dict[str, float]) -> None:
        """Store constraint values (``value - limit`` per limit; feasible when all <= 0). A
        value already stored is not set again (Optuna warns and ignores it: a Ray trial is
        screened in the driver and again in its worker)."""
        stored = self.trial.constraints
        for key, value in values.items():
            if key not in stored:
                self.trial.set_constraint(key, float(value))


def _distribution(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str) or value is None:
        return CategoricalDistribution([value])
    if isinstance(value, int):
        return IntDistribution(min(value, 0), max(value, 1))
    return FloatDistribution(min(float(value), 0.0), max(float(value), 1.0))


def add_trial(study: optuna.Study, values: list[float] | None, *, state: TrialState = TrialState.COMPLETE,
              params: dict[str, Any] | None = None, distributions: dict[str, Any] | None = None,
              constraints: dict[str, float] | None = None, **fields: Any) -> optuna.trial.FrozenTrial:
    """Store one finished trial with the given values, params, constraints and record fields.

    Stored with Optuna's public ``create_trial``/``FrozenTrial.set_constraint``/``add_trial``,
    so it reads back exactly as a run's trial; nothing is computed or invented here.

    Args:
        study: a study (e.g. from :func:`nasseg.store.testing.new_study`).
        values: objective values (``None`` for FAIL/PRUNED trials).
        state: the trial state.
        params: searched parameters; their distributions default to ones that contain them,
            or pass ``distributions`` (needed when categorical choices must be shared).
        constraints: constraint values (``value - limit``).
        **fields: :class:`~nasseg.store.records.TrialRecord` fields (``arch``, ``cost``, ...).
    """
    params = params or {}
    dists = distributions or {k: _distribution(v) for k, v in params.items()}
    unknown = set(fields) - TRIAL_FIELDS
    if unknown:
        raise KeyError(f"{sorted(unknown)} are not TrialRecord fields")
    trial = optuna.trial.create_trial(state=state, values=values, params=params, distributions=dists,
                                      user_attrs=json_safe(fields))
    for key, value in (constraints or {}).items():
        trial.set_constraint(key, float(value))
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1]
