"""The measuring side of :func:`nasseg.cost.profile`, and the reference counters.

- MACs by ptflops 0.7.5 with its ``pytorch`` backend pinned, FLOPs by fvcore's
  ``FlopCountAnalysis``: the references that :mod:`nasseg.cost.meta` matches to the
  unit (``profile(..., counter="reference")`` and the tests run them; the default
  path does not). Both run the network on CPU tensors.
- latency: median time of a forward pass in eval mode under ``no_grad``, after warm-up,
  at a fixed thread count and memory layout (CUDA: CUDA events, under the bf16 autocast
  training uses); :func:`time_ms` is the one timer (``nasseg bench gpu`` uses it too).
- CUDA memory: the allocator's peak of one forward + backward.

MACs and FLOPs are counted at batch 1 and scaled by the batch size (every
counted op is linear in the batch).
"""
from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from nasseg.device import autocast_dtype, resolve_precision

PTFLOPS_BACKEND = "pytorch"


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _ptflops() -> Any:
    """ptflops, imported so that a torchvision which cannot load is treated as absent.

    ptflops imports torchvision when it is installed; PyPI's torchvision (the CUDA build,
    pulled in by nnunetv2 through timm) cannot load beside a CPU-only torch ("operator
    torchvision::nms does not exist"), and that RuntimeError escaped ptflops' ImportError
    guard. nasseg counts no torchvision layer, so it is hidden for the import."""
    try:
        import ptflops  # lazy: ptflops imports torchvision, which may not load (see above)
    except RuntimeError:
        for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "ptflops")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # `import torchvision` now raises ImportError
        import ptflops  # lazy: ptflops imports torchvision, which may not load (see above)
    return ptflops


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    get_model_complexity_info = _ptflops().get_model_complexity_info

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, _ = get_model_complexity_info(
            model, tuple(shape[1:]), as_strings=False, print_per_layer_stat=False,
            verbose=False, backend=PTFLOPS_BACKEND,
        )
    if macs is None:
        raise RuntimeError("ptflops could not count this network")
    return int(macs) * shape[0]


def count_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, torch.zeros(1, *shape[1:]))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total()) * shape[0]


def cuda_peak_memory_mb(model: nn.Module, shape: tuple[int, ...], device: str = "cuda") -> float:
    """Allocator peak of one forward + backward on the CUDA ``device``."""
    device = torch.device(device)
    model = model.to(device).train()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = model(torch.randn(shape, device=device))
    loss = sum(o.float().mean() for o in out) if isinstance(out, list) else out.float().mean()
    loss.backward()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    model.zero_grad(set_to_none=True)
    return peak / 2**20 + count_params(model) * 4 * 4 / 2**20


def cuda_autocast(device: torch.device, precision: str | None = None) -> contextlib.AbstractContextManager:
    """Autocast at ``precision`` (a resolved run's ``fp32``, ``bf16`` or ``fp16``) on a CUDA
    device, as training runs there; nothing on the CPU or at ``fp32``. ``None``: what a run
    with ``amp: auto`` resolves to on ``device`` (:func:`nasseg.device.resolve_precision`)."""
    dtype = autocast_dtype(resolve_precision(device) if precision is None else precision)
    if device.type == "cuda" and dtype is not None:
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def time_ms(step: Callable[[], object], device: torch.device, warmup: int = 3,
            repeats: int = 10) -> tuple[float, float | None]:
    """Median milliseconds of ``step()`` after ``warmup`` untimed calls, and the allocator's
    peak in MB over the timed calls (``None`` on the CPU).

    On CUDA each call is timed by a pair of CUDA events recorded around it, so the host
    never waits inside the timing; on the CPU by ``time.perf_counter``.

    Example:
        >>> ms, peak = time_ms(lambda: torch.ones(8).sum(), torch.device("cpu"), 1, 3)
        >>> ms >= 0 and peak is None
        True
    """
    for _ in range(warmup):
        step()
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times)), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.cuda.device(device):  # events record on the current device's stream: make it ``device``
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(repeats)]
        for start, end in events:
            start.record()
            step()
            end.record()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    return float(np.median([s.elapsed_time(e) for s, e in events])), peak


def measure_latency_ms(model: nn.Module, shape: tuple[int, ...], device: str = "cpu",
                       warmup: int = 3, repeats: int = 10, *, threads: int | None = 1,
                       channels_last: bool = True, precision: str = "fp32") -> float:
    """Median forward time in milliseconds after ``warmup`` untimed passes (:func:`time_ms`).

    ``threads``: CPU threads while timing (restored afterwards; None keeps the current
    setting). ``channels_last``: the model and input in ``channels_last(_3d)``, as training.
    On CUDA the pass runs under :func:`cuda_autocast` at ``precision`` (the resolved
    run's), as training does.
    """
    dev = torch.device(device)
    fmt = (torch.channels_last if len(shape) == 4 else torch.channels_last_3d) if channels_last \
        else torch.contiguous_format
    model = model.to(dev, memory_format=fmt).eval()
    x = torch.randn(shape, device=dev).contiguous(memory_format=fmt)

    def forward() -> None:
        with torch.no_grad(), cuda_autocast(dev, precision):
            model(x)

    before = torch.get_num_threads()
    if threads and dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        return time_ms(forward, dev, warmup, repeats)[0]
    finally:
        torch.set_num_threads(before)
