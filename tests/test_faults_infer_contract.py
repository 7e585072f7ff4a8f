"""Fault injection, what a network carries (issue 20): a trained network predicts without its
training folder (plan, spacing, normalisation statistics, class names and input contract
stored with the checkpoint and in exports); ``evaluate`` refuses data whose classes are named
otherwise and labels each case's split by content hash, warning when cases were seen in
training."""
from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
from faults import TINY_ARCH, mask_folder, run_cli
from PIL import Image
from test_data_volumetric import write_decathlon

from nasseg.cli import main
from nasseg.infer import export_network, load_network

TINY3D = {**TINY_ARCH, "name": "tiny3d", "spatial_dims": 3}


def _train(tmp, arch, data, *extra: str):
    (tmp / "arch.yaml").write_text(json.dumps(arch))
    run = tmp / "run"
    assert main(["train", str(tmp / "arch.yaml"), "--data", str(data), "--epochs", "1", "--batch-size", "4",
                 "--threads", "1", "--device", "cpu", "--run-dir", str(run), "--no-progress", *extra]) == 0
    return run


def _masks(folder):
    return {p.name: np.asarray(nib.load(str(p)).dataobj) if p.name.endswith(".nii.gz") else
            np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


def test_3d_network_predicts_the_same_masks_once_its_training_data_is_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("NASSEG_CACHE_DIR", str(tmp_path / "cache"))  # its preprocessed cache goes too
    data = write_decathlon(tmp_path / "dec", n=8, shape=(12, 14, 8), spacing=(1.0, 1.0, 2.5),
                           modality=("CT", "T1w"), scales=(1000.0, 1.0))
    run = _train(tmp_path, {**TINY3D, "in_channels": 2}, data, "--flip", "none", "--val-fraction", "0.25",
                 "--test-fraction", "0")
    net = load_network(run)
    pre = net.contract["preprocessing"]
    assert pre["kinds"] == ["ct", "zscore"] and pre["target_spacing"] == [1.0, 1.0, 2.5]
    assert set(pre["ct_stats"]["0"]) == {"lo", "hi", "mean", "std"}
    assert net.class_names == ["background", "edema", "non-enhancing", "enhancing"]
    assert net.contract["in_channels"] == 2 and net.contract["size_multiple"] == 2
    assert export_network(net, "torchscript", tmp_path / "net.pt").max_abs_diff <= 1e-4
    assert load_network(tmp_path / "net.pt").contract == net.contract  # exports carry it too
    inputs = tmp_path / "in"
    inputs.mkdir()
    for c in ("case_00", "case_05"):
        shutil.copy(data / "imagesTr" / f"{c}.nii.gz", inputs)
    assert main(["predict", str(run), "--input", str(inputs), "--out", str(tmp_path / "before"), "--no-progress"]) == 0
    before = _masks(tmp_path / "before")
    shutil.rmtree(data)
    shutil.rmtree(tmp_path / "cache")
    for target, out in ((run, "after"), (tmp_path / "net.pt", "exported")):  # a new process: nothing in memory
        r = run_cli("predict", str(target), "--input", str(inputs), "--out", str(tmp_path / out), "--no-progress",
                    env={"NASSEG_CACHE_DIR": str(tmp_path / "cache")})
        assert r.returncode == 0, r.stderr
        after = _masks(tmp_path / out)
        assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)


def test_evaluate_feeds_ct_data_with_the_networks_statistics(tmp_path, capsys):
    """Another dataset holding only the run's test cases: scored exactly as training scored
    them (CT clipped and z-scored with the training data's statistics, not these 2 cases')."""
    from nasseg.infer.score import other_data, other_dataset

    data = write_decathlon(tmp_path / "dec", n=8, shape=(12, 14, 8), modality=("CT",), scales=(1000.0,))
    run = _train(tmp_path, TINY3D, data, "--flip", "none", "--val-fraction", "0.25", "--test-fraction", "0.25")
    test = json.loads((run / "split.json").read_text())["test"]
    other = tmp_path / "other"
    meta = json.loads((data / "dataset.json").read_text())
    meta["training"] = [e for e in meta["training"] if any(f"/{c}.nii.gz" in e["image"] for c in test)]
    for sub in ("imagesTr", "labelsTr"):
        (other / sub).mkdir(parents=True)
        for c in test:
            shutil.copy(data / sub / f"{c}.nii.gz", other / sub)
    (other / "dataset.json").write_text(json.dumps(meta))
    net = load_network(run)
    ds = other_dataset(net, other_data(net, other))
    assert ds.info["preprocessing"]["ct_stats"] == net.preprocessing["ct_stats"]
    assert main(["evaluate", str(run), "--data", str(other), "--out", str(tmp_path / "e"), "--device", "cpu"]) == 0
    want = {(r["case_id"], r["class"]): float(r["dice"]) for r in csv.DictReader(open(run / "test_per_case.csv"))}
    got = {(r["case_id"], r["class"]): float(r["dice"]) for r in csv.DictReader(open(tmp_path / "e" / "per_case.csv"))}
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-9 for k in want)
    assert "2 of 2 cases" not in capsys.readouterr().out  # test cases: labelled, but not a training overlap


def test_2d_network_predicts_the_same_masks_once_its_training_data_moved(tmp_path):
    data = mask_folder(tmp_path / "data", n=8, size=16)
    run = _train(tmp_path, TINY_ARCH, data, "--size", "16")
    net = load_network(run)
    assert net.contract["class_names"] == ["background", "foreground"] and net.contract["size"] == [16, 16]
    assert net.contract["normalisation"] == "zscore_per_case" and net.contract["in_channels"] == 1
    shutil.copytree(data / "images", tmp_path / "in")
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    data.rename(tmp_path / "moved")
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    a, b = _masks(tmp_path / "a"), _masks(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_evaluate_refuses_data_whose_class_names_are_swapped(tmp_path, capsys):
    data = write_decathlon(tmp_path / "dec", n=6, shape=(12, 12, 8), modality=("MRI",), scales=(1.0,))
    run = _train(tmp_path, TINY3D, data, "--val-fraction", "0.34", "--test-fraction", "0")
    swapped = tmp_path / "swapped"
    shutil.copytree(data, swapped)
    meta = json.loads((swapped / "dataset.json").read_text())
    meta["labels"]["1"], meta["labels"]["2"] = meta["labels"]["2"], meta["labels"]["1"]
    (swapped / "dataset.json").write_text(json.dumps(meta))
    assert main(["evaluate", str(run), "--data", str(swapped), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{swapped}: classes ['background', 'non-enhancing', 'edema', 'enhancing'] " \
        "differ from the network's ['background', 'edema', 'non-enhancing', 'enhancing'] (the same names in " \
        "another order (labels swapped))" in err
    assert main(["evaluate", str(run), "--data", str(data), "--device", "cpu"]) == 0


def test_evaluate_labels_each_case_split_by_content_and_warns_on_overlap(tmp_path, capsys):
    data = mask_folder(tmp_path / "data", n=8, size=16)
    run = _train(tmp_path, TINY_ARCH, data, "--val-fraction", "0.25", "--test-fraction", "0.25")
    split = json.loads((run / "split.json").read_text())
    other = mask_folder(tmp_path / "other", n=3, size=16)
    for f in (other / "images").iterdir():  # new content, except one renamed copy of a training image
        Image.fromarray(255 - np.asarray(Image.open(f))).save(f)
    shutil.copy(data / "images" / f"{split['train'][0]}.png", other / "images" / "renamed.png")
    shutil.copy(data / "masks" / f"{split['train'][0]}.png", other / "masks" / "renamed.png")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(other), "--out", str(tmp_path / "e1"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: 1 of 4 cases of {other} were seen in training (1 train, 0 validation; same file "
                       "content): they are no transfer result; per_case.csv labels each row's split"]
    rows = list(csv.DictReader(open(tmp_path / "e1" / "per_case.csv")))
    assert list(rows[0])[:4] == ["variant", "seed", "case_id", "split"]
    assert {r["case_id"]: r["split"] for r in rows} == {"c0": "external", "c1": "external", "c2": "external",
                                                        "renamed": "train"}
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(tmp_path / "e2"), "--device", "cpu"]) == 0
    assert "warning: 6 of 8 cases" in capsys.readouterr().out
    got = {r["case_id"]: r["split"] for r in csv.DictReader(open(tmp_path / "e2" / "per_case.csv"))}
    assert got == {c: part for part in ("train", "val", "test") for c in split[part]}
    summary = json.loads((tmp_path / "e2" / "summary.json").read_text())
    assert summary["splits"] == {"test": 2, "train": 4, "val": 2}


def test_generated_data_has_no_files_to_compare_so_its_split_is_unknown(tmp_path, capsys):
    run = _train(tmp_path, TINY_ARCH, "synthetic", "--size", "16", "--max-cases", "8")
    assert main(["evaluate", str(run), "--data", "synthetic", "--max-cases", "4", "--out", str(tmp_path / "e"),
                 "--device", "cpu"]) == 0
    assert "warning:" not in capsys.readouterr().out
    assert {r["split"] for r in csv.DictReader(open(tmp_path / "e" / "per_case.csv"))} == {"unknown"}
