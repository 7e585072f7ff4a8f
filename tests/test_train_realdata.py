"""The issue's Must-show runs on the real datasets (slow: run with ``-m slow``).

Run as a benchmark (``NASSEG_BENCH=1 python -m pytest -m slow tests/test_train_realdata.py``),
each writes its measured curve to ``reports/bench/train_realdata_<name>.json`` so the numbers
quoted in the README come from a file, not from memory; as a plain test it writes to a
temporary folder. Time is recorded there, never asserted (a loaded machine is slower).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nasseg.arch import load_arch
from nasseg.data import resolve_data
from nasseg.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
pytestmark = pytest.mark.slow


def _save(out: Path, name: str, res, extra: dict) -> None:
    keep = ("epoch", "train_loss", "dice", "iou", "hd95", "dice_1", "dice_2", "lr", "train_seconds", "seconds")
    cols = [k for k in keep if k in res.history[0]]
    lines = [f"# {name}", "", f"`{extra['command']}`", "",
             (f"{res.num_params:,} parameters, {len(res.split['val'])} validation and {len(res.split['test'])} test cases, "
              f"{res.config['resolved']['threads']} torch thread(s), wall {res.seconds:.0f} s "
              f"(training {sum(res.epoch_seconds):.0f} s). Best epoch {res.best_epoch}: val Dice {res.best['dice']:.4f}, "
              f"test Dice {res.test['dice']:.4f}."),
             "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{h[k]:.4g}" if isinstance(h[k], float) else str(h[k]) for k in cols) + " |"
              for h in res.history]
    (out / f"train_realdata_{name}.md").write_text("\n".join(lines) + "\n")
    (out / f"train_realdata_{name}.json").write_text(json.dumps({
        **extra, "best_epoch": res.best_epoch, "best": res.best, "epochs_run": res.epochs_run,
        "wall_seconds": res.seconds, "num_params": res.num_params, "val_cases": len(res.split["val"]),
        "test": res.test, "test_cases": len(res.split["test"]),
        "history": [{k: h[k] for k in keep if k in h} for h in res.history],
        "versions": res.config["versions"], "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }, indent=1) + "\n")


def test_dsb2018_cmunext_s_5_epochs_reaches_dice_080(tmp_path, bench_out):
    data = resolve_data(str(DATA / "dsb2018_96"), size=96)
    res = train(load_arch("cmunext_s"), data, TrainConfig(epochs=5, device="cpu"), run_dir=tmp_path, progress=False)
    _save(bench_out, "dsb2018_cmunext_s", res, {"command": "nasseg train cmunext_s --data ../shared/data/dsb2018_96 "
                                                "--size 96 --epochs 5 --device cpu"})
    assert (len(res.split["val"]), len(res.split["test"])) == (134, 134)  # 20% + 20% of 670
    assert res.best["dice"] >= 0.80 and res.test["dice"] >= 0.80  # selected on val, reported on test


def test_busi_cmunext_recipe_dice_rises(tmp_path, bench_out):
    data = resolve_data(str(DATA / "busi_256"), size=128)
    cfg = TrainConfig.cmunext(epochs=4, device="cpu")
    res = train(load_arch("cmunext_s"), data, cfg, run_dir=tmp_path, progress=False)
    _save(bench_out, "busi_cmunext_recipe", res, {"command": "nasseg train cmunext_s --data ../shared/data/busi_256 "
                                                  "--size 128 --recipe cmunext --epochs 4 --device cpu"})
    dice = [h["dice"] for h in res.history]
    assert dice[-1] > dice[0] + 0.05


def test_hippocampus_small_3d_unet_reaches_dice_080(tmp_path, bench_out):
    arch = load_arch(ROOT / "studies" / "arch" / "unet3d_small.yaml")
    data = resolve_data(str(DATA / "msd_hippocampus"), patch_size=(32, 48, 32), window_size=(48, 64, 48), flip=False)
    cfg = TrainConfig(epochs=8, batch_size=2, lr=3e-3, device="cpu")
    res = train(arch, data, cfg, run_dir=tmp_path, progress=False)
    _save(bench_out, "hippocampus_unet3d_small", res, {
        "command": "nasseg train studies/arch/unet3d_small.yaml --data ../shared/data/msd_hippocampus "
                   "--patch-size 32,48,32 --window-size 48,64,48 --flip none --batch-size 2 --lr 3e-3 "
                   "--epochs 8 --device cpu"})
    assert 1.4e6 < res.num_params < 1.7e6 and (len(res.split["val"]), len(res.split["test"])) == (52, 52)
    assert res.best["dice"] >= 0.80 and res.test["dice"] >= 0.80  # mean over the two foreground classes
