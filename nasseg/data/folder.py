"""2D image folders: ``images/`` and ``masks/`` matched by file stem.

A data config may name the folders and the mask file name (``images_dir: imgs``,
``masks_dir: labels``, ``mask_pattern: "{stem}_seg.png"``). Without a pattern, these
layouts are accepted (checked in this order for each image ``images/<stem>.<ext>``):

- ``masks/<stem>.<ext>`` (any image extension),
- ``masks/0/<stem>.<ext>`` (the CMUNeXt code's layout, one sub-folder per class),
- ``masks/<stem>_mask.<ext>`` or ``images/<stem>_mask.<ext>`` (raw BUSI; ``*_mask_1``
  files of extra lesions are merged by union).

Images may be gray or RGB (RGBA and palette images are converted, 16-bit gray is scaled);
the dataset uses 3 channels if any image is in colour. Masks are decoded with one
encoding for the whole dataset (see :mod:`nasseg.data.masks`): 0/255 masks are binarised
at > 127 (a grey value that is no resizing edge is refused), small integer masks are kept
as class indices. The classes are declared
(``labels`` in the data config) or inferred from the values of all masks and reported
once (see :mod:`nasseg.data.labels`): a stray value is an error naming its file. Every case is resized to
``size`` (bilinear image, nearest mask) and normalised per image.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nasseg.data.base import SegDataset, check_finite, normalise
from nasseg.data.config import DataConfig
from nasseg.data.labels import count_values, declare_labels, map_unknown
from nasseg.data.masks import decode_mask, mask_encoding
from nasseg.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


def load_folder(cfg: DataConfig) -> SegDataset:
    """Decode a 2D image folder into memory.

    Args:
        cfg: a config with ``kind="folder"`` and ``path``.

    Returns:
        A fixed-size :class:`SegDataset` (images ``[N, 1|3, H, W]``).

    Raises:
        DataError: empty folder, a mask missing for an image, image and mask of
            different sizes, an unreadable file, mask values fitting no encoding,
            images of different sizes with no ``size`` set, or a mask value that is not a
            declared (or contiguous inferred) class. The message names the file.

    Example:
        >>> ds = load_folder(resolve_data("../shared/data/dsb2018_96", max_cases=4))  # doctest: +SKIP
        >>> tuple(ds.images.shape)
        (4, 3, 96, 96)
    """
    root = Path(cfg.path or ".")
    pairs = find_pairs(root, cfg.images_dir, cfg.masks_dir, cfg.mask_pattern)
    if cfg.max_cases is not None:
        pairs = pairs[: cfg.max_cases]
    raw = []
    for img_path, mask_paths in pairs:
        image = read_image(img_path)
        masks = [read_mask(p) for p in mask_paths]
        for p, m in zip(mask_paths, masks):
            if m.shape != image.shape[:2]:
                raise DataError(
                    f"{p}: mask is {m.shape[1]}x{m.shape[0]} but its image {img_path.name} is "
                    f"{image.shape[1]}x{image.shape[0]} (width x height)"
                )
        raw.append((image, masks))
    encoding, _ = mask_encoding([(ms, mp) for (_, ms), (_, mp) in zip(raw, pairs)], cfg.mask_encoding)
    decoded = [decode_mask(masks, encoding) for _, masks in raw]
    names, unknown = declare_labels(count_values([(lab, mp[0]) for lab, (_, mp) in zip(decoded, pairs)]),
                                    cfg.labels, cfg.unknown_labels, where=str(root), total=len(decoded))
    if encoding == "binary255" and len(names) != 2:
        raise DataError(f"{root}: labels: {names} has {len(names)} classes but the masks are 0/255 (binary)")
    num_classes = len(names)
    size = _target_size(cfg.size, [(im.shape[:2], p) for (im, _), (p, _) in zip(raw, pairs)])
    channels = 3 if any(im.shape[2] == 3 for im, _ in raw) else 1
    images = np.empty((len(raw), channels, *size), np.float32)
    labels = np.empty((len(raw), *size), np.uint8)
    native = []
    for i, ((image, _), label) in enumerate(zip(raw, decoded)):
        label = map_unknown(label, unknown)
        native.append(torch.from_numpy(label.astype(np.uint8)))
        if image.shape[2] != channels:
            image = np.repeat(image, channels, axis=2)
        images[i] = normalise(_resize(image, size, Image.BILINEAR).transpose(2, 0, 1))
        labels[i] = _resize(label[..., None], size, Image.NEAREST)[..., 0]
    stems = [p.stem for p, _ in pairs]
    resized = any(tuple(t.shape) != tuple(size) for t in native)
    pixel = tuple(float(v) for v in cfg.spacing) if cfg.spacing else None
    return SegDataset(
        kind="folder", spatial_dims=2, in_channels=channels, num_classes=num_classes,
        case_ids=stems, images=torch.from_numpy(images), labels=torch.from_numpy(labels),
        sources=[str(p) for p, _ in pairs], class_names=names,
        info={"mask_encoding": encoding, "size": list(size), "root": str(root)},
        native_labels=native if resized else None,
        spacing=[pixel] * len(raw) if pixel else None,
    )


def find_pairs(root: Path, images_dir: str = "images", masks_dir: str | None = None,
               mask_pattern: str | None = None) -> list[tuple[Path, list[Path]]]:
    """Match every image under ``root/images_dir`` with its mask file(s), sorted by stem.

    With ``mask_pattern`` (or ``masks_dir``) the mask of ``<stem>.<ext>`` is exactly
    ``root/masks_dir/mask_pattern`` (defaults ``masks`` and ``{stem}.{ext}``); otherwise
    the layouts of the module docstring are tried.

    Raises:
        DataError: no images folder, no images in it, or an image without a mask.
    """
    img_dir, mask_dir = root / images_dir, root / (masks_dir or "masks")
    if not img_dir.is_dir():
        raise DataError(f"{root}: no {images_dir}/ folder")
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if mask_pattern or masks_dir:
        return _named_pairs(files, img_dir, mask_dir, mask_pattern or "{stem}.{ext}")
    mask_re = re.compile(r"_mask(_\d+)?$")
    images = [p for p in files if not mask_re.search(p.stem)]
    if not images:
        raise DataError(f"{img_dir}: empty folder: no image files ({', '.join(IMAGE_EXTS)})")
    by_stem = {folder: _by_stem(folder, mask_re) for folder in (mask_dir, mask_dir / "0", img_dir)}
    pairs = []
    for img in images:
        found = by_stem[mask_dir][0].get(img.stem) or by_stem[mask_dir / "0"][0].get(img.stem)
        if not found:
            found = by_stem[mask_dir][1].get(img.stem) or by_stem[img_dir][1].get(img.stem)
        if not found:
            raise DataError(
                f"{img}: no mask found (looked for masks/{img.stem}.*, masks/0/{img.stem}.*, "
                f"masks/{img.stem}_mask.*)"
            )
        if len(found) > 1 and not all(mask_re.search(p.stem) for p in found):
            raise DataError(f"{img}: several masks match: {', '.join(str(p) for p in found)}")
        pairs.append((img, sorted(found)))
    return pairs


def _named_pairs(files: list[Path], img_dir: Path, mask_dir: Path, pattern: str) -> list[tuple[Path, list[Path]]]:
    """Pairs named by the data config: ``mask_dir / pattern.format(stem=, ext=)``."""
    def mask_of(p: Path) -> Path:
        return mask_dir / pattern.format(stem=p.stem, ext=p.suffix.lstrip("."))

    masks = {mask_of(p) for p in files}
    images = [p for p in files if p not in masks]  # masks may share the images folder
    if not images:
        raise DataError(f"{img_dir}: empty folder: no image files ({', '.join(IMAGE_EXTS)})")
    pairs = []
    for img in images:
        mask = mask_of(img)
        if not mask.is_file():
            raise DataError(f"{img}: no mask {mask} (data config: masks_dir {mask_dir.name}, "
                            f"mask_pattern '{pattern}')")
        pairs.append((img, [mask]))
    return pairs


def _by_stem(folder: Path, mask_re: re.Pattern) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Image files of ``folder`` by stem, and ``<stem>_mask[_N]`` files by their base stem."""
    plain: dict[str, list[Path]] = {}
    suffixed: dict[str, list[Path]] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                plain.setdefault(p.stem, []).append(p)
                m = mask_re.search(p.stem)
                if m:
                    suffixed.setdefault(p.stem[: m.start()], []).append(p)
    return plain, suffixed


LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights: colour to grey for a network trained on grey images."""


def to_channels(image: np.ndarray, channels: int, where: str, axis: int = -1) -> np.ndarray:
    """``image`` with ``channels`` channels on ``axis``, for a network trained on a folder:
    grey repeated (as :func:`load_folder` makes grey cases of a colour dataset), colour to
    grey by :data:`LUMA` for a one-channel network.

    Example:
        >>> to_channels(np.ones((2, 2, 3), np.float32), 1, "x.png").shape
        (2, 2, 1)

    Raises:
        DataError: any other pair of channel counts, naming ``where``.
    """
    c = image.shape[axis]
    if c == channels:
        return image
    if c == 1:
        return np.repeat(image, channels, axis=axis)
    if channels == 1 and c == 3:
        grey = np.tensordot(np.moveaxis(image.astype(np.float32), axis, -1), np.array(LUMA, np.float32), axes=1)
        return np.expand_dims(grey, axis)
    raise DataError(f"{where}: image has {c} channels; the network takes {channels}")


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to ``[H, W, 1|3]`` uint8 or float32.

    Raises:
        DataError: the file cannot be decoded (truncated, not an image, unsupported mode).
    """
    im = _open(path)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        check_finite(arr, path)
        return (arr / max(float(arr.max()), 1.0) * 255.0)[..., None]
    if im.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA", "1"):
        im = im.convert("RGB" if im.mode not in ("LA", "1") else "L")
    if im.mode not in ("L", "RGB"):
        raise DataError(f"{path}: unsupported image mode {im.mode}")
    arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask file to ``[H, W]`` integers (RGB masks must be gray in colour).

    Raises:
        DataError: unreadable file, or a colour mask whose channels differ.
    """
    im = _open(path)
    if im.mode == "P":
        arr = np.asarray(im)  # palette index = class index
    elif im.mode in ("RGB", "RGBA"):
        arr = np.asarray(im.convert("RGB"))
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DataError(f"{path}: colour mask with differing channels; expected a gray or index mask")
        arr = arr[..., 0]
    else:
        arr = np.asarray(im.convert("L") if im.mode in ("1", "LA") else im)
    if arr.ndim != 2:
        raise DataError(f"{path}: mask has shape {arr.shape}, expected a 2D array")
    return arr.astype(np.int64)


def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated image file ({err})") from None
    if getattr(im, "n_frames", 1) > 1:  # only the first page would be read
        raise DataError(f"{path}: holds {im.n_frames} pages (multi-page TIFF or animated image); save each page "
                        f"as its own file")
    return im


def _target_size(size: int | tuple[int, ...] | None, shapes: list[tuple[tuple[int, int], Path]]) -> tuple[int, int]:
    if size is None:
        first_shape, first_path = shapes[0]
        for shape, path in shapes:
            if shape != first_shape:
                raise DataError(
                    f"{path}: image is {shape[1]}x{shape[0]} but {first_path.name} is "
                    f"{first_shape[1]}x{first_shape[0]}; set a size (--size) to resize them all"
                )
        return first_shape
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise DataError(f"size {size} has {len(size)} axes; 2D images need one or two")
    return (size[0], size[1])


def _resize(arr: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """Resize ``[H, W, C]`` to ``size`` (height, width) channel by channel with PIL."""
    if arr.shape[:2] == tuple(size):
        return arr
    out = np.empty((*size, arr.shape[2]), arr.dtype)
    for c in range(arr.shape[2]):
        ch = arr[..., c]
        ch = ch.astype(np.float32 if ch.dtype.kind == "f" else np.uint8)
        out[..., c] = np.asarray(Image.fromarray(ch).resize((size[1], size[0]), resample))
    return out
