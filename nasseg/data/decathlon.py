"""3D volumes in the Medical Segmentation Decathlon layout.

``dataset.json`` lists ``training`` pairs ``{"image": "./imagesTr/x.nii.gz", "label":
"./labelsTr/x.nii.gz"}`` (paths relative to the json) and names the ``labels``. Images
may be 3D or 4D (channels last, as the Decathlon stores multi-modal data). Each volume
is normalised on its own (z-score over all voxels of all channels), since intensity
scales differ wildly between volumes (MSD hippocampus: 0-255 and up to 1.7e6).
"""
from __future__ import annotations

import gzip
import json
import logging
import zlib
from pathlib import Path

import numpy as np
import torch

from nasseg.data.base import SegDataset, normalise
from nasseg.data.config import DataConfig
from nasseg.data.labels import FIX
from nasseg.errors import DataError

log = logging.getLogger(__name__)


def load_decathlon(cfg: DataConfig) -> SegDataset:
    """Decode a Decathlon dataset into memory.

    Args:
        cfg: a config with ``kind="decathlon"`` and ``path``.

    Returns:
        A :class:`SegDataset` whose ``images`` is a list of ``[C, X, Y, Z]`` float32
        tensors and ``labels`` a list of ``[X, Y, Z]`` uint8 tensors (shapes vary).

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
        from nasseg.data.splits import stratified_order  # a seeded sample, not the first N

        keep = sorted(stratified_order([""] * len(entries), cfg.split.seed + 7919)[: cfg.max_cases])
        entries = [entries[i] for i in keep]
    class_names = list(cfg.labels) if cfg.labels else class_names
    num_classes = len(class_names)
    images, labels, ids, sources, spacing = [], [], [], [], []
    for image_path, label_path in entries:
        image = read_nifti(image_path)
        label = read_nifti(label_path)
        spacing.append(nifti_spacing(label_path))
        if image.ndim == 4:
            image = np.moveaxis(image, -1, 0)
        elif image.ndim == 3:
            image = image[None]
        else:
            raise DataError(f"{image_path}: image has {image.ndim} axes, expected 3 (or 4 with channels last)")
        if label.shape != image.shape[1:]:
            raise DataError(
                f"{label_path}: label shape {tuple(label.shape)} differs from image "
                f"{image_path.name} shape {tuple(image.shape[1:])}"
            )
        if not np.all(np.isfinite(label)) or np.any(label != np.round(label)):
            raise DataError(f"{label_path}: label holds non-integer values")
        values = np.unique(label)
        unknown = [int(v) for v in values if v < 0 or v >= num_classes]
        if unknown and cfg.unknown_labels == "background":
            log.warning("%s: label values %s are not classes 0..%d; mapped to background (unknown_labels: "
                        "background)", label_path, unknown, num_classes - 1)
            label = np.where(np.isin(label, unknown), 0, label)
        elif unknown:
            raise DataError(
                f"{label_path}: label value {unknown[0]} is not one of the classes 0..{num_classes - 1} named in "
                f"{'the data config labels' if cfg.labels else meta_path}: {FIX}"
            )
        if not np.all(np.isfinite(image)):
            raise DataError(f"{image_path}: image holds NaN or infinite values")
        images.append(torch.from_numpy(normalise(image)))
        labels.append(torch.from_numpy(label.astype(np.uint8)))
        ids.append(_case_id(image_path))
        sources.append(str(image_path))
    channels = {im.shape[0] for im in images}
    if len(channels) > 1:
        raise DataError(f"{meta_path}: images have different channel counts {sorted(channels)}")
    return SegDataset(
        kind="decathlon", spatial_dims=3, in_channels=channels.pop(), num_classes=num_classes,
        case_ids=ids, images=images, labels=labels, sources=sources, class_names=class_names,
        info={"root": str(root), "shapes": [list(im.shape[1:]) for im in images]},
        spacing=spacing,
    )


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
    import nibabel as nib

    try:
        return np.asarray(nib.load(str(path)).dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: unreadable or truncated NIfTI file ({type(err).__name__}: {err})") from None


def nifti_spacing(path: Path) -> tuple[float, float, float]:
    """The voxel spacing in mm of a NIfTI file's first three axes (its header's ``pixdim``),
    so that distances (HD95, ASSD, NSD) are in mm."""
    import nibabel as nib

    try:
        zooms = nib.load(str(path)).header.get_zooms()[:3]
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: unreadable NIfTI header ({type(err).__name__}: {err})") from None
    return tuple(float(z) if z > 0 else 1.0 for z in zooms)


def _case_id(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem
