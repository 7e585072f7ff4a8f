"""The ablation study file: YAML -> :class:`AblationConfig`, validated when it is loaded.

Example (``studies/cmunext_skip_ablation.yaml``, shortened)::

    name: cmunext_skip_ablation
    base: cmunext_s                 # a preset name or an ArchConfig YAML (relative to this file)
    design: one_at_a_time           # or full_factorial
    factors:
      skip:
        path: stages.*.skip.type    # any ArchConfig field; '*' = every stage; 'base' swaps the network
        levels: [concat, skip_fusion, irsc]
        baseline: skip_fusion
    seeds: 5                        # training seeds per variant (or a list)
    data: {kind: folder, path: ../shared/data/busi_256, size: 256, split: {seed: 0}}
    train: {epochs: 300}
    stats: {test: wilcoxon}
    profiles:
      cpu: {seeds: 3, data: {size: 64, max_cases: 60}, train: {epochs: 3}}

A profile is deep-merged over the file before validation (``nasseg ablate FILE --profile
cpu``) and gives the study its own name (``NAME-cpu``) unless it sets ``name``, so its
results never mix with the full run's. The data split seed is part of the study: every
variant and every training seed is evaluated on the same held-out cases.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from nasseg.configio import Strict, validate
from nasseg.data.config import DataConfig, canonical_section, data_section
from nasseg.errors import did_you_mean
from nasseg.store.studyfile import StudyBase, deep_merge, read_study_file
from nasseg.train.config import TrainConfig

__all__ = ["AblationConfig", "BootstrapConfig", "FactorConfig", "StatsConfig", "level_label",
           "load_ablation", "deep_merge"]


RESERVED_NAMES = frozenset({
    "variant", "seed", "case_id", "class", "is_baseline", "n_seeds", "n_cases", "dice", "dice_mean",
    "dice_sd", "dice_ci_low", "dice_ci_high", "interval", "reference", "factor", "n_pairs", "mean_diff",
    "diff_ci_low", "diff_ci_high", "test", "statistic", "p_value", "p_holm", "effect_size",
    "effect_measure", "significance", "params", "macs", "trial"})
"""Column names of the tables, which a factor may not take."""


def level_label(value: Any) -> str:
    """A short printable name for a factor level.

    Example:
        >>> [level_label(v) for v in ("irsc", 7, None, {"type": "csab"}, True)]
        ['irsc', '7', 'none', 'csab', 'true']
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict) and isinstance(value.get("type"), str) and len(value) == 1:
        return value["type"]
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


class FactorConfig(Strict):
    """One factor: the field(s) it changes, its levels and its baseline level.

    Attributes:
        path: dotted ArchConfig path (``stages.*.block.kernel_size``), or ``base`` to
            swap the whole base network (levels are then preset names or config files).
            Leave it out to let each level set several fields at once: every level is
            then a mapping of dotted paths to values (``{}`` leaves the base unchanged),
            e.g. ``{stages.*.skip.type: concat, stages.*.decoder_depth: 1}``.
        levels: the values the field takes (at least two).
        labels: names of the levels in tables and plots (default: derived from the values;
            required for path-less levels that set several fields or none).
        baseline: the level every other is compared against, given by label or value
            (default: the first level).
    """

    path: str | None = None
    levels: list[Any] = Field(min_length=2)
    labels: list[str] | None = None
    baseline: Any = None

    @model_validator(mode="after")
    def _check(self) -> FactorConfig:
        if self.labels is not None and len(self.labels) != len(self.levels):
            raise ValueError(f"labels has {len(self.labels)} entries but levels has {len(self.levels)}")
        if self.path is None:
            for i, lv in enumerate(self.levels):
                if not isinstance(lv, dict) or not all(isinstance(k, str) for k in lv):
                    raise ValueError(f"levels.{i}: without 'path', each level is a mapping of dotted "
                                     f"paths to values, got {lv!r}")
            if self.labels is None and any(len(lv) != 1 for lv in self.levels):
                raise ValueError("levels that set several fields (or none) need 'labels'")
        names = self.level_labels()
        if len(set(names)) != len(names):
            raise ValueError(f"levels {names} have duplicate labels; give distinct 'labels'")
        if self.baseline is not None and self.baseline not in names \
                and not any(self.baseline == v for v in self.levels):
            raise ValueError(f"baseline {self.baseline!r} is not one of the levels {names}"
                             + did_you_mean(str(self.baseline), names))
        return self

    def settings(self, level: Any) -> dict[str, Any]:
        """The dotted-path assignments one level makes.

        Example:
            >>> FactorConfig(path="stages.*.width", levels=[8, 16]).settings(16)
            {'stages.*.width': 16}
        """
        return dict(level) if self.path is None else {self.path: level}

    def level_labels(self) -> list[str]:
        """The label of each level, in order."""
        if self.labels:
            return list(self.labels)
        if self.path is None:
            return [level_label(next(iter(lv.values()))) for lv in self.levels]
        return [level_label(v) for v in self.levels]

    def baseline_label(self) -> str:
        """The label of the baseline level."""
        names = self.level_labels()
        if self.baseline is None:
            return names[0]
        if self.baseline in names:
            return str(self.baseline)
        return names[[i for i, v in enumerate(self.levels) if v == self.baseline][0]]


class BootstrapConfig(Strict):
    """Interval settings (the name is historical: intervals now come from the mixed model).

    Attributes:
        n_resamples: unused (kept so that stored studies load).
        confidence: coverage of the intervals.
        seed: unused (kept so that stored studies load).
    """

    n_resamples: int = Field(10_000, ge=100)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    seed: int = 0


class StatsConfig(Strict):
    """How variants are compared (see :mod:`nasseg.ablation.stats`).

    Attributes:
        test: ``mixed`` (default): a linear mixed model with crossed random seed and case
            effects (REML; t-test and interval on Satterthwaite df, from the same fit);
            ``wilcoxon`` / ``ttest``: per-case tests over seed-averaged values (one pair
            per case; they ignore the seed variance of the mean). ``crossed`` = ``mixed``.
        alpha: family-wise error rate for the Holm-corrected significance marks.
        pairing: kept so that stored studies load; no longer used (the per-case tests
            always average over seeds first, the mixed model uses every seed-case cell).
        contrasts: ``baseline`` compares every variant with the all-baseline variant;
            ``simple`` compares each variant with the variant that differs from it only
            by having one factor at its baseline (one row per such factor), e.g. the
            effect of IRSC within U-Net and within CMUNeXt separately.
        effects_of: with ``simple`` contrasts, test only the effects of these factors
            (default: every factor); fewer comparisons, a milder Holm correction.
        bootstrap: ``confidence`` is the coverage of every interval; ``n_resamples`` and
            ``seed`` are kept so that stored studies load (intervals come from the model).
    """

    test: Literal["mixed", "wilcoxon", "ttest", "crossed"] = "mixed"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    pairing: Literal["seed_case", "case"] = "case"
    contrasts: Literal["baseline", "simple"] = "baseline"
    effects_of: list[str] | None = None
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)


class AblationConfig(StudyBase):
    """A whole ablation study (the YAML file, with a profile applied).

    ``name``, ``description``, ``train``, ``storage`` and ``output_dir`` (``out_dir`` in
    older files) are the :class:`~nasseg.store.studyfile.StudyBase`'s: the output folder
    defaults to ``runs/<name>``, the storage to ``sqlite:///<output folder>/study.db``.

    Attributes:
        base: preset name or ArchConfig YAML path; optional when a factor has path ``base``.
        design: ``one_at_a_time`` (baseline + each factor's other levels alone) or
            ``full_factorial`` (every combination).
        factors: factor name -> :class:`FactorConfig`.
        seeds: number of training seeds per variant (``0..n-1``) or the list of seeds.
        data: a ``nasseg.data.DataConfig`` mapping (dataset and split, with its seed).
        train: a ``nasseg.train.TrainConfig`` mapping; its ``seed`` is set per run.
        input_shape: ``[B, C, *spatial]`` for params/MACs; default from the data size.
        stats: comparison settings.
        profiles: named partial overrides (e.g. ``cpu``), deep-merged over the file.
    """

    KIND: ClassVar[str] = "ablation"
    base: str | None = None
    design: Literal["one_at_a_time", "full_factorial"] = "one_at_a_time"
    factors: dict[str, FactorConfig] = Field(min_length=1)
    seeds: int | list[int] = 5
    data: str | dict[str, Any]
    input_shape: list[int] | None = None
    stats: StatsConfig = Field(default_factory=StatsConfig)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("needs at least one seed")
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError(f"seed list {v} is empty or has duplicates")
        return v

    @model_validator(mode="after")
    def _check(self) -> AblationConfig:
        paths = [f.path for f in self.factors.values() if f.path is not None]
        if len(set(paths)) != len(paths):
            raise ValueError(f"two factors change the same path: {paths}")
        if self.base is None and "base" not in paths:
            raise ValueError("'base' is missing: name a preset or a config file, "
                             "or add a factor with path 'base'")
        for name in self.stats.effects_of or []:
            if name not in self.factors:
                raise ValueError(f"stats.effects_of: no factor '{name}'" + did_you_mean(name, self.factors))
        for name in self.factors:
            if name in RESERVED_NAMES:
                raise ValueError(f"factors: '{name}' is a column of the statistics table; "
                                 "rename the factor")
        return self

    def train_config(self, where: str = "study", seed: int = 0) -> TrainConfig:
        """The typed :class:`~nasseg.train.TrainConfig` of ``train`` for one ``seed``.

        Raises:
            ConfigError: naming ``where``, ``train`` and the field.
        """
        return TrainConfig.build({**self.train, "seed": seed}, where=f"{where}: train")

    def data_config(self, where: str = "study") -> DataConfig:
        """The typed :class:`~nasseg.data.DataConfig` of ``data`` (the one data schema,
        :func:`nasseg.data.config.data_section`).

        Raises:
            ConfigError: naming ``where``, ``data`` and the field.
        """
        return data_section(self.data, where)

    def seed_list(self) -> list[int]:
        """The training seeds, in run order."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def load_ablation(path: str | Path, profile: str | None = None,
                  overrides: dict[str, Any] | None = None) -> AblationConfig:
    """Read, merge and validate an ablation study file.

    Relative ``base`` and ``data.path`` entries are resolved against the current folder
    first and the study file's folder second.

    Args:
        path: the study YAML.
        profile: name of an entry of its ``profiles`` to merge in (e.g. ``"cpu"``).
        overrides: a final mapping deep-merged over everything (command-line flags).

    Raises:
        ConfigError: unreadable YAML, an unknown key, a bad value or an unknown profile;
            the message names the file and the field.
    """
    path = Path(path)
    raw, where = read_study_file(path, profile)
    if overrides:
        if {"out_dir", "output_dir"} & set(overrides):  # the command line's folder replaces the file's
            raw = {k: v for k, v in raw.items() if k not in ("out_dir", "output_dir")}
        raw = deep_merge(raw, overrides)
    cfg = validate(AblationConfig, raw, where)
    cfg = cfg.model_copy(update=_resolved_paths(cfg, path.parent, where))
    cfg.train_config(where)  # typed now: bad training or data settings fail here, naming the field
    cfg.data_config(where)
    return cfg


def _resolved_paths(cfg: AblationConfig, here: Path, where: str) -> dict[str, Any]:
    def resolve(p: str) -> str:
        if Path(p).is_absolute() or Path(p).exists() or not (here / p).exists():
            return p
        return str(here / p)

    update: dict[str, Any] = {}
    if cfg.base and cfg.base.endswith((".yaml", ".yml")):
        update["base"] = resolve(cfg.base)
    update["data"] = canonical_section(cfg.data, f"{where}: data", here)  # kind inferred, 'source' read
    factors = {}
    for name, f in cfg.factors.items():
        if f.path == "base":
            levels = [resolve(v) if isinstance(v, str) and v.endswith((".yaml", ".yml")) else v
                      for v in f.levels]
            if levels != f.levels:
                # keep the labels the user saw: derived from the levels as written
                f = f.model_copy(update={"levels": levels, "labels": f.level_labels()})
        factors[name] = f
    update["factors"] = factors
    return update
