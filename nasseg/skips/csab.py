"""CSAB, GLIMS' channel and spatial attention on a skip (Yazici et al., IVC 2024,
arXiv 2404.17854).

A channel gate (global average- and max-pooled vectors through a shared
two-layer MLP with reduction r, summed, sigmoid) times a spatial gate
(channel-wise max and mean maps -> k^d conv -> LayerNorm over the map ->
PReLU -> sigmoid); their product scales the skip.

Shapes: ``[B, C, *S] -> [B, C, *S]``.

Example:
    >>> a = CSAB(spatial_dims=3, channels=8, params=CSABParams())
    >>> a(torch.randn(1, 8, 16, 16, 16)).shape
    torch.Size([1, 8, 16, 16, 16])
"""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import PositiveInt
from torch import nn

from nasseg.layers import Conv, GlobalAvgPool, GlobalMaxPool
from nasseg.params import KernelSize, Params


class CSABParams(Params):
    type: Literal["csab"] = "csab"
    reduction: PositiveInt = 2
    kernel_size: KernelSize = 7


class CSAB(nn.Module):
    Params: ClassVar[type[Params]] = CSABParams

    def __init__(self, *, spatial_dims: int, channels: int, params: CSABParams) -> None:
        super().__init__()
        d, hidden = spatial_dims, max(1, channels // params.reduction)
        self.avg, self.max = GlobalAvgPool(d), GlobalMaxPool(d)
        self.mlp = nn.Sequential(Conv(d, channels, hidden, 1), nn.ReLU(inplace=True),
                                 Conv(d, hidden, channels, 1))
        self.spatial = nn.Sequential(Conv(d, 2, 1, params.kernel_size), nn.GroupNorm(1, 1),
                                     nn.PReLU(), nn.Sigmoid())

    def forward(self, x):
        channel = torch.sigmoid(self.mlp(self.avg(x)) + self.mlp(self.max(x)))
        maps = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * channel * self.spatial(maps)
