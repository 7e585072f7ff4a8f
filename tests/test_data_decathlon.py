"""Decathlon 3D volumes: loading, normalisation, real data, and every bad input."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nasseg.data import load_dataset, resolve_data
from nasseg.errors import DataError

HIPPO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msd_hippocampus"


def _nii(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))


def _dataset(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], labels=None) -> Path:
    entries = []
    for name, (img, lab) in cases.items():
        _nii(root / "imagesTr" / f"{name}.nii.gz", img)
        _nii(root / "labelsTr" / f"{name}.nii.gz", lab)
        entries.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    meta = {"labels": labels or {"0": "background", "1": "a", "2": "b"}, "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _case(shape=(6, 7, 5), scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * scale).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    lab[3:5, 3:5, 2:4] = 2
    return img, lab


def _load(root: Path, **kw):
    return load_dataset(resolve_data(str(root), **kw), cache=False)


def test_loads_varying_shapes_and_normalises_each_volume(tmp_path):
    _dataset(tmp_path, {"c2": _case((6, 7, 5), 1e6, 1), "c1": _case((4, 8, 6), 255.0, 2)})
    ds = _load(tmp_path)
    assert ds.kind == "decathlon" and ds.spatial_dims == 3 and not ds.fixed_size
    assert ds.case_ids == ["c1", "c2"] and ds.num_classes == 3 and ds.out_channels == 3
    assert ds.class_names == ["background", "a", "b"]
    assert [tuple(im.shape) for im in ds.images] == [(1, 4, 8, 6), (1, 6, 7, 5)]
    for im in ds.images:  # wildly different scales end up comparable
        assert abs(float(im.mean())) < 1e-4 and abs(float(im.std(unbiased=False)) - 1) < 1e-3
    assert ds[1].label.dtype.is_floating_point is False and int((ds[1].label == 2).sum()) == 8


def test_four_d_image_is_channels_last(tmp_path):
    img = np.random.default_rng(0).random((6, 7, 5, 2)).astype(np.float32)
    _dataset(tmp_path, {"c": (img, _case()[1])})
    ds = _load(tmp_path)
    assert ds.in_channels == 2 and tuple(ds.images[0].shape) == (2, 6, 7, 5)


def test_detected_by_dataset_json():
    cfg = resolve_data(str(HIPPO))
    assert cfg.kind == "decathlon"


def test_real_hippocampus_subset():
    ds = _load(HIPPO, max_cases=3)  # a seeded sample of 3, not the first 3 files
    assert len(ds) == 3 and ds.case_ids == sorted(ds.case_ids) and ds.case_ids != [
        "hippocampus_001", "hippocampus_003", "hippocampus_004"]
    assert ds.case_ids == _load(HIPPO, max_cases=3).case_ids
    for im in ds.images:  # SOURCE.md shapes within [31..43, 40..59, 24..47]
        assert 31 <= im.shape[1] <= 43 and 40 <= im.shape[2] <= 59 and 24 <= im.shape[3] <= 47
    assert sorted(ds[0].label.unique().tolist()) == [0, 1, 2]


# ---------------------------------------------------------------- bad input: each names the file


def test_image_and_label_of_different_shapes(tmp_path):
    img, _ = _case((6, 7, 5))
    _, lab = _case((6, 7, 4))
    _dataset(tmp_path, {"bad": (img, lab)})
    with pytest.raises(DataError, match=r"labelsTr/bad\.nii\.gz: label shape \(6, 7, 4\) differs from image "
                                        r"bad\.nii\.gz shape \(6, 7, 5\)"):
        _load(tmp_path)


def test_dataset_json_points_at_missing_file(tmp_path):
    _dataset(tmp_path, {"c": _case()})
    (tmp_path / "labelsTr" / "c.nii.gz").unlink()
    with pytest.raises(DataError, match=r"dataset\.json: training\[0\]\.label points at a missing file .*labelsTr/c\.nii\.gz"):
        _load(tmp_path)


def test_truncated_nifti(tmp_path):
    _dataset(tmp_path, {"c": _case((20, 20, 20))})
    path = tmp_path / "imagesTr" / "c.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"imagesTr/c\.nii\.gz: unreadable or truncated NIfTI file"):
        _load(tmp_path)


def test_label_values_outside_named_classes(tmp_path):
    img, lab = _case()
    lab[0, 0, 0] = 5
    _dataset(tmp_path, {"c": (img, lab)})
    with pytest.raises(DataError, match=r"labelsTr/c\.nii\.gz: label value 5 is not one of the classes 0\.\.2"):
        _load(tmp_path)


def test_invalid_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"dataset\.json: not valid JSON"):
        _load(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "bg"}}))
    with pytest.raises(DataError, match=r"dataset\.json: no 'training' list"):
        _load(tmp_path)
