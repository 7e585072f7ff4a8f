"""The search benchmark's statistics (issue 21, bullet 5): one pre-declared primary endpoint
(HV at 50% of the budget) with Holm over every strategy of the run in one family, GP included;
the other budget points secondary and unadjusted; a bootstrap interval over seeds for the
budget at which a strategy reaches random's final HV."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from nasseg.bench.search_report import PRIMARY, _summarise, first_reach, markdown, reach_interval

BUDGET = 20


def _curves(n_seeds: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    b = np.arange(BUDGET + 1) / BUDGET
    out = {}
    for name, speed in (("random", 1.0), ("tpe", 1.6), ("gp", 1.3), ("nsga2", 1.05)):
        noise = rng.normal(0, 0.02, (n_seeds, 1))
        out[name] = np.maximum.accumulate(np.clip(0.5 * (1 - np.exp(-3 * speed * b)) + noise, 0, None), axis=1)
    return out


def test_holm_only_at_the_primary_endpoint_over_every_strategy_including_gp():
    curves = _curves()
    names = list(curves)
    extra = {s: {"trained_trials_mean": 5.0, "stopped_trials_mean": 0.0, "seconds": 0.0} for s in names}
    out = _summarise(curves, names, BUDGET, extra)
    b = int(PRIMARY * BUDGET)
    raw = [stats.wilcoxon(curves[s][:, b], curves["random"][:, b]).pvalue for s in names[1:]]
    holm = multipletests(raw, method="holm")[1]
    for s, q in zip(names[1:], holm, strict=True):
        assert out[s]["hv"]["0.5"]["p_holm"] == pytest.approx(q, rel=1e-12)
        assert out[s]["hv"]["0.5"]["endpoint"] == "primary"
        assert out[s]["holm_family"] == ["tpe", "gp", "nsga2"]
        for f in ("0.25", "1.0"):  # secondary: unadjusted p only
            assert "p_holm" not in out[s]["hv"][f] and out[s]["hv"][f]["endpoint"] == "secondary"
    text = markdown({"settings": {"table": "t.csv.gz", "archs": 10, "seeds_per_arch": 2, "epochs": 4,
                                  "budget_epochs": BUDGET, "n_seeds": 12, "reference": {"macs": 1, "params": 1},
                                  "table_front_hv_test": 0.6}, "summary": out})
    assert "Holm-corrected over the one family of every strategy of this run against random (3: tpe, gp, nsga2)" \
        in text and "p @100% (secondary, unadjusted)" in text


def test_reach_budget_has_a_bootstrap_interval_over_seeds():
    curves = _curves(30)
    lo, hi = reach_interval(curves["tpe"], curves["random"], BUDGET, n_boot=500)
    point = first_reach(curves["tpe"], np.array(curves["random"][:, BUDGET].mean()))
    assert lo <= point <= hi < BUDGET
    # by hand: the same resampled seed indices for both curves
    idx = np.random.default_rng(0).integers(0, 30, size=(500, 30))
    by_hand = [first_reach(curves["tpe"][i], np.array(curves["random"][i, BUDGET].mean())) for i in idx]
    assert (lo, hi) == (float(np.percentile(by_hand, 2.5, method="lower")),
                        float(np.percentile(by_hand, 97.5, method="higher")))
    # random against itself always reaches at the end at the latest; a flat strategy never does
    never = reach_interval(np.zeros_like(curves["random"]), curves["random"], BUDGET, n_boot=50)
    assert never == (np.inf, np.inf)
