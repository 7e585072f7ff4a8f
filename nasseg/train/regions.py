"""Region-based scores for nested labels (BraTS: whole tumour, tumour core, enhancing tumour).

A dataset declares regions in its ``dataset.json`` as unions of label values, e.g. for the
Decathlon BraTS labels (1 edema, 2 non-enhancing tumour, 3 enhancing tumour)::

    "regions": {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}

Each region is scored as a binary mask (``label in region``) with the same per-case metrics
as the classes (:func:`nasseg.train.metrics.case_metrics`), and its case mean is reported as
``dice_WT``, ``iou_WT``, ``hd95_WT``, ... next to the per-class scores.

Example:
    >>> pred = torch.tensor([[0, 1, 2, 3]]); label = torch.tensor([[0, 1, 3, 3]])
    >>> rows = region_rows(pred, label, {"TC": [2, 3], "ET": [3]}, ["a"], hausdorff=False)
    >>> [(r["region"], r["dice"]) for r in rows]
    [('TC', 1.0), ('ET', 0.6666666666666666)]
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from nasseg.train.metrics import case_metrics


def region_rows(pred: Tensor, label: Tensor, regions: dict[str, list[int]], case_ids: list[str],
                hausdorff: bool = True) -> list[dict]:
    """One row per (case, region): ``{"case_id", "region", "dice", "iou", "hd95"}``.

    Args:
        pred, label: ``[B, *S]`` class indices.
        regions: region name -> label values it unites.
    """
    rows = []
    for name, values in regions.items():
        v = torch.as_tensor(values, device=pred.device)
        p, t = torch.isin(pred, v).long(), torch.isin(label, v.to(label.device)).long()
        for r in case_metrics(p, t, 2, case_ids, hausdorff):
            rows.append({"case_id": r["case_id"], "region": name, "dice": r["dice"], "iou": r["iou"],
                         "hd95": r["hd95"]})
    return rows


def summarise_regions(rows: list[dict]) -> dict[str, float]:
    """Case means per region: ``{"dice_WT": ..., "iou_WT": ..., "hd95_WT": ...}``."""
    out: dict[str, float] = {}
    for name in dict.fromkeys(r["region"] for r in rows):
        mine = [r for r in rows if r["region"] == name]
        for m in ("dice", "iou", "hd95"):
            out[f"{m}_{name}"] = float(np.mean([r[m] for r in mine]))
    return out
