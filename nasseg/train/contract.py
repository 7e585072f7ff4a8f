"""What a trained network needs to predict, stored with its checkpoint (``inference`` in
``config.json`` and ``checkpoint.pt``, and so in every export's metadata).

As nnU-Net's ``plans.json`` and ``dataset.json`` travel with its checkpoints, a nasseg
network carries its input contract, its class names, its preprocessing plan (3D: crop,
per-channel normalisation kinds and CT statistics, target spacing) and the content hashes
of the cases it was trained, selected and tested on, so that ``nasseg predict`` and
``nasseg evaluate`` never read the training folder (which may have changed, or be gone).

Example:
    >>> contract = inference_contract(ds, split, divisor=8, size=(96, 96), window=None)  # doctest: +SKIP
    >>> contract["class_names"], contract["size_multiple"]                                # doctest: +SKIP
    (['background', 'lesion'], 8)
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

HASH_CHARS = 16
"""Hex characters kept of each case's SHA-256 (64 bits: collisions are not a concern)."""


def inference_contract(ds: Any, split: dict[str, Any], *, divisor: int, size: int | Sequence[int] | None,
                       window: Sequence[int] | None) -> dict[str, Any]:
    """The ``inference`` section of a run's config.

    Args:
        ds: the training :class:`~nasseg.data.base.SegDataset`.
        split: case ids per partition (``train``, ``val``, ``test``).
        divisor: network input sizes must be multiples of this.
        size: 2D: the size images were resized to (``None`` = native size).
        window: 3D: the sliding window of evaluation (``None`` = whole cases).

    Returns:
        ``spatial_dims``, ``in_channels``, ``out_channels``, ``class_names``,
        ``size_multiple``, ``size``, ``window``, ``normalisation`` (``zscore_per_case``
        in 2D, ``per_channel_by_modality`` in 3D), ``preprocessing`` (3D: the settings
        of :func:`nasseg.data.preprocess.load_preprocessed`, CT statistics included),
        ``modalities`` and ``case_hashes`` (partition -> content hashes).
    """
    pre = ds.info.get("preprocessing")
    if isinstance(size, int):
        size = (size, size)
    return {"spatial_dims": ds.spatial_dims, "in_channels": ds.in_channels, "out_channels": ds.out_channels,
            "class_names": list(ds.class_names), "size_multiple": int(divisor),
            "size": list(size) if size else None, "window": list(window) if window else None,
            "normalisation": "per_channel_by_modality" if pre else "zscore_per_case",
            "preprocessing": pre, "modalities": ds.info.get("modalities"),
            "case_hashes": split_hashes(ds, split)}


def split_hashes(ds: Any, split: dict[str, Any]) -> dict[str, list[str]]:
    """Content hashes of each partition's image files (cases without a file are skipped)."""
    source = dict(zip(ds.case_ids, ds.sources or []))
    return {part: [h for h in (file_hash(source.get(c, "")) for c in split.get(part) or []) if h]
            for part in ("train", "val", "test")}


def file_hash(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes (first :data:`HASH_CHARS` hex characters), so a case is
    recognised whatever its name or folder; ``None`` for no file (synthetic data).
    Re-encoding the image (PNG to BMP) gives another hash."""
    p = Path(path) if path else None
    if p is None or not p.is_file():
        return None
    st = p.stat()
    return _hash(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=65536)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key: a changed file is hashed again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:HASH_CHARS]
