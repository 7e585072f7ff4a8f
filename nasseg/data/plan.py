"""The 3D experiment plan: target spacing, patch size and batch size from the data and
a memory budget, after nnU-Net's experiment planning (Isensee et al., Nature Methods
2021, and nnU-Net v2's ``ExperimentPlanner``).

- **Spacing**: the median voxel size per axis; when the data is anisotropic (largest
  median spacing over 3x the smallest), the coarse axis takes the 10th percentile of its
  spacings instead (not finer than the other axes), as nnU-Net does.
- **Patch**: start from a patch of 256^3 voxels' volume, isotropic in mm, clipped to the
  median (cropped, resampled) case shape and rounded up to the network's size multiple;
  while a step at batch 2 exceeds the budget by nasseg's own estimate
  (:func:`step_memory_mb`), shrink the axis whose patch is largest relative to the
  median shape by one multiple.
- **Budget**: a fixed number, recorded in the plan (:func:`memory_budget_mb`: 3 GiB on
  the CPU, 80% of a GPU's total memory; ``data.plan.memory_mb`` sets another), never a
  share of the memory free at planning time, so the same command plans the same patch
  and batch on an idle and on a busy machine.
- **Batch**: the largest that fits the budget, at most ``max_batch`` (2 on the CPU, where
  a step's time grows with the batch; 16 on a GPU) and at most 5% of the dataset's voxels
  per step (nnU-Net's cap), at least 2.

A setting that cannot fit (a given patch or batch over the budget, or a network that
does not fit at its smallest patch) is refused before training with a
:class:`~nasseg.errors.ConfigError` naming the setting to change.

Example:
    >>> p = make_plan(load_arch("studies/arch/unet3d_small.yaml"), ds, device="cpu")  # doctest: +SKIP
    >>> p.patch_size, p.batch_size  # doctest: +SKIP
    ((40, 56, 40), 2)
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasseg.arch.config import size_multiple
from nasseg.errors import ConfigError

CPU_BUDGET_MB = 3072.0
"""The CPU step budget (MiB) of a plan unless ``data.plan.memory_mb`` sets one."""
GPU_BUDGET_FRACTION = 0.8
"""Share of a GPU's total memory (not of its free memory) a planned step may use."""
START_VOXELS = 256 ** 3
MIN_BATCH = 2


@dataclass
class Plan:
    """A resolved 3D plan (written as ``plan.json`` next to a run).

    Attributes:
        target_spacing: voxel size the data is resampled to (mm).
        median_shape: median case shape after cropping and resampling.
        patch_size: training patch (and default sliding window).
        batch_size: patches per step.
        memory_mb: estimated memory of one training step at this patch and batch.
        budget_mb: the budget it was planned against; ``budget_source`` says where
            that came from.
        divisor: the network's size multiple.
        eval_batch_size: sliding windows per forward pass at validation, so that they fit
            the budget too (a window's forward is counted as a training step's sample: an
            upper bound, since no activations are kept for backward).
        sources: per choice, ``"planned"`` or ``"config"`` (overridden by the user).
    """

    target_spacing: tuple[float, ...]
    median_shape: tuple[int, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    memory_mb: float
    budget_mb: float
    budget_source: str
    divisor: int
    device: str
    fg_fraction: float
    fg_classes: list[float] | None = None
    eval_batch_size: int = 1
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the console."""
        src = lambda k: "" if self.sources.get(k) == "planned" else " (set)"  # noqa: E731
        return (f"plan: spacing {tuple(round(s, 3) for s in self.target_spacing)}{src('spacing')}, "
                f"median shape {self.median_shape}, patch {self.patch_size}{src('patch_size')}, "
                f"batch {self.batch_size}{src('batch_size')}, {self.eval_batch_size} windows per validation "
                f"pass: ~{self.memory_mb:.0f} MB per step of a "
                f"{self.budget_mb:.0f} MB budget ({self.budget_source})")

    def write(self, run_dir: str | Path | None) -> None:
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            (Path(run_dir) / "plan.json").write_text(json.dumps(self.to_dict(), indent=1))


def plan_spacing(spacings: list[tuple[float, ...]]) -> tuple[float, ...]:
    """Target spacing from the cases' spacings (median; 10th percentile on a coarse axis).

    Example:
        >>> plan_spacing([(1, 1, 5), (1, 1, 3), (0.8, 0.8, 4)])
        (1.0, 1.0, 3.2)
        >>> plan_spacing([(1, 1, 1), (1, 1, 1.2)])
        (1.0, 1.0, 1.1)
    """
    sp = np.asarray(spacings, dtype=np.float64)
    target = np.median(sp, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    if others and target[worst] > 3 * min(target[others]):
        target[worst] = max(np.percentile(sp[:, worst], 10), max(target[others]))
    return tuple(round(float(t), 6) for t in target)


def memory_budget_mb(device: str) -> tuple[float, str]:
    """The default budget for one training step on ``device`` and where it came from.

    A property of the device, not of the moment: CPU :data:`CPU_BUDGET_MB`; CUDA
    :data:`GPU_BUDGET_FRACTION` of the device's total memory. Other processes' use of
    memory does not change it (a plan over what is free would change with the load).

    Example:
        >>> memory_budget_mb("cpu")
        (3072.0, 'default CPU budget 3072 MB')
    """
    if device.startswith("cuda"):
        import torch

        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return (round(GPU_BUDGET_FRACTION * total / 2**20, 1),
                f"default: {GPU_BUDGET_FRACTION:.0%} of the GPU's {total / 2**30:.0f} GiB")
    return CPU_BUDGET_MB, f"default CPU budget {CPU_BUDGET_MB:.0f} MB"


def divisor(arch: Any) -> int:
    """The size multiple of a network, from its stage count alone
    (:func:`~nasseg.arch.config.size_multiple`; 1 for a ready module, whose rule is unknown)."""
    stages = getattr(arch, "stages", None)
    return size_multiple(len(stages)) if stages else 1


def step_memory_mb(arch: Any, in_channels: int, out_channels: int, patch: tuple[int, ...], batch: int,
                   dtype: Any = None) -> float:
    """Estimated memory (MiB) of one training step at ``batch x patch`` by nasseg's cost
    estimator (:func:`nasseg.cost.estimate_train_memory_mb`: feature maps counted on the
    meta device, plus weights, gradients and AdamW moments).

    The estimator is asked once per network, at a probe patch of 4 size multiples per
    axis; feature maps of a U-shaped network grow linearly with the voxels of a patch
    divisible by its size multiple, so other patches are scaled from it (equal to asking
    the estimator, without a count per candidate patch while planning).
    """
    import torch

    dt = str(dtype or torch.float32)
    fixed, per_voxel = _probe(json.dumps(arch.model_dump(mode="json"), sort_keys=True), in_channels,
                              out_channels, dt)
    return fixed + per_voxel * batch * math.prod(patch)


@functools.lru_cache(maxsize=256)
def _probe(arch_json: str, in_channels: int, out_channels: int, dtype: str) -> tuple[float, float]:
    import torch

    from nasseg.arch import ArchConfig
    from nasseg.cost import estimate_train_memory_mb

    cfg = ArchConfig.model_validate(json.loads(arch_json))
    cfg = cfg.model_copy(update={"in_channels": in_channels, "out_channels": out_channels})
    probe = (1, in_channels, *([4 * divisor(cfg)] * cfg.spatial_dims))
    dt = getattr(torch, dtype.replace("torch.", ""))
    fixed = estimate_train_memory_mb(cfg, probe, batch_size=0, dtype=dt)
    one = estimate_train_memory_mb(cfg, probe, batch_size=1, dtype=dt)
    return fixed, (one - fixed) / math.prod(probe[2:])


def make_plan(arch: Any, ds: Any, *, device: str, data_cfg: Any = None, batch_size: int | None = None,
              patch_size: tuple[int, ...] | None = None, eval_batch_size: int = 16, dtype: Any = None) -> Plan:
    """Plan patch and batch for training ``arch`` on the (preprocessed) volumes of ``ds``.

    Args:
        arch: an ``ArchConfig``.
        ds: a 3D :class:`~nasseg.data.base.SegDataset` (preprocessed: its shapes are at
            the target spacing).
        device: ``cpu`` or ``cuda[:N]`` (picks the default budget and batch cap).
        data_cfg: the ``DataConfig`` (its ``plan`` overrides, ``patch_size``).
        batch_size: a batch size the user set (``None`` = planned).
        patch_size: a patch the user set (``None`` = ``data_cfg.patch_size`` or planned).
        eval_batch_size: the most sliding windows per validation forward pass.
        dtype: the activations' dtype (``torch.bfloat16`` under autocast; default float32).

    Raises:
        ConfigError: the given patch or batch does not fit the budget, or nothing does.
    """
    pc = data_cfg.plan if data_cfg is not None else None
    patch_size = patch_size or (tuple(data_cfg.patch_size) if data_cfg is not None and data_cfg.patch_size else None)
    d = divisor(arch)
    shapes = np.array(ds.shapes())
    median = tuple(int(m) for m in np.median(shapes, axis=0))
    spacing = tuple(ds.info.get("preprocessing", {}).get("target_spacing") or [1.0] * shapes.shape[1])
    if pc is not None and pc.memory_mb:
        budget, source = float(pc.memory_mb), "data.plan.memory_mb"
    else:
        budget, source = memory_budget_mb(device)
    cap = (pc.max_batch if pc is not None and pc.max_batch else None) or (2 if device == "cpu" else 16)
    mem = functools.partial(step_memory_mb, arch, ds.in_channels, ds.out_channels, dtype=dtype)
    sources = {"spacing": "config" if pc is not None and pc.target_spacing else "planned",
               "patch_size": "config" if patch_size else "planned",
               "batch_size": "config" if batch_size else "planned"}
    if patch_size is None:
        patch = _plan_patch(median, spacing, d, lambda p: mem(p, MIN_BATCH) <= budget)
        if patch is None:
            smallest = tuple([d] * len(median))
            raise ConfigError(
                f"the network does not fit a {budget:.0f} MB step budget ({source}) even at patch "
                f"{smallest} and batch {MIN_BATCH} (~{mem(smallest, MIN_BATCH):.0f} MB): raise "
                f"data.plan.memory_mb or use a smaller network")
    else:
        patch = tuple(int(p) for p in patch_size)
    if batch_size is None:
        data_voxels = float(shapes.prod(axis=1).sum())
        limit = max(MIN_BATCH, int(0.05 * data_voxels / math.prod(patch)))
        batch = MIN_BATCH
        while batch < min(cap, limit) and mem(patch, batch + 1) <= budget:
            batch += 1
    else:
        batch = int(batch_size)
    need = mem(patch, batch)
    if need > budget:
        what = "data.patch_size" if sources["patch_size"] == "config" else "train.batch_size"
        raise ConfigError(
            f"patch {patch} at batch {batch} needs ~{need:.0f} MB per step, over the {budget:.0f} MB "
            f"budget ({source}): lower {what} (or raise data.plan.memory_mb)")
    window = data_cfg.window_size if data_cfg is not None and data_cfg.window_size else patch
    eval_batch = 1
    while eval_batch < eval_batch_size and mem(tuple(window), eval_batch + 1) <= budget:
        eval_batch += 1
    return Plan(target_spacing=spacing, median_shape=median, patch_size=patch, batch_size=batch,
                eval_batch_size=eval_batch,
                memory_mb=round(need, 1), budget_mb=round(budget, 1), budget_source=source, divisor=d,
                device=device, fg_fraction=pc.fg_fraction if pc is not None else 0.33,
                fg_classes=pc.fg_classes if pc is not None else None, sources=sources)


def study_patch(ds: Any, d: int) -> tuple[int, ...]:
    """The planned patch (before the memory fit) for networks of size multiple ``d``: one
    patch for every trial of a search, so their costs are counted at the same size (each
    trial's step is still checked against the budget when it trains).

    Example:
        >>> study_patch(ds, 16)  # msd_hippocampus, median 35x50x36  # doctest: +SKIP
        (48, 64, 48)
    """
    median = tuple(int(m) for m in np.median(np.array(ds.shapes()), axis=0))
    spacing = tuple(ds.info.get("preprocessing", {}).get("target_spacing") or [1.0] * len(median))
    return _plan_patch(median, spacing, d, lambda p: True)


def _plan_patch(median: tuple[int, ...], spacing: tuple[float, ...], d: int, fits) -> tuple[int, ...] | None:
    """nnU-Net's patch search: a mm-isotropic 256^3-voxel start clipped to the median shape,
    shrunk one multiple at a time on the axis largest relative to the median until ``fits``."""
    inv = np.array([1.0 / s for s in spacing])
    start = inv * (START_VOXELS / np.prod(inv)) ** (1 / len(inv))
    up = lambda n: max(d, int(math.ceil(n / d)) * d)  # noqa: E731
    patch = [min(up(s), up(m)) for s, m in zip(start, median)]
    while not fits(tuple(patch)):
        ratios = [p / max(m, 1) if p > d else -1.0 for p, m in zip(patch, median)]
        axis = int(np.argmax(ratios))
        if ratios[axis] < 0:
            return None
        patch[axis] -= d
    return tuple(patch)
