"""Meta-device counts equal the reference counters (ptflops MACs, fvcore FLOPs) to the unit.

Every registered block and skip attention, every skip inside a tiny network, and every
preset (GLIMS under the slow marker: the reference counters take minutes on it) are
counted both ways. The meta pass allocates nothing, so the same counts come for free
at any input size.
"""
from __future__ import annotations

import pytest
import torch

from nasseg.arch import build_model, load_arch, preset_names
from nasseg.blocks import BLOCKS
from nasseg.cost import counters, estimate_train_memory_mb, profile
from nasseg.cost.meta import count
from nasseg.skips import ATTENTIONS, SKIPS


def _reference(make, shape):
    return (counters.count_params(make()), counters.count_macs(make(), shape),
            counters.count_flops(make(), shape))


def _meta(make, shape):
    with torch.device("meta"):
        c = count(make(), shape)
    return c.params, c.macs, c.flops


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", BLOCKS.names())
def test_block_counts_match_references(name: str, dims: int) -> None:
    cls = BLOCKS.get(name)
    c_in, c_out = (4, 8) if cls.changes_width else (8, 8)

    def make():
        return cls(spatial_dims=dims, in_channels=c_in, out_channels=c_out, params=cls.Params(), depth=2)

    shape = (1, c_in, *([8] * dims))
    assert _meta(make, shape) == _reference(make, shape)


@pytest.mark.parametrize("dims,up", [(2, "interp_conv"), (3, "transposed")])
@pytest.mark.parametrize("field,name", [("skip", n) for n in SKIPS.names()]
                         + [("skip_attention", n) for n in ATTENTIONS.names()])
def test_skip_counts_match_references(field: str, name: str, up: str, dims: int) -> None:
    stage = {"width": 4, "decoder_depth": 1, field: {"type": name}}
    cfg = load_arch({"spatial_dims": dims, "in_channels": 2, "out_channels": 3, "up": up,
                     "stages": [stage, {"width": 8}]})
    shape = (1, 2, *([8] * dims))
    assert _meta(lambda: build_model(cfg), shape) == _reference(lambda: build_model(cfg), shape)


@pytest.mark.parametrize("dims", [2, 3])
def test_swin_stages_with_patch_merging_match_references(dims: int) -> None:
    """GLIMS' pieces: Swin beside a conv stage, patch merging down, patch expanding up."""
    cfg = load_arch({"spatial_dims": dims, "in_channels": 2, "out_channels": 3, "act": "prelu",
                     "stages": [{"width": 4, "extra": {"block": {"type": "swin", "window_size": 3,
                                                                  "head_channels": 4}}},
                                {"width": 8, "block": {"type": "swin", "window_size": 3, "position_size": 4},
                                 "down": "patch_merging", "up": "patch_expanding"}]})
    shape = (1, 2, *([8] * dims))
    assert _meta(lambda: build_model(cfg), shape) == _reference(lambda: build_model(cfg), shape)


# cmunext_l differs from cmunext only in widths and depths; its meta counts are pinned to the
# authors' numbers in test_arch.py, and compared with the references here under slow
SLOW_PRESETS = {n for n in preset_names() if load_arch(n).spatial_dims == 3} | {"cmunext_l"}


@pytest.mark.parametrize("name", sorted(set(preset_names()) - SLOW_PRESETS))
def test_2d_preset_counts_match_references(name: str) -> None:
    cfg = load_arch(name)
    shape = (1, cfg.in_channels, 32, 32)
    assert _meta(lambda: build_model(cfg), shape) == _reference(lambda: build_model(cfg), shape)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_PRESETS))
def test_slow_preset_counts_match_references(name: str) -> None:
    cfg = load_arch(name)
    shape = (1, cfg.in_channels, *([64] * cfg.spatial_dims))
    assert _meta(lambda: build_model(cfg), shape) == _reference(lambda: build_model(cfg), shape)


def test_profile_counts_without_running_and_batch_scales(tmp_path) -> None:
    """The default path is the meta one; batch B is B times batch 1; the memory estimate grows
    with the batch and halves its activation part in bfloat16."""
    one = profile("cmunext_s", (1, 3, 64, 64), latency=False, cache=False)
    four = profile("cmunext_s", (4, 3, 64, 64), latency=False, cache=False)
    assert one.versions["counter"] == "meta"
    assert (four.params, four.macs, four.flops) == (one.params, 4 * one.macs, 4 * one.flops)
    fp32 = estimate_train_memory_mb("cmunext_s", (1, 3, 64, 64), batch_size=4, cache=False)
    bf16 = estimate_train_memory_mb("cmunext_s", (1, 3, 64, 64), batch_size=4, dtype=torch.bfloat16,
                                    cache=False)
    weights = 16 * one.params / 2**20
    assert fp32 == pytest.approx(four.memory_mb)
    assert bf16 - weights == pytest.approx((fp32 - weights) / 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a CUDA profile (peak memory) is measured on a GPU only")
def test_a_cuda_profile_without_latency_is_not_read_back_by_a_latency_profile(tmp_path) -> None:
    """Bug: the device entry's key did not say whether latency was measured, so a CUDA
    profile without latency cached ``latency_ms: None`` that a latency search then read."""
    from nasseg.cost.cache import CostCache

    cache = CostCache(tmp_path / "costs.sqlite")
    first = profile("cmunext_s", (1, 3, 64, 64), device="cuda", latency=False, cache=cache, repeats=2)
    timed = profile("cmunext_s", (1, 3, 64, 64), device="cuda", latency=True, cache=cache, repeats=2)
    assert first.latency_ms is None and timed.latency_ms is not None and timed.latency_ms > 0
    assert profile("cmunext_s", (1, 3, 64, 64), device="cuda", latency=True, cache=cache,
                   repeats=2).latency_ms == timed.latency_ms  # now cached with its latency



@pytest.fixture
def stand_in_gpu(monkeypatch):
    """A CUDA device on the CPU: its name, the latency timer and the allocator peak are
    stood in for (each call recorded); the cache, its keys and profile's logic are real."""
    import nasseg.cost as cost

    calls: list[tuple] = []

    def latency(model, shape, device, warmup, repeats, *, threads, channels_last, precision):
        calls.append(("latency", device, precision))
        return {"fp32": 9.0, "bf16": 4.0, "fp16": 3.0}[precision]

    def peak(model, shape, device):
        calls.append(("memory", device))
        return 123.0

    monkeypatch.setattr(cost.torch.cuda, "get_device_name", lambda device=None: "Stand-in GPU")
    monkeypatch.setattr(cost.counters, "measure_latency_ms", latency)
    monkeypatch.setattr(cost.counters, "cuda_peak_memory_mb", peak)
    return calls


def test_a_device_profile_without_latency_is_not_served_to_a_latency_request(tmp_path, stand_in_gpu) -> None:
    """The CPU twin of the CUDA test above: the device entry of a memory-only profile
    (``latency_ms: None``) is keyed apart from a latency profile's (fails without
    ``latency=`` in the key: the second call read ``None``)."""
    from nasseg.cost.cache import CostCache

    cache = CostCache(tmp_path / "costs.sqlite")
    kw = {"device": "cuda", "precision": "bf16", "cache": cache}
    first = profile("cmunext_s", (1, 3, 64, 64), latency=False, **kw)
    assert first.latency_ms is None and (first.memory_mb, first.memory_kind) == (123.0, "cuda_peak")
    timed = profile("cmunext_s", (1, 3, 64, 64), latency=True, **kw)
    assert timed.latency_ms == 4.0 and not timed.cached
    again = profile("cmunext_s", (1, 3, 64, 64), latency=True, **kw)
    assert again.latency_ms == 4.0 and again.cached and again.memory_mb == 123.0
    assert stand_in_gpu == [("memory", "cuda"), ("latency", "cuda", "bf16"), ("memory", "cuda")]


def test_profile_measures_at_the_callers_resolved_device_and_precision(tmp_path, stand_in_gpu) -> None:
    """profile takes the device and precision a resolved run decided (issue 25: it resolved
    the device again, and timed CUDA under bf16 whenever the GPU had it, ``amp: off`` or
    not): it times at the precision given, keys the entry by it, and refuses what is not
    resolved."""
    from nasseg.cost.cache import CostCache
    from nasseg.errors import ConfigError

    cache = CostCache(tmp_path / "costs.sqlite")
    fp16 = profile("cmunext_s", (1, 3, 64, 64), device="cuda:0", precision="fp16", cache=cache)
    fp32 = profile("cmunext_s", (1, 3, 64, 64), device="cuda:0", precision="fp32", cache=cache)
    assert (fp16.latency_ms, fp32.latency_ms, fp16.device) == (3.0, 9.0, "cuda:0") and not fp32.cached
    assert [c for c in stand_in_gpu if c[0] == "latency"] == [("latency", "cuda:0", "fp16"),
                                                               ("latency", "cuda:0", "fp32")]
    with pytest.raises(ConfigError, match=r"device 'auto' is not a resolved device"):
        profile("cmunext_s", (1, 3, 64, 64), device="auto", cache=False)
    with pytest.raises(ConfigError, match=r"a resolved CPU run is fp32"):
        profile("cmunext_s", (1, 3, 64, 64), device="cpu", precision="bf16", cache=False)

def test_memory_estimate_is_feature_maps_plus_optimizer_state() -> None:
    """One conv stage by hand: every leaf output of a 2-stage U-Net at 8x8, batch 2."""
    cfg = load_arch({"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                     "stages": [{"width": 2}, {"width": 4}]})
    model = build_model(cfg)
    outs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outs.append(o.numel()))
             for m in model.modules() if not list(m.children())]
    model.eval()(torch.zeros(2, 1, 8, 8))
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    expected = (sum(outs) * 4 + params * 16) / 2**20
    assert estimate_train_memory_mb(cfg, (2, 1, 8, 8), cache=False) == pytest.approx(expected)


def test_glims_counts_at_full_size_are_cheap() -> None:
    """128^3 GLIMS would need gigabytes on CPU; on the meta device it needs nothing."""
    cost = profile("glims", (1, 4, 128, 128, 128), latency=False, cache=False)
    assert cost.macs > 1e11 and cost.memory_mb > 1e4


def test_shape_rules_give_what_the_meta_kernels_give() -> None:
    """The shortcut shape rules (ops not run at all) change nothing, on every preset."""
    for name in preset_names():
        cfg = load_arch(name)
        shape = (1, cfg.in_channels, *([64] * cfg.spatial_dims))
        with torch.device("meta"):
            model = build_model(cfg)
        assert count(model, shape) == count(model, shape, shortcuts=False), name
