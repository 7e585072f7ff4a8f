"""What every skip connection shares.

A skip merges an encoder feature ``skip`` ``[B, C, *S]`` with the deeper decoder
feature ``deep`` ``[B, C_deep, *S/2]`` into ``[B, out_channels, *S]``; the
decoder stage's blocks (if any) then map ``out_channels`` to C. The network's
upsampling mode (``up``) is handed to skips that upsample ``deep`` first.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from torch import nn

from nasseg.layers import Act, ConvTranspose, Norm, PatchExpanding, Upsample, conv_norm_act

UpMode = Literal["interp_conv", "transposed", "patch_expanding"]


def make_up(mode: str, spatial_dims: int, in_channels: int, out_channels: int,
            norm: str = "batch", act: str = "relu") -> nn.Module:
    """x2 upsampling of the deeper feature down to the skip's width.

    ``interp_conv``: (bi/tri)linear x2, 3^d conv, norm, act (CMUNeXt's up_conv);
    ``transposed``: 2^d transposed conv with stride 2, norm, act (GLIMS' DMSU);
    ``patch_expanding``: linear to 2^d C, depth-to-space, LayerNorm (GLIMS out of its bottleneck).
    """
    if mode == "patch_expanding":
        return PatchExpanding(spatial_dims, in_channels, out_channels)
    if mode == "interp_conv":
        return nn.Sequential(Upsample(spatial_dims),
                             *conv_norm_act(spatial_dims, in_channels, out_channels, 3, norm=norm, act=act))
    if mode == "transposed":
        return nn.Sequential(ConvTranspose(spatial_dims, in_channels, out_channels),
                             Norm(norm, spatial_dims, out_channels), Act(act, out_channels))
    raise ValueError(f"unknown up mode '{mode}'")


class Skip(nn.Module):
    """Base class of registered skips; subclasses set ``Params`` and ``out_channels``."""

    Params: ClassVar[type[Params]]
    fuses: ClassVar[bool] = True
    """Whether the merged feature has the stage's width (a stage may then have no decoder
    block: ``decoder_depth: 0``); concat doubles it and needs a decoder block to fuse."""
    out_channels: int
