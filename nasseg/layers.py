"""Dimension-generic layers: the only module that names torch's 2D/3D classes.

Blocks and skips ask this module for a convolution, a normalisation, a pooling or
an upsampling by ``spatial_dims`` and never branch on dimensionality themselves
(the MONAI factory idea, without its aliases).

Example:
    >>> conv = Conv(3, 4, 8, kernel_size=3)          # a Conv3d, 'same' padding
    >>> seq = conv_norm_act(2, 3, 16, kernel_size=3)  # Conv2d + BatchNorm2d + ReLU
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_MAXPOOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_MAXPOOL_ADAPTIVE = {2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_INTERP = {2: "bilinear", 3: "trilinear"}

NORMS = ("batch", "instance", "group", "channel_group", "none")
ACTS = ("relu", "gelu", "prelu", "leaky_relu", "none")

KernelSize = int | Sequence[int]


def _dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return spatial_dims


def same_padding(kernel_size: KernelSize, dilation: int = 1) -> int | tuple[int, ...]:
    """Padding that keeps the spatial size for an odd kernel: ``dilation * (k // 2)``."""
    if isinstance(kernel_size, int):
        return dilation * (kernel_size // 2)
    return tuple(dilation * (k // 2) for k in kernel_size)


def Conv(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: KernelSize = 3,
         *, stride: int = 1, dilation: int = 1, groups: int = 1, bias: bool = True,
         padding: int | tuple[int, ...] | None = None) -> nn.Module:
    """A 2D/3D convolution with 'same' padding by default."""
    pad = same_padding(kernel_size, dilation) if padding is None else padding
    if not isinstance(kernel_size, int):
        kernel_size = tuple(kernel_size)
    return _CONV[_dims(spatial_dims)](in_channels, out_channels, kernel_size, stride=stride,
                                      padding=pad, dilation=dilation, groups=groups, bias=bias)


def ConvTranspose(spatial_dims: int, in_channels: int, out_channels: int, *, scale: int = 2,
                  bias: bool = True) -> nn.Module:
    """A transposed convolution with kernel = stride = ``scale`` (exact x``scale`` upsampling)."""
    return _CONV_T[_dims(spatial_dims)](in_channels, out_channels, scale, stride=scale, bias=bias)


def Norm(name: str, spatial_dims: int, channels: int) -> nn.Module:
    """Normalisation by name.

    ``batch``; ``instance`` (affine); ``group`` (8 groups, or fewer if channels
    are not divisible); ``channel_group`` (GroupNorm with one group per channel,
    as GLIMS' DACB uses); ``none``.
    """
    d = _dims(spatial_dims)
    if name == "batch":
        return _BATCH[d](channels)
    if name == "instance":
        return _INSTANCE[d](channels, affine=True)
    if name == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if name == "channel_group":
        return nn.GroupNorm(channels, channels)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{name}'; expected one of {NORMS}")


def Act(name: str, channels: int | None = None) -> nn.Module:
    """Activation by name; ``prelu`` gets one slope (as MONAI/GLIMS use)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "prelu":
        return nn.PReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation '{name}'; expected one of {ACTS}")


def conv_norm_act(spatial_dims: int, in_channels: int, out_channels: int,
                  kernel_size: KernelSize = 3, *, norm: str = "batch", act: str = "relu",
                  stride: int = 1, dilation: int = 1, groups: int = 1, bias: bool = True,
                  padding: int | tuple[int, ...] | None = None) -> nn.Sequential:
    """Conv -> Norm -> Act, the unit most stages are made of."""
    return nn.Sequential(
        Conv(spatial_dims, in_channels, out_channels, kernel_size, stride=stride,
             dilation=dilation, groups=groups, bias=bias, padding=padding),
        Norm(norm, spatial_dims, out_channels),
        Act(act, out_channels),
    )


def conv_act_norm(spatial_dims: int, in_channels: int, out_channels: int,
                  kernel_size: KernelSize = 3, *, norm: str = "batch", act: str = "gelu",
                  groups: int = 1) -> nn.Sequential:
    """Conv -> Act -> Norm: the order CMUNeXt's code uses (activation before norm)."""
    return nn.Sequential(
        Conv(spatial_dims, in_channels, out_channels, kernel_size, groups=groups),
        Act(act, out_channels),
        Norm(norm, spatial_dims, out_channels),
    )


def MaxPool(spatial_dims: int, scale: int = 2) -> nn.Module:
    return _MAXPOOL[_dims(spatial_dims)](scale, scale)


def GlobalAvgPool(spatial_dims: int) -> nn.Module:
    return _AVGPOOL[_dims(spatial_dims)](1)


def GlobalMaxPool(spatial_dims: int) -> nn.Module:
    return _MAXPOOL_ADAPTIVE[_dims(spatial_dims)](1)


def Upsample(spatial_dims: int, scale: int = 2) -> nn.Module:
    """(Bi/tri)linear upsampling as a module, so that cost counters see it."""
    return nn.Upsample(scale_factor=scale, mode=_INTERP[_dims(spatial_dims)], align_corners=False)


def space_to_depth(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Patch merging: ``[B, C, *S]`` -> ``[B, C * r**d, *(S / r)]``, every pixel kept.

    The 2D case equals :func:`torch.nn.functional.pixel_unshuffle`.
    """
    b, c, *s = x.shape
    d = len(s)
    shape = [b, c]
    for n in s:
        shape += [n // r, r]
    x = x.reshape(shape)
    # order: B, C, r_1..r_d, S_1..S_d
    perm = [0, 1] + [3 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)]
    return x.permute(perm).reshape(b, c * r**d, *[n // r for n in s])


def depth_to_space(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Patch expanding, the exact inverse of :func:`space_to_depth`.

    ``[B, C * r**d, *S]`` -> ``[B, C, *(S * r)]``.
    """
    b, cr, *s = x.shape
    d = len(s)
    c = cr // r**d
    x = x.reshape([b, c] + [r] * d + s)
    perm = [0, 1]
    for i in range(d):
        perm += [2 + d + i, 2 + i]
    return x.permute(perm).reshape(b, c, *[n * r for n in s])


class PatchMerging(nn.Module):
    """Swin's downsampling (Liu et al., ICCV 2021): every 2^d cube of voxels becomes one
    token of ``2^d C`` channels (:func:`space_to_depth`), LayerNorm, then a linear map
    (no bias) to ``out_channels``.

    Shapes: ``[B, C, *S] -> [B, out_channels, *S/2]``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        r = 2 ** _dims(spatial_dims)
        self.norm = nn.LayerNorm(r * in_channels)
        self.reduction = nn.Linear(r * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(space_to_depth(x).movedim(1, -1))).movedim(-1, 1)


class PatchExpanding(nn.Module):
    """Swin-Unet's upsampling (Cao et al., 2021; GLIMS' decoder): a linear map (no bias) to
    ``2^d out_channels`` per voxel, spread over a 2^d cube (:func:`depth_to_space`), LayerNorm.

    Shapes: ``[B, C, *S] -> [B, out_channels, *2S]``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.expand = nn.Linear(in_channels, 2 ** _dims(spatial_dims) * out_channels, bias=False)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = depth_to_space(self.expand(x.movedim(1, -1)).movedim(-1, 1))
        return self.norm(y.movedim(1, -1)).movedim(-1, 1)


def depthwise_friendly(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory layout where PyTorch's CPU depthwise 3D convs are fast.

    On CPU, a dilated depthwise Conv3d on an NCDHW tensor takes a slow path
    (18 s vs 0.9 s for 24 channels at 96^3, same values): channels-last-3d
    avoids it. Other tensors are returned unchanged.
    """
    if x.ndim == 5 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def fit_window(size: int, p: int) -> int:
    """The largest divisor of ``size`` that is at most ``p``: the attention window (or grid)
    that tiles a feature map of side ``size`` when the configured window is ``p``.

    Example:
        >>> fit_window(12, 8), fit_window(7, 4)
        (6, 1)
    """
    return max(d for d in range(1, min(size, p) + 1) if size % d == 0)
