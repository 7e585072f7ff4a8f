"""SegNetr block (Cheng et al., MICCAI 2023, arXiv 2307.02953).

An MBConv (1x1 expand, depthwise 3^d, squeeze-excitation, 1x1 project) followed
by two parallel token-mixing branches whose cost is linear in the number of
pixels, fused by a 1x1 conv with a residual:

- local: the map is split into non-overlapping P^d windows; tokens mix inside each window;
- global: the map is split into a P^d grid of tokens strided across the whole map
  (token t of every window together); tokens mix inside each group, so every
  group spans the whole image.

Token mixing (not fixed by the paper's text; our choice): multi-head
self-attention over the P^d tokens of a group, heads of 32 channels, with a
linear qkv and output projection. Attention, unlike an MLP over the token axis,
works for any group size, which lets P adapt to each stage's resolution: the
window per axis is the largest divisor of the feature size not above
``window_size``. Downsampling belongs to the network (the paper's MBConv also
strides; here the network's ``down`` does).

Shapes: ``[B, C_in, *S] -> [B, C_out, *S]``.

Example:
    >>> blk = SegNetrBlock(spatial_dims=2, in_channels=8, out_channels=16,
    ...                    params=SegNetrParams(window_size=4))
    >>> blk(torch.randn(1, 8, 32, 32)).shape
    torch.Size([1, 16, 32, 32])
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import PositiveInt
from torch import nn

from nasseg.blocks.base import Block, KernelSize, Params
from nasseg.layers import Act, Conv, GlobalAvgPool, Norm, conv_norm_act, fit_window


class SegNetrParams(Params):
    type: Literal["segnetr"] = "segnetr"
    window_size: PositiveInt = 7
    kernel_size: KernelSize = 3
    expansion: PositiveInt = 4
    se_ratio: float = 0.25
    head_channels: PositiveInt = 32


class SqueezeExcite(nn.Module):
    def __init__(self, spatial_dims: int, channels: int, reduced: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            GlobalAvgPool(spatial_dims), Conv(spatial_dims, channels, reduced, 1), nn.GELU(),
            Conv(spatial_dims, reduced, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)


class GroupAttention(nn.Module):
    """Self-attention among the P^d tokens of each group (windows or grid)."""

    def __init__(self, channels: int, window: int, head_channels: int, grid: bool) -> None:
        super().__init__()
        self.window, self.grid = window, grid
        self.heads = max(1, channels // head_channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *s = x.shape
        d = len(s)
        p = [fit_window(n, self.window) for n in s]
        g = [n // w for n, w in zip(s, p)]
        # view each axis as (groups, window) for local, or (window, groups) for the grid
        split = [v for gi, pi in zip(g, p) for v in ((pi, gi) if self.grid else (gi, pi))]
        x = x.reshape(b, c, *split)
        tok_axes = [2 + 2 * i + (0 if self.grid else 1) for i in range(d)]
        grp_axes = [2 + 2 * i + (1 if self.grid else 0) for i in range(d)]
        x = x.permute(0, *grp_axes, *tok_axes, 1)          # B, groups..., tokens..., C
        n_grp, n_tok = math.prod(g), math.prod(p)
        t = x.reshape(b * n_grp, n_tok, c)
        h, dh = self.heads, c // self.heads
        q, k, v = self.qkv(t).reshape(b * n_grp, n_tok, 3, h, dh).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * dh**-0.5, dim=-1)
        t = torch.matmul(attn, v).transpose(1, 2).reshape(b * n_grp, n_tok, c)
        t = self.proj(t)
        x = t.reshape(b, *g, *p, c)
        inv = [0] * (2 * d + 2)
        perm = [0, *grp_axes, *tok_axes, 1]
        for i, a in enumerate(perm):
            inv[a] = i
        return x.permute(inv).reshape(b, c, *s)


class SegNetrBlock(Block):
    Params = SegNetrParams

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int,
                 params: SegNetrParams, norm: str = "batch", act: str = "gelu",
                 depth: int = 1) -> None:
        super().__init__()
        e = params.expansion * in_channels
        self.mbconv = nn.Sequential(
            *conv_norm_act(spatial_dims, in_channels, e, 1, norm=norm, act="gelu"),
            *conv_norm_act(spatial_dims, e, e, params.kernel_size, norm=norm, act="gelu", groups=e),
            SqueezeExcite(spatial_dims, e, max(1, int(in_channels * params.se_ratio))),
            Conv(spatial_dims, e, out_channels, 1),
            Norm(norm, spatial_dims, out_channels),
        )
        self.shortcut = (nn.Identity() if in_channels == out_channels
                         else Conv(spatial_dims, in_channels, out_channels, 1))
        c = out_channels
        self.local = GroupAttention(c, params.window_size, params.head_channels, grid=False)
        self.globl = GroupAttention(c, params.window_size, params.head_channels, grid=True)
        self.fuse = nn.Sequential(Conv(spatial_dims, 2 * c, c, 1), Norm(norm, spatial_dims, c))
        self.act = Act("gelu")

    def forward(self, x):
        x = self.mbconv(x) + self.shortcut(x)
        y = self.fuse(torch.cat([self.local(x), self.globl(x)], dim=1))
        return self.act(x + y)
