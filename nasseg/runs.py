"""Train one configuration, evaluate it, record it: the one path of search trials and
ablation runs.

:func:`train_and_record` trains a network with :func:`nasseg.train.train` (or a given
trainer), writes a ``heartbeat`` and the training ``progress`` (epoch, step) into the
trial's record while it trains, and records
what the training result holds: per-epoch ``history``, the best validation metrics
(``best``; ``metrics["val"]``) and, when the run was evaluated on a test split,
``metrics["test"]`` (the sampler and the front only ever see validation values),
``best_epoch``, ``epochs_run``, ``stopped_early``/``stop_reason``, the ``split`` summary,
``per_case`` (and ``test_per_case``), ``train_seconds`` and the best weights' ``checkpoint`` path (``run_dir/
checkpoint.pt``, for ``nasseg predict study.yaml#N``). A failure records ``fail_reason``.

Example:
    >>> run = train_and_record(TrialWriter(study.ask()), arch, data, tcfg, run_dir=Path("runs/x"))
    >>> run.ok, run.dice
    (True, 0.81)
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from nasseg.data import load_dataset
from nasseg.data.splits import resume_split
from nasseg.errors import ConfigError
from nasseg.store.read import split_summary, trial_record
from nasseg.store.storage import now_iso

Trainer = Callable[..., Any]
"""``train(arch, data, cfg, run_dir=, callback=, progress=, on_step=)`` -> TrainResult."""

PROGRESS_S = 5.0
"""Seconds between writes of a running trial's ``progress`` (and heartbeat)."""

__all__ = ["Run", "STUDY_THREADS", "Trainer", "degenerate", "study_data", "train_and_record"]

STUDY_THREADS = 1
"""torch CPU threads of study runs whose ``train.num_threads`` is ``auto`` (fixed, so that
results do not depend on the machine's load; recorded in each run's provenance)."""


@dataclass
class Run:
    """What one training run gave: ``ok`` with the best validation ``dice``, or ``reason``."""

    ok: bool
    dice: float = float("nan")
    reason: str | None = None
    epochs: int = 0
    result: Any = None


def train_or_continue(trainer: Trainer, note: Callable[..., Any], arch: Any, data: Any, tcfg: Any, *,
                      run_dir: Path | None, **kw: Any) -> Any:
    """``trainer(...)``, continuing a killed run of the same settings from ``run_dir``'s
    ``checkpoint_latest.pt`` (a study's run folder is its variant and seed, its trial, or a
    confirmation's member and seed) at the epoch after its last, as ``nasseg train --resume``
    does, and calling ``note(resumed=True)``. A killed run of other settings is trained anew,
    with ``note(resume_refused=why)`` (a trial's writer records either)."""
    from nasseg.train.result import can_resume  # lazy: torch; nasseg.ablation, which imports this module, is read without it

    if run_dir is None or not can_resume(run_dir):
        return trainer(arch, data, tcfg, run_dir=run_dir, **kw)
    try:
        res = trainer(arch, data, tcfg, run_dir=run_dir, resume=True, **kw)
    except ConfigError as err:
        if not str(err).startswith("--resume"):
            raise
        note(resume_refused=str(err))
        return trainer(arch, data, tcfg, run_dir=run_dir, **kw)
    note(resumed=True)
    return res


def train_and_record(writer: Any, arch: Any, data: Any, tcfg: Any, *, device: str | None = None,
                     run_dir: Path | None = None,
                     trainer: Trainer | None = None, callback: Callable[[int, dict], bool] | None = None,
                     progress: bool = False, heartbeat_s: float = 30.0, degenerate_fails: bool = False) -> Run:
    """Train ``arch`` on ``data`` with ``tcfg`` and record the run through ``writer``.

    Args:
        writer: a :class:`~nasseg.store.write.TrialWriter` (or anything with ``set(**fields)``).
        arch, data, tcfg: the ArchConfig, DataConfig and TrainConfig.
        device: the resolved device this run trains on (e.g. ``cuda:1``); ``None`` keeps
            ``tcfg.device``. A runtime choice: it is not part of the recorded settings.
        run_dir: the run folder (its ``checkpoint.pt`` is recorded as ``checkpoint``).
        trainer: default :func:`nasseg.train.train`.
        callback: per-validation hook; True stops training.
        degenerate_fails: a network that never predicted foreground (:func:`degenerate`)
            is a failed run (ablations: it is not a measurement of the architecture).
        heartbeat_s: seconds between heartbeats (at most :data:`PROGRESS_S`, the interval
            at which ``progress = {epoch, step, steps}`` is written for ``nasseg search``'s display).

    Returns:
        A :class:`Run`; failures (non-finite loss, out of memory, network and data that do
        not fit) are recorded and returned, never raised.
    """
    from nasseg.train import TrainingFailed  # lazy: torch; nasseg.ablation, which imports this module, is read without it

    if trainer is None:
        from nasseg.train import train as trainer  # lazy: torch; nasseg.ablation, which imports this module, is read without it
    if getattr(tcfg, "num_threads", None) == "auto":
        # studies compare runs: a thread count picked from the machine's load would change
        # results from run to run, so studies use a fixed one unless they set their own
        tcfg = tcfg.model_copy(update={"num_threads": STUDY_THREADS})
    history: list[dict] = []

    def on_epoch(epoch: int, metrics: dict) -> bool:
        history.append(dict(metrics))
        writer.set(history=history, heartbeat=now_iso())
        return bool(callback(epoch, metrics)) if callback is not None else False

    position: dict[str, int] = {}

    def on_step(epoch: int, step: int, steps: int) -> None:
        position.update(epoch=epoch, step=step, steps=steps)

    if device is not None:
        tcfg = tcfg.model_copy(update={"device": device})
    t0 = time.perf_counter()
    with _Heartbeat(writer, min(heartbeat_s, PROGRESS_S), position):
        try:
            res = train_or_continue(trainer, writer.set, arch, data, tcfg, run_dir=run_dir, callback=on_epoch,
                                    progress=progress, on_step=on_step)
        except TrainingFailed as err:
            writer.set(train_seconds=time.perf_counter() - t0)
            return _fail(writer, err.reason, len(err.history) or len(history))
        except ConfigError as err:
            return _fail(writer, f"network and data do not fit: {err}")
        except (RuntimeError, ValueError, MemoryError) as err:
            return _fail(writer, f"{type(err).__name__}: {err}", len(history))
    dice = float(res.best.get("dice", float("nan")))
    metrics = {"val": res.best}
    for name in ("test", "test_best", "test_metrics"):
        if getattr(res, name, None):
            metrics["test"] = getattr(res, name)
            break
    checkpoint = Path(run_dir) / "checkpoint.pt" if run_dir is not None else None
    writer.set(history=res.history, best=res.best, metrics=metrics, best_epoch=res.best_epoch,
               epochs_run=res.epochs_run, stopped_early=bool(res.stopped_early), stop_reason=res.stop_reason,
               split=split_summary(res.split), per_case=res.per_case, train_seconds=float(res.seconds),
               trained=True)
    if getattr(res, "test_per_case", None):
        writer.set(test_per_case=res.test_per_case)
    if (resolved := (getattr(res, "config", None) or {}).get("provenance", {}).get("resolved")) is not None:
        writer.set(resolved=resolved)  # device, precision, threads, patch, batch, memory budget as trained
    if checkpoint is not None and checkpoint.exists():
        writer.set(checkpoint=str(checkpoint.resolve()))
    if not math.isfinite(dice):
        return _fail(writer, "validation Dice is not finite", res.epochs_run)
    if degenerate_fails and (why := degenerate(res)):
        return _fail(writer, why, res.epochs_run)
    return Run(True, dice, epochs=res.epochs_run, result=res)


def degenerate(res: Any) -> str | None:
    """``"degenerate: ..."`` when a trained network never predicted any foreground: at every
    validation epoch every (case, class) prediction was empty (``n_empty_pred``) and no test
    case has a foreground voxel; ``None`` otherwise (or when the counts were not recorded)."""
    rows = len(res.per_case or [])
    empty = [h.get("n_empty_pred") for h in res.history or []]
    if not rows or not empty or any(n is None or n < rows for n in empty):
        return None
    if any((r.get("pred_voxels") or 0) > 0 for r in getattr(res, "test_per_case", None) or []):
        return None
    return (f"degenerate: predicted no foreground on any validation case in {len(empty)} epoch"
            f"{'s' if len(empty) != 1 else ''} (Dice {float(res.best.get('dice', float('nan'))):.3f}, the score "
            "of an empty prediction); left out of the statistics")


def _fail(writer: Any, reason: str, epochs: int = 0) -> Run:
    writer.set(fail_reason=reason)
    return Run(False, reason=reason, epochs=epochs)


class _Heartbeat:
    """Write ``heartbeat`` (and ``progress``, the trainer's last position, when it moved)
    every ``interval`` seconds in a daemon thread while training."""

    def __init__(self, writer: Any, interval: float, position: dict[str, int]) -> None:
        self.writer, self.interval, self.position = writer, interval, position
        self.written: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                moved = dict(self.position)
                if moved and moved != self.written:
                    self.writer.set(heartbeat=now_iso(), progress=moved)
                    self.written = moved
                else:
                    self.writer.set(heartbeat=now_iso())
            except Exception:  # noqa: BLE001 - a missed heartbeat must not kill training
                pass

    def __enter__(self) -> _Heartbeat:
        self.writer.set(heartbeat=now_iso())
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def study_data(data: Any, study: Any, folder: Path) -> Any:
    """The ``DataConfig`` a resumed study's new runs use: ``data``, with the split pinned to
    the one its completed runs recorded when that split was made before near-duplicate
    families were grouped (:func:`nasseg.data.splits.resume_split`), so that old and new runs
    stay paired. A study without completed runs is returned as is, without loading its data.

    Args:
        data: the study's ``DataConfig``.
        study: its Optuna study.
        folder: its output folder (where a pinned split is written).
    """
    done = {(trial_record(t).split or {}).get("hash")
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if not done:
        return data
    split = resume_split(load_dataset(data), data.split, lambda s: split_summary(s)["hash"] in done, folder)
    return data if split is data.split else data.model_copy(update={"split": split})
