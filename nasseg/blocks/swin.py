"""Swin transformer layers (Liu et al., ICCV 2021) as GLIMS uses them beside and below its
convolutional stages (Yazici et al., IVC 2024, arXiv 2404.17854; MONAI's SwinUNETR layers).

``depth`` pairs of pre-norm transformer layers on the channels of ``[B, C, *S]``:
window self-attention over P^d windows with a learned relative position bias
((2P-1)^d entries per head), then the same with windows shifted by P/2 (cyclic
roll) and an attention mask that keeps tokens from attending across the rolled
border; each followed by an MLP (ratio 4; the network's activation, PReLU in
GLIMS). As in MONAI's implementation, a feature map no larger than P along an
axis uses one window of its size there and no shift; otherwise it is zero-padded
to a multiple of P. A parameter-free LayerNorm over the channels ends the block
(GLIMS' ``proj_out``). With ``position_size`` n, a learned absolute position
embedding ``[1, C, n^d]`` is added first (GLIMS' ``position_embeddings``, sized
for its 96^3 input); at another feature size it is resized (bi/trilinearly),
as ViTs do, where GLIMS would fail.

The relative position index is computed for the window actually used (GLIMS
slices the 7^3 window's index when the window is smaller). Maps C -> C (a stage
of another width projects first).

Shapes: ``[B, C, *S] -> [B, C, *S]``.

Example:
    >>> blk = SwinBlock(spatial_dims=3, in_channels=24, out_channels=24, params=SwinParams())
    >>> blk(torch.randn(1, 24, 12, 12, 12)).shape
    torch.Size([1, 24, 12, 12, 12])
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from nasseg.blocks.base import Block, Params
from nasseg.layers import Act


class SwinParams(Params):
    type: Literal["swin"] = "swin"
    window_size: PositiveInt = 7
    head_channels: PositiveInt = 32
    mlp_ratio: PositiveInt = 4
    position_size: PositiveInt | None = None
    """Voxels per axis of a learned absolute position embedding (GLIMS: its feature size)."""


def _windows(x: torch.Tensor, w: list[int]) -> torch.Tensor:
    """``[B, *S, C]`` (S divisible by w) -> ``[B * n_windows, prod(w), C]``."""
    b, *s, c = x.shape
    d = len(s)
    x = x.reshape(b, *[v for n, k in zip(s, w) for v in (n // k, k)], c)
    x = x.permute(0, *range(1, 2 * d, 2), *range(2, 2 * d + 1, 2), 2 * d + 1)
    return x.reshape(-1, math.prod(w), c)


def _unwindows(t: torch.Tensor, w: list[int], s: list[int], b: int) -> torch.Tensor:
    """The inverse of :func:`_windows`."""
    d = len(s)
    x = t.reshape(b, *[n // k for n, k in zip(s, w)], *w, -1)
    x = x.permute(0, *[v for i in range(d) for v in (1 + i, 1 + d + i)], 2 * d + 1)
    return x.reshape(b, *s, -1)


@functools.lru_cache(maxsize=64)
def _relative_index(w: tuple[int, ...], table_window: int, device: str) -> torch.Tensor:
    """Index into a ``(2P-1)^d`` bias table for every token pair of a ``w`` window.

    Computed once per window shape and device (on CPU, then moved: on the meta device
    an index built there would cost more than the whole count).
    """
    if device != "cpu":
        return _relative_index(w, table_window, "cpu").to(device)
    coords = torch.stack(torch.meshgrid(*[torch.arange(k, device="cpu") for k in w], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]) + (table_window - 1)
    side = 2 * table_window - 1
    index = torch.zeros_like(rel[0])
    for axis in range(len(w)):
        index = index * side + rel[axis]
    return index


@functools.lru_cache(maxsize=64)
def _shift_mask(padded: tuple[int, ...], w: tuple[int, ...], shift: tuple[int, ...], device: str) -> torch.Tensor:
    """``[n_windows, T, T]``: 0 within a region of the rolled map, -100 across regions
    (once per shape and device, as :func:`_relative_index`)."""
    if device != "cpu":
        return _shift_mask(padded, w, shift, "cpu").to(device)
    regions = torch.zeros(1, *padded, 1, device="cpu")  # "cpu" even inside a torch.device context
    for i, parts in enumerate(itertools.product(*[((0, n - k), (n - k, n - s), (n - s, n))
                                                  for n, k, s in zip(padded, w, shift)])):
        regions[(0, *[slice(a, b) for a, b in parts], 0)] = i
    ids = _windows(regions, w).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a relative position bias."""

    def __init__(self, spatial_dims: int, channels: int, window: int, head_channels: int) -> None:
        super().__init__()
        self.window = window
        self.heads = max(1, channels // head_channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** spatial_dims, self.heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)

    def forward(self, t: torch.Tensor, w: list[int], mask: torch.Tensor | None) -> torch.Tensor:
        n, tokens, c = t.shape
        h = self.heads
        q, k, v = self.qkv(t).reshape(n, tokens, 3, h, c // h).permute(2, 0, 3, 1, 4)
        attn = (q * (c // h) ** -0.5) @ k.transpose(-2, -1)
        index = _relative_index(tuple(w), self.window, str(t.device))
        attn = attn + self.bias_table[index.reshape(-1)].reshape(tokens, tokens, h).permute(2, 0, 1)
        if mask is not None:
            attn = attn.reshape(-1, mask.shape[0], h, tokens, tokens) + mask[None, :, None]
            attn = attn.reshape(n, h, tokens, tokens)
        out = (torch.softmax(attn, dim=-1) @ v).transpose(1, 2).reshape(n, tokens, c)
        return self.proj(out)


class SwinLayer(nn.Module):
    """One pre-norm transformer layer on ``[B, *S, C]`` tokens, windows shifted or not."""

    def __init__(self, spatial_dims: int, c: int, params: SwinParams, act: str, shifted: bool) -> None:
        super().__init__()
        self.window, self.shifted = params.window_size, shifted
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn = WindowAttention(spatial_dims, c, params.window_size, params.head_channels)
        hidden = params.mlp_ratio * c
        self.mlp = nn.Sequential(nn.Linear(c, hidden), Act(act, hidden), nn.Linear(hidden, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, *s, c = x.shape
        w = [min(n, self.window) for n in s]
        shift = [k // 2 if self.shifted and n > self.window else 0 for n, k in zip(s, w)]
        pad = [(-n) % k for n, k in zip(s, w)]
        y = self.norm1(x)
        if any(pad):
            y = F.pad(y, [0, 0] + [v for p in reversed(pad) for v in (0, p)])
        padded = list(y.shape[1:-1])
        dims = tuple(range(1, 1 + len(s)))
        mask = None
        if any(shift):
            y = torch.roll(y, [-v for v in shift], dims)
            mask = _shift_mask(tuple(padded), tuple(w), tuple(shift), str(y.device))
        y = _unwindows(self.attn(_windows(y, w), w, mask), w, padded, b)
        if any(shift):
            y = torch.roll(y, shift, dims)
        if any(pad):
            y = y[(slice(None), *[slice(0, n) for n in s])]
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinBlock(Block):
    Params = SwinParams
    owns_depth = True
    changes_width = False

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int,
                 params: SwinParams, norm: str = "batch", act: str = "gelu", depth: int = 1) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"a Swin block maps C -> C, got {in_channels} -> {out_channels}")
        c, n = in_channels, params.position_size
        self.position = (nn.Parameter(torch.zeros(1, c, *([n] * spatial_dims))) if n else None)
        if self.position is not None:
            nn.init.trunc_normal_(self.position, std=0.02)
        self.layers = nn.Sequential(*[SwinLayer(spatial_dims, c, params, act, shifted=i % 2 == 1)
                                      for i in range(2 * depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.position is not None:
            pos = self.position
            if pos.shape[2:] != x.shape[2:]:
                pos = F.interpolate(pos, size=x.shape[2:], mode="bilinear" if x.ndim == 4 else "trilinear",
                                    align_corners=False)
            x = x + pos
        y = self.layers(x.movedim(1, -1))
        return F.layer_norm(y, y.shape[-1:]).movedim(-1, 1)
