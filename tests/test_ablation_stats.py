"""Each statistic of nasseg.ablation.stats against a direct computation on constructed data."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from nasseg.ablation.stats import (case_matrix, compare, crossed_bootstrap_ci, holm, rank_biserial,
                                   significance, summarize_variant, tidy)
from nasseg.errors import NassegError


def frame_from(matrices: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy rows from variant -> seeds x cases arrays (seeds 0.., cases c0..)."""
    rows = []
    for variant, m in matrices.items():
        for s in range(m.shape[0]):
            for c in range(m.shape[1]):
                rows.append({"variant": variant, "seed": s, "case_id": f"c{c:02d}", "dice": m[s, c]})
    return pd.DataFrame(rows)


RNG = np.random.default_rng(7)
BASE = RNG.uniform(0.5, 0.9, size=(3, 12))
BETTER = BASE + RNG.normal(0.03, 0.02, size=(3, 12))


def test_holm_matches_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # NaN does not count in m; the cap is 1
    out = holm([float("nan"), 0.02, 0.7])
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.04, 0.7])
    np.testing.assert_allclose(holm([0.6, 0.9]), [1.0, 1.0])


def test_rank_biserial_matches_rank_sums():
    # |d| ranks 1, 2, 3, 4 (zero dropped): R+ = 1 + 2 + 4 = 7, R- = 3 -> (7 - 3) / 10
    assert rank_biserial(np.array([0.1, 0.2, -0.3, 0.4, 0.0])) == pytest.approx(0.4, abs=1e-15)
    assert rank_biserial(np.array([0.5, 0.1])) == 1.0
    # ties get average ranks: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3; R+ = 1.5 + 3, R- = 1.5
    assert rank_biserial(np.array([1.0, -1.0, 2.0])) == pytest.approx(0.5, abs=1e-15)


def test_bootstrap_ci_equals_explicit_resampling_loop():
    m = BASE
    low, high = crossed_bootstrap_ci(m, n_resamples=500, confidence=0.9, seed=3)
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 3, size=(500, 3))
    cols = rng.integers(0, 12, size=(500, 12))
    means = [m[rows[b]][:, cols[b]].mean() for b in range(500)]
    exp_low, exp_high = np.percentile(means, [5.0, 95.0])
    assert low == pytest.approx(exp_low, abs=1e-12)
    assert high == pytest.approx(exp_high, abs=1e-12)
    assert low < m.mean() < high


def test_bootstrap_ci_of_constant_table_is_a_point():
    assert crossed_bootstrap_ci(np.full((2, 5), 0.25), n_resamples=100) == (0.25, 0.25)


def test_summary_is_mean_of_seed_means_with_seed_sd():
    frame = tidy(frame_from({"a": BASE}))
    s = summarize_variant(frame, "a", n_resamples=200, seed=1)
    seed_means = BASE.mean(axis=1)
    assert s["n_seeds"] == 3 and s["n_cases"] == 12
    assert s["dice_mean"] == pytest.approx(seed_means.mean(), abs=1e-15)
    assert s["dice_sd"] == pytest.approx(np.std(seed_means, ddof=1), abs=1e-15)
    assert (s["dice_ci_low"], s["dice_ci_high"]) == crossed_bootstrap_ci(BASE, n_resamples=200, seed=1)


def test_wilcoxon_comparison_matches_scipy_on_seed_case_pairs():
    frame = tidy(frame_from({"base": BASE, "new": BETTER}))
    r = compare(frame, "new", "base", test="wilcoxon", n_resamples=300, seed=2)
    d = (BETTER - BASE).ravel()  # seed-major, case order c00, c01, ... as the table sorts them
    ref = sps.wilcoxon(d)
    assert r.n_pairs == 36
    assert r.mean_diff == pytest.approx(d.mean(), abs=1e-15)
    assert r.p_value == ref.pvalue and r.statistic == ref.statistic
    assert r.effect_size == rank_biserial(d) and r.effect_measure == "r_rb"
    assert (r.diff_ci_low, r.diff_ci_high) == crossed_bootstrap_ci(BETTER - BASE, n_resamples=300, seed=2)


def test_wilcoxon_exact_p_on_small_hand_example():
    # 5 positive paired differences of distinct size: exact two-sided p = 2 / 2**5
    base = np.array([[0.5, 0.6, 0.7, 0.4, 0.8]])
    new = base + np.array([[0.01, 0.02, 0.03, 0.04, 0.05]])
    r = compare(tidy(frame_from({"b": base, "n": new})), "n", "b", n_resamples=100)
    assert r.p_value == pytest.approx(0.0625, abs=1e-12)
    assert r.statistic == 0.0 and r.effect_size == 1.0
    assert r.mean_diff == pytest.approx(0.03, abs=1e-12)


def test_paired_ttest_and_cohens_dz_by_hand():
    base = np.array([[0.5, 0.6], [0.7, 0.4]])
    new = base + np.array([[0.01, 0.02], [0.03, 0.04]])
    r = compare(tidy(frame_from({"b": base, "n": new})), "n", "b", test="ttest", n_resamples=100)
    d = np.array([0.01, 0.02, 0.03, 0.04])
    # mean 0.025, sd = sqrt(5e-4 / 3): d_z = 0.025 / 0.0129099... = 1.93649...
    assert r.effect_size == pytest.approx(0.025 / math.sqrt(5e-4 / 3), rel=1e-9)
    assert r.effect_size == pytest.approx(1.9364916731, rel=1e-9)
    assert r.p_value == pytest.approx(sps.ttest_rel(new.ravel(), base.ravel()).pvalue, rel=1e-12)
    assert r.statistic == pytest.approx(d.mean() / (d.std(ddof=1) / 2), rel=1e-9)
    assert r.effect_measure == "d_z" and r.test == "ttest"


def test_case_pairing_averages_seeds_first():
    frame = tidy(frame_from({"base": BASE, "new": BETTER}))
    r = compare(frame, "new", "base", pairing="case", n_resamples=100)
    d = (BETTER - BASE).mean(axis=0)
    assert r.n_pairs == 12
    assert r.p_value == sps.wilcoxon(d).pvalue


def test_pairs_only_matched_seeds_and_cases():
    new = BETTER.copy()
    frame = frame_from({"base": BASE, "new": new})
    # the new variant lost seed 2 and case c11 of seed 0 (missing case drops the column)
    frame = frame[~((frame.variant == "new") & ((frame.seed == 2) | ((frame.seed == 0) & (frame.case_id == "c11"))))]
    r = compare(tidy(frame), "new", "base", n_resamples=100)
    assert r.n_pairs == 2 * 11
    assert r.mean_diff == pytest.approx((BETTER[:2, :11] - BASE[:2, :11]).mean(), abs=1e-15)


def test_identical_variants_give_p_one_and_no_effect():
    r = compare(tidy(frame_from({"a": BASE, "b": BASE.copy()})), "b", "a", n_resamples=100)
    assert (r.p_value, r.effect_size, r.mean_diff) == (1.0, 0.0, 0.0)


def test_tidy_averages_classes_and_drops_missing_dice():
    frame = pd.DataFrame({"variant": ["a"] * 4, "seed": [0] * 4, "case_id": ["x", "x", "y", "y"],
                          "class": [1, 2, 1, 2], "dice": [0.2, 0.4, 0.9, None]})
    out = tidy(frame)
    assert out["dice"].tolist() == pytest.approx([0.3, 0.9])
    with pytest.raises(NassegError, match=r"lack the columns \['seed'\]"):
        tidy(frame.drop(columns="seed"))
    assert case_matrix(out, "a").shape == (1, 2)


def test_significance_marks():
    assert [significance(p) for p in (0.0004, 0.004, 0.04, 0.05, 0.3)] == ["***", "**", "*", "ns", "ns"]
    assert significance(float("nan")) == ""
    assert significance(0.02, alpha=0.01) == "ns"


def test_crossed_t_test_by_hand_on_a_2x2_table():
    # grand 3; seed means 1.5, 4.5 -> MS_seed 9; case means 2, 4 -> MS_case 4; MS_res 1
    # Var(mean) = (9 + 4 - 1) / 4 = 3 -> t = 3 / sqrt(3); df = 12^2 / (81 + 16 + 1)
    from nasseg.ablation.stats import crossed_t_test

    t, df, p = crossed_t_test(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert t == pytest.approx(math.sqrt(3.0), rel=1e-12)
    assert df == pytest.approx(144 / 98, rel=1e-12)
    assert p == pytest.approx(2 * sps.t.sf(math.sqrt(3.0), 144 / 98), rel=1e-12)


def test_crossed_comparison_matches_an_additive_model_fit():
    from nasseg.ablation.stats import crossed_t_test

    d = BETTER - BASE
    s, c = d.shape
    # residual sum of squares of the additive model seed + case, by least squares
    x = np.zeros((s * c, s + c - 1))
    for i in range(s):
        for j in range(c):
            x[i * c + j, i] = 1.0
            if j:
                x[i * c + j, s + j - 1] = 1.0
    beta, *_ = np.linalg.lstsq(x, d.ravel(), rcond=None)
    ms_res = ((d.ravel() - x @ beta) ** 2).sum() / ((s - 1) * (c - 1))
    ms_seed = c * np.var(d.mean(axis=1), ddof=1)
    ms_case = s * np.var(d.mean(axis=0), ddof=1)
    v = ms_seed + ms_case - ms_res
    df = v ** 2 / (ms_seed ** 2 / (s - 1) + ms_case ** 2 / (c - 1) + ms_res ** 2 / ((s - 1) * (c - 1)))
    t = d.mean() / math.sqrt(v / (s * c))
    assert crossed_t_test(d) == pytest.approx((t, df, 2 * sps.t.sf(abs(t), df)), rel=1e-9)
    r = compare(tidy(frame_from({"base": BASE, "new": BETTER})), "new", "base", test="crossed", n_resamples=100)
    assert (r.statistic, r.p_value, r.n_pairs) == (pytest.approx(t, rel=1e-9), pytest.approx(
        2 * sps.t.sf(abs(t), df), rel=1e-9), 36)
    assert r.effect_size == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)


def test_crossed_test_is_wider_than_pairwise_when_seeds_disagree():
    # seed 0 gains 0.1 on every case, seed 1 gains ~0: pairs look convincing, seeds do not
    base = np.tile(np.linspace(0.4, 0.8, 20), (2, 1))
    new = base + np.array([[0.1], [0.0]]) + np.linspace(0, 0.01, 20)
    frame = tidy(frame_from({"b": base, "n": new}))
    assert compare(frame, "n", "b", test="wilcoxon", n_resamples=100).p_value < 1e-6
    assert compare(frame, "n", "b", test="crossed", n_resamples=100).p_value > 0.2
