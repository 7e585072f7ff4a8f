"""Segmentation losses: BCE + Dice (binary), CE + Dice (multi-class), deep supervision.

The soft Dice follows the CMUNeXt code: computed per sample over its voxels with
``smooth = 1e-5``, ``1 - (2 * |P*T| + s) / (|P| + |T| + s)``, then averaged over the
batch (and over foreground classes for multi-class; background is left out).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SMOOTH = 1e-5


def soft_dice_loss(probs: Tensor, onehot: Tensor) -> Tensor:
    """Mean over samples and channels of ``1 - soft Dice``.

    Args:
        probs: ``[B, K, *S]`` probabilities.
        onehot: ``[B, K, *S]`` targets in {0, 1}.

    Returns:
        A scalar.

    Example:
        >>> t = torch.zeros(1, 1, 4, 4); t[..., :2, :] = 1
        >>> float(soft_dice_loss(t, t)) < 1e-6
        True
    """
    dims = tuple(range(2, probs.ndim))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return (1 - (2 * inter + SMOOTH) / (denom + SMOOTH)).mean()


class SegLoss(nn.Module):
    """``ce_weight * (B)CE + dice_weight * soft Dice``, summed over deep-supervision heads.

    Binary (1 output channel): BCE with logits + Dice of ``sigmoid``. Multi-class
    (K channels): cross-entropy + Dice of ``softmax`` over classes 1..K-1. With deep
    supervision the targets are downsampled (nearest) to each head's size.

    Args:
        out_channels: 1 (binary) or K.
        ce_weight: weight of the (binary) cross-entropy.
        dice_weight: weight of the Dice loss.
        ds_weights: weights of ``[main, half, quarter, ...]``; ``None`` = halving,
            normalised to sum 1; extra heads beyond the list get weight 0.

    Example:
        >>> loss = SegLoss(1, ce_weight=0.5)
        >>> loss(torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)).shape
        torch.Size([])
    """

    def __init__(self, out_channels: int, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 ds_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.out_channels, self.ce_weight, self.dice_weight = out_channels, ce_weight, dice_weight
        self.ds_weights = list(ds_weights) if ds_weights is not None else None

    def head_weights(self, n: int) -> list[float]:
        """Weights of ``n`` outputs (main first), summing to 1."""
        if self.ds_weights is None:
            w = [0.5 ** i for i in range(n)]
        else:
            w = (self.ds_weights + [0.0] * n)[:n]
        total = sum(w)
        if total <= 0:
            raise ValueError(f"deep-supervision weights {self.ds_weights} sum to 0")
        return [x / total for x in w]

    def forward(self, logits: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        """Loss of ``logits`` (``[B, K, *S]`` or a list, main first) against ``target [B, *S]``."""
        if isinstance(logits, Tensor):
            return self.single(logits, target)
        total = logits[0].new_zeros(())
        for w, out in zip(self.head_weights(len(logits)), logits):
            if w == 0:
                continue
            t = target
            if out.shape[2:] != target.shape[1:]:
                t = F.interpolate(target[:, None].float(), size=out.shape[2:], mode="nearest")[:, 0].long()
            total = total + w * self.single(out, t)
        return total

    def single(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of one output ``[B, K, *S]`` against ``[B, *S]`` integer targets."""
        logits = logits.float()
        if self.out_channels == 1:
            t = target[:, None].float()
            ce = F.binary_cross_entropy_with_logits(logits, t)
            dice = soft_dice_loss(torch.sigmoid(logits), t) if self.dice_weight else 0.0
        else:
            ce = F.cross_entropy(logits, target)
            if self.dice_weight:
                probs = torch.softmax(logits, 1)[:, 1:]
                onehot = F.one_hot(target, self.out_channels).movedim(-1, 1)[:, 1:].float()
                dice = soft_dice_loss(probs, onehot)
            else:
                dice = 0.0
        return self.ce_weight * ce + self.dice_weight * dice
