"""The issue's demonstration: CMUNeXt-S with 3 skip types x 3 seeds, a few epochs on the real
dsb2018_96 nuclei data, on the CPU, through ``nasseg ablate``; the statistics table is checked
against a direct computation from the trials stored in Optuna, and the report renders in
Chromium (screenshot in reports/browser/artifacts/dsb2018_skip_ablation.png)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from nasseg.ablation.stats import fit_crossed
from nasseg.cli import main

REPO = Path(__file__).resolve().parent.parent
DSB = REPO.parent / "shared" / "data" / "dsb2018_96"
ARTIFACTS = REPO / "reports" / "browser" / "artifacts"

pytestmark = pytest.mark.skipif(not (DSB / "images").is_dir(), reason=f"dataset not found at {DSB}")


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    """The shipped CMUNeXt skip study, pointed at dsb2018_96 and shrunk to ~15 s of CPU."""
    tmp = tmp_path_factory.mktemp("dsb")
    study = yaml.safe_load((REPO / "studies" / "cmunext_skip_ablation.yaml").read_text())
    study.update(name="dsb2018_skips", base="cmunext_s", seeds=3, out_dir=str(tmp / "run"),
                 description="CMUNeXt-S on dsb2018_96: Skip-Fusion vs concat vs IRSC (CPU smoke size).",
                 data={"kind": "folder", "path": str(DSB), "size": 64, "max_cases": 40, "split": {"seed": 0}},
                 train={"epochs": 5, "batch_size": 8, "lr": 0.01, "device": "cpu", "num_threads": 1},
                 stats={"test": "mixed"})
    study.pop("profiles")
    path = tmp / "dsb2018_skips.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    assert main(["ablate", str(path), "-o", str(tmp / "report")]) == 0
    storage = f"sqlite:///{tmp / 'run' / 'study.db'}"
    return optuna.load_study(study_name="dsb2018_skips", storage=storage), tmp / "report"


def test_statistics_table_equals_direct_computation_from_storage(ablation):
    study, report = ablation
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted((t.user_attrs["variant"], t.user_attrs["seed"]) for t in trials) == \
        [(v, s) for v in ("concat", "irsc", "skip_fusion") for s in (0, 1, 2)]
    dice = {}  # (variant, seed) -> per-case Dice, cases in sorted order
    for t in trials:
        rows = sorted(t.user_attrs["test_per_case"], key=lambda r: str(r["case_id"]))
        dice[(t.user_attrs["variant"], t.user_attrs["seed"])] = np.array([r["dice"] for r in rows], dtype=float)
    assert {len(d) for d in dice.values()} == {8}  # the 20% test cases of 40, the same for all
    assert all(len(t.user_attrs["per_case"]) == 8 for t in trials)  # the val cases chose the epoch
    table = pd.read_csv(report / "stats.csv").set_index("variant")
    assert table.index.tolist() == ["skip_fusion", "concat", "irsc"]
    p_raw = []
    for v in ("skip_fusion", "concat", "irsc"):
        seed_means = np.array([dice[(v, s)].mean() for s in range(3)])
        assert table.loc[v, "dice_mean"] == pytest.approx(seed_means.mean(), abs=1e-12)
        assert table.loc[v, "dice_sd"] == pytest.approx(seed_means.std(ddof=1), abs=1e-12)
        assert table.loc[v, "dice_ci_low"] <= seed_means.mean() <= table.loc[v, "dice_ci_high"]
        cost = next(t.user_attrs["cost"] for t in trials if t.user_attrs["variant"] == v)
        assert (table.loc[v, "params"], table.loc[v, "macs"]) == (cost["params"], cost["macs"])
        if v == "skip_fusion":
            assert pd.isna(table.loc[v, "p_value"])
            continue
        d = np.stack([dice[(v, s)] - dice[("skip_fusion", s)] for s in range(3)])  # seeds x cases
        assert table.loc[v, "n_pairs"] == 24 and table.loc[v, "test"] == "mixed"
        assert table.loc[v, "mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
        fit = fit_crossed(d)
        p = fit.t_p()[1]
        assert table.loc[v, "p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15)
        assert (table.loc[v, "diff_ci_low"], table.loc[v, "diff_ci_high"]) == pytest.approx(fit.ci(0.95), abs=1e-12)
        p_raw.append(p)
    # Holm over the two comparisons, by hand
    lo, hi = sorted(p_raw)
    holm = {lo: min(1.0, 2 * lo), hi: max(min(1.0, 2 * lo), min(1.0, hi))}
    assert table.loc[["concat", "irsc"], "p_holm"].tolist() == pytest.approx([holm[p] for p in p_raw], rel=1e-9)
    assert table["warning"].str.contains("only 3 training seeds").all()


def test_tables_and_report_are_written(ablation):
    _, report = ablation
    assert sorted(p.name for p in report.iterdir()) == ["per_case.csv", "report.html", "stats.csv", "stats.md",
                                                        "stats.tex"]
    md = (report / "stats.md").read_text()
    assert "| skip_fusion (baseline) |" in md and "Holm-corrected over 2 comparisons" in md
    assert "crossed random seed and case effects" in md and "Warning: only 3 training seeds" in md
    assert r"\toprule" in (report / "stats.tex").read_text()
    html = (report / "report.html").read_text()
    assert "dsb2018_96 (folder:" in html and "8 test cases" in html


@pytest.mark.browser
@pytest.mark.skipif(not os.access("/usr/bin/chromium", os.X_OK),
                    reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_ablation_report_renders_in_chromium(ablation):
    from nasseg.report.browser import check_report

    _, report = ablation
    check = check_report(report / "report.html", screenshot=ARTIFACTS / "dsb2018_skip_ablation.png",
                         chromium="/usr/bin/chromium")
    print(f"screenshot: {check.screenshot}")
    assert check.problems() == []
    assert [f.title for f in check.figures] == [
        "Mean test Dice per variant (95% CI, mixed model; grey = baseline)",
        "Paired difference in test Dice (variant − reference, 95% CI)",
        "Test Dice against cost (marker area ~ params)", "Learning curves (validation Dice)"]
    assert check.figures[0].points == [3, 9]  # 3 bars, 9 seed means
    assert check.requests == [(report / "report.html").resolve().as_uri()]
