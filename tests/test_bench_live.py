"""`nasseg bench search` (live): the default search and random search on real data, same
start (no initial architecture), hypervolume measured with test Dice."""
from __future__ import annotations

import json
from pathlib import Path

from nasseg.bench.live import run_bench
from nasseg.search.results import open_result
from nasseg.store import trial_record

DSB = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018_96"
SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "lightweight_2d.yaml"


def test_live_bench_runs_both_arms_from_the_same_start_and_reports_test_hv(tmp_path):
    result = run_bench(data=str(DSB), space=SPACE, seeds=[0], budget_epochs=2, epochs=1, max_cases=16, size=32,
                       out=tmp_path, progress=False)
    assert {r["method"] for r in result["runs"]} == {"default", "random"}
    for r in result["runs"]:
        assert 0.0 < r["hv_test_at_budget"] <= 1.0 and r["epochs_spent"] >= 2
        study = open_result(tmp_path / "runs" / "studies" / f"{r['method']}_s0.yaml")
        records = [trial_record(t) for t in study.trials]
        assert not any(rec.initial_arch for rec in records)
        assert all(rec.metrics["test"]["dice"] is not None for rec in records if rec.trained)
    diff = result["summary"]["default"]["diff_vs_random_by_seed"]
    runs = {r["method"]: r["hv_test_at_budget"] for r in result["runs"]}
    assert diff == [runs["default"] - runs["random"]]
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["split"] == "50/25/25 train/val/test"
    assert "test HV at budget" in (tmp_path / "summary.md").read_text()
