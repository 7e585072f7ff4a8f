"""The Swin layers' window arithmetic: masks across the rolled border, padding, position embeddings."""
from __future__ import annotations

import torch

from nasseg.blocks.swin import SwinBlock, SwinLayer, SwinParams


def _reach(layer: SwinLayer, src: tuple[int, int], dst: tuple[int, int]) -> bool:
    """Does changing the token at ``src`` change the output at ``dst``?"""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, src[0], src[1]] += torch.randn(8)  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        return not torch.allclose(layer(x)[0, dst[0], dst[1]], layer(y)[0, dst[0], dst[1]], atol=1e-6)


def test_shifted_windows_mask_the_rolled_border() -> None:
    """8x8 map, window 4, shift 2: original rows/cols 6-7 and 0-1 share a rolled window but
    lie in different regions, so the mask keeps them apart; 0 and 1 stay in one region."""
    params = SwinParams(window_size=4, head_channels=4)
    shifted = SwinLayer(2, 8, params, "gelu", shifted=True)
    assert not _reach(shifted, (0, 0), (6, 6))
    assert _reach(shifted, (0, 0), (1, 1))
    plain = SwinLayer(2, 8, params, "gelu", shifted=False)
    assert _reach(plain, (0, 0), (3, 3)) and not _reach(plain, (0, 0), (4, 4))


def test_padding_and_resized_position_embedding() -> None:
    """12 -> padded to 14 for window 7 (GLIMS' 192-channel map); an embedding made for 6^2
    is resized to 12^2; the output keeps the input's shape."""
    blk = SwinBlock(spatial_dims=2, in_channels=8, out_channels=8,
                    params=SwinParams(window_size=7, head_channels=4, position_size=6))
    out = blk(torch.randn(2, 8, 12, 12))
    assert tuple(out.shape) == (2, 8, 12, 12) and torch.isfinite(out).all()
    assert len(blk.layers) == 2 and blk.position.shape == (1, 8, 6, 6)


def test_cached_index_and_mask_follow_the_device() -> None:
    """Counting on the meta device (inside a device context) leaves the CPU cache intact."""
    from nasseg.cost.meta import count

    params = SwinParams(window_size=4, head_channels=4)
    with torch.device("meta"):
        count(SwinBlock(spatial_dims=2, in_channels=8, out_channels=8, params=params), (1, 8, 8, 8))
    out = SwinBlock(spatial_dims=2, in_channels=8, out_channels=8, params=params)(torch.randn(1, 8, 8, 8))
    assert out.device.type == "cpu" and torch.isfinite(out).all()
