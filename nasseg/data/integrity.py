"""Data integrity before splitting: exact and near-duplicate cases, class balance, likely groups.

A case that appears twice (or nearly so: another frame of the same scan, a re-save at another
size) must not put one copy in training and its twin in test. This module finds such cases
and joins them into *families*; :func:`nasseg.data.splits.split_dataset` keeps every family
on one side of the split (on by default).

How cases are compared (on the decoded images the split is made from, channels averaged):

- *exact duplicates*: identical decoded image arrays (SHA-256 of the float32 bytes);
- *2D near-duplicates*: the perceptual hash ``phash`` of ImageHash (Zauner 2010; the image
  min-max scaled to 8 bits, resized to 32 x 32, 2D DCT, the 8 x 8 lowest frequencies
  thresholded at their median: 64 bits);
- *3D near-duplicates*: the same construction one dimension up (:func:`volume_hash`): the
  volume block-averaged to 16^3, z-scored, 3D DCT, the 6^3 lowest frequencies thresholded
  at their median: 216 bits (64 bits, 4^3, could not tell apart different patients'
  hippocampus crops, which differ in as little as 2 of them).

Two cases are a near-duplicate *pair* when their hashes differ in at most ``threshold`` bits
(:data:`NEAR_BITS`); families are the connected components of all pairs and exact
duplicates. The 2D threshold of 10 bits was chosen on busi_256 (see
``reports/evidence/busi_duplicates.md``): every pair at distance <= 10 inspected was the
same scene (the same frame re-saved, or a neighbouring frame of one examination), while at
12 bits unrelated scans of similar anatomy begin to pair. phash distances are even (32 of
the 64 bits are set), so 10 and 11 are the same rule. The 3D threshold of 24 of 216 bits was
chosen on msd_hippocampus (260 different patients): the closest two different patients
differ in 28 bits; a copy with noise of 0.1 SD differs in at most 4, a copy shifted by one
voxel in at most 22; a copy shifted by 2 voxels *and* given noise of 0.3 SD (median 38) is
not found.

Hashes are cached per dataset content (``$NASSEG_CACHE_DIR/duplicates``, default
``~/.cache/nasseg``), so a search's trials hash their data once.

Example:
    >>> from nasseg.data import load_dataset, resolve_data  # doctest: +SKIP
    >>> rep = find_duplicates(load_dataset(resolve_data("../shared/data/busi_256")))  # doctest: +SKIP
    >>> len(rep.families), rep.n_cases_in_families  # doctest: +SKIP
    (120, 264)
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["Family", "DuplicateReport", "NEAR_BITS", "family_groups", "find_duplicates", "image_hash",
           "volume_hash"]

NEAR_BITS = {2: 10, 3: 24}
"""Largest Hamming distance of a near-duplicate pair, per spatial dimensionality (of 64 bits
in 2D, of 216 in 3D)."""
VERSION = 1  # bump when the hashes change: old cache files are then not read
_MEMO: dict[tuple[int, int], tuple[Any, DuplicateReport]] = {}
"""Reports of datasets alive in this process (a search's trials share one decoded dataset)."""


@dataclass
class Family:
    """Cases that are (near-)copies of one another.

    Attributes:
        cases: case ids, in dataset order.
        pairs: ``(case_a, case_b, hash distance, label Dice or None)`` of every linking pair
            (label Dice when both labels have the same shape; ``None`` otherwise).
        exact: every case of the family has the same decoded image.
    """

    cases: list[str]
    pairs: list[tuple[str, str, int, float | None]] = field(default_factory=list)
    exact: bool = False

    @property
    def max_distance(self) -> int:
        return max((p[2] for p in self.pairs), default=0)


@dataclass
class DuplicateReport:
    """Exact duplicates and near-duplicate families of one dataset.

    Attributes:
        case_ids: every case, in dataset order.
        families: near-duplicate families (exact duplicates included), largest first.
        threshold: the Hamming threshold used.
        method: how cases were hashed (``phash64`` or ``volume_dct216``).
        content_hash: hash of every case's decoded image (the cache key).
        exact_groups: sets of byte-identical images.
    """

    case_ids: list[str]
    families: list[Family]
    threshold: int
    method: str
    content_hash: str
    exact_groups: list[list[str]] = field(default_factory=list)

    @property
    def n_cases_in_families(self) -> int:
        return sum(len(f.cases) for f in self.families)

    def summary(self) -> dict[str, Any]:
        """What a split record stores: counts, threshold, method."""
        return {"families": len(self.families), "cases": self.n_cases_in_families,
                "exact_groups": len(self.exact_groups), "threshold_bits": self.threshold,
                "method": self.method, "content_hash": self.content_hash}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "exact": self.exact_groups, "family_list": [asdict(f) for f in self.families]}


def image_hash(image: np.ndarray) -> str:
    """64-bit perceptual hash (ImageHash ``phash``) of a ``[C, H, W]`` image, channels averaged.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(1, 64, 64))
        >>> image_hash(x) == image_hash(3 * x + 1)  # invariant to contrast and offset
        True
    """
    import imagehash  # lazy: imagehash imports scipy and PyWavelets; data configs load without them

    grey = np.asarray(image, dtype=np.float64).mean(axis=0)
    lo, hi = float(grey.min()), float(grey.max())
    u8 = np.zeros(grey.shape, np.uint8) if hi <= lo else np.round((grey - lo) / (hi - lo) * 255).astype(np.uint8)
    return _pack(imagehash.phash(Image.fromarray(u8)).hash.ravel())


def volume_hash(volume: np.ndarray, grid: int = 16, keep: int = 6) -> str:
    """216-bit perceptual hash of a ``[C, D, H, W]`` volume (phash in 3D).

    The channel mean is block-averaged to ``grid``^3 (area interpolation), z-scored, and
    transformed by a 3D DCT-II; the ``keep``^3 lowest-frequency coefficients are compared
    with their median (bit = above). Invariant to contrast and offset, robust to noise and
    to shifts of a few voxels.

    Example:
        >>> v = np.random.default_rng(0).normal(size=(1, 20, 24, 20))
        >>> volume_hash(v) == volume_hash(2 * v - 5)
        True
    """
    import scipy.fft  # lazy: scipy; data configs load without it
    import torch  # lazy: torch; data configs load and validate without it

    v = torch.as_tensor(np.asarray(volume, dtype=np.float32)).mean(0)[None, None]
    small = torch.nn.functional.adaptive_avg_pool3d(v, grid)[0, 0].double().numpy()
    small = (small - small.mean()) / max(float(small.std()), 1e-12)
    low = scipy.fft.dctn(small, type=2)[:keep, :keep, :keep].ravel()
    return _pack(low > np.median(low))


def _pack(bits: np.ndarray) -> str:
    """Hex text of a bit vector (``np.packbits``; the cache and the reports store it)."""
    return np.packbits(np.asarray(bits, bool)).tobytes().hex()


def _cache_dir() -> Path:
    """``$NASSEG_CACHE_DIR/duplicates``, beside the preprocessing cache (which owns the root)."""
    from nasseg.data.preprocess import cache_root  # lazy: torch; data configs load and validate without it

    return cache_root().parent / "duplicates"


def _case_arrays(ds: Any):
    for i in range(len(ds)):
        yield np.ascontiguousarray(np.asarray(ds.images[i].detach().cpu(), dtype=np.float32))


def _hashes(ds: Any, use_cache: bool) -> tuple[list[str], list[str], str]:
    """Exact (SHA-256) and perceptual hash of every case, and the dataset's content hash.

    The content hash is the hash of every case's exact hash, or, for volumes read from the
    preprocessing cache (``ds.info["cache"]``, a folder named by its files' identity and its
    plan), that folder's name: then a cache hit reads no volume at all.
    """
    preprocessed = (ds.info or {}).get("cache") if use_cache else None
    exact: list[str] = []
    if preprocessed:
        content = hashlib.sha256(f"v{VERSION}|{ds.spatial_dims}|{Path(preprocessed).name}".encode()).hexdigest()[:16]
    else:
        total = hashlib.sha256(f"v{VERSION}|{ds.spatial_dims}".encode())
        for a in _case_arrays(ds):
            exact.append(hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest()[:20])
            total.update(exact[-1].encode())
        content = total.hexdigest()[:16]
    path = _cache_dir() / f"{content}.json"
    if use_cache and path.is_file():
        try:
            held = json.loads(path.read_text())
            hashes, known = list(held["hashes"]), exact or list(held["exact"])
            if len(hashes) == len(known) == len(ds) and all(isinstance(h, str) for h in hashes + known):
                return known, hashes, content
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a broken cache file is recomputed and replaced
    fn = image_hash if ds.spatial_dims == 2 else volume_hash
    perceptual = []
    for a in _case_arrays(ds):
        if preprocessed:  # not read above
            exact.append(hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest()[:20])
        perceptual.append(fn(a))
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"hashes": perceptual, "exact": exact}))
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs the hashing next time
    return exact, perceptual, content


def _close_pairs(hashes: list[str], threshold: int) -> list[tuple[int, int, int]]:
    """``(i, j, distance)`` with ``i < j`` for every pair within ``threshold`` bits."""
    h = np.array([np.frombuffer(bytes.fromhex(x), np.uint8) for x in hashes])
    out = []
    for start in range(0, len(h), 256):
        block = h[start:start + 256]
        dist = np.bitwise_count(block[:, None, :] ^ h[None, :, :]).sum(-1, dtype=np.int64)
        for a, j in zip(*np.nonzero(dist <= threshold), strict=True):
            i = start + int(a)
            if i < j:
                out.append((i, int(j), int(dist[a, j])))
    return out


def _label_dice(ds: Any, i: int, j: int) -> float | None:
    a, b = np.asarray(ds.labels[i]), np.asarray(ds.labels[j])
    if a.shape != b.shape:
        return None
    fa, fb = a > 0, b > 0
    denom = int(fa.sum()) + int(fb.sum())
    return 1.0 if denom == 0 else round(2.0 * int((fa & fb).sum()) / denom, 4)


def find_duplicates(ds: Any, threshold: int | None = None, *, use_cache: bool = True) -> DuplicateReport:
    """Exact duplicates and near-duplicate families of a loaded dataset.

    Args:
        ds: a :class:`~nasseg.data.base.SegDataset` (2D or 3D).
        threshold: largest Hamming distance of a near-duplicate pair (default
            :data:`NEAR_BITS` for the dataset's dimensionality; 0 = exact hash matches only).
        use_cache: read and write the perceptual hashes under ``$NASSEG_CACHE_DIR/duplicates``.

    Returns:
        The report; families are connected components of near pairs and exact duplicates.
    """
    ids = list(ds.case_ids)
    t = NEAR_BITS[ds.spatial_dims] if threshold is None else int(threshold)
    held = _MEMO.get((id(ds), t))
    if use_cache and held is not None and held[0]() is ds:
        return held[1]
    exact, perceptual, content = _hashes(ds, use_cache)
    by_digest: dict[str, list[int]] = {}
    for i, d in enumerate(exact):
        by_digest.setdefault(d, []).append(i)
    links = [(m[0], k, 0) for m in by_digest.values() for k in m[1:]]
    links += [p for p in _close_pairs(perceptual, t) if exact[p[0]] != exact[p[1]]]
    roots = _components(len(ids), [(i, j) for i, j, _ in links])
    members: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        members.setdefault(r, []).append(i)
    families = []
    for m in members.values():
        if len(m) < 2:
            continue
        inside = set(m)
        pairs = [(ids[i], ids[j], d, _label_dice(ds, i, j)) for i, j, d in sorted(links) if i in inside]
        families.append(Family([ids[i] for i in m], pairs, exact=len({exact[i] for i in m}) == 1))
    families.sort(key=lambda f: (-len(f.cases), f.cases[0]))
    exact_groups = [[ids[i] for i in m] for m in by_digest.values() if len(m) > 1]
    report = DuplicateReport(ids, families, t, "phash64" if ds.spatial_dims == 2 else "volume_dct216",
                             content, exact_groups)
    if use_cache:
        for key in [k for k, v in _MEMO.items() if v[0]() is None]:
            del _MEMO[key]
        _MEMO[(id(ds), t)] = (weakref.ref(ds), report)
    return report


def family_groups(report: DuplicateReport, groups: list[str] | None = None) -> list[str]:
    """One group label per case joining near-duplicate families with declared ``groups``.

    Cases linked by a family or by a shared declared group get one label (connected
    components of both relations), so neither a family nor a declared group is split.

    Example:
        >>> rep = DuplicateReport(["a", "b", "c", "d"], [Family(["b", "c"])], 10, "phash64", "x")
        >>> family_groups(rep, ["p", "p", "q", "r"])
        ['a', 'a', 'a', 'd']
    """
    ids = report.case_ids
    index = {c: i for i, c in enumerate(ids)}
    links = [(index[f.cases[0]], index[c]) for f in report.families for c in f.cases[1:]]
    if groups is not None:
        first: dict[str, int] = {}
        links += [(first.setdefault(g, i), i) for i, g in enumerate(groups)]
    return [ids[r] for r in _components(len(ids), links)]


def _components(n: int, links: list[tuple[int, int]]) -> list[int]:
    """The smallest member index of each item's connected component (union-find)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in links:
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(n)]
