"""Swin transformer block pair (Liu et al., ICCV 2021), as GLIMS uses in its deep stages
(Yazici et al., IVC 2024, arXiv 2404.17854).

One unit is two pre-norm transformer blocks: window self-attention over P^d
windows, then the same with windows shifted by P/2 (cyclic roll), each followed
by an MLP (ratio 4). Simplifications, stated: no relative position bias and no
attention mask across the rolled border. The window per axis is the largest
divisor of the feature size not above ``window_size`` (no shift when one window
covers the axis). Maps C -> C (a stage of another width projects first).

Shapes: ``[B, C, *S] -> [B, C, *S]``.

Example:
    >>> blk = SwinBlock(spatial_dims=3, in_channels=24, out_channels=24, params=SwinParams())
    >>> blk(torch.randn(1, 24, 6, 6, 6)).shape
    torch.Size([1, 24, 6, 6, 6])
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveInt
from torch import nn

from nasseg.blocks.base import Block, Params
from nasseg.blocks.segnetr import GroupAttention
from nasseg.layers import Conv, fit_window


class SwinParams(Params):
    type: Literal["swin"] = "swin"
    window_size: PositiveInt = 7
    head_channels: PositiveInt = 32
    mlp_ratio: PositiveInt = 4


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a ``[B, C, *S]`` tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class _SwinLayer(nn.Module):
    def __init__(self, spatial_dims: int, c: int, params: SwinParams, shifted: bool) -> None:
        super().__init__()
        self.shifted, self.window = shifted, params.window_size
        self.norm1, self.norm2 = ChannelLayerNorm(c), ChannelLayerNorm(c)
        self.attn = GroupAttention(c, params.window_size, params.head_channels, grid=False)
        h = params.mlp_ratio * c
        self.mlp = nn.Sequential(Conv(spatial_dims, c, h, 1), nn.GELU(), Conv(spatial_dims, h, c, 1))

    def forward(self, x):
        dims = tuple(range(2, x.ndim))
        shift = [(fit_window(n, self.window) // 2 if n > self.window else 0) if self.shifted else 0
                 for n in x.shape[2:]]
        y = self.norm1(x)
        if any(shift):
            y = torch.roll(y, [-s for s in shift], dims)
        y = self.attn(y)
        if any(shift):
            y = torch.roll(y, shift, dims)
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinBlock(Block):
    Params = SwinParams
    changes_width = False

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int,
                 params: SwinParams, norm: str = "batch", act: str = "gelu", depth: int = 1) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"a Swin block maps C -> C, got {in_channels} -> {out_channels}")
        self.layers = nn.Sequential(_SwinLayer(spatial_dims, in_channels, params, shifted=False),
                                    _SwinLayer(spatial_dims, in_channels, params, shifted=True))

    def forward(self, x):
        return self.layers(x)
