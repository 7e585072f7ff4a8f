"""The counters behind :func:`nasseg.cost.profile`, one function per quantity.

- params: trainable parameters.
- MACs: ptflops 0.7.5 with its ``pytorch`` backend pinned (module hooks; counts
  convolutions, linear layers, norms, activations, pooling and upsampling as
  ptflops does). This is what the CMUNeXt paper calls "GFLOPs".
- FLOPs: fvcore's ``FlopCountAnalysis`` (one fused multiply-add = one flop;
  elementwise activations not counted).
- latency: median wall time of a forward pass in eval mode under ``no_grad``,
  after warm-up (CUDA: synchronised).
- memory: the peak of one training step (forward + backward). On CUDA, the
  allocator's peak; on CPU an estimate from feature-map sizes: every leaf
  module's output (kept for backward) plus weights, gradients and two AdamW
  moments, all float32.

MACs and FLOPs are counted at batch 1 and scaled by the batch size (every
counted op is linear in the batch).
"""
from __future__ import annotations

import statistics
import time
import warnings

import torch
from torch import nn

PTFLOPS_BACKEND = "pytorch"


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    from ptflops import get_model_complexity_info

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
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, torch.zeros(1, *shape[1:]))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total()) * shape[0]


def estimate_memory_mb(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Training-step memory from feature-map sizes (float32), without running backward."""
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        for t in output if isinstance(output, (list, tuple)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(shape))
    finally:
        for h in handles:
            h.remove()
    weights = 4 * count_params(model)  # weights, grads, two AdamW moments
    return (total + weights) * 4 / 2**20


def cuda_peak_memory_mb(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Allocator peak of one forward + backward on CUDA."""
    device = torch.device("cuda")
    model = model.to(device).train()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = model(torch.randn(shape, device=device))
    loss = sum(o.float().mean() for o in out) if isinstance(out, list) else out.float().mean()
    loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(device) - base
    model.zero_grad(set_to_none=True)
    return peak / 2**20 + count_params(model) * 4 * 4 / 2**20


def measure_latency_ms(model: nn.Module, shape: tuple[int, ...], device: str = "cpu",
                       warmup: int = 3, repeats: int = 10) -> float:
    """Median forward time in milliseconds after ``warmup`` untimed passes."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    x = torch.randn(shape, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(times))
