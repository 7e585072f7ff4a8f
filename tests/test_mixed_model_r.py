"""The crossed mixed model of nasseg.ablation.stats against R's lme4/lmerTest (an independent
implementation), and its REML log-likelihood against a dense computation.

R is a Debian package here (.ci/run installs r-base-core r-cran-lme4 r-cran-lmertest); where
Rscript or the packages are missing the R tests are skipped with the reason.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nasseg.ablation.stats import fit_crossed, reml_loglik

_spec = importlib.util.spec_from_file_location(
    "mixed_model_vs_r", Path(__file__).parents[1] / "benchmarks" / "mixed_model_vs_r.py")
vs_r = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vs_r)
R_MISSING = vs_r.r_available()
needs_r = pytest.mark.skipif(bool(R_MISSING), reason=R_MISSING)


def _dense_reml(y: np.ndarray, a: float, b: float, e: float) -> float:
    """-1/2 [log|V| + log|X'V^-1 X| + r'V^-1 r + (N - 1) log 2 pi], by matrices."""
    s, c = y.shape
    zs, zc = np.kron(np.eye(s), np.ones((c, 1))), np.kron(np.ones((s, 1)), np.eye(c))
    v = a * zs @ zs.T + b * zc @ zc.T + e * np.eye(s * c)
    vi, x = np.linalg.inv(v), np.ones((s * c, 1))
    xvx = x.T @ vi @ x
    r = y.ravel() - x @ np.linalg.solve(xvx, x.T @ vi @ y.ravel())
    return float(-0.5 * (np.linalg.slogdet(v)[1] + np.linalg.slogdet(xvx)[1] + r @ vi @ r
                         + (s * c - 1) * np.log(2 * np.pi)))


def test_closed_form_reml_loglik_equals_the_dense_one():
    y = np.random.default_rng(3).normal(size=(4, 9))
    for comps in [(0.3, 0.2, 0.5), (0.0, 0.1, 1.0), (1e-3, 0.0, 0.2)]:
        assert reml_loglik(y, *comps) == pytest.approx(_dense_reml(y, *comps), abs=1e-9)
    f = fit_crossed(y)  # the fit maximises it: moving any component lowers it
    best = reml_loglik(y, f.var_seed, f.var_case, f.var_res)
    for step in np.eye(3) * 1e-3:
        assert reml_loglik(y, *np.maximum(np.array([f.var_seed, f.var_case, f.var_res]) + step, 0)) < best


@needs_r
def test_busi_ablation_and_simulated_tables_agree_with_lme4_lmertest():
    tables = {**vs_r.busi_tables(), **vs_r.simulated_tables(9, seed=1)}
    res = vs_r.compare_with_r(tables)
    assert res["boundary"].any() and (~res["boundary"]).any()  # both kinds of fit are checked
    assert res["estimate_absdiff"].max() < 1e-10
    assert res["se_reldiff"].max() < 1e-5
    assert res["p_absdiff"].max() < 1e-5
    inner = res[~res["boundary"]]
    assert ((inner["df_nasseg"] - inner["df_r"]).abs() / inner["df_r"]).max() < 1e-4
    # at the boundary nasseg's REML optimum is at least as high as lme4's
    assert res["loglik_nasseg_minus_r"].min() > -1e-9
    busi = res.loc["busi_dice"]
    assert busi["boundary"] and busi["var_seed_nasseg"] == 0.0 and busi["var_seed_r"] < 1e-10
