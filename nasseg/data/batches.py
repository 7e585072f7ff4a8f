"""Training batches from an in-memory dataset, and evaluation over whole cases.

:class:`BatchFeeder` draws training batches where the data lives (CPU or GPU): whole
cases for fixed-size data, random patches (with foreground oversampling) for volumes
of varying shape or when a patch size is set. :func:`sliding_window` predicts a whole
volume from patch-sized windows with Gaussian-weighted overlap (MONAI's implementation).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from nasseg.data.augment import augment_batch
from nasseg.data.base import SegDataset
from nasseg.data.config import AugmentConfig


def default_patch(shapes: list[tuple[int, ...]], divisor: int) -> tuple[int, ...]:
    """The median case shape rounded up to a multiple of ``divisor`` (per axis).

    Example:
        >>> default_patch([(35, 51, 35), (31, 40, 24), (43, 59, 47)], 8)
        (40, 56, 40)
    """
    med = np.median(np.array(shapes), axis=0)
    return tuple(int(np.ceil(m / divisor) * divisor) for m in med)


class BatchFeeder:
    """Yields augmented training batches ``(image [B, C, *P], label [B, *P] long)``.

    Args:
        ds: the training cases (already on the training device).
        batch_size: cases per batch; a trailing batch of one case is dropped
            (batch norm cannot train on it).
        augment: augmentations, applied on ``ds.device``.
        seed: seeds the order, the patch positions and the augmentations.
        patch_size: sample random patches of this size instead of whole cases.
        fg_fraction: share of patches centred on a random foreground voxel.
        device: where batches go and are augmented (default: where ``ds`` is).
        fg_classes: relative weights of foreground classes 1..K-1 when choosing which
            class a foreground patch is centred on (default: equal over the classes the
            case holds, as nnU-Net samples).
        steps_per_epoch: batches per :meth:`epoch` (``None`` = one pass over the cases);
            cases are drawn from successive shuffles, so each is seen equally often.

    Example:
        >>> feeder = BatchFeeder(ds, batch_size=8, augment=AugmentConfig(), seed=0)  # doctest: +SKIP
        >>> x, y = next(iter(feeder.epoch()))  # doctest: +SKIP
    """

    def __init__(self, ds: SegDataset, batch_size: int, augment: AugmentConfig, seed: int = 0,
                 patch_size: tuple[int, ...] | None = None, fg_fraction: float = 0.33,
                 device: torch.device | str | None = None, fg_classes: list[float] | None = None,
                 steps_per_epoch: int | None = None) -> None:
        if len(ds) < 1:
            raise ValueError("no training cases")
        self.ds, self.batch_size, self.augment = ds, batch_size, augment
        self.patch_size = tuple(patch_size) if patch_size else None
        self.fg_fraction, self.fg_classes, self.steps_per_epoch = fg_fraction, fg_classes, steps_per_epoch
        self.rng = np.random.default_rng(seed)
        self.device = torch.device(device) if device is not None else ds.device
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self._order_gen = torch.Generator(device=ds.device).manual_seed(seed)
        self._fg: list[dict[int, np.ndarray]] = []
        if self.patch_size is not None:
            cached = ds.info.get("fg")
            if cached is not None:
                self._fg = [cached.get(c, {}) for c in ds.case_ids]
            else:
                labels = ds.labels if not ds.fixed_size else list(ds.labels)
                self._fg = [_class_positions(lb.cpu().numpy()) for lb in labels]

    def __len__(self) -> int:
        if self.steps_per_epoch:
            return self.steps_per_epoch
        n, b = len(self.ds), self.batch_size
        return n // b + (1 if n % b > 1 else 0)

    def _order(self) -> np.ndarray:
        n = len(self.ds)
        if not self.steps_per_epoch:
            return self.rng.permutation(n)
        need = self.steps_per_epoch * self.batch_size
        return np.concatenate([self.rng.permutation(n) for _ in range(-(-need // n))])[:need]

    def epoch(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch (``len(self)`` batches) over the training cases in a fresh random order.

        Whole cases are gathered with an order drawn where the data lives (no index
        copied from the host per batch); patches are cut on the host's orders and,
        from CPU data to a GPU, staged in pinned memory so the copy is asynchronous.
        """
        if self.patch_size is None:
            yield from self._whole_cases()
            return
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            idx = order[start: start + self.batch_size]
            if len(idx) < 2 and len(order) > 1:
                break
            image, label = self._patches(idx)
            yield self._finish(image, label)

    def _whole_cases(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.ds)
        reps = -(-self.steps_per_epoch * self.batch_size // n) if self.steps_per_epoch else 1
        order = torch.cat([torch.randperm(n, generator=self._order_gen, device=self.ds.device)
                           for _ in range(reps)])
        if self.steps_per_epoch:
            order = order[: self.steps_per_epoch * self.batch_size]
        total = len(order)
        for start in range(0, total, self.batch_size):
            if total - start < 2 and total > 1:
                break
            idx = order[start: start + self.batch_size]
            yield self._finish(self.ds.images.index_select(0, idx), self.ds.labels.index_select(0, idx))

    def _finish(self, image: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        if image.device != self.device:
            if self.device.type == "cuda":
                image, label = image.pin_memory(), label.pin_memory()
            image = image.to(self.device, non_blocking=True)
            label = label.to(self.device, non_blocking=True)
        image, label = augment_batch(image, label, self.augment, self.gen)
        return image, label.long()

    def _patches(self, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        ims, lbs = [], []
        for i in idx:
            image, label = self.ds.images[i], self.ds.labels[i]
            start = self._start(tuple(label.shape), self._fg[i])
            ims.append(crop(image, start, self.patch_size))
            lbs.append(crop(label[None], start, self.patch_size)[0])
        return torch.stack(ims), torch.stack(lbs)

    def _start(self, shape: tuple[int, ...], fg: dict[int, np.ndarray]) -> tuple[int, ...]:
        lo = [min(0, s - p) for s, p in zip(shape, self.patch_size)]
        hi = [max(0, s - p) for s, p in zip(shape, self.patch_size)]
        classes = [c for c, pos in fg.items() if len(pos)]
        if classes and self.rng.random() < self.fg_fraction:
            w = np.array([self.fg_classes[c - 1] if self.fg_classes and c - 1 < len(self.fg_classes) else 1.0
                          for c in classes], dtype=np.float64)
            p = w / w.sum() if w.sum() > 0 else None
            pos = fg[classes[int(self.rng.choice(len(classes), p=p))]]
            centre = pos[self.rng.integers(len(pos))]
            want = [c - p // 2 + int(self.rng.integers(-p // 4, p // 4 + 1))
                    for c, p in zip(centre, self.patch_size)]
            return tuple(int(np.clip(w, a, b)) for w, a, b in zip(want, lo, hi))
        return tuple(int(self.rng.integers(a, b + 1)) for a, b in zip(lo, hi))


def _class_positions(label: np.ndarray) -> dict[int, np.ndarray]:
    """Voxel positions ``[N, D]`` of every foreground class in ``label``."""
    return {int(c): np.argwhere(label == c) for c in np.unique(label) if c != 0}


def crop(x: Tensor, start: tuple[int, ...], size: tuple[int, ...]) -> Tensor:
    """Crop ``x [C, *S]`` at ``start`` (may be negative or run past the end: zero padding).

    Example:
        >>> crop(torch.ones(1, 2, 2), (-1, 0), (3, 3))[0].tolist()
        [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    """
    out = x.new_zeros((x.shape[0], *size))
    src, dst = [slice(None)], [slice(None)]
    for s, n, total in zip(start, size, x.shape[1:]):
        a, b = max(s, 0), min(s + n, total)
        src.append(slice(a, b))
        dst.append(slice(a - s, b - s))
    out[tuple(dst)] = x[tuple(src)]
    return out


@torch.no_grad()
def sliding_window(predict: Callable[[Tensor], Tensor], image: Tensor, patch: tuple[int, ...],
                   overlap: float = 0.5, batch_size: int = 4) -> Tensor:
    """Predict a whole case from overlapping patch-sized windows, ``batch_size`` windows
    per forward pass on the image's device.

    MONAI's ``sliding_window_inference`` does the tiling (windows flush with the far edge,
    a case smaller than the window zero-padded around it and cropped back) and blends the
    windows with a Gaussian weight (sigma = 1/8 of the window, nnU-Net's choice) that trusts
    window centres more than edges; it is tested and handles every dimension, so nasseg
    keeps no tiling code of its own.

    Args:
        predict: maps ``[B, C, *patch]`` to logits ``[B, K, *patch]``.
        image: ``[C, *S]``.
        patch: window size.
        overlap: fraction of a window shared with its neighbour.
        batch_size: windows per forward pass.

    Returns:
        Logits ``[K, *S]`` (float32).

    Example:
        >>> sliding_window(lambda x: x * 2, torch.ones(1, 5, 6, 7), (4, 4, 4)).shape
        torch.Size([1, 5, 6, 7])
    """
    from monai.inferers import sliding_window_inference  # lazy: monai takes seconds to import; only sliding-window evaluation needs it

    out = sliding_window_inference(image[None], tuple(patch), batch_size, predict, overlap=overlap,
                                   mode="gaussian", sigma_scale=0.125, padding_mode="constant", cval=0.0)
    return out[0].float()


def case_window(window: tuple[int, ...], shape: tuple[int, ...], divisor: int) -> tuple[int, ...]:
    """The sliding window for one case: ``window``, shrunk along axes where the case
    (rounded up to ``divisor``) is smaller -- the rule training's evaluation uses.

    Example:
        >>> case_window((40, 56, 40), (35, 60, 20), 8)
        (40, 56, 24)
    """
    return tuple(min(w, -(-s // divisor) * divisor) for w, s in zip(window, shape))

