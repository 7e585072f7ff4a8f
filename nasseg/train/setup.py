"""Device, precision, threads and model preparation for a training run."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasseg.data.base import SegDataset
from nasseg.device import deterministic_run, resolve_device, resolve_precision
from nasseg.errors import ConfigError
from nasseg.train.config import TrainConfig
from nasseg.train.resolved import DTYPES, ResolvedRun, auto_threads, resolve_threads  # noqa: F401 (auto_threads: bench)
from nasseg.arch import arch_id, build_model

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Where and how the run computes; :meth:`close` restores the thread count.

    Attributes:
        device: the training device.
        amp_dtype: autocast dtype on CUDA (``None`` = full precision).
        channels_last: use channels-last tensors (``NHWC``/``NDHWC``).
        check_interval: steps between NaN checks: 1 on the CPU; 0 on CUDA, where a check
            waits for the GPU, so the losses are checked once, at the end of the epoch.

    On the CPU, torch's deterministic algorithms are switched on for the run (they cost
    nothing there); on CUDA they stay as the process has them, so that cuDNN's autotuner
    can pick the fastest kernels. Either way the run's provenance records the flags.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    check_interval: int
    _threads_before: int
    _cudnn_benchmark_before: bool = False
    _deterministic_before: bool = False

    @classmethod
    def create(cls, cfg: TrainConfig, run: ResolvedRun | None = None) -> Runtime:
        """Apply a run's device, precision and threads to the process for the run.

        Args:
            cfg: the training config (``channels_last``; without ``run`` also its
                ``device``/``amp``/``num_threads``, resolved by the same rules).
            run: the resolved run (:func:`nasseg.train.resolved.resolve_run`), which
                decided them once.

        Raises:
            ConfigError: CUDA requested but not available, an unknown device, threads < 1.
        """
        if run is not None:
            device, amp, threads = run.torch_device, run.amp_dtype, run.threads
        else:
            device = resolve_device(cfg.device, "train.device")
            amp = DTYPES[resolve_precision(device, cfg.amp)]
            threads = resolve_threads(cfg.num_threads)[0]
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        deterministic = torch.are_deterministic_algorithms_enabled()
        if deterministic_run(device.type):
            torch.use_deterministic_algorithms(True)
        return cls(device, amp, cfg.channels_last, 1 if device.type == "cpu" else 0, before,
                   torch.backends.cudnn.benchmark, deterministic)

    def fixed_shapes(self, fixed: bool) -> None:
        """Turn on cuDNN's autotuner (``cudnn.benchmark``) when every training batch has
        one shape: it times the convolution algorithms once per shape and keeps the
        fastest; with varying shapes it would re-time at every new one."""
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = fixed

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context (a no-op on the CPU or with ``amp="off"``)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def memory_format(self, spatial_dims: int) -> torch.memory_format:
        """``channels_last`` (2D) / ``channels_last_3d`` (3D) when enabled, else contiguous."""
        if not self.channels_last:
            return torch.contiguous_format
        return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d

    def close(self) -> None:
        """Restore the thread count, the cuDNN autotuner and determinism settings of the process."""
        torch.set_num_threads(self._threads_before)
        torch.use_deterministic_algorithms(self._deterministic_before)
        torch.backends.cudnn.benchmark = self._cudnn_benchmark_before


def prepare_model(arch: Any, ds: SegDataset) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network for ``ds``: channels set from the data (printed when they change), dimensions checked.

    Args:
        arch: an ``ArchConfig`` or an ``nn.Module``.
        ds: the dataset it will be trained on.

    Returns:
        ``(module, description)``; the description is the resolved config as JSON
        (with its ``arch_id``) or, for a module, its class name and parameter count.

    Raises:
        ConfigError: the network is 2D and the data 3D (or the reverse), or a ready
            module's first convolution takes other channels than the data has.
    """
    if isinstance(arch, nn.Module):
        first = next((m for m in arch.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
        if first is not None and first.in_channels != ds.in_channels:
            raise ConfigError(f"the network's first convolution takes {first.in_channels} channels but the data "
                              f"({ds.kind}) has {ds.in_channels}; build it with in_channels={ds.in_channels}")
        return arch, {"module": type(arch).__name__,
                      "num_params": sum(p.numel() for p in arch.parameters())}

    if arch.spatial_dims != ds.spatial_dims:
        raise ConfigError(
            f"the network is {arch.spatial_dims}D but the data ({ds.kind}) is {ds.spatial_dims}D; "
            f"use a {ds.spatial_dims}D architecture"
        )
    if (arch.in_channels, arch.out_channels) != (ds.in_channels, ds.out_channels):
        kind = {1: "gray", 3: "RGB"}.get(ds.in_channels, f"{ds.in_channels}-channel")
        changes = []
        if arch.in_channels != ds.in_channels:
            changes.append(f"in_channels {arch.in_channels} -> {ds.in_channels} ({kind} images)")
        if arch.out_channels != ds.out_channels:
            changes.append(f"out_channels {arch.out_channels} -> {ds.out_channels} ({ds.num_classes} classes)")
        log.warning("%s: network converted to fit the data: %s", arch.name or "network", ", ".join(changes))
        arch = arch.model_copy(update={"in_channels": ds.in_channels, "out_channels": ds.out_channels})
    desc = arch.model_dump(mode="json")
    desc["arch_id"] = arch_id(arch)
    return build_model(arch), desc


def resident_device(ds: SegDataset, device: torch.device, policy: str) -> torch.device:
    """Where the decoded data should live: the GPU when it fits (``auto``), else the CPU.

    ``auto`` keeps it on the GPU when it takes under a quarter of the free GPU memory.
    """
    if device.type != "cuda" or policy == "never":
        return torch.device("cpu")
    if policy == "always":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if ds.nbytes() < free // 4 else torch.device("cpu")
