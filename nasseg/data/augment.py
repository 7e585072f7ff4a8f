"""Batched augmentations that run on the device where the batch already is.

Every sample of a batch draws its own transform, applied with ``torch.where`` over the
whole batch (no per-sample Python loop, no host-device synchronisation):

- flips along each spatial axis, or the configured ones (probability 1/2 each);
- in 2D, for square images, a transpose with probability 1/2; with the two flips this
  draws uniformly from all 8 rotations/reflections (rot90 by k = transpose + flip);
- intensity jitter: ``x * (1 + s*u) + s*v`` with ``u, v`` uniform in [-1, 1] per sample.
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasseg.data.config import AugmentConfig


def augment_batch(image: Tensor, label: Tensor, cfg: AugmentConfig,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Augment a batch of images and their labels with the same geometric transform.

    Args:
        image: ``[B, C, *S]`` float, ``S`` of 2 or 3 axes.
        label: ``[B, *S]`` integer class indices.
        cfg: which augmentations to apply.
        generator: random generator on ``image.device`` (for reproducibility).

    Returns:
        ``(image, label)`` of the same shapes and dtypes.

    Example:
        >>> x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4, 8, 8))
        >>> xa, ya = augment_batch(x, y, AugmentConfig())
        >>> xa.shape, ya.shape
        (torch.Size([4, 1, 8, 8]), torch.Size([4, 8, 8]))
    """
    b, dims = image.shape[0], image.ndim - 2
    dev = image.device

    def coin() -> Tensor:
        return torch.rand(b, device=dev, generator=generator) < 0.5

    def bcast(mask: Tensor, ndim: int) -> Tensor:
        return mask.view(b, *[1] * (ndim - 1))

    if cfg.rot90 and dims == 2 and image.shape[-1] == image.shape[-2]:
        t = coin()
        image = torch.where(bcast(t, image.ndim), image.transpose(-1, -2), image)
        label = torch.where(bcast(t, label.ndim), label.transpose(-1, -2), label)
    axes = list(range(dims)) if cfg.flip is True else (list(cfg.flip) if cfg.flip else [])
    for axis in axes:
        if not 0 <= axis < dims:
            raise ValueError(f"augment.flip axis {axis} outside 0..{dims - 1}")
        f = coin()
        image = torch.where(bcast(f, image.ndim), image.flip(axis - dims), image)
        label = torch.where(bcast(f, label.ndim), label.flip(axis - dims), label)
    if cfg.intensity > 0:
        shape = (b, *[1] * (image.ndim - 1))
        u = torch.rand(shape, device=dev, generator=generator, dtype=image.dtype) * 2 - 1
        v = torch.rand(shape, device=dev, generator=generator, dtype=image.dtype) * 2 - 1
        image = image * (1 + cfg.intensity * u) + cfg.intensity * v
    return image, label
