"""The stopping rule wired into a real study: a tiny deterministic trainer (a real function
that replays fixed Dice curves through the callback) and a real SQLite storage."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_search_helpers import TINY_SPACE, arch_yaml, make_study

from nasseg.search.results import open_result
from nasseg.search.runner import run_search
from nasseg.train import TrainResult

CURVES = {4: [0.80, 0.85, 0.90, 0.90], 6: [0.10, 0.12, 0.50, 0.95]}


def replay_trainer(arch, data, cfg, *, run_dir=None, callback=None, progress=True, on_step=None) -> TrainResult:
    """Reports the fixed curve of the network's width; stops when the callback says so."""
    history, stopped = [], False
    for epoch, dice in enumerate(CURVES[arch.stages[0].width][: cfg.epochs], start=1):
        history.append({"epoch": epoch, "dice": dice, "iou": dice, "hd95": 1.0, "train_loss": 1 - dice})
        if callback is not None and callback(epoch, dict(history[-1])):
            stopped = True
            break
    best = max(history, key=lambda h: h["dice"])
    return TrainResult(best_epoch=best["epoch"], best={"dice": best["dice"]}, history=history, per_case=[],
                       split={"method": "random", "seed": 0, "train": ["a"], "val": ["b"]},
                       stopped_early=stopped, stop_reason="callback" if stopped else None,
                       epochs_run=len(history))


@pytest.mark.parametrize("enabled", [True, False])
def test_dominated_trial_is_stopped_and_its_curve_kept(tmp_path: Path, enabled: bool) -> None:
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 6]}}}
    study_yaml = make_study(
        tmp_path, space_dict=space, epochs=4, budget={"trials": 2},
        initial_archs=[arch_yaml(tmp_path, "cheap_good", 4), arch_yaml(tmp_path, "costly_bad", 6)],
        early_stopping={"enabled": enabled, "rule": "pareto", "warmup_epochs": 2, "min_dominators": 1, "margin": 0.05})
    run_search(study_yaml, trainer=replay_trainer, progress=False)
    first, second = open_result(study_yaml).trials
    assert first.user_attrs["stopped_early"] is False and first.user_attrs["epochs_run"] == 4
    if enabled:
        assert second.user_attrs["stopped_early"] is True
        assert second.user_attrs["epochs_run"] == 2
        assert [h["dice"] for h in second.user_attrs["history"]] == [0.10, 0.12]
        assert second.user_attrs["stop_reason"].startswith("pareto: at epoch 2 Dice 0.120 is dominated by 1")
        assert second.values[0] == pytest.approx(0.12)
    else:
        assert second.user_attrs["stopped_early"] is False and second.user_attrs["epochs_run"] == 4
        assert second.values[0] == pytest.approx(0.95)  # the late bloomer a stopping rule can miss
