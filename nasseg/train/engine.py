"""The training loop every trial, ablation and benchmark runs through."""
from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasseg.data import BatchFeeder, DataConfig, SegDataset, load_dataset, split_dataset
from nasseg.data.batches import default_patch
from nasseg.data.labels import check_trainable
from nasseg.data.plan import divisor as _divisor
from nasseg.data.plan import make_plan
from nasseg.errors import MEMORY_HINT, ConfigError, is_out_of_memory
from nasseg.train.config import TrainConfig
from nasseg.train.contract import inference_contract
from nasseg.train.divergence import DivergenceGuard
from nasseg.train.evaluate import evaluate
from nasseg.train.losses import SegLoss
from nasseg.train.progress import Progress
from nasseg.train.result import RunWriter, TrainingFailed, TrainResult
from nasseg.train.setup import Runtime, prepare_model, resident_device
from nasseg.versions import provenance, versions

Callback = Callable[[int, dict], "bool | None"]
StepHook = Callable[[int, int, int], None]
"""``on_step(epoch, step, steps_per_epoch)`` after every training step (cheap: no I/O there)."""


def train(arch: Any, data: DataConfig, cfg: TrainConfig, *, run_dir: Path | None = None,
          callback: Callback | None = None, progress: bool = True,
          on_step: StepHook | None = None) -> TrainResult:
    """Train a network on a dataset's training split, select on ``val``, score ``test`` once.

    The data is decoded once (and cached for later calls), moved to the training device
    when it fits, and batches are drawn and augmented there. After every ``eval_every``
    epochs (and the last) the held-out cases are predicted whole and scored per case;
    the epoch with the best mean validation Dice is kept (a copy of the weights where they
    live, written once to ``run_dir/checkpoint.pt`` when training ends); early stopping also
    looks at ``val`` only. The test cases are then scored once with those weights
    (``res.test``, ``res.test_per_case``).

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
            ``metrics.json``, ``per_case.csv`` (val), ``test_per_case.csv`` and
            ``checkpoint.pt``; ``None`` writes nothing.
        callback: ``callback(epoch, metrics)`` after each validation, ``metrics`` holding
            ``epoch, dice, iou, hd95, train_loss, lr, seconds`` (+ per class); returning
            True stops training (``stop_reason="callback"``).
        progress: show a rich progress bar.
        on_step: ``on_step(epoch, step, steps_per_epoch)`` after every training step
            (``nasseg search`` shows the position of running trials within long epochs).

    Returns:
        A :class:`TrainResult`; ``res.model`` holds the best weights.

    Raises:
        TrainingFailed: non-finite, exploding or collapsed training (see
            :mod:`nasseg.train.divergence`) or out of memory (``reason`` says where and
            which setting to lower).
        ConfigError: network and data disagree (dimensions, sizes the network cannot take).
        DataError: the dataset files are broken, or every training mask is empty.

    Example:
        >>> res = train(load_arch("cmunext_s"), resolve_data("synthetic"), TrainConfig(epochs=2))  # doctest: +SKIP
        >>> sorted(res.best), len(res.split["val"])  # doctest: +SKIP
        (['dice', 'hd95', 'iou'], 29)
    """
    t_start = time.perf_counter()
    rt = Runtime.create(cfg)
    try:
        return _train(arch, data, cfg, rt, run_dir, callback, progress, t_start, on_step)
    except TrainingFailed as err:
        RunWriter(run_dir).json("failed.json", {"reason": err.reason, "history": err.history})
        raise
    finally:
        rt.close()


def _train(arch: Any, data: DataConfig, cfg: TrainConfig, rt: Runtime, run_dir: Path | None,
           callback: Callback | None, show: bool, t_start: float, on_step: StepHook | None) -> TrainResult:
    _seed_everything(cfg.seed)
    ds = load_dataset(data)
    model, arch_json = prepare_model(arch, ds)
    divisor = _divisor(arch)
    plan = _plan(arch, ds, data, cfg, rt, show)
    batch_size = plan.batch_size if plan is not None else cfg.batch_size
    eval_batch = plan.eval_batch_size if plan is not None else cfg.eval_batch_size
    patch = plan.patch_size if plan is not None else _patch_size(data, ds, divisor)
    window = tuple(data.window_size) if data.window_size and patch else patch
    if window and any(w % divisor for w in window):
        raise ConfigError(f"data.window_size {window} is not divisible by {divisor}, which the network needs")
    split = split_dataset(ds, data.split)
    index = {c: i for i, c in enumerate(ds.case_ids)}
    store = resident_device(ds, rt.device, data.resident)
    train_ds = ds.subset([index[c] for c in split["train"]])
    check_trainable(train_ds.labels if not train_ds.fixed_size else [train_ds.labels], split["train"],
                    data.path or data.name)
    train_ds = train_ds.to(store)
    val_ds = ds.subset([index[c] for c in split["val"]]).to(store)
    guard = DivergenceGuard()
    guard.set_empty_dice(val_ds.labels, ds.num_classes)
    test_ds = ds.subset([index[c] for c in split["test"]]) if split["test"] else None
    model = model.to(rt.device, memory_format=rt.memory_format(ds.spatial_dims))
    rt.fixed_shapes(ds.fixed_size or patch is not None)
    step_model = torch.compile(model) if cfg.compile else model
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    if store.type == "cpu" and rt.device.type == "cuda" and isinstance(train_ds.images, (torch.Tensor, list)):
        train_ds, val_ds = _pinned(train_ds), _pinned(val_ds)
    feeder = BatchFeeder(train_ds, batch_size, data.augment, seed=cfg.seed, patch_size=patch,
                         device=rt.device, fg_fraction=data.plan.fg_fraction,
                         fg_classes=data.plan.fg_classes, steps_per_epoch=cfg.steps_per_epoch)
    total_steps = len(feeder) * cfg.epochs
    optimizer, scheduler = _optimizer(model, cfg, total_steps)
    loss_fn = SegLoss(ds.out_channels, cfg.ce_weight, cfg.dice_weight, cfg.ds_weights)
    scaler = torch.amp.GradScaler("cuda") if rt.amp_dtype == torch.float16 else None
    writer = RunWriter(run_dir)
    config = {"arch": arch_json, "data": data.model_dump(mode="json"), "train": cfg.model_dump(mode="json"),
              "resolved": {"device": str(rt.device), "amp": str(rt.amp_dtype), "patch_size": patch,
                           "batch_size": batch_size, "plan": plan.to_dict() if plan is not None else None,
                           "window_size": window, "threads": torch.get_num_threads(),
                           "compile": cfg.compile, "fused_optimizer": _fused(optimizer),
                           "data_on": str(store), "in_channels": ds.in_channels,
                           "out_channels": ds.out_channels, "num_params": num_params,
                           "train_cases": len(train_ds), "val_cases": len(val_ds),
                           "test_cases": len(split["test"]),
                           "scored_at": _scored_at(ds),
                           "distance_unit": "mm" if ds.spacing is not None else "voxels"},
              "inference": inference_contract(ds, split, divisor=divisor, window=window,
                                              size=data.size if ds.spatial_dims == 2 else None),
              "versions": versions(),
              "provenance": provenance(data=data, split=split, seeds=[cfg.seed], threads=torch.get_num_threads())}
    writer.json("config.json", config)
    writer.json("split.json", split)
    if plan is not None:
        plan.write(run_dir)

    history: list[dict] = []
    epoch_seconds: list[float] = []
    epoch_images: list[int] = []
    best: dict[str, Any] = {"dice": -math.inf}
    stop_reason, epochs_run, bad_evals = None, 0, 0
    mem_format = rt.memory_format(ds.spatial_dims)
    with Progress(show, cfg.epochs, len(feeder), on_step) as bar:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]  # the rate the epoch starts at (the schedule steps per batch)
            try:
                losses, n_images = _train_epoch(step_model, feeder, loss_fn, optimizer, scheduler, scaler,
                                                cfg, rt, mem_format, epoch, history, bar, guard)
            except (torch.OutOfMemoryError, RuntimeError, MemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                raise TrainingFailed(
                    f"{rt.device.type.upper()} out of memory at epoch {epoch} (batch {batch_size}, "
                    f"patch {patch or ds.shapes()[0]}, {num_params:,} parameters); {MEMORY_HINT}",
                    history) from None
            train_seconds = time.perf_counter() - t0
            epochs_run = epoch
            epoch_seconds.append(train_seconds)
            epoch_images.append(n_images)
            if epoch % cfg.eval_every and epoch != cfg.epochs:
                continue
            t1 = time.perf_counter()
            try:
                summary, rows = evaluate(model, val_ds, device=rt.device, patch=window, divisor=divisor,
                                         batch_size=eval_batch, overlap=cfg.sw_overlap,
                                         autocast=rt.autocast, memory_format=mem_format)
            except (torch.OutOfMemoryError, RuntimeError, MemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                raise TrainingFailed(f"{rt.device.type.upper()} out of memory validating epoch {epoch}; lower "
                                     f"train.eval_batch_size ({cfg.eval_batch_size})", history) from None
            eval_seconds = time.perf_counter() - t1
            record = {"epoch": epoch, "train_loss": float(torch.stack(losses).mean()), **summary,
                      "lr": lr, "seconds": train_seconds + eval_seconds,
                      "train_seconds": train_seconds, "eval_seconds": eval_seconds,
                      "images_per_s": n_images / max(train_seconds, 1e-9)}
            history.append(record)
            writer.csv("history.csv", history)
            guard.check_dice(history)
            bar.epoch_done(epoch, record)
            if summary["dice"] > best["dice"] + cfg.min_delta or not best.get("rows"):
                best = {"dice": summary["dice"], "epoch": epoch, "summary": summary, "rows": rows,
                        "state": _snapshot(model)}
                bad_evals = 0
            else:
                bad_evals += 1
            if callback is not None and callback(epoch, dict(record)):
                stop_reason = "callback"
            elif cfg.patience is not None and bad_evals >= cfg.patience:
                stop_reason = "patience"
            elif cfg.max_seconds is not None and sum(epoch_seconds) >= cfg.max_seconds:
                stop_reason = "time"
            if stop_reason:
                break

    model.load_state_dict(best["state"])
    model.eval()
    writer.checkpoint({"model": best["state"], "epoch": best["epoch"], "metrics": best["summary"], **config})
    test, test_rows = None, []
    if test_ds is not None:  # scored once, with the weights chosen on val
        test, test_rows = evaluate(model, test_ds.to(store), device=rt.device, patch=window,
                                   divisor=divisor, batch_size=cfg.eval_batch_size,
                                   overlap=cfg.sw_overlap, autocast=rt.autocast, memory_format=mem_format)
    result = TrainResult(best_epoch=best["epoch"], best=best["summary"], history=history,
                         per_case=best["rows"], test=test, test_per_case=test_rows,
                         split=split, stopped_early=stop_reason is not None,
                         stop_reason=stop_reason, seconds=time.perf_counter() - t_start,
                         epochs_run=epochs_run, num_params=num_params, config=config,
                         run_dir=str(run_dir) if run_dir is not None else None, model=model,
                         epoch_seconds=epoch_seconds, epoch_images=epoch_images)
    writer.csv("per_case.csv", result.per_case)
    writer.csv("test_per_case.csv", result.test_per_case)
    writer.json("metrics.json", {k: v for k, v in result.to_dict().items() if k not in ("config", "split")})
    return result


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


def _plan(arch: Any, ds: SegDataset, data: DataConfig, cfg: TrainConfig, rt: Runtime, show: bool):
    """The 3D plan (patch, batch) for volumes of varying shape; ``None`` for 2D, fixed-size
    data or a ready module (whose memory cannot be estimated from a config)."""
    if ds.spatial_dims != 3 or ds.fixed_size or isinstance(arch, nn.Module):
        return None
    if data.size is not None:
        raise ConfigError(f"data.size {data.size} (--size) resizes 2D images and sets the synthetic size; "
                          f"3D volumes are resampled to data.plan.target_spacing and trained on patches: "
                          f"use --patch-size or data.plan.target_spacing instead")
    d = _divisor(arch)
    if data.patch_size is not None:
        bad = [p for p in data.patch_size if p % d]
        if bad:
            raise ConfigError(f"data.patch_size {tuple(data.patch_size)} is not divisible by {d}, which the "
                              f"network's {int(math.log2(d)) + 1} stages need; choose a --patch-size that is")
    batch = cfg.batch_size if "batch_size" in cfg.model_fields_set else None
    plan = make_plan(arch, ds, device=rt.device.type, data_cfg=data, batch_size=batch,
                     eval_batch_size=cfg.eval_batch_size, dtype=rt.amp_dtype)
    if show:
        print(plan.describe(), flush=True)
    return plan


def _patch_size(data: DataConfig, ds: SegDataset, divisor: int) -> tuple[int, ...] | None:
    """Training patch (None = whole cases); checks sizes against the network's divisor."""
    if data.patch_size is not None:
        patch = tuple(data.patch_size)
        if len(patch) != ds.spatial_dims:
            raise ConfigError(f"data.patch_size {patch} has {len(patch)} axes but the data is {ds.spatial_dims}D")
    elif not ds.fixed_size:
        patch = default_patch(ds.shapes(), divisor)
    else:
        patch = None
    sizes = patch or ds.shapes()[0]
    bad = [s for s in sizes if s % divisor]
    if bad:
        what = f"data.patch_size {patch}" if patch else f"image size {tuple(sizes)}"
        option = "--patch-size" if patch else "--size"
        raise ConfigError(
            f"{what} is not divisible by {divisor}, which the network's "
            f"{int(math.log2(divisor)) + 1} stages need; choose a {option} that is"
        )
    return patch


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

