"""CMUNeXt block (Tang et al., ISBI 2024, arXiv 2308.01239).

Repeated ``depth`` times at the input width C: a residual large-kernel depthwise
conv (k x k, GELU, BN), then an inverted bottleneck (1x1 C -> eC, GELU, BN;
1x1 eC -> C, GELU, BN); then a 3x3 conv C -> C_out + BN + ReLU changes the width.
Activation before normalisation, as in the authors' code.

Shapes: ``[B, C_in, *S] -> [B, C_out, *S]``.

Example:
    >>> blk = CMUNeXtBlock(spatial_dims=2, in_channels=8, out_channels=16,
    ...                    params=CMUNeXtParams(kernel_size=7), depth=2)
    >>> blk(torch.randn(1, 8, 32, 32)).shape
    torch.Size([1, 16, 32, 32])
"""
from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt
from torch import nn

from nasseg.blocks.base import Block, KernelSize, Params
from nasseg.layers import conv_act_norm, conv_norm_act


class CMUNeXtParams(Params):
    type: Literal["cmunext"] = "cmunext"
    kernel_size: KernelSize = 7
    expansion: PositiveInt = 4


class Residual(nn.Module):
    """``x + fn(x)``."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class CMUNeXtBlock(Block):
    Params = CMUNeXtParams
    owns_depth = True

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int,
                 params: CMUNeXtParams, norm: str = "batch", act: str = "relu",
                 depth: int = 1) -> None:
        super().__init__()
        c, e = in_channels, params.expansion * in_channels
        units = [
            nn.Sequential(
                Residual(conv_act_norm(spatial_dims, c, c, params.kernel_size, norm=norm, groups=c)),
                *conv_act_norm(spatial_dims, c, e, 1, norm=norm),
                *conv_act_norm(spatial_dims, e, c, 1, norm=norm),
            )
            for _ in range(depth)
        ]
        self.units = nn.Sequential(*units)
        self.proj = conv_norm_act(spatial_dims, c, out_channels, 3, norm=norm, act=act)

    def forward(self, x):
        return self.proj(self.units(x))
