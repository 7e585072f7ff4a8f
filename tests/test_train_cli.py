"""``nasseg train`` and ``nasseg bench train`` end to end on tiny synthetic data."""
from __future__ import annotations

import json

import yaml

from nasseg.cli import main

TINY = {"name": "tiny", "spatial_dims": 2, "in_channels": 3, "out_channels": 1,
        "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]}


def _arch(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return str(p)


def test_train_writes_run_folder_and_prints_table(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", _arch(tmp_path), "--data", "synthetic", "--size", "16", "--epochs", "2",
                 "--batch-size", "4", "--threads", "1", "--device", "cpu", "--run-dir", str(run), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "validation metrics" in out and "Dice" in out and "best epoch" in out and str(run) in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["arch"]["in_channels"] == 1  # set from the data (synthetic is gray)
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["size"] == 16
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and (run / "checkpoint.pt").is_file()


def test_train_recipe_and_split_flags(tmp_path, capsys):
    run = tmp_path / "run"
    split = tmp_path / "split.json"
    from nasseg.data import load_dataset, resolve_data

    ids = load_dataset(resolve_data("synthetic", size=16, max_cases=12)).case_ids  # a seeded sample
    split.write_text(json.dumps({"train": ids[:8], "val": ids[10:], "test": ids[8:10]}))
    code = main(["train", _arch(tmp_path), "--data", "synthetic", "--size", "16", "--epochs", "1", "--recipe", "cmunext",
                 "--max-cases", "12", "--split-file", str(split), "--threads", "1", "--run-dir", str(run),
                 "--no-progress"])
    assert code == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["optimizer"] == "sgd" and cfg["train"]["ce_weight"] == 0.5
    used = json.loads((run / "split.json").read_text())
    assert (used["val"], used["test"]) == (ids[10:], ids[8:10])


def test_bad_data_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code = main(["train", _arch(tmp_path), "--data", str(tmp_path), "--epochs", "1", "--no-progress",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nasseg: error: ") and "images: empty folder" in err
    code = main(["train", _arch(tmp_path), "--data", "synthetic", "--epochs", "1", "--optimizer", "sgd",
                 "--lr", "-1", "--no-progress"])
    assert code == 2 and "lr" in capsys.readouterr().err


def test_bench_train_saves_json_and_markdown(tmp_path, capsys):
    code = main(["bench", "train", _arch(tmp_path), "--data", "synthetic", "--size", "16", "--max-cases", "16",
                 "--epochs", "2", "--repeats", "1", "--batch-size", "4", "--threads", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "ratio nasseg / plain" in out
    assert "repeat 1/1, epoch 1/2: nasseg " in out and "(warm-up)" in out and "repeat 1/1, epoch 2/2: nasseg " in out
    # the settings are in the file name, so a quick run never replaces another benchmark's result
    stem = f"train_cpu_{TINY.get('name') or 'ArchConfig'}_synthetic2d_16x16"
    assert f"saved: {tmp_path}/{stem}.json" in " ".join(out.split())
    report = json.loads((tmp_path / f"{stem}.json").read_text())
    assert report["file_stem"] == stem
    assert report["plain_images_per_s"] > 0 and report["nasseg_images_per_s"] > 0
    assert report["ratio_of_medians"] == report["nasseg_images_per_s"] / report["plain_images_per_s"]
    assert report["repeat_ratios"] == [report["ratio"]] == report["ratio_range"][:1]  # one repeat
    assert "no augmentation" in report["baseline"] and "understates" in report["baseline"]
    assert [r["loop"] for r in report["runs"]] == ["plain", "nasseg"]
    assert "ratio nasseg / plain" in (tmp_path / f"{stem}.md").read_text()
