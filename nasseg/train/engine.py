"""The training loop every trial, ablation and benchmark runs through.

:func:`train` resolves the run once (:func:`nasseg.train.resolved.resolve_run`), then an
:class:`Engine` runs it in steps that a benchmark loop can call or observe through
:class:`Hooks`: ``train_epoch`` (``on_epoch_start``, ``on_step``, ``on_epoch_end``),
``validate`` (``on_eval``), ``score_test`` and ``finish``. Each epoch's state is written
to ``checkpoint_latest.pt`` (atomically), from which ``train(..., resume=True)`` continues
a killed run, as nnU-Net continues from its ``checkpoint_latest``.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasseg.data import BatchFeeder, DataConfig, SegDataset, load_dataset, split_dataset
from nasseg.data.labels import check_trainable
from nasseg.errors import MEMORY_HINT, ConfigError, is_out_of_memory
from nasseg.train.config import TrainConfig
from nasseg.train.contract import inference_contract
from nasseg.train.divergence import DivergenceGuard
from nasseg.train.evaluate import evaluate
from nasseg.train.losses import SegLoss
from nasseg.train.progress import Progress
from nasseg.train.resolved import ResolvedRun, resolve_run, with_eval_every
from nasseg.train.result import RunWriter, TrainingFailed, TrainResult, resumable
from nasseg.train.setup import Runtime, prepare_model, resident_device
from nasseg.versions import provenance, versions

Callback = Callable[[int, dict], "bool | None"]
StepHook = Callable[[int, int, int], None]
"""``on_step(epoch, step, steps_per_epoch)`` after every training step (cheap: no I/O there)."""

LATEST = "checkpoint_latest.pt"
"""The per-epoch state of a running training (weights, optimiser, schedule, RNGs, history)."""


@dataclass
class Hooks:
    """What the engine calls while it runs (every one optional).

    Attributes:
        on_epoch_start: ``(epoch)`` before the epoch's first step.
        on_step: ``(epoch, step, steps_per_epoch)`` after every training step (cheap: no I/O).
        on_epoch_end: ``(epoch, train_seconds, images)`` after the epoch's training pass;
            True ends training after this epoch, which is validated first.
        on_eval: ``(epoch, metrics)`` after each validation (``metrics``: ``epoch, dice,
            iou, hd95, train_loss, lr, seconds`` + per class); True stops training.
    """

    on_epoch_start: Callable[[int], None] | None = None
    on_step: StepHook | None = None
    on_epoch_end: Callable[[int, float, int], bool | None] | None = None
    on_eval: Callback | None = None


def train(arch: Any, data: DataConfig, cfg: TrainConfig, *, run_dir: Path | None = None,
          callback: Callback | None = None, progress: bool = True,
          on_step: StepHook | None = None, hooks: Hooks | None = None,
          resolved: ResolvedRun | None = None, resume: bool = False) -> TrainResult:
    """Train a network on a dataset's training split, select on ``val``, score ``test`` once.

    The data is decoded once (and cached for later calls), moved to the training device
    when it fits, and batches are drawn and augmented there. After every ``eval_every``
    epochs (the resolved run's: set, or planned on a CPU, :func:`with_eval_every`; and the
    last) the held-out cases are predicted whole and scored per case;
    the epoch with the best mean validation Dice is kept (a copy of the weights where they
    live, written once to ``run_dir/checkpoint.pt`` when training ends); early stopping also
    looks at ``val`` only. The test cases are then scored once with those weights
    (``res.test``, ``res.test_per_case``), at the evaluation batch validation uses.

    On CUDA a training step never waits for the GPU: batches are drawn and augmented on
    the device, mixed precision is bf16 (fp16 with a gradient scaler whose inf check
    the fused optimiser reads on the device), the optimiser is fused, the losses stay on
    the device and are read once per epoch. ``cfg.compile`` wraps the network in
    :func:`torch.compile`; cuDNN's autotuner is on while batch shapes are fixed.

    Args:
        arch: an ``ArchConfig`` (its ``in_channels``/``out_channels`` are set from the
            data) or a ready ``nn.Module`` whose channels already match the data.
        data: the dataset and its split.
        cfg: optimiser, schedule, loss, stopping, device settings.
        run_dir: folder for ``config.json``, ``split.json``, ``history.csv``,
            ``metrics.json``, ``per_case.csv`` (val), ``test_per_case.csv``,
            ``checkpoint.pt`` and, while training, ``checkpoint_latest.pt``; ``None``
            writes nothing.
        callback: ``callback(epoch, metrics)`` after each validation (as ``hooks.on_eval``);
            returning True stops training (``stop_reason="callback"``).
        progress: show a rich progress bar.
        on_step: ``on_step(epoch, step, steps_per_epoch)`` after every training step
            (``nasseg search`` shows the position of running trials within long epochs).
        hooks: the other hooks (:class:`Hooks`).
        resolved: the run as decided before (a search's admission resolved it to know its
            memory); ``None`` resolves it here.
        resume: continue from ``run_dir/checkpoint_latest.pt`` (a killed run) with its
            recorded resolved run, history and random states.

    Returns:
        A :class:`TrainResult`; ``res.model`` holds the best weights.

    Raises:
        TrainingFailed: non-finite, exploding or collapsed training (see
            :mod:`nasseg.train.divergence`) or out of memory (``reason`` says where and
            which setting to lower).
        ConfigError: network and data disagree (dimensions, sizes the network cannot take),
            or ``resume`` without a killed run in ``run_dir`` (:func:`~nasseg.train.result.resumable`).
        DataError: the dataset files are broken, or every training mask is empty.

    Example:
        >>> res = train(load_arch("cmunext_s"), resolve_data("synthetic"), TrainConfig(epochs=2))  # doctest: +SKIP
        >>> sorted(res.best), len(res.split["val"])  # doctest: +SKIP
        (['dice', 'hd95', 'iou'], 29)
    """
    t_start = time.perf_counter()
    hooks = replace(hooks or Hooks(), **{k: v for k, v in (("on_eval", callback), ("on_step", on_step)) if v})
    latest = _latest(run_dir) if resume else None
    if latest is not None:
        resolved = ResolvedRun.from_dict(latest["resolved"])
    _seed_everything(cfg.seed)
    ds = load_dataset(data)
    model, arch_json = prepare_model(arch, ds)
    run = resolved or resolve_run(arch, ds, data, cfg)
    rt = Runtime.create(cfg, run)
    try:
        engine = Engine(run, rt, model, arch_json, ds, data, cfg, run_dir=run_dir, hooks=hooks)
        if progress and run.plan is not None:
            print(engine.run.describe(), flush=True)
        start = engine.restore(latest) if latest is not None else 1
        return engine.fit(start, progress, t_start)
    except TrainingFailed as err:
        RunWriter(run_dir).json("failed.json", {"reason": err.reason, "history": err.history})
        raise
    finally:
        rt.close()


def _latest(run_dir: Path | None) -> dict[str, Any]:
    return torch.load(resumable(run_dir) / LATEST, weights_only=False, map_location="cpu")


class Engine:
    """One training run in steps (see the module docstring); :func:`train` drives it.

    Args:
        run: the resolved run (device, precision, patch, batch, evaluation batch).
        rt: the process's runtime for it (:class:`~nasseg.train.setup.Runtime`).
        model, arch_json: from :func:`~nasseg.train.setup.prepare_model`.
        ds, data, cfg: the loaded dataset, its config, the training config.
        run_dir: the run folder (``None``: nothing written).
        hooks: :class:`Hooks`.
    """

    def __init__(self, run: ResolvedRun, rt: Runtime, model: nn.Module, arch_json: dict[str, Any],
                 ds: SegDataset, data: DataConfig, cfg: TrainConfig, *, run_dir: Path | None = None,
                 hooks: Hooks | None = None) -> None:
        self.run, self.rt, self.ds, self.data, self.cfg = run, rt, ds, data, cfg
        self.hooks, self.run_dir = hooks or Hooks(), run_dir
        self.split = split_dataset(ds, data.split)
        index = {c: i for i, c in enumerate(ds.case_ids)}
        self.store = resident_device(ds, rt.device, data.resident)
        train_ds = ds.subset([index[c] for c in self.split["train"]])
        check_trainable(train_ds.labels if not train_ds.fixed_size else [train_ds.labels], self.split["train"],
                        data.path or data.name)
        train_ds = train_ds.to(self.store)
        val_ds = ds.subset([index[c] for c in self.split["val"]]).to(self.store)
        self.guard = DivergenceGuard()
        self.guard.set_empty_dice(val_ds.labels, ds.num_classes)
        self.test_ds = ds.subset([index[c] for c in self.split["test"]]) if self.split["test"] else None
        self.mem_format = rt.memory_format(ds.spatial_dims)
        self.model = model.to(rt.device, memory_format=self.mem_format)
        rt.fixed_shapes(ds.fixed_size or run.patch is not None)
        self.step_model = torch.compile(self.model) if cfg.compile else self.model
        self.num_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if self.store.type == "cpu" and rt.device.type == "cuda" and isinstance(train_ds.images, (torch.Tensor, list)):
            train_ds, val_ds = _pinned(train_ds), _pinned(val_ds)
        self.train_ds, self.val_ds = train_ds, val_ds
        self.feeder = BatchFeeder(train_ds, run.batch_size, data.augment, seed=cfg.seed, patch_size=run.patch,
                                  device=rt.device, fg_fraction=data.plan.fg_fraction,
                                  fg_classes=data.plan.fg_classes, steps_per_epoch=cfg.steps_per_epoch)
        self.run = run = with_eval_every(run, len(self.feeder), len(val_ds))
        self.optimizer, self.scheduler = _optimizer(self.model, cfg, len(self.feeder) * cfg.epochs)
        self.loss_fn = SegLoss(ds.out_channels, cfg.ce_weight, cfg.dice_weight, cfg.ds_weights)
        self.scaler = torch.amp.GradScaler("cuda") if rt.amp_dtype == torch.float16 else None
        self.writer = RunWriter(run_dir)
        self.config = self._config(arch_json)
        self.history: list[dict] = []
        self.epoch_seconds: list[float] = []
        self.epoch_images: list[int] = []
        self.best: dict[str, Any] = {"dice": -math.inf}
        self.stop_reason: str | None = None
        self.epochs_run, self.bad_evals = 0, 0
        self._end_requested = False

    def _config(self, arch_json: dict[str, Any]) -> dict[str, Any]:
        run, ds, data, cfg, split = self.run, self.ds, self.data, self.cfg, self.split
        return {"arch": arch_json, "data": data.model_dump(mode="json"), "train": cfg.model_dump(mode="json"),
                "resolved": {**run.to_dict(), "amp": str(self.rt.amp_dtype), "patch_size": run.patch,
                             "plan": run.plan.to_dict() if run.plan is not None else None,
                             "window_size": run.window, "compile": cfg.compile,
                             "fused_optimizer": _fused(self.optimizer),
                             "data_on": str(self.store), "in_channels": ds.in_channels,
                             "out_channels": ds.out_channels, "num_params": self.num_params,
                             "train_cases": len(self.train_ds), "val_cases": len(self.val_ds),
                             "test_cases": len(split["test"]), "scored_at": _scored_at(ds),
                             "distance_unit": "mm" if ds.spacing is not None else "voxels"},
                "inference": inference_contract(ds, split, divisor=run.size_multiple, window=run.window,
                                                size=data.size if ds.spatial_dims == 2 else None),
                "versions": versions(),
                "provenance": {**provenance(data=data, split=split, seeds=[cfg.seed],
                                            threads=torch.get_num_threads()), "resolved": run.to_dict()}}

    def fit(self, start: int = 1, show: bool = False, t_start: float | None = None) -> TrainResult:
        """Epochs ``start..cfg.epochs`` (until a stop), then the test scoring and the result files."""
        t_start = time.perf_counter() if t_start is None else t_start
        if start == 1:
            self.writer.json("config.json", self.config)
            self.writer.json("split.json", self.split)
            if self.run.plan is not None:
                self.run.plan.write(self.run_dir)
        with Progress(show, self.cfg.epochs, len(self.feeder), self.hooks.on_step) as bar:
            bar.n = (start - 1) * len(self.feeder)
            for epoch in range(start, self.cfg.epochs + 1):
                losses, n_images, seconds = self.train_epoch(epoch, bar)
                ending = self._ending_reason()
                if ending or epoch == self.cfg.epochs or epoch % self.run.eval_every == 0:
                    self.validate(epoch, losses, n_images, seconds, bar)
                    self.stop_reason = self.stop_reason or ending
                self.save_latest(epoch)
                if self.stop_reason:
                    break
        return self.finish(t_start)

    def train_epoch(self, epoch: int, bar: Progress) -> tuple[list[torch.Tensor], int, float]:
        """One pass over the training batches: ``(losses, images, seconds)``."""
        if self.hooks.on_epoch_start is not None:
            self.hooks.on_epoch_start(epoch)
        self._epoch_lr = self.optimizer.param_groups[0]["lr"]  # the rate the epoch starts at (per-batch schedule)
        t0 = time.perf_counter()
        try:
            losses, n_images = _train_epoch(self.step_model, self.feeder, self.loss_fn, self.optimizer,
                                            self.scheduler, self.scaler, self.cfg, self.rt, self.mem_format,
                                            epoch, self.history, bar, self.guard)
        except (torch.OutOfMemoryError, RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise TrainingFailed(
                f"{self.rt.device.type.upper()} out of memory at epoch {epoch} (batch {self.run.batch_size}, "
                f"patch {self.run.patch or self.ds.shapes()[0]}, {self.num_params:,} parameters); {MEMORY_HINT}",
                self.history) from None
        seconds = time.perf_counter() - t0
        self.epochs_run = epoch
        self.epoch_seconds.append(seconds)
        self.epoch_images.append(n_images)
        if self.hooks.on_epoch_end is not None and self.hooks.on_epoch_end(epoch, seconds, n_images):
            self._end_requested = True
        return losses, n_images, seconds

    def _ending_reason(self) -> str | None:
        """Why training ends after this epoch (validated first), or ``None``: a hook asked
        (``on_epoch_end`` returned True) or ``max_seconds`` of training have passed."""
        if self._end_requested:
            return "callback"
        if self.cfg.max_seconds is not None and sum(self.epoch_seconds) >= self.cfg.max_seconds:
            return "time"
        return None

    def evaluate(self, ds: SegDataset, what: str) -> tuple[dict[str, Any], list[dict]]:
        """Score ``ds`` whole, at the resolved evaluation batch, inside the out-of-memory guard."""
        try:
            return evaluate(self.model, ds, device=self.rt.device, patch=self.run.window,
                            divisor=self.run.size_multiple, batch_size=self.run.eval_batch_size,
                            overlap=self.cfg.sw_overlap, autocast=self.rt.autocast, memory_format=self.mem_format)
        except (torch.OutOfMemoryError, RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise TrainingFailed(f"{self.rt.device.type.upper()} out of memory {what} at evaluation batch "
                                 f"{self.run.eval_batch_size}; lower train.eval_batch_size", self.history) from None

    def validate(self, epoch: int, losses: list[torch.Tensor], n_images: int, train_seconds: float,
                 bar: Progress) -> dict[str, Any]:
        """Score ``val``, record the epoch, keep the best weights, decide whether to stop."""
        lr = self._epoch_lr
        t1 = time.perf_counter()
        summary, rows = self.evaluate(self.val_ds, f"validating epoch {epoch}")
        eval_seconds = time.perf_counter() - t1
        record = {"epoch": epoch, "train_loss": float(torch.stack(losses).mean()), **summary,
                  "lr": lr, "seconds": train_seconds + eval_seconds,
                  "train_seconds": train_seconds, "eval_seconds": eval_seconds,
                  "images_per_s": n_images / max(train_seconds, 1e-9)}
        self.history.append(record)
        self.writer.csv("history.csv", self.history)
        self.guard.check_dice(self.history)
        bar.epoch_done(epoch, record)
        if summary["dice"] > self.best["dice"] + self.cfg.min_delta or not self.best.get("rows"):
            self.best = {"dice": summary["dice"], "epoch": epoch, "summary": summary, "rows": rows,
                         "state": _snapshot(self.model)}
            self.bad_evals = 0
        else:
            self.bad_evals += 1
        if self.hooks.on_eval is not None and self.hooks.on_eval(epoch, dict(record)):
            self.stop_reason = "callback"
        elif self.cfg.patience is not None and self.bad_evals >= self.cfg.patience:
            self.stop_reason = "patience"
        return record

    def save_latest(self, epoch: int) -> None:
        """Write the state after ``epoch`` to ``checkpoint_latest.pt`` (atomically)."""
        if self.run_dir is None:
            return
        self.writer.save(LATEST, {
            "epoch": epoch, "resolved": self.run.to_dict(), "settings": self._settings(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": self.history, "epoch_seconds": self.epoch_seconds, "epoch_images": self.epoch_images,
            "best": self.best, "bad_evals": self.bad_evals, "stop_reason": self.stop_reason,
            "guard": vars(self.guard), "rng": _rng_state(self.feeder)})

    def _settings(self) -> dict[str, Any]:
        return {k: self.config[k] for k in ("arch", "data", "train")}

    def restore(self, latest: dict[str, Any]) -> int:
        """Load a ``checkpoint_latest.pt``'s state; returns the epoch to continue at.

        Raises:
            ConfigError: the command's network, data or training settings differ from the
                killed run's (the first difference named).
        """
        changed = _first_difference(latest["settings"], self._settings())
        if changed is not None:
            where, before, now = changed
            raise ConfigError(f"--resume {self.run_dir}: {where} is {now!r} here but was {before!r} in the killed "
                              f"run; resume with the same command")
        dev = self.rt.device
        self.model.load_state_dict(latest["model"])
        self.optimizer.load_state_dict(latest["optimizer"])
        self.scheduler.load_state_dict(latest["scheduler"])
        if self.scaler is not None and latest["scaler"] is not None:
            self.scaler.load_state_dict(latest["scaler"])
        self.history, self.bad_evals = latest["history"], latest["bad_evals"]
        self.epoch_seconds, self.epoch_images = latest["epoch_seconds"], latest["epoch_images"]
        best = latest["best"]
        if "state" in best:
            best["state"] = {k: v.to(dev) for k, v in best["state"].items()}
        self.best, self.stop_reason = best, latest["stop_reason"]
        vars(self.guard).update(latest["guard"])
        self.epochs_run = latest["epoch"]
        _set_rng_state(self.feeder, latest["rng"])
        return latest["epoch"] + 1

    def score_test(self) -> tuple[dict[str, Any] | None, list[dict]]:
        """Score ``test`` once with the loaded (best) weights."""
        if self.test_ds is None:
            return None, []
        return self.evaluate(self.test_ds.to(self.store), "scoring the test cases")

    def finish(self, t_start: float) -> TrainResult:
        """Load the best weights, write ``checkpoint.pt``, score ``test``, write the result files."""
        best, model = self.best, self.model
        model.load_state_dict(best["state"])
        model.eval()
        self.writer.checkpoint({"model": best["state"], "epoch": best["epoch"], "metrics": best["summary"],
                                **self.config})
        test, test_rows = self.score_test()
        result = TrainResult(best_epoch=best["epoch"], best=best["summary"], history=self.history,
                             per_case=best["rows"], test=test, test_per_case=test_rows,
                             split=self.split, stopped_early=self.stop_reason is not None,
                             stop_reason=self.stop_reason, seconds=time.perf_counter() - t_start,
                             epochs_run=self.epochs_run, num_params=self.num_params, config=self.config,
                             run_dir=str(self.run_dir) if self.run_dir is not None else None, model=model,
                             epoch_seconds=self.epoch_seconds, epoch_images=self.epoch_images)
        w = self.writer
        w.csv("per_case.csv", result.per_case)
        w.csv("test_per_case.csv", result.test_per_case)
        w.json("metrics.json", {k: v for k, v in result.to_dict().items() if k not in ("config", "split")})
        if self.run_dir is not None:
            (Path(self.run_dir) / LATEST).unlink(missing_ok=True)  # finished: checkpoint.pt is the result
        return result


def _first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """``(dotted key, a's value, b's value)`` of the first difference of two JSON-like values.

    Example:
        >>> _first_difference({"train": {"epochs": 3}}, {"train": {"epochs": 5}})
        ('train.epochs', 3, 5)
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(dict.fromkeys([*a, *b])):
            d = _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
            if d is not None:
                return d
        return None
    return None if a == b else (where, a, b)


def _rng_state(feeder: BatchFeeder) -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "feeder_np": feeder.rng.bit_generator.state, "feeder_gen": feeder.gen.get_state(),
            "feeder_order": feeder._order_gen.get_state()}


def _set_rng_state(feeder: BatchFeeder, st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    feeder.rng.bit_generator.state = st["feeder_np"]
    feeder.gen.set_state(st["feeder_gen"])
    feeder._order_gen.set_state(st["feeder_order"])


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights on their own device (no host copy, no file)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fused(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer.defaults.get("fused"))


def _scored_at(ds: SegDataset) -> str:
    """Where metrics are computed, in words: ``"native size 96x96"`` or ``"native size (varies)"``."""
    shapes = {tuple(t.shape) for t in ds.native_labels} if ds.native_labels is not None else set(ds.shapes())
    size = "x".join(map(str, next(iter(shapes)))) if len(shapes) == 1 else "(sizes vary)"
    return f"native size {size}"


def _pinned(ds: SegDataset) -> SegDataset:
    if ds.fixed_size:
        return replace(ds, images=ds.images.pin_memory(), labels=ds.labels.pin_memory())
    return replace(ds, images=[t.pin_memory() for t in ds.images], labels=[t.pin_memory() for t in ds.labels])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _optimizer(model: nn.Module, cfg: TrainConfig, total_steps: int):
    """The optimiser (fused: one kernel per step, no host read of the step count or of
    the gradient scaler's inf flag; the unfused one where a device lacks it) and the
    per-step learning-rate schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        kind, kw = torch.optim.SGD, {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay}
    else:
        kind, kw = torch.optim.AdamW, {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    try:
        opt = kind(params, fused=True, **kw)
    except RuntimeError:  # fused kernels missing for this device or dtype
        opt = kind(params, **kw)
    warm, total = cfg.warmup_steps, max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(total - warm, 1))
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if cfg.schedule == "poly":
            return (1 - t) ** cfg.poly_power
        return 1.0

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _train_epoch(model, feeder, loss_fn, optimizer, scheduler, scaler, cfg: TrainConfig, rt: Runtime,
                 mem_format, epoch: int, history: list[dict], bar: Progress,
                 guard: DivergenceGuard | None = None) -> tuple[list[torch.Tensor], int]:
    """One pass over the training batches; returns the per-step losses (device tensors,
    not read here except by the divergence checks) and the image count."""
    model.train()
    guard = guard or DivergenceGuard()
    losses: list[torch.Tensor] = []
    n_images, checked = 0, 0
    for step, (x, y) in enumerate(feeder.epoch(), start=1):
        x = x.to(rt.device, non_blocking=True).contiguous(memory_format=mem_format)
        y = y.to(rt.device, non_blocking=True)
        losses.append(train_step(model, x, y, loss_fn, optimizer, scheduler, scaler, rt.autocast,
                                 cfg.max_grad_norm))
        n_images += x.shape[0]
        if rt.check_interval and step % rt.check_interval == 0:
            checked = guard.check(losses, checked, epoch, history)
        bar.step(losses[-1])
    guard.check(losses, checked, epoch, history)
    return losses, n_images


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module,
               optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler | None,
               autocast: Callable = contextlib.nullcontext, max_grad_norm: float | None = None) -> torch.Tensor:
    """One optimiser step on a batch; returns the loss as a detached tensor on the device.

    Nothing here reads a value back to the host (no ``.item()``, no data-dependent
    shapes), so on CUDA the CPU queues the next batch while the GPU still computes
    (``tests/test_train_gpu_path.py`` checks this op by op).

    Example:
        >>> loss = train_step(net, x, y, SegLoss(1), opt, sched, None)  # doctest: +SKIP
        >>> loss.device == x.device, loss.requires_grad  # doctest: +SKIP
        (True, False)
    """
    with autocast():
        loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if max_grad_norm:
            scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_grad_norm:
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    return loss.detach()

