"""DACB, GLIMS' Dilated feature Aggregator Convolutional Block (Yazici et al., IVC 2024,
arXiv 2404.17854).

Three parallel depthwise k^d convs with dilations 1, 2, 3 (each + per-channel
GroupNorm + PReLU), concatenated (3C), 1x1 3C -> E + InstanceNorm + PReLU,
1x1 E -> C + InstanceNorm + PReLU, plus the input, InstanceNorm, PReLU.
A multi-scale receptive field at depthwise cost. Maps C -> C only
(``changes_width = False``): a stage whose input width differs projects first.

Shapes: ``[B, C, *S] -> [B, C, *S]``.

Example:
    >>> blk = DACB(spatial_dims=3, in_channels=8, out_channels=8, params=DACBParams())
    >>> blk(torch.randn(1, 8, 16, 16, 16)).shape
    torch.Size([1, 8, 16, 16, 16])
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveInt
from torch import nn

from nasseg.blocks.base import Block, KernelSize, Params
from nasseg.layers import Act, Norm, conv_norm_act, depthwise_friendly


class DACBParams(Params):
    type: Literal["dacb"] = "dacb"
    kernel_size: KernelSize = 3
    dilations: tuple[PositiveInt, ...] = (1, 2, 3)
    embed_ratio: PositiveInt = 2


class DACB(Block):
    Params = DACBParams
    changes_width = False

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int,
                 params: DACBParams, norm: str = "instance", act: str = "prelu",
                 depth: int = 1) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"DACB maps C -> C, got {in_channels} -> {out_channels}")
        c, e = in_channels, params.embed_ratio * in_channels
        self.branches = nn.ModuleList(
            conv_norm_act(spatial_dims, c, c, params.kernel_size, norm="channel_group",
                          act="prelu", dilation=d, groups=c)
            for d in params.dilations
        )
        self.mix = nn.Sequential(
            *conv_norm_act(spatial_dims, len(params.dilations) * c, e, 1, norm="instance", act="prelu"),
            *conv_norm_act(spatial_dims, e, c, 1, norm="instance", act="prelu"),
        )
        self.out = nn.Sequential(Norm("instance", spatial_dims, c), Act("prelu"))

    def forward(self, x):
        xd = depthwise_friendly(x)
        y = self.mix(torch.cat([b(xd) for b in self.branches], dim=1))
        return self.out(y + x)
