"""The U-shaped network every config builds: stem, encoder stages, skips, decoder, heads.

Encoder stage i (i > 0) starts with its downsampling (the stage's ``down``, else the
network's: ``maxpool``; ``strided_conv``, a 2^d conv with stride 2 to the stage
width + norm + act; ``patch_merging``, Swin's). A stage's ``extra`` blocks run
first, then its own. At each decoder level the skip merges the encoder feature
(after the optional skip attention) with the deeper decoder feature, upsampled as
the deeper stage's ``up`` (else the network's) says; ``decoder_depth`` blocks of the
stage's type follow, then the ``extra`` blocks again (mirrored). A 1x1 head gives the
logits; with deep supervision, extra 1x1 heads on the next decoder levels give
coarser logits in training mode.

Shapes: ``[B, in_channels, *S] -> [B, out_channels, *S]`` (eval), and in training
with deep supervision a list ``[full, S/2, S/4, ...]`` (at most 3 extra heads).

Example:
    >>> model = build_model(load_arch("cmunext_s"))
    >>> model(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 1, 64, 64])
"""
from __future__ import annotations

import torch
from torch import nn

from nasseg.arch.config import ArchConfig, StageConfig
from nasseg.blocks import BLOCKS, Params
from nasseg.layers import Conv, MaxPool, PatchMerging, conv_norm_act
from nasseg.skips import ATTENTIONS, SKIPS

MAX_AUX_HEADS = 3


def _chain(modules: list[nn.Module]) -> nn.Module:
    """Nothing, one module, or a Sequential: the state-dict names of a one-module stage stay flat."""
    return nn.Identity() if not modules else modules[0] if len(modules) == 1 else nn.Sequential(*modules)


def make_stage(cfg: ArchConfig, stage: StageConfig | Params, in_channels: int, out_channels: int,
               depth: int) -> nn.Module:
    """``depth`` blocks of the stage's type (or of ``stage`` if it is a block's params)
    mapping ``in_channels`` -> ``out_channels``.

    A block that owns its depth (CMUNeXt, Swin) is built once with ``depth``; a block
    that cannot change width (DACB, Swin) gets a 1x1 conv + norm + act projection first.
    """
    params = stage if isinstance(stage, Params) else stage.block
    block_cls = BLOCKS.get(params.type)
    common = dict(spatial_dims=cfg.spatial_dims, params=params, norm=cfg.norm, act=cfg.act)
    layers: list[nn.Module] = []
    if not block_cls.changes_width and in_channels != out_channels:
        layers.append(conv_norm_act(cfg.spatial_dims, in_channels, out_channels, 1,
                                    norm=cfg.norm, act=cfg.act))
        in_channels = out_channels
    if block_cls.owns_depth:
        layers.append(block_cls(in_channels=in_channels, out_channels=out_channels, depth=depth, **common))
        return _chain(layers)
    for _ in range(depth):
        layers.append(block_cls(in_channels=in_channels, out_channels=out_channels, **common))
        in_channels = out_channels
    return _chain(layers)


class UNet(nn.Module):
    """A U-shaped segmentation network built from an :class:`ArchConfig`."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.config = cfg
        d, widths = cfg.spatial_dims, [s.width for s in cfg.stages]
        self.stem = (conv_norm_act(d, cfg.in_channels, widths[0], cfg.stem.kernel_size,
                                   norm=cfg.norm, act=cfg.act) if cfg.stem else None)
        prev = widths[0] if cfg.stem else cfg.in_channels
        self.downs, self.encoders = nn.ModuleList(), nn.ModuleList()
        for i, stage in enumerate(cfg.stages):
            down = stage.down or cfg.down
            if i == 0:
                self.downs.append(nn.Identity())
            elif down == "maxpool":
                self.downs.append(MaxPool(d))
            elif down == "patch_merging":
                self.downs.append(PatchMerging(d, prev, stage.width))
                prev = stage.width
            else:
                self.downs.append(conv_norm_act(d, prev, stage.width, 2, stride=2, padding=0,
                                                norm=cfg.norm, act=cfg.act))
                prev = stage.width
            encoder = []
            if stage.extra:
                encoder.append(make_stage(cfg, stage.extra.block, prev, stage.width, stage.extra.depth))
                prev = stage.width
            encoder.append(make_stage(cfg, stage, prev, stage.width, stage.depth))
            self.encoders.append(_chain(encoder))
            prev = stage.width
        self.attentions, self.skips, self.decoders = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in range(len(widths) - 1):  # level i merges encoder i with decoder i + 1
            stage = cfg.stages[i]
            att = stage.skip_attention
            self.attentions.append(
                ATTENTIONS.get(att.type)(spatial_dims=d, channels=widths[i], params=att)
                if att else nn.Identity())
            skip = SKIPS.get(stage.skip.type)(spatial_dims=d, skip_channels=widths[i],
                                              deep_channels=widths[i + 1], params=stage.skip,
                                              up=cfg.stages[i + 1].up or cfg.up, norm=cfg.norm, act=cfg.act)
            self.skips.append(skip)
            decoder = [make_stage(cfg, stage, skip.out_channels, widths[i], stage.decoder_depth)
                       ] if stage.decoder_depth else []
            if stage.extra:
                decoder.append(make_stage(cfg, stage.extra.block, widths[i], widths[i], stage.extra.depth))
            self.decoders.append(_chain(decoder))
        self.head = Conv(d, widths[0], cfg.out_channels, 1)
        n_aux = min(MAX_AUX_HEADS, len(widths) - 2) if cfg.deep_supervision else 0
        self.aux_heads = nn.ModuleList(Conv(d, widths[i], cfg.out_channels, 1)
                                       for i in range(1, 1 + n_aux))

    def decode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The decoder's output at every level, full resolution first: ``[B, width_i, *S / 2^i]``
        for ``i = 0 .. stages - 2`` (what the heads read; nnU-Net's deep supervision reads them all)."""
        if self.stem is not None:
            x = self.stem(x)
        feats = []
        for down, enc in zip(self.downs, self.encoders):
            x = enc(down(x))
            feats.append(x)
        y, outs = feats[-1], [feats[-1]] * (len(feats) - 1)  # every entry is replaced below
        for i in range(len(feats) - 2, -1, -1):
            y = self.decoders[i](self.skips[i](self.attentions[i](feats[i]), y))
            outs[i] = y
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        outs = self.decode(x)
        main = self.head(outs[0])
        if self.training and len(self.aux_heads):
            return [main] + [h(outs[i + 1]) for i, h in enumerate(self.aux_heads)]
        return main
