"""The plain U-Net stage (Ronneberger et al., MICCAI 2015): two k x k conv + norm + act.

Shapes: ``[B, C_in, *S] -> [B, C_out, *S]``.

Example:
    >>> blk = ConvBlock(spatial_dims=2, in_channels=3, out_channels=16, params=ConvParams())
    >>> blk(torch.randn(1, 3, 32, 32)).shape
    torch.Size([1, 16, 32, 32])
"""
from __future__ import annotations

from typing import Literal

from torch import nn

from nasseg.blocks.base import Block, KernelSize, Params
from nasseg.layers import conv_norm_act


class ConvParams(Params):
    type: Literal["conv"] = "conv"
    kernel_size: KernelSize = 3


class ConvBlock(Block):
    Params = ConvParams

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int,
                 params: ConvParams, norm: str = "batch", act: str = "relu", depth: int = 1) -> None:
        super().__init__()
        k = params.kernel_size
        self.body = nn.Sequential(
            conv_norm_act(spatial_dims, in_channels, out_channels, k, norm=norm, act=act),
            conv_norm_act(spatial_dims, out_channels, out_channels, k, norm=norm, act=act),
        )

    def forward(self, x):
        return self.body(x)
