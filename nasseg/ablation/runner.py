"""Run an ablation: every (variant, seed) trained once, each run committed to Optuna storage.

The study lives in the study store (:mod:`nasseg.store`): an ablation
:class:`~nasseg.store.records.StudyRecord`, and one trial record per run, trained and
recorded by :func:`nasseg.runs.train_and_record` (the path search trials take). Crash
safety: each run is an ``ask()``, its record, then ``tell()``, so a finished run is in
the storage the moment it ends. On start, trials left RUNNING by a killed process are
told FAIL (read back as ``interrupted``) and their (variant, seed) runs again; pairs
already COMPLETE are skipped. One process per study at a time.

Example:
    >>> cfg = load_ablation("studies/cmunext_skip_ablation.yaml", profile="cpu")
    >>> study = run_ablation(cfg, where="studies/cmunext_skip_ablation.yaml")  # doctest: +SKIP
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from nasseg.ablation.config import AblationConfig
from nasseg.ablation.design import (
    Contrast,
    Variant,
    build_archs,
    plan_contrasts,
    plan_variants,
)
from nasseg.errors import ConfigError
from nasseg.store import StudyRecord, TrialWriter, create_or_open, study_record, trial_record, update_record
from nasseg.store.storage import now_iso
from nasseg.versions import provenance, versions

__all__ = ["AblationPlan", "open_study", "plan", "recover_interrupted", "run_ablation"]

_ANALYSIS_ONLY = ("seeds", "stats", "profiles", "description", "storage", "out_dir")
"""Config fields that may change between resumptions without invalidating stored runs."""


@dataclass
class AblationPlan:
    """Everything validated before the first run: networks, data and training configs.

    Attributes:
        config: the study config.
        variants: the networks, baseline first; ``archs`` maps their names to ArchConfigs.
        contrasts: the comparisons the statistics will make.
        data: the ``DataConfig`` shared by every run (one split for all).
        train: the ``TrainConfig`` mapping; the seed is set per run.
        input_shape: the shape at which params and MACs are counted.
    """

    config: AblationConfig
    variants: list[Variant]
    contrasts: list[Contrast]
    archs: dict[str, Any]
    data: Any
    train: dict[str, Any]
    input_shape: list[int]


def _input_shape(cfg: AblationConfig, arch: Any, data: Any, ds: Any, where: str) -> list[int]:
    if cfg.input_shape:
        return list(cfg.input_shape)
    if data.patch_size is not None:
        spatial = list(data.patch_size)
    elif ds.fixed_size:
        spatial = list(ds.shapes()[0])
    else:
        raise ConfigError(f"{where}: input_shape: the cases differ in size; set input_shape "
                          "(e.g. [1, 1, 96, 96, 96]) to count params and MACs")
    return [1, arch.in_channels, *spatial]


def _fit_to_data(archs: dict[str, Any], ds: Any, where: str) -> dict[str, Any]:
    """Set every network's in/out channels from the data, as training will."""
    from nasseg.arch import ArchConfig

    out = {}
    for name, arch in archs.items():
        if arch.spatial_dims != ds.spatial_dims:
            raise ConfigError(f"{where}: variant '{name}' is {arch.spatial_dims}D but the data is "
                              f"{ds.spatial_dims}D")
        out[name] = ArchConfig.model_validate({**arch.model_dump(), "in_channels": ds.in_channels,
                                               "out_channels": ds.out_channels})
    return out


def plan(cfg: AblationConfig, where: str = "study") -> AblationPlan:
    """Validate the whole study (networks, data, training) without training anything.

    Loads the dataset (decoded once and cached for the runs) to fit each network's input
    and output channels to it, so that ids, params and MACs are those of what is trained.

    Raises:
        ConfigError: naming ``where`` and the field at fault.
    """
    from nasseg.data import load_dataset
    from nasseg.data.config import DataConfig, parse_config
    from nasseg.train.config import TrainConfig

    variants = plan_variants(cfg)
    archs = build_archs(cfg, variants, where)
    data = parse_config(DataConfig, cfg.data, f"{where}: data")
    TrainConfig.build({**cfg.train, "seed": 0}, where=f"{where}: train")
    ds = load_dataset(data)
    archs = _fit_to_data(archs, ds, where)
    shape = _input_shape(cfg, archs[variants[0].name], data, ds, where)
    return AblationPlan(cfg, variants, plan_contrasts(cfg, variants), archs, data,
                        dict(cfg.train), shape)


def _essential(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _ANALYSIS_ONLY}


def open_study(p: AblationPlan, command: str) -> optuna.Study:
    """Load the study from its storage, or create it with its record.

    Raises:
        ConfigError: the storage holds a study of that name that is not this ablation
            (another kind, or other factors, base, data or training settings).
    """
    cfg = p.config
    url = cfg.storage_url()
    config = cfg.model_dump(mode="json")
    record = StudyRecord(nasseg_kind="ablation", objectives=[{"name": "dice", "direction": "maximize"}],
                         config=config, dataset=p.data.model_dump(mode="json"), versions=versions(),
                         command=command, created=now_iso(),
                         provenance=provenance(data=p.data, seeds=cfg.seed_list(), threads=p.train.get("num_threads")))
    study = create_or_open(url, cfg.name, record)
    old, new = _essential(study_record(study).config), _essential(config)
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ConfigError(
            f"storage {url} already holds study '{cfg.name}' run with different "
            f"{', '.join(diff)}; its runs cannot be mixed with these. Give the study a new "
            "name (or out_dir), or delete the old storage")
    update_record(study, config=config, versions=versions(), command=command,
                  provenance=provenance(data=p.data, seeds=cfg.seed_list(), threads=p.train.get("num_threads")))
    return study


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Tell FAIL the trials left RUNNING by a killed process (read back as ``interrupted``).

    Returns:
        The numbers of the trials it marked.
    """
    marked = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue
        marked.append(t.number)
    return marked


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_ablation(cfg: AblationConfig, *, where: str = "study", command: str = "",
                 progress: bool = False, echo: Callable[[str], None] = print,
                 max_runs: int | None = None) -> optuna.Study:
    """Train every (variant, seed) not yet COMPLETE in the storage, seed by seed.

    Runs go seed-major (every variant with seed 0, then seed 1, ...), so a study stopped
    early still holds balanced, pairable results.

    Args:
        cfg: the study config (profile applied).
        where: what error messages name (the study file).
        command: the command line, stored with the study.
        progress: show the trainer's per-epoch progress.
        echo: where one line per run is printed.
        max_runs: stop after this many runs (``None`` = all).

    Returns:
        The Optuna study.
    """
    from nasseg.arch import arch_id
    from nasseg.cost import profile
    from nasseg.runs import train_and_record
    from nasseg.train import TrainConfig

    p = plan(cfg, where)
    study = open_study(p, command)
    for n in recover_interrupted(study):
        echo(f"trial {n} was interrupted; its run will be repeated")
    done = {(r.variant, r.seed) for r in map(trial_record, study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))}
    todo = [(s, v) for s in cfg.seed_list() for v in p.variants if (v.name, s) not in done]
    total = len(cfg.seed_list()) * len(p.variants)
    echo(f"study '{cfg.name}': {len(p.variants)} variants x {len(cfg.seed_list())} seeds = {total} runs, "
         f"{total - len(todo)} already complete; storage {cfg.storage_url()}")
    costs = {v.name: profile(p.archs[v.name], p.input_shape, latency=False).to_dict() for v in p.variants}
    runs_dir = cfg.resolved_out_dir() / "runs"
    for i, (seed, v) in enumerate(todo[:max_runs] if max_runs is not None else todo, 1):
        arch = p.archs[v.name]
        writer = TrialWriter(study.ask())
        writer.set(variant=v.name, factors=v.levels, is_baseline=v.is_baseline, seed=seed,
                   arch=arch.canonical(), arch_id=arch_id(arch), cost=costs[v.name])
        tcfg = TrainConfig.build({**p.train, "seed": seed}, where=f"{where}: train")
        try:
            run = train_and_record(writer, arch, p.data, tcfg, progress=progress,
                                   run_dir=runs_dir / f"{_slug(v.name)}-seed{seed}")
        except BaseException:
            writer.set(fail_reason="interrupted")
            study.tell(writer.trial, state=optuna.trial.TrialState.FAIL)
            raise
        if not run.ok:
            study.tell(writer.trial, state=optuna.trial.TrialState.FAIL)
            echo(f"[{i}/{len(todo)}] {v.name} seed {seed}: FAILED ({run.reason})")
            continue
        study.tell(writer.trial, [run.dice])
        echo(f"[{i}/{len(todo)}] {v.name} seed {seed}: dice {run.dice:.4f} ({run.result.seconds:.1f} s)")
    if not todo:
        echo("nothing to run")
    return study


def describe_plan(p: AblationPlan) -> list[dict[str, Any]]:
    """One row per variant for ``nasseg ablate --dry-run``: name, levels, arch id, params, MACs."""
    from nasseg.arch import arch_id
    from nasseg.cost import profile

    rows = []
    for v in p.variants:
        cost = profile(p.archs[v.name], p.input_shape, latency=False)
        rows.append({"variant": v.name, "baseline": v.is_baseline, "arch_id": arch_id(p.archs[v.name]),
                     "params": cost.params, "macs": cost.macs})
    return rows
