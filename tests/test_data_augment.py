"""On-device augmentation, patch sampling and sliding-window inference."""
from __future__ import annotations

import torch

from nasseg.data import (
    AugmentConfig,
    BatchFeeder,
    augment_batch,
    load_dataset,
    resolve_data,
    sliding_window,
)
from nasseg.data.base import SegDataset
from nasseg.data.batches import crop, default_patch


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for t in (x, x.transpose(-1, -2)):
        out += [t, t.flip(-1), t.flip(-2), t.flip(-1).flip(-2)]
    return out


def test_geometry_applies_to_image_and_label_alike():
    label = torch.randint(0, 3, (16, 6, 6))
    image = torch.stack([label.float(), label.float() * 2], 1)  # channels tied to the label
    gen = torch.Generator().manual_seed(0)
    xa, ya = augment_batch(image, label, AugmentConfig(intensity=0.0), gen)
    assert xa.shape == image.shape and ya.dtype == label.dtype
    assert torch.equal(xa[:, 0], ya.float()) and torch.equal(xa[:, 1], 2 * ya.float())
    # every sample is one of the 8 rotations/reflections of its original, and they vary
    kinds = set()
    for i in range(16):
        match = [k for k, v in enumerate(_dihedral(label[i])) if torch.equal(v, ya[i])]
        assert match
        kinds.add(match[0])
    assert len(kinds) >= 4


def test_no_rot90_for_non_square_and_3d_flips_only():
    label = torch.arange(2 * 4 * 6).reshape(2, 4, 6) % 5
    xa, ya = augment_batch(label[:, None].float(), label, AugmentConfig(intensity=0.0))
    assert ya.shape == (2, 4, 6)
    vol = torch.randint(0, 2, (3, 4, 5, 6))
    xa, ya = augment_batch(vol[:, None].float(), vol, AugmentConfig(intensity=0.0))
    assert torch.equal(xa[:, 0], ya.float()) and ya.shape == vol.shape


def test_intensity_jitter_is_bounded_and_off_when_zero():
    x = torch.ones(32, 1, 4, 4)
    y = torch.zeros(32, 4, 4, dtype=torch.long)
    xa, _ = augment_batch(x, y, AugmentConfig(flip=False, rot90=False, intensity=0.1))
    assert float(xa.min()) >= 0.8 - 1e-6 and float(xa.max()) <= 1.2 + 1e-6 and float(xa.std()) > 0
    xb, _ = augment_batch(x, y, AugmentConfig(flip=False, rot90=False, intensity=0.0))
    assert torch.equal(xb, x)


def test_feeder_whole_cases_drops_a_trailing_single_case():
    ds = load_dataset(resolve_data("synthetic", n_cases=9, size=16), cache=False)
    feeder = BatchFeeder(ds, batch_size=4, augment=AugmentConfig(), seed=0)
    shapes = [tuple(x.shape) for x, _ in feeder.epoch()]
    assert shapes == [(4, 1, 16, 16), (4, 1, 16, 16)] and len(feeder) == 2
    feeder = BatchFeeder(ds.subset(range(7)), batch_size=4, augment=AugmentConfig(), seed=0)
    assert [x.shape[0] for x, _ in feeder.epoch()] == [4, 3]


def test_feeder_patches_from_varying_volumes_with_foreground():
    labels = [torch.zeros(6, 9, 5, dtype=torch.uint8), torch.zeros(12, 7, 10, dtype=torch.uint8)]
    labels[0][1, 1, 1] = 1
    labels[1][10, 6, 9] = 2
    ds = SegDataset("decathlon", 3, 1, 3, ["a", "b"], [lb[None].float() for lb in labels], labels)
    feeder = BatchFeeder(ds, batch_size=2, augment=AugmentConfig(flip=False, intensity=0.0), seed=0,
                         patch_size=(8, 8, 8), fg_fraction=1.0)
    for _ in range(5):
        (x, y), = list(feeder.epoch())
        assert tuple(x.shape) == (2, 1, 8, 8, 8) and tuple(y.shape) == (2, 8, 8, 8)
        assert torch.equal(x[:, 0], y.float())  # image and label cropped at the same place
        assert all(int(y[i].sum()) > 0 for i in range(2))  # foreground oversampling found the voxel


def test_crop_pads_and_default_patch():
    assert crop(torch.ones(1, 2, 2), (-1, 0), (3, 3))[0].tolist() == [[0, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert default_patch([(35, 51, 35), (31, 40, 24), (43, 59, 47)], 8) == (40, 56, 40)


def test_sliding_window_matches_whole_volume_prediction():
    torch.manual_seed(0)
    pointwise = torch.nn.Conv3d(1, 2, 1)
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    x = torch.randn(1, 11, 13, 9)
    with torch.no_grad():
        # 8 overlapping windows, weighted averages of identical per-voxel answers: exact
        whole = pointwise(x[None])[0]
        slid = sliding_window(pointwise, x, (8, 8, 8), overlap=0.5, batch_size=3)
        # a volume smaller than the window: zero-padded around it (MONAI), cropped back
        small = sliding_window(conv, x[:, :5, :6, :7], (8, 8, 8))
        ref = conv(torch.nn.functional.pad(x[:, :5, :6, :7], (0, 1, 1, 1, 1, 2))[None])[0][:, 1:6, 1:7, 0:7]
        # one window covering the whole volume: exactly the whole-volume forward of a real conv
        one = sliding_window(conv, x, (11, 13, 9), batch_size=2)
    assert slid.shape == whole.shape and torch.allclose(slid, whole, atol=1e-5)
    assert torch.allclose(one, conv(x[None])[0], atol=1e-5)
    assert small.shape == (2, 5, 6, 7) and torch.allclose(small, ref, atol=1e-5)


def test_flip_only_listed_axes():
    vol = torch.randint(0, 4, (16, 3, 4, 5))
    _, ya = augment_batch(vol[:, None].float(), vol, AugmentConfig(flip=[0], intensity=0.0))
    flipped = [torch.equal(ya[i], vol[i].flip(0)) and not torch.equal(ya[i], vol[i]) for i in range(16)]
    assert all(torch.equal(ya[i], vol[i]) or flipped[i] for i in range(16)) and 0 < sum(flipped) < 16
    _, yn = augment_batch(vol[:, None].float(), vol, AugmentConfig(flip=False, intensity=0.0))
    assert torch.equal(yn, vol)
