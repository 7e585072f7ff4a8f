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
- **Time (CPU only)**: nnU-Net's rule (the largest patch that fits the GPU) assumes a GPU;
  on a CPU the binding budget is time. There a step must also fit a time budget
  (:data:`CPU_STEP_SECONDS`, ``data.plan.step_seconds``): the same shrink goes on until
  the estimated step time (:func:`step_seconds`: the network's MACs at the patch, counted
  on the meta device, x batch x :data:`TRAIN_MACS_FACTOR` / (:data:`CPU_GMACS` per
  thread x the run's thread count)) fits, but never below :data:`TIME_FLOOR_MULTIPLES`
  size multiples per axis. The estimate is arithmetic on fixed numbers: nothing is timed
  while planning, so the plan does not depend on the machine's load.
- **Validation windows (CPU only)**: validation windows follow the patch, and sliding
  windows over whole volumes are a large share of a CPU epoch. A patch just under a
  fraction of the case costs as many windows as a smaller one (at overlap 0.5 a window of
  0.7 or of 0.9 of an axis both take 2 windows), so each axis is then trimmed to the
  smallest multiple that covers the median case with as many windows
  (:func:`_trim_to_windows`): the step and the validation both cost less, for a little less
  context per patch. The plan records the estimate, the budgets, the throughput, the
  thread count and where each came from, the patch before the trim, and an estimate of
  the CPU time of validating a median case. On a GPU memory stays the only rule.
- **Small cases (CPU only)**: where the patch covers the median case on an axis (nothing
  shrank it there), nnU-Net's rule rounds the case *up* to the size multiple, so part of
  every step is padding (a third of the voxels of hippocampus' 40 x 56 x 40 for a
  35 x 50 x 36 median). On a CPU that padding is time: each such axis trains, and
  validates by sliding windows, at the multiple *nearest* the median (ties down, at least
  one multiple; :func:`_fit_case`). Measured with ``benchmarks/cpu_plan.py``
  (``reports/bench/volumetric/cpu_plan.md``, hippocampus, 300 CPU-s, 3 seeds): 32 x 48 x 32
  reached test Dice 0.874 on average against 0.850 for 40 x 56 x 40 and 0.873 for a
  hand-picked 32^3; validating it with one whole-case window (40 x 56 x 40) instead of
  sliding 32 x 48 x 32 windows scored 0.862 against 0.877 (seed 0), so the window stays the
  patch.
- **Validation cadence (CPU only)**: once the split is known, :meth:`Plan.eval_every`
  validates every N epochs, the fewest that keep the estimated validation (val cases x
  the median case's seconds) within :data:`VAL_SHARE` of the CPU time (nnU-Net likewise
  keeps full sliding-window validation out of its epochs). The run records N
  (``resolved.eval_every``); ``train.eval_every`` set by the user wins.

A setting that cannot fit (a given patch or batch over the budget, or a network that
does not fit at its smallest patch) is refused before training with a
:class:`~nasseg.errors.ConfigError` naming the setting to change.

Example:
    >>> p = make_plan(load_arch("studies/arch/unet3d_small.yaml"), ds, device="cpu")  # doctest: +SKIP
    >>> p.patch_size, p.batch_size  # hippocampus on a CPU  # doctest: +SKIP
    ((32, 48, 32), 2)
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasseg.arch import ArchConfig
from nasseg.arch.config import size_multiple
from nasseg.cost import estimate_train_memory_mb, profile
from nasseg.errors import ConfigError

CPU_BUDGET_MB = 3072.0
"""The CPU step budget (MiB) of a plan unless ``data.plan.memory_mb`` sets one."""
GPU_BUDGET_FRACTION = 0.8
"""Share of a GPU's total memory (not of its free memory) a planned step may use."""
START_VOXELS = 256 ** 3
MIN_BATCH = 2
CPU_STEP_SECONDS = 8.0
"""The default time budget (seconds) of one CPU training step at the run's thread count,
unless ``data.plan.step_seconds`` sets one. Measured with ``benchmarks/cpu_plan.py``
(``reports/bench/volumetric/cpu_plan.md``; 1 thread, 1,200 CPU-s an arm, validation at the
planned cadence): on left-atrium-sized volumes it plans 128x96x64 (trimmed from 152x104x64),
which reached val / test Dice 0.863 / 0.884 and 0.869 / 0.875 on the two generated sets
against 0.851 / 0.817 and 0.838 / 0.867 for a hand-picked 96x96x64 (one seed each). It does
not bind on hippocampus (300 CPU-s an arm, 3 seeds), where the median case at the nearest
multiple (32x48x32, see :func:`_fit_case`) reached test Dice 0.875 / 0.870 / 0.876 against
0.865 / 0.878 / 0.876 for a hand-picked 32^3."""
CPU_GMACS = 22.0
"""Training throughput of one CPU thread the time estimate assumes, in GMAC/s (MACs as
nasseg counts them, :mod:`nasseg.cost.meta`, times :data:`TRAIN_MACS_FACTOR`), unless
``data.plan.cpu_gmacs`` sets one. Measured by ``benchmarks/cpu_plan.py calibrate``
(``reports/bench/volumetric/cpu_plan.md``): CPU seconds of real training steps of
``studies/arch/unet3d_small.yaml`` at batch 2, 1 thread, channels-last, on the 2-core
reference machine (Intel Xeon, Sapphire Rapids-class, KVM); the median over six patches
from 32^3 to 184x136x80, which ranged from 14 (the largest) to 27 GMAC/s."""
TRAIN_MACS_FACTOR = 3.0
"""A training step's work in forward passes: the forward plus a backward of about twice
its MACs (gradients of the inputs and of the weights; Kaplan et al. 2020, "Scaling laws
for neural language models", sec. 2.1: forward 2N, backward 4N FLOPs per token)."""
EVAL_MACS_FACTOR = 1.6
"""An evaluation forward's work per MAC, in the units of :data:`CPU_GMACS`: a forward pass
at batch 1 in eval mode runs at fewer MACs per second than a training step's share (the
calibration behind :data:`CPU_GMACS`: median 13.9 GMAC/s forward against 22.0)."""
VAL_SHARE = 0.25
"""CPU only: the largest share of the estimated CPU time that validation may take when the
plan chooses the validation cadence (:meth:`Plan.eval_every`). Measured with
``benchmarks/cpu_plan.py`` (wall time, 1 thread, validating every epoch): left-atrium-sized
volumes spent 32-39% of an arm's time validating 10 cases at the memory plan's patch, 52-53%
at the 8 s plan's, 64-66% at 96 x 96 x 64 and 83% at 96 x 72 x 48; hippocampus 24% at
the whole-case patch and 55% at 32^3 (52 cases)."""
TIME_FLOOR_MULTIPLES = 4
"""The time rule never shrinks an axis below this many size multiples (4 voxels per axis
at the deepest stage, nnU-Net's smallest feature map: ``min_feature_map_size=4`` in
``nnunetv2/experiment_planning/experiment_planners/network_topology.py``), nor below
the median shape rounded up to the size multiple."""


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
        limited_by: what set the planned patch: ``"median shape"`` (nothing shrank it),
            ``"memory"``, ``"time"`` (CPU: the step time budget), ``"time floor"`` (the
            time rule reached :data:`TIME_FLOOR_MULTIPLES` and the step is still over
            its budget) or ``"config"`` (a patch the user set).
        trimmed_from: CPU only: the patch before it was trimmed to the smallest size that
            tiles the median case with as many validation windows (``None``: not trimmed).
        step_gmacs: forward GMACs of one training step (batch x the patch's MACs).
        step_seconds: CPU only: estimated seconds of one training step at ``threads``
            (:func:`step_seconds`); ``None`` on a GPU.
        time_budget_s: CPU only: the step time budget; ``time_source`` says where it came from.
        cpu_gmacs: CPU only: the per-thread throughput the estimate assumes;
            ``gmacs_source`` says where it came from.
        threads: CPU only: the thread count the estimate assumes (the run's);
            ``threads_source`` says where it came from.
        eval_case_seconds: CPU only: estimated seconds of validating a case of the median
            shape by sliding windows (forward passes only, at ``threads``).
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
    limited_by: str = "memory"
    trimmed_from: tuple[int, ...] | None = None
    step_gmacs: float | None = None
    step_seconds: float | None = None
    time_budget_s: float | None = None
    time_source: str | None = None
    cpu_gmacs: float | None = None
    gmacs_source: str | None = None
    threads: int | None = None
    threads_source: str | None = None
    eval_case_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def eval_every(self, train_steps: int, val_cases: int) -> int:
        """CPU: validate every N epochs, the fewest that keep the estimated validation
        (``val_cases`` x :attr:`eval_case_seconds`) within :data:`VAL_SHARE` of the CPU time
        of N epochs of ``train_steps`` steps and one validation; 1 on a GPU.

        Example (the left-atrium-sized set at 1 thread: 15 steps of ~4.4 s, 10 val cases of ~14 s):
            >>> p = Plan((1.0,) * 3, (8,) * 3, (8,) * 3, 2, 1.0, 1.0, "x", 8, "cpu", 0.33,
            ...          step_seconds=4.4, eval_case_seconds=14.0)
            >>> p.eval_every(15, 10), p.eval_every(15, 0)
            (7, 1)
        """
        if not self.step_seconds or self.eval_case_seconds is None or train_steps < 1:
            return 1
        val_s, train_s = val_cases * self.eval_case_seconds, train_steps * self.step_seconds
        return max(1, math.ceil(val_s * (1 - VAL_SHARE) / (VAL_SHARE * train_s) - 1e-9))

    def describe(self) -> str:
        """One line for the console.

        Example (CPU, a left-atrium-sized set, 1 thread):
            plan: spacing (0.625, 0.625, 1.25), median shape (191, 143, 88), patch (128, 96, 64)
            limited by time (trimmed from (144, 112, 64): as many validation windows, smaller),
            batch 2, 5 windows per validation pass: ~5.9 s per step at 1 thread within the 8 s
            step budget (default CPU step budget), ~12 s to validate a median case; ~1218 MB per
            step of a 3072 MB budget (default CPU budget 3072 MB)
        """
        src = lambda k: "" if self.sources.get(k) == "planned" else " (set)"  # noqa: E731
        why = f" limited by {self.limited_by}" if self.sources.get("patch_size") == "planned" else ""
        if self.trimmed_from is not None:
            why += f" (trimmed from {self.trimmed_from}: as many validation windows, smaller)"
        line = (f"plan: spacing {tuple(round(s, 3) for s in self.target_spacing)}{src('spacing')}, "
                f"median shape {self.median_shape}, patch {self.patch_size}{src('patch_size')}{why}, "
                f"batch {self.batch_size}{src('batch_size')}, {self.eval_batch_size} windows per validation "
                f"pass: ")
        if self.step_seconds is not None:
            threads = f"{self.threads} thread{'' if self.threads == 1 else 's'}"
            line += (f"~{self.step_seconds:.1f} s per step at {threads} within the {self.time_budget_s:g} s step "
                     f"budget ({self.time_source}), ~{self.eval_case_seconds:.2g} s to validate a median case; ")
        return line + (f"~{self.memory_mb:.0f} MB per step of a {self.budget_mb:.0f} MB budget "
                       f"({self.budget_source})")

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
    dt = str(dtype or torch.float32)
    fixed, per_voxel, _ = _probe(_arch_key(arch), in_channels, out_channels, dt)
    return fixed + per_voxel * batch * math.prod(patch)


def forward_gmacs(arch: Any, in_channels: int, out_channels: int, patch: tuple[int, ...], batch: int = 1) -> float:
    """Forward GMACs of ``batch`` patches (:func:`nasseg.cost.profile`'s MACs, ptflops'
    convention), scaled from the same probe as :func:`step_memory_mb`: the MACs of a
    U-shaped network grow linearly with the voxels of a patch divisible by its size multiple.

    Example:
        >>> round(forward_gmacs(load_arch("studies/arch/unet3d_small.yaml"), 1, 1, (32, 32, 32)), 3)  # doctest: +SKIP
        0.897
    """
    _, _, macs_per_voxel = _probe(_arch_key(arch), in_channels, out_channels, str(torch.float32))
    return macs_per_voxel * batch * math.prod(patch) / 1e9


def step_seconds(gmacs: float, threads: int, cpu_gmacs: float = CPU_GMACS) -> float:
    """Estimated seconds of one CPU training step of ``gmacs`` forward GMACs (batch x patch)
    on ``threads`` threads: ``gmacs x TRAIN_MACS_FACTOR / (cpu_gmacs x threads)``.

    Threads are assumed to add throughput linearly (an upper bound: small 3D convolutions
    gain less from each added thread, so with several threads a step takes somewhat longer
    than estimated). Arithmetic only: nothing is timed.

    Example:
        >>> step_seconds(10.0, threads=2, cpu_gmacs=15.0)
        1.0
    """
    return gmacs * TRAIN_MACS_FACTOR / (cpu_gmacs * threads)


def sliding_windows(shape: tuple[int, ...], window: tuple[int, ...], overlap: float) -> int:
    """Windows MONAI's ``sliding_window_inference`` (nasseg's evaluation) places on a case
    of ``shape``: per axis one window where the case fits, else ``ceil((size - window) /
    interval) + 1`` with ``interval = int(window x (1 - overlap))``.

    Example:
        >>> sliding_windows((190, 142, 88), (96, 96, 64), 0.5)
        12
    """
    n = 1
    for s, w in zip(shape, window):
        if s > w:
            n *= math.ceil((s - w) / max(1, int(w * (1 - overlap)))) + 1
    return n


def _arch_key(arch: Any) -> str:
    return json.dumps(arch.model_dump(mode="json"), sort_keys=True)


@functools.lru_cache(maxsize=256)
def _probe(arch_json: str, in_channels: int, out_channels: int, dtype: str) -> tuple[float, float, float]:
    """``(fixed MiB, MiB per voxel of batch x patch, forward MACs per voxel)`` of a network."""
    cfg = ArchConfig.model_validate(json.loads(arch_json))
    cfg = cfg.model_copy(update={"in_channels": in_channels, "out_channels": out_channels})
    probe = (1, in_channels, *([4 * divisor(cfg)] * cfg.spatial_dims))
    dt = getattr(torch, dtype.replace("torch.", ""))
    fixed = estimate_train_memory_mb(cfg, probe, batch_size=0, dtype=dt)
    one = estimate_train_memory_mb(cfg, probe, batch_size=1, dtype=dt)
    macs = profile(cfg, probe, latency=False).macs
    return fixed, (one - fixed) / math.prod(probe[2:]), macs / math.prod(probe[2:])


@dataclass(frozen=True)
class _TimeRule:
    """The CPU time budget of a plan and what its estimate assumes."""

    budget_s: float
    source: str
    gmacs: float
    gmacs_source: str
    threads: int
    threads_source: str

    @classmethod
    def resolve(cls, pc: Any, threads: int | None, threads_source: str | None) -> _TimeRule:
        if pc is not None and pc.step_seconds:
            budget, source = float(pc.step_seconds), "data.plan.step_seconds"
        else:
            budget, source = CPU_STEP_SECONDS, "default CPU step budget"
        if pc is not None and pc.cpu_gmacs:
            gmacs, gsource = float(pc.cpu_gmacs), "data.plan.cpu_gmacs"
        else:
            gmacs, gsource = CPU_GMACS, "default, measured by benchmarks/cpu_plan.py"
        if threads is None:
            threads, threads_source = torch.get_num_threads(), "torch's setting"
        return cls(budget, source, gmacs, gsource, int(threads), threads_source or "set")

    def seconds(self, gmacs: float) -> float:
        return step_seconds(gmacs, self.threads, self.gmacs)

    def record(self, step_gmacs: float, eval_gmacs: float) -> dict[str, Any]:
        """The plan's time fields for a step of ``step_gmacs`` and a median case's
        validation of ``eval_gmacs`` forward GMACs."""
        return {"step_seconds": round(self.seconds(step_gmacs), 2), "time_budget_s": self.budget_s,
                "time_source": self.source, "cpu_gmacs": self.gmacs, "gmacs_source": self.gmacs_source,
                "threads": self.threads, "threads_source": self.threads_source,
                "eval_case_seconds": round(eval_gmacs * EVAL_MACS_FACTOR / (self.gmacs * self.threads), 1)}


def make_plan(arch: Any, ds: Any, *, device: str, data_cfg: Any = None, batch_size: int | None = None,
              patch_size: tuple[int, ...] | None = None, eval_batch_size: int = 16, dtype: Any = None,
              threads: int | None = None, threads_source: str | None = None, overlap: float = 0.5) -> Plan:
    """Plan patch and batch for training ``arch`` on the (preprocessed) volumes of ``ds``.

    Args:
        arch: an ``ArchConfig``.
        ds: a 3D :class:`~nasseg.data.base.SegDataset` (preprocessed: its shapes are at
            the target spacing).
        device: ``cpu`` or ``cuda[:N]`` (picks the default budget and batch cap; on the
            CPU the step time budget applies too).
        data_cfg: the ``DataConfig`` (its ``plan`` overrides, ``patch_size``).
        batch_size: a batch size the user set (``None`` = planned).
        patch_size: a patch the user set (``None`` = ``data_cfg.patch_size`` or planned).
        eval_batch_size: the most sliding windows per validation forward pass.
        dtype: the activations' dtype (``torch.bfloat16`` under autocast; default float32).
        threads: CPU threads the run trains on (the resolved run's; ``None`` = torch's
            current setting); ``threads_source`` says where that count came from.
        overlap: the sliding-window overlap of evaluation (for the validation estimate).

    Raises:
        ConfigError: the given patch or batch does not fit the memory budget, or nothing
            does. (A given patch or batch over the time budget is kept: the plan line
            shows its estimate against the budget.)

    Example:
        >>> p = make_plan(load_arch("studies/arch/unet3d_small.yaml"), la_like, device="cpu", threads=1)  # doctest: +SKIP
        >>> p.patch_size, p.trimmed_from, p.limited_by, p.step_seconds <= p.time_budget_s  # doctest: +SKIP
        ((128, 96, 64), (144, 112, 64), 'time', True)
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
    gmacs = functools.partial(forward_gmacs, arch, ds.in_channels, ds.out_channels)
    timed = _TimeRule.resolve(pc, threads, threads_source) if device == "cpu" else None
    sources = {"spacing": "config" if pc is not None and pc.target_spacing else "planned",
               "patch_size": "config" if patch_size else "planned",
               "batch_size": "config" if batch_size else "planned"}
    limited_by, trimmed_from = "config", None
    if patch_size is None:
        patch, limited_by = _fit_patch(median, spacing, d, lambda p: mem(p, MIN_BATCH) <= budget,
                                       None if timed is None else lambda p: timed.seconds(gmacs(p, MIN_BATCH))
                                       <= timed.budget_s)
        if patch is None:
            smallest = tuple([d] * len(median))
            raise ConfigError(
                f"the network does not fit a {budget:.0f} MB step budget ({source}) even at patch "
                f"{smallest} and batch {MIN_BATCH} (~{mem(smallest, MIN_BATCH):.0f} MB): raise "
                f"data.plan.memory_mb or use a smaller network")
        if timed is not None and not (data_cfg is not None and data_cfg.window_size):
            trimmed = _trim_to_windows(patch, median, d, overlap)
            patch, trimmed_from = trimmed, (patch if trimmed != patch else None)
        if timed is not None:
            patch = _fit_case(patch, median, d)
    else:
        patch = tuple(int(p) for p in patch_size)
    if batch_size is None:
        limit = max(MIN_BATCH, int(0.05 * float(shapes.prod(axis=1).sum()) / math.prod(patch)))
        batch = MIN_BATCH
        while (batch < min(cap, limit) and mem(patch, batch + 1) <= budget
               and (timed is None or timed.seconds(gmacs(patch, batch + 1)) <= timed.budget_s)):
            batch += 1
    else:
        batch = int(batch_size)
    need = mem(patch, batch)
    if need > budget:
        what = "data.patch_size" if sources["patch_size"] == "config" else "train.batch_size"
        raise ConfigError(
            f"patch {patch} at batch {batch} needs ~{need:.0f} MB per step, over the {budget:.0f} MB "
            f"budget ({source}): lower {what} (or raise data.plan.memory_mb)")
    window = tuple(data_cfg.window_size) if data_cfg is not None and data_cfg.window_size else patch
    eval_batch = 1
    while eval_batch < eval_batch_size and mem(window, eval_batch + 1) <= budget:
        eval_batch += 1
    timing = {} if timed is None else timed.record(
        gmacs(patch, batch), sliding_windows(median, _up_to_case(window, median, d), overlap)
        * gmacs(_up_to_case(window, median, d)))
    return Plan(target_spacing=spacing, median_shape=median, patch_size=patch, batch_size=batch,
                eval_batch_size=eval_batch,
                memory_mb=round(need, 1), budget_mb=round(budget, 1), budget_source=source, divisor=d,
                device=device, fg_fraction=pc.fg_fraction if pc is not None else 0.33,
                fg_classes=pc.fg_classes if pc is not None else None, sources=sources, limited_by=limited_by,
                trimmed_from=trimmed_from, step_gmacs=round(gmacs(patch, batch), 3), **timing)


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
    return _start_patch(median, spacing, d)


def _fit_patch(median: tuple[int, ...], spacing: tuple[float, ...], d: int, fits_memory,
               fits_time=None) -> tuple[tuple[int, ...] | None, str]:
    """The planned patch and what limited it: nnU-Net's start shrunk until it fits memory,
    then (CPU) on until it fits the time budget too, by the same rule, never below the
    time floor (:data:`TIME_FLOOR_MULTIPLES` size multiples, or the median shape rounded up)."""
    start = _start_patch(median, spacing, d)
    patch = _shrink(start, median, d, fits_memory, [d] * len(median))
    if patch is None:
        return None, "memory"
    limited_by = "memory" if patch != start else "median shape"
    if fits_time is None or fits_time(patch):
        return patch, limited_by
    floor = [min(TIME_FLOOR_MULTIPLES * d, _up(m, d)) for m in median]
    timed = _shrink(patch, median, d, fits_time, floor)
    if timed is not None:
        return timed, "time"
    return tuple(min(p, f) for p, f in zip(patch, floor)), "time floor"


def _trim_to_windows(patch: tuple[int, ...], median: tuple[int, ...], d: int, overlap: float) -> tuple[int, ...]:
    """Each axis of ``patch`` lowered to the smallest multiple of ``d`` that covers the
    median case with as many sliding windows (:func:`sliding_windows`), never below the
    time floor: the same windows, each smaller, so validation and the step both cost less.

    Example:
        >>> _trim_to_windows((152, 104, 64), (191, 139, 88), 8, 0.5)  # 2 windows per axis
        (128, 96, 64)
    """
    out = []
    for p, m in zip(patch, median):
        floor = max(d, min(TIME_FLOOR_MULTIPLES * d, _up(m, d)))
        count = lambda w: sliding_windows((m,), (min(w, _up(m, d)),), overlap)  # noqa: E731
        q = p
        while q - d >= floor and count(q - d) == count(p):
            q -= d
        out.append(q)
    return tuple(out)


def _fit_case(patch: tuple[int, ...], median: tuple[int, ...], d: int) -> tuple[int, ...]:
    """CPU: each axis where ``patch`` covers the median case (the median rounded up) lowered
    to the multiple of ``d`` nearest the median (ties down, at least ``d``); other axes kept.

    Example (hippocampus, median 35 x 50 x 36, size multiple 8; 47 keeps 48 at multiple 16):
        >>> _fit_case((40, 56, 40), (35, 50, 36), 8)
        (32, 48, 32)
        >>> _fit_case((48, 32), (47, 90), 16)
        (48, 32)
    """
    return tuple(max(d, math.ceil(m / d - 0.5) * d) if p >= _up(m, d) else p for p, m in zip(patch, median))


def _up_to_case(window: tuple[int, ...], median: tuple[int, ...], d: int) -> tuple[int, ...]:
    """The window evaluation uses on a median case (shrunk where the case, rounded up, is smaller)."""
    return tuple(min(w, _up(m, d)) for w, m in zip(window, median))


def _up(n: float, d: int) -> int:
    return max(d, int(math.ceil(n / d)) * d)


def _start_patch(median: tuple[int, ...], spacing: tuple[float, ...], d: int) -> tuple[int, ...]:
    """nnU-Net's start: a mm-isotropic patch of 256^3 voxels' volume, clipped to the median
    shape, rounded up to the size multiple."""
    inv = np.array([1.0 / s for s in spacing])
    start = inv * (START_VOXELS / np.prod(inv)) ** (1 / len(inv))
    return tuple(min(_up(s, d), _up(m, d)) for s, m in zip(start, median))


def _shrink(patch: tuple[int, ...], median: tuple[int, ...], d: int, fits,
            floor: list[int]) -> tuple[int, ...] | None:
    """nnU-Net's shrink: one size multiple at a time off the axis whose patch is largest
    relative to the median shape (among axes above ``floor``), until ``fits``; ``None``
    when every axis is at its floor and it still does not."""
    patch = list(patch)
    while not fits(tuple(patch)):
        ratios = [p / max(m, 1) if p - d >= f else -1.0 for p, m, f in zip(patch, median, floor)]
        axis = int(np.argmax(ratios))
        if ratios[axis] < 0:
            return None
        patch[axis] -= d
    return tuple(patch)
