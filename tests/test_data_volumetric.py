"""3D geometry, preprocessing cache, planner and sampling on generated volumes
(anisotropic spacing, several modalities, nested classes), all a few thousand voxels."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from nasseg.arch import load_arch
from nasseg.data import BatchFeeder, load_dataset, resolve_data
from nasseg.data.config import AugmentConfig
from nasseg.data.geometry import resampled_affine, to_original
from nasseg.data.plan import make_plan, plan_spacing, step_memory_mb
from nasseg.errors import ConfigError

UNET = Path(__file__).resolve().parents[1] / "studies" / "arch" / "unet3d_small.yaml"


def _affine(spacing, offset=(-10.0, 5.0, 2.5)):
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = offset
    return a


def _volume(shape, rng, channels, scales):
    """A head-like case: zero background around a box, nested classes 1 > 2 > 3 inside."""
    img = np.zeros((*shape, channels), np.float32)
    lab = np.zeros(shape, np.uint8)
    box = tuple(slice(2, n - 2) for n in shape)
    for c in range(channels):
        img[(*box, c)] = scales[c] * (1 + rng.random(tuple(n - 4 for n in shape)))
    centre = [n // 2 for n in shape]
    grid = np.indices(shape)
    r = np.sqrt(sum(((g - c) / (n / 4)) ** 2 for g, c, n in zip(grid, centre, shape)))
    lab[r < 1.0] = 1
    lab[r < 0.6] = 2
    lab[r < 0.3] = 3
    for c in range(channels):
        img[..., c][lab > 0] += scales[c]
    return img, lab


def write_decathlon(root: Path, n=4, shape=(12, 14, 8), spacing=(1.0, 1.0, 3.0),
                    modality=("FLAIR", "T1w"), scales=(1.0, 1000.0), seed=0) -> Path:
    """A Decathlon folder of ``n`` nested-class cases (tests only)."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        img, lab = _volume(shape, rng, len(modality), scales)
        if len(modality) == 1:
            img = img[..., 0]
        for sub, arr in (("imagesTr", img), ("labelsTr", lab)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, _affine(spacing)), str(root / sub / f"case_{i:02d}.nii.gz"))
        entries.append({"image": f"./imagesTr/case_{i:02d}.nii.gz", "label": f"./labelsTr/case_{i:02d}.nii.gz"})
    meta = {"modality": {str(k): m for k, m in enumerate(modality)},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing", "3": "enhancing"},
            "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_nifti_with_spacing_113_is_resampled_as_planned(tmp_path):
    root = write_decathlon(tmp_path, n=2)
    planned = load_dataset(resolve_data(str(root)), cache=False)
    assert planned.info["preprocessing"]["target_spacing"] == [1.0, 1.0, 3.0]
    meta = planned.info["metas"]["case_00"]
    assert meta.spacing == (1.0, 1.0, 3.0) and meta.crop == [(2, 10), (2, 12), (2, 6)]
    assert meta.resampled_shape == (8, 10, 4)  # cropped, no resampling at the planned spacing
    iso = load_dataset(resolve_data(str(root), target_spacing=(1.0, 1.0, 1.0)), cache=False)
    meta = iso.info["metas"]["case_00"]
    assert meta.resampled_shape == (8, 10, 12) and tuple(iso.images[0].shape) == (2, 8, 10, 12)
    # the resampled grid's affine: 1 mm voxels, first centre inside the first cropped voxel
    a = resampled_affine(meta)
    assert np.allclose(np.linalg.norm(a[:3, :3], axis=0), (1, 1, 1))
    assert np.allclose(a[:3, 3], (-10 + 2, 5 + 2, 2.5 + 3 * 2 - 1.5 + 0.5))  # z: voxel 2 spans 7..10 mm


def test_anisotropic_spacing_rule():
    assert plan_spacing([(1, 1, 5), (1, 1, 5), (1, 1, 2)]) == (1.0, 1.0, 2.6)
    assert plan_spacing([(0.8, 0.8, 1.0)] * 3) == (0.8, 0.8, 1.0)


def test_crop_resample_map_back_round_trips_a_label_map(tmp_path):
    root = write_decathlon(tmp_path, n=2, shape=(12, 14, 8), spacing=(1.0, 1.0, 3.0))
    ds = load_dataset(resolve_data(str(root), target_spacing=(0.5, 1.0, 1.0)), cache=False)
    for i, cid in enumerate(ds.case_ids):
        meta = ds.info["metas"][cid]
        back = to_original(ds.labels[i].long(), meta)
        original = nib.load(str(root / "labelsTr" / f"{cid}.nii.gz"))
        assert tuple(back.shape) == original.shape and np.allclose(meta.affine, original.affine)
        assert torch.equal(back, torch.from_numpy(np.asarray(original.dataobj)).long())
        assert torch.equal(ds.native_labels[i].long(), back) and ds.spacing[i] == (1.0, 1.0, 3.0)
        # logits map back too: one-hot logits of the labels give the same labels
        logits = torch.nn.functional.one_hot(ds.labels[i].long(), 4).permute(3, 0, 1, 2).float()
        assert torch.equal(to_original(logits, meta), back)


def test_normalisation_per_channel_by_modality(tmp_path):
    root = write_decathlon(tmp_path, n=3, modality=("CT", "T2"), scales=(300.0, 5.0))
    ds = load_dataset(resolve_data(str(root)), cache=False)
    stats = ds.info["preprocessing"]["ct_stats"]["0"]
    assert 300 < stats["lo"] < stats["hi"] < 1000  # foreground CT intensities (300..900)
    for i, cid in enumerate(ds.case_ids):
        img = ds.images[i].numpy()
        raw = np.asarray(nib.load(str(root / "imagesTr" / f"{cid}.nii.gz")).dataobj)
        box = tuple(slice(lo, hi) for lo, hi in ds.info["metas"][cid].crop)
        ct = raw[(*box, 0)]
        expect = (np.clip(ct, stats["lo"], stats["hi"]) - stats["mean"]) / stats["std"]
        assert np.allclose(img[0], expect, atol=1e-4)
        mr, mask = img[1], raw[(*box, 1)] != 0
        assert abs(mr[mask].mean()) < 1e-4 and abs(mr[mask].std() - 1) < 1e-3 and np.all(mr[~mask] == 0)


def test_cache_is_reused_and_memory_mapped(tmp_path):
    root = write_decathlon(tmp_path, n=2)
    a = load_dataset(resolve_data(str(root)), cache=False)
    stamp = (Path(a.info["cache"]) / "index.json").stat().st_mtime_ns
    b = load_dataset(resolve_data(str(root)), cache=False)
    assert b.info["cache"] == a.info["cache"]
    assert (Path(b.info["cache"]) / "index.json").stat().st_mtime_ns == stamp
    assert b.subset([1]).case_ids == ["case_01"] and b.subset([1]).shapes() == [b.shapes()[1]]
    other = load_dataset(resolve_data(str(root), target_spacing=(1.0, 1.0, 1.5)), cache=False)
    assert other.info["cache"] != a.info["cache"]


def test_planner_fits_the_budget_and_refuses_what_cannot_fit(tmp_path):
    root = write_decathlon(tmp_path, n=2, shape=(40, 44, 12), modality=("MRI",), scales=(1.0,))
    arch = load_arch(str(UNET))
    ds = load_dataset(resolve_data(str(root)), cache=False)
    for budget in (150.0, 400.0):
        cfg = resolve_data(str(root), memory_mb=budget, max_batch=4)
        plan = make_plan(arch, ds, device="cpu", data_cfg=cfg)
        assert step_memory_mb(arch, 1, 4, plan.patch_size, plan.batch_size) <= budget
        assert all(p % 8 == 0 for p in plan.patch_size) and plan.batch_size >= 2
    small = make_plan(arch, ds, device="cpu", data_cfg=resolve_data(str(root), memory_mb=30.0))
    big = make_plan(arch, ds, device="cpu", data_cfg=resolve_data(str(root), memory_mb=400.0))
    assert np.prod(small.patch_size) < np.prod(big.patch_size)
    with pytest.raises(ConfigError, match=r"data\.plan\.memory_mb"):
        make_plan(arch, ds, device="cpu", data_cfg=resolve_data(str(root), memory_mb=5.0))
    with pytest.raises(ConfigError, match=r"lower train\.batch_size"):
        make_plan(arch, ds, device="cpu", data_cfg=resolve_data(str(root), memory_mb=150.0), batch_size=64)
    with pytest.raises(ConfigError, match=r"lower data\.patch_size"):
        make_plan(arch, ds, device="cpu", batch_size=2,
                  data_cfg=resolve_data(str(root), memory_mb=150.0, patch_size=(96, 96, 96)))


def test_foreground_sampling_per_class_and_steps_per_epoch(tmp_path):
    root = write_decathlon(tmp_path, n=3, shape=(24, 24, 10))
    ds = load_dataset(resolve_data(str(root), target_spacing=(1.0, 1.0, 3.0)), cache=False)
    feeder = BatchFeeder(ds, 2, AugmentConfig(flip=False, rot90=False, intensity=0.0), seed=0,
                         patch_size=(4, 4, 4), fg_fraction=1.0, fg_classes=[0, 0, 1], steps_per_epoch=5)
    batches = list(feeder.epoch())
    assert len(feeder) == 5 and len(batches) == 5
    assert all(bool((y == 3).any(dim=(1, 2, 3)).all()) for _, y in batches)  # every patch holds class 3
    x, _ = batches[0]
    assert tuple(x.shape) == (2, 2, 4, 4, 4)
    # patches larger than the volume are zero-padded
    pad = BatchFeeder(ds, 2, AugmentConfig(flip=False, rot90=False, intensity=0.0), patch_size=(32, 32, 8))
    x, y = next(iter(pad.epoch()))
    assert tuple(x.shape) == (2, 2, 32, 32, 8)
    whole = {int((ds.labels[i] > 0).sum()) for i in range(len(ds))}
    assert all(int((y[b] > 0).sum()) in whole for b in range(2))  # the whole case inside, zeros around
    assert all(int((x[b, 0] != 0).sum()) <= int(np.prod(ds.shapes()[0])) for b in range(2))


def test_train_plans_scores_on_original_grid_with_regions_and_refuses_size(tmp_path):
    from nasseg.train import TrainConfig, train

    root = write_decathlon(tmp_path / "d", n=4, shape=(20, 22, 8))
    meta = json.loads((root / "dataset.json").read_text())
    meta["regions"] = {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}
    (root / "dataset.json").write_text(json.dumps(meta))
    arch = load_arch({"name": "tiny3d", "spatial_dims": 3, "in_channels": 2, "out_channels": 4,
                      "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]})
    data = resolve_data(str(root), target_spacing=(1.0, 1.0, 1.5), val_fraction=0.5, memory_mb=200.0)
    cfg = TrainConfig(epochs=1, device="cpu", num_threads=1, steps_per_epoch=3)
    res = train(arch, data, cfg, run_dir=tmp_path / "run", progress=False)
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["target_spacing"] == [1.0, 1.0, 1.5] and plan["sources"]["batch_size"] == "planned"
    assert plan["memory_mb"] <= 200.0 and res.history[0]["train_seconds"] >= 0
    assert {"dice_WT", "dice_TC", "dice_ET", "dice_3"} <= set(res.best)
    assert len(res.per_case) == 3 * 2  # two held-out cases, three classes, scored on the original grid
    with pytest.raises(ConfigError, match=r"--size.*use --patch-size or data\.plan\.target_spacing"):
        train(arch, resolve_data(str(root), size=16), cfg, progress=False)
    with pytest.raises(ConfigError, match=r"choose a --patch-size that is"):
        train(arch, resolve_data(str(root), patch_size=(5, 8, 8)), cfg, progress=False)


def test_train_cli_prints_the_3d_plan_also_without_progress(tmp_path, capsys):
    import yaml

    from nasseg.cli import main

    root = write_decathlon(tmp_path / "d", n=5, shape=(20, 22, 8))
    arch = tmp_path / "tiny3d.yaml"
    arch.write_text(yaml.safe_dump({"name": "tiny3d", "spatial_dims": 3, "in_channels": 2, "out_channels": 4,
                                    "stages": [{"width": 4, "block": {"type": "conv"}},
                                               {"width": 8, "block": {"type": "conv"}}]}))
    assert main(["train", str(arch), "--data", str(root), "--epochs", "1", "--steps-per-epoch", "2", "--threads", "1",
                 "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "batch planned (3D)" in out and "plan: spacing" in out and "windows per validation pass" in out
