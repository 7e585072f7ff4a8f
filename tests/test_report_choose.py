"""The report's "Choosing a network" section: recommendations computed from a stored study,
and prediction strips drawn from real checkpoints, rendered in headless Chromium."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from nasseg.arch import load_arch
from nasseg.cli import main
from nasseg.report.choose import choice_info
from nasseg.report.predictions import overlay, pick_cases
from nasseg.report.testing import add_trial, new_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
CHROMIUM = "/usr/bin/chromium"
OBJ = [("dice", "maximize"), ("macs", "minimize"), ("params", "minimize")]


def _tiny(width: int) -> dict:
    return {"name": f"w{width}", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
            "stages": [{"width": width, "block": {"type": "conv"}}, {"width": 2 * width, "block": {"type": "conv"}}]}


def _study(tmp_path: Path, run: Path | None) -> optuna.Study:
    """Five networks (dice, GMACs, params): a front of four and a dominated one; trial 0 is
    the starting preset; every trial validated on the same 8 cases."""
    study = new_study(f"sqlite:///{tmp_path / 's.db'}", "choose", "search", OBJ,
                      reference_point={"dice": 0, "macs": 4, "params": 2e6},
                      dataset={"kind": "synthetic", "synthetic": {"spatial_dims": 2, "n_cases": 24}})
    study.set_user_attr("limits", {"params": 1.5e6, "macs": 3.0})
    cases = [f"synth_{i:04d}" for i in range(8)]
    if run is not None:
        cases = [r["case_id"] for r in csv.DictReader(open(run / "per_case.csv"))]
    rng = np.random.default_rng(0)
    specs = [(0.70, 0.5, 4e5, "cmunext_s"), (0.62, 0.2, 5e4, None), (0.81, 2.5, 1.2e6, None),
             (0.76, 0.6, 2e5, None), (0.60, 2.0, 1e6, None)]
    for i, (dice, gmacs, params, initial) in enumerate(specs):
        per_case = [{"case_id": c, "class": 1, "dice": float(np.clip(dice + rng.normal(0, 0.03), 0, 1))}
                    for c in cases]
        attrs = {"arch": load_arch(_tiny(4 * (i + 1))).model_dump(mode="json"), "arch_id": f"a{i}", "cost": {"params": params, "macs": gmacs * 1e9},
                 "trained": True, "per_case": per_case}
        if initial:
            attrs["initial_arch"] = initial
        if run is not None:
            attrs["checkpoint"] = str(run / "checkpoint.pt")
        add_trial(study, [float(np.mean([r["dice"] for r in attrs["per_case"]])), gmacs, params], **attrs)
    return study


def test_recommendations_knee_budgets_and_preset(tmp_path):
    info = choice_info(_study(tmp_path, None))
    assert [m.trial for m in info.members] == [2, 3, 0, 1]  # trial 4 is dominated; best Dice first
    recs = {r.label: r.trial for r in info.recommendations}
    # labels, units and numbers as the objective registry writes them (nasseg.store.objectives)
    assert recs["highest Dice"] == 2 and recs["best with params (M) <= 1.500"] == 2
    assert recs["best with params (M) <= 0.750"] == 3 and recs["best with GMACs <= 1.500"] == 3
    assert not any("0.375" in label for label in recs)  # the same network as under 0.75 M: not repeated
    assert recs["knee point"] == 3  # scaled losses: trial 3 is closest to the ideal
    assert info.preset is not None and info.preset.initial_arch == "cmunext_s"
    vs = {r.label: r.vs_preset for r in info.recommendations}
    assert vs["highest Dice"].startswith("vs cmunext_s: +0.1") and "on the 8 validation cases that chose it " \
        "(optimistic, no interval" in vs["highest Dice"]
    assert "3.00x Params" in vs["highest Dice"] and "5.00x MACs" in vs["highest Dice"]
    lo, hi = info.members[0].ci
    assert lo < info.members[0].dice < hi


def test_pick_cases_and_overlay():
    assert [c for _, c, _ in pick_cases({"a": 0.9})] == ["a"]
    image = np.zeros((1, 16, 16), np.float32)
    image[0, 4:8, 4:8] = 1
    pred = np.zeros((16, 16), np.uint8)
    pred[4:8, 4:8] = 1
    rgb = overlay(image, pred, pred, min_side=32)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[8, 8]) == (40, 220, 60)  # the ground-truth outline, upscaled x2
    assert rgb[12, 12, 0] > rgb[12, 12, 1]  # inside the prediction: tinted red


@pytest.mark.browser
@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no chromium at {CHROMIUM}")
def test_report_shows_prediction_strips_and_recommendation_in_chromium(tmp_path):
    from nasseg.report.browser import check_report
    from nasseg.report.html import write_report

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(_tiny(4)))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "tiny.yaml"), "--data", "synthetic", "--size", "32", "--max-cases", "24",
                 "--epochs", "1", "--batch-size", "4", "--threads", "1", "--device", "cpu", "--run-dir", str(run),
                 "--no-progress"]) == 0
    study = _study(tmp_path, run)
    html = write_report(study, tmp_path / "report")
    text = html.read_text()
    assert '<div id="recommendation">' in text and "knee point" in text and "vs cmunext_s:" in text
    check = check_report(html, screenshot=tmp_path / "shot.png", chromium=CHROMIUM)
    assert check.problems() == []
    strips = [f for f in check.figures if f.title.startswith("Predictions of trial")]
    assert len(strips) == 4  # one per Pareto member
    # 3 upscaled panels, then the legend's two entries (prediction, ground truth) without points
    assert all(f.rendered and len(f.points) == 5 and min(f.points[:3]) >= 128 for f in strips)
    rec = next(f for f in check.figures if f.title.startswith("Recommended networks"))
    assert rec.rendered and rec.points[0] == 4
