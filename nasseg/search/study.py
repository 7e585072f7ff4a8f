"""The study YAML: what to search, on which data, for which objectives, with which budget.

Example (``studies/quickstart.yaml``, which keeps the defaults below)::

    name: quickstart
    data: {kind: synthetic, size: 48, synthetic: {task: context, n_cases: 200}, split: {val_fraction: 0.25, test_fraction: 0.15}}
    space: search_spaces/quickstart_2d.yaml
    objectives: [dice, macs, params]
    budget: {trials: 14, time_s: 150}
    epochs: 8
    train: {batch_size: 8, lr: 0.005}
    seed: 0
    initial_archs: [studies/arch/quickstart_start.yaml]

Defaults (a study that names neither): the predictor strategy with MO-ASHA early stopping
(``sampler: predictor``, ``early_stopping: {rule: moasha, r_min: 1, eta: 2}``). The sampler
was chosen on NAS-Bench-201 (``reports/bench/search/nb201/``: 3 objectives, 100 seeds, budget
100 networks, primary endpoint HV at 50 networks, Holm over every strategy): the only strategy
that reached random search's final hypervolume with at most half the budget on both CIFAR-10
and CIFAR-100 (after 28 and 36 networks). MO-ASHA was chosen on nasseg's recorded segmentation
table (``reports/bench/search/summary.md``: random + MO-ASHA 1.06x random search at half the
budget, Holm p = 4e-6), where predictor + MO-ASHA tied random at half the budget and led at
the full budget (``reports/bench/search/new_strategies/``).

The ``data`` section is the one data schema of train, search and ablate
(:func:`nasseg.data.config.data_section`; the older ``{source: X, ...}`` is still read).
Relative paths (``space``, a data folder, ``output_dir``) are read relative to the
current directory, then to the study file's folder. The objectives a study can name,
their directions and units are those of the registry, :mod:`nasseg.store.objectives`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from nasseg.configio import Strict, validate
from nasseg.errors import ConfigError, did_you_mean
from nasseg.store.objectives import OBJECTIVES
from nasseg.store.studyfile import StudyBase, read_study_file
from nasseg.train.config import TrainConfig

SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random", "grid", "local", "morea", "predictor")


class SamplerConfig(Strict):
    """Which Optuna sampler proposes the architectures.

    Attributes:
        name: ``predictor`` (BANANAS-style, the default: see the module docstring), ``random``,
            ``nsga2``, ``nsga3``, ``tpe``, ``gp``, ``grid``, or one of the other strategies of
            :mod:`nasseg.search.strategies`: ``local`` (local search around the front),
            ``morea`` (regularized evolution).
        population_size: NSGA-II/III generation size (Optuna's default 50 is too large for
            small budgets; ``None`` = ``max(4, min(50, trials // 3))``); MOREA's population
            (``None`` = 20).
        n_startup_trials: TPE/GP/predictor random start (``None`` = the sampler's default).
    """

    name: Literal["nsga2", "nsga3", "tpe", "gp", "random", "grid", "local", "morea", "predictor"] = "predictor"
    population_size: int | None = Field(None, ge=2)
    n_startup_trials: int | None = Field(None, ge=0)


class BudgetConfig(Strict):
    """When the study stops: whichever of ``trials``, ``trial_epochs``, ``time_s`` comes first.

    ``trials`` counts every finished trial (complete, infeasible, reused, failed) except
    those re-queued after their worker died. ``trial_epochs`` counts epochs actually
    trained, summed over trials (reused and infeasible trials cost none; a running trial
    counts all its epochs), so early stopping buys more trials. ``time_s`` is the wall
    time of one ``nasseg search`` invocation. Only the start of new trials is stopped:
    a running trial finishes.
    """

    trials: int | None = Field(None, ge=1)
    trial_epochs: int | None = Field(None, ge=1)
    time_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _some(self) -> BudgetConfig:
        if self.trials is None and self.time_s is None and self.trial_epochs is None:
            raise ValueError("give trials, trial_epochs and/or time_s")
        return self


class EarlyStoppingConfig(Strict):
    """The early-stopping rule of a trial.

    Attributes:
        enabled: False trains every trial for all its epochs.
        rule: ``moasha`` (default): MO-ASHA's rung rule of :mod:`nasseg.search.mofidelity`
            (``r_min``, ``eta``); ``pareto``: the Pareto-aware rule of
            :mod:`nasseg.search.stopping` (``warmup_epochs``, ``min_dominators``, ``margin``).
        warmup_epochs: never stop at an epoch below this (pareto).
        min_dominators: stop when at least this many earlier trials (distinct
            architectures) dominate the trial at the same epoch (pareto).
        margin: Dice margin a dominating trial must lead by (absolute, 0..1) (pareto).
        r_min: the first rung (moasha); rungs are ``r_min * eta**k`` below the last epoch.
        eta: keep the top ``1/eta`` at a rung, by non-dominated sorting (moasha).
    """

    enabled: bool = True
    rule: Literal["pareto", "moasha"] = "moasha"
    warmup_epochs: int = Field(2, ge=1)
    min_dominators: int = Field(3, ge=1)
    margin: float = Field(0.01, ge=0, le=1)
    r_min: int = Field(1, ge=1)
    eta: int = Field(2, ge=2)


class ResourcesConfig(Strict):
    """Per-trial resources of the Ray backend (fractional GPUs share one GPU).

    Attributes:
        cpus_per_trial: CPUs Ray reserves for each trial.
        gpus_per_trial: GPUs Ray reserves for each trial (0.5 = two trials share a GPU).
    """

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)


class StudyConfig(StudyBase):
    """A search study (see the module docstring for an example); ``name``, ``description``,
    ``train``, ``storage`` and ``output_dir`` are the :class:`~nasseg.store.studyfile.StudyBase`'s.

    Several trials per device: ``trials_per_device: N`` (``--trials-per-gpu N``) runs N
    trials at once on each of ``device`` (so at least N x devices workers), admitted by
    their estimated memory (see :mod:`nasseg.search.admission`); ``device_memory_mb``
    sets the memory budget per device (default: 90% of a GPU's memory; on the CPU, no
    memory limit unless set).

    Attributes:
        data: the dataset: a folder, ``synthetic``, a data-config YAML, or a
            :class:`~nasseg.data.config.DataConfig` mapping.
        space: the search-space YAML (relative to the current directory, then to the study file).
        objectives: registered objectives to optimise (:mod:`nasseg.store.objectives`); ``dice``
            is required.
        sampler: the sampler proposing architectures (a name or a mapping).
        budget: when the search stops.
        epochs: training epochs per trial.
        seed: seeds the sampler and every trial's training.
        initial_archs: presets or architecture YAMLs evaluated first (each must lie in the space).
        early_stopping: the rule that stops unpromising trials before their last epoch.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``auto``, or a list of devices (one worker group each).
        workers: trials run in parallel.
        trials_per_device: trials at once on each device, admitted by estimated memory.
        device_memory_mb: memory budget per device for that admission.
        resources: per-trial CPUs and GPUs of the Ray backend.
        reference_point: the hypervolume's reference value per objective (default: 0 for
            Dice, the space's limit for a cost).
    """

    KIND: ClassVar[str] = "search"
    data: str | dict[str, Any] = Field(default_factory=dict)
    space: str
    objectives: list[str] = Field(default_factory=lambda: ["dice", "macs", "params"], min_length=1)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    budget: BudgetConfig
    epochs: int = Field(ge=1)
    seed: int = 0
    initial_archs: list[str] = Field(default_factory=list)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    device: str | list[str] = "cpu"
    workers: int = Field(1, ge=1)
    trials_per_device: int = Field(1, ge=1)
    device_memory_mb: float | None = Field(None, gt=0)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    reference_point: dict[str, float] = Field(default_factory=dict)

    @field_validator("sampler", mode="before")
    @classmethod
    def _sampler(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective '{name}'{did_you_mean(name, OBJECTIVES)}; "
                                 f"expected some of: {', '.join(OBJECTIVES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"{v} names an objective twice")
        if "dice" not in v:
            raise ValueError("must include 'dice' (the quality objective)")
        return v

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in ("epochs", "seed", "device"):
            if key in v:
                raise ValueError(f"'{key}' is set at the top level of the study, not under train")
        return v

    @field_validator("reference_point")
    @classmethod
    def _ref(cls, v: dict[str, float]) -> dict[str, float]:
        for key in v:
            if key not in OBJECTIVES:
                raise ValueError(f"unknown objective '{key}'{did_you_mean(key, OBJECTIVES)}")
        return v

    def train_config(self, where: str = "study") -> TrainConfig:
        """The typed :class:`~nasseg.train.TrainConfig` of ``train`` with the study's
        ``epochs`` and ``seed`` (no device: workers choose theirs at run time).

        Raises:
            ConfigError: naming ``where``, ``train`` and the field.
        """
        return TrainConfig.build({**self.train, "epochs": self.epochs, "seed": self.seed}, where=f"{where}: train")

    @property
    def devices(self) -> list[str]:
        return [self.device] if isinstance(self.device, str) else list(self.device)

    def directions(self) -> list[str]:
        return [OBJECTIVES[o].direction for o in self.objectives]

    def objective_dicts(self) -> list[dict[str, str]]:
        """``[{name, direction}]`` in value order (stored as the study's ``objectives``)."""
        return [{"name": o, "direction": OBJECTIVES[o].direction} for o in self.objectives]


def resolve_path(value: str, study_file: Path | None, what: str) -> Path:
    """A path from a study: as given if it exists, else next to the study file.

    Raises:
        ConfigError: neither exists (both tried are named).
    """
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists() or study_file is None:
        return p
    beside = study_file.resolve().parent / p
    if beside.exists():
        return beside
    raise ConfigError(f"{study_file}: {what}: '{value}' not found (looked in {Path.cwd()} and "
                      f"{study_file.resolve().parent})")


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML; errors name the file and the field."""
    raw, where = read_study_file(path)
    cfg = validate(StudyConfig, raw, where)
    cfg.train_config(str(path))  # typed now: a bad training setting fails here, naming the field
    return cfg
