"""Train/validation splits: seeded random, k-fold, or read from a file.

The split a run actually used is returned as a plain dict (``method``, ``seed``,
``train``, ``val``) and written as ``split.json`` next to its results; that file can
be passed back as ``split.method="file"`` to reproduce it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nasseg.data.config import SplitConfig
from nasseg.errors import DataError


def make_split(case_ids: list[str], cfg: SplitConfig) -> dict[str, Any]:
    """Divide ``case_ids`` into training and validation ids.

    ``random``: shuffle with ``seed`` and hold out ``round(val_fraction * N)`` cases
    (at least 1). ``kfold``: shuffle with ``seed``, cut into ``k`` near-equal folds and
    hold out fold ``fold``. ``file``: read ``{"train": [...], "val": [...]}``.

    Args:
        case_ids: ids of the loaded cases.
        cfg: the split settings.

    Returns:
        ``{"method", "seed", "train": [ids], "val": [ids]}`` (plus ``k``/``fold`` or ``file``);
        ids keep the dataset's order within each list.

    Raises:
        DataError: too few cases, a bad fold, or a split file that is unreadable,
            malformed, overlapping or naming unknown cases.

    Example:
        >>> s = make_split([f"c{i}" for i in range(10)], SplitConfig(seed=1))
        >>> len(s["train"]), len(s["val"])
        (7, 3)
    """
    n = len(case_ids)
    if n < 2:
        raise DataError(f"a split needs at least 2 cases, got {n}")
    order = {c: i for i, c in enumerate(case_ids)}
    out: dict[str, Any] = {"method": cfg.method, "seed": cfg.seed}
    if cfg.method == "file":
        train, val = _read_split_file(Path(cfg.file or ""), order)
        out = {"method": "file", "seed": None, "file": str(cfg.file)}
    else:
        perm = np.random.default_rng(cfg.seed).permutation(n)
        if cfg.method == "random":
            n_val = min(n - 1, max(1, round(cfg.val_fraction * n)))
            held = set(perm[:n_val].tolist())
        else:
            if cfg.fold >= cfg.k:
                raise DataError(f"split.fold={cfg.fold} but k={cfg.k} folds (0..{cfg.k - 1})")
            if cfg.k > n:
                raise DataError(f"split.k={cfg.k} folds but only {n} cases")
            held = set(np.array_split(perm, cfg.k)[cfg.fold].tolist())
            out.update(k=cfg.k, fold=cfg.fold)
        train = [c for i, c in enumerate(case_ids) if i not in held]
        val = [c for i, c in enumerate(case_ids) if i in held]
    out.update(train=train, val=val)
    return out


def _read_split_file(path: Path, order: dict[str, int]) -> tuple[list[str], list[str]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable split file ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("train"), list) or not isinstance(data.get("val"), list):
        raise DataError(f"{path}: a split file needs 'train' and 'val' lists of case ids")
    train, val = [str(c) for c in data["train"]], [str(c) for c in data["val"]]
    unknown = [c for c in train + val if c not in order]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} case ids not in the dataset, e.g. {unknown[:3]}")
    both = set(train) & set(val)
    if both:
        raise DataError(f"{path}: cases in both train and val, e.g. {sorted(both)[:3]}")
    if not train or not val:
        raise DataError(f"{path}: 'train' and 'val' must both be non-empty")
    return sorted(train, key=order.__getitem__), sorted(val, key=order.__getitem__)
