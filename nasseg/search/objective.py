"""One trial, the same under the Optuna and the Ray backend.

:func:`screen` (sample -> validate -> cost, cached -> constraints -> duplicate?) then
training with the Pareto-aware stopping callback (:func:`nasseg.runs.train_and_record`,
the path ablation runs take too). Everything is written to the trial's record as it
becomes known (the per-epoch history after every validation), so a killed process leaves
a readable partial record. The caller tells Optuna the returned :class:`Outcome`.

A proposal rejected by :func:`screen` is never trained and uses up no budget (see
:mod:`nasseg.search.proposals`); its record says why (``outcome``):

- ``invalid``: not a valid network (FAIL, with the reason);
- ``infeasible``: over a limit: told COMPLETE with its constraint values (``value -
  limit`` per limit, through ``Trial.set_constraint``, so NSGA-II, NSGA-III, TPE and GP
  learn from them), ``constraint_violation`` naming the limit, ``trained: false`` and Dice
  0.0 standing in for "not trained"; readers drop it from fronts and hypervolumes;
- ``duplicate``: the same network was trained under the same settings: COMPLETE with
  that trial's values and record (``reused_from``).

Example:
    >>> writer = TrialWriter(study.ask())
    >>> outcome = run_objective(setup, writer, study, lambda: space.build(src, 3, 1), "cpu")
    >>> outcome.state, outcome.values
    ('complete', [0.71, 0.068, 41750.0])
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasseg.arch import ArchConfig, arch_id
from nasseg.cost import profile
from nasseg.data import DataConfig
from nasseg.device import resolve_precision
from nasseg.errors import ConfigError, NassegError
from nasseg.runs import Trainer, train_and_record
from nasseg.search.mofidelity import make_stopper
from nasseg.search.stopping import Curve
from nasseg.search.study import EarlyStoppingConfig
from nasseg.store import OBJECTIVES, constraints, trial_record
from nasseg.store.objectives import cost_values
from nasseg.store.storage import stale_reason
from nasseg.train import TrainConfig


@dataclass
class TrialSetup:
    """Everything a worker needs to run trials of one study (picklable)."""

    study_name: str
    storage_url: str
    objectives: list[str]
    data: DataConfig
    train: TrainConfig
    input_shape: tuple[int, ...]
    in_channels: int
    out_channels: int
    limits: dict[str, float]
    early_stopping: EarlyStoppingConfig
    seed: int
    run_root: str | None = None
    heartbeat_s: float = 30.0
    stored_train_key: str | None = None
    """The key a resumed study was created with (kept when config schemas gain fields)."""

    @property
    def cost_objectives(self) -> list[str]:
        return [o for o in self.objectives if OBJECTIVES[o].measured == "counter"]

    @property
    def needs_latency(self) -> bool:
        """Whether an objective or limit must be measured on the trial's device."""
        return any(OBJECTIVES[n].device == "target" for n in (*self.objectives, *self.limits))

    @property
    def train_key(self) -> str:
        """Hash of what determines a trained result besides the network (device excluded)."""
        if self.stored_train_key:
            return self.stored_train_key
        payload = {"data": self.data.model_dump(mode="json"), "seed": self.seed,
                   "train": self.train.recipe()}
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Outcome:
    """What to tell Optuna: ``complete`` with ``values`` (objective order) or ``fail``."""

    state: str
    values: list[float] | None = None
    reason: str | None = None
    epochs_trained: int = 0


def load_curves(study: optuna.Study, setup: TrialSetup, before: int) -> list[Curve]:
    """Curves of trained, feasible trials numbered below ``before`` (running ones included)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        a = trial_record(t)
        if t.number >= before or not a.history or a.train_key != setup.train_key:
            continue
        if a.reused_from is not None or any(c > 0 for c in constraints(t).values()):
            continue
        stored = cost_values(a.cost or {})
        costs = tuple(stored.get(n) for n in setup.cost_objectives)
        if any(c is None for c in costs):
            continue
        dice = {int(h["epoch"]): float(h["dice"]) for h in a.history
                if h.get("dice") is not None and math.isfinite(h["dice"])}
        out.append(Curve(t.number, a.arch_id or "", costs, dice))
    return out


def find_duplicate(study: optuna.Study, aid: str, train_key: str, number: int,
                   poll_s: float = 2.0, wait: bool = True) -> Any:
    """The first COMPLETE, trained trial of the same architecture and training settings.

    If an earlier trial of the same network is still training (another worker, or accepted
    by the Ray driver and not yet started), wait for it rather than train the network
    twice, and stop waiting if it fails or its worker dies; with ``wait=False`` return that
    RUNNING trial instead.
    """
    while True:
        running = None
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            a = trial_record(t)
            if t.number == number or a.arch_id != aid or a.train_key != train_key:
                continue
            if t.state == TrialState.COMPLETE and a.trained and a.reused_from is None:
                return t
            if (t.state == TrialState.RUNNING and t.number < number
                    and (a.heartbeat is not None or a.outcome == "trained")
                    and stale_reason(t, grace_s=600.0) is None):
                running = t
        if running is None or not wait:
            return running
        time.sleep(poll_s)


def run_objective(setup: TrialSetup, writer: Any, study: optuna.Study,
                  make_arch: Callable[[], ArchConfig], device: str,
                  trainer: Trainer | None = None, on_epoch: Callable[[int, dict], None] | None = None,
                  ) -> Outcome:
    """Run one trial (see the module docstring) and return what to tell Optuna.

    Args:
        setup: the study's settings.
        writer: records this trial (:class:`~nasseg.store.write.TrialWriter`).
        study: the study, for duplicates and the stopping rule's earlier curves.
        make_arch: samples (or replays) and validates the network; raises ConfigError.
        device: where to train and measure latency (a resolved device, e.g. ``cuda:1``).
        trainer: ``train(arch, data, cfg, run_dir=, callback=, progress=)``; default
            :func:`nasseg.train.train`.
        on_epoch: optional progress hook ``(epoch, metrics)``.
    """
    screened = screen(setup, writer, study, make_arch, device)
    if isinstance(screened, Outcome):
        return screened
    cfg, aid, costs = screened
    writer.set(outcome="trained")
    return _train(setup, writer, study, cfg, aid, costs, device, trainer, on_epoch,
                  lambda dice: _values(setup, costs, dice))


def _values(setup: TrialSetup, costs: dict[str, float], dice: float) -> list[float]:
    return [dice if o == "dice" else costs[o] for o in setup.objectives]


def screen(setup: TrialSetup, writer: Any, study: optuna.Study, make_arch: Callable[[], ArchConfig],
           device: str, wait: bool = True) -> Outcome | tuple[ArchConfig, str, dict[str, float]]:
    """Check a proposal before it is trained: the :class:`Outcome` of a rejected one
    (``invalid``, ``infeasible`` or ``duplicate``: recorded, to be told as it says), or
    ``(config, arch id, costs)`` of a network to train. ``wait=False`` (the Ray driver,
    which must not block) rejects a network another trial is training instead of waiting
    for its values."""
    t0 = time.perf_counter()
    result = _screen(setup, writer, study, make_arch, device, wait)
    writer.set(screen_seconds=round(time.perf_counter() - t0, 4))
    return result


def _screen(setup: TrialSetup, writer: Any, study: optuna.Study, make_arch: Callable[[], ArchConfig],
            device: str, wait: bool) -> Outcome | tuple[ArchConfig, str, dict[str, float]]:
    writer.set(seed=setup.seed, train_key=setup.train_key, stopped_early=False)
    try:
        cfg = make_arch()
    except ConfigError as err:
        writer.set(outcome="invalid")
        return _fail(writer, f"invalid network: {err}")
    aid = arch_id(cfg)
    writer.set(arch=cfg.canonical(), arch_id=aid)
    try:
        # measured on the worker's resolved device at the precision its trial's resolved run
        # trains with (resolve_run's rule: nasseg.device.resolve_precision of train.amp)
        cost = profile(cfg, setup.input_shape, device=device, precision=resolve_precision(device, setup.train.amp),
                       latency=setup.needs_latency)
    except (NassegError, RuntimeError, ValueError) as err:
        writer.set(outcome="invalid")
        return _fail(writer, f"invalid network: cost counting failed: {type(err).__name__}: {err}")
    writer.set(cost=cost.to_dict())
    costs = cost_values(cost)
    writer.constrain({k: costs[k] - limit for k, limit in setup.limits.items()})
    over = [f"{k} {OBJECTIVES[k].describe(costs[k])} > max {OBJECTIVES[k].describe(lim)}"
            for k, lim in setup.limits.items() if costs[k] > lim]
    if over:
        writer.set(constraint_violation="; ".join(over), trained=False, outcome="infeasible")
        return Outcome("complete", _values(setup, costs, 0.0))
    dup = find_duplicate(study, aid, setup.train_key, writer.number, wait=wait)
    if dup is not None and dup.state == TrialState.RUNNING:
        writer.set(outcome="duplicate")
        return _fail(writer, f"duplicate: the same network is training in trial {dup.number}")
    if dup is not None:
        copied = trial_record(dup).model_dump(include={
            "history", "stopped_early", "stop_reason", "split", "per_case", "best_epoch", "epochs_run",
            "best", "metrics", "checkpoint"}, exclude_none=True)
        writer.set(**copied, reused_from=dup.number, trained=True, train_seconds=0.0, outcome="duplicate")
        return Outcome("complete", _values(setup, costs, dup.values[setup.objectives.index("dice")]))
    return cfg, aid, costs


def _train(setup: TrialSetup, writer: Any, study: optuna.Study, cfg: ArchConfig, aid: str,
           costs: dict[str, float], device: str, trainer: Trainer | None,
           on_epoch: Callable[[int, dict], None] | None, values: Callable[[float], list[float]]) -> Outcome:
    """Train with the stopping callback (the history is written after every validation)."""
    curve = Curve(writer.number, aid, tuple(costs[o] for o in setup.cost_objectives))
    stopper = make_stopper(setup.early_stopping, curve,
                            lambda: load_curves(study, setup, writer.number), setup.train.epochs)

    def callback(epoch: int, metrics: dict) -> bool:
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        return stopper(epoch, metrics)

    run_dir = Path(setup.run_root) / f"trial_{writer.number:04d}" if setup.run_root else None
    run = train_and_record(writer, cfg, setup.data, setup.train, device=device, run_dir=run_dir,
                           trainer=trainer, callback=callback, heartbeat_s=setup.heartbeat_s)
    if not run.ok:
        return Outcome("fail", reason=run.reason, epochs_trained=run.epochs)
    if run.result.stop_reason == "callback":
        writer.set(stop_reason=stopper.reason)
    return Outcome("complete", values(run.dice), epochs_trained=run.epochs)


def _fail(writer: Any, reason: str, epochs: int = 0) -> Outcome:
    writer.set(fail_reason=reason)
    return Outcome("fail", reason=reason, epochs_trained=epochs)


__all__ = ["Outcome", "TrialSetup", "find_duplicate", "load_curves", "run_objective", "screen"]
