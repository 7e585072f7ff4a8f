"""Mask encodings: which values of a 2D mask file are which class.

One encoding holds for the whole dataset (``mask_encoding`` in the data config):

- ``index``: the value is the class index (0 = background), values 0..31;
- ``binary255``: 0 = background, 255 = foreground; stating it binarises every value at
  > 127 (masks resized with interpolation carry grey values on object edges);
- ``auto`` (default) detects one of the two. Detected 0/255 masks take only 0 and 255,
  and grey values only where they are what resizing leaves (:func:`check_grey_values`):
  a stray value (128 painted into a 0/255 mask) is refused, naming the file, the value
  and its pixel count, never thresholded into the lesion class without a word.

Example:
    >>> m = np.zeros((8, 8), np.int64); m[2:5, 2:5] = 255; m[6:8, 6:8] = 128
    >>> mask_encoding([([m], [Path("masks/a.png")])])
    Traceback (most recent call last):
    nasseg.errors.DataError: masks/a.png: mask value 128 (4 pixels, in 1 of 1 masks) is not a class of 0/255 masks (0 = background, 255 = foreground): it fills a region of its own; fix the mask, or state mask_encoding: binary255 to binarise every value at > 127
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from nasseg.data.labels import ValueCount, describe
from nasseg.errors import DataError

log = logging.getLogger(__name__)

MAX_CLASS_INDEX = 31
"""Masks whose values all lie in 0..31 are read as class-index masks."""
MIN_GREY_LEVELS = 8
"""Resizing leaves many grey levels; fewer distinct grey values than this are strays."""
FIX_GREY = "fix the mask, or state mask_encoding: binary255 to binarise every value at > 127"


def mask_encoding(masks: list[tuple[list[np.ndarray], list[Path]]], forced: str = "auto") -> tuple[str, int]:
    """Choose one mask encoding for the whole dataset.

    A mask fits ``binary255`` when it contains 255 and at least 75% of its pixels are
    exactly 0 or 255 (resized masks carry some interpolated grey values); it fits
    ``index`` when all its values lie in 0..31. An all-zero mask fits both. Detected
    0/255 masks must pass :func:`check_grey_values`.

    Args:
        masks: per case, its decoded mask arrays and their files.
        forced: ``auto``, ``binary255`` or ``index``.

    Returns:
        ``(encoding, num_classes)``; num_classes includes background (2 = binary).

    Raises:
        DataError: a mask fits no encoding, two masks fit different ones (both named), or
            a detected 0/255 mask holds a stray value (file, value and pixel count named).
    """
    first: dict[str, Path] = {}
    max_index = 1
    binary: list[tuple[np.ndarray, Path]] = []
    for arrays, paths in masks:
        for arr, path in zip(arrays, paths):
            values = np.unique(arr)
            fits = _fits(arr, values)
            if forced != "auto":
                if forced not in fits and len(values) > 1:
                    raise DataError(f"{path}: mask values {_show(values)} do not fit mask_encoding={forced}")
                fits = {forced}
            if not fits:
                raise DataError(
                    f"{path}: mask values {_show(values)} fit no encoding: expected 0/255 "
                    f"(binarised at > 127) or class indices 0..{MAX_CLASS_INDEX}"
                )
            if fits == {"binary255"}:
                first.setdefault("binary255", path)
                binary.append((arr, path))
            elif fits == {"index"} and values.max() > 1:
                first.setdefault("index", path)
            elif fits == {"index"}:
                first.setdefault("index01", path)
            if "index" in fits:
                max_index = max(max_index, int(values.max()))
    if "binary255" in first and ("index" in first or "index01" in first):
        other = first.get("index") or first["index01"]
        raise DataError(
            f"{other}: mask uses class indices but {first['binary255']} uses 0/255; "
            "all masks of a dataset must share one encoding"
        )
    if forced == "binary255":
        return "binary255", 2
    if "binary255" in first:
        check_grey_values(binary, sum(len(a) for a, _ in masks))
        return "binary255", 2
    return "index", max_index + 1


def check_grey_values(binary: list[tuple[np.ndarray, Path]], total: int) -> None:
    """Refuse values other than 0 and 255 in detected 0/255 masks unless they are what
    resizing with interpolation leaves.

    Interpolation leaves grey values on the edges of objects: in most masks, at many levels
    (dsb2018_96: 251 levels in 670 of 670 masks), and never filling a region (every grey
    pixel has a neighbour of another value). A grey value is accepted only when the masks
    holding grey values are at least half of the 0/255 masks, together hold at least
    :data:`MIN_GREY_LEVELS` levels, and the value fills no 3x3 region of its own.

    Args:
        binary: the ``(mask, file)`` pairs detected as 0/255 masks.
        total: the number of masks in the dataset (for the message).

    Raises:
        DataError: naming the first file holding the value, the value, its pixel count and
            the number of masks holding it.
    """
    counts: dict[int, ValueCount] = {}
    painted: dict[int, Path] = {}
    with_grey = 0
    for arr, path in binary:
        grey = (arr != 0) & (arr != 255)
        if not grey.any():
            continue
        with_grey += 1
        values, pixels = np.unique(arr[grey], return_counts=True)
        for v, n in zip(values.tolist(), pixels.tolist()):
            c = counts.setdefault(int(v), ValueCount())
            c.pixels, c.masks = c.pixels + int(n), c.masks + 1
            if not c.files:
                c.files.append(path)
        inside = _fills_region(arr) & grey
        for v in np.unique(arr[inside]).tolist():
            painted.setdefault(int(v), path)
    if not counts:
        return
    if painted:
        v = next(iter(painted))
        _refuse(v, counts[v], total, "it fills a region of its own", painted[v])
    if with_grey * 2 < len(binary) or len(counts) < MIN_GREY_LEVELS:
        v = max(counts, key=lambda k: counts[k].pixels)
        _refuse(v, counts[v], total, f"grey values are in {with_grey} of {len(binary)} masks at "
                f"{len(counts)} level{'s' * (len(counts) != 1)}, not edges left by resizing", counts[v].files[0])
    log.info("0/255 masks with grey edges from resizing (%d levels in %d of %d masks), binarised at > 127: %s",
             len(counts), with_grey, len(binary), describe(dict(list(counts.items())[:3]), total))


def _fills_region(arr: np.ndarray) -> np.ndarray:
    """Pixels whose 8 neighbours all hold the pixel's own value."""
    ring = np.ones((3,) * arr.ndim, bool)
    ring[(1,) * arr.ndim] = False
    lo = ndimage.minimum_filter(arr, footprint=ring, mode="nearest")
    hi = ndimage.maximum_filter(arr, footprint=ring, mode="nearest")
    return (lo == arr) & (hi == arr)


def _refuse(v: int, c: ValueCount, total: int, why: str, path: Path) -> None:
    raise DataError(f"{path}: mask value {v} ({c.pixels:,} pixel{'s' * (c.pixels != 1)}, in {c.masks} of {total} "
                    f"masks) is not a class of 0/255 masks (0 = background, 255 = foreground): {why}; {FIX_GREY}")


def _fits(arr: np.ndarray, values: np.ndarray) -> set[str]:
    if values.max() == 0:
        return {"binary255", "index"}
    fits = set()
    if values.max() == 255 and np.isin(arr, (0, 255)).mean() >= 0.75:
        fits.add("binary255")
    if values.min() >= 0 and values.max() <= MAX_CLASS_INDEX:
        fits.add("index")
    return fits


def _show(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:8])
    return "{" + shown + (", ..." if len(values) > 8 else "") + "}"


def decode_mask(masks: list[np.ndarray], encoding: str) -> np.ndarray:
    """One label map ``[H, W]`` uint8 from a case's mask files: 0/255 masks binarised at
    > 127 and merged by union; index masks merged, later files over earlier ones."""
    if encoding == "binary255":
        out = np.zeros(masks[0].shape, bool)
        for m in masks:
            out |= m > 127
        return out.astype(np.uint8)
    out = masks[0].copy()
    for m in masks[1:]:
        out = np.where(m > 0, m, out)
    return out.astype(np.uint8)
