"""``nasseg predict``: segment new images or volumes with a trained network.

Inputs are preprocessed exactly as in training (2D: read, colour channels matched, resized
to the training size if training resized, z-scored per image; 3D: channels first, then
the crop, per-channel normalisation and resampling of the plan stored with the network
(:mod:`nasseg.train.contract`; the training folder is never read), mapped back to the
scan's grid) and labelled as training's evaluation labels them (binary: logit > 0,
multi-class: argmax). Masks are written in the input's format, size and geometry:

- 2D (``.png .bmp .tif .gif``; ``.jpg`` inputs get ``.png`` masks, a lossy mask would be
  wrong; inputs sharing a stem, or multi-page files, are refused): one mask per image with
  the image's stem, 0/255 for a binary network (or class
  indices with ``index_masks``), class indices for a multi-class one. Logits are resized
  back to the image's own size (bilinear) before labelling.
- 3D NIfTI (``.nii``/``.nii.gz``, 3D or 4D channels-last): a uint8 label volume with the
  image's affine and header (dimensions and data type updated), predicted by a
  Gaussian-weighted sliding window of training's evaluation window.

Nothing is written onto an input, an existing file (without ``overwrite``) or inside the
input folder (without ``overwrite``); see :mod:`nasseg.outputs`. An input holding NaN or
infinite values is refused, as training refuses it.

Images of one size are predicted ``batch_size`` at a time; ``tta`` averages the logits
over flips along the axes training flipped (all subsets of them).

Example:
    >>> net = load_network("runs/train/dsb")                           # doctest: +SKIP
    >>> written = predict_path(net, "new_images/", "masks_out/")        # doctest: +SKIP
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

from nasseg.data.base import check_finite, normalise
from nasseg.data.batches import case_window, sliding_window
from nasseg.data.folder import IMAGE_EXTS, _resize, read_image, to_channels
from nasseg.errors import DataError
from nasseg.infer.network import Network
from nasseg.outputs import check_folder, check_targets
from nasseg.train.metrics import predict_labels
from nasseg.data.decathlon import channels_first, read_nifti_geometry
from nasseg.data.geometry import to_original
from nasseg.data.preprocess import preprocess_case

NIFTI_EXTS = (".nii.gz", ".nii")
LOSSY = (".jpg", ".jpeg")


@dataclass
class Written:
    """One predicted case: the input, the mask written, and the mask itself."""

    source: Path
    output: Path
    label: np.ndarray


def list_inputs(path: str | Path) -> list[Path]:
    """The image or NIfTI files of ``path`` (a file, a folder, or a folder with ``images/``).

    Raises:
        DataError: nothing to predict there.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"{p}: no such file or folder")
    if (p / "images").is_dir():
        p = p / "images"
    files = sorted(f for f in p.iterdir() if f.is_file() and (_is_nifti(f) or f.suffix.lower() in IMAGE_EXTS))
    if not files:
        raise DataError(f"{p}: no images ({', '.join(IMAGE_EXTS)}) or NIfTI volumes (.nii, .nii.gz) in this folder")
    return files


def predict_path(net: Network, inputs: str | Path, out_dir: str | Path, *, batch_size: int = 8,
                 tta: bool = False, index_masks: bool = False, progress: bool = True,
                 overwrite: bool = False) -> list[Written]:
    """Predict every input file and write its mask into ``out_dir``.

    Args:
        net: the network (:func:`~nasseg.infer.network.load_network`).
        inputs: a file, or a folder of 2D images or NIfTI volumes.
        out_dir: where the masks go (created).
        batch_size: images (2D) or windows (3D) per forward pass.
        tta: average over flips along the axes training flipped.
        index_masks: 2D binary: write 0/1 instead of 0/255.
        progress: show a rich progress bar.
        overwrite: replace existing files in ``out_dir`` (never an input file; see
            :mod:`nasseg.outputs`).

    Returns:
        One :class:`Written` per input, in sorted order.

    Raises:
        DataError: an unreadable input (also one holding NaN/inf values, or a multi-page
            TIFF/GIF), a 2D image for a 3D network (or the reverse), or an image whose
            channels the network cannot take.
        ConfigError: ``out_dir`` is, or is inside, an input folder, a mask to write exists
            (without ``overwrite``), a mask would replace an input, or two inputs share a
            stem (``case.png``, ``case.jpg``), all checked before anything is written.
    """
    files = list_inputs(inputs)
    volumes = [f for f in files if _is_nifti(f)]
    if volumes and net.spatial_dims == 2 or len(volumes) < len(files) and net.spatial_dims == 3:
        bad = volumes[0] if net.spatial_dims == 2 else next(f for f in files if not _is_nifti(f))
        raise DataError(f"{bad}: the network is {net.spatial_dims}D; it cannot segment this file")
    out = check_folder(out_dir, "--out", inside=_input_folders(inputs), overwrite=overwrite)
    check_targets([mask_path(out, f) for f in files], inputs=[*files, *_dataset_files(inputs)], flag="--out",
                  overwrite=overwrite, sources=files)
    written: list[Written] = []
    with _bar(progress, len(files), net.name) as advance:
        if net.spatial_dims == 3:
            for f in files:
                written.append(_predict_volume(net, f, out, batch_size, tta))
                advance(1)
        else:
            for chunk in _chunks(files, batch_size, net):
                written += _predict_images(net, chunk, out, tta, index_masks)
                advance(len(chunk))
    return written


def mask_path(out: Path, source: Path) -> Path:
    """Where the mask of ``source`` goes: its name, ``.png`` for a lossy ``.jpg`` input."""
    if _is_nifti(source):
        return out / source.name
    return out / f"{source.stem}{'.png' if source.suffix.lower() in LOSSY else source.suffix}"


def _input_folders(inputs: str | Path) -> list[Path]:
    """The folders ``predict`` reads (a file's own folder; a dataset and its ``images/``)."""
    p = Path(inputs)
    return [p.parent] if p.is_file() else [p, *([p / "images"] if (p / "images").is_dir() else [])]


DATASET_MARKERS = ("dataset.json", "masks", "labels", "labelsTr")
"""A folder holding one of these is a labelled dataset: its masks are ground truth."""


def _dataset_files(inputs: str | Path) -> list[Path]:
    """Every file of the labelled dataset ``inputs`` belongs to (``DATASET`` or
    ``DATASET/images``), ground-truth masks included: never overwritten, even with
    ``--overwrite``. Empty when the inputs are no dataset's."""
    p = Path(inputs)
    roots = [p, *([p.parent] if p.name.lower().startswith("images") else [])] if p.is_dir() else []
    for root in roots:
        if any((root / m).exists() for m in DATASET_MARKERS):
            return [f for f in root.rglob("*") if f.is_file()]
    return []


def _chunks(files: list[Path], batch_size: int, net: Network) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """Decoded images in batches whose members share the network input size."""
    batch: list[tuple[Path, np.ndarray]] = []
    for f in files:
        image = read_image(f)
        if batch and (len(batch) == batch_size or (net.size is None and image.shape != batch[0][1].shape)):
            yield batch
            batch = []
        batch.append((f, image))
    if batch:
        yield batch


def _predict_images(net: Network, batch: list[tuple[Path, np.ndarray]], out: Path, tta: bool,
                    index_masks: bool) -> list[Written]:
    size = net.size
    arrays = []
    for path, image in batch:
        image = to_channels(image, net.in_channels, str(path))
        if size is not None:
            image = _resize(image, size, 2)  # PIL.Image.BILINEAR, as training resizes
        arrays.append(normalise(image.transpose(2, 0, 1)))
    x = torch.from_numpy(np.stack(arrays))
    shape = tuple(x.shape[2:])
    padded = tuple(-(-s // net.divisor) * net.divisor for s in shape)
    if padded != shape:  # native-size network input must be a multiple of the divisor
        x = F.pad(x, [p for s, q in zip(reversed(shape), reversed(padded)) for p in (0, q - s)])
    logits = _infer(net, x, tta)[(slice(None), slice(None), *[slice(0, s) for s in shape])]
    results = []
    for (path, image), lg in zip(batch, logits):
        hw = image.shape[:2]
        if tuple(lg.shape[1:]) != hw:
            lg = F.interpolate(lg[None], size=hw, mode="bilinear", align_corners=False)[0]
        label = predict_labels(lg[None])[0].numpy().astype(np.uint8)
        saved = label * 255 if net.num_classes == 2 and not index_masks else label
        target = mask_path(out, path)

        out.mkdir(parents=True, exist_ok=True)  # with the first mask: a refused input leaves no folder
        Image.fromarray(saved).save(target)
        results.append(Written(path, target, label))
    return results


def _infer(net: Network, x: Tensor, tta: bool) -> Tensor:
    """Logits of ``net`` for ``x [B, C, *S]``, averaged over flips when ``tta``."""
    axes = [a + 2 for a in net.flip_axes] if tta else []
    total = None
    flips = [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]
    for dims in flips:
        xi = torch.flip(x, dims) if dims else x
        y = net(xi).float().cpu()
        y = torch.flip(y, dims) if dims else y
        total = y if total is None else total + y
    assert total is not None
    return total / len(flips)


def predict_case(net: Network, image: Tensor, batch_size: int = 4, tta: bool = False) -> Tensor:
    """Logits ``[K, *S]`` of one preprocessed case ``image [C, *S]``: a sliding window of
    training's evaluation window (3D), else the whole case zero-padded to the network's
    size multiple.

    Example:
        >>> predict_case(net, torch.zeros(1, 35, 51, 35)).shape  # doctest: +SKIP
        torch.Size([3, 35, 51, 35])
    """
    shape = tuple(image.shape[1:])
    if net.window is not None:
        return sliding_window(lambda x: _infer(net, x, tta), image, case_window(net.window, shape, net.divisor),
                              net.overlap, batch_size)
    padded = tuple(-(-s // net.divisor) * net.divisor for s in shape)
    return sliding_window(lambda x: _infer(net, x, tta), image, padded, 0.0, 1)


def _training_preprocessing(net: Network) -> dict:
    """The crop/normalise/resample settings training used, as stored with the network
    (:mod:`nasseg.train.contract`), so a new volume is fed exactly as training fed its
    cases; the training folder is never read (it may have changed, or be gone)."""
    data = net.meta.get("data") or {}
    if data.get("kind") not in ("decathlon", "nnunet"):
        raise DataError(f"{net.source}: was not trained on NIfTI volumes (data kind {data.get('kind')!r}); "
                        "its 3D preprocessing cannot be reproduced for a .nii input")
    settings = net.preprocessing
    if not settings:
        raise DataError(f"{net.source}: carries no preprocessing plan (trained before nasseg stored it with the "
                        "network); train it again to predict NIfTI volumes")
    return settings


def _predict_volume(net: Network, path: Path, out: Path, batch_size: int, tta: bool) -> Written:
    img = nib.load(str(path))
    data, spacing, affine = read_nifti_geometry(path)
    data = channels_first(data, path)
    check_finite(data, path)
    if data.shape[0] != net.in_channels:
        raise DataError(f"{path}: volume has {data.shape[0]} channels; the network takes {net.in_channels}")
    pre = _training_preprocessing(net)
    ct_stats = {int(k): v for k, v in (pre.get("ct_stats") or {}).items()}
    image, _, meta = preprocess_case(data, np.zeros(data.shape[1:], np.uint8), spacing, affine, pre["kinds"],
                                     tuple(pre["target_spacing"]), path.name, ct_stats)
    logits = predict_case(net, torch.from_numpy(image), batch_size, tta)
    label = to_original(logits, meta).numpy().astype(np.uint8)
    header = img.header.copy()
    header.set_data_dtype(np.uint8)
    target = mask_path(out, path)
    out.mkdir(parents=True, exist_ok=True)  # with the first mask: a refused input leaves no folder
    nib.save(nib.Nifti1Image(label, img.affine, header), str(target))
    return Written(path, target, label)


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_EXTS)


class _bar:
    """A rich progress bar over cases; ``advance(n)`` moves it (no-op when hidden)."""

    def __init__(self, show: bool, total: int, name: str) -> None:
        self.show, self.total, self.name = show, total, name

    def __enter__(self):
        if not self.show:
            return lambda n: None

        self.progress = Progress(TextColumn("[bold]predict[/] {task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn())
        self.progress.__enter__()
        task = self.progress.add_task(self.name, total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.show:
            self.progress.__exit__(*exc)
