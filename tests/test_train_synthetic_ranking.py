"""The synthetic default is hard enough to rank networks (slow: run with ``-m slow``)."""
from __future__ import annotations

import json
import time

import pytest

from nasseg.arch import load_arch
from nasseg.data import resolve_data
from nasseg.train import TrainConfig, train


def conv_unet(widths: list[int]):
    return load_arch({"name": f"conv{len(widths)}x{widths[0]}", "spatial_dims": 2, "in_channels": 1,
                      "out_channels": 1, "stages": [{"width": w, "block": {"type": "conv"}} for w in widths]})


@pytest.mark.slow
def test_bigger_networks_score_better_on_synthetic(bench_out):
    rows = []
    for arch in (conv_unet([4, 8]), conv_unet([8, 16, 32]), load_arch("cmunext_s"), conv_unet([16, 32, 64, 128])):
        res = train(arch, resolve_data("synthetic"), TrainConfig(epochs=10, device="cpu"), progress=False)
        rows.append({"arch": arch.name, "params": res.num_params, "dice": res.best["dice"],
                     "test_dice": res.test["dice"], "curve": [h["dice"] for h in res.history],
                     "seconds": res.seconds})
        split = {k: len(res.split[k]) for k in ("train", "val", "test")}
    out = bench_out / "train_synthetic_ranking.json"  # reports/bench only with NASSEG_BENCH=1
    out.write_text(json.dumps({"data": "synthetic (default: 192 cases of 64x64)", "split": split, "epochs": 10,
                               "dice": "best validation Dice (selection); test_dice: the test split, scored once",
                               "rows": rows, "measured_at": time.strftime("%Y-%m-%d %H:%M")}, indent=1) + "\n")
    tiny = rows[0]["dice"]
    assert all(r["dice"] > tiny + 0.05 for r in rows[1:]), rows
    assert max(r["dice"] for r in rows) < 0.9  # not saturated: room for a search to find better
