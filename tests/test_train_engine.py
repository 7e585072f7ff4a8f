"""The training loop on tiny synthetic data: outputs, stopping, failure, reproducibility."""
from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from torch import nn

from nasseg.arch import load_arch
from nasseg.data import resolve_data
from nasseg.errors import ConfigError
from nasseg.train import TrainConfig, TrainingFailed, train

FAST = {"device": "cpu", "num_threads": 1, "batch_size": 4, "lr": 5e-3}


def tiny_arch(dims: int = 2, deep_supervision: bool = False, stages: int = 2, out: int = 1):
    """A real nasseg network, as small as the config language allows."""
    return load_arch({
        "name": f"tiny{dims}d", "spatial_dims": dims, "in_channels": 1, "out_channels": out,
        "stages": [{"width": 4 * 2 ** i, "block": {"type": "conv"}} for i in range(stages)],
        "deep_supervision": deep_supervision,
    })


def _data(**kw):
    return resolve_data("synthetic", **{"n_cases": 12, "size": 16, **kw})


def test_run_folder_result_and_callback_metrics(tmp_path):
    seen = []
    res = train(tiny_arch(), _data(), TrainConfig(epochs=2, **FAST), run_dir=tmp_path,
                callback=lambda e, m: seen.append((e, dict(m))), progress=False)
    assert [e for e, _ in seen] == [1, 2] and {"epoch", "dice", "iou", "hd95", "train_loss"} <= set(seen[0][1])
    assert res.epochs_run == 2 and len(res.history) == 2 and not res.stopped_early
    sp = res.split
    assert sp["method"] == "random" and (len(sp["train"]), len(sp["val"]), len(sp["test"])) == (8, 2, 2)
    assert not (set(sp["train"]) & set(sp["val"]) or set(sp["train"]) & set(sp["test"]) or set(sp["val"]) & set(sp["test"]))
    assert len(res.per_case) == 2 and {r["case_id"] for r in res.per_case} == set(sp["val"])
    assert {r["case_id"] for r in res.test_per_case} == set(sp["test"])  # test: scored once, best-by-val weights
    assert res.test["dice"] == pytest.approx(sum(r["dice"] for r in res.test_per_case) / 2)
    assert res.best["dice"] == pytest.approx(sum(r["dice"] for r in res.per_case) / 2)
    assert res.best == {k: res.history[res.best_epoch - 1][k] for k in res.best}
    assert 0 <= res.best["dice"] <= 1 and res.num_params > 0
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {"config.json", "split.json", "history.csv", "metrics.json", "per_case.csv",
                     "test_per_case.csv", "checkpoint.pt"}
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["kind"] == "synthetic" and "arch_id" in cfg["arch"]
    assert cfg["versions"]["torch"] == torch.__version__ and cfg["arch"]["in_channels"] == 1
    prov = cfg["provenance"]  # what produced the run
    assert prov["split_hash"] == res.split["hash"] and prov["seeds"] == [res.config["train"]["seed"]]
    assert prov["threads"] >= 1 and len(prov["data_hash"]) == 16 and prov["command"]
    assert json.loads((tmp_path / "split.json").read_text())["val"] == res.split["val"]
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best_epoch"] == res.best_epoch and len(metrics["per_case"]) == 2
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == res.best_epoch and set(ckpt["model"]) == set(res.model.state_dict())
    json.dumps(res.to_dict())  # serialisable


def test_callback_stops_and_patience_stops():
    res = train(tiny_arch(), _data(), TrainConfig(epochs=5, **FAST), callback=lambda e, m: e >= 2, progress=False)
    assert res.stopped_early and res.stop_reason == "callback" and res.epochs_run == 2
    res = train(tiny_arch(), _data(), TrainConfig(epochs=6, patience=1, min_delta=0.99, **FAST), progress=False)
    assert res.stop_reason == "patience" and res.epochs_run == 2 and res.best_epoch == 1
    res = train(tiny_arch(), _data(), TrainConfig(epochs=4, max_seconds=1e-6, **FAST), progress=False)
    assert res.stop_reason == "time" and res.epochs_run == 1


@pytest.mark.parametrize("how", ["hook", "max_seconds"])
def test_an_end_between_validations_validates_the_epoch_it_ends_at(how):
    """With validation every 3 epochs, a stop after epoch 2 (a hook's True, or max_seconds
    passed) still validates epoch 2 and selects among the validated epochs."""
    from nasseg.train.engine import Hooks

    ends = {"hook": ({}, Hooks(on_epoch_end=lambda e, sec, n: e == 2)),
            "max_seconds": ({"max_seconds": 1e-9}, None)}
    extra, hooks = ends[how]
    start = 2 if how == "hook" else 1
    res = train(tiny_arch(), _data(), TrainConfig(epochs=9, eval_every=3, **extra, **FAST), progress=False, hooks=hooks)
    assert res.epochs_run == start and [h["epoch"] for h in res.history] == [start]
    assert res.stop_reason == ("callback" if how == "hook" else "time") and res.best_epoch == start
    assert res.config["resolved"]["eval_every"] == 3 and res.config["resolved"]["eval_every_source"] == "set"


def test_threads_set_for_the_run_and_restored():
    before = torch.get_num_threads()
    res = train(tiny_arch(), _data(n_cases=6), TrainConfig(epochs=1, **FAST), progress=False)
    assert res.config["resolved"]["threads"] == 1 and torch.get_num_threads() == before
    from nasseg.train.setup import auto_threads
    assert 1 <= auto_threads() <= (os.cpu_count() or 1)


def test_same_seed_same_result_and_eval_every():
    cfg = TrainConfig(epochs=2, eval_every=2, seed=3, **FAST)
    a = train(tiny_arch(), _data(), cfg, progress=False)
    b = train(tiny_arch(), _data(), cfg, progress=False)
    assert [h["epoch"] for h in a.history] == [2]
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"] and a.best == b.best


class NaNAfter(nn.Module):
    """A network whose output turns NaN at its third call (a diverging run)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        y = self.conv(x)
        return y * float("nan") if self.calls >= 3 else y


def test_non_finite_loss_raises_training_failed(tmp_path):
    with pytest.raises(TrainingFailed, match=r"non-finite loss at epoch 1, step 3") as err:
        train(NaNAfter(), _data(), TrainConfig(epochs=2, **{**FAST, "batch_size": 2}), run_dir=tmp_path,
              progress=False)
    assert err.value.reason.startswith("non-finite loss at epoch 1, step 3")
    assert json.loads((tmp_path / "failed.json").read_text())["reason"] == err.value.reason


def test_deep_supervision_multiclass_3d_volumes_with_patches():
    data = _data(spatial_dims=3, classes=2, size=16, n_cases=8, patch_size=(8, 8, 8))
    res = train(tiny_arch(3, deep_supervision=True, stages=3), data, TrainConfig(epochs=1, **FAST), progress=False)
    assert res.config["resolved"]["patch_size"] == (8, 8, 8) and res.config["arch"]["out_channels"] == 3
    assert {"dice_1", "dice_2", "hd95_2"} <= set(res.best)
    assert res.best["dice"] == pytest.approx((res.best["dice_1"] + res.best["dice_2"]) / 2)
    assert len(res.per_case) == 2 * len(res.split["val"])


def test_network_and_data_must_agree():
    with pytest.raises(ConfigError, match=r"the network is 3D but the data \(synthetic\) is 2D"):
        train(tiny_arch(3), _data(), TrainConfig(epochs=1, **FAST), progress=False)
    with pytest.raises(ConfigError, match=r"image size \[18, 18\] is not divisible by 2\^\(stages-1\) = 4 \(3 stages\); "
                                          r"choose a --size that is a multiple of 4"):
        train(tiny_arch(stages=3), _data(size=18), TrainConfig(epochs=1, **FAST), progress=False)
    with pytest.raises(ConfigError, match="train.device: 'cuda:7' asked for, but this machine has "):
        train(tiny_arch(), _data(), TrainConfig(epochs=1, device="cuda:7"), progress=False)


def test_train_config_typos_and_recipe(tmp_path):
    with pytest.raises(ConfigError, match=r"epohcs: unknown key 'epohcs' \(did you mean 'epochs'\?\)"):
        TrainConfig.build({"epohcs": 3})
    y = tmp_path / "t.yaml"
    y.write_text("recipe: cmunext\nepochs: 4\n")
    cfg = TrainConfig.from_yaml(y)
    assert (cfg.optimizer, cfg.schedule, cfg.lr, cfg.ce_weight, cfg.dice_weight, cfg.epochs) == \
        ("sgd", "poly", 0.01, 0.5, 1.0, 4)
    assert TrainConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_on_step_reports_every_step_of_every_epoch():
    seen = []
    train(tiny_arch(), _data(), TrainConfig(epochs=2, **FAST), progress=False,
          on_step=lambda e, s, n: seen.append((e, s, n)))
    steps = len(seen) // 2  # 12 synthetic cases: 60/20/20 -> 7 train cases, batch 4 -> 2 steps
    assert seen == [(e, s, steps) for e in (1, 2) for s in range(1, steps + 1)] and steps == 2


def test_cpu_runs_switch_deterministic_algorithms_on_and_restore_the_setting(tmp_path):
    assert not torch.are_deterministic_algorithms_enabled()
    train(tiny_arch(), _data(), TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    prov = json.loads((tmp_path / "config.json").read_text())["provenance"]
    assert prov["deterministic"]["deterministic_algorithms"] is True
    assert not torch.are_deterministic_algorithms_enabled()


def test_history_lr_is_the_rate_each_epoch_starts_at():
    """The per-step cosine schedule ends at 0 after the last step; the history shows the rate
    an epoch trained from (a 1-epoch run trained at the configured lr, not at 0)."""
    res = train(tiny_arch(), _data(), TrainConfig(epochs=2, **FAST), progress=False)
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] == FAST["lr"] and 0 < lrs[1] < FAST["lr"]


def test_hooks_see_every_epoch_step_and_evaluation():
    from nasseg.train.engine import Hooks

    seen: list[tuple] = []
    hooks = Hooks(on_epoch_start=lambda e: seen.append(("start", e)),
                  on_step=lambda e, s, n: seen.append(("step", e, s, n)),
                  on_epoch_end=lambda e, sec, n: seen.append(("end", e, n)),
                  on_eval=lambda e, m: seen.append(("eval", e, round(m["dice"], 6))) and False)
    res = train(tiny_arch(), _data(), TrainConfig(epochs=2, steps_per_epoch=2, eval_every=2, **FAST), progress=False,
                hooks=hooks)
    assert seen == [("start", 1), ("step", 1, 1, 2), ("step", 1, 2, 2), ("end", 1, 8),
                    ("start", 2), ("step", 2, 1, 2), ("step", 2, 2, 2), ("end", 2, 8),
                    ("eval", 2, round(res.history[0]["dice"], 6))]
