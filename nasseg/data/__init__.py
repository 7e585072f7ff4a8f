"""Datasets: synthetic (default), 2D image folders and Decathlon 3D volumes.

Every loader decodes its files once into a :class:`SegDataset` held in memory; a
training run then moves it to the device (the GPU when it fits) and draws augmented
batches there. The same config loads the same data: :func:`load_dataset` keeps the
last few decoded datasets, so the trials of a search decode their data only once.

Example:
    >>> cfg = resolve_data("synthetic", n_cases=8, size=32)
    >>> ds = load_dataset(cfg)
    >>> ds[0].image.shape, ds[0].label.shape, ds[0].case_id
    (torch.Size([1, 32, 32]), torch.Size([32, 32]), 'synth_0000')
"""
from __future__ import annotations

import importlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasseg.data.config import (
    AugmentConfig,
    DataConfig,
    SplitConfig,
    SyntheticConfig,
    resolve_data,
)
from nasseg.data.splits import sample_cases

if TYPE_CHECKING:  # torch is imported on first use, not with the configs
    from nasseg.data.base import SegDataset

_WHERE = {"augment_batch": "nasseg.data.augment", "Sample": "nasseg.data.base",
          "SegDataset": "nasseg.data.base", "BatchFeeder": "nasseg.data.batches",
          "sliding_window": "nasseg.data.batches", "make_split": "nasseg.data.splits",
          "sample_cases": "nasseg.data.splits", "split_dataset": "nasseg.data.splits"}
"""Imported on first use: data configs validate without torch."""


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'nasseg.data' has no attribute '{name}'")
    return getattr(importlib.import_module(_WHERE[name]), name)

_CACHE: OrderedDict[str, SegDataset] = OrderedDict()
_CACHE_SIZE = 2
NOT_DECODED = frozenset({"max_cases", "patch_size", "window_size", "resident", "split", "augment"})
"""The :class:`DataConfig` fields that do not change what a dataset decodes to (``max_cases``
samples the decoded set, see :func:`load_dataset`); every other field, including one added
later, is part of :func:`decode_key`, so a new field can never return a stale cached dataset."""


def decode_key(cfg: DataConfig) -> str:
    """The cache key of the decoded dataset ``cfg`` describes: every field of its model but
    :data:`NOT_DECODED`, with ``max_cases`` and the absolute ``path``.

    Example:
        >>> decode_key(resolve_data("synthetic", n_cases=8)) == decode_key(resolve_data("synthetic", n_cases=9))
        False
    """
    fields = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in NOT_DECODED}
    fields["max_cases"] = cfg.max_cases
    if cfg.path:
        fields["path"] = str(Path(cfg.path).resolve())
    return json.dumps(fields, sort_keys=True)


def load_dataset(cfg: DataConfig, *, cache: bool = True) -> SegDataset:
    """Decode the dataset ``cfg`` describes (on the CPU).

    Args:
        cfg: the data config.
        cache: reuse a dataset decoded earlier in this process with the same decoding
            settings (the 2 most recent are kept). Treat the returned tensors as read-only.

    Returns:
        The whole dataset; split it with :func:`make_split` and :meth:`SegDataset.subset`.

    Raises:
        DataError: the files are missing or broken (the message names the file).
    """
    if cfg.max_cases is not None and cfg.kind == "folder":
        # a seeded stratified sample of the whole decoded set, never the first N files
        # (Decathlon samples its file list by name before decoding, see data/decathlon.py;
        # synthetic cases are independent draws, so the first N already are a random sample)

        full = load_dataset(cfg.model_copy(update={"max_cases": None}), cache=cache)
        return full.subset(sample_cases(full, cfg.max_cases, cfg.split))
    key = decode_key(cfg)
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if cfg.kind == "synthetic":
        from nasseg.data.synthetic import make_synthetic as load  # lazy: torch; data configs load and validate without it
    elif cfg.kind == "folder":
        from nasseg.data.folder import load_folder as load  # lazy: torch; data configs load and validate without it
    elif cfg.kind == "nnunet":
        from nasseg.data.nnunet_raw import load_nnunet_raw as load  # lazy: torch; data configs load and validate without it
    else:
        from nasseg.data.decathlon import load_decathlon as load  # lazy: torch; data configs load and validate without it
    ds = load(cfg)
    if cache:
        _CACHE[key] = ds
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return ds


__all__ = [
    "AugmentConfig", "BatchFeeder", "DataConfig", "Sample", "SegDataset", "SplitConfig",
    "SyntheticConfig", "augment_batch", "decode_key", "load_dataset", "make_split", "resolve_data",
    "sample_cases", "sliding_window", "split_dataset",
]
