"""Cost of a network at an input shape: params, MACs, FLOPs, latency, training memory.

Params, MACs, FLOPs and the memory estimate are counted on the meta device
(:mod:`nasseg.cost.meta`: no tensor allocated, no kernel run; MACs follow ptflops
and FLOPs fvcore to the unit); ``counter="reference"`` runs ptflops and fvcore
themselves on CPU instead (slow; the tests check that both agree). Latency is
measured only when asked, at a fixed CPU thread count and in the memory layout
training uses, and cached with those settings in the key.

Example:
    >>> cost = profile(load_arch("cmunext"), (1, 3, 256, 256), latency=False)
    >>> cost.params, cost.macs, cost.flops
    (3149185, 7409033216, 7316512768)
    >>> round(estimate_train_memory_mb("cmunext", (1, 3, 256, 256), batch_size=8))
    3389

Counts are cached by (arch id, input shape, counter version), so a search never
counts the same network twice; ``cost.cached`` tells whether this call hit it.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import torch

from nasseg.arch import ArchConfig, arch_id, build_model, check_input_shape, load_arch
from nasseg.cost import counters, meta
from nasseg.cost.cache import CostCache
from nasseg.device import autocast_dtype
from nasseg.errors import ConfigError

Counter = Literal["meta", "reference"]


def counter_versions(counter: Counter = "meta") -> dict[str, str]:
    """What determines the counts (part of the cache key and of every stored cost)."""
    versions = {"torch": torch.__version__.split("+")[0], "counter": counter}
    if counter == "meta":
        versions |= {"rules": meta.RULES_VERSION, "macs_as": "ptflops 0.7.5 pytorch backend",
                     "flops_as": "fvcore 0.1.5"}
    else:
        versions |= {"ptflops": metadata.version("ptflops"), "ptflops_backend": counters.PTFLOPS_BACKEND,
                     "fvcore": metadata.version("fvcore")}
    return versions


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


def _device_tag(device: str, threads: int | None, channels_last: bool, precision: str) -> str:
    layout = "channels_last" if channels_last else "contiguous"
    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}:{layout}:{precision}"
    return f"cpu:{platform.processor() or platform.machine()}:threads={threads or torch.get_num_threads()}:{layout}"


def _checked(device: str, precision: str) -> tuple[str, str]:
    """``(device, precision)`` as a resolved run holds them, refused when they are not:
    :func:`profile` measures where it is told and decides neither."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"profile: device {device!r} is not a resolved device (cpu, cuda, cuda:N): pass the "
                          f"resolved run's device (nasseg.device.resolve_device turns 'auto' into one)")
    autocast_dtype(precision)  # fp32, bf16 or fp16
    if kind == "cpu" and precision != "fp32":
        raise ConfigError(f"profile: precision {precision!r} on the CPU: a resolved CPU run is fp32")
    return str(torch.device(device)), precision


def _store(cache: CostCache | bool | None) -> CostCache | None:
    return CostCache() if cache is True else (cache if isinstance(cache, CostCache) else None)


def _count(cfg: ArchConfig, shape: tuple[int, ...], counter: Counter,
           store: CostCache | None) -> tuple[dict[str, Any], bool]:
    """Counts at batch 1 (``params, macs, flops, activations``), from the cache when there."""
    one = (1, *shape[1:])
    key = (f"counts|{arch_id(cfg)}|{'x'.join(map(str, one))}|"
           + ",".join(f"{k}={v}" for k, v in sorted(counter_versions(counter).items())))
    hit = store.get(key) if store is not None else None
    if hit is not None:
        return hit, True
    if counter == "meta":
        with torch.device("meta"):
            model = build_model(cfg)
        c = meta.count(model, one)
        hit = {"params": c.params, "macs": c.macs, "flops": c.flops, "activations": c.activations}
    elif counter == "reference":
        model = build_model(cfg)
        with torch.device("meta"):
            c = meta.count(build_model(cfg), one)
        hit = {"params": counters.count_params(model), "macs": counters.count_macs(model, one),
               "flops": counters.count_flops(build_model(cfg), one), "activations": c.activations}
    else:
        raise ValueError(f"counter must be 'meta' or 'reference', got {counter!r}")
    if store is not None:
        store.put(key, hit)
    return hit, False


def _memory_mb(activations: int, params: int, dtype: torch.dtype) -> float:
    """Saved feature maps in ``dtype`` plus fp32 weights, gradients and two AdamW moments."""
    return (activations * dtype.itemsize + 4 * params * 4) / 2**20


def estimate_train_memory_mb(config: ArchConfig | str | Path | dict, input_shape: tuple[int, ...] | list[int],
                             batch_size: int | None = None, dtype: torch.dtype = torch.float32, *,
                             cache: CostCache | bool | None = True) -> float:
    """Memory of one training step (forward, backward, AdamW), in MiB, without running anything.

    The estimate adds the outputs of every leaf module (the feature maps autograd keeps
    for the backward pass), read from shapes on the meta device as nnU-Net's
    ``compute_conv_feature_map_size`` adds them up, in ``dtype`` (``torch.bfloat16``
    under autocast), plus float32 weights, gradients and the two AdamW moments. It
    ignores the allocator's fragmentation and cuDNN workspaces: keep a margin
    (nnU-Net plans against a fixed reference budget for the same reason).

    Args:
        config: an ArchConfig, preset name, YAML path or mapping.
        input_shape: ``(B, C, *spatial)`` of one batch (validated against the config).
        batch_size: overrides ``B`` (the estimate is linear in it; one cached count serves all).
        dtype: the activations' dtype.
        cache: a CostCache, True for the default file, False/None for none.

    Example:
        >>> round(estimate_train_memory_mb("glims", (1, 4, 128, 128, 128), batch_size=2,
        ...                                dtype=torch.bfloat16))  # this preset, this version
        23768
    """
    cfg = load_arch(config)
    shape = check_input_shape(cfg, input_shape)
    batch = shape[0] if batch_size is None else int(batch_size)
    counts, _ = _count(cfg, shape, "meta", _store(cache))
    return _memory_mb(counts["activations"] * batch, counts["params"], dtype)


def profile(config: ArchConfig | str | Path | dict, input_shape: tuple[int, ...] | list[int], *,
            device: str = "cpu", precision: str = "fp32", latency: bool = True,
            cache: CostCache | bool | None = True,
            warmup: int = 3, repeats: int = 10, threads: int | None = 1, channels_last: bool = True,
            counter: Counter = "meta") -> Cost:
    """Count (or fetch from the cache) the cost of ``config`` at ``input_shape``.

    Args:
        config: an ArchConfig, preset name, YAML path or mapping.
        input_shape: ``(B, C, *spatial)``; validated against the config.
        device: where latency (and, on CUDA, peak memory) are measured: the device the
            caller's resolved run decided (:attr:`nasseg.train.resolved.ResolvedRun.device`,
            ``cpu``, ``cuda`` or ``cuda:N``); taken as given, never resolved again here
            (``auto`` is refused).
        precision: the run's precision (:attr:`~nasseg.train.resolved.ResolvedRun.precision`):
            CUDA latency is timed under its autocast, as the run trains; ``fp32`` on the CPU.
        latency: measure latency; False leaves ``latency_ms`` None and runs no network.
        cache: a CostCache, True for the default file, False/None for no cache.
        warmup, repeats: untimed and timed forward passes (the median is reported).
        threads: CPU threads while timing (default 1, so a latency does not depend on the
            process's setting or the machine's core count); None keeps the current setting.
        channels_last: time in the channels-last layout training uses by default.
        counter: ``"meta"`` (default, no network run) or ``"reference"`` (ptflops + fvcore on CPU).

    Raises:
        ConfigError: the config or the input shape is invalid, or the device or precision
            is not a resolved one.
    """
    cfg = load_arch(config)
    shape = check_input_shape(cfg, input_shape)
    device, precision = _checked(device, precision)
    store = _store(cache)
    counts, cached = _count(cfg, shape, counter, store)
    batch = shape[0]
    cost = Cost(arch_id=arch_id(cfg), input_shape=shape, params=counts["params"],
                macs=counts["macs"] * batch, flops=counts["flops"] * batch,
                memory_mb=_memory_mb(counts["activations"] * batch, counts["params"], torch.float32),
                memory_kind="estimate", versions=counter_versions(counter), cached=cached)
    if latency or device.startswith("cuda"):
        tag = _device_tag(device, threads, channels_last, precision)
        # whether latency was measured is part of the key: a CUDA profile without latency
        # (memory only) must not be read back as "latency: None" by a later latency profile
        dev_key = (f"device|{cost.arch_id}|{'x'.join(map(str, shape))}|torch={cost.versions['torch']}|{tag}|"
                   f"w{warmup}r{repeats}|latency={int(bool(latency))}")
        measured = store.get(dev_key) if store is not None else None
        if measured is None:
            model = build_model(cfg)
            measured = {"latency_ms": counters.measure_latency_ms(model, shape, device, warmup, repeats,
                                                                  threads=threads, channels_last=channels_last,
                                                                  precision=precision)
                        if latency else None}
            if device.startswith("cuda"):
                measured["memory_mb"] = counters.cuda_peak_memory_mb(model, shape, device)
            if store is not None:
                store.put(dev_key, measured)
            cost.cached = False
        cost.latency_ms = measured.get("latency_ms")
        cost.device = device
        if "memory_mb" in measured:
            cost.memory_mb, cost.memory_kind = measured["memory_mb"], "cuda_peak"
    return cost


__all__ = ["Cost", "CostCache", "counter_versions", "estimate_train_memory_mb", "profile"]
