"""3D volumes in the Medical Segmentation Decathlon layout.

``dataset.json`` lists ``training`` pairs ``{"image": "./imagesTr/x.nii.gz", "label":
"./labelsTr/x.nii.gz"}`` (paths relative to the json) and names the ``labels``. Images
may be 3D or 4D (channels last, as the Decathlon stores multi-modal data); the
``modality`` map (``{"0": "FLAIR", "1": "T1w", ...}``) names each channel. Voxel size
and affine come from each NIfTI header. Volumes are preprocessed once into a
memory-mapped cache (:mod:`nasseg.data.preprocess`: non-zero crop, per-channel
normalisation by modality, resampling to the planned spacing) and read from there.
"""
from __future__ import annotations

import gzip
import json
import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from nasseg.data.base import SegDataset, check_finite
from nasseg.data.config import DataConfig
from nasseg.data.labels import FIX
from nasseg.errors import DataError
from nasseg.data.plan import plan_spacing
from nasseg.data.preprocess import load_preprocessed, modality_kind
from nasseg.data.splits import stratified_order

log = logging.getLogger(__name__)


def load_decathlon(cfg: DataConfig, *, ct_stats: dict[int, dict[str, float]] | None = None) -> SegDataset:
    """Open a Decathlon dataset through its preprocessed cache (built on first use).

    Args:
        cfg: a config with ``kind="decathlon"`` and ``path``; ``cfg.plan.target_spacing`` and
            ``cfg.plan.modalities`` override the planned spacing and dataset.json's map.
        ct_stats: normalise CT channels with these statistics instead of this data's own
            (``nasseg evaluate``: the trained network's, as its training data was fed).

    Returns:
        A :class:`SegDataset` whose ``images`` are ``[C, X, Y, Z]`` float32 and ``labels``
        ``[X, Y, Z]`` uint8 memory-mapped volumes (shapes vary) at the target spacing;
        ``info["metas"]`` maps each case id to its :class:`~nasseg.data.geometry.CaseMeta`.

    Raises:
        DataError: dataset.json missing, unparsable or pointing at missing files, an
            unreadable or truncated NIfTI, image and label of different shapes, or
            label values outside the classes dataset.json names.

    Example:
        >>> ds = load_decathlon(resolve_data("../shared/data/msd_hippocampus", max_cases=2))  # doctest: +SKIP
        >>> ds.num_classes, ds.images[0].shape[0]
        (3, 1)
    """
    root = Path(cfg.path or ".")
    meta_path = root / "dataset.json"
    entries, class_names = read_dataset_json(meta_path)
    if cfg.max_cases is not None:
        keep = sorted(stratified_order([""] * len(entries), cfg.split.seed + 7919)[: cfg.max_cases])
        entries = [entries[i] for i in keep]
    class_names = list(cfg.labels) if cfg.labels else class_names
    headers = [read_header(image) for image, _ in entries]
    channels = {c for _, _, c in headers}
    if len(channels) > 1:
        raise DataError(f"{meta_path}: images have different channel counts {sorted(channels)}")
    n_channels = channels.pop()
    names = cfg.plan.modalities or read_modalities(meta_path, n_channels)
    if len(names) != n_channels:
        raise DataError(f"{meta_path}: the modality map names {len(names)} channels but the images have {n_channels}")
    target = tuple(cfg.plan.target_spacing) if cfg.plan.target_spacing else plan_spacing([sp for _, sp, _ in headers])
    source = "the data config labels" if cfg.labels else str(meta_path)
    ds = load_preprocessed(entries, lambda im, lb: read_case(im, lb, len(class_names), source, cfg.unknown_labels),
                           kinds=[modality_kind(n) for n in names], class_names=class_names,
                           target_spacing=target, name=root.resolve().name,
                           label_settings={"classes": len(class_names), "unknown_labels": cfg.unknown_labels},
                           ct_stats=ct_stats)
    ds.info.update(root=str(root), modalities=list(names), regions=read_regions(meta_path, len(class_names)))
    return ds


def read_regions(path: Path, num_classes: int) -> dict[str, list[int]]:
    """dataset.json's optional ``regions`` (name -> label values, e.g. BraTS
    ``{"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}``), scored by :mod:`nasseg.train.regions`.

    Raises:
        DataError: not a mapping of names to lists of foreground label values.
    """
    regions = json.loads(path.read_text()).get("regions") or {}
    ok = isinstance(regions, dict) and all(
        isinstance(v, list) and v and all(isinstance(x, int) and 0 < x < num_classes for x in v)
        for v in regions.values())
    if not ok:
        raise DataError(f"{path}: 'regions' must map names to lists of label values 1..{num_classes - 1}, "
                        f"got {regions}")
    return {str(k): list(v) for k, v in regions.items()}


def read_case(image_path: Path, label_path: Path, num_classes: int, source: str, unknown_labels: str = "error"
              ) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], np.ndarray]:
    """Read and check one (image, label) pair.

    Args:
        source: where the classes are named (for the message).
        unknown_labels: ``background`` maps label values that are no class to 0 (logged);
            otherwise they are an error.

    Returns:
        ``(image [C, X, Y, Z], label [X, Y, Z] uint8, spacing (mm), affine 4x4)``.

    Raises:
        DataError: unreadable files, mismatched shapes, non-finite intensities or label
            values outside the classes ``source`` names.
    """
    image, spacing, affine = read_nifti_geometry(image_path)
    image = channels_first(image, image_path)
    label = read_nifti(label_path)
    if label.shape != image.shape[1:]:
        raise DataError(
            f"{label_path}: label shape {tuple(label.shape)} differs from image "
            f"{image_path.name} shape {tuple(image.shape[1:])}"
        )
    if not np.all(np.isfinite(label)) or np.any(label != np.round(label)):
        raise DataError(f"{label_path}: label holds non-integer values")
    values = np.unique(label)
    unknown = [int(v) for v in values if v < 0 or v >= num_classes]
    if unknown and unknown_labels == "background":
        log.warning("%s: label values %s are not classes 0..%d; mapped to background (unknown_labels: "
                    "background)", label_path, unknown, num_classes - 1)
        label = np.where(np.isin(label, unknown), 0, label)
    elif unknown:
        raise DataError(
            f"{label_path}: label value {unknown[0]} is not one of the classes 0..{num_classes - 1} named in "
            f"{source}: {FIX}"
        )
    check_finite(image, image_path)
    return image, label.astype(np.uint8), spacing, affine


def read_modalities(path: Path, channels: int) -> list[str]:
    """The channel names of dataset.json's ``modality`` map (``MRI`` per channel if absent).

    Raises:
        DataError: the map is not ``{"0": name, ...}`` over 0..C-1.
    """
    meta = json.loads(path.read_text())
    mod = meta.get("modality")
    if not mod:
        return ["MRI"] * channels
    try:
        names = [str(mod[k]) for k in sorted(mod, key=int)]
        if sorted(int(k) for k in mod) != list(range(len(mod))):
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        raise DataError(f"{path}: 'modality' must map 0..C-1 to names, got {mod}") from None
    return names


def read_header(path: Path) -> tuple[tuple[int, ...], tuple[float, ...], int]:
    """``(spatial shape, voxel size, channels)`` from a NIfTI header, without decoding voxels."""
    try:
        img = nib.load(str(path))
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: unreadable or truncated NIfTI file ({type(err).__name__}: {err})") from None
    shape = tuple(int(n) for n in img.shape)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return shape[:3], zooms, (shape[3] if len(shape) == 4 else 1)


def read_dataset_json(path: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Read ``dataset.json``: the (image, label) file pairs and the class names.

    Raises:
        DataError: missing or invalid json, no training entries, or a listed file missing.
    """
    if not path.is_file():
        raise DataError(f"{path}: no dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    training = meta.get("training") if isinstance(meta, dict) else None
    if not training or not isinstance(training, list):
        raise DataError(f"{path}: no 'training' list of image/label pairs")
    labels = meta.get("labels") or {"0": "background", "1": "foreground"}
    try:
        names = [str(labels[k]) for k in sorted(labels, key=int)]
        if sorted(int(k) for k in labels) != list(range(len(labels))):
            raise ValueError
    except (ValueError, TypeError):
        raise DataError(f"{path}: 'labels' must map 0..K-1 to names, got {labels}") from None
    pairs = []
    for n, entry in enumerate(training):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise DataError(f"{path}: training[{n}] needs 'image' and 'label', got {entry}")
        pair = (path.parent / entry["image"], path.parent / entry["label"])
        for key, p in zip(("image", "label"), pair):
            if not p.is_file():
                raise DataError(f"{path}: training[{n}].{key} points at a missing file {p}")
        pairs.append(pair)
    pairs.sort(key=lambda p: p[0].name)
    return pairs, names


def read_nifti(path: Path) -> np.ndarray:
    """Load a NIfTI file's voxel array (``.nii`` or ``.nii.gz``).

    Raises:
        DataError: the file is unreadable or truncated.
    """
    return read_nifti_geometry(path)[0]


def channels_first(image: np.ndarray, path: Path) -> np.ndarray:
    """A NIfTI voxel array ``[X, Y, Z]`` or ``[X, Y, Z, C]`` as ``[C, X, Y, Z]``.

    Raises:
        DataError: any other number of axes, naming ``path``.
    """
    if image.ndim == 4:
        return np.moveaxis(image, -1, 0)
    if image.ndim == 3:
        return image[None]
    raise DataError(f"{path}: image has {image.ndim} axes, expected 3 (or 4 with channels last)")


def read_nifti_geometry(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """A NIfTI file's voxel array, voxel size (mm, first 3 axes) and 4x4 affine.

    Raises:
        DataError: the file is unreadable or truncated.
    """
    try:
        img = nib.load(str(path))
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        return np.asarray(img.dataobj), zooms, np.asarray(img.affine, dtype=np.float64)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: unreadable or truncated NIfTI file ({type(err).__name__}: {err})") from None
