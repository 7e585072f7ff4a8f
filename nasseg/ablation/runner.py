"""Run an ablation: every (variant, seed) trained once, each run committed to Optuna storage.

The study lives in the same storage format as a search (see :mod:`nasseg.report.data`):
``study.user_attrs`` say what it is, every trial's ``user_attrs`` hold the run. Crash
safety: each run is an ``ask()``, its attributes, then ``tell()``, so a finished run is in
the storage the moment it ends. On start, trials left RUNNING by a killed process are
marked FAIL (``fail_reason: interrupted``) and their (variant, seed) runs again; pairs
already COMPLETE are skipped. One process per study at a time.

Example:
    >>> cfg = load_ablation("studies/cmunext_skip_ablation.yaml", profile="cpu")
    >>> study = run_ablation(cfg, where="studies/cmunext_skip_ablation.yaml")  # doctest: +SKIP
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
from nasseg.versions import versions

__all__ = ["AblationPlan", "open_study", "plan", "recover_interrupted", "run_ablation",
           "split_summary"]

_ANALYSIS_ONLY = ("seeds", "stats", "profiles", "description", "storage", "out_dir")
"""Config fields that may change between resumptions without invalidating stored runs."""


def split_summary(split: dict[str, Any]) -> dict[str, Any]:
    """``{method, seed, n_train, n_val, hash}`` of a training run's split; ``hash`` identifies
    the exact held-out and training case ids, so runs on different splits are never paired."""
    train, val = sorted(map(str, split.get("train", []))), sorted(map(str, split.get("val", [])))
    digest = hashlib.sha256(json.dumps({"train": train, "val": val}).encode()).hexdigest()[:12]
    return {"method": split.get("method"), "seed": split.get("seed"), "n_train": len(train),
            "n_val": len(val), "hash": digest}


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
    """Load the study from its storage, or create it with its ``user_attrs``.

    Raises:
        ConfigError: the storage holds a study of that name that is not this ablation
            (another kind, or other factors, base, data or training settings).
    """
    cfg = p.config
    url = cfg.storage_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=cfg.name, storage=url, directions=["maximize"],
                                load_if_exists=True)
    config = cfg.model_dump(mode="json")
    attrs = study.user_attrs
    if attrs:
        if attrs.get("nasseg_kind") != "ablation":
            raise ConfigError(f"storage {url} already holds a study '{cfg.name}' that is not an "
                              "ablation; give this study another name")
        old, new = _essential(attrs.get("config", {})), _essential(config)
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"storage {url} already holds study '{cfg.name}' run with different "
                f"{', '.join(diff)}; its runs cannot be mixed with these. Give the study a new "
                "name (or out_dir), or delete the old storage")
    else:
        study.set_user_attr("nasseg_kind", "ablation")
        study.set_user_attr("objectives", [{"name": "dice", "direction": "maximize"}])
        study.set_user_attr("dataset", p.data.model_dump(mode="json"))
        study.set_user_attr("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    study.set_user_attr("config", config)
    study.set_user_attr("versions", versions())
    study.set_user_attr("command", command)
    return study


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Mark trials left RUNNING by a killed process as FAIL (``fail_reason: interrupted``).

    Returns:
        The numbers of the trials it marked.
    """
    marked = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "interrupted")
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
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
    from nasseg.train import TrainConfig, TrainingFailed, train

    p = plan(cfg, where)
    study = open_study(p, command)
    for n in recover_interrupted(study):
        echo(f"trial {n} was interrupted; its run will be repeated")
    done = {(t.user_attrs.get("variant"), t.user_attrs.get("seed"))
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    todo = [(s, v) for s in cfg.seed_list() for v in p.variants if (v.name, s) not in done]
    total = len(cfg.seed_list()) * len(p.variants)
    echo(f"study '{cfg.name}': {len(p.variants)} variants x {len(cfg.seed_list())} seeds = {total} runs, "
         f"{total - len(todo)} already complete; storage {cfg.storage_url()}")
    costs = {v.name: profile(p.archs[v.name], p.input_shape, latency=False).to_dict() for v in p.variants}
    runs_dir = cfg.resolved_out_dir() / "runs"
    for i, (seed, v) in enumerate(todo[:max_runs] if max_runs is not None else todo, 1):
        arch = p.archs[v.name]
        trial = study.ask()
        for key, value in {"variant": v.name, "factors": v.levels, "is_baseline": v.is_baseline,
                           "seed": seed, "arch": arch.canonical(), "arch_id": arch_id(arch),
                           "cost": costs[v.name]}.items():
            trial.set_user_attr(key, value)
        tcfg = TrainConfig.build({**p.train, "seed": seed}, where=f"{where}: train")
        started = time.perf_counter()
        try:
            result = train(arch, p.data, tcfg, run_dir=runs_dir / f"{_slug(v.name)}-seed{seed}",
                           progress=progress)
        except TrainingFailed as err:
            trial.set_user_attr("fail_reason", str(err))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            echo(f"[{i}/{len(todo)}] {v.name} seed {seed}: FAILED ({err})")
            continue
        except BaseException:
            trial.set_user_attr("fail_reason", "interrupted")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        seconds = time.perf_counter() - started
        info = result.to_dict()
        trial.set_user_attr("history", info.get("history", result.history))
        trial.set_user_attr("per_case", info.get("per_case", result.per_case))
        trial.set_user_attr("split", split_summary(result.split))
        trial.set_user_attr("stopped_early", bool(info.get("stopped_early", False)))
        trial.set_user_attr("stop_reason", info.get("stop_reason"))
        trial.set_user_attr("train_seconds", round(float(info.get("seconds", seconds)), 3))
        dice = float(result.best["dice"])
        study.tell(trial, [dice])
        echo(f"[{i}/{len(todo)}] {v.name} seed {seed}: dice {dice:.4f} ({seconds:.1f} s)")
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
