"""Each statistic of nasseg.ablation.stats against statsmodels, SciPy or a direct computation,
and the default test's error rates on simulated null data."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from nasseg.ablation.stats import (case_matrix, compare, crossed_reml, fit_crossed, holm, rank_biserial,
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


def statsmodels_fit(y: np.ndarray):
    """REML fit of the crossed model by statsmodels' MixedLM (one group, two variance components)."""
    import statsmodels.formula.api as smf

    s, c = y.shape
    df = pd.DataFrame({"y": y.ravel(), "seed": np.repeat(np.arange(s), c), "case": np.tile(np.arange(c), s),
                       "g": 1})
    model = smf.mixedlm("y ~ 1", df, groups="g", re_formula="0",
                        vc_formula={"seed": "0 + C(seed)", "case": "0 + C(case)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(reml=True, method="bfgs", gtol=1e-14)


RNG = np.random.default_rng(7)
BASE = RNG.uniform(0.5, 0.9, size=(3, 12))
BETTER = BASE + RNG.normal(0.03, 0.02, size=(3, 12)) + RNG.normal(0, 0.02, size=(3, 1))


def test_closed_form_reml_equals_statsmodels_mixedlm():
    rng = np.random.default_rng(1)
    for s, c in ((5, 20), (3, 36), (4, 9)):
        y = 0.01 + rng.normal(0, 0.02, (s, 1)) + rng.normal(0, 0.03, (1, c)) + rng.normal(0, 0.03, (s, c))
        fit, ref = fit_crossed(y), statsmodels_fit(y)
        var_case, var_seed = ref.vcomp  # statsmodels orders the components by name
        assert fit.mean == pytest.approx(ref.fe_params.iloc[0], abs=1e-12)
        assert fit.se == pytest.approx(ref.bse_fe.iloc[0], rel=1e-6)
        assert (fit.var_seed, fit.var_case, fit.var_res) == pytest.approx((var_seed, var_case, ref.scale), rel=1e-5)


def _reml_by_optimizer(y: np.ndarray) -> np.ndarray:
    """Maximise the restricted likelihood -1/2 (log|V| + log|X'V^-1 X| + r'V^-1 r) over
    (s2_seed, s2_case, s2_res) >= 0 numerically, from the dense covariance matrix."""
    from scipy.optimize import minimize

    s, c = y.shape
    zs, zc = np.kron(np.eye(s), np.ones((c, 1))), np.kron(np.ones((s, 1)), np.eye(c))
    x, v = np.ones((s * c, 1)), y.ravel()

    def nll(theta):
        cov = theta[0] * zs @ zs.T + theta[1] * zc @ zc.T + theta[2] * np.eye(s * c)
        inv = np.linalg.inv(cov)
        xtx = x.T @ inv @ x
        beta = np.linalg.solve(xtx, x.T @ inv @ v)
        r = v - x @ beta
        return 0.5 * (np.linalg.slogdet(cov)[1] + np.linalg.slogdet(xtx)[1] + r @ inv @ r)

    start = np.full(3, y.var())
    res = minimize(nll, start, method="L-BFGS-B", bounds=[(0, None), (0, None), (1e-12, None)],
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
    return res.x


def test_boundary_component_is_zero_at_the_reml_maximum():
    # seeds that do not differ beyond noise: the ANOVA estimate of the seed variance is negative;
    # REML puts it at 0 and pools its mean square with the residual one
    rng = np.random.default_rng(3)
    y = rng.normal(0, 0.03, (1, 15)) + rng.normal(0, 0.03, (4, 15))
    y -= y.mean(axis=1, keepdims=True) - y.mean()  # seed means exactly equal: MS_seed = 0
    fit = fit_crossed(y)
    r = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    assert fit.var_seed == 0.0  # the pooled residual: (SS_seed + SS_res) / (df_seed + df_res)
    assert fit.var_res == pytest.approx((r ** 2).sum() / (3 + 3 * 14), rel=1e-12)
    numeric = _reml_by_optimizer(y)
    assert numeric[0] < 1e-7
    assert (fit.var_case, fit.var_res) == pytest.approx(tuple(numeric[1:]), rel=1e-4)
    # and the interior case agrees with the optimizer too
    y2 = y + rng.normal(0, 0.03, (4, 1))
    assert (fit_crossed(y2).var_seed, fit_crossed(y2).var_case, fit_crossed(y2).var_res) == \
        pytest.approx(tuple(_reml_by_optimizer(y2)), rel=1e-4)


def test_seeds_that_agree_exactly_are_an_exact_fit_without_warnings():
    # a network that collapses to one prediction gives the same per-case Dice for every seed
    # (seen in `nasseg confirm`): seed and residual variances are 0, the case variance alone
    # makes the interval, and nothing overflows on the way
    y = np.array([[0.07699530516431925, 0.36812749003984063]] * 2)  # the values confirm saw
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_crossed(y)
    assert fit.var_seed == 0.0 and fit.var_res == pytest.approx(0.0, abs=1e-30)
    assert fit.var_case == pytest.approx(np.var(y[0], ddof=1), rel=1e-12)
    assert fit.se == pytest.approx(math.sqrt(fit.var_case / 2), rel=1e-12) and fit.df == 1.0


def test_mixed_comparison_ci_and_p_come_from_one_model():
    frame = tidy(frame_from({"base": BASE, "new": BETTER}))
    r = compare(frame, "new", "base")
    fit = fit_crossed(BETTER - BASE)
    assert r.test == "mixed" and r.n_pairs == 36 and r.mean_diff == pytest.approx((BETTER - BASE).mean(), abs=1e-15)
    t = fit.mean / fit.se
    assert fit.dft <= fit.df  # the test's df never exceeds Satterthwaite's
    assert (r.statistic, r.df) == pytest.approx((t, fit.dft), rel=1e-12)
    assert r.p_value == pytest.approx(2 * sps.t.sf(abs(t), fit.dft), rel=1e-12)
    half = sps.t.ppf(0.975, fit.dft) * fit.se
    assert (r.diff_ci_low, r.diff_ci_high) == pytest.approx((fit.mean - half, fit.mean + half), rel=1e-12)
    # agreement: the interval excludes 0 exactly when p < 0.05, on many random tables
    rng = np.random.default_rng(11)
    for _ in range(200):
        d = rng.normal(rng.normal(0, 0.01), 0.02, (3, 10)) + rng.normal(0, 0.02, (3, 1))
        f = fit_crossed(d)
        low, high = f.ci(0.95)
        assert (f.t_p()[1] < 0.05) == (low > 0 or high < 0)


def test_satterthwaite_df_of_the_unconstrained_fit_by_hand():
    # grand 3; seed means 1.5, 4.5 -> MS_seed 9; case means 2, 4 -> MS_case 4; MS_res 1
    # Var(mean) = (9 + 4 - 1) / 4 = 3; df = 12^2 / (81 + 16 + 1)
    # the test's df weights the seed term 3x (SEED_DF_WEIGHT), floored at S - 1 = 1:
    # 144 / (3 * 81 + 16 + 1) = 0.554 -> 1
    fit = fit_crossed(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert fit.se == pytest.approx(math.sqrt(3.0), rel=1e-12) and fit.df == pytest.approx(144 / 98, rel=1e-12)
    assert fit.dft == 1.0
    assert fit.t_p()[1] == pytest.approx(2 * sps.t.sf(math.sqrt(3.0), 1.0), rel=1e-12)


def test_test_df_weights_the_seed_term_and_keeps_three_seeds_at_the_level():
    """With 3 seeds and a dominant seed variance Satterthwaite's df (lmerTest's) rejects a
    true null about 7.8% of the time; the test's df keeps it under 5%."""
    from nasseg.ablation.stats import SEED_DF_WEIGHT

    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.1, (20000, 1, 1, 40))
    y = (0.75 + shared + rng.normal(0, 0.03, (20000, 2, 1, 40)) + rng.normal(0, 0.02, (20000, 2, 3, 1))
         + rng.normal(0, 0.02, (20000, 2, 3, 40)))
    fit = crossed_reml(y[:, 1] - y[:, 0])
    t = np.abs(fit["mean"] / fit["se"])
    satterthwaite = (2 * sps.t.sf(t, fit["df"]) < 0.05).mean()
    used = (2 * sps.t.sf(t, fit["df_test"]) < 0.05).mean()
    assert satterthwaite > 0.07 and used < 0.05, (satterthwaite, used)
    assert SEED_DF_WEIGHT == 3.0 and (fit["df_test"] <= fit["df"]).all() and (fit["df_test"] >= 2).all()


def test_one_seed_reduces_to_a_paired_t_test_over_cases():
    d = BETTER[:1] - BASE[:1]
    fit = fit_crossed(d)
    ref = sps.ttest_1samp(d[0], 0.0)
    assert fit.t_p() == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10) and fit.df == 11


def _null_tables(rng, reps, seeds, cases, seed_sd, case_sd=0.03, res_sd=0.02):
    """Two variants with no true difference: Dice = 0.75 + shared case difficulty (sd 0.1)
    + variant-specific case effect (case_sd) + training-seed effect (seed_sd) + noise."""
    shared = rng.normal(0, 0.1, (reps, 1, 1, cases))
    y = (0.75 + shared + rng.normal(0, case_sd, (reps, 2, 1, cases)) + rng.normal(0, seed_sd, (reps, 2, seeds, 1))
         + rng.normal(0, res_sd, (reps, 2, seeds, cases)))
    return y[:, 1] - y[:, 0]


@pytest.mark.parametrize("seeds,cases", [(3, 36), (5, 60)])
@pytest.mark.parametrize("seed_sd", [0.01, 0.02])
def test_null_simulation_false_positives_and_coverage(seeds, cases, seed_sd):
    rng = np.random.default_rng(seeds * 1000 + int(seed_sd * 1000))
    reps = 2000
    d = _null_tables(rng, reps, seeds, cases, seed_sd)
    fit = crossed_reml(d)
    p = 2 * sps.t.sf(np.abs(fit["mean"] / fit["se"]), fit["df_test"])
    half = sps.t.ppf(0.975, fit["df_test"]) * fit["se"]
    fpr = float((p < 0.05).mean())
    coverage = float(((fit["mean"] - half <= 0) & (0 <= fit["mean"] + half)).mean())
    assert fpr <= 0.08 and coverage >= 0.90, (fpr, coverage)
    assert fpr >= 0.01  # not a test that can never reject
    # the vectorised fit is the per-table fit
    one = fit_crossed(d[0])
    assert (one.mean, one.se, one.df, one.dft) == pytest.approx(
        (fit["mean"][0], fit["se"][0], fit["df"][0], fit["df_test"][0]), rel=1e-12)


def test_pseudo_replicated_wilcoxon_fails_the_same_simulation():
    d = _null_tables(np.random.default_rng(5), 500, 3, 36, 0.02)
    p = sps.wilcoxon(d.reshape(500, -1), axis=-1).pvalue  # every (seed, case) pair as independent
    assert (p < 0.05).mean() > 0.15


def test_mixed_model_detects_a_real_difference():
    rng = np.random.default_rng(2)
    d = _null_tables(rng, 500, 5, 60, 0.01) + 0.03
    fit = crossed_reml(d)
    power = (2 * sps.t.sf(np.abs(fit["mean"] / fit["se"]), fit["df"]) < 0.05).mean()
    assert power > 0.8


def test_holm_matches_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm([float("nan"), 0.02, 0.7])  # NaN does not count in m; the cap is 1
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.04, 0.7])
    np.testing.assert_allclose(holm([0.6, 0.9]), [1.0, 1.0])


def test_rank_biserial_matches_rank_sums():
    # |d| ranks 1, 2, 3, 4 (zero dropped): R+ = 1 + 2 + 4 = 7, R- = 3 -> (7 - 3) / 10
    assert rank_biserial(np.array([0.1, 0.2, -0.3, 0.4, 0.0])) == pytest.approx(0.4, abs=1e-15)
    assert rank_biserial(np.array([0.5, 0.1])) == 1.0
    assert rank_biserial(np.array([1.0, -1.0, 2.0])) == pytest.approx(0.5, abs=1e-15)


def test_summary_is_mean_of_seed_means_with_the_models_interval():
    frame = tidy(frame_from({"a": BASE}))
    s = summarize_variant(frame, "a")
    seed_means = BASE.mean(axis=1)
    assert s["n_seeds"] == 3 and s["n_cases"] == 12
    assert s["dice_mean"] == pytest.approx(seed_means.mean(), abs=1e-15)
    assert s["dice_sd"] == pytest.approx(np.std(seed_means, ddof=1), abs=1e-15)
    assert (s["dice_ci_low"], s["dice_ci_high"]) == pytest.approx(fit_crossed(BASE).ci(0.95), abs=1e-15)


def test_per_case_tests_average_seeds_first():
    frame = tidy(frame_from({"base": BASE, "new": BETTER}))
    d = (BETTER - BASE).mean(axis=0)
    w = compare(frame, "new", "base", test="wilcoxon")
    assert w.n_pairs == 12 and w.p_value == sps.wilcoxon(d).pvalue and w.effect_size == rank_biserial(d)
    t = compare(frame, "new", "base", test="ttest")
    assert t.p_value == pytest.approx(sps.ttest_1samp(d, 0).pvalue, rel=1e-12)
    assert t.effect_size == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12) and t.effect_measure == "d_z"
    assert compare(frame, "new", "base", test="crossed").test == "mixed"  # the old name


def test_pairs_only_matched_seeds_and_cases():
    frame = frame_from({"base": BASE, "new": BETTER.copy()})
    # the new variant lost seed 2 and case c11 of seed 0 (missing case drops the column)
    frame = frame[~((frame.variant == "new") & ((frame.seed == 2) | ((frame.seed == 0) & (frame.case_id == "c11"))))]
    r = compare(tidy(frame), "new", "base")
    # two matched seeds: no model test, the per-case comparison over the 11 cases both have
    assert (r.test, r.n_seeds, r.n_pairs) == ("conditional", 2, 11) and math.isnan(r.p_value)
    assert r.mean_diff == pytest.approx((BETTER[:2, :11] - BASE[:2, :11]).mean(), abs=1e-15)
    full = frame_from({"base": BASE, "new": BETTER.copy()})
    r3 = compare(tidy(full[~((full.variant == "new") & (full.seed == 0) & (full.case_id == "c11"))]), "new", "base")
    assert (r3.test, r3.n_seeds, r3.n_pairs) == ("mixed", 3, 3 * 11)


def test_identical_variants_give_p_one_and_no_effect():
    r = compare(tidy(frame_from({"a": BASE, "b": BASE.copy()})), "b", "a")
    assert (r.p_value, r.effect_size, r.mean_diff) == (1.0, 0.0, 0.0)


def test_tidy_averages_classes_and_drops_missing_values():
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


def test_unequal_seed_counts_are_said_in_the_method_note():
    """A failed run leaves its variant with fewer seeds: the table says so (means over each
    variant's own seeds, comparisons over the seeds both completed)."""
    from nasseg.ablation.tables import seed_warning

    text = seed_warning(pd.DataFrame({"variant": ["skip_fusion", "irsc"], "n_seeds": [5, 4]}))
    assert text == ("Warning: the variants completed different numbers of seeds (skip_fusion: 5, irsc: 4): "
                    "failed runs are missing; each mean is over that variant's seeds, each comparison over "
                    "the seeds both variants completed. Warning: only 4 training seeds (< 5): the seed variance "
                    "is estimated on 3 degrees of freedom, so intervals are wide and the training-seed effect "
                    "is poorly known.")
    assert seed_warning(pd.DataFrame({"variant": ["a", "b"], "n_seeds": [5, 5]})) == ""
