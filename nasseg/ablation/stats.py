"""Statistics of an ablation: pure functions on a tidy per-case table.

Input: one row per (variant, training seed, test case) with a metric (columns
``variant, seed, case_id`` and e.g. ``dice``; a ``class`` column, if present, is averaged
away first). Every variant and seed is scored on the same test cases (the study fixes the
split), which is what makes the comparisons *paired*.

The default comparison (``test="mixed"``) is a linear mixed model with training seeds and
test cases as **crossed random effects**, fitted by REML, on the paired differences
``d[s, c] = variant - reference``::

    d[s, c] = mu + a_s + b_c + e_sc,   a_s ~ N(0, s2_seed), b_c ~ N(0, s2_case), e ~ N(0, s2_res)

(the same model as ``statsmodels.formula.api.mixedlm("d ~ 1", groups=1, re_formula="0",
vc_formula={"seed": "0 + C(seed)", "case": "0 + C(case)"}).fit(reml=True)``; the tests check
the estimate to 1e-12, the standard error to 1e-6 relative and the variance components to
1e-5 relative on interior fits; on the boundary statsmodels' optimiser can stop below the
REML maximum that nasseg and R's lme4 reach, ``reports/evidence/mixed_model_vs_R.md``).
Both training randomness and the finite test set enter the uncertainty of ``mu``; counting
every (seed, case) pair as independent (pseudo-replication) would not, and rejects a true
null far too often.

The table is complete (every seed has every case), so the design is balanced and REML has a
closed form (Searle, Casella & McCulloch, *Variance Components*, 1992, ch. 4 and 6): the
restricted likelihood is that of the three independent mean squares ``MS_seed`` (S-1 df),
``MS_case`` (C-1 df), ``MS_res`` ((S-1)(C-1) df) with expectations ``l_seed = s2_res + C
s2_seed``, ``l_case = s2_res + S s2_case``, ``l_res = s2_res``. Unconstrained, ``l = MS``
(the ANOVA estimators); a variance component that would be negative is set to 0 by pooling
its mean square with the residual one (the REML maximum on the boundary; the feasible
pooling with the highest restricted likelihood wins). Then

- ``mu_hat = mean(d)`` (GLS = OLS in a balanced design), ``Var(mu_hat) = (l_seed + l_case -
  l_res) / (S C)`` -- the model's standard error;
- Satterthwaite's degrees of freedom of that variance (Welch-Satterthwaite over the pooled
  mean squares; lmerTest's, ``reports/evidence/mixed_model_vs_R.md``) are ``df``; the
  interval and the p-value are both Student-t on ``df_test`` (:data:`SEED_DF_WEIGHT`: the
  seed term weighted so that 3-4 seeds do not reject a true null too often, never more than
  ``df``): ``t = mu_hat / SE``, CI ``mu_hat +- t_(df_test, 1 - alpha/2) SE``. They come
  from the same fit, so the CI excludes 0 exactly when p < alpha. statsmodels reports a
  normal (z) test instead, which with 3-5 seeds (2-4 df for the seed variance) is far too
  liberal.

A variant's own mean and interval use the same model on its seeds x cases table.

Other tests, labelled as what they are: ``wilcoxon`` (signed-rank) and ``ttest`` (paired t)
are **per-case tests over seed-averaged values**: each case is first averaged over the
seeds, one pair per case. They ignore the seed-to-seed variance of the mean (with few seeds
this is what they miss), so the table says so. ``crossed`` (the former moment estimator)
is an alias of ``mixed``.

Too few seeds: with fewer than :data:`MIN_MODEL_SEEDS` (3) matched training seeds the
seed variance is not estimable (1 seed) or rests on 1 degree of freedom (2 seeds; a
boundary fit then pools it away and the test rejects a true null 14% of the time), so no
test gives a p-value: :func:`compare` returns a **per-case comparison conditional on the
trained networks** (``test="conditional"``: the seed-averaged case differences, a t interval
over cases, no p), and :func:`summarize_variant` the matching interval of the mean. It
describes these trained networks on this case population, not the architectures.

Multiple comparisons: Holm's step-down correction. Effect sizes: for ``mixed``, ``d`` =
``mu_hat / sqrt(s2_seed + s2_case + s2_res)`` (the mean difference over the model's SD of a
single seed-case difference); rank-biserial ``r`` for Wilcoxon; Cohen's ``d_z`` for the
paired t-test.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from nasseg.errors import NassegError

__all__ = ["Comparison", "CrossedFit", "MIN_MODEL_SEEDS", "MIN_SEEDS", "SEED_DF_WEIGHT", "case_matrix",
           "case_t_interval", "compare", "crossed_reml", "holm", "paired_differences", "reml_loglik",
           "rank_biserial", "significance", "summarize_variant", "tidy"]

KEYS = ("variant", "seed", "case_id")
MIN_SEEDS = 5
"""Fewer training seeds than this puts a warning in the table."""
MIN_MODEL_SEEDS = 3
"""Fewer matched training seeds than this: no p-value (a comparison conditional on the networks)."""
SEED_DF_WEIGHT = 3.0
"""How many times the seed mean square's term counts in the test's degrees of freedom.

Satterthwaite's df treats the seed mean square as known; with 2-4 seeds it rests on 2-4 df and
is low exactly in the tables where t is large, so the plug-in df is too high there: with 3
seeds and the seed variance dominating, the Satterthwaite t-test (lmerTest's) rejects a true
null 7.8% of the time (reports/evidence/null_simulation.md). The test and the interval use
``df_test = max(S - 1, v^2 / (w (c_seed MS_seed)^2 / (S - 1) + sum_other (c_k MS_k)^2 / df_k))``
with ``w`` = this weight, never above Satterthwaite's df: the seeds' own S - 1 (containment)
when the seed term dominates, Satterthwaite's df when it does not. The weight 3 is calibrated
by simulation over 3-8 seeds, 10-40 cases and seed SDs 0-0.05 (largest rate 0.049 on Gaussian
tables; 0.062 on Dice-like tables with zeros and a seed SD of 0.05, where REML often puts the
seed variance at 0); it is an empirical correction, not a textbook method."""


def tidy(frame: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Check the columns and average over classes (NaN classes skipped).

    A case whose every class is NaN stays as NaN, and an infinite class value makes the
    case infinite: :func:`nasseg.ablation.cases.complete_cases` counts and drops them.

    Returns:
        One row per (variant, seed, case_id) with its ``metric``.
    """
    missing = [c for c in (*KEYS, metric) if c not in frame.columns]
    if missing:
        raise NassegError(f"per-case results lack the columns {missing}")
    return frame.groupby(list(KEYS), as_index=False, sort=True)[metric].mean()


def case_matrix(frame: pd.DataFrame, variant: str, metric: str = "dice") -> pd.DataFrame:
    """The seeds x cases table of one variant (cases missing or non-finite for a seed dropped).

    Args:
        frame: output of :func:`tidy`.
        variant: the variant's name.
        metric: the value column.
    """
    sub = frame[frame["variant"] == variant]
    table = sub.pivot(index="seed", columns="case_id", values=metric)
    table = table.loc[:, np.isfinite(table.to_numpy(dtype=float)).all(axis=0)]
    return table.sort_index().sort_index(axis=1)


@dataclass(frozen=True)
class CrossedFit:
    """REML fit of ``y[s, c] = mu + a_s + b_c + e`` on a complete seeds x cases table.

    Attributes:
        mean: ``mu_hat``.
        se: its standard error.
        df: Satterthwaite degrees of freedom of ``se**2`` (lmerTest's).
        var_seed, var_case, var_res: the variance components (>= 0).
        n_seeds, n_cases: the table's shape.
        df_test: the degrees of freedom of the test and the interval (:data:`SEED_DF_WEIGHT`;
            at most ``df``); NaN means ``df``.
    """

    mean: float
    se: float
    df: float
    var_seed: float
    var_case: float
    var_res: float
    n_seeds: int
    n_cases: int
    df_test: float = float("nan")

    @property
    def dft(self) -> float:
        """The df the test and the interval use."""
        return self.df if self.df_test != self.df_test else self.df_test

    def t_p(self) -> tuple[float, float]:
        """``(t, p)``: two-sided Student-t test of ``mu = 0``."""
        if not self.se > 0:
            if self.mean == 0 or self.mean != self.mean:
                return (float("nan"), 1.0 if self.mean == 0 else float("nan"))
            return (float(np.sign(self.mean) * np.inf), 0.0)
        t = self.mean / self.se
        return float(t), float(2 * sps.t.sf(abs(t), self.dft))

    def ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """``mu_hat +- t_(df_test, (1 + confidence) / 2) * se``."""
        if not self.se > 0:
            return (self.mean, self.mean)
        h = float(sps.t.ppf(0.5 + confidence / 2, self.dft)) * self.se
        return (self.mean - h, self.mean + h)


def _mean_squares(y: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(MS_seed, MS_case, MS_res)`` over the last two axes (any leading batch axes)."""
    s, c = y.shape[-2:]
    grand = y.mean(axis=(-2, -1), keepdims=True)
    rows, cols = y.mean(axis=-1, keepdims=True), y.mean(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ms_a = c * ((rows - grand) ** 2).sum(axis=(-2, -1)) / (s - 1) if s > 1 else np.zeros(y.shape[:-2])
        ms_b = s * ((cols - grand) ** 2).sum(axis=(-2, -1)) / (c - 1) if c > 1 else np.zeros(y.shape[:-2])
        ms_e = ((y - rows - cols + grand) ** 2).sum(axis=(-2, -1)) / ((s - 1) * (c - 1)) \
            if s > 1 and c > 1 else np.zeros(y.shape[:-2])
    return ms_a, ms_b, ms_e


def crossed_reml(y: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised closed-form REML of the crossed model on ``[..., S, C]`` complete tables.

    Returns:
        Arrays over the leading axes: ``mean, se, df`` (Satterthwaite), ``df_test`` (the
        test's, :data:`SEED_DF_WEIGHT`), ``var_seed, var_case, var_res``.

    Example:
        >>> fit = crossed_reml(np.array([[1.0, 2.0], [3.0, 6.0]]))
        >>> float(fit["mean"]), round(float(fit["se"] ** 2), 12)  # (9 + 4 - 1) / 4
        (3.0, 3.0)
    """
    y = np.asarray(y, dtype=float)
    s, c = y.shape[-2:]
    ms = _mean_squares(y)
    dfs = np.array([s - 1, c - 1, (s - 1) * (c - 1)], dtype=float)
    # candidate poolings: which of (seed, case) is set to 0; each gives lambda_k as weights
    # over the raw mean squares. w[k] = weights of (MS_a, MS_b, MS_e) in lambda_k.
    cands = []
    for zero_a in (False, True):
        for zero_b in (False, True):
            pool = [2] + ([0] if zero_a else []) + ([1] if zero_b else [])
            wpool = np.zeros(3)
            wpool[pool] = dfs[pool] / max(dfs[pool].sum(), 1.0)
            w = np.eye(3)
            for k in pool:
                w[k] = wpool
            cands.append(w)
    ms_stack = np.stack(ms, axis=-1)  # [..., 3]
    best_ll = np.full(y.shape[:-2], -np.inf)
    lam = np.zeros((*y.shape[:-2], 3))
    wbest = np.zeros((*y.shape[:-2], 3, 3))
    for w in cands:
        lk = ms_stack @ w.T  # [..., 3] fitted lambdas
        feasible = (lk[..., 0] >= lk[..., 2] - 1e-15) & (lk[..., 1] >= lk[..., 2] - 1e-15)
        # a lambda of 0 (or one so small that the sum overflows) is an exact fit (+inf) or
        # impossible (-inf); both are limits, not errors
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            terms = np.where(dfs > 0, dfs * (np.log(lk) + ms_stack / lk), 0.0)
            terms = np.where((dfs > 0) & (lk == 0) & (ms_stack == 0), -np.inf, terms)  # exact fit
            ll = np.where(feasible, -0.5 * np.nan_to_num(terms, nan=np.inf, posinf=np.inf).sum(-1), -np.inf)
        better = ll > best_ll
        best_ll = np.where(better, ll, best_ll)
        lam = np.where(better[..., None], lk, lam)
        wbest = np.where(better[..., None, None], w, wbest)
    if s == 1 or c == 1:  # one seed (or case): only the other factor's mean square is estimable
        lam = ms_stack.copy()
        wbest = np.broadcast_to(np.eye(3), (*y.shape[:-2], 3, 3)).copy()
    # Var(mean) * S C = lambda_seed + lambda_case - lambda_res, as weights over the raw MS
    cvec = np.array([1.0, 1.0, -1.0]) if s > 1 and c > 1 else np.array([1.0, 1.0, 0.0])
    coef = np.einsum("k,...kj->...j", cvec, wbest)  # [..., 3]
    v = (coef * ms_stack).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.where(dfs > 0, (coef * ms_stack) ** 2 / np.maximum(dfs, 1), 0.0).sum(-1)
        df = np.where(denom > 0, v ** 2 / denom, np.inf)
        weight = np.array([SEED_DF_WEIGHT, 1.0, 1.0]) if s > 1 and c > 1 else np.ones(3)
        denom_t = np.where(dfs > 0, weight * (coef * ms_stack) ** 2 / np.maximum(dfs, 1), 0.0).sum(-1)
        df_test = np.minimum(df, np.maximum(np.where(denom_t > 0, v ** 2 / denom_t, np.inf),
                                            s - 1 if s > 1 and c > 1 else 0))
    var_res = lam[..., 2] if s > 1 and c > 1 else np.zeros(y.shape[:-2])
    return {"mean": y.mean(axis=(-2, -1)), "se": np.sqrt(np.maximum(v, 0.0) / (s * c)), "df": df,
            "df_test": df_test,
            "var_seed": np.maximum(lam[..., 0] - var_res, 0.0) / c if s > 1 else np.zeros(y.shape[:-2]),
            "var_case": np.maximum(lam[..., 1] - var_res, 0.0) / s if c > 1 else np.zeros(y.shape[:-2]),
            "var_res": var_res}


def reml_loglik(y: np.ndarray, var_seed: float, var_case: float, var_res: float) -> float:
    """The restricted (REML) log-likelihood of the crossed model at given variance components.

    Balanced closed form (the eigenvalues of ``V`` are ``l_seed``, ``l_case``, ``l_res`` and
    ``l_0 = s2_res + C s2_seed + S s2_case`` for the grand mean)::

        -1/2 [ sum_k df_k (log l_k + MS_k / l_k) + log(S C) + (S C - 1) log(2 pi) ]

    the same quantity as R's ``logLik(lmer(y ~ 1 + (1|seed) + (1|case), REML = TRUE))``
    (``tests/test_mixed_model_r.py`` checks both, and against a dense computation).

    Example:
        >>> round(reml_loglik(np.array([[1.0, 2.0], [3.0, 6.0]]), 4.0, 1.5, 1.0), 6)  # the REML fit
        -6.741722
    """
    y = np.asarray(y, dtype=float)
    s, c = y.shape
    ms = np.array(_mean_squares(y), dtype=float)
    dfs = np.array([s - 1, c - 1, (s - 1) * (c - 1)], dtype=float)
    lam = np.array([var_res + c * var_seed, var_res + s * var_case, var_res])
    keep = dfs > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = dfs[keep] * (np.log(lam[keep]) + ms[keep] / lam[keep])
    return float(-0.5 * (terms.sum() + np.log(s * c) + (s * c - 1) * np.log(2 * np.pi)))


def fit_crossed(table: np.ndarray | pd.DataFrame) -> CrossedFit:
    """:func:`crossed_reml` of one complete seeds x cases table, as a :class:`CrossedFit`."""
    y = np.asarray(table, dtype=float)
    if y.ndim != 2 or y.size == 0:
        nan = float("nan")
        return CrossedFit(nan, nan, nan, nan, nan, nan, 0, 0)
    f = {k: float(v) for k, v in crossed_reml(y).items()}
    return CrossedFit(f["mean"], f["se"], f["df"], f["var_seed"], f["var_case"], f["var_res"], *y.shape,
                      df_test=f["df_test"])


def case_t_interval(d: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of one value per case (NaN with fewer than 2 cases).

    Example:
        >>> lo, hi = case_t_interval(np.array([0.8, 0.9, 0.85, 0.95]))
        >>> round(lo, 3), round(hi, 3)
        (0.772, 0.978)
    """
    d = np.asarray(d, dtype=float)
    if d.size < 2:
        return (float("nan"), float("nan"))
    half = float(sps.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return (float(d.mean()) - half, float(d.mean()) + half)


def summarize_variant(frame: pd.DataFrame, variant: str, *, metric: str = "dice",
                      confidence: float = 0.95) -> dict[str, float | int | str]:
    """Mean of one variant, its interval and its seed-to-seed spread.

    The interval is the mixed model's with at least :data:`MIN_MODEL_SEEDS` seeds; with
    fewer it is conditional on the trained networks (a t interval over the cases of the
    seed-averaged values: it leaves training randomness out, so it is too narrow for a
    claim about the architecture), and ``interval`` says which.

    Returns:
        ``variant, n_seeds, n_cases, {metric}_mean, {metric}_sd`` (sd of the per-seed
        means, ``ddof=1``; NaN with one seed), ``{metric}_ci_low, {metric}_ci_high``,
        ``interval`` (``"model"`` or ``"conditional"``).
    """
    m = case_matrix(frame, variant, metric)
    y = m.to_numpy(dtype=float)
    seed_means = y.mean(axis=1) if m.size else np.array([])
    if not m.size:
        low, high, how = float("nan"), float("nan"), "model"
    elif y.shape[0] < MIN_MODEL_SEEDS:
        (low, high), how = case_t_interval(y.mean(axis=0), confidence), "conditional"
    else:
        (low, high), how = fit_crossed(y).ci(confidence), "model"
    return {
        "variant": variant,
        "n_seeds": int(m.shape[0]) if m.size else 0,
        "n_cases": int(m.shape[1]) if m.size else 0,
        f"{metric}_mean": float(seed_means.mean()) if seed_means.size else float("nan"),
        f"{metric}_sd": float(seed_means.std(ddof=1)) if seed_means.size > 1 else float("nan"),
        f"{metric}_ci_low": low,
        f"{metric}_ci_high": high,
        "interval": how,
    }


def rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped).

    Example:
        >>> rank_biserial(np.array([1.0, 2.0, -3.0]))  # R+ = 1 + 2, R- = 3
        0.0
    """
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


@dataclass(frozen=True)
class Comparison:
    """One paired comparison, ``variant - reference``.

    Attributes:
        n_pairs: (seed, case) cells of the mixed model, or cases for the per-case tests.
        mean_diff: mean paired difference.
        diff_ci_low, diff_ci_high: its interval (mixed model: from the same fit as p;
            per-case tests: the t interval of the seed-averaged case differences).
        test: ``mixed``, ``wilcoxon``, ``ttest``, or ``conditional`` (fewer than
            :data:`MIN_MODEL_SEEDS` seeds: an interval conditional on the networks, no p).
        statistic: t (mixed, ttest) or Wilcoxon's T.
        df: degrees of freedom of t (Satterthwaite for ``mixed``), NaN for Wilcoxon.
        p_value: two-sided, uncorrected (see :func:`holm`).
        effect_size: ``d`` (mixed), rank-biserial ``r`` (Wilcoxon), ``d_z`` (t-test).
        effect_measure: ``"d"``, ``"r_rb"`` or ``"d_z"``.
        var_seed, var_case, var_res: the mixed model's variance components (NaN otherwise).
        n_seeds: matched training seeds (``test="conditional"`` below :data:`MIN_MODEL_SEEDS`).
    """

    variant: str
    reference: str
    n_pairs: int
    mean_diff: float
    diff_ci_low: float
    diff_ci_high: float
    test: str
    statistic: float
    df: float
    p_value: float
    effect_size: float
    effect_measure: str
    var_seed: float = float("nan")
    var_case: float = float("nan")
    var_res: float = float("nan")
    n_seeds: int = 0


def paired_differences(frame: pd.DataFrame, variant: str, reference: str, metric: str = "dice") -> pd.DataFrame:
    """``variant - reference`` on the seeds and cases both have (a seeds x cases table)."""
    a, b = case_matrix(frame, variant, metric), case_matrix(frame, reference, metric)
    seeds = a.index.intersection(b.index)
    cases = a.columns.intersection(b.columns)
    return a.loc[seeds, cases] - b.loc[seeds, cases]


def compare(frame: pd.DataFrame, variant: str, reference: str, *, test: str = "mixed",
            metric: str = "dice", confidence: float = 0.95) -> Comparison:
    """Paired comparison of two variants on their matched seeds and cases.

    With fewer than :data:`MIN_MODEL_SEEDS` matched seeds no test is run, whatever
    ``test`` asks: the result is the per-case comparison conditional on the trained
    networks (``test="conditional"``, p NaN; see the module docstring).

    Args:
        frame: output of :func:`tidy`.
        variant, reference: variant names; the difference is ``variant - reference``.
        test: ``mixed`` (crossed random seed and case effects, default; ``crossed`` is an
            alias), or the per-case tests over seed-averaged values ``wilcoxon``/``ttest``.
        metric: the value column.
        confidence: interval coverage.
    """
    test = "mixed" if test == "crossed" else test
    if test not in ("mixed", "wilcoxon", "ttest"):
        raise NassegError(f"stats.test: unknown test '{test}' (mixed, wilcoxon, ttest)")
    diffs = paired_differences(frame, variant, reference, metric)
    dm = diffs.to_numpy(dtype=float)
    n_seeds = int(dm.shape[0]) if dm.size else 0
    nan = float("nan")
    if n_seeds < MIN_MODEL_SEEDS:
        return _conditional(dm, variant, reference, n_seeds, confidence)
    if test == "mixed":
        fit = fit_crossed(dm)
        t, p = fit.t_p()
        low, high = fit.ci(confidence)
        total = fit.var_seed + fit.var_case + fit.var_res
        effect = fit.mean / np.sqrt(total) if total > 0 else (0.0 if fit.mean == 0 else float(np.sign(fit.mean) * np.inf))
        return Comparison(variant, reference, int(dm.size), fit.mean, low, high, test, t, fit.dft, p,
                          float(effect), "d", fit.var_seed, fit.var_case, fit.var_res, n_seeds)
    d = dm.mean(axis=0)  # one value per case, averaged over seeds
    mean = float(d.mean()) if d.size else nan
    measure = "r_rb" if test == "wilcoxon" else "d_z"
    if d.size < 2:
        return Comparison(variant, reference, int(d.size), mean, nan, nan, test, nan, nan, nan, nan, measure,
                          n_seeds=n_seeds)
    sd = float(d.std(ddof=1))
    low, high = case_t_interval(d, confidence)
    if np.all(d == 0):
        stat, df, p, effect = 0.0, float(d.size - 1), 1.0, 0.0
    elif test == "wilcoxon":
        res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        stat, df, p, effect = float(res.statistic), nan, float(res.pvalue), rank_biserial(d)
    elif sd == 0.0:  # every case differs by the same non-zero amount
        inf = float(np.sign(mean) * np.inf)
        stat, df, p, effect = inf, float(d.size - 1), 0.0, inf
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sps.ttest_1samp(d, 0.0)
        stat, df, p, effect = float(res.statistic), float(d.size - 1), float(res.pvalue), mean / sd
    return Comparison(variant, reference, int(d.size), mean, low, high, test, stat, df, p, effect, measure,
                      n_seeds=n_seeds)


def _conditional(dm: np.ndarray, variant: str, reference: str, n_seeds: int,
                 confidence: float) -> Comparison:
    """The per-case comparison conditional on the trained networks (no p-value)."""
    nan = float("nan")
    d = dm.mean(axis=0) if dm.size else np.array([])
    if d.size == 0:
        return Comparison(variant, reference, 0, nan, nan, nan, "conditional", nan, nan, nan, nan, "d_z",
                          n_seeds=n_seeds)
    sd = float(d.std(ddof=1)) if d.size > 1 else nan
    low, high = case_t_interval(d, confidence)
    effect = float(d.mean() / sd) if sd > 0 else (0.0 if d.mean() == 0 else nan)
    return Comparison(variant, reference, int(d.size), float(d.mean()), low, high, "conditional", nan,
                      float(d.size - 1), nan, effect, "d_z", n_seeds=n_seeds)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and do not count in m.

    ``p_(i)`` sorted ascending becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(4).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def significance(p: float, alpha: float = 0.05) -> str:
    """``***`` p < 0.001, ``**`` p < 0.01, ``*`` p < alpha, ``ns`` otherwise, ``""`` if NaN."""
    if p != p:  # NaN
        return ""
    if not p < alpha:
        return "ns"
    return "***" if p < 0.001 else "**" if p < 0.01 else "*"
