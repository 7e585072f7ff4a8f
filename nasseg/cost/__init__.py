"""Cost of a network at an input shape: params, MACs, FLOPs, latency, peak memory.

Example:
    >>> cost = profile(load_arch("cmunext"), (1, 3, 256, 256), latency=False)
    >>> cost.params, cost.macs, cost.flops
    (3149185, 7409033216, 7316512768)

Counts are cached by (arch id, input shape, counter versions), so a search never
counts the same network twice; ``cost.cached`` tells whether this call hit it.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from nasseg.arch import ArchConfig, arch_id, build_model, check_input_shape, load_arch
from nasseg.cost import counters
from nasseg.cost.cache import CostCache


def counter_versions() -> dict[str, str]:
    """Versions that determine the counts (part of the cache key)."""
    return {
        "torch": torch.__version__.split("+")[0],
        "ptflops": metadata.version("ptflops"),
        "ptflops_backend": counters.PTFLOPS_BACKEND,
        "fvcore": metadata.version("fvcore"),
    }


@dataclass
class Cost:
    """What a network costs at one input shape. MACs/FLOPs are raw counts."""

    arch_id: str
    input_shape: tuple[int, ...]
    params: int
    macs: int
    flops: int
    memory_mb: float
    memory_kind: str  # "estimate" (CPU, from feature maps) or "cuda_peak"
    latency_ms: float | None = None
    device: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    cached: bool = False

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d.pop("cached")
        return d


def _device_tag(device: str) -> str:
    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu:{platform.processor() or platform.machine()}:threads={torch.get_num_threads()}"


def profile(config: ArchConfig | str | Path | dict, input_shape: tuple[int, ...] | list[int], *,
            device: str = "cpu", latency: bool = True, cache: CostCache | bool | None = True,
            warmup: int = 3, repeats: int = 10) -> Cost:
    """Count (or fetch from the cache) the cost of ``config`` at ``input_shape``.

    Args:
        config: an ArchConfig, preset name, YAML path or mapping.
        input_shape: ``(B, C, *spatial)``; validated against the config.
        device: where latency (and, on CUDA, peak memory) are measured.
        latency: measure latency; False leaves ``latency_ms`` None (counts are cheap to reuse).
        cache: a CostCache, True for the default file, False/None for no cache.

    Raises:
        ConfigError: the config or the input shape is invalid.
    """
    cfg = load_arch(config)
    shape = check_input_shape(cfg, input_shape)
    store = CostCache() if cache is True else (cache if isinstance(cache, CostCache) else None)
    versions = counter_versions()
    aid = arch_id(cfg)
    key = f"counts|{aid}|{'x'.join(map(str, shape))}|" + ",".join(f"{k}={v}" for k, v in sorted(versions.items()))
    dev_key = f"device|{key}|{_device_tag(device)}|w{warmup}r{repeats}"
    hit = store.get(key) if store is not None else None
    model = None
    if hit is None:
        model = build_model(cfg)
        hit = {"params": counters.count_params(model), "macs": counters.count_macs(model, shape),
               "flops": counters.count_flops(build_model(cfg), shape),
               "memory_mb": counters.estimate_memory_mb(model, shape)}
        if store is not None:
            store.put(key, hit)
        cached = False
    else:
        cached = True
    cost = Cost(arch_id=aid, input_shape=shape, params=hit["params"], macs=hit["macs"],
                flops=hit["flops"], memory_mb=hit["memory_mb"], memory_kind="estimate",
                versions=versions, cached=cached)
    if latency or device.startswith("cuda"):
        measured = store.get(dev_key) if store is not None else None
        if measured is None:
            model = model or build_model(cfg)
            measured = {"latency_ms": counters.measure_latency_ms(model, shape, device, warmup, repeats)
                        if latency else None}
            if device.startswith("cuda"):
                measured["memory_mb"] = counters.cuda_peak_memory_mb(model, shape)
            if store is not None:
                store.put(dev_key, measured)
            cost.cached = False
        cost.latency_ms = measured.get("latency_ms")
        cost.device = device
        if "memory_mb" in measured:
            cost.memory_mb, cost.memory_kind = measured["memory_mb"], "cuda_peak"
    return cost


__all__ = ["Cost", "CostCache", "counter_versions", "profile"]
