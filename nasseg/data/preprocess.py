"""Preprocess 3D scans once into a memory-mapped cache, as nnU-Net does (Isensee et al.,
Nature Methods 2021): crop to the non-zero region, normalise each channel by its modality,
resample to the planned spacing.

- Crop: the bounding box of voxels non-zero in any channel (MONAI's bounding box).
- Normalisation per channel, by the Decathlon ``modality`` map: **CT** channels are
  clipped to the 0.5 / 99.5 percentiles of foreground (label > 0) intensities over the
  dataset, then z-scored with that foreground's mean and std; every other modality (MRI,
  ...) is z-scored per volume over its non-zero voxels, and voxels outside them are 0.
- Resampling to ``target_spacing``: images trilinear, labels nearest
  (:func:`nasseg.data.geometry.resample`); the geometry of every case is recorded
  (:class:`~nasseg.data.geometry.CaseMeta`) so predictions map back to the scan.

The result is written once per (data, preprocessing settings) under
``$NASSEG_CACHE_DIR/preprocessed`` (default ``~/.cache/nasseg``) as ``.npy`` files that
training opens memory-mapped, one window at a time (:class:`MappedVolumes`): a second run
starts in seconds and its memory does not grow with the dataset. The key is the
dataset's identity (:func:`nasseg.data.identity.files_identity`: names, sizes and the first
and last 64 KiB of the files, so a hundred GB are keyed in milliseconds) plus a hash of the
preprocessing settings.

A damaged cache (a truncated ``.npy``, an index entry missing, an unreadable index) is found
when it is opened (:func:`open_cache`) and rebuilt, with one line saying so.

Shapes: images ``[C, X, Y, Z]`` float32, labels ``[X, Y, Z]`` uint8.

Example:
    >>> ds = load_preprocessed(pairs, ["MRI"], class_names, target_spacing=(1.0, 1.0, 1.0))  # doctest: +SKIP
    >>> ds.info["metas"]["hippocampus_001"].crop  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nasseg.data.geometry import CaseMeta, nonzero_box, resample, resampled_shape
from nasseg.data.identity import files_identity
from nasseg.data.base import SegDataset
from nasseg.errors import DataError

log = logging.getLogger(__name__)

VERSION = 1
FG_SAMPLES = 10000  # foreground voxel positions kept per class and case (for oversampling)


def cache_root() -> Path:
    """``$NASSEG_CACHE_DIR/preprocessed`` (default ``~/.cache/nasseg/preprocessed``)."""
    root = os.environ.get("NASSEG_CACHE_DIR") or Path.home() / ".cache" / "nasseg"
    return Path(root) / "preprocessed"


def modality_kind(name: str) -> str:
    """``"ct"`` for a CT channel, else ``"zscore"`` (MRI and anything else)."""
    return "ct" if name.strip().upper() == "CT" else "zscore"


def normalise_channels(image: np.ndarray, kinds: Sequence[str],
                       ct_stats: dict[int, dict[str, float]] | None = None) -> np.ndarray:
    """Normalise ``image [C, *S]`` channel by channel (see the module docstring).

    Args:
        image: any numeric dtype.
        kinds: ``"ct"`` or ``"zscore"`` per channel.
        ct_stats: per CT channel ``{"lo", "hi", "mean", "std"}`` over the dataset's foreground.

    Returns:
        float32 ``[C, *S]``.

    Example:
        >>> x = np.array([[[0.0, 2.0, 4.0]], [[0.0, 10.0, 30.0]]])
        >>> normalise_channels(x, ["zscore", "zscore"]).round(3).tolist()
        [[[0.0, -1.0, 1.0]], [[0.0, -1.0, 1.0]]]
    """
    out = np.empty(image.shape, dtype=np.float32)
    mask = np.any(image != 0, axis=0)
    for c, kind in enumerate(kinds):
        x = image[c].astype(np.float32)
        if kind == "ct":
            s = (ct_stats or {}).get(c)
            if s is None:
                raise ValueError(f"channel {c} is CT but no dataset statistics were given")
            out[c] = (np.clip(x, s["lo"], s["hi"]) - s["mean"]) / max(s["std"], 1e-6)
        else:
            vals = x[mask] if mask.any() else x.ravel()
            mean, std = float(vals.mean(dtype=np.float64)), float(vals.std(dtype=np.float64))
            out[c] = np.where(mask, (x - mean) / max(std, 1e-6), 0.0)
    return out


def ct_statistics(pairs: Sequence[tuple[Path, Path]], kinds: Sequence[str], read_case, seed: int = 0
                  ) -> dict[int, dict[str, float]]:
    """Foreground intensity statistics of the CT channels over the dataset (nnU-Net's
    CTNormalization): 0.5/99.5 percentiles, then mean and std of the clipped values,
    from up to 10,000 foreground voxels per case."""
    ct = [c for c, k in enumerate(kinds) if k == "ct"]
    if not ct:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[int, list[np.ndarray]] = {c: [] for c in ct}
    for image_path, label_path in pairs:
        image, label, _, _ = read_case(image_path, label_path)
        fg = label > 0
        for c in ct:
            v = image[c][fg]
            if v.size > FG_SAMPLES:
                v = rng.choice(v, FG_SAMPLES, replace=False)
            samples[c].append(v.astype(np.float64))
    stats = {}
    for c, parts in samples.items():
        v = np.concatenate(parts) if parts else np.zeros(1)
        lo, hi = np.percentile(v, [0.5, 99.5]) if v.size else (0.0, 0.0)
        clipped = np.clip(v, lo, hi)
        stats[c] = {"lo": float(lo), "hi": float(hi), "mean": float(clipped.mean()), "std": float(clipped.std())}
    return stats


def preprocess_case(image: np.ndarray, label: np.ndarray, spacing: tuple[float, ...], affine: np.ndarray,
                    kinds: Sequence[str], target_spacing: tuple[float, ...], case_id: str,
                    ct_stats: dict[int, dict[str, float]] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, CaseMeta]:
    """Crop, normalise and resample one case.

    Args:
        image: ``[C, *S]`` raw intensities; label: ``[*S]`` class indices.
        spacing, affine: from the NIfTI header.

    Returns:
        ``(image [C, *S'] float32, label [*S'] uint8, meta)``.
    """
    shape = tuple(int(n) for n in label.shape)
    box = nonzero_box(image)
    sl = tuple(slice(lo, hi) for lo, hi in box)
    image = normalise_channels(image[(slice(None), *sl)], kinds, ct_stats)
    label = label[sl]
    size = resampled_shape(tuple(label.shape), spacing, target_spacing)
    img_t = resample(torch.from_numpy(image), size, labels=False)
    lab_t = resample(torch.from_numpy(np.ascontiguousarray(label, dtype=np.uint8))[None], size, labels=True)[0]
    meta = CaseMeta(case_id, shape, tuple(float(s) for s in spacing), np.asarray(affine, dtype=float).tolist(),
                    box, size, tuple(float(t) for t in target_spacing))
    return img_t.numpy(), lab_t.numpy().astype(np.uint8), meta


class MappedVolumes(Sequence):
    """Cached ``.npy`` volumes, each opened memory-mapped only while it is used.

    ``vols[i]`` is a read-only tensor backed by the file; once the caller drops it the
    mapping closes, so pages read by earlier patches do not stay in this process's
    memory. ``subset`` and ``to("cpu")`` keep the laziness.

    Example:
        >>> vols = MappedVolumes([Path("a.npy")], [(1, 4, 4, 4)])  # doctest: +SKIP
        >>> vols[0][:, :2].shape  # doctest: +SKIP
        torch.Size([1, 2, 4, 4])
    """

    def __init__(self, paths: Sequence[Path], shapes: Sequence[tuple[int, ...]]) -> None:
        self.paths, self._shapes = list(paths), [tuple(s) for s in shapes]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return MappedVolumes(self.paths[i], self._shapes[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only memmap: never written
            return torch.from_numpy(np.load(self.paths[i], mmap_mode="r"))

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    @property
    def shape_list(self) -> list[tuple[int, ...]]:
        return list(self._shapes)

    def subset(self, idx: Sequence[int]) -> MappedVolumes:
        return MappedVolumes([self.paths[i] for i in idx], [self._shapes[i] for i in idx])

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def load(self, device: torch.device | str) -> list[Tensor]:
        """Read every volume into memory on ``device``."""
        return [t.to(device, copy=True) for t in self]


def load_preprocessed(pairs: Sequence[tuple[Path, Path]], read_case, *, kinds: Sequence[str],
                      class_names: list[str], target_spacing: tuple[float, ...], name: str = "data",
                      label_settings: dict | None = None, case_id=None,
                      ct_stats: dict[int, dict[str, float]] | None = None):
    """Open (building it first if needed) the preprocessed cache of ``pairs``.

    Args:
        pairs: (image, label) files, in case order.
        read_case: ``read_case(image_path, label_path) -> (image [C, *S], label [*S],
            spacing, affine)``, validating the files (raises ``DataError``).
        kinds: normalisation per channel (:func:`modality_kind`).
        class_names: label classes, background first.
        target_spacing: resample to this voxel size.
        name: dataset name (the cache folder's prefix).
        label_settings: how ``read_case`` treats labels (part of the cache key).
        case_id: ``case_id(image_path) -> str`` (default: the file name without its extension;
            nnU-Net raw data: without the ``_0000`` channel suffix too).
        ct_stats: CT statistics to normalise with instead of this data's own (a trained
            network's, so other data is fed as its training data was; part of the cache key).

    Returns:
        A :class:`~nasseg.data.base.SegDataset` whose images, labels and native labels
        (the unprocessed label maps, scored against) are :class:`MappedVolumes`; ``spacing``
        is each scan's voxel size; ``info`` holds ``metas`` (case id -> CaseMeta), ``fg``
        (case id -> {class: positions}), ``cache`` and ``preprocessing``.
    """
    settings = {"version": VERSION, "kinds": list(kinds), "target_spacing": [float(t) for t in target_spacing],
                "image_resampling": "trilinear", "label_resampling": "nearest", "crop": "nonzero",
                "labels": label_settings or {}}
    if ct_stats:
        settings["given_ct_stats"] = {str(k): v for k, v in ct_stats.items()}
    files = [p for pair in pairs for p in pair]
    plan_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_root() / f"{name}-{files_identity(files)}-{plan_hash}"
    expected = [(case_id or _case_id)(image) for image, _ in pairs]
    if not (folder / "index.json").is_file():
        _build(folder, pairs, read_case, kinds, target_spacing, settings, case_id or _case_id)
    try:
        index, metas, fg = open_cache(folder, expected)
    except CacheDamaged as err:
        log.warning("%s: the preprocessing cache is damaged (%s); rebuilding it", folder, err)
        _discard(folder)
        _build(folder, pairs, read_case, kinds, target_spacing, settings, case_id or _case_id)
        index, metas, fg = open_cache(folder, expected)
    ids = [c["case_id"] for c in index["cases"]]
    shapes = [tuple(metas[c].resampled_shape) for c in ids]
    channels = index["channels"]
    return SegDataset(
        kind="decathlon", spatial_dims=3, in_channels=channels, num_classes=len(class_names), case_ids=ids,
        images=MappedVolumes([folder / f"{c}_img.npy" for c in ids], [(channels, *s) for s in shapes]),
        labels=MappedVolumes([folder / f"{c}_seg.npy" for c in ids], shapes),
        sources=[str(p[0]) for p in pairs], class_names=class_names,
        native_labels=MappedVolumes([folder / f"{c}_orig.npy" for c in ids], [metas[c].shape for c in ids]),
        spacing=[tuple(metas[c].spacing) for c in ids],
        info={"cache": str(folder), "preprocessing": index["settings"], "metas": metas, "fg": fg,
              "shapes": [list(metas[c].shape) for c in ids], "spacings": [list(metas[c].spacing) for c in ids]},
    )


class CacheDamaged(Exception):
    """A cache folder whose index or files do not hold what the index says (the reason)."""


def open_cache(folder: Path, expected: Sequence[str]) -> tuple[dict, dict[str, CaseMeta], dict]:
    """Read a cache folder's index and check every file it names before anything uses them.

    Checked: ``index.json`` parses and lists exactly the ``expected`` case ids, in order;
    each case's ``_img``/``_seg``/``_orig`` ``.npy`` file opens (memory-mapped, so a
    truncated file is caught without reading it) with the shape and dtype the index
    implies; each ``_fg.npz`` reads.

    Returns:
        ``(index, metas, fg)``: the index, case id -> :class:`CaseMeta`, and case id ->
        {class: foreground positions}.

    Raises:
        CacheDamaged: naming the file and what is wrong with it.
    """
    try:
        index = json.loads((folder / "index.json").read_text())
        metas = {c["case_id"]: CaseMeta.from_dict(c) for c in index["cases"]}
        channels = int(index["channels"])
        ids = [c["case_id"] for c in index["cases"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheDamaged(f"index.json unreadable: {type(err).__name__}: {err}") from None
    if ids != list(expected):
        missing = [c for c in expected if c not in metas]
        raise CacheDamaged(f"index.json lists {len(ids)} cases for {len(expected)} in the data"
                           + (f" (no entry for {missing[0]})" if missing else ""))
    fg = {}
    for c in ids:
        meta = metas[c]
        for suffix, shape, dtype in (("img", (channels, *meta.resampled_shape), np.float32),
                                     ("seg", tuple(meta.resampled_shape), np.uint8),
                                     ("orig", tuple(meta.shape), np.uint8)):
            path = folder / f"{c}_{suffix}.npy"
            try:
                arr = np.load(path, mmap_mode="r")
                ok = tuple(arr.shape) == tuple(shape) and arr.dtype == dtype
                del arr
            except (OSError, ValueError, EOFError) as err:
                raise CacheDamaged(f"{path.name}: {type(err).__name__}: {err}") from None
            if not ok:
                raise CacheDamaged(f"{path.name}: not the {shape} {np.dtype(dtype).name} array the index names")
        try:
            with np.load(folder / f"{c}_fg.npz") as z:
                fg[c] = {int(k[1:]): z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise CacheDamaged(f"{c}_fg.npz: {type(err).__name__}: {err}") from None
    return index, metas, fg


def _discard(folder: Path) -> None:
    """Move a damaged cache folder out of the way (renamed first, so that a concurrent
    builder can put a new one in place at once), then delete it."""
    aside = folder.with_name(f".{folder.name}-damaged-{os.getpid()}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _build(folder: Path, pairs, read_case, kinds, target_spacing, settings, case_id=None) -> None:
    """Preprocess every case into a temporary folder, then move it into place (a
    concurrent builder of the same cache loses the race harmlessly)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        given = settings.get("given_ct_stats")
        ct_stats = {int(k): v for k, v in given.items()} if given else ct_statistics(pairs, kinds, read_case)
        rng = np.random.default_rng(0)
        cases, channels = [], None
        for image_path, label_path in pairs:
            image, label, spacing, affine = read_case(image_path, label_path)
            if len(kinds) != image.shape[0]:
                raise DataError(f"{image_path}: {image.shape[0]} channels but dataset.json's modality "
                                f"map names {len(kinds)}")
            channels = image.shape[0]
            cid = (case_id or _case_id)(image_path)
            np.save(tmp / f"{cid}_orig.npy", np.ascontiguousarray(label, dtype=np.uint8))
            img, lab, meta = preprocess_case(image, label, spacing, affine, kinds, target_spacing, cid, ct_stats)
            del image, label
            np.save(tmp / f"{cid}_img.npy", img)
            np.save(tmp / f"{cid}_seg.npy", lab)
            np.savez(tmp / f"{cid}_fg.npz", **_fg_positions(lab, rng))
            cases.append(meta.to_dict())
            del img, lab
        index = {"settings": {**settings, "ct_stats": {str(k): v for k, v in ct_stats.items()}},
                 "channels": channels, "cases": cases}
        (tmp / "index.json").write_text(json.dumps(index))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "index.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fg_positions(label: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Up to :data:`FG_SAMPLES` voxel positions ``[N, 3]`` (int32) of each class present."""
    out = {}
    for c in np.unique(label):
        if c == 0:
            continue
        pos = np.argwhere(label == c).astype(np.int32)
        if len(pos) > FG_SAMPLES:
            pos = pos[np.sort(rng.choice(len(pos), FG_SAMPLES, replace=False))]
        out[f"c{int(c)}"] = pos
    return out


def _case_id(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".npy"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem
