"""Fault injection, the preprocessing cache: a damaged entry is found and rebuilt.

Issue 20: a truncated ``.npy`` or a missing index entry in the 3D preprocessing cache gave
"internal error ... please report it" and stayed broken until the user deleted the cache by
hand (a missing entry silently dropped the case).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nasseg.data import load_dataset, resolve_data


def _dataset(root: Path, n: int = 3) -> Path:
    entries = []
    for i in range(n):
        rng = np.random.default_rng(i)
        img = rng.random((6, 7, 5)).astype(np.float32) + 0.1
        lab = np.zeros((6, 7, 5), np.uint8)
        lab[1:3, 1:4, 1:3] = 1
        for sub, arr in (("imagesTr", img), ("labelsTr", lab)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(root / sub / f"case{i}.nii.gz"))
        entries.append({"image": f"./imagesTr/case{i}.nii.gz", "label": f"./labelsTr/case{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "a"}, "training": entries}))
    return root


def _load(root: Path):
    return load_dataset(resolve_data(str(root)), cache=False)


def _truncate(folder: Path) -> None:
    path = folder / "case1_img.npy"
    path.write_bytes(path.read_bytes()[:200])


def _drop_entry(folder: Path) -> None:
    index = json.loads((folder / "index.json").read_text())
    index["cases"] = [c for c in index["cases"] if c["case_id"] != "case1"]
    (folder / "index.json").write_text(json.dumps(index))


def _garble_index(folder: Path) -> None:
    (folder / "index.json").write_text('{"settings": {}, "cases": [')


@pytest.mark.parametrize("damage,reason", [
    (_truncate, "case1_img.npy: ValueError"),
    (_drop_entry, "index.json lists 2 cases for 3 in the data (no entry for case1)"),
    (_garble_index, "index.json unreadable: JSONDecodeError"),
])
def test_a_damaged_cache_is_rebuilt_with_one_line(tmp_path, monkeypatch, caplog, damage, reason):
    monkeypatch.setenv("NASSEG_CACHE_DIR", str(tmp_path / "cache"))
    root = _dataset(tmp_path / "d")
    first = _load(root)
    folder = Path(first.info["cache"])
    want = [first.images[i].clone() for i in range(3)]
    damage(folder)
    with caplog.at_level(logging.WARNING, logger="nasseg"):
        again = _load(root)
    lines = [r.getMessage() for r in caplog.records if "cache is damaged" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{folder}: the preprocessing cache is damaged (")
    assert reason in lines[0] and lines[0].endswith("; rebuilding it")
    assert again.case_ids == ["case0", "case1", "case2"] and again.info["cache"] == str(folder)
    assert all(np.array_equal(again.images[i].numpy(), want[i].numpy()) for i in range(3))
    assert not [p for p in folder.parent.iterdir() if "damaged" in p.name]  # the damaged copy is gone


def test_an_intact_cache_is_opened_without_a_rebuild(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NASSEG_CACHE_DIR", str(tmp_path / "cache"))
    root = _dataset(tmp_path / "d")
    folder = Path(_load(root).info["cache"])
    stamp = (folder / "index.json").stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="nasseg"):
        _load(root)
    assert (folder / "index.json").stat().st_mtime_ns == stamp
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]
