"""Metrics at each case's native resolution: predictions resampled to the original mask size."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nasseg.data import load_dataset, resolve_data
from nasseg.train.evaluate import evaluate

DSB = "../shared/data/dsb2018_96"


class Replay(nn.Module):
    """Returns stored logits batch by batch (evaluate walks the cases in order)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits, self.at = logits, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits[self.at: self.at + x.shape[0]]
        self.at += x.shape[0]
        return out


def _folder(tmp_path, n=3, size=96):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx, r = rng.uniform(30, 66, 2).tolist() + [rng.uniform(9, 20)]
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.uint8) * 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"c{i}.png")
        Image.fromarray((mask // 2 + rng.integers(0, 60, mask.shape)).astype(np.uint8)).save(
            tmp_path / "images" / f"c{i}.png")
    return tmp_path


def test_prediction_perfect_at_training_size_is_scored_at_native_size(tmp_path):
    ds = load_dataset(resolve_data(str(_folder(tmp_path)), size=64), cache=False)
    assert tuple(ds.labels.shape[1:]) == (64, 64) and tuple(ds.native_labels[0].shape) == (96, 96)
    logits = (ds.labels[:, None].float() * 2 - 1) * 10  # perfect at 64 x 64
    summary, rows = evaluate(Replay(logits), ds, device=torch.device("cpu"), batch_size=2)
    for i, row in enumerate(rows):
        up = F.interpolate(logits[i: i + 1], size=(96, 96), mode="bilinear", align_corners=False)[0, 0] > 0
        native = ds.native_labels[i].bool()
        by_hand = 2 * (up & native).sum().item() / (up.sum().item() + native.sum().item())
        assert row["dice"] == pytest.approx(by_hand, abs=1e-12) and row["dice"] < 1.0
        assert row["label_voxels"] == int(native.sum())
    assert summary["dice"] < 1.0


def test_train_at_64_on_dsb2018_reports_dice_at_96(tmp_path, capsys):
    from nasseg.cli import main

    run = tmp_path / "run"
    code = main(["train", "cmunext_s", "--data", DSB, "--size", "64", "--max-cases", "12", "--epochs", "1",
                 "--threads", "1", "--run-dir", str(run), "--no-progress"])
    assert code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "test (scored once, 2 cases at native size 96x96)" in out and "voxels" in out
    split = json.loads((run / "split.json").read_text())
    assert len(split["test"]) == 2 and not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    with open(run / "test_per_case.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # the label the case was scored against is the 96 x 96 file
        mask = np.asarray(Image.open(f"{DSB}/masks/{r['case_id']}.png")) > 127
        assert mask.shape == (96, 96) and int(r["label_voxels"]) == int(mask.sum())
        assert int(r["pred_voxels"]) <= 96 * 96


def test_decathlon_spacing_from_the_header_gives_hd95_in_mm_equal_to_monai(tmp_path):
    import json

    import nibabel as nib
    from monai.metrics import compute_hausdorff_distance

    label = np.zeros((20, 18, 10), np.uint8)
    label[5:14, 4:12, 2:7] = 1
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    affine = np.diag([1.0, 1.0, 3.0, 1.0])  # anisotropic: 3 mm slices
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random(label.shape).astype(np.float32), affine),
             str(tmp_path / "imagesTr" / "c0.nii.gz"))
    nib.save(nib.Nifti1Image(label, affine), str(tmp_path / "labelsTr" / "c0.nii.gz"))
    (tmp_path / "dataset.json").write_text(json.dumps({
        "labels": {"0": "background", "1": "organ"},
        "training": [{"image": "./imagesTr/c0.nii.gz", "label": "./labelsTr/c0.nii.gz"}]}))
    ds = load_dataset(resolve_data(str(tmp_path)), cache=False)
    assert ds.spacing == [(1.0, 1.0, 3.0)]
    pred = np.zeros_like(label)
    pred[6:15, 4:11, 3:8] = 1  # shifted one slice (3 mm) and one voxel
    logits = torch.from_numpy(pred[None, None].astype(np.float32) * 20 - 10)
    summary, rows = evaluate(Replay(logits), ds, device=torch.device("cpu"))
    onehot = [torch.from_numpy(np.stack([1 - m, m])[None].astype(np.float32)) for m in (pred, label)]
    monai = float(compute_hausdorff_distance(*onehot, percentile=95, spacing=(1.0, 1.0, 3.0)))
    assert rows[0]["hd95"] == pytest.approx(monai, rel=1e-6) and monai >= 3.0
