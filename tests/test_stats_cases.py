"""What a statistics table may use and say: too few seeds, complete cases, non-finite values,
unmatched seed labels, degenerate runs and intervals inside the metric's range
(issue 21 bullets 1 and 3, issue 20's degenerate runs), through ``nasseg stats``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nasseg.ablation.cases import clip_intervals, complete_cases
from nasseg.ablation.csvstats import csv_stats
from nasseg.ablation.tables import seed_warning, to_markdown
from nasseg.cli import main
from nasseg.runs import degenerate


def write(tmp_path, seeds: int, cases: int = 12, shift: float = 0.0, seed: int = 0, **edits) -> str:
    rng = np.random.default_rng(seed)
    rows = [{"variant": v, "seed": s, "case": f"c{c:02d}",
             "dice": float(np.clip(0.7 + 0.1 * np.sin(c) + (shift if v == "b" else 0) + rng.normal(0, 0.03), 0, 1))}
            for v in ("a", "b") for s in range(seeds) for c in range(cases)]
    frame = pd.DataFrame(rows)
    for (v, s, c), value in edits.get("cells", {}).items():
        frame.loc[(frame.variant == v) & (frame.seed == s) & (frame.case == c), "dice"] = value
    for v, s, c in edits.get("drop", []):
        frame = frame[~((frame.variant == v) & (frame.seed == s) & (frame.case == c))]
    path = tmp_path / "results.csv"
    frame.to_csv(path, index=False)
    return str(path)


def b_row(out: str) -> list[str]:
    line = next(x for x in out.splitlines() if x.startswith("| b |"))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.mark.parametrize("seeds", [1, 2])
def test_fewer_than_three_seeds_print_no_p_value_but_a_conditional_comparison(tmp_path, capsys, seeds):
    path = write(tmp_path, seeds, shift=0.05)
    assert main(["stats", path, "--baseline", "a", "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    cells = b_row(out)
    assert cells[5] == "–" and cells[7] == "no test"  # p (Holm), Sig.
    assert "conditional on the trained networks" in out and "not whether the architectures differ" in out
    assert "too narrow" in out and "intervals are wide" not in out
    table = csv_stats(path, "a")["dice"].table.set_index("variant")
    assert table.loc["b", "test"] == "conditional" and math.isnan(table.loc["b", "p_value"])
    assert table.loc["b", "interval"] == "conditional"
    # the interval: t over the cases of the seed-averaged differences
    frame = pd.read_csv(path)
    d = (frame[frame.variant == "b"].groupby("case")["dice"].mean()
         - frame[frame.variant == "a"].groupby("case")["dice"].mean()).to_numpy()
    half = 2.200985160082949 * d.std(ddof=1) / math.sqrt(12)  # t_(0.975, 11)
    assert (table.loc["b", "diff_ci_low"], table.loc["b", "diff_ci_high"]) == \
        pytest.approx((d.mean() - half, d.mean() + half), abs=1e-12)


def test_three_seeds_keep_the_mixed_model_p_value(tmp_path, capsys):
    assert main(["stats", write(tmp_path, 3, shift=0.05), "--baseline", "a", "-o", str(tmp_path / "o")]) == 0
    cells = b_row(capsys.readouterr().out)
    assert cells[5] != "–" and cells[7] in ("*", "**", "***", "ns")


def test_one_seed_warning_says_too_narrow():
    text = seed_warning(pd.DataFrame({"variant": ["a", "b"], "n_seeds": [1, 1]}))
    assert "too narrow" in text and "no p-value" in text and "wide" not in text


def test_means_and_comparison_use_the_same_complete_cases(tmp_path, capsys):
    """A case missing from one run and a NaN and an inf cell drop those cases from every
    mean and comparison, and the note counts them (before: the means were over different
    cases than the difference, and inf gave '+inf [+inf, +inf], p<0.001')."""
    path = write(tmp_path, 3, cases=10, drop=[("b", 2, "c03")],
                 cells={("a", 1, "c05"): float("nan"), ("b", 0, "c07"): float("inf")})
    assert main(["stats", path, "--baseline", "a", "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "inf" not in b_row(out)[4] and "n = 7 of 10 cases" in out
    assert "1 missing from some run (e.g. b seed 2 lacks 1)" in out
    assert "2 non-finite in some run (1 NaN value, 1 infinite value)" in out
    t = csv_stats(path, "a")["dice"].table.set_index("variant")
    assert (t["n_cases"] == 7).all()
    # balanced after the drop: the shown means differ by exactly the shown difference
    assert t.loc["b", "dice_mean"] - t.loc["a", "dice_mean"] == pytest.approx(t.loc["b", "mean_diff"], abs=1e-12)


def test_no_complete_case_is_one_line(tmp_path, capsys):
    path = write(tmp_path, 3, cases=2, cells={("a", 0, "c00"): float("inf"), ("b", 1, "c01"): float("nan")})
    assert main(["stats", path, "--baseline", "a", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no case has a finite dice in every run" in err[0] and "results.csv" in err[0]


def test_seed_labels_that_do_not_match_are_refused_with_the_reason(tmp_path, capsys):
    path = tmp_path / "results.csv"
    frame = pd.read_csv(write(tmp_path, 3))
    frame.loc[frame.variant == "b", "seed"] += 10
    frame.to_csv(path, index=False)
    assert main(["stats", str(path), "--baseline", "a", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "share no seed label" in err[0] and "(seeds 10, 11, 12)" in err[0]


def test_degenerate_runs_are_left_out_with_a_count(tmp_path, capsys):
    path = write(tmp_path, 4, cells={("b", 3, f"c{c:02d}"): 0.0 for c in range(12)})
    assert main(["stats", path, "--baseline", "a", "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "Left out 1 degenerate run (Dice 0 on every case" in out and "b seed 3" in out
    t = csv_stats(path, "a")["dice"].table.set_index("variant")
    assert t.loc["b", "n_seeds"] == 3 and t.loc["b", "dice_mean"] > 0.5


def test_intervals_never_leave_the_metrics_range(tmp_path):
    """Near Dice 0 the symmetric t interval goes below 0 (issue 20: 0.0501 [-0.5867, 0.6869]):
    the shown interval is clipped and the note says so."""
    rng = np.random.default_rng(1)
    rows = [{"variant": v, "seed": s, "case": f"c{c}", "dice": float(rng.choice([0.0, 0.0, 0.0, 0.9]) if v == "b" else 0.8),
             "hd95": float(rng.exponential(3.0))}
            for v in ("a", "b") for s in range(3) for c in range(8)]
    path = tmp_path / "r.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    res = csv_stats(path, "a")
    for m, (lo, hi) in {"dice": (0, 1), "hd95": (0, math.inf)}.items():
        t = res[m].table
        assert (t[f"{m}_ci_low"] >= lo).all() and (t[f"{m}_ci_high"] <= hi).all()
    assert "clipped to the metric's range [0, 1]" in to_markdown(res["dice"])
    raw, n = clip_intervals(pd.DataFrame({"dice_ci_low": [-0.2, 0.1], "dice_ci_high": [0.5, 1.3]}), "dice")
    assert n == 2 and raw.to_numpy().tolist() == [[0.0, 0.5], [0.1, 1.0]]


def test_complete_cases_keeps_only_cases_every_run_has():
    frame = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 0, 0, 0], "case_id": ["x", "y", "x", "y"],
                          "dice": [0.5, float("nan"), 0.6, 0.7]})
    kept, cs = complete_cases(frame, "dice")
    assert cs.kept == ("x",) and cs.nonfinite == 1 and cs.nan_cells == 1 and len(kept) == 2


def test_a_run_that_never_predicted_foreground_is_degenerate():
    rows = [{"case_id": c, "class": 1, "dice": 0.0, "pred_voxels": 0} for c in "abc"]
    res = SimpleNamespace(per_case=rows, history=[{"n_empty_pred": 3}, {"n_empty_pred": 3}], best={"dice": 0.0},
                          test_per_case=[{"pred_voxels": 0}])
    assert degenerate(res).startswith("degenerate: predicted no foreground on any validation case in 2 epochs")
    res.history[0]["n_empty_pred"] = 2  # one epoch found something
    assert degenerate(res) is None


def test_an_ablation_counts_the_runs_it_leaves_out():
    """A run that failed as degenerate, and an old COMPLETE run with Dice 0 on every case, are
    left out of the ablation's table with their reasons; the means use the other seeds."""
    import optuna

    from nasseg.ablation.config import AblationConfig
    from nasseg.ablation.results import analyze
    from nasseg.ablation.tables import method_note
    from nasseg.report.testing import add_trial, new_study

    cfg = AblationConfig(name="t", base="cmunext_s", seeds=4, data={"kind": "synthetic"},
                         factors={"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]}})
    study = new_study(None, "t", "ablation", [("dice", "maximize")], config=cfg.model_dump(mode="json"))
    rng = np.random.default_rng(0)
    for s in range(4):
        for k, v in enumerate(["skip_fusion", "irsc"]):
            common = dict(variant=v, factors={"skip": v}, is_baseline=k == 0, seed=s,
                          split={"method": "random", "seed": 0, "hash": "h1"}, arch={"stages": []}, arch_id=f"v{k}")
            if (v, s) == ("irsc", 3):
                add_trial(study, None, state=optuna.trial.TrialState.FAIL,
                          fail_reason="degenerate: predicted no foreground on any validation case in 2 epochs", **common)
                continue
            dice = np.zeros(6) if (v, s) == ("skip_fusion", 2) else np.clip(0.7 + rng.normal(0, 0.05, 6), 0, 1)
            add_trial(study, [float(dice.mean())], per_case=[{"case_id": f"c{c}", "class": 1, "dice": float(d)}
                                                            for c, d in enumerate(dice)], **common)
    res = analyze(study, cfg)
    note = method_note(res)
    assert "Left out 2 failed runs (irsc seed 3: degenerate: predicted no foreground" in note
    assert "skip_fusion seed 2: degenerate: Dice 0 on every case" in note
    t = res.table.set_index("variant")
    assert t.loc["skip_fusion", "n_seeds"] == 3 and t.loc["irsc", "n_seeds"] == 3
    assert t.loc["skip_fusion", "dice_mean"] > 0.5


def test_busi_evidence_readme_numbers_come_from_its_per_case_table(capsys):
    """The seed-level interval and the HD95 breakdown that the corrected evidence README
    (reports/evidence/busi_skip_fusion_vs_concat/) states, recomputed by its command."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("recheck", root / "benchmarks" / "recheck_busi_ablation.py")
    recheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recheck)
    assert recheck.main([str(root / "reports" / "evidence" / "busi_skip_fusion_vs_concat" / "per_case.csv")]) == 0
    out = capsys.readouterr().out
    assert "0: -0.0079, 1: -0.0129, 2: +0.0155, 3: +0.0007, 4: +0.0112" in out
    assert "mean +0.0013, 95% t interval over 5 seeds (df 4): [-0.0137, +0.0163] (half-width 0.0150)" in out
    assert "| concat | 645 | 42.09 | 24.60 | 2 | 0.027 | 40 | 0.192 | 0.349 |" in out
    assert "| skip_fusion | 645 | 41.57 | 24.76 | 0 | 0.000 | 31 | 0.129 | 0.341 |" in out
