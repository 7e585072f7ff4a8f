"""The resolved run: how one training run computes, decided once, frozen and recorded.

Device, precision, CPU threads, the network's size multiple, the training patch (or image
size), batch, evaluation batch and memory budget are decided here and nowhere else; the
engine, the cost profile and a search's admission take a :class:`ResolvedRun` instead of
deciding again from the settings. Every choice is a function of the settings, the data and
the machine's fixed properties (its cores, a GPU's total memory), never of the load at
the moment, so the same command plans and trains the same way on an idle and on a busy
machine. The run folder's ``config.json`` (``resolved``) and a search trial's record keep it.

Example:
    >>> run = resolve_run(load_arch("cmunext_s"), load_dataset(resolve_data("synthetic")),
    ...                   resolve_data("synthetic"), TrainConfig(device="cpu"))  # doctest: +SKIP
    >>> run.precision, run.threads, run.size_multiple, run.batch_size  # doctest: +SKIP
    ('fp32', 2, 16, 8)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import nn

from nasseg.arch.config import check_divisible
from nasseg.data.base import SegDataset
from nasseg.data.batches import default_patch
from nasseg.data.plan import VAL_SHARE, Plan, divisor, make_plan
from nasseg.device import resolve_device, resolve_precision
from nasseg.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]

AUTO_THREADS_CAP = 8
"""Most torch CPU threads ``num_threads: auto`` resolves to (small U-Nets gain little beyond)."""

DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""The autocast dtype of each precision (``None``: no autocast)."""


@dataclass(frozen=True)
class ResolvedRun:
    """How a run computes (see the module docstring).

    Attributes:
        device: ``cpu`` or ``cuda[:N]``.
        precision: activations under autocast: ``fp32`` (no autocast; always on the CPU),
            ``bf16`` or ``fp16``.
        threads: torch CPU threads (``None``: the process's setting is left alone).
        threads_source: where ``threads`` came from (``"set"`` or the ``auto`` rule).
        size_multiple: every spatial input size must be a multiple of it (from the
            network's stage count only, :func:`nasseg.data.plan.divisor`; 1 for a ready module).
        input_shape: ``(channels, *spatial)`` of one training sample (the patch or image).
        patch: the training patch (``None``: whole images).
        window: the sliding window of evaluation (``None``: whole images).
        batch_size: samples per training step.
        eval_batch_size: cases (2D) or sliding windows (3D) per evaluation forward pass,
            used for validation and test alike.
        memory_budget_mb: the budget the 3D plan fit a step into (``None`` without a plan);
            on the CPU the plan also fit the step into a time budget at :attr:`threads`
            (``plan.time_budget_s``, ``plan.step_seconds``).
        budget_source: where the budget came from.
        plan: the 3D plan (``None`` for 2D or fixed-size data).
        eval_every: validate every N epochs (and after the last); ``eval_every_source``
            says whether it was set (``train.eval_every``) or planned
            (:meth:`~nasseg.data.plan.Plan.eval_every`, CPU 3D plans, once the split is
            known: :func:`with_eval_every`).
    """

    device: str
    precision: Precision
    threads: int | None
    threads_source: str
    size_multiple: int
    input_shape: tuple[int, ...]
    patch: tuple[int, ...] | None
    window: tuple[int, ...] | None
    batch_size: int
    eval_batch_size: int
    memory_budget_mb: float | None = None
    budget_source: str | None = None
    plan: Plan | None = None
    eval_every: int = 1
    eval_every_source: str = "default"

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype (``None`` = full precision)."""
        return DTYPES[self.precision]

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def batch_shape(self, batch: int | None = None) -> tuple[int, ...]:
        """``(B, C, *spatial)`` of a training batch (``batch`` defaults to :attr:`batch_size`)."""
        return (self.batch_size if batch is None else batch, *self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str | None:
        """The 3D plan's line (:meth:`~nasseg.data.plan.Plan.describe`) with the validation
        cadence; ``None`` without a plan."""
        if self.plan is None:
            return None
        return (f"{self.plan.describe()}; validation every {self.eval_every} epoch"
                f"{'' if self.eval_every == 1 else 's'} ({self.eval_every_source})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResolvedRun:
        """The inverse of :meth:`to_dict` (lists back to tuples, the plan back to a :class:`Plan`)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for k in ("input_shape", "patch", "window"):
            kw[k] = tuple(kw[k]) if kw.get(k) is not None else None
        if kw.get("plan") is not None:
            plan = dict(kw["plan"])
            for k in ("target_spacing", "median_shape", "patch_size", "trimmed_from"):
                if plan.get(k) is not None:
                    plan[k] = tuple(plan[k])
            kw["plan"] = Plan(**plan)
        return cls(**kw)


def auto_threads() -> int:
    """The thread count ``num_threads: auto`` resolves to: the cores this process may run
    on, at most :data:`AUTO_THREADS_CAP`. A property of the machine, not of its load (a
    count taken from the idle cores changed CPU results with the load). On a machine
    shared with other work, set the count (``--threads``): OpenMP threads that outnumber
    the free cores wait for each other (measured here, 3D U-Net step on 2 cores under a
    load of ~3: 3.07 s with 2 threads, 0.28 s with 1).

    Example:
        >>> 1 <= auto_threads() <= AUTO_THREADS_CAP
        True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, AUTO_THREADS_CAP))


def resolve_threads(setting: int | str | None) -> tuple[int | None, str]:
    """``(threads, source)`` for a ``num_threads`` setting (a number, ``"auto"`` or ``None``).

    Example:
        >>> resolve_threads(3)
        (3, 'set')

    Raises:
        ConfigError: a count below 1.
    """
    if setting == "auto":
        return auto_threads(), f"auto: the process's cores, at most {AUTO_THREADS_CAP}"
    if setting is None:
        return None, "unset (torch's setting)"
    if int(setting) < 1:
        raise ConfigError(f"train.num_threads: must be at least 1, got {setting}")
    return int(setting), "set"


def resolve_run(arch: Any, ds: SegDataset, data: Any, cfg: Any, *, device: str | None = None) -> ResolvedRun:
    """Decide how ``arch`` trains on ``ds`` with ``data``/``cfg`` (see :class:`ResolvedRun`).

    Args:
        arch: an ``ArchConfig`` (channels as the data has them) or an ``nn.Module``.
        ds: the loaded dataset.
        data: its ``DataConfig``.
        cfg: the ``TrainConfig``.
        device: a device that replaces ``cfg.device`` (a search worker's ``cuda:1``).

    Raises:
        ConfigError: an unknown or missing device, sizes the network cannot take, a 3D
            setting that does not fit the memory budget.
    """
    dev = resolve_device(device or cfg.device, "train.device")
    precision: Precision = resolve_precision(dev, cfg.amp)  # type: ignore[assignment]
    threads, threads_source = resolve_threads(cfg.num_threads)
    m = divisor(arch)
    stages = len(arch.stages) if m > 1 else 0
    plan = None
    if ds.spatial_dims == 3 and not ds.fixed_size and not isinstance(arch, nn.Module):
        if data.size is not None:
            raise ConfigError(f"data.size {data.size} (--size) resizes 2D images and sets the synthetic size; "
                              f"3D volumes are resampled to data.plan.target_spacing and trained on patches: "
                              f"use --patch-size or data.plan.target_spacing instead")
        if data.patch_size is not None:
            check_divisible(data.patch_size, stages, "data.patch_size", how="choose a --patch-size that is")
        batch = cfg.batch_size if "batch_size" in cfg.model_fields_set else None
        plan = make_plan(arch, ds, device=dev.type, data_cfg=data, batch_size=batch,
                         eval_batch_size=cfg.eval_batch_size, dtype=DTYPES[precision], threads=threads,
                         threads_source=threads_source, overlap=cfg.sw_overlap)
        patch, batch, eval_batch = plan.patch_size, plan.batch_size, plan.eval_batch_size
    else:
        patch = _patch(data, ds, m, stages)
        batch, eval_batch = cfg.batch_size, cfg.eval_batch_size
    window = tuple(data.window_size) if data.window_size and patch else patch
    set_every = "eval_every" in getattr(cfg, "model_fields_set", ())
    if window and stages:
        check_divisible(window, stages, "data.window_size", how="choose a --window-size that is")
    return ResolvedRun(device=str(dev), precision=precision, threads=threads, threads_source=threads_source,
                       size_multiple=m, input_shape=(ds.in_channels, *(patch or ds.shapes()[0])),
                       patch=patch, window=window, batch_size=batch, eval_batch_size=eval_batch,
                       memory_budget_mb=plan.budget_mb if plan else None,
                       budget_source=plan.budget_source if plan else None, plan=plan,
                       eval_every=getattr(cfg, "eval_every", 1), eval_every_source="set" if set_every else "default")


def with_eval_every(run: ResolvedRun, train_steps: int, val_cases: int) -> ResolvedRun:
    """``run`` with its validation cadence decided, once the split is known: the setting when
    ``train.eval_every`` was set, else the CPU plan's (:meth:`~nasseg.data.plan.Plan.eval_every`),
    else every epoch.

    Example:
        >>> run = with_eval_every(run, train_steps=15, val_cases=10)  # doctest: +SKIP
        >>> run.eval_every, run.eval_every_source  # doctest: +SKIP
        (7, 'planned: validation within 25% of the estimated CPU time')
    """
    if run.eval_every_source == "set" or run.plan is None or not run.plan.step_seconds:
        return run
    every = run.plan.eval_every(train_steps, val_cases)
    return replace(run, eval_every=every,
                   eval_every_source=f"planned: validation within {VAL_SHARE:.0%} of the estimated CPU time")


def _patch(data: Any, ds: SegDataset, m: int, stages: int) -> tuple[int, ...] | None:
    """Training patch without a 3D plan (``None`` = whole cases), checked against the size rule."""
    if data.patch_size is not None:
        patch = tuple(data.patch_size)
        if len(patch) != ds.spatial_dims:
            raise ConfigError(f"data.patch_size {patch} has {len(patch)} axes but the data is {ds.spatial_dims}D")
    elif not ds.fixed_size:
        patch = default_patch(ds.shapes(), m)
    else:
        patch = None
    if stages:
        if patch:
            check_divisible(patch, stages, "data.patch_size", how="choose a --patch-size that is")
        else:
            check_divisible(ds.shapes()[0], stages, "image size", how="choose a --size that is")
    return patch
