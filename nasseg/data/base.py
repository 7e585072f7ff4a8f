"""The in-memory dataset every loader returns, and the sample it yields.

Data is decoded once: images are stored as normalised ``float32`` tensors and labels
as ``uint8`` class indices, either stacked (all cases the same size: 2D datasets,
synthetic volumes) or as a list of tensors (Decathlon volumes of varying shape).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from nasseg.errors import DataError


class Sample(NamedTuple):
    """One case.

    Attributes:
        image: ``[C, *spatial]`` float32, normalised per case.
        label: ``[*spatial]`` int64 class indices (binary: 0/1).
        case_id: stable identifier (file stem or ``synth_0007``).
    """

    image: Tensor
    label: Tensor
    case_id: str


@dataclass
class SegDataset:
    """A decoded segmentation dataset held in memory.

    Attributes:
        kind: ``synthetic``, ``folder`` or ``decathlon``.
        spatial_dims: 2 or 3.
        in_channels: image channels.
        num_classes: label classes including background (2 = binary).
        case_ids: one id per case, unique.
        images: ``[N, C, *S]`` float32 when every case has the same size, else a
            list of ``[C, *S_i]`` tensors (or memory-mapped
            :class:`~nasseg.data.preprocess.MappedVolumes`, opened per access).
        labels: ``[N, *S]`` uint8, or a list (or ``MappedVolumes``) of ``[*S_i]`` uint8.
        sources: the file each case was read from (for messages; ``""`` if generated).
        class_names: names of the classes, background first.
        info: how the data was decoded (encoding, original sizes, ...).
        native_labels: per case, the label at its original size and geometry (``uint8``,
            on the CPU) when the images were resized for training; metrics are computed
            against these (see :func:`nasseg.train.evaluate.evaluate`). ``None`` = the
            labels are already native.
        spacing: per case, the voxel (pixel) spacing in mm of the native grid, one value
            per spatial axis; ``None`` = 1 mm (distances then in voxels).

    Example:
        >>> ds = load_dataset(resolve_data("synthetic", n_cases=8, size=32))  # doctest: +SKIP
        >>> ds[0].image.shape, ds.out_channels
        (torch.Size([1, 32, 32]), 1)
    """

    kind: str
    spatial_dims: int
    in_channels: int
    num_classes: int
    case_ids: list[str]
    images: Tensor | list[Tensor]
    labels: Tensor | list[Tensor]
    sources: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    native_labels: list[Tensor] | None = None
    spacing: list[tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        if len(set(self.case_ids)) != len(self.case_ids):
            raise ValueError("case ids must be unique")
        if not self.class_names:
            self.class_names = ["background"] + [f"class_{i}" for i in range(1, self.num_classes)]

    @property
    def out_channels(self) -> int:
        """Network output channels: 1 for binary (sigmoid), else ``num_classes`` (softmax)."""
        return 1 if self.num_classes == 2 else self.num_classes

    @property
    def fixed_size(self) -> bool:
        """True when every case has the same spatial size (stacked tensors)."""
        return isinstance(self.images, Tensor)

    @property
    def device(self) -> torch.device:
        return self.images.device if self.fixed_size else self.images[0].device

    def shapes(self) -> list[tuple[int, ...]]:
        """Spatial shape of every case."""
        if self.fixed_size:
            return [tuple(self.images.shape[2:])] * len(self)
        if hasattr(self.images, "shape_list"):
            return [tuple(s[1:]) for s in self.images.shape_list]
        return [tuple(im.shape[1:]) for im in self.images]

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, i: int) -> Sample:
        return Sample(self.images[i], self.labels[i].long(), self.case_ids[i])

    def subset(self, indices: list[int] | np.ndarray) -> SegDataset:
        """The cases at ``indices``, in that order (no copy of unselected cases)."""
        idx = [int(i) for i in indices]
        if self.fixed_size:
            t = torch.as_tensor(idx, dtype=torch.long, device=self.images.device)
            images, labels = self.images.index_select(0, t), self.labels.index_select(0, t)
        elif hasattr(self.images, "subset"):
            images, labels = self.images.subset(idx), self.labels.subset(idx)
        else:
            images, labels = [self.images[i] for i in idx], [self.labels[i] for i in idx]
        sources = [self.sources[i] for i in idx] if self.sources else []
        native = self.native_labels
        if native is not None:
            native = native.subset(idx) if hasattr(native, "subset") else [native[i] for i in idx]
        spacing = [self.spacing[i] for i in idx] if self.spacing is not None else None
        return replace(self, case_ids=[self.case_ids[i] for i in idx], images=images,
                       labels=labels, sources=sources, native_labels=native, spacing=spacing)

    def to(self, device: torch.device | str) -> SegDataset:
        """A copy resident on ``device``."""
        if self.fixed_size:
            return replace(self, images=self.images.to(device), labels=self.labels.to(device))
        if hasattr(self.images, "load"):
            if torch.device(device).type == "cpu":
                return self
            return replace(self, images=self.images.load(device), labels=self.labels.load(device))
        return replace(self, images=[t.to(device) for t in self.images],
                       labels=[t.to(device) for t in self.labels])

    def nbytes(self) -> int:
        """Memory held by images and labels."""
        if hasattr(self.images, "nbytes") and callable(self.images.nbytes):
            return self.images.nbytes() + self.labels.nbytes()
        ims = [self.images] if self.fixed_size else self.images
        lbs = [self.labels] if self.fixed_size else self.labels
        return sum(t.numel() * t.element_size() for t in [*ims, *lbs])


def check_finite(values: np.ndarray, path: str | Path, what: str = "image") -> None:
    """Refuse an image or volume holding NaN or infinite values (train, evaluate and
    predict all read through this check: one bad voxel would otherwise turn the z-score,
    and so the whole prediction, into NaN).

    Raises:
        DataError: naming the file and how many values are not finite.

    Example:
        >>> check_finite(np.array([1.0, np.nan, np.inf]), "x.tif")
        Traceback (most recent call last):
        nasseg.errors.DataError: x.tif: image holds 2 NaN or infinite values (of 3)
    """
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.inexact):
        return
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise DataError(f"{path}: {what} holds {bad} NaN or infinite values (of {arr.size})")


def normalise(image: np.ndarray) -> np.ndarray:
    """Z-score one case over all its channels and voxels (keeps colour ratios).

    Args:
        image: ``[C, *S]`` any numeric dtype.

    Returns:
        float32 array of the same shape, mean 0 and std 1 (std floored at 1e-6).

    Example:
        >>> normalise(np.array([[0, 2]])).tolist()
        [[-1.0, 1.0]]
    """
    x = np.asarray(image, dtype=np.float32)
    mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
    return ((x - mean) / max(std, 1e-6)).astype(np.float32)
