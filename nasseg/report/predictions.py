"""The prediction strip of a Pareto member: its best, median and worst validation cases,
predicted again from the trial's checkpoint and drawn over the image (data only).

Each panel is an RGB array: the image in grey (or its colours), the prediction tinted red,
the ground truth outlined in green. Volumes show the axial mid-slice through the ground
truth (the middle slice of the last axis that holds the most foreground; the middle of the
volume when there is none). Cases are ranked by the per-case validation Dice the trial
stored, so the strip shows what the numbers in the table mean.

Example:
    >>> panels = strip_info("runs/quickstart/trials/trial_0007/checkpoint.pt", {"a": 0.9, "b": 0.5, "c": 0.7})
    >>> [p.label for p in panels]                                                   # doctest: +SKIP
    ['best', 'median', 'worst']
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from nasseg.data import DataConfig, load_dataset

__all__ = ["GREEN", "RED", "Panel", "overlay", "pick_cases", "strip_info"]

RED = np.array([230, 40, 40], np.float32)
"""The prediction's tint (the strip's legend names it)."""
GREEN = np.array([40, 220, 60], np.uint8)
"""The ground truth's outline."""


@dataclass
class Panel:
    """One case of the strip."""

    label: str
    case_id: str
    dice: float
    rgb: np.ndarray  # [H, W, 3] uint8


def pick_cases(dice: dict[str, float]) -> list[tuple[str, str, float]]:
    """``[(label, case, dice)]`` for the best, median and worst case (fewer if fewer cases).

    Example:
        >>> pick_cases({"a": 0.9, "b": 0.2, "c": 0.5, "d": 0.6})
        [('best', 'a', 0.9), ('median', 'c', 0.5), ('worst', 'b', 0.2)]
    """
    ranked = sorted(dice.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked:
        return []
    picks = [("best", *ranked[0]), ("median", *ranked[(len(ranked) - 1) // 2]), ("worst", *ranked[-1])]
    seen, out = set(), []
    for label, case, d in picks:
        if case not in seen:
            seen.add(case)
            out.append((label, case, d))
    return out


def overlay(image: np.ndarray, pred: np.ndarray, label: np.ndarray, min_side: int = 128) -> np.ndarray:
    """Draw ``pred`` (red tint) and ``label`` (green outline) over ``image [C, H, W]``.

    Returns:
        ``[H', W', 3]`` uint8, upscaled by an integer factor to at least ``min_side``.
    """
    x = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    lo, hi = np.percentile(x, [1, 99])
    rgb = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1).transpose(1, 2, 0) * 255
    fg = pred > 0
    rgb[fg] = 0.55 * rgb[fg] + 0.45 * RED
    rgb = rgb.astype(np.uint8)
    k = max(1, -(-min_side // min(rgb.shape[:2])))
    rgb = np.kron(rgb, np.ones((k, k, 1), np.uint8))
    big = np.kron(label > 0, np.ones((k, k), bool))
    edge = big & ~ndimage.binary_erosion(big, iterations=max(1, k // 2))
    rgb[edge] = GREEN
    return rgb


def _slice(image: np.ndarray, pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, ...]:
    """The axial slice (last axis) with the most foreground, or the middle one."""
    counts = (label > 0).sum(axis=(0, 1))
    z = int(np.argmax(counts)) if counts.any() else label.shape[-1] // 2
    return image[..., z], pred[..., z], label[..., z]


def strip_info(checkpoint: str, dice: dict[str, float]) -> list[Panel]:
    """Predict the best, median and worst case of ``dice`` (per-case validation Dice) with
    the network in ``checkpoint`` and draw them.

    Raises:
        NassegError: the checkpoint or its dataset cannot be loaded.
    """
    import torch  # lazy: torch; nasseg report writes a study's pages without it (predictions only when asked)

    from nasseg.infer.network import load_network  # lazy: torch; nasseg report writes a study's pages without it (predictions only when asked)
    from nasseg.infer.predict import predict_case  # lazy: torch; nasseg report writes a study's pages without it (predictions only when asked)
    from nasseg.train.metrics import predict_labels  # lazy: torch; nasseg report writes a study's pages without it (predictions only when asked)

    net = load_network(checkpoint)
    ds = load_dataset(DataConfig.model_validate(net.meta["data"]))
    index = {c: i for i, c in enumerate(ds.case_ids)}
    panels = []
    for label, case, d in pick_cases({c: v for c, v in dice.items() if c in index}):
        image, truth = ds.images[index[case]], ds.labels[index[case]]
        with torch.no_grad():
            pred = predict_labels(predict_case(net, image)[None])[0].numpy()
        img, p, t = image.numpy(), pred, truth.numpy()
        if ds.spatial_dims == 3:
            img, p, t = _slice(img, p, t)
        panels.append(Panel(label, case, d, overlay(img, p, t)))
    return panels
