"""Fault injection, outputs of predict / evaluate / export / train (issue 20): a target that is
an input or an earlier result is refused (exit 2, the path named) unless ``--overwrite``, and
never an input even then; inputs sharing a stem, multi-page images and non-finite pixels are
refused before anything is written."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from faults import TINY_ARCH, mask_folder
from PIL import Image

from nasseg.cli import main


def _train(tmp, data, *extra: str):
    (tmp / "arch.yaml").write_text(json.dumps(TINY_ARCH))
    run = tmp / "run"
    assert main(["train", str(tmp / "arch.yaml"), "--data", str(data), "--epochs", "1", "--batch-size", "4",
                 "--threads", "1", "--device", "cpu", "--run-dir", str(run), "--no-progress", *extra]) == 0
    return run


@pytest.fixture(scope="module")
def run2d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outputs")
    data = mask_folder(tmp / "data", n=8, size=16)
    return _train(tmp, data), data


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("nasseg: error: ") and err.count("\n") == 1, err
    return err


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predict_never_writes_onto_its_inputs_or_ground_truth(run2d, tmp_path, capsys):
    run, data = run2d
    before = _snapshot(data)
    images, masks = data / "images", data / "masks"
    assert main(["predict", str(run), "--input", str(images), "--out", str(images), "--no-progress"]) == 2
    assert f"--out {images}: is inside the input folder" in _err(capsys)
    # even with --overwrite: a mask never replaces an input image
    assert main(["predict", str(run), "--input", str(images), "--out", str(images), "--overwrite",
                 "--no-progress"]) == 2
    assert f"{images / 'c0.png'}: is an input file" in _err(capsys)
    # --input DATASET --out DATASET/images and --out DATASET/masks (the ground truth)
    for out in (images, masks, data / "preds"):
        assert main(["predict", str(run), "--input", str(data), "--out", str(out), "--no-progress"]) == 2
        assert f"--out {out}: is inside the input folder {data}" in _err(capsys)
    assert main(["predict", str(run), "--input", str(images), "--out", str(masks), "--no-progress"]) == 2
    assert f"--out {masks / 'c0.png'}: is an input file" in _err(capsys)
    for inputs in (images, data):  # ground truth is never replaced, even with --overwrite
        assert main(["predict", str(run), "--input", str(inputs), "--out", str(masks), "--overwrite",
                     "--no-progress"]) == 2
        assert f"--out {masks / 'c0.png'}: is an input file" in _err(capsys)
    assert _snapshot(data) == before and not (data / "preds").exists()
    # a folder of outputs: first run writes, the second refuses, --overwrite replaces
    out = tmp_path / "out"
    assert main(["predict", str(run), "--input", str(images), "--out", str(out), "--no-progress"]) == 0
    assert main(["predict", str(run), "--input", str(images), "--out", str(out), "--no-progress"]) == 2
    assert f"--out {out / 'c0.png'}: already exists; choose another --out (or pass --overwrite" in _err(capsys)
    assert main(["predict", str(run), "--input", str(images), "--out", str(out), "--overwrite",
                 "--no-progress"]) == 0
    (tmp_path / "file").write_text("x")
    assert main(["predict", str(run), "--input", str(images), "--out", str(tmp_path / "file"), "--no-progress"]) == 2
    assert "file: is a file; a folder is needed here" in _err(capsys)


def test_predict_refuses_a_mask_written_through_a_symlink_onto_an_input(run2d, tmp_path, capsys):
    run, data = run2d
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "c0.png").symlink_to(data / "images" / "c0.png")
    before = (data / "images" / "c0.png").read_bytes()
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(data / "images"),
                 "--overwrite", "--no-progress"]) == 2
    assert "is an input file" in _err(capsys)
    assert (data / "images" / "c0.png").read_bytes() == before


def test_inputs_sharing_a_stem_are_refused_naming_both(run2d, tmp_path, capsys):
    run, data = run2d
    (tmp_path / "in").mkdir()
    image = Image.open(data / "images" / "c0.png")
    image.save(tmp_path / "in" / "case.png")
    image.convert("RGB").save(tmp_path / "in" / "case.jpg")
    image.save(tmp_path / "in" / "other.png")
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    err = _err(capsys)
    assert "case.jpg and case.png: both would be written to" in err and str(tmp_path / "out" / "case.png") in err
    assert not (tmp_path / "out").exists()


def test_multipage_tiff_and_animated_gif_are_refused(run2d, tmp_path, capsys):
    run, _ = run2d
    (tmp_path / "in").mkdir()
    pages = [Image.fromarray(np.full((16, 16), v, np.uint8)) for v in (10, 200, 90)]
    for name in ("stack.tif", "anim.gif"):
        for f in (tmp_path / "in").iterdir():
            f.unlink()
        pages[0].save(tmp_path / "in" / name, save_all=True, append_images=pages[1:])
        assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / name),
                     "--no-progress"]) == 2
        assert f"{tmp_path / 'in' / name}: holds 3 pages" in _err(capsys)


def test_one_nan_pixel_is_refused_with_file_and_count(run2d, tmp_path, capsys):
    run, _ = run2d
    (tmp_path / "in").mkdir()
    arr = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    arr[3, 4] = np.nan
    Image.fromarray(arr, mode="F").save(tmp_path / "in" / "x.tif")
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    assert f"{tmp_path / 'in' / 'x.tif'}: image holds 1 NaN or infinite values (of 256)" in _err(capsys)


def test_one_inf_voxel_in_a_volume_is_refused(tmp_path, capsys):
    from test_data_volumetric import write_decathlon

    data = write_decathlon(tmp_path / "dec", n=6, shape=(12, 12, 8), modality=("MRI",), scales=(1.0,))
    arch = {**TINY_ARCH, "spatial_dims": 3}
    (tmp_path / "arch.yaml").write_text(json.dumps(arch))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "arch.yaml"), "--data", str(data), "--epochs", "1", "--threads", "1",
                 "--device", "cpu", "--run-dir", str(run), "--no-progress", "--val-fraction", "0.34",
                 "--test-fraction", "0"]) == 0
    img = nib.load(str(data / "imagesTr" / "case_00.nii.gz"))
    vol = np.asarray(img.dataobj).astype(np.float32)
    vol[5, 5, 3], vol[6, 6, 3] = np.inf, np.nan
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(vol, img.affine), str(tmp_path / "in" / "bad.nii.gz"))
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    assert f"{tmp_path / 'in' / 'bad.nii.gz'}: image holds 2 NaN or infinite values (of 1152)" in _err(capsys)
    assert not (tmp_path / "out").exists()


def test_evaluate_never_replaces_the_runs_own_per_case_table(run2d, tmp_path, capsys):
    run, data = run2d
    before = _snapshot(run)
    for extra in ([], ["--overwrite"]):
        assert main(["evaluate", str(run), "--data", str(data), "--out", str(run), "--device", "cpu", *extra]) == 2
        assert f"--out {run / 'per_case.csv'}: is an input file" in _err(capsys)
    assert _snapshot(run) == before
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(out), "--device", "cpu"]) == 2
    assert f"--out {out / 'per_case.csv'}: already exists" in _err(capsys)
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(out), "--device", "cpu",
                 "--overwrite"]) == 0


def test_export_refuses_an_existing_file_and_the_checkpoint_itself(run2d, tmp_path, capsys):
    run, _ = run2d
    target = tmp_path / "model.pt"
    target.write_text("an earlier export")
    assert main(["export", str(run), "--format", "torchscript", "-o", str(target)]) == 2
    assert f"-o {target}: already exists; choose another -o (or pass --overwrite" in _err(capsys)
    assert target.read_text() == "an earlier export"
    ckpt = (run / "checkpoint.pt").read_bytes()
    assert main(["export", str(run), "--format", "torchscript", "-o", str(run / "checkpoint.pt"),
                 "--overwrite"]) == 2
    assert "checkpoint.pt: is an input file" in _err(capsys)
    assert (run / "checkpoint.pt").read_bytes() == ckpt
    assert main(["export", str(run), "--format", "torchscript", "-o", str(tmp_path)]) == 2
    assert f"-o {tmp_path}: is a folder; name the file to write" in _err(capsys)
    assert main(["export", str(run), "--format", "torchscript", "-o", str(target), "--overwrite"]) == 0
    assert target.read_bytes()[:2] == b"PK"


def test_train_onto_a_finished_run_refuses_unless_overwrite(run2d, tmp_path, capsys):
    run, data = run2d
    before = _snapshot(run)
    args = ["train", str(run.parent / "arch.yaml"), "--data", str(data), "--epochs", "1", "--batch-size", "4",
            "--threads", "1", "--device", "cpu", "--run-dir", str(run), "--no-progress"]
    assert main(args) == 2
    err = _err(capsys)
    assert f"--run-dir {run}: holds an earlier run (config.json, split.json" in err and "checkpoint.pt" in err
    assert _snapshot(run) == before
    copy = tmp_path / "copy"
    copy.mkdir()
    for p, b in before.items():
        (copy / p.name).write_bytes(b)
    (copy / "notes.txt").write_text("mine")
    (copy / "test_per_case.csv").write_text("an earlier run's file the new run does not write")
    assert main([*args[:-2], str(copy), "--no-progress", "--overwrite", "--test-fraction", "0"]) == 0
    assert (copy / "notes.txt").read_text() == "mine"  # not a run file: left alone
    assert not (copy / "test_per_case.csv").exists()  # nothing of the old run is mixed into the new one
