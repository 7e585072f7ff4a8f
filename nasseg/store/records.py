"""The stored format of a study: typed, versioned study and trial records.

A nasseg study is an Optuna study whose ``user_attrs`` hold a :class:`StudyRecord` and
whose trials' ``user_attrs`` hold :class:`TrialRecord` fields. Only :mod:`nasseg.store`
reads and writes them. Format history:

- 1: written before the store existed (no ``format`` key). Trials held their constraint
  values also as a ``constraints`` user attr; a trial failed by recovery had
  ``fail_reason``/``requeued`` attrs. Read as is.
- 2 (:data:`FORMAT`): ``format: 2``; constraints only where Optuna reads them
  (``Trial.set_constraint``, read back as ``FrozenTrial.constraints``); objective names
  set with ``study.set_metric_names``; a trial failed by recovery is told FAIL and its
  re-queued copy holds ``retry_of`` and ``retry_reason``; trained trials record their
  best ``checkpoint`` and their ``metrics`` (validation and, when evaluated, test).

A study in any other format is refused with :class:`StoreFormatError` naming it.

Example:
    >>> rec = StudyRecord(nasseg_kind="ablation", objectives=[{"name": "dice", "direction": "maximize"}])
    >>> rec.format, rec.objective_names
    (2, ['dice'])
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nasseg.errors import ConfigError
from nasseg.jsonsafe import json_safe

FORMAT = 2
"""The format this nasseg writes."""
READABLE = (1, 2)
"""The formats this nasseg reads."""

__all__ = ["FORMAT", "READABLE", "ObjectiveRef", "StoreFormatError", "StudyRecord", "TrialRecord",
           "json_safe"]


class StoreFormatError(ConfigError):
    """A study written in a format this nasseg cannot read."""


class _Record(BaseModel):
    # extra="allow": a field a newer nasseg of the same format adds is kept, not an error
    model_config = ConfigDict(extra="allow")


class ObjectiveRef(BaseModel):
    """An objective as stored: its name and direction, in the order of ``trial.values``."""

    name: str
    direction: Literal["maximize", "minimize"]


class StudyRecord(_Record):
    """``study.user_attrs`` of a nasseg study.

    Attributes:
        nasseg_kind: ``search`` or ``ablation``.
        format: the stored format (see the module docstring).
        objectives: in the order of ``trial.values``.
        config: the study config as run (YAML dict).
        dataset: the resolved ``DataConfig``.
        versions: package versions (:func:`nasseg.versions.versions`).
        command: the command line that created the study.
        created: ISO time of creation.
        space, reference_point, ideal_point, normalisation, units, input_shape, limits,
        provenance: what produced the study (:func:`nasseg.versions.provenance`).
        confirm: the results of ``nasseg confirm`` (:mod:`nasseg.search.confirm`).
        train, train_key: a search's space YAML, hypervolume bounds (see
            :mod:`nasseg.store.pareto`), objective units, the input at which costs are
            counted, the space's limits, the TrainConfig (device-free) and its hash.
    """

    nasseg_kind: Literal["search", "ablation"]
    format: int = FORMAT
    objectives: list[ObjectiveRef]
    config: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    command: str = ""
    created: str = ""
    space: dict[str, Any] | None = None
    reference_point: dict[str, float] | None = None
    ideal_point: dict[str, float] | None = None
    normalisation: str | None = None
    units: dict[str, str] = Field(default_factory=dict)
    input_shape: list[int] | None = None
    limits: dict[str, float] = Field(default_factory=dict)
    train: dict[str, Any] | None = None
    train_key: str | None = None
    provenance: dict[str, Any] | None = None
    data_identity: str | None = None
    """The dataset's content identity when the study was created
    (:func:`nasseg.versions.data_hash`); a resume on changed data is refused."""
    confirm: dict[str, Any] | None = None

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def attrs(self) -> dict[str, Any]:
        """The ``user_attrs`` to store (unset optional fields left out)."""
        return json_safe(self.model_dump(mode="json", exclude_none=True))


class TrialRecord(_Record):
    """``trial.user_attrs`` of one trial (search or ablation run); every field optional.

    Search trials: ``seed``, ``train_key``, ``arch``/``arch_id``, ``cost`` (a
    :class:`nasseg.cost.Cost` dict), ``constraint_violation`` and ``trained: False`` when
    over a limit, ``reused_from`` when a duplicate, ``initial_arch``, ``owner``/``worker``/
    ``heartbeat`` and ``progress`` (``{epoch, step, steps}``, the last position written
    while it trained) while running, ``retry_of``/``retry_reason`` when re-queued
    (``run_alone`` when it must train alone on its device, after running out of memory
    beside other trials; see :mod:`nasseg.search.admission`).
    Trained runs (both kinds): ``history`` (per-epoch metrics), ``best`` (best validation
    metrics), ``metrics`` (``{"val": {...}, "test": {...}}`` as the training result holds
    them), ``best_epoch``, ``epochs_run``, ``stopped_early``, ``stop_reason``, ``split``
    (see :func:`nasseg.store.read.split_summary`), ``per_case`` (validation cases),
    ``test_per_case`` (test cases, scored once with the best-by-val weights), ``train_seconds``,
    ``checkpoint`` (path of the best weights), ``resumed`` (continued from a killed run's
    ``checkpoint_latest.pt``) or ``resume_refused`` (why a killed run was trained anew).
    Failed: ``fail_reason``. ``outcome``: what
    became of a search proposal: ``trained``, or rejected before training as ``infeasible``
    (over a limit), ``invalid`` (not a valid network) or ``duplicate`` (answered from the
    record of the same network trained earlier); only trained networks use up the budget.
    Ablation runs: ``variant``, ``factors``, ``is_baseline``.
    """

    seed: int | None = None
    train_key: str | None = None
    arch: dict[str, Any] | None = None
    arch_id: str | None = None
    cost: dict[str, Any] | None = None
    constraints: dict[str, float] | None = None  # format 1 only; format 2: FrozenTrial.constraints
    constraint_violation: str | None = None
    trained: bool | None = None
    reused_from: int | None = None
    initial_arch: str | None = None
    owner: dict[str, Any] | None = None
    worker: int | str | None = None
    heartbeat: str | None = None
    progress: dict[str, int] | None = None
    retry_of: int | None = None
    retry_reason: str | None = None
    run_alone: bool | None = None
    resolved: dict[str, Any] | None = None  # the run as trained: nasseg.train.resolved.ResolvedRun.to_dict()
    requeued: bool | None = None  # format 1 only; format 2 derives it from retry_of
    history: list[dict[str, Any]] | None = None
    best: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    stopped_early: bool | None = None
    stop_reason: str | None = None
    split: dict[str, Any] | None = None
    per_case: list[dict[str, Any]] | None = None
    per_case_split: str | None = None  # format 1 only: "test" when per_case held the test cases
    test_per_case: list[dict[str, Any]] | None = None
    train_seconds: float | None = None
    checkpoint: str | None = None
    resumed: bool | None = None
    resume_refused: str | None = None
    fail_reason: str | None = None
    outcome: Literal["trained", "infeasible", "invalid", "duplicate"] | None = None
    """What became of a search proposal (see :func:`nasseg.store.read.outcome`)."""
    screen_seconds: float | None = None
    """Wall time of the proposal's screening (build, cost counting, limits, duplicate check)."""
    variant: str | None = None
    factors: dict[str, Any] | None = None
    is_baseline: bool | None = None


TRIAL_FIELDS = frozenset(TrialRecord.model_fields)
