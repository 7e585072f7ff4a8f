"""Fault injection, training: divergence, collapse, out of memory.

Issue 10, cases 3 and 4: lr 1e6 gave a finite loss of 1.8e25 and a COMPLETE trial on the
front; CPU out-of-memory ended in a raw traceback.
"""
from __future__ import annotations

import json

import pytest
import torch
from faults import FAST, TINY_ARCH, run_cli

from nasseg.arch import load_arch
from nasseg.cli import main
from nasseg.data import resolve_data
from nasseg.train import TrainConfig, TrainingFailed, train
from nasseg.train.divergence import DivergenceGuard


def _data(**kw):
    return resolve_data("synthetic", **{"n_cases": 12, "size": 16, **kw})


def test_lr_1e6_fails_as_diverged_and_writes_the_reason(tmp_path):
    with pytest.raises(TrainingFailed, match=r"diverged: loss .* at epoch 1, step \d+ is over 1000x the first "
                                             r"loss .*; lower train.lr") as err:
        train(load_arch(TINY_ARCH), _data(), TrainConfig(epochs=2, **{**FAST, "lr": 1e6}), run_dir=tmp_path,
              progress=False)
    assert json.loads((tmp_path / "failed.json").read_text())["reason"] == err.value.reason
    assert not (tmp_path / "metrics.json").exists()


def test_exploding_but_finite_loss_is_caught():
    guard = DivergenceGuard()
    assert guard.check([torch.tensor(1.6), torch.tensor(50.0)], 0, epoch=1, history=[]) == 2
    with pytest.raises(TrainingFailed, match="loss 1.8e\\+25 at epoch 2, step 3"):
        guard.check([torch.tensor(1.6), torch.tensor(50.0), torch.tensor(1.8e25)], 2, epoch=2, history=[])


def test_dice_collapse_to_the_empty_prediction_value_fails():
    guard = DivergenceGuard()
    guard.set_empty_dice([torch.zeros(4, 4), torch.ones(4, 4)], num_classes=2)  # 1 of 2 cases empty
    assert guard.empty_dice == 0.5
    guard.check_dice([{"epoch": 1, "dice": 0.5}, {"epoch": 2, "dice": 0.5}])  # never learned: not a collapse
    guard.check_dice([{"epoch": 1, "dice": 0.8}, {"epoch": 2, "dice": 0.6}])  # worse, not collapsed
    # a transient collapse early in training is not a divergence (busi_256 at 96 px: 0.095, then nothing)
    for n in (1, 2):
        guard.check_dice([{"epoch": 1, "dice": 0.595}] + [{"epoch": 2 + i, "dice": 0.5} for i in range(n)])
    guard.check_dice([{"epoch": e, "dice": d} for e, d in enumerate([0.595, 0.5, 0.5, 0.7, 0.5, 0.5], 1)])
    with pytest.raises(TrainingFailed, match=r"collapsed to 0\.500, the score of predicting nothing, at epochs "
                                             r"3-5, after 0\.800 at epoch 1"):
        guard.check_dice([{"epoch": e, "dice": d} for e, d in enumerate([0.8, 0.6, 0.5, 0.5, 0.5], 1)])


def test_lr_1e6_on_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "arch.yaml").write_text(json.dumps(TINY_ARCH))
    code = main(["train", str(tmp_path / "arch.yaml"), "--data", "synthetic", "--size", "16", "--max-cases", "8",
                 "--epochs", "2", "--lr", "1e6", "--threads", "1", "--no-progress", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("nasseg: error: diverged: loss")


def test_cpu_out_of_memory_names_the_setting_to_lower(tmp_path):
    # a real allocator failure: the address space is capped 1 GiB above what the imports need, far
    # below one training step at batch 48 x 64 channels x 256^2 (~0.8 GB per feature map)
    limit = ("import resource, torch, torch._dynamo, torch.optim, nasseg.cli, nasseg.train.engine, "
             "nasseg.data.synthetic, nasseg.arch\n"
             "vm = int([l for l in open('/proc/self/status') if l.startswith('VmSize')][0].split()[1]) * 1024\n"
             "resource.setrlimit(resource.RLIMIT_AS, (vm + 1024 * 2**20, resource.RLIM_INFINITY))")
    (tmp_path / "arch.yaml").write_text(json.dumps({**TINY_ARCH, "stages": [
        {"width": 64, "block": {"type": "conv"}}, {"width": 128, "block": {"type": "conv"}}]}))
    r = run_cli("train", str(tmp_path / "arch.yaml"), "--data", "synthetic", "--size", "256", "--max-cases", "80",
                "--batch-size", "64", "--epochs", "1", "--threads", "1", "--no-progress",
                "--run-dir", str(tmp_path / "run"), preamble=limit)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("nasseg: error: CPU out of memory at epoch 1 (batch 64")
    assert "lower --batch-size (train.batch_size)" in r.stderr
