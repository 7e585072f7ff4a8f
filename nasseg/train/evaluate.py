"""Scoring: predict every held-out case whole and score it at its native resolution.

When the dataset was resized for training (``SegDataset.native_labels`` set, e.g. a 2D
folder trained at ``--size 64`` from 96 x 96 files), each case's logits are resampled to
the case's original size (bilinear in 2D, trilinear in 3D, ``align_corners=False``) before
thresholding, and scored against the original mask with the case's spacing: the numbers a
paper reports, not those of the training grid (see :mod:`.metrics`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from nasseg.data.base import SegDataset
from nasseg.data.batches import case_window, sliding_window
import torch.nn.functional as F

from nasseg.data.geometry import to_original
from nasseg.train.metrics import NSD_TOLERANCE_MM, Empty, case_metrics, predict_labels, summarise
from nasseg.train.regions import region_rows, summarise_regions


def main_output(out: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """The full-resolution output of a network (the first one under deep supervision)."""
    return out[0] if isinstance(out, (list, tuple)) else out


@torch.no_grad()
def evaluate(model: nn.Module, ds: SegDataset, *, device: torch.device,
             patch: tuple[int, ...] | None = None, batch_size: int = 16, overlap: float = 0.5,
             divisor: int = 1,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             memory_format: torch.memory_format = torch.contiguous_format,
             hausdorff: bool = True, empty: Empty = "nasseg",
             tolerance: float = NSD_TOLERANCE_MM) -> tuple[dict[str, float], list[dict]]:
    """Score ``model`` on every case of ``ds``.

    Fixed-size cases are predicted whole, ``batch_size`` at a time; with ``patch`` set
    each case is predicted by a Gaussian-weighted sliding window over the whole volume.
    Preprocessed volumes (``ds.info["metas"]``) are scored on their original grid: the
    logits are mapped back (:func:`nasseg.data.geometry.to_original`: resampled back,
    uncropped) and compared with the unprocessed label; nested regions the dataset
    declares (``ds.info["regions"]``, e.g. BraTS WT/TC/ET) are scored too (``dice_WT``, ...).

    Args:
        model: the network (put in eval mode here, and left in it).
        ds: held-out cases (on any device; moved batch by batch).
        device: where the network runs.
        patch: sliding-window size, or ``None`` to predict cases whole.
        divisor: the network's size multiple; a window shrinks to a case's shape
            rounded up to it.
        batch_size: cases (or windows) per forward pass.
        overlap: sliding-window overlap.
        autocast: context manager factory for mixed precision.
        memory_format: ``torch.channels_last(_3d)`` if the network uses it.
        hausdorff: compute the distance metrics (HD95, ASSD, NSD; the slowest).
        empty: the empty-mask convention (:mod:`.metrics`).
        tolerance: NSD tolerance in mm.

    Returns:
        ``(summary, rows)``: mean metrics (:func:`summarise`) and per-case rows.

    Example:
        >>> summary, rows = evaluate(model, val_ds, device=torch.device("cpu"))  # doctest: +SKIP
        >>> len(rows) == len(val_ds) * (val_ds.num_classes - 1)  # doctest: +SKIP
        True
    """
    model.eval()

    def predict(x: Tensor) -> Tensor:
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        with autocast():
            return main_output(model(x)).float()

    rows: list[dict] = []
    spacing = ds.spacing
    metas = ds.info.get("metas") or {}
    regions, region_scores = ds.info.get("regions") or {}, []

    def add(pred: Tensor, label: Tensor, idx: list[int], kw: dict) -> None:
        ids, sp = [ds.case_ids[i] for i in idx], [spacing[i] for i in idx] if spacing else None
        rows.extend(case_metrics(pred, label, ds.num_classes, ids, spacing=sp, **kw))
        if regions:
            region_scores.extend(region_rows(pred, label, regions, ids, hausdorff))

    def score(logits: Tensor, idx: list[int]) -> None:
        """Score the logits ``[B, K, *S]`` of cases ``idx``, at native size if known."""
        kw = {"hausdorff": hausdorff, "empty": empty, "tolerance": tolerance}
        if ds.native_labels is None:
            label = torch.stack([ds.labels[i] for i in idx]).to(device).long() if not ds.fixed_size \
                else ds.labels[idx[0]: idx[-1] + 1].to(device, non_blocking=True).long()
            add(predict_labels(logits), label, idx, kw)
            return
        for b, i in enumerate(idx):
            native = ds.native_labels[i]
            lg = logits[b: b + 1]
            meta = metas.get(ds.case_ids[i])
            if meta is not None:  # preprocessed volume: resampled back and uncropped
                pred = to_original(lg[0], meta)[None]
            else:
                if tuple(lg.shape[2:]) != tuple(native.shape):
                    lg = F.interpolate(lg, size=tuple(native.shape), align_corners=False,
                                       mode="bilinear" if lg.ndim == 4 else "trilinear")
                pred = predict_labels(lg)
            add(pred, native[None].to(pred.device).long(), [i], kw)

    if patch is None and ds.fixed_size:
        for i in range(0, len(ds), batch_size):
            idx = list(range(i, min(i + batch_size, len(ds))))
            score(predict(ds.images[i: i + batch_size]), idx)
    else:
        for i in range(len(ds)):
            image = ds.images[i].to(device, non_blocking=True)
            if patch is None:
                logits = predict(image[None])[0]
            else:
                logits = sliding_window(predict, image, case_window(patch, tuple(image.shape[1:]), divisor),
                                        overlap, batch_size)
            score(logits[None], [i])
    return {**summarise(rows, ds.num_classes), **summarise_regions(region_scores)}, rows
