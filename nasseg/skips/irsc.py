"""IRSC, SegNetr's information retention skip connection (Cheng et al., MICCAI 2023,
arXiv 2307.02953).

Instead of pooling the encoder map away or upsampling the decoder, IRSC
patch-merges the skip (2^d space-to-depth: every pixel kept, 2^d C channels,
then a linear 1x1 projection to the deeper width), fuses it with the deeper
decoder feature at half resolution (sum, norm, act), and patch-expands the fused
map back (1x1 projection to 2^d C, depth-to-space), so each output pixel comes
from its own spatial position: the encoder's spatial layout is kept exactly.
It replaces the network's upsampling at that level (``up`` is not used).

Shapes: ``skip [B, C, *S]``, ``deep [B, C_deep, *S/2]`` -> ``[B, C, *S]``.

Example:
    >>> s = IRSC(spatial_dims=3, skip_channels=4, deep_channels=8, params=IRSCParams())
    >>> s(torch.randn(1, 4, 8, 8, 8), torch.randn(1, 8, 4, 4, 4)).shape
    torch.Size([1, 4, 8, 8, 8])
"""
from __future__ import annotations

from typing import Literal

from torch import nn

from nasseg.layers import Act, Conv, Norm, depth_to_space, space_to_depth
from nasseg.params import Params
from nasseg.skips.base import Skip


class IRSCParams(Params):
    type: Literal["irsc"] = "irsc"


class IRSC(Skip):
    Params = IRSCParams

    def __init__(self, *, spatial_dims: int, skip_channels: int, deep_channels: int,
                 params: IRSCParams, up: str = "interp_conv", norm: str = "batch",
                 act: str = "relu") -> None:
        super().__init__()
        d, c, r = spatial_dims, skip_channels, 2**spatial_dims
        self.merge = Conv(d, r * c, deep_channels, 1)
        self.fused = nn.Sequential(Norm(norm, d, deep_channels), Act(act, deep_channels))
        self.expand = Conv(d, deep_channels, r * c, 1)
        self.out = nn.Sequential(Norm(norm, d, c), Act(act, c))
        self.out_channels = c

    def forward(self, skip, deep):
        fused = self.fused(self.merge(space_to_depth(skip)) + deep)
        return self.out(depth_to_space(self.expand(fused)))
