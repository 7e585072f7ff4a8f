"""Label sets are declared, never guessed from one stray value.

Where a dataset's classes come from, in order:

1. ``labels:`` in the data config (a list of names, value ``i`` = ``labels[i]``),
2. ``dataset.json`` ``labels`` (Decathlon; read by :mod:`nasseg.data.decathlon`),
3. the values seen across all masks, reported once with their counts, and accepted only
   when they are the contiguous indices ``0..K-1``: ``{0, 1, 7}`` (one stray pixel of 7
   in one mask) would silently make an 8-class problem whose absent classes score Dice
   1.0, so it is refused, naming the file and the value.

A mask value outside the declared set is an error naming the file and the value, unless
the config opts in with ``unknown_labels: background`` (mapped to 0, with one warning).
A training split whose masks are all empty is refused (:func:`check_trainable`): every
network "scores" on it without learning anything.

Example:
    >>> counts = count_values([(np.array([[0, 1], [1, 7]]), Path("m/a.png"))])
    >>> declare_labels(counts, None, "error", where="m")
    Traceback (most recent call last):
    nasseg.errors.DataError: m/a.png: mask value 7 (1 pixel, in 1 of 1 masks) is not a class index next to 0..1: ...
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasseg.errors import DataError

log = logging.getLogger(__name__)

FIX = ("declare the classes with `labels: [background, ...]` in the data config, fix the mask, "
       "or set `unknown_labels: background` to map unknown values to background")


@dataclass
class ValueCount:
    """How often one mask value occurs: pixels, masks, and the first file holding it."""

    pixels: int = 0
    masks: int = 0
    files: list[Path] = field(default_factory=list)


def count_values(masks: list[tuple[np.ndarray, Path]]) -> dict[int, ValueCount]:
    """Pixel and mask counts of every value across ``(decoded mask, file)`` pairs."""
    counts: dict[int, ValueCount] = {}
    for arr, path in masks:
        values, pixels = np.unique(arr, return_counts=True)
        for v, n in zip(values.tolist(), pixels.tolist()):
            c = counts.setdefault(int(v), ValueCount())
            c.pixels += int(n)
            c.masks += 1
            if len(c.files) < 3:
                c.files.append(path)
    counts.setdefault(0, ValueCount())
    return dict(sorted(counts.items()))


def describe(counts: dict[int, ValueCount], total_masks: int) -> str:
    """``0: 1,024 px in 8/8 masks; 1: 96 px in 3/8 masks``."""
    return "; ".join(f"{v}: {c.pixels:,} px in {c.masks}/{total_masks} masks" for v, c in counts.items())


def declare_labels(counts: dict[int, ValueCount], declared: list[str] | None, unknown: str, *,
                   where: str, total: int | None = None,
                   binary_names: list[str] | None = None) -> tuple[list[str], list[int]]:
    """Decide the class names and which seen values are unknown.

    Args:
        counts: :func:`count_values` of every decoded mask (class indices).
        declared: ``labels`` from the config, or ``None`` to infer from ``counts``.
        unknown: ``error`` or ``background`` (what to do with a value outside the set).
        where: the dataset (for messages).
        total: number of masks (default: the most masks any value occurs in).
        binary_names: default names when the inferred set is ``{0, 1}`` (or all-empty).

    Returns:
        ``(class_names, unknown_values)``: the names (background first) and the seen values
        to map to background (empty unless ``unknown == "background"``).

    Raises:
        DataError: a value outside the declared set, or inferred values that are not
            contiguous; the message names the first file holding the value.
    """
    total = total or max((c.masks for c in counts.values()), default=0)
    if declared is not None:
        names = list(declared)
        if len(names) < 2:
            raise DataError(f"{where}: labels: {names} needs at least two classes (background first)")
        return names, _refuse_or_map(counts, len(names), unknown, where, total, inferred=False)
    k = 0
    while k in counts and (k == 0 or counts[k].pixels > 0):
        k += 1  # the contiguous run 0, 1, 2, ... of values present
    k = max(k, 2)
    names = (binary_names or ["background", "foreground"]) if k == 2 else \
        ["background"] + [f"class_{i}" for i in range(1, k)]
    bad = _refuse_or_map(counts, k, unknown, where, total, inferred=True)
    log.warning("%s: classes inferred from the mask values (declare `labels:` in the data config to fix "
                "them): %s", where, describe({v: c for v, c in counts.items() if v < k}, total))
    return names, bad


def _refuse_or_map(counts: dict[int, ValueCount], k: int, unknown: str, where: str, total: int,
                   inferred: bool) -> list[int]:
    bad = [v for v, c in counts.items() if (v < 0 or v >= k) and c.pixels > 0]
    if not bad:
        return []
    if unknown != "background":
        v = bad[0]
        c = counts[v]
        what = f"a class index next to 0..{k - 1}" if inferred else f"one of the declared labels 0..{k - 1}"
        raise DataError(f"{c.files[0]}: mask value {v} ({c.pixels:,} pixel{'s' * (c.pixels != 1)}, in "
                        f"{c.masks} of {total} masks) is not {what}: {FIX}")
    log.warning("%s: mask values %s are not labels 0..%d; mapped to background (unknown_labels: background): %s",
                where, bad, k - 1, describe({v: counts[v] for v in bad}, total))
    return bad


def map_unknown(label: np.ndarray, unknown_values: list[int]) -> np.ndarray:
    """``label`` with every value in ``unknown_values`` set to 0 (background)."""
    if not unknown_values:
        return label
    return np.where(np.isin(label, unknown_values), 0, label).astype(label.dtype)


def check_trainable(labels: list, case_ids: list[str], where: str) -> None:
    """Refuse training on cases whose masks hold no foreground pixel at all.

    Args:
        labels: the training cases' label tensors (or arrays).
        case_ids: their ids (for the message).
        where: the dataset (for the message).

    Raises:
        DataError: every mask is empty.

    Example:
        >>> check_trainable([np.zeros((4, 4))], ["a"], "data")
        Traceback (most recent call last):
        nasseg.errors.DataError: data: all 1 training masks are empty (no foreground pixel), so there is nothing to learn and every network would score the same; check the mask files and mask_encoding (0/255 masks are binarised at > 127)
    """
    if any(bool((lab > 0).any()) for lab in labels):
        return
    raise DataError(f"{where}: all {len(case_ids)} training masks are empty (no foreground pixel), so there "
                    "is nothing to learn and every network would score the same; check the mask files and "
                    "mask_encoding (0/255 masks are binarised at > 127)")
