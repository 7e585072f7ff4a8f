"""Pinned forward outputs: each preset (the 2D ones at 32x32, GLIMS at 32^3), built with
seeded weights and fed a seeded input, gives the stored output statistics, so a refactor
that keeps params and MACs but changes the computation fails here.

After an intended change of a network's computation, regenerate the file on purpose:
``python tests/test_presets_pinned.py`` (tests themselves never write it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from nasseg.arch import build_model, load_arch

PINNED = Path(__file__).parent / "fixtures" / "preset_outputs.json"
PRESETS = ["cmunext", "cmunext_l", "cmunext_s", "glims", "segnetr", "unet"]
SIZE = 32


def forward_stats(name: str) -> dict[str, float]:
    """Mean, standard deviation, mean |x| and the first/last values of the main output of
    preset ``name`` (weights seeded 0, input seeded 1, eval mode, float32, 1 thread)."""
    cfg = load_arch(name)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(1, cfg.in_channels, *[SIZE] * cfg.spatial_dims, generator=torch.Generator().manual_seed(1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        torch.set_num_threads(threads)
    y = (out[0] if isinstance(out, list | tuple) else out).double()
    flat = y.flatten()
    return {"shape": list(y.shape), "mean": y.mean().item(), "std": y.std().item(),
            "abs_mean": y.abs().mean().item(), "first": flat[0].item(), "last": flat[-1].item()}


@pytest.mark.parametrize("name", PRESETS)
def test_forward_output_is_pinned(name: str) -> None:
    want = json.loads(PINNED.read_text())[name]
    got = forward_stats(name)
    assert got["shape"] == want["shape"]
    for key in ("mean", "std", "abs_mean", "first", "last"):
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key


if __name__ == "__main__":  # regenerate on purpose (see the module docstring)
    PINNED.write_text(json.dumps({n: forward_stats(n) for n in PRESETS}, indent=1) + "\n")
    print(f"wrote {PINNED}", file=sys.stderr)
