"""2D image folders: layouts, mask encodings, resizing, real data, and every bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasseg.data import load_dataset, resolve_data
from nasseg.errors import DataError

DSB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_96"
BUSI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "busi_256"


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _pair(root: Path, stem: str, image: np.ndarray, mask: np.ndarray, mask_rel: str = "masks/{}.png") -> None:
    _png(root / "images" / f"{stem}.png", image)
    _png(root / mask_rel.format(stem), mask)


def _load(root: Path, **kw):
    return load_dataset(resolve_data(str(root), **kw), cache=False)


def _square_mask(h: int = 8, w: int = 8, fg: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[2:6, 1:4] = fg
    return m


def test_same_stem_layout_gray_binary255(tmp_path):
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    for s in ("b", "a"):
        _pair(tmp_path, s, img, _square_mask())
    ds = _load(tmp_path)
    assert ds.case_ids == ["a", "b"]
    assert tuple(ds.images.shape) == (2, 1, 8, 8) and ds.images.dtype == torch.float32
    assert ds.num_classes == 2 and ds.out_channels == 1 and ds.info["mask_encoding"] == "binary255"
    assert ds[0].label.tolist() == (_square_mask() > 127).astype(int).tolist()
    # per-image z-score
    assert abs(float(ds.images[0].mean())) < 1e-5 and abs(float(ds.images[0].std(unbiased=False)) - 1) < 1e-4


def test_cmunext_masks_0_layout_and_rgb(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    _pair(tmp_path, "x", rgb, _square_mask(), mask_rel="masks/0/{}.png")
    _pair(tmp_path, "y", rgb[..., 0].copy(), _square_mask(), mask_rel="masks/0/{}.png")  # gray among RGB
    ds = _load(tmp_path)
    assert ds.in_channels == 3 and tuple(ds.images.shape) == (2, 3, 8, 8)
    assert int(ds[1].label.sum()) == 12


def test_raw_busi_mask_suffix_and_union_of_lesions(tmp_path):
    img = np.full((8, 8), 50, np.uint8)
    _png(tmp_path / "images" / "benign (1).png", img)
    m1, m2 = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    m1[0, 0], m2[7, 7] = 255, 255
    _png(tmp_path / "images" / "benign (1)_mask.png", m1)
    _png(tmp_path / "images" / "benign (1)_mask_1.png", m2)
    ds = _load(tmp_path)
    assert ds.case_ids == ["benign (1)"]
    lab = ds[0].label
    assert int(lab.sum()) == 2 and lab[0, 0] == 1 and lab[7, 7] == 1


def test_grey_interpolated_values_binarised_above_127(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[:4] = 255
    m[4, 0], m[4, 1], m[4, 2] = 127, 128, 40  # resize leftovers
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), m)
    # three grey levels in one mask look like strays to `auto` (tests/test_faults_data_masks.py):
    # stating the encoding binarises every value
    lab = _load(tmp_path, mask_encoding="binary255")[0].label
    assert lab[4, 0] == 0 and lab[4, 1] == 1 and lab[4, 2] == 0 and int(lab.sum()) == 33


def test_integer_class_masks_kept_as_classes(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[0:2], m[2:4] = 1, 2
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), m)
    _pair(tmp_path, "b", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    ds = _load(tmp_path)
    assert ds.info["mask_encoding"] == "index" and ds.num_classes == 3 and ds.out_channels == 3
    assert sorted(ds[0].label.unique().tolist()) == [0, 1, 2]


def test_resize_bilinear_image_nearest_mask(tmp_path):
    img = np.zeros((4, 4), np.uint8)
    img[:, 2:] = 200
    m = np.zeros((4, 4), np.uint8)
    m[:, 2:] = 255
    _pair(tmp_path, "a", img, m)
    ds = _load(tmp_path, size=8)
    assert tuple(ds.images.shape) == (1, 1, 8, 8)
    assert ds[0].label[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # nearest: no new values
    row = ds.images[0, 0, 0]
    assert len(torch.unique(row)) > 2  # bilinear: intermediate values at the edge


def test_real_dsb_subset():
    ds = _load(DSB, max_cases=6)
    assert tuple(ds.images.shape) == (6, 3, 96, 96) and tuple(ds.labels.shape) == (6, 96, 96)
    assert ds.num_classes == 2 and set(ds.labels.unique().tolist()) == {0, 1}
    fg = float(ds.labels.float().mean())
    assert 0.02 < fg < 0.4  # SOURCE.md: mean foreground fraction 0.138


def test_real_busi_subset_resized():
    ds = _load(BUSI, max_cases=4, size=64)
    assert tuple(ds.images.shape) == (4, 1, 64, 64)
    assert all(int(ds.labels[i].sum()) > 0 for i in range(4))  # SOURCE.md: no mask is empty


# ---------------------------------------------------------------- bad input: each names the file


def test_mask_missing_for_image(tmp_path):
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), _square_mask())
    _png(tmp_path / "images" / "lonely.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"images/lonely\.png: no mask found"):
        _load(tmp_path)


def test_image_and_mask_of_different_sizes(tmp_path):
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), _square_mask(8, 6))
    with pytest.raises(DataError, match=r"masks/a\.png: mask is 6x8 but its image a\.png is 8x8"):
        _load(tmp_path, size=8)


def test_truncated_png(tmp_path):
    _pair(tmp_path, "a", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), _square_mask(64, 64))
    path = tmp_path / "images" / "a.png"
    path.write_bytes(path.read_bytes()[:80])
    with pytest.raises(DataError, match=r"images/a\.png: unreadable or truncated image file"):
        _load(tmp_path)


def test_not_an_image(tmp_path):
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), _square_mask())
    (tmp_path / "masks" / "a.png").write_text("hello")
    with pytest.raises(DataError, match=r"masks/a\.png: unreadable or truncated image file"):
        _load(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"images: empty folder: no image files"):
        _load(tmp_path)


def test_mask_values_fitting_no_encoding(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[:4] = 100
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), m)
    with pytest.raises(DataError, match=r"masks/a\.png: mask values \{0, 100\} fit no encoding"):
        _load(tmp_path)


def test_mixed_mask_encodings(tmp_path):
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), _square_mask(fg=255))
    _pair(tmp_path, "b", np.zeros((8, 8), np.uint8), _square_mask(fg=2))
    with pytest.raises(DataError, match=r"masks/b\.png: mask uses class indices but .*masks/a\.png uses 0/255"):
        _load(tmp_path)


def test_images_of_different_sizes_need_a_size(tmp_path):
    _pair(tmp_path, "a", np.zeros((8, 8), np.uint8), _square_mask())
    _pair(tmp_path, "b", np.zeros((6, 8), np.uint8), _square_mask(6, 8))
    with pytest.raises(DataError, match=r"images/b\.png: image is 8x6 but a\.png is 8x8; set a size"):
        _load(tmp_path)
    assert tuple(_load(tmp_path, size=8).images.shape) == (2, 1, 8, 8)


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(DataError, match="not a dataset folder"):
        resolve_data(str(tmp_path))
    with pytest.raises(DataError, match="no such dataset folder"):
        resolve_data(str(tmp_path / "nope"))
