"""Per-case segmentation metrics: Dice, IoU and HD95, per foreground class.

Conventions (the same for every dataset and every class):

- Metrics are computed per case and per foreground class, then averaged over cases;
  the headline ``dice``/``iou``/``hd95`` is the mean over foreground classes of those
  case means (binary: the one foreground class). Background is never scored.
- Prediction: binary = ``logit > 0`` (sigmoid > 0.5); multi-class = ``argmax``.
- **Both empty** (the class is absent from the label and the prediction): Dice = 1,
  IoU = 1, HD95 = 0 -- a correct "nothing here" is a perfect answer.
- **One empty** (missed or hallucinated class): Dice = 0, IoU = 0, HD95 = the image
  diagonal ``sqrt(sum(S_i ** 2))`` in voxels -- the worst distance the image allows, so
  the mean stays finite and a miss is penalised rather than dropped.
- HD95 is in voxels (spacing ignored; the bundled datasets are isotropic): the larger of
  the two directed 95th percentiles of surface-to-surface distances (as MONAI's
  ``compute_hausdorff_distance(percentile=95)``). Surfaces are the object voxels with a
  background neighbour (6/4-connectivity); voxels on the image border count as surface.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor


def predict_labels(logits: Tensor) -> Tensor:
    """Class indices from logits ``[B, K, *S]`` -> ``[B, *S]`` (K = 1: threshold at 0).

    Example:
        >>> predict_labels(torch.tensor([[[-1.0, 2.0]]])).tolist()
        [[0, 1]]
    """
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def hd95(pred: np.ndarray, label: np.ndarray) -> float:
    """95th-percentile Hausdorff distance between two binary masks, in voxels.

    Args:
        pred: ``[*S]`` bool.
        label: ``[*S]`` bool, same shape.

    Returns:
        0 if both are empty, the image diagonal if exactly one is.

    Example:
        >>> a = np.zeros((9, 9), bool); a[2:5, 2:5] = True
        >>> b = np.zeros((9, 9), bool); b[2:5, 4:7] = True
        >>> hd95(a, b)
        2.0
    """
    has_p, has_l = bool(pred.any()), bool(label.any())
    if not has_p and not has_l:
        return 0.0
    if not has_p or not has_l:
        return math.sqrt(sum(s * s for s in pred.shape))
    box = _bbox(pred | label, margin=1)
    p, t = pred[box], label[box]
    sp = p & ~ndimage.binary_erosion(p)
    st = t & ~ndimage.binary_erosion(t)
    d_pt = ndimage.distance_transform_edt(~st)[sp]
    d_tp = ndimage.distance_transform_edt(~sp)[st]
    return float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, idx[0] - margin), min(mask.shape[axis], idx[-1] + 1 + margin)))
    return tuple(out)


def case_metrics(pred: Tensor, label: Tensor, num_classes: int, case_ids: list[str],
                 hausdorff: bool = True) -> list[dict]:
    """Metrics of a batch of cases, one row per (case, foreground class).

    Dice and IoU are computed on the tensors' device; HD95 on the CPU with SciPy.

    Args:
        pred: ``[B, *S]`` predicted class indices.
        label: ``[B, *S]`` true class indices.
        num_classes: classes including background (2 = binary).
        case_ids: ``B`` ids.
        hausdorff: compute HD95 (else NaN).

    Returns:
        ``[{"case_id", "class", "dice", "iou", "hd95"}, ...]``, classes 1..K-1.

    Example:
        >>> y = torch.zeros(1, 4, 4, dtype=torch.long); y[0, :2] = 1
        >>> case_metrics(y, y, 2, ["a"])[0]["dice"]
        1.0
    """
    rows = []
    dims = tuple(range(1, pred.ndim))
    pred_np = label_np = None
    if hausdorff:
        pred_np, label_np = pred.cpu().numpy(), label.cpu().numpy()
    for c in range(1, num_classes):
        p, t = pred == c, label == c
        inter = (p & t).sum(dims).double()
        ps, ts = p.sum(dims).double(), t.sum(dims).double()
        union = ps + ts - inter
        empty = (ps + ts) == 0
        dice = torch.where(empty, 1.0, 2 * inter / (ps + ts).clamp_min(1)).tolist()
        iou = torch.where(empty, 1.0, inter / union.clamp_min(1)).tolist()
        for b, cid in enumerate(case_ids):
            h = hd95(pred_np[b] == c, label_np[b] == c) if hausdorff else float("nan")
            rows.append({"case_id": cid, "class": c, "dice": dice[b], "iou": iou[b], "hd95": h})
    return rows


def summarise(rows: list[dict], num_classes: int) -> dict[str, float]:
    """Mean metrics over cases, per class, then over foreground classes.

    Returns:
        ``{"dice", "iou", "hd95"}`` and, for multi-class data, ``dice_1``, ``iou_1``,
        ``hd95_1``, ... per class.

    Example:
        >>> summarise([{"class": 1, "dice": 1.0, "iou": 1.0, "hd95": 0.0},
        ...            {"class": 1, "dice": 0.5, "iou": 0.25, "hd95": 2.0}], 2)
        {'dice': 0.75, 'iou': 0.625, 'hd95': 1.0}
    """
    out: dict[str, float] = {}
    per_class = {m: [] for m in ("dice", "iou", "hd95")}
    for c in range(1, num_classes):
        mine = [r for r in rows if r["class"] == c]
        for m, values in per_class.items():
            v = float(np.mean([r[m] for r in mine])) if mine else float("nan")
            values.append(v)
            if num_classes > 2:
                out[f"{m}_{c}"] = v
    summary = {m: float(np.mean(v)) for m, v in per_class.items()}
    return {**summary, **out}
