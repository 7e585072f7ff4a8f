"""A nasseg network with nnU-Net v2's constructor contract (nnU-Net 2.8, Isensee et al.,
Nature Methods 2021): what ``get_network_from_plans`` builds from a plans file's
``architecture`` entry.

nnU-Net calls ``NassegUNet(input_channels=C, num_classes=K, **arch_kwargs,
deep_supervision=ds)`` with ``arch_kwargs = {"arch": <nasseg ArchConfig without its
channels>, "strides": [[1]*d, [2]*d, ...]}``; nnU-Net reads ``strides`` as its
``pool_op_kernel_sizes`` (the deep-supervision scales and the targets it downsamples), so
they must be the network's own: stage 0 at full resolution, every later stage halving every
axis. The trainer switches deep supervision with ``network.decoder.deep_supervision``.

Outputs, ``x: [B, C, *S]``:
- ``deep_supervision`` off: ``[B, K, *S]`` logits (no softmax/sigmoid; nnU-Net applies it).
- on (in train and eval mode alike, as nnU-Net's own decoders): a list of ``stages - 1``
  logit maps ``[B, K, *S / 2^i]``, ``i = 0 .. stages - 2``, full resolution first: the main
  head, then one 1x1 head on every coarser decoder level. This is nnU-Net's order and count
  (its loss weighs them 1, 1/2, 1/4, ... and the coarsest 0). nasseg's own
  ``deep_supervision: true`` adds heads on at most the next 3 levels and only in training
  mode; here the arch's flag is ignored and nnU-Net's decides.

Example:
    >>> net = NassegUNet(input_channels=1, num_classes=3, arch=arch_kwargs["arch"],
    ...                  strides=arch_kwargs["strides"], deep_supervision=True)  # doctest: +SKIP
    >>> [tuple(y.shape) for y in net(torch.zeros(2, 1, 32, 32, 32))]            # doctest: +SKIP
    [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]      # a 4-stage network
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasseg.arch import build_model, load_arch
from nasseg.errors import ConfigError
from nasseg.layers import Conv

CHANNEL_KEYS = ("in_channels", "out_channels", "deep_supervision")
"""ArchConfig fields nnU-Net decides (from dataset.json and its trainer), not the plans."""


def nnunet_strides(spatial_dims: int, stages: int) -> list[list[int]]:
    """nnU-Net's ``pool_op_kernel_sizes`` of a nasseg network: ``[[1]*d] + [[2]*d] * (stages - 1)``.

    Example:
        >>> nnunet_strides(2, 3)
        [[1, 1], [2, 2], [2, 2]]
    """
    return [[1] * spatial_dims] + [[2] * spatial_dims for _ in range(stages - 1)]


class DeepSupervisionHeads(nn.Module):
    """The 1x1 heads on decoder levels 1 .. stages-2, and the switch nnU-Net's trainer sets
    (``network.decoder.deep_supervision``)."""

    def __init__(self, spatial_dims: int, widths: list[int], num_classes: int, enabled: bool) -> None:
        super().__init__()
        self.deep_supervision = enabled
        self.heads = nn.ModuleList(Conv(spatial_dims, w, num_classes, 1) for w in widths)


class NassegUNet(nn.Module):
    """nasseg's :class:`~nasseg.arch.network.UNet` for nnU-Net v2 (see the module docstring).

    Args:
        input_channels: image channels (nnU-Net: from dataset.json's ``channel_names``).
        num_classes: output channels (nnU-Net's segmentation heads: labels incl. background).
        arch: a nasseg architecture config as a mapping (``in_channels``, ``out_channels``
            and ``deep_supervision``, if present, are replaced by nnU-Net's values).
        strides: nnU-Net's ``pool_op_kernel_sizes``; must be :func:`nnunet_strides` of the arch.
        deep_supervision: return nnU-Net's list of outputs.

    Raises:
        ConfigError: the arch is invalid or the strides are not the network's.
    """

    def __init__(self, input_channels: int, num_classes: int, arch: dict[str, Any],
                 strides: list[list[int]], deep_supervision: bool = False) -> None:
        super().__init__()
        given = {k: v for k, v in arch.items() if k not in CHANNEL_KEYS}
        cfg = load_arch({**given, "in_channels": int(input_channels), "out_channels": int(num_classes),
                         "deep_supervision": False})
        want = nnunet_strides(cfg.spatial_dims, len(cfg.stages))
        if [list(map(int, s)) for s in strides] != want:
            raise ConfigError(f"plans architecture.arch_kwargs.strides: {[list(s) for s in strides]} is not this "
                              f"network's downsampling {want} (nasseg halves every axis at every stage)")
        self.config = cfg
        self.network = build_model(cfg)
        widths = [s.width for s in cfg.stages]
        self.decoder = DeepSupervisionHeads(cfg.spatial_dims, widths[1:-1], int(num_classes), bool(deep_supervision))
        self.multiple = cfg.min_input_multiple()

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if any(s % self.multiple for s in x.shape[2:]):
            raise ConfigError(f"input {list(x.shape)}: every spatial size must be a multiple of {self.multiple} "
                              "(set the plans configuration's patch_size to one)")
        outs = self.network.decode(x)
        main = self.network.head(outs[0])
        if not self.decoder.deep_supervision:
            return main
        return [main] + [head(y) for head, y in zip(self.decoder.heads, outs[1:])]
