"""nnU-Net v2 raw datasets, read as they are (data kind ``nnunet``).

Layout (nnU-Net's documentation/dataset_format.md)::

    DatasetXXX_Name/
        dataset.json   {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1},
                        "numTraining": 131, "file_ending": ".nii.gz"}
        imagesTr/      CASE_0000.nii.gz, CASE_0001.nii.gz, ...  (one file per channel)
        labelsTr/      CASE.nii.gz

``labels`` maps names to values 0..K-1 (the reverse of the Decathlon's map); an optional
``dataset`` entry lists each case's ``images`` and ``label`` explicitly. ``file_ending``
``.nii.gz``/``.nii`` gives 3D volumes, planned and preprocessed as Decathlon volumes are
(:mod:`nasseg.data.preprocess`; channel names as modalities: ``CT`` is clipped and z-scored
with dataset statistics, any other name z-scored per volume); ``.png``/``.bmp``/``.tif``
gives 2D images (RGB in one ``_0000`` file = 3 channels, as nnU-Net reads it), resized to
``size`` and normalised per image as 2D folders are. Case ids are nnU-Net's identifiers,
so nnU-Net's ``splits_final.json`` applies (``split: {method: file}``).

Region-based labels (``"whole_tumor": [1, 2, 3]`` with ``regions_class_order``) and
nnU-Net's ``ignore`` label are refused with one line: nasseg trains one class per value.

Example:
    >>> ds = load_nnunet_raw(resolve_data("$nnUNet_raw/Dataset004_Hippocampus"))  # doctest: +SKIP
    >>> ds.case_ids[0], ds.class_names                                             # doctest: +SKIP
    ('hippocampus_001', ['background', 'Anterior', 'Posterior'])
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nasseg.data.base import SegDataset, normalise
from nasseg.data.config import DataConfig
from nasseg.data.decathlon import read_case, read_header, read_nifti
from nasseg.data.folder import _resize, _target_size, read_image, read_mask
from nasseg.data.identity import files_identity
from nasseg.data.labels import count_values, declare_labels, map_unknown
from nasseg.data.plan import plan_spacing
from nasseg.data.preprocess import load_preprocessed, modality_kind
from nasseg.data.splits import stratified_order
from nasseg.errors import DataError

NIFTI_ENDINGS = (".nii.gz", ".nii")
IMAGE_ENDINGS = (".png", ".bmp", ".tif")


@dataclass
class RawDataset:
    """One nnU-Net raw dataset, checked.

    Attributes:
        root: the ``DatasetXXX_Name`` folder.
        cases: ``(identifier, [channel files], label file)`` sorted by identifier.
        channel_names: one name per channel (``channel_names`` in order).
        class_names: label names in value order, background first.
        file_ending: ``.nii.gz``, ``.png``, ...
    """

    root: Path
    cases: list[tuple[str, list[Path], Path]]
    channel_names: list[str]
    class_names: list[str]
    file_ending: str

    @property
    def spatial_dims(self) -> int:
        return 3 if self.file_ending in NIFTI_ENDINGS else 2


def read_raw(root: Path) -> RawDataset:
    """Read and check ``root/dataset.json`` and the files it implies.

    Raises:
        DataError: one line naming the file and the field or file at fault (missing key,
            region-based or ignore labels, non-contiguous label values, an unsupported
            ``file_ending``, a missing channel or label file, ``numTraining`` that differs).
    """
    path = Path(root) / "dataset.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no dataset.json (an nnU-Net raw dataset folder holds one)") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    for key in ("channel_names", "labels", "file_ending"):
        if key not in meta:
            raise DataError(f"{path}: no '{key}' (nnU-Net v2 dataset.json needs channel_names, labels, file_ending)")
    ending = str(meta["file_ending"])
    if ending not in NIFTI_ENDINGS + IMAGE_ENDINGS:
        raise DataError(f"{path}: file_ending '{ending}' is not supported (supported: "
                        f"{', '.join(NIFTI_ENDINGS + IMAGE_ENDINGS)})")
    channels = _indexed_names(meta["channel_names"], path, "channel_names")
    classes = _class_names(meta, path)
    cases = _listed_cases(meta["dataset"], root, path) if "dataset" in meta else _scanned_cases(root, ending, len(channels))
    if not cases:
        raise DataError(f"{Path(root) / 'imagesTr'}: no images ending in _0000{ending}")
    n = meta.get("numTraining")
    if n is not None and n != len(cases):
        raise DataError(f"{path}: numTraining is {n} but {len(cases)} training cases were found")
    return RawDataset(Path(root), cases, channels, classes, ending)


def _indexed_names(mapping: object, path: Path, key: str) -> list[str]:
    try:
        names = [str(mapping[k]) for k in sorted(mapping, key=int)]  # type: ignore[index]
        if sorted(int(k) for k in mapping) != list(range(len(names))):  # type: ignore[union-attr]
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        raise DataError(f"{path}: '{key}' must map \"0\"..\"C-1\" to names, got {mapping}") from None
    return names


def _class_names(meta: dict, path: Path) -> list[str]:
    labels = meta["labels"]
    if not isinstance(labels, dict):
        raise DataError(f"{path}: 'labels' must map names to values, got {labels}")
    regions = [k for k, v in labels.items() if isinstance(v, (list, tuple))]
    if regions or "regions_class_order" in meta:
        raise DataError(f"{path}: labels '{regions[0] if regions else 'regions_class_order'}': region-based labels are "
                        "not supported (nasseg trains one class per label value); list each value as its own label")
    if "ignore" in labels:
        raise DataError(f"{path}: labels 'ignore': nnU-Net's ignore label is not supported; map it to a class or "
                        "to background")
    by_value = {v: k for k, v in labels.items()}
    if sorted(by_value) != list(range(len(labels))) or not all(isinstance(v, int) for v in by_value):
        raise DataError(f"{path}: 'labels' values must be 0..K-1 (background 0), got {labels}")
    return [str(by_value[v]) for v in range(len(labels))]


def _scanned_cases(root: Path, ending: str, channels: int) -> list[tuple[str, list[Path], Path]]:
    """nnU-Net's own rule: identifiers are the ``imagesTr`` names minus ``_XXXX<ending>``."""
    images = Path(root) / "imagesTr"
    if not images.is_dir():
        raise DataError(f"{images}: no such folder (an nnU-Net raw dataset holds imagesTr/ and labelsTr/)")
    pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(ending) + "$")
    ids = sorted({m.group(1) for p in images.iterdir() if (m := pattern.match(p.name))})
    cases = []
    for cid in ids:
        files = [images / f"{cid}_{c:04d}{ending}" for c in range(channels)]
        label = Path(root) / "labelsTr" / f"{cid}{ending}"
        for f in files + [label]:
            if not f.is_file():
                raise DataError(f"{f}: missing (case {cid} needs {channels} channel file(s) and a label)")
        cases.append((cid, files, label))
    return cases


def _listed_cases(listed: object, root: Path, path: Path) -> list[tuple[str, list[Path], Path]]:
    """dataset.json's explicit ``dataset: {id: {"images": [...], "label": ...}}``."""
    if not isinstance(listed, dict):
        raise DataError(f"{path}: 'dataset' must map case ids to {{images, label}}")
    cases = []
    for cid, entry in sorted(listed.items()):
        try:
            files = [_resolve(root, f) for f in entry["images"]]
            label = _resolve(root, entry["label"])
        except (KeyError, TypeError):
            raise DataError(f"{path}: dataset.{cid} needs 'images' (a list) and 'label'") from None
        for f in files + [label]:
            if not f.is_file():
                raise DataError(f"{path}: dataset.{cid} points at a missing file {f}")
        cases.append((str(cid), files, label))
    return cases


def _resolve(root: Path, name: str) -> Path:
    p = Path(os.path.expandvars(str(name)))
    return p if p.is_absolute() else Path(root) / p


def case_of(files: dict[Path, str]):
    """``case_id(channel_0_file)`` for :func:`~nasseg.data.preprocess.load_preprocessed`."""
    return lambda image_path: files[Path(image_path)]


def load_nnunet_raw(cfg: DataConfig) -> SegDataset:
    """Decode an nnU-Net raw dataset (``cfg.kind == "nnunet"``) into a
    :class:`~nasseg.data.base.SegDataset` (3D: preprocessed cache; 2D: in memory).

    Raises:
        DataError: see :func:`read_raw`; unreadable files, shapes that differ between an
            image's channels or from its label, label values outside the classes.
    """
    raw = read_raw(Path(cfg.path or "."))
    cases = raw.cases
    if cfg.max_cases is not None:  # a seeded sample, not the first N
        keep = sorted(stratified_order([""] * len(cases), cfg.split.seed + 7919)[: cfg.max_cases])
        cases = [cases[i] for i in keep]
    names = list(cfg.labels) if cfg.labels else raw.class_names
    if raw.spatial_dims == 3:
        return _load_volumes(cfg, raw, cases, names)
    return _load_images(cfg, raw, cases, names)


def _load_volumes(cfg: DataConfig, raw: RawDataset, cases, names: list[str]) -> SegDataset:
    channels = {files[0]: files for _, files, _ in cases}
    source = "the data config labels" if cfg.labels else str(raw.root / "dataset.json")

    def read(image: Path, label: Path):
        img, lab, spacing, affine = read_case(image, label, len(names), source, cfg.unknown_labels)
        if img.shape[0] != 1:
            raise DataError(f"{image}: holds {img.shape[0]} channels; nnU-Net stores one channel per file")
        rest = [read_nifti(f) for f in channels[image][1:]]
        for f, r in zip(channels[image][1:], rest):
            if r.shape != lab.shape:
                raise DataError(f"{f}: shape {tuple(r.shape)} differs from {image.name}'s {tuple(lab.shape)}")
        return (np.concatenate([img, np.stack(rest)]) if rest else img), lab, spacing, affine

    extra = [f for _, files, _ in cases for f in files[1:]]
    name = raw.root.resolve().name + (f"-{files_identity(extra)}" if extra else "")
    kinds = [modality_kind(n) for n in (cfg.plan.modalities or raw.channel_names)]
    target = tuple(cfg.plan.target_spacing) if cfg.plan.target_spacing else \
        plan_spacing([read_header(files[0])[1] for _, files, _ in cases])
    ds = load_preprocessed([(files[0], label) for _, files, label in cases], read, kinds=kinds, class_names=names,
                           target_spacing=target, name=name,
                           label_settings={"classes": len(names), "unknown_labels": cfg.unknown_labels},
                           case_id=case_of({files[0]: cid for cid, files, _ in cases}))
    ds.info.update(root=str(raw.root), modalities=list(cfg.plan.modalities or raw.channel_names), regions={})
    return ds


def _load_images(cfg: DataConfig, raw: RawDataset, cases, names: list[str]) -> SegDataset:
    images, labels = [], []
    for cid, files, label in cases:
        parts = [read_image(f) for f in files]
        mask = read_mask(label)
        for f, p in zip(files, parts):
            if p.shape[:2] != mask.shape:
                raise DataError(f"{f}: image is {p.shape[1]}x{p.shape[0]} but its label {label.name} is "
                                f"{mask.shape[1]}x{mask.shape[0]} (width x height)")
        images.append(np.concatenate(parts, axis=2))
        labels.append(mask)
    counts = count_values([(m, lab) for m, (_, _, lab) in zip(labels, cases)])
    names, unknown = declare_labels(counts, names, cfg.unknown_labels, where=str(raw.root), total=len(labels))
    channels = {im.shape[2] for im in images}
    if len(channels) > 1:
        raise DataError(f"{raw.root}: images have different channel counts {sorted(channels)}")
    size = _target_size(cfg.size, [(im.shape[:2], files[0]) for im, (_, files, _) in zip(images, cases)])
    out_img = np.empty((len(images), channels.pop(), *size), np.float32)
    out_lab = np.empty((len(images), *size), np.uint8)
    native = []
    for i, (im, lab) in enumerate(zip(images, labels)):
        lab = map_unknown(lab, unknown).astype(np.uint8)
        native.append(torch.from_numpy(lab))
        out_img[i] = normalise(_resize(im, size, Image.BILINEAR).transpose(2, 0, 1))
        out_lab[i] = _resize(lab[..., None], size, Image.NEAREST)[..., 0]
    resized = any(tuple(t.shape) != tuple(size) for t in native)
    pixel = tuple(float(v) for v in cfg.spacing) if cfg.spacing else None
    return SegDataset(
        kind="nnunet", spatial_dims=2, in_channels=out_img.shape[1], num_classes=len(names),
        case_ids=[cid for cid, _, _ in cases], images=torch.from_numpy(out_img), labels=torch.from_numpy(out_lab),
        sources=[str(files[0]) for _, files, _ in cases], class_names=names,
        info={"size": list(size), "root": str(raw.root), "channel_names": raw.channel_names},
        native_labels=native if resized else None, spacing=[pixel] * len(images) if pixel else None)
