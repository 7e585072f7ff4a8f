"""Run an ablation: every (variant, seed) trained once, each run committed to Optuna storage.

The study lives in the study store (:mod:`nasseg.store`): an ablation
:class:`~nasseg.store.records.StudyRecord`, and one trial record per run, trained and
recorded by :func:`nasseg.runs.train_and_record` (the path search trials take). Crash
safety: each run is an ``ask()``, its record, then ``tell()``, so a finished run is in
the storage the moment it ends. Several processes may run one study together: each
claims a (variant, seed) pair under the study's run lock (:mod:`nasseg.store.claims`:
``ask()`` and the owner written before the lock is released), skips pairs COMPLETE or
claimed by a live process, and waits for the others' runs before it returns. A RUNNING
trial is told FAIL (read back as ``interrupted``) only when its owner is dead, and its
pair runs again.

Example:
    >>> cfg = load_ablation("studies/cmunext_skip_ablation.yaml", profile="cpu")
    >>> study = run_ablation(cfg, where="studies/cmunext_skip_ablation.yaml")  # doctest: +SKIP
"""
from __future__ import annotations

import datetime as dt
import re
import time
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
from nasseg.errors import ConfigError, mask_url
from nasseg.store import StudyRecord, TrialWriter, create_or_open, study_record, trial_record, update_record
from nasseg.store.claims import HEARTBEAT_GRACE_S, claim, live_claim, run_lock
from nasseg.store.storage import now_iso, stale_reason
from nasseg.versions import provenance, versions
from nasseg.data import load_dataset
from nasseg.data.check import split_notes
from nasseg.runs import study_data, train_and_record

__all__ = ["AblationPlan", "open_study", "plan", "recover_interrupted", "run_ablation"]

WAIT_S = 2.0
"""Seconds between looks at the storage while other processes finish their runs."""

_ANALYSIS_ONLY = ("seeds", "stats", "profiles", "description", "storage", "output_dir", "out_dir")
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
    from nasseg.arch import ArchConfig  # lazy: torch; nasseg.ablation is read without it

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
    variants = plan_variants(cfg)
    archs = build_archs(cfg, variants, where)
    data = cfg.data_config(where)
    cfg.train_config(where)
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
                         provenance=_provenance(p))
    study = create_or_open(url, cfg.name, record)
    old, new = _essential(study_record(study).config), _essential(config)
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ConfigError(
            f"storage {mask_url(url)} already holds study '{cfg.name}' run with different "
            f"{', '.join(diff)}; its runs cannot be mixed with these. Give the study a new "
            "name (or out_dir), or delete the old storage")
    update_record(study, config=config, versions=versions(), command=command,
                  provenance=_provenance(p))
    return study


def _provenance(p: AblationPlan) -> dict[str, Any]:
    """The study-level record, written before its runs: flags as the runs will set them."""
    return provenance(data=p.data, seeds=p.config.seed_list(), threads=p.train.get("num_threads"),
                      device=p.train.get("device", "auto"))


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Tell FAIL the trials left RUNNING by a dead process (read back as ``interrupted``);
    a trial whose owner still runs is never touched (see :func:`nasseg.store.storage.stale_reason`).

    Returns:
        The numbers of the trials it marked.
    """
    marked = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if stale_reason(t, HEARTBEAT_GRACE_S) is None:
            continue
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
    from nasseg.arch import arch_id  # lazy: torch; nasseg.ablation is read without it
    from nasseg.cost import profile  # lazy: torch; nasseg.ablation is read without it

    p = plan(cfg, where)
    study = open_study(p, command)
    out_dir = cfg.out_dir()
    p.data = study_data(p.data, study, out_dir)  # keeps a pre-grouping split
    for line in split_notes(p.data):  # near-duplicate families kept together, undeclared groups
        echo(line)
    with run_lock(out_dir):
        for n in recover_interrupted(study):
            echo(f"trial {n} was interrupted; its run will be repeated")
    order = [(s, v) for s in cfg.seed_list() for v in p.variants]
    done = _pairs(study, complete=True)
    total = len(order)
    left = total - len(done & {(v.name, s) for s, v in order})
    echo(f"study '{cfg.name}': {len(p.variants)} variants x {len(cfg.seed_list())} seeds = {total} runs, "
         f"{total - left} already complete; storage {mask_url(cfg.storage_url())}")
    costs = {v.name: profile(p.archs[v.name], p.input_shape, latency=False).to_dict() for v in p.variants}
    runs_dir = out_dir / "runs"
    attempted: set[tuple[str, int]] = set()
    since = dt.datetime.now()
    ran = 0
    while max_runs is None or ran < max_runs:
        with run_lock(out_dir):  # one claim at a time: ask() and the owner are written together
            for n in recover_interrupted(study):
                echo(f"trial {n} was interrupted; its run will be repeated")
            # one snapshot: read twice, a run told COMPLETE between the reads would be in neither set
            busy = _pairs(study, complete=True, live=True, failed_since=since) | attempted
            nxt = next(((s, v) for s, v in order if (v.name, s) not in busy), None)
            if nxt is not None:
                seed, v = nxt
                arch = p.archs[v.name]
                writer = claim(TrialWriter(study.ask()), variant=v.name, factors=v.levels,
                               is_baseline=v.is_baseline, seed=seed, arch=arch.canonical(),
                               arch_id=arch_id(arch), cost=costs[v.name])
        if nxt is None:
            if not _pairs(study, live=True) - attempted:
                break
            time.sleep(WAIT_S)  # other processes still run pairs; a dead one's pair comes back
            continue
        attempted.add((v.name, seed))
        ran += 1
        tcfg = cfg.train_config(where, seed)
        try:
            run = train_and_record(writer, arch, p.data, tcfg, progress=progress,
                                   run_dir=runs_dir / f"{_slug(v.name)}-seed{seed}", degenerate_fails=True)
        except BaseException:
            writer.set(fail_reason="interrupted")
            study.tell(writer.trial, state=optuna.trial.TrialState.FAIL)
            raise
        if not run.ok:
            study.tell(writer.trial, state=optuna.trial.TrialState.FAIL)
            echo(f"[{ran}/{left}] {v.name} seed {seed}: FAILED ({run.reason})")
            continue
        study.tell(writer.trial, [run.dice])
        echo(f"[{ran}/{left}] {v.name} seed {seed}: val dice {run.dice:.4f} "
             f"({run.result.seconds:.1f} s; the tables report test)")
    if not ran:
        echo("nothing to run")
    return study


def _pairs(study: optuna.Study, *, complete: bool = False, live: bool = False,
           failed_since: dt.datetime | None = None) -> set[tuple[str, int]]:
    """(variant, seed) pairs of the COMPLETE trials, of those claimed by a live process, and of
    those that failed (not interrupted) after ``failed_since`` (retried at the next start,
    not by every process of this one), as one read of the storage finds them."""
    out = set()
    for t in study.get_trials(deepcopy=False):
        failed = (failed_since is not None and t.state == optuna.trial.TrialState.FAIL
                  and trial_record(t).fail_reason not in (None, "interrupted")
                  and t.datetime_start is not None and t.datetime_start >= failed_since)
        if (complete and t.state == optuna.trial.TrialState.COMPLETE) or (live and live_claim(t)) or failed:
            r = trial_record(t)
            if r.variant is not None:
                out.add((r.variant, r.seed))
    return out


def describe_plan(p: AblationPlan) -> list[dict[str, Any]]:
    """One row per variant for ``nasseg ablate --dry-run``: name, levels, arch id, params, MACs."""
    from nasseg.arch import arch_id  # lazy: torch; nasseg.ablation is read without it
    from nasseg.cost import profile  # lazy: torch; nasseg.ablation is read without it

    rows = []
    for v in p.variants:
        cost = profile(p.archs[v.name], p.input_shape, latency=False)
        rows.append({"variant": v.name, "baseline": v.is_baseline, "arch_id": arch_id(p.archs[v.name]),
                     "params": cost.params, "macs": cost.macs})
    return rows
