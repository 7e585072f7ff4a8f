"""The U-Net skip (Ronneberger et al., 2015): upsample the deeper feature to the
skip's width, concatenate. The decoder stage's blocks then fuse the 2C channels.

Shapes: ``skip [B, C, *S]``, ``deep [B, C_deep, *S/2]`` -> ``[B, 2C, *S]``.

Example:
    >>> s = ConcatSkip(spatial_dims=2, skip_channels=8, deep_channels=16, params=ConcatParams())
    >>> s(torch.randn(1, 8, 32, 32), torch.randn(1, 16, 16, 16)).shape
    torch.Size([1, 16, 32, 32])
"""
from __future__ import annotations

from typing import Literal

import torch

from nasseg.params import Params
from nasseg.skips.base import Skip, make_up


class ConcatParams(Params):
    type: Literal["concat"] = "concat"


class ConcatSkip(Skip):
    Params = ConcatParams
    fuses = False

    def __init__(self, *, spatial_dims: int, skip_channels: int, deep_channels: int,
                 params: ConcatParams, up: str = "interp_conv", norm: str = "batch",
                 act: str = "relu") -> None:
        super().__init__()
        self.up = make_up(up, spatial_dims, deep_channels, skip_channels, norm, act)
        self.out_channels = 2 * skip_channels

    def forward(self, skip, deep):
        return torch.cat([skip, self.up(deep)], dim=1)
