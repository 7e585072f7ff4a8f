"""Per-case segmentation metrics: Dice, IoU, HD95, ASSD and NSD, per foreground class.

Conventions (the same for every dataset and every class; :func:`convention_note` says them
in words for tables):

- Metrics are computed per case and per foreground class at the case's **native**
  resolution and geometry (see :func:`nasseg.train.evaluate.evaluate`), then averaged over
  cases; the headline ``dice``/``iou``/... is the mean over foreground classes of those case
  means (binary: the one foreground class). Background is never scored. ``dice_pooled``
  is the global Dice ``2 sum|P n L| / sum(|P| + |L|)`` over all cases, beside the mean.
- Prediction: binary = ``logit > 0`` (sigmoid > 0.5); multi-class = ``argmax``.
- Distances are in mm: surfaces are the object voxels with a background neighbour
  (6/4-connectivity; voxels on the image border count as surface), distances are
  Euclidean distance transforms with the voxel spacing (SciPy ``sampling``). HD95 = the
  larger of the two directed 95th percentiles (MONAI ``compute_hausdorff_distance(
  percentile=95)``); ASSD = mean of both directions' distances pooled (MONAI
  ``compute_average_surface_distance(symmetric=True)``); NSD = the fraction of both
  surfaces within ``tolerance`` mm of the other (Nikolov et al. 2021; MONAI
  ``compute_surface_dice``). ``tests/test_train_metrics.py`` checks all three against MONAI.
- Empty masks, ``empty="nasseg"`` (default): both empty (class absent, none predicted) =
  Dice 1, IoU 1, NSD 1, HD95 0, ASSD 0; exactly one empty = Dice 0, IoU 0, NSD 0 and
  HD95 = ASSD = the image diagonal in mm (the worst distance the image allows; it depends
  on the image size, so the counts ``n_empty_pred``/``n_empty_label`` are reported beside).
  ``empty="monai"``: an empty label gives NaN Dice/IoU, any empty mask NaN HD95/ASSD, both
  empty NaN NSD, one empty NSD 0 -- MONAI's choices; NaN cases are excluded from means.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

Empty = Literal["nasseg", "monai"]
METRICS = ("dice", "iou", "hd95", "assd", "nsd")
NSD_TOLERANCE_MM = 2.0
"""Default NSD tolerance in mm (stated in every table)."""


def convention_note(empty: Empty = "nasseg", tolerance: float = NSD_TOLERANCE_MM) -> str:
    """One sentence on how empty masks are scored and the NSD tolerance (for tables)."""
    if empty == "monai":
        rule = ("empty label: Dice/IoU NaN; any empty mask: HD95/ASSD NaN (MONAI's convention; "
                "NaN cases excluded from means)")
    else:
        rule = ("both masks empty: Dice 1, HD95 0; one empty: Dice 0, HD95/ASSD = the image "
                "diagonal")
    return (f"Empty masks: {rule}. Distances in mm where the voxel spacing is known (NIfTI header, "
            f"or data.spacing), else in pixels/voxels; NSD at a tolerance of {tolerance:g}.")


def predict_labels(logits: Tensor) -> Tensor:
    """Class indices from logits ``[B, K, *S]`` -> ``[B, *S]`` (K = 1: threshold at 0).

    Example:
        >>> predict_labels(torch.tensor([[[-1.0, 2.0]]])).tolist()
        [[0, 1]]
    """
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def surface_distances(pred: np.ndarray, label: np.ndarray, spacing: Sequence[float] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of ``pred`` to ``label``'s surface, and back.

    Both masks must be non-empty.

    Example:
        >>> a = np.zeros((9, 9), bool); a[2:5, 2:5] = True
        >>> b = np.zeros((9, 9), bool); b[2:5, 4:7] = True
        >>> d_pl, d_lp = surface_distances(a, b)
        >>> float(d_pl.max()), float(d_lp.max())
        (2.0, 2.0)
    """
    sampling = None if spacing is None else tuple(float(s) for s in spacing)
    box = _bbox(pred | label, margin=1)
    p, t = pred[box], label[box]
    sp = p & ~ndimage.binary_erosion(p)
    st = t & ~ndimage.binary_erosion(t)
    d_pt = ndimage.distance_transform_edt(~st, sampling=sampling)[sp]
    d_tp = ndimage.distance_transform_edt(~sp, sampling=sampling)[st]
    return d_pt, d_tp


def hd95(pred: np.ndarray, label: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th-percentile Hausdorff distance between two binary masks, in mm (voxels if no spacing).

    Returns:
        0 if both are empty, the image diagonal (mm) if exactly one is.

    Example:
        >>> a = np.zeros((9, 9), bool); a[2:5, 2:5] = True
        >>> b = np.zeros((9, 9), bool); b[2:5, 4:7] = True
        >>> hd95(a, b), hd95(a, b, spacing=(1.0, 3.0))
        (2.0, 6.0)
    """
    return distance_metrics(pred, label, spacing)["hd95"]


def distance_metrics(pred: np.ndarray, label: np.ndarray, spacing: Sequence[float] | None = None,
                     tolerance: float = NSD_TOLERANCE_MM, empty: Empty = "nasseg") -> dict[str, float]:
    """HD95, ASSD and NSD of one binary mask pair (see the module docstring for empty masks)."""
    has_p, has_l = bool(pred.any()), bool(label.any())
    nan = float("nan")
    if not has_p and not has_l:
        return {"hd95": nan, "assd": nan, "nsd": nan} if empty == "monai" else \
            {"hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    if not has_p or not has_l:
        if empty == "monai":
            return {"hd95": nan, "assd": nan, "nsd": 0.0}
        sp = spacing or (1.0,) * pred.ndim
        diag = math.sqrt(sum((s * d) ** 2 for s, d in zip(pred.shape, sp)))
        return {"hd95": diag, "assd": diag, "nsd": 0.0}
    d_pt, d_tp = surface_distances(pred, label, spacing)
    both = np.concatenate([d_pt, d_tp])
    return {"hd95": float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))),
            "assd": float(both.mean()),
            "nsd": float((both <= tolerance).sum() / both.size)}


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, idx[0] - margin), min(mask.shape[axis], idx[-1] + 1 + margin)))
    return tuple(out)


def case_metrics(pred: Tensor, label: Tensor, num_classes: int, case_ids: list[str],
                 hausdorff: bool = True, *, spacing: Sequence[Sequence[float] | None] | None = None,
                 tolerance: float = NSD_TOLERANCE_MM, empty: Empty = "nasseg") -> list[dict]:
    """Metrics of a batch of cases, one row per (case, foreground class).

    Dice and IoU are computed on the tensors' device; distances on the CPU with SciPy.

    Args:
        pred: ``[B, *S]`` predicted class indices.
        label: ``[B, *S]`` true class indices.
        num_classes: classes including background (2 = binary).
        case_ids: ``B`` ids.
        hausdorff: compute the distance metrics HD95, ASSD, NSD (else NaN).
        spacing: per case, the voxel spacing in mm (``None`` = 1).
        tolerance: NSD tolerance in mm.
        empty: the empty-mask convention (module docstring).

    Returns:
        ``[{"case_id", "class", "dice", "iou", "hd95", "assd", "nsd", "inter", "pred_voxels",
        "label_voxels"}, ...]``, classes 1..K-1 (the voxel counts give the pooled Dice).

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
    nan = float("nan")
    for c in range(1, num_classes):
        p, t = pred == c, label == c
        inter = (p & t).sum(dims).double()
        ps, ts = p.sum(dims).double(), t.sum(dims).double()
        union = ps + ts - inter
        both_empty = (ps + ts) == 0
        dice = torch.where(both_empty, 1.0, 2 * inter / (ps + ts).clamp_min(1))
        iou = torch.where(both_empty, 1.0, inter / union.clamp_min(1))
        if empty == "monai":
            dice = torch.where(ts == 0, nan, dice)
            iou = torch.where(ts == 0, nan, iou)
        for b, cid in enumerate(case_ids):
            sp = spacing[b] if spacing is not None else None
            dist = distance_metrics(pred_np[b] == c, label_np[b] == c, sp, tolerance, empty) \
                if hausdorff else {"hd95": nan, "assd": nan, "nsd": nan}
            rows.append({"case_id": cid, "class": c, "dice": float(dice[b]), "iou": float(iou[b]),
                         **dist, "inter": int(inter[b]), "pred_voxels": int(ps[b]),
                         "label_voxels": int(ts[b])})
    return rows


def summarise(rows: list[dict], num_classes: int) -> dict[str, float]:
    """Mean metrics over cases (NaN excluded), per class, then over foreground classes.

    Returns:
        ``dice, iou, hd95, assd, nsd`` (means of per-case values), ``dice_pooled`` (global
        Dice over all voxels), ``n_empty_pred``/``n_empty_label`` (case-class pairs with an
        empty prediction / label) and, for multi-class data, the same per class
        (``dice_1``, ...).

    Example:
        >>> summarise([{"class": 1, "dice": 1.0, "iou": 1.0, "hd95": 0.0},
        ...            {"class": 1, "dice": 0.5, "iou": 0.25, "hd95": 2.0}], 2)["dice"]
        0.75
    """
    out: dict[str, float] = {}
    per_class: dict[str, list[float]] = {m: [] for m in (*METRICS, "dice_pooled")}
    n_empty_pred = n_empty_label = 0
    for c in range(1, num_classes):
        mine = [r for r in rows if r["class"] == c]
        for m in METRICS:
            vals = np.array([r.get(m, np.nan) for r in mine], dtype=float)
            v = float(np.nanmean(vals)) if mine and not np.all(np.isnan(vals)) else float("nan")
            per_class[m].append(v)
            if num_classes > 2:
                out[f"{m}_{c}"] = v
        if mine and "pred_voxels" in mine[0]:
            inter = sum(r["inter"] for r in mine)
            total = sum(r["pred_voxels"] + r["label_voxels"] for r in mine)
            per_class["dice_pooled"].append(2 * inter / total if total else 1.0)
            n_empty_pred += sum(r["pred_voxels"] == 0 for r in mine)
            n_empty_label += sum(r["label_voxels"] == 0 for r in mine)
    summary = {m: float(np.mean(v)) if v else float("nan") for m, v in per_class.items()}
    if not per_class["dice_pooled"]:
        summary.pop("dice_pooled")
    else:
        summary.update(n_empty_pred=n_empty_pred, n_empty_label=n_empty_label)
    for m in ("assd", "nsd"):
        if all(math.isnan(v) for v in per_class[m]) and not any(m in r for r in rows):
            summary.pop(m)
    return {**summary, **out}
