"""Where a preprocessed volume sits in its original scan, and the way back.

Preprocessing (:mod:`nasseg.data.preprocess`) crops a volume to its non-zero region
and resamples it to the planned spacing; :class:`CaseMeta` records both steps with the
scan's affine, and :func:`to_original` undoes them for a prediction: resample back to
the cropped shape (logits linearly, then to labels; label maps nearest), then pad the
crop back into the original grid with background. Metrics computed on its output are on
the original voxels, in mm with ``meta.spacing`` (as nnU-Net exports its predictions).

Resampling uses ``torch.nn.functional.interpolate`` with explicit output sizes
(``align_corners=False``: voxel centres at ``(i + 0.5) * old / new - 0.5``), so a round
trip returns exactly the original shape; :func:`resampled_affine` gives the matching
affine of the resampled grid.

Example:
    >>> meta = CaseMeta("a", (10, 10, 6), (1.0, 1.0, 3.0), np.eye(4).tolist(),
    ...                 [(2, 8), (0, 10), (0, 6)], (6, 10, 18), (1.0, 1.0, 1.0))
    >>> to_original(torch.ones(6, 10, 18, dtype=torch.long), meta).sum().item()
    360
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class CaseMeta:
    """The geometry of one preprocessed case.

    Attributes:
        case_id: the case.
        shape: original spatial shape ``(X, Y, Z)``.
        spacing: original voxel size in mm.
        affine: original 4x4 voxel-to-world matrix (NIfTI qform/sform, as nibabel reads it).
        crop: ``[(lo, hi), ...]`` per axis: the non-zero box in original voxels.
        resampled_shape: shape after cropping and resampling (what the network sees).
        target_spacing: voxel size after resampling.
    """

    case_id: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    affine: list[list[float]]
    crop: list[tuple[int, int]]
    resampled_shape: tuple[int, ...]
    target_spacing: tuple[float, ...]

    @property
    def cropped_shape(self) -> tuple[int, ...]:
        return tuple(hi - lo for lo, hi in self.crop)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseMeta:
        return cls(d["case_id"], tuple(d["shape"]), tuple(d["spacing"]), d["affine"],
                   [tuple(b) for b in d["crop"]], tuple(d["resampled_shape"]), tuple(d["target_spacing"]))


def resampled_shape(shape: tuple[int, ...], spacing: tuple[float, ...],
                    target: tuple[float, ...]) -> tuple[int, ...]:
    """The shape covering the same extent at ``target`` spacing (at least 1 voxel).

    Example:
        >>> resampled_shape((10, 10, 6), (1, 1, 3), (1, 1, 1))
        (10, 10, 18)
    """
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def resample(x: Tensor, size: tuple[int, ...], *, labels: bool) -> Tensor:
    """Resample ``x [C, *S]`` to ``size``: trilinear for images/logits, nearest for labels.

    Works one channel at a time (peak memory: one float32 channel at each size).

    Example:
        >>> resample(torch.arange(4.).view(1, 4, 1, 1), (2, 1, 1), labels=False).flatten().tolist()
        [0.5, 2.5]
    """
    if tuple(x.shape[1:]) == tuple(size):
        return x
    mode = "nearest-exact" if labels else ("trilinear" if len(size) == 3 else "bilinear")
    kw = {} if labels else {"align_corners": False}
    out = torch.empty((x.shape[0], *size), dtype=x.dtype, device=x.device)
    for c in range(x.shape[0]):
        src = x[c][None, None]
        src = src.float() if labels or not src.is_floating_point() else src
        out[c] = F.interpolate(src, size=tuple(size), mode=mode, **kw)[0, 0].to(x.dtype)
    return out


def resampled_affine(meta: CaseMeta) -> np.ndarray:
    """The affine of the preprocessed (cropped, resampled) grid in the scan's world space.

    Example:
        >>> m = CaseMeta("a", (10, 10, 6), (1.0, 1.0, 3.0), np.eye(4).tolist(),
        ...              [(2, 8), (0, 10), (0, 6)], (6, 10, 18), (1.0, 1.0, 1.0))
        >>> resampled_affine(m)[:3, 3].tolist()
        [2.0, 0.0, -0.3333333333333333]
    """
    a = np.asarray(meta.affine, dtype=np.float64)
    step = np.eye(4)
    for ax, ((lo, hi), n) in enumerate(zip(meta.crop, meta.resampled_shape)):
        s = (hi - lo) / n
        step[ax, ax] = s
        step[ax, 3] = lo + (s - 1) / 2
    return a @ step


def to_original(pred: Tensor, meta: CaseMeta) -> Tensor:
    """Map a prediction on the preprocessed grid back to the original scan's grid.

    Args:
        pred: logits ``[K, *S]`` (float; K = 1: sigmoid logit) or labels ``[*S]``
            (integer), ``S = meta.resampled_shape``.
        meta: the case's geometry.

    Returns:
        Labels ``[*meta.shape]`` (int64, on ``pred``'s device): background outside the crop.
        Its affine is ``meta.affine``.
    """
    if tuple(pred.shape[-len(meta.shape):]) != tuple(meta.resampled_shape):
        raise ValueError(f"{meta.case_id}: prediction shape {tuple(pred.shape)} is not the "
                         f"preprocessed shape {meta.resampled_shape}")
    if pred.is_floating_point():
        logits = resample(pred, meta.cropped_shape, labels=False)
        labels = (logits[0] > 0).long() if logits.shape[0] == 1 else logits.argmax(0)
    else:
        labels = resample(pred[None], meta.cropped_shape, labels=True)[0].long()
    out = torch.zeros(meta.shape, dtype=torch.long, device=pred.device)
    out[tuple(slice(lo, hi) for lo, hi in meta.crop)] = labels
    return out


def nonzero_box(image: np.ndarray) -> list[tuple[int, int]]:
    """The bounding box ``[(lo, hi), ...]`` of voxels non-zero in any channel of ``image [C, *S]``.

    Uses MONAI's ``generate_spatial_bounding_box`` (what its ``CropForeground`` uses);
    an all-zero image keeps its whole extent.

    Example:
        >>> im = np.zeros((1, 5, 5)); im[0, 1:3, 2] = 7
        >>> nonzero_box(im)
        [(1, 3), (2, 3)]
    """
    from monai.transforms.utils import generate_spatial_bounding_box  # lazy: monai takes seconds to import; only foreground cropping needs it

    lo, hi = generate_spatial_bounding_box(image, select_fn=lambda v: v != 0)
    if all(a == b == 0 for a, b in zip(lo, hi)):
        return [(0, n) for n in image.shape[1:]]
    return [(int(a), int(b)) for a, b in zip(lo, hi)]
