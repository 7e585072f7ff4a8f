"""``nasseg evaluate``: score a trained network on another labelled dataset.

Zero-shot transfer (trained on one set, tested on another, as U-Bench's source-to-target
pairs): every case of the other dataset is preprocessed as training preprocessed its own
(2D: resized to the training size when training resized) and scored by training's own
evaluation (:func:`nasseg.train.evaluate.evaluate`, :mod:`nasseg.train.metrics`): the
same Dice, IoU and HD95, per case and class, and the same summary.

Writes ``per_case.csv`` in the long format ``nasseg stats`` and the ablation statistics
read (``variant, seed, case_id, class, dice, iou, hd95``; the variant is the network's name)
and ``summary.json`` (the means, the network, the data).

Example:
    >>> net = load_network("runs/train/dsb")                                  # doctest: +SKIP
    >>> summary, rows = evaluate_network(net, "other_data/", out_dir="eval")    # doctest: +SKIP
    >>> summary["dice"]                                                       # doctest: +SKIP
    0.86
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasseg.errors import DataError
from nasseg.infer.network import Network


class _Module(nn.Module):
    """A :class:`Network` (checkpoint, ONNX or TorchScript) seen as an ``nn.Module``."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def other_data(net: Network, spec: str | Path, max_cases: int | None = None):
    """The data config of ``spec`` (folder or data-config YAML), sized as the network was trained."""
    from nasseg.data import DataConfig, resolve_data

    text = str(spec)
    base: Any = DataConfig.from_yaml(text) if text.endswith((".yaml", ".yml")) else text
    size = None
    if net.spatial_dims == 2 and net.size is not None:
        size = list(net.size)
    return resolve_data(base, size=size, max_cases=max_cases)


def evaluate_network(net: Network, data: str | Path, *, out_dir: str | Path | None = None,
                     batch_size: int = 16, max_cases: int | None = None,
                     hausdorff: bool = True) -> tuple[dict[str, float], list[dict]]:
    """Score ``net`` on every case of ``data``.

    Args:
        net: the trained network.
        data: a dataset folder (2D ``images/`` + masks, or Decathlon) or a data-config YAML.
        out_dir: where ``per_case.csv`` and ``summary.json`` go (``None``: nowhere).
        batch_size: cases (2D) or windows (3D) per forward pass.
        max_cases: a seeded stratified sample of N cases (as ``--max-cases`` everywhere).
        hausdorff: compute HD95.

    Returns:
        ``(summary, rows)`` as :func:`nasseg.train.evaluate.evaluate` returns them, each row
        with ``variant`` and ``seed`` added.

    Raises:
        DataError: the data's dimensions, channels or classes do not fit the network.
    """
    from nasseg.data import load_dataset
    from nasseg.train.evaluate import evaluate

    cfg = other_data(net, data, max_cases)
    ds = load_dataset(cfg, cache=False)
    if ds.spatial_dims != net.spatial_dims:
        raise DataError(f"{data}: the data is {ds.spatial_dims}D but the network is {net.spatial_dims}D")
    if ds.in_channels != net.in_channels:
        if ds.spatial_dims != 2:
            raise DataError(f"{data}: volumes have {ds.in_channels} channels; the network takes {net.in_channels}")
        ds = _with_channels(ds, net.in_channels, str(data))
    if ds.num_classes != net.num_classes:
        raise DataError(f"{data}: masks have {ds.num_classes} classes (background included); "
                        f"the network predicts {net.num_classes}")
    summary, rows = evaluate(_Module(net), ds, device=torch.device("cpu"), patch=net.window,
                             batch_size=batch_size, overlap=net.overlap, divisor=net.divisor,
                             hausdorff=hausdorff)
    rows = [{"variant": net.name, "seed": net.seed, **r} for r in rows]
    if out_dir is not None:
        write_scores(Path(out_dir), summary, rows, net, cfg)
    return summary, rows


def _with_channels(ds: Any, channels: int, where: str) -> Any:
    """A 2D dataset's images with ``channels`` channels, as ``nasseg predict`` adapts them
    (:func:`nasseg.data.folder.to_channels`, then the per-case z-score again: the folder
    loader normalised the cases before, and colour to grey changes their statistics)."""
    from dataclasses import replace

    from nasseg.data.base import normalise
    from nasseg.data.folder import to_channels

    def adapt(x: Tensor) -> Tensor:
        out = to_channels(x.numpy(), channels, where, axis=-3)
        return torch.from_numpy(normalise(out) if out.ndim == 3 else np.stack([normalise(c) for c in out]))

    images = adapt(ds.images) if isinstance(ds.images, Tensor) else [adapt(x) for x in ds.images]
    return replace(ds, images=images, in_channels=channels)


def write_scores(out: Path, summary: dict[str, float], rows: list[dict], net: Network, cfg: Any) -> None:
    """``per_case.csv`` (long format) and ``summary.json``."""
    from nasseg.train.result import RunWriter

    writer = RunWriter(out)
    writer.csv("per_case.csv", rows)
    writer.json("summary.json", {"metrics": summary, "cases": len({r["case_id"] for r in rows}),
                                 "network": net.source, "variant": net.name, "seed": net.seed,
                                 "data": cfg.model_dump(mode="json")})
