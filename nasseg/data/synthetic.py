"""Procedural lesion images: the default dataset, so nasseg runs with no data at all.

Each case is a textured, smoothly varying background with 1-3 *lesions* (the labelled
objects) and 1-4 *distractors* (unlabelled objects with the same intensity range), plus
noise. Lesions are filled star-shaped blobs of random size, anisotropy and boundary
roughness, brighter or darker than the background, with blurred edges and their own
texture. Distractors are thin curves, hollow rings and small dots. Telling a lesion
from a distractor needs context (shape and size, not only intensity), so a network
with a larger receptive field and more capacity scores better. With ``classes=K``,
lesions of class ``k`` differ by texture and intensity sign, with overlapping ranges.

Case ``i`` depends only on ``(seed, i)``: the same case is generated whatever ``n_cases``.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from nasseg.data.base import SegDataset, normalise
from nasseg.data.config import DataConfig
from nasseg.errors import DataError


def make_synthetic(cfg: DataConfig) -> SegDataset:
    """Generate the synthetic dataset described by ``cfg.synthetic`` and ``cfg.size``.

    Args:
        cfg: a config with ``kind="synthetic"``.

    Returns:
        A fixed-size :class:`SegDataset`: images ``[N, channels, *size]``, labels
        ``[N, *size]`` with values ``0..classes``.

    Example:
        >>> ds = make_synthetic(resolve_data("synthetic", n_cases=4, size=32))
        >>> tuple(ds.images.shape), ds.num_classes
        ((4, 1, 32, 32), 2)
    """
    s = cfg.synthetic
    shape = _shape(cfg.size, s.spatial_dims)
    n = s.n_cases if cfg.max_cases is None else min(s.n_cases, cfg.max_cases)
    check_memory(n, s.channels, shape)
    images, labels = [], []
    for i in range(n):
        rng = np.random.default_rng([s.seed, i])
        if s.task == "context":
            img, lab = context_case(rng, shape, channels=s.channels, noise=s.noise)
        else:
            img, lab = synth_case(rng, shape, classes=s.classes, channels=s.channels, noise=s.noise)
        images.append(normalise(img))
        labels.append(lab)
    if s.task == "context" and s.classes != 1:
        raise ValueError("synthetic task 'context' is binary (classes: 1)")
    names = ["background"] + (["lesion"] if s.classes == 1 else [f"lesion_{k}" for k in range(1, s.classes + 1)])
    return SegDataset(
        kind="synthetic", spatial_dims=s.spatial_dims, in_channels=s.channels,
        num_classes=s.classes + 1, case_ids=[f"synth_{i:04d}" for i in range(n)],
        images=torch.from_numpy(np.stack(images)), labels=torch.from_numpy(np.stack(labels)),
        sources=[""] * n, class_names=names,
        info={"generator": s.model_dump(), "size": list(shape)},
    )


MAX_SYNTHETIC_BYTES = 16 * 2 ** 30
"""The most memory a generated dataset may take (16 GiB): a stated budget, not the free RAM,
so the same config is accepted or refused on every machine."""


def synthetic_bytes(n: int, channels: int, shape: tuple[int, ...]) -> int:
    """Memory of ``n`` generated cases: float32 images ``[n, channels, *shape]`` and uint8 labels.

    Example:
        >>> synthetic_bytes(192, 1, (64, 64))
        3932160
    """
    voxels = 1
    for s in shape:
        voxels *= s
    return n * voxels * (4 * channels + 1)


def check_memory(n: int, channels: int, shape: tuple[int, ...]) -> None:
    """Refuse, before generating anything, a dataset over :data:`MAX_SYNTHETIC_BYTES`.

    Raises:
        DataError: naming the case count, the size and the memory it would take.
    """
    need = synthetic_bytes(n, channels, shape)
    if need > MAX_SYNTHETIC_BYTES:
        raise DataError(f"synthetic data: {n:,} cases of {'x'.join(map(str, shape))} x {channels} channel"
                        f"{'s' * (channels != 1)} need {need / 2 ** 30:,.1f} GiB of memory, over the "
                        f"{MAX_SYNTHETIC_BYTES / 2 ** 30:.0f} GiB limit; lower synthetic.n_cases or size")


def _shape(size: int | tuple[int, ...] | None, dims: int) -> tuple[int, ...]:
    if size is None:
        size = 64 if dims == 2 else 32
    if isinstance(size, int):
        return (size,) * dims
    if len(size) != dims:
        raise ValueError(f"size {size} has {len(size)} axes but spatial_dims is {dims}")
    return tuple(size)


def synth_case(rng: np.random.Generator, shape: tuple[int, ...], *, classes: int = 1,
               channels: int = 1, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw one case.

    Args:
        rng: the case's generator.
        shape: spatial shape, 2 or 3 axes.
        classes: foreground classes.
        channels: image channels.
        noise: difficulty scale of noise and low contrast.

    Returns:
        ``(image [channels, *shape] float32, label [*shape] uint8)``.
    """
    size = float(min(shape))
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    base = _smooth_noise(rng, shape, size / 6) * rng.uniform(0.3, 1.0)
    base += _smooth_noise(rng, shape, rng.uniform(0.7, 1.5)) * rng.uniform(0.1, 0.4) * noise
    label = np.zeros(shape, np.uint8)
    image = base
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, classes + 1))
        mask = _blob(rng, grid, shape, radius=rng.uniform(size / 10, size / 4.5))
        image = image + _appearance(rng, mask, shape, cls, classes, noise)
        label[mask > 0.5] = cls
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.choice(["curve", "ring", "dot"])
        mask = {"curve": _curve, "ring": _ring, "dot": _dot}[kind](rng, grid, shape)
        cls = int(rng.integers(1, classes + 1))
        image = image + _appearance(rng, mask, shape, cls, classes, noise)
    sigma = rng.uniform(0.15, 0.45) * noise
    chans = [image * rng.uniform(0.7, 1.3) + rng.normal(0, sigma, shape) for _ in range(channels)]
    return np.stack(chans).astype(np.float32), label


def context_case(rng: np.random.Generator, shape: tuple[int, ...], *, channels: int = 1,
                 noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw one case of the ``context`` task: lesions that only their whole shape reveals.

    The image is split into 2 x 2 (x 2) cells; each cell holds at most one object, all of the
    same brightness and texture: *lesions* (filled star-shaped blobs, radius 20-24 % of the
    image; labelled), *rings* (the same blobs with a hole of a quarter to a third of their
    radius: their walls are thicker than the hole) and small *dots*. A pixel of a ring's wall
    looks like a lesion's unless the network sees the hole, up to a lesion's radius away: networks with
    two resolution levels or small kernels cannot see that far, deeper ones can, so the task
    ranks architectures by their receptive field within a few epochs.

    Returns:
        ``(image [channels, *shape] float32, label [*shape] uint8 in {0, 1})``.
    """
    dims, size = len(shape), float(min(shape))
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    image = _smooth_noise(rng, shape, size / 4) * rng.uniform(0.1, 0.3)
    label = np.zeros(shape, np.uint8)
    contrast = rng.uniform(1.0, 1.6)
    cells = [np.array(c, np.float32) for c in np.ndindex(*([2] * dims))]
    kinds = ["lesion"] * int(rng.integers(1, 3)) + ["ring"] * int(rng.integers(1, 3))
    kinds += ["dot", "none"][: len(cells) - len(kinds)]
    for cell, kind in zip([cells[i] for i in rng.permutation(len(cells))], kinds):
        radius = (rng.uniform(0.2, 0.24) if kind != "dot" else rng.uniform(0.04, 0.07)) * size
        half = np.array(shape, np.float32) / 2
        room = np.maximum(half / 2 - radius * 1.15, 0)
        centre = (cell + 0.5) * half + rng.uniform(-room, room)
        if kind == "none":
            continue
        mask = _blob(rng, grid, shape, radius, centre)
        if kind == "ring":
            hole = np.sqrt(((grid - centre.reshape(-1, *[1] * dims)) ** 2).sum(0)) < radius * rng.uniform(0.25, 0.38)
            mask = mask * ~hole
        image = image + mask * contrast * rng.uniform(0.85, 1.15)
        if kind == "lesion":
            label[mask > 0.5] = 1
    sigma = rng.uniform(0.15, 0.3) * noise
    chans = [image + rng.normal(0, sigma, shape) for _ in range(channels)]
    return np.stack(chans).astype(np.float32), label


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


def _blob(rng: np.random.Generator, grid: np.ndarray, shape: tuple[int, ...], radius: float,
          centre: np.ndarray | None = None) -> np.ndarray:
    """A filled star-shaped object with soft (blurred) edges, values in [0, 1]; placed at
    ``centre`` or at a random position."""
    dims = len(shape)
    if centre is None:
        margin = np.minimum(np.array(shape) * 0.5, radius)
        centre = np.array([rng.uniform(m * 0.6, n - m * 0.6) for m, n in zip(margin, shape)], np.float32)
    centre = np.asarray(centre, np.float32)
    d = grid - centre.reshape(-1, *[1] * dims)
    q, _ = np.linalg.qr(rng.standard_normal((dims, dims)))
    scales = rng.uniform(0.6, 1.4, dims)
    d = np.tensordot(q.T * (1 / scales)[:, None], d, axes=1)
    dist = np.sqrt((d ** 2).sum(0)) + 1e-6
    u = d / dist
    r = np.ones(shape, np.float32)
    for _ in range(int(rng.integers(2, 5))):
        axis = rng.standard_normal(dims)
        axis /= np.linalg.norm(axis)
        ang = np.arccos(np.clip(np.tensordot(axis, u, axes=1), -1, 1))
        r += rng.uniform(0.05, 0.22) * np.cos(int(rng.integers(2, 6)) * ang + rng.uniform(0, 2 * np.pi))
    hard = (dist < radius * r).astype(np.float32)
    return ndimage.gaussian_filter(hard, rng.uniform(0.3, 1.5))


def _curve(rng: np.random.Generator, grid: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A thin curved tube (a quadratic Bezier), 1-2.5 voxels wide."""
    dims = len(shape)
    pts = np.stack([rng.uniform(0, n, 3) for n in shape], axis=1)  # [3, dims]
    t = np.linspace(0, 1, 40)[:, None]
    curve = (1 - t) ** 2 * pts[0] + 2 * (1 - t) * t * pts[1] + t ** 2 * pts[2]
    flat = grid.reshape(dims, -1).T
    dist = np.full(flat.shape[0], np.inf, np.float32)
    for p in curve:
        dist = np.minimum(dist, ((flat - p) ** 2).sum(1))
    width = rng.uniform(0.8, 1.6)
    return ndimage.gaussian_filter((np.sqrt(dist) < width).reshape(shape).astype(np.float32), 0.5)


def _ring(rng: np.random.Generator, grid: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A hollow ring (2D) or shell (3D) of lesion size."""
    size = float(min(shape))
    radius = rng.uniform(size / 10, size / 5)
    outer = _blob(rng, grid, shape, radius)
    inner = ndimage.binary_erosion(outer > 0.5, iterations=int(rng.integers(2, 4)))
    return np.clip(outer - inner, 0, 1)


def _dot(rng: np.random.Generator, grid: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A small round object, smaller than any lesion."""
    return _blob(rng, grid, shape, radius=rng.uniform(1.0, max(1.5, min(shape) / 18)))


def _appearance(rng: np.random.Generator, mask: np.ndarray, shape: tuple[int, ...],
                cls: int, classes: int, noise: float) -> np.ndarray:
    """Intensity added by one object: offset and texture depend on its class."""
    sign = 1.0 if (cls % 2 == 1) else -1.0
    if rng.random() < 0.2:
        sign = -sign  # overlapping appearance: class is not readable from sign alone
    contrast = rng.uniform(0.8, 1.8) / max(noise, 0.25) ** 0.5
    texture_scale = 0.6 + 0.5 * ((cls - 1) % 3)
    texture = _smooth_noise(rng, shape, texture_scale) * rng.uniform(0.1, 0.5)
    return mask * (sign * contrast + texture)
