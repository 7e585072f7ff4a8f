"""``nasseg evaluate``: score a trained network on another labelled dataset.

Zero-shot transfer (trained on one set, tested on another, as U-Bench's source-to-target
pairs): every case of the other dataset is preprocessed as training preprocessed its own
(2D: resized to the training size when training resized) and scored by training's own
evaluation (:func:`nasseg.train.evaluate.evaluate`, :mod:`nasseg.train.metrics`): the
same Dice, IoU and HD95, per case and class, and the same summary.

Writes ``per_case.csv`` in the long format ``nasseg stats`` and the ablation statistics
read (``variant, seed, case_id, split, class, dice, iou, hd95``; the variant is the network's
name; ``split`` says whether the case's file was one the network was trained, validated or
tested on: ``train``/``val``/``test``, else ``external``) and ``summary.json`` (the means, the
network, the data, the cases per split). The data's class names must be the network's.

Example:
    >>> net = load_network("runs/train/dsb")                                  # doctest: +SKIP
    >>> summary, rows = evaluate_network(net, "other_data/", out_dir="eval")    # doctest: +SKIP
    >>> summary["dice"]                                                       # doctest: +SKIP
    0.86
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasseg.errors import DataError
from nasseg.infer.network import Network
from nasseg.outputs import check_folder, check_targets
from nasseg.data import DataConfig, load_dataset, resolve_data
from nasseg.data.base import normalise
from nasseg.data.decathlon import load_decathlon
from nasseg.data.folder import to_channels
from nasseg.train.contract import file_hash
from nasseg.train.evaluate import evaluate
from nasseg.train.result import RunWriter


class _Module(nn.Module):
    """A :class:`Network` (checkpoint, ONNX or TorchScript) seen as an ``nn.Module``."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def other_data(net: Network, spec: str | Path, max_cases: int | None = None):
    """The data config of ``spec`` (folder or data-config YAML), sized as the network was
    trained (2D), or resampled to the network's stored target spacing with its stored
    channel modalities (3D)."""
    text = str(spec)
    base: Any = DataConfig.from_yaml(text) if text.endswith((".yaml", ".yml")) else text
    size = None
    if net.spatial_dims == 2 and net.size is not None:
        size = list(net.size)
    cfg = resolve_data(base, size=size, max_cases=max_cases)
    pre = net.preprocessing
    if cfg.kind in ("decathlon", "nnunet") and pre:
        cfg = resolve_data(cfg, target_spacing=tuple(pre["target_spacing"]), modalities=net.contract.get("modalities"))
    return cfg


def other_dataset(net: Network, cfg: Any) -> Any:
    """Load ``cfg`` (:func:`other_data`) as the network's training data was fed: 3D CT
    channels normalised with the network's stored statistics, not this data's own."""
    stats = (net.preprocessing or {}).get("ct_stats")
    if cfg.kind == "decathlon" and stats:
        return load_decathlon(cfg, ct_stats={int(k): v for k, v in stats.items()})
    return load_dataset(cfg, cache=False)


def check_class_names(net: Network, names: list[str], where: str) -> None:
    """Refuse data whose classes are named differently from the network's (labels 1 and 2
    swapped, say). Names inferred from mask values (``foreground``, ``class_N``) name no
    class, so they are not compared.

    Raises:
        DataError: naming the data, both lists and what differs.

    Example:
        >>> check_class_names(net, ["background", "tumour", "edema"], "brats/")  # doctest: +SKIP
        DataError: brats/: classes ['background', 'tumour', 'edema'] differ from the network's ...
    """
    theirs = net.class_names
    if not theirs or _inferred(names) or _inferred(theirs) or list(names) == list(theirs):
        return
    how = "the same names in another order (labels swapped)" if sorted(names) == sorted(theirs) else \
        "other names"
    raise DataError(f"{where}: classes {list(names)} differ from the network's {list(theirs)} ({how}); "
                    f"give the data config `labels:` in the network's order")


def _inferred(names: list[str]) -> bool:
    """Names nasseg made up from mask values (:func:`nasseg.data.labels.declare_labels`)."""
    return list(names) in (["background", "foreground"],
                           ["background", *[f"class_{i}" for i in range(1, len(names))]])


def case_splits(net: Network, ds: Any) -> dict[str, str]:
    """Per case id of ``ds``, the partition of the network's training data holding the same
    file content: ``train``, ``val``, ``test``, else ``external``; ``unknown`` when that
    cannot be told (the network stores no case hashes, e.g. trained on generated data or
    before nasseg stored them, or the case has no file)."""
    stored = net.contract.get("case_hashes") or {}
    where = {h: part for part in ("test", "val", "train") for h in stored.get(part) or []}
    sources = list(ds.sources or [""] * len(ds.case_ids))
    hashes = [file_hash(src) if where else None for src in sources]
    return {c: where.get(h, "external") if h else "unknown" for c, h in zip(ds.case_ids, hashes)}


def overlap_warning(rows: list[dict], data: str | Path) -> str | None:
    """One line when cases scored were among the network's training or validation cases."""
    cases = {r["case_id"]: r.get("split", "unknown") for r in rows}
    seen = {part: sum(v == part for v in cases.values()) for part in ("train", "val")}
    if not sum(seen.values()):
        return None
    return (f"warning: {sum(seen.values())} of {len(cases)} cases of {data} were seen in training "
            f"({seen['train']} train, {seen['val']} validation; same file content): they are no transfer "
            f"result; per_case.csv labels each row's split")


def evaluate_network(net: Network, data: str | Path, *, out_dir: str | Path | None = None,
                     batch_size: int = 16, max_cases: int | None = None,
                     hausdorff: bool = True, overwrite: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Score ``net`` on every case of ``data``.

    Args:
        net: the trained network.
        data: a dataset folder (2D ``images/`` + masks, or Decathlon) or a data-config YAML.
        out_dir: where ``per_case.csv`` and ``summary.json`` go (``None``: nowhere).
        batch_size: cases (2D) or windows (3D) per forward pass.
        max_cases: a seeded stratified sample of N cases (as ``--max-cases`` everywhere).
        hausdorff: compute HD95.
        overwrite: replace ``per_case.csv``/``summary.json`` already in ``out_dir`` (never
            the network's own run folder's files).

    Returns:
        ``(summary, rows)`` as :func:`nasseg.train.evaluate.evaluate` returns them, each row
        with ``variant``, ``seed`` and ``split`` added (:func:`case_splits`: ``train``,
        ``val``, ``test`` when the case's file is one the network was trained, selected or
        tested on, else ``external``).

    Raises:
        DataError: the data's dimensions, channels, class count or class names do not fit
            the network.
        ConfigError: ``out_dir`` would replace earlier results or the run's own files.
    """
    if out_dir is not None:  # before anything is computed
        out = check_folder(out_dir, "--out")
        check_targets([out / "per_case.csv", out / "summary.json"], inputs=_network_files(net), flag="--out",
                      overwrite=overwrite)
    cfg = other_data(net, data, max_cases)
    ds = other_dataset(net, cfg)
    if ds.spatial_dims != net.spatial_dims:
        raise DataError(f"{data}: the data is {ds.spatial_dims}D but the network is {net.spatial_dims}D")
    if ds.in_channels != net.in_channels:
        if ds.spatial_dims != 2:
            raise DataError(f"{data}: volumes have {ds.in_channels} channels; the network takes {net.in_channels}")
        ds = _with_channels(ds, net.in_channels, str(data))
    if ds.num_classes != net.num_classes:
        raise DataError(f"{data}: masks have {ds.num_classes} classes (background included); "
                        f"the network predicts {net.num_classes}")
    check_class_names(net, ds.class_names, str(data))
    splits = case_splits(net, ds)
    summary, rows = evaluate(_Module(net), ds, device=torch.device("cpu"), patch=net.window,
                             batch_size=batch_size, overlap=net.overlap, divisor=net.divisor,
                             hausdorff=hausdorff)
    rows = [{"variant": net.name, "seed": net.seed, "case_id": r["case_id"], "split": splits[r["case_id"]], **r}
            for r in rows]
    if out_dir is not None:
        write_scores(Path(out_dir), summary, rows, net, cfg)
    return summary, rows


def _network_files(net: Network) -> list[Path]:
    """The files of the network's own run folder (its per-case table is an earlier result)."""
    source = Path(net.source)
    folder = source.parent
    if (folder / "config.json").is_file() or (folder / "checkpoint.pt").is_file():
        return [f for f in folder.iterdir() if f.is_file()]
    return [source]


def _with_channels(ds: Any, channels: int, where: str) -> Any:
    """A 2D dataset's images with ``channels`` channels, as ``nasseg predict`` adapts them
    (:func:`nasseg.data.folder.to_channels`, then the per-case z-score again: the folder
    loader normalised the cases before, and colour to grey changes their statistics)."""
    def adapt(x: Tensor) -> Tensor:
        out = to_channels(x.numpy(), channels, where, axis=-3)
        return torch.from_numpy(normalise(out) if out.ndim == 3 else np.stack([normalise(c) for c in out]))

    images = adapt(ds.images) if isinstance(ds.images, Tensor) else [adapt(x) for x in ds.images]
    return replace(ds, images=images, in_channels=channels)


def write_scores(out: Path, summary: dict[str, float], rows: list[dict], net: Network, cfg: Any) -> None:
    """``per_case.csv`` (long format) and ``summary.json``."""
    writer = RunWriter(out)
    writer.csv("per_case.csv", rows)
    splits = {r["case_id"]: r["split"] for r in rows}
    writer.json("summary.json", {"metrics": summary, "cases": len(splits),
                                 "splits": {s: list(splits.values()).count(s) for s in sorted(set(splits.values()))},
                                 "network": net.source, "variant": net.name, "seed": net.seed,
                                 "data": cfg.model_dump(mode="json")})
