"""``nasseg predict`` / ``evaluate`` / ``export`` on real data: the masks and scores of a trained
run, reproduced from its folder (dsb2018_96, msd_hippocampus) and from exported files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nasseg.cli import main
from nasseg.data.folder import read_mask
from nasseg.train.metrics import case_metrics

TINY2D = {"name": "tiny2d", "spatial_dims": 2, "in_channels": 3, "out_channels": 1,
          "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "cmunext", "kernel_size": 5}},
                     {"width": 8, "block": {"type": "conv"}}]}
TINY3D = {"name": "tiny3d", "spatial_dims": 3, "in_channels": 1, "out_channels": 3,
          "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]}


def _train(tmp: Path, arch: dict, data: Path, *extra: str) -> Path:
    (tmp / "arch.yaml").write_text(yaml.safe_dump(arch))
    run = tmp / "run"
    code = main(["train", str(tmp / "arch.yaml"), "--data", str(data), "--epochs", "2", "--batch-size", "4",
                 "--threads", "1", "--device", "cpu", "--run-dir", str(run), "--no-progress", *extra])
    assert code == 0
    return run


def _held_out(run: Path) -> tuple[list[str], dict[tuple[str, int], float]]:
    """The run's held-out cases (test split if it has one) and their per-case Dice."""
    split = json.loads((run / "split.json").read_text())
    which = "test" if split.get("test") else "val"
    rows = list(csv.DictReader(open(run / ("test_per_case.csv" if which == "test" else "per_case.csv"))))
    return split[which], {(r["case_id"], int(r["class"])): float(r["dice"]) for r in rows}


def _dice(pred: np.ndarray, label: np.ndarray, num_classes: int, case: str) -> dict[int, float]:
    rows = case_metrics(torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(label.astype(np.int64))[None],
                        num_classes, [case], hausdorff=False)
    return {r["class"]: r["dice"] for r in rows}


def _predict_held_out_volumes(run: Path, data: Path, tmp: Path) -> tuple[list[str], dict[tuple[str, int], float]]:
    """``nasseg predict`` on the run's held-out NIfTI cases into ``tmp/out``."""
    cases, dice = _held_out(run)
    inputs = tmp / "in"
    inputs.mkdir()
    for c in cases:
        (inputs / f"{c}.nii.gz").symlink_to(data / "imagesTr" / f"{c}.nii.gz")
    assert main(["predict", str(run), "--input", str(inputs), "--out", str(tmp / "out"), "--no-progress"]) == 0
    return cases, dice


@pytest.fixture(scope="module")
def dsb_run(tmp_path_factory):
    data = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dsb2018_96"
    if not data.is_dir():
        pytest.skip("real datasets not found")
    tmp = tmp_path_factory.mktemp("dsb")
    return _train(tmp, TINY2D, data, "--max-cases", "50", "--val-fraction", "0.2", "--test-fraction", "0.4"), data


def test_predict_dsb2018_reproduces_run_dice(dsb_run, tmp_path, capsys):
    run, data = dsb_run
    cases, dice = _held_out(run)
    assert len(cases) == 20
    inputs = tmp_path / "in"
    inputs.mkdir()
    for c in cases:
        (inputs / f"{c}.png").symlink_to(data / "images" / f"{c}.png")
    assert main(["predict", str(run), "--input", str(inputs), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "wrote 20 masks" in capsys.readouterr().out
    for c in cases:
        mask = np.asarray(Image.open(tmp_path / "out" / f"{c}.png"))
        assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
        got = _dice(mask > 127, read_mask(data / "masks" / f"{c}.png") > 127, 2, c)[1]
        assert got == pytest.approx(dice[(c, 1)], abs=1e-12)
    # flip test-time augmentation: same files, same sizes, masks still 0/255
    assert main(["predict", str(run), "--input", str(inputs), "--out", str(tmp_path / "tta"), "--tta",
                 "--no-progress", "--index-masks"]) == 0
    assert {p.name for p in (tmp_path / "tta").iterdir()} == {f"{c}.png" for c in cases}
    assert set(np.unique(np.asarray(Image.open(tmp_path / "tta" / f"{cases[0]}.png")))) <= {0, 1}


def test_evaluate_on_renamed_reencoded_copy_matches_run(dsb_run, tmp_path, capsys):
    """The held-out images renamed (case_NNN.bmp), masks re-encoded to exact 0/255 under
    labels/<stem>_seg.png, described by a data config: per-case Dice equal to the run's."""
    from nasseg.ablation.stats import tidy

    run, data = dsb_run
    cases, dice = _held_out(run)
    (tmp_path / "other" / "imgs").mkdir(parents=True)
    (tmp_path / "other" / "labels").mkdir()
    names = {}
    for i, c in enumerate(cases):
        names[f"case_{i:03d}"] = c
        Image.open(data / "images" / f"{c}.png").save(tmp_path / "other" / "imgs" / f"case_{i:03d}.bmp")
        m = (read_mask(data / "masks" / f"{c}.png") > 127).astype(np.uint8) * 255
        Image.fromarray(m).save(tmp_path / "other" / "labels" / f"case_{i:03d}_seg.png")
    cfg = tmp_path / "other.yaml"
    cfg.write_text(yaml.safe_dump({"kind": "folder", "path": str(tmp_path / "other"), "images_dir": "imgs",
                                   "masks_dir": "labels", "mask_pattern": "{stem}_seg.png"}))
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--data", str(cfg), "--out", str(out), "--device", "cpu"]) == 0
    assert "20 cases" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "per_case.csv")))
    assert [k for k in rows[0]][:3] == ["variant", "seed", "case_id"] and len(rows) == 20
    for r in rows:
        assert float(r["dice"]) == pytest.approx(dice[(names[r["case_id"]], 1)], abs=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["dice"] == pytest.approx(np.mean(list(dice.values())), abs=1e-12)
    import pandas as pd

    assert len(tidy(pd.read_csv(out / "per_case.csv"))) == 20  # what the statistics read


def test_evaluate_adapts_channels_as_predict_does(dsb_run, tmp_path, capsys):
    """Grey copies of the held-out images for a colour-trained network: ``evaluate`` repeats
    the grey channel as ``predict`` does (one adapter), so its per-case Dice equals the Dice
    of ``predict``'s masks on the same files."""
    run, data = dsb_run
    cases, _ = _held_out(run)
    grey = tmp_path / "grey"
    (grey / "images").mkdir(parents=True)
    (grey / "masks").mkdir()
    for c in cases[:8]:
        Image.open(data / "images" / f"{c}.png").convert("L").save(grey / "images" / f"{c}.png")
        (grey / "masks" / f"{c}.png").symlink_to(data / "masks" / f"{c}.png")
    assert main(["evaluate", str(run), "--data", str(grey), "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    rows = {r["case_id"]: float(r["dice"]) for r in csv.DictReader(open(tmp_path / "eval" / "per_case.csv"))}
    assert main(["predict", str(run), "--input", str(grey / "images"), "--out", str(tmp_path / "pred"),
                 "--device", "cpu", "--no-progress"]) == 0
    for c in cases[:8]:
        mask = np.asarray(Image.open(tmp_path / "pred" / f"{c}.png")) > 127
        assert rows[c] == pytest.approx(_dice(mask, read_mask(data / "masks" / f"{c}.png") > 127, 2, c)[1], abs=1e-12)


def test_evaluate_on_colour_images_for_a_grey_network_matches_predict(dsb_run, tmp_path):
    """The other direction: a network trained on grey copies, evaluated on the colour
    originals. The colour is turned to grey before the per-case z-score (as predict and
    the folder loader do), so evaluate's per-case Dice equals that of predict's masks."""
    _, data = dsb_run
    grey = tmp_path / "grey"
    (grey / "images").mkdir(parents=True)
    (grey / "masks").mkdir()
    for f in sorted((data / "images").glob("*.png"))[:30]:
        Image.open(f).convert("L").save(grey / "images" / f.name)
        (grey / "masks" / f.name).symlink_to(data / "masks" / f.name)
    run = _train(tmp_path, TINY2D, grey, "--val-fraction", "0.2", "--test-fraction", "0.3")
    cases, _ = _held_out(run)
    colour = tmp_path / "colour"
    (colour / "images").mkdir(parents=True)
    (colour / "masks").mkdir()
    for c in cases:
        (colour / "images" / f"{c}.png").symlink_to(data / "images" / f"{c}.png")
        (colour / "masks" / f"{c}.png").symlink_to(data / "masks" / f"{c}.png")
    assert main(["evaluate", str(run), "--data", str(colour), "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    rows = {r["case_id"]: float(r["dice"]) for r in csv.DictReader(open(tmp_path / "eval" / "per_case.csv"))}
    assert main(["predict", str(run), "--input", str(colour / "images"), "--out", str(tmp_path / "pred"),
                 "--device", "cpu", "--no-progress"]) == 0
    for c in cases:
        mask = np.asarray(Image.open(tmp_path / "pred" / f"{c}.png")) > 127
        assert rows[c] == pytest.approx(_dice(mask, read_mask(data / "masks" / f"{c}.png") > 127, 2, c)[1], abs=1e-12)
    # the network's input itself: the same as predict's (a 2-epoch network may not tell them apart)
    from nasseg.data import load_dataset, resolve_data
    from nasseg.data.base import normalise
    from nasseg.data.folder import read_image, to_channels
    from nasseg.infer.score import _with_channels

    ds = _with_channels(load_dataset(resolve_data(str(colour)), cache=False), 1, str(colour))
    for i, c in enumerate(ds.case_ids):
        want = normalise(to_channels(read_image(colour / "images" / f"{c}.png"), 1, c).transpose(2, 0, 1))
        assert np.abs(ds.images[i].numpy() - want).max() < 1e-5, c


def test_predict_hippocampus_keeps_nifti_geometry(shared_data, tmp_path):
    import nibabel as nib

    data = shared_data / "msd_hippocampus"
    run = _train(tmp_path, TINY3D, data, "--max-cases", "8", "--val-fraction", "0.25", "--test-fraction", "0.25")
    cases, dice = _predict_held_out_volumes(run, data, tmp_path)
    for c in cases:
        image = nib.load(str(data / "imagesTr" / f"{c}.nii.gz"))
        pred = nib.load(str(tmp_path / "out" / f"{c}.nii.gz"))
        assert np.array_equal(pred.affine, image.affine) and pred.shape == image.shape
        assert pred.header.get_zooms() == image.header.get_zooms() and pred.get_data_dtype() == np.uint8
        assert np.array_equal(pred.header.get_qform(), image.header.get_qform())
        label = np.asarray(nib.load(str(data / "labelsTr" / f"{c}.nii.gz")).dataobj)
        got = _dice(np.asarray(pred.dataobj), label, 3, c)
        for k in (1, 2):
            assert got[k] == pytest.approx(dice[(c, k)], abs=1e-12)


def test_export_onnx_and_torchscript_match_pytorch(dsb_run, tmp_path, capsys):
    run, data = dsb_run
    # the file's name need not say its format (an ONNX file named "m_onnx" is still read as ONNX)
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt"), ("onnx", "m_onnx"), ("torchscript", "m_ts")):
        from nasseg.infer import export_network, load_network

        res = export_network(load_network(run), fmt, tmp_path / name)
        assert res.max_abs_diff <= 1e-4 and res.dynamic and res.shapes[1][0] == 2
        exported = load_network(tmp_path / name)
        assert exported.kind == fmt and exported.size is None and exported.num_classes == 2
    for size in ("0", "-8", "0,48"):
        assert main(["export", str(run), "--format", "onnx", "-o", str(tmp_path / "z.onnx"), "--size", size]) == 2
        assert "each a positive multiple of 4" in capsys.readouterr().err
    # an exported model predicts the same masks as its run folder
    inputs = tmp_path / "in"
    inputs.mkdir()
    c = _held_out(run)[0][0]
    (inputs / f"{c}.png").symlink_to(data / "images" / f"{c}.png")
    for target in (run, tmp_path / "m.onnx", tmp_path / "m.pt"):
        assert main(["predict", str(target), "--input", str(inputs), "--out", str(tmp_path / f"o_{target.name}"),
                     "--no-progress"]) == 0
    ref = np.asarray(Image.open(tmp_path / "o_run" / f"{c}.png"))
    for name in ("m.onnx", "m.pt"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"o_{name}" / f"{c}.png")), ref)


def test_bad_targets_are_one_clear_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope"), "--input", ".", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasseg: error: ") and "nope: no such run folder" in err and err.count("\n") == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "failed.json").write_text(json.dumps({"reason": "non-finite loss at epoch 3, step 1"}))
    assert main(["evaluate", str(tmp_path / "run"), "--data", "."]) == 2
    assert "this run failed (non-finite loss at epoch 3" in capsys.readouterr().err
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    assert main(["predict", f"{tmp_path / 'study.yaml'}#x", "--input", ".", "--out", str(tmp_path)]) == 2
    assert "trial number" in capsys.readouterr().err


def test_study_trial_predicts_and_exports(tmp_path, capsys):
    """``STUDY.yaml#N``: the trial's best checkpoint, as a real (tiny) search stored it."""
    from test_search_helpers import arch_yaml, make_study

    from nasseg.infer import export_network, load_network

    study = make_study(tmp_path, initial_archs=[arch_yaml(tmp_path, "small", 4)], budget={"trials": 1})
    assert main(["search", str(study), "--no-progress"]) == 0
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(tmp_path / "in" / f"x{i}.jpg")
    assert main(["predict", f"{study}#0", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    masks = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in masks] == ["x0.png", "x1.png", "x2.png"]  # lossy .jpg in, lossless .png out
    assert all(np.asarray(Image.open(p)).shape == (40, 48) for p in masks)  # resized back from 32x32
    net = load_network(f"{study}#0")
    assert net.name == "tiny#0" and net.size == (32, 32)
    assert export_network(net, "torchscript", tmp_path / "t.pt").max_abs_diff <= 1e-4
    capsys.readouterr()
    assert main(["predict", f"{study}#7", "--input", str(tmp_path / "in"), "--out", str(tmp_path)]) == 2
    assert "has no trial 7" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "run"), "--input", str(tmp_path / "in"), "--out", str(tmp_path)]) == 2
    assert "a study folder; name one of its trials" in capsys.readouterr().err


def test_predict_volume_uses_training_preprocessing(tmp_path):
    """Zero background, anisotropic spacing and two modalities of very different scale: predict
    must crop, normalise per channel and resample as training did, then map back to the scan."""
    import nibabel as nib
    from test_data_volumetric import write_decathlon

    data = write_decathlon(tmp_path / "dec", n=10, shape=(16, 16, 8), spacing=(1.0, 1.0, 2.5))
    arch = {**TINY3D, "in_channels": 2, "out_channels": 4}
    run = _train(tmp_path, arch, data, "--val-fraction", "0.2", "--test-fraction", "0.3", "--flip", "none")
    cases, dice = _predict_held_out_volumes(run, data, tmp_path)
    for c in cases:
        pred = nib.load(str(tmp_path / "out" / f"{c}.nii.gz"))
        label = np.asarray(nib.load(str(data / "labelsTr" / f"{c}.nii.gz")).dataobj)
        assert pred.shape == label.shape
        got = _dice(np.asarray(pred.dataobj), label, 4, c)
        for k in (1, 2, 3):
            assert got[k] == pytest.approx(dice[(c, k)], abs=1e-9)
