"""Skip-Fusion, CMUNeXt's skip connection (Tang et al., ISBI 2024, arXiv 2308.01239).

Upsample the deeper feature to the skip's width C, concatenate [skip, up] (2C),
then: grouped 3^d conv 2C -> 2C with groups=2 + GELU + BN (each half mixed
spatially), 1x1 2C -> eC + GELU + BN, 1x1 eC -> C + GELU + BN (the halves mixed).

Shapes: ``skip [B, C, *S]``, ``deep [B, C_deep, *S/2]`` -> ``[B, C, *S]``.

Example:
    >>> s = SkipFusion(spatial_dims=2, skip_channels=8, deep_channels=16, params=SkipFusionParams())
    >>> s(torch.randn(1, 8, 32, 32), torch.randn(1, 16, 16, 16)).shape
    torch.Size([1, 8, 32, 32])
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveInt
from torch import nn

from nasseg.layers import conv_act_norm
from nasseg.params import Params
from nasseg.skips.base import Skip, make_up


class SkipFusionParams(Params):
    type: Literal["skip_fusion"] = "skip_fusion"
    expansion: PositiveInt = 4


class SkipFusion(Skip):
    Params = SkipFusionParams

    def __init__(self, *, spatial_dims: int, skip_channels: int, deep_channels: int,
                 params: SkipFusionParams, up: str = "interp_conv", norm: str = "batch",
                 act: str = "relu") -> None:
        super().__init__()
        c, d = skip_channels, spatial_dims
        self.up = make_up(up, d, deep_channels, c, norm, act)
        self.fuse = nn.Sequential(
            *conv_act_norm(d, 2 * c, 2 * c, 3, norm=norm, groups=2),
            *conv_act_norm(d, 2 * c, params.expansion * c, 1, norm=norm),
            *conv_act_norm(d, params.expansion * c, c, 1, norm=norm),
        )
        self.out_channels = c

    def forward(self, skip, deep):
        return self.fuse(torch.cat([skip, self.up(deep)], dim=1))
