"""Validation: predict every held-out case whole and score it (see :mod:`.metrics`)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from nasseg.data.base import SegDataset
from nasseg.data.batches import sliding_window
from nasseg.train.metrics import case_metrics, predict_labels, summarise


def main_output(out: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """The full-resolution output of a network (the first one under deep supervision)."""
    return out[0] if isinstance(out, (list, tuple)) else out


@torch.no_grad()
def evaluate(model: nn.Module, ds: SegDataset, *, device: torch.device,
             patch: tuple[int, ...] | None = None, batch_size: int = 16, overlap: float = 0.5,
             divisor: int = 1,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             memory_format: torch.memory_format = torch.contiguous_format,
             hausdorff: bool = True) -> tuple[dict[str, float], list[dict]]:
    """Score ``model`` on every case of ``ds``.

    Fixed-size cases are predicted whole, ``batch_size`` at a time; with ``patch`` set
    each case is predicted by a Gaussian-weighted sliding window over the whole volume.

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
        hausdorff: compute HD95 (the slowest metric).

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
    if patch is None and ds.fixed_size:
        for i in range(0, len(ds), batch_size):
            pred = predict_labels(predict(ds.images[i: i + batch_size]))
            label = ds.labels[i: i + batch_size].to(device, non_blocking=True).long()
            rows += case_metrics(pred, label, ds.num_classes, ds.case_ids[i: i + batch_size], hausdorff)
    else:
        for i in range(len(ds)):
            image = ds.images[i].to(device, non_blocking=True)
            if patch is None:
                logits = predict(image[None])[0]
            else:
                win = tuple(min(w, -(-s // divisor) * divisor) for w, s in zip(patch, image.shape[1:]))
                logits = sliding_window(predict, image, win, overlap, batch_size)
            pred = predict_labels(logits[None])
            label = ds.labels[i].to(device).long()[None]
            rows += case_metrics(pred, label, ds.num_classes, [ds.case_ids[i]], hausdorff)
    return summarise(rows, ds.num_classes), rows
