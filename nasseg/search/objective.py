"""One trial, the same under the Optuna and the Ray backend.

sample -> validate -> cost (cached) -> constraints -> duplicate? -> train with the
Pareto-aware stopping callback -> attributes. Everything is written to the trial's
``user_attrs`` as it becomes known (the per-epoch history after every validation),
so a killed process leaves a readable partial record. The caller tells Optuna the
returned :class:`Outcome`.

Infeasible networks (over a constraint) are recorded COMPLETE without training, with
their constraint values (``value - limit`` per limit, in ``user_attrs["constraints"]``
and as Optuna 5's ``constraints:<name>`` system attrs, the convention of
``Trial.set_constraint``, so NSGA-II, NSGA-III, TPE and GP learn from them),
``constraint_violation`` naming the limit, and Dice 0.0 standing in for "not trained"
(``trained: false``); readers drop infeasible trials from fronts and hypervolumes.

Example:
    >>> outcome = run_objective(setup, handle, lambda: space.build(TrialSource(trial), 3, 1), "cpu")
    >>> outcome.state, outcome.values
    ('complete', [0.71, 0.068, 41750.0])
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from nasseg.arch import ArchConfig, arch_id
from nasseg.data import DataConfig
from nasseg.errors import ConfigError, NassegError
from nasseg.search.stopping import Curve, ParetoStopper
from nasseg.search.storage import now_iso
from nasseg.search.study import OBJECTIVES, EarlyStoppingConfig
from nasseg.train import TrainConfig, TrainingFailed

COST_UNITS = {"macs": "GMACs", "params": "parameters", "latency": "ms", "memory": "MB"}


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
        return [o for o in self.objectives if o != "dice"]

    @property
    def needs_latency(self) -> bool:
        return "latency" in self.objectives or "latency" in self.limits

    @property
    def train_key(self) -> str:
        """Hash of what determines a trained result besides the network (device excluded)."""
        if self.stored_train_key:
            return self.stored_train_key
        payload = {"data": self.data.model_dump(mode="json"), "seed": self.seed,
                   "train": self.train.model_dump(mode="json", exclude={"device", "num_threads"})}
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Outcome:
    """What to tell Optuna: ``complete`` with ``values`` (objective order) or ``fail``."""

    state: str
    values: list[float] | None = None
    reason: str | None = None
    epochs_trained: int = 0


class TrialHandle:
    """Writes one trial's attributes through the public storage API (any process)."""

    def __init__(self, storage: BaseStorage, study_name: str, number: int) -> None:
        self.storage, self.number = storage, number
        self.study_id = storage.get_study_id_from_name(study_name)
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def set(self, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(self.trial_id, key, value)

    def set_constraints(self, values: dict[str, float]) -> None:
        """Optuna 5's constraint convention (what ``Trial.set_constraint`` writes):
        one ``constraints:<name>`` system attr per limit, feasible when <= 0."""
        for key, value in values.items():
            self.storage.set_trial_system_attr(self.trial_id, f"constraints:{key}", float(value))

    def params(self) -> dict[str, Any]:
        return self.storage.get_trial(self.trial_id).params


def cost_values(cost: Any) -> dict[str, float]:
    """The cost objectives of a :class:`nasseg.cost.Cost` in the units of ``trial.values``."""
    return {"macs": cost.macs / 1e9, "params": float(cost.params),
            "latency": float("nan") if cost.latency_ms is None else float(cost.latency_ms),
            "memory": float(cost.memory_mb)}


def split_summary(split: dict[str, Any]) -> dict[str, Any]:
    """``{method, seed, n_train, n_val, hash}`` of a split (hash of the sorted case ids)."""
    ids = {"train": sorted(split.get("train", [])), "val": sorted(split.get("val", []))}
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:12]
    return {"method": split.get("method"), "seed": split.get("seed"), "n_train": len(ids["train"]),
            "n_val": len(ids["val"]), "hash": digest}


def load_curves(study: optuna.Study, setup: TrialSetup, before: int) -> list[Curve]:
    """Curves of trained, feasible trials numbered below ``before`` (running ones included)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        a = t.user_attrs
        if t.number >= before or not a.get("history") or a.get("train_key") != setup.train_key:
            continue
        if a.get("reused_from") is not None or any(c > 0 for c in (a.get("constraints") or {}).values()):
            continue
        costs = cost_values_from_attrs(a, setup.cost_objectives)
        if costs is None:
            continue
        dice = {int(h["epoch"]): float(h["dice"]) for h in a["history"]
                if h.get("dice") is not None and math.isfinite(h["dice"])}
        out.append(Curve(t.number, a.get("arch_id", ""), costs, dice))
    return out


def cost_values_from_attrs(attrs: dict[str, Any], names: list[str]) -> tuple[float, ...] | None:
    cost = attrs.get("cost")
    if not cost:
        return None
    vals = {"macs": cost["macs"] / 1e9, "params": float(cost["params"]),
            "latency": cost.get("latency_ms"), "memory": cost.get("memory_mb")}
    if any(vals[n] is None for n in names):
        return None
    return tuple(float(vals[n]) for n in names)


def find_duplicate(study: optuna.Study, aid: str, train_key: str, number: int,
                   poll_s: float = 2.0) -> Any:
    """The first COMPLETE, trained trial of the same architecture and training settings.

    If an earlier trial of the same network is still training (another worker), wait for
    it rather than train the network twice; stop waiting if it fails or its worker dies.
    """
    from nasseg.search.storage import stale_reason

    while True:
        running = None
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            a = t.user_attrs
            if t.number == number or a.get("arch_id") != aid or a.get("train_key") != train_key:
                continue
            if t.state == TrialState.COMPLETE and a.get("trained") and a.get("reused_from") is None:
                return t
            if (t.state == TrialState.RUNNING and t.number < number and "heartbeat" in a
                    and stale_reason(t, grace_s=600.0) is None):
                running = t
        if running is None:
            return None
        time.sleep(poll_s)


Trainer = Callable[..., Any]


def run_objective(setup: TrialSetup, handle: TrialHandle, study: optuna.Study,
                  make_arch: Callable[[], ArchConfig], device: str,
                  trainer: Trainer | None = None, on_epoch: Callable[[int, dict], None] | None = None,
                  ) -> Outcome:
    """Run one trial (see the module docstring) and return what to tell Optuna.

    Args:
        setup: the study's settings.
        handle: writes this trial's attributes.
        study: the study, for duplicates and the stopping rule's earlier curves.
        make_arch: samples (or replays) and validates the network; raises ConfigError.
        device: where to train and measure latency.
        trainer: ``train(arch, data, cfg, run_dir=, callback=, progress=)``; default
            :func:`nasseg.train.train`.
        on_epoch: optional progress hook ``(epoch, metrics)``.
    """
    from nasseg.cost import profile

    if trainer is None:
        from nasseg.train import train as trainer
    handle.set("seed", setup.seed)
    handle.set("train_key", setup.train_key)
    handle.set("stopped_early", False)
    try:
        cfg = make_arch()
    except ConfigError as err:
        return _fail(handle, f"invalid network: {err}")
    aid = arch_id(cfg)
    handle.set("arch", cfg.canonical())
    handle.set("arch_id", aid)
    try:
        cost = profile(cfg, setup.input_shape, device=device, latency=setup.needs_latency)
    except (NassegError, RuntimeError, ValueError) as err:
        return _fail(handle, f"cost counting failed: {type(err).__name__}: {err}")
    handle.set("cost", cost.to_dict())
    costs = cost_values(cost)
    constraints = {k: costs[k] - limit for k, limit in setup.limits.items()}
    handle.set("constraints", constraints)
    handle.set_constraints(constraints)

    def values(dice: float) -> list[float]:
        return [dice if o == "dice" else costs[o] for o in setup.objectives]

    over = [f"{k} {costs[k]:.4g} {COST_UNITS[k]} > max {lim:.4g}"
            for k, lim in setup.limits.items() if costs[k] > lim]
    if over:
        handle.set("constraint_violation", "; ".join(over))
        handle.set("trained", False)
        return Outcome("complete", values(0.0))
    dup = find_duplicate(study, aid, setup.train_key, handle.number)
    if dup is not None:
        for key in ("history", "stopped_early", "stop_reason", "split", "per_case", "best_epoch",
                    "epochs_run", "best"):
            if key in dup.user_attrs:
                handle.set(key, dup.user_attrs[key])
        handle.set("reused_from", dup.number)
        handle.set("trained", True)
        handle.set("train_seconds", 0.0)
        return Outcome("complete", values(dup.values[setup.objectives.index("dice")]))
    return _train(setup, handle, study, cfg, aid, costs, device, trainer, on_epoch, values)


def _train(setup: TrialSetup, handle: TrialHandle, study: optuna.Study, cfg: ArchConfig, aid: str,
           costs: dict[str, float], device: str, trainer: Trainer,
           on_epoch: Callable[[int, dict], None] | None, values: Callable[[float], list[float]]) -> Outcome:
    """Train with the stopping callback, writing the history after every validation."""
    curve = Curve(handle.number, aid, tuple(costs[o] for o in setup.cost_objectives))
    stopper = ParetoStopper(setup.early_stopping, curve,
                            lambda: load_curves(study, setup, handle.number), setup.train.epochs)
    history: list[dict] = []

    def callback(epoch: int, metrics: dict) -> bool:
        history.append(_json_safe(metrics))
        handle.set("history", history)
        handle.set("heartbeat", now_iso())
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        return stopper(epoch, metrics)

    run_dir = Path(setup.run_root) / f"trial_{handle.number:04d}" if setup.run_root else None
    tcfg = setup.train.model_copy(update={"device": device})
    t0 = time.perf_counter()
    with _heartbeat(handle, setup.heartbeat_s):
        try:
            res = trainer(cfg, setup.data, tcfg, run_dir=run_dir, callback=callback, progress=False)
        except TrainingFailed as err:
            handle.set("train_seconds", time.perf_counter() - t0)
            return _fail(handle, err.reason, epochs=len(err.history) or len(history))
        except ConfigError as err:
            return _fail(handle, f"network and data do not fit: {err}")
        except (RuntimeError, ValueError, MemoryError) as err:
            return _fail(handle, f"{type(err).__name__}: {err}", epochs=len(history))
    dice = float(res.best.get("dice", float("nan")))
    handle.set("history", _json_safe(res.history))
    handle.set("best", _json_safe(res.best))
    handle.set("best_epoch", res.best_epoch)
    handle.set("epochs_run", res.epochs_run)
    handle.set("stopped_early", bool(res.stopped_early))
    handle.set("stop_reason", stopper.reason if res.stop_reason == "callback" else res.stop_reason)
    handle.set("split", split_summary(res.split))
    handle.set("per_case", _json_safe(res.per_case))
    handle.set("train_seconds", float(res.seconds))
    handle.set("trained", True)
    if not math.isfinite(dice):
        return _fail(handle, "validation Dice is not finite", epochs=res.epochs_run)
    return Outcome("complete", values(dice), epochs_trained=res.epochs_run)


def _fail(handle: TrialHandle, reason: str, epochs: int = 0) -> Outcome:
    handle.set("fail_reason", reason)
    return Outcome("fail", reason=reason, epochs_trained=epochs)


class _heartbeat:
    """Write ``heartbeat`` every ``interval`` seconds in a daemon thread while training."""

    def __init__(self, handle: TrialHandle, interval: float) -> None:
        self.handle, self.interval = handle, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.handle.set("heartbeat", now_iso())
            except Exception:  # noqa: BLE001 - a missed heartbeat must not kill training
                pass

    def __enter__(self) -> _heartbeat:
        self.handle.set("heartbeat", now_iso())
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "item"):
        return _json_safe(x.item())
    return x


__all__ = ["OBJECTIVES", "Outcome", "TrialHandle", "TrialSetup", "cost_values", "run_objective"]
