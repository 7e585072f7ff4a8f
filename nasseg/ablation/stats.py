"""Statistics of an ablation: pure functions on a tidy per-case table.

Input: one row per (variant, training seed, held-out case) with its Dice (columns
``variant, seed, case_id, dice``; a ``class`` column, if present, is averaged away first).
Every variant and seed is evaluated on the same held-out cases (the study fixes the
split seed), which is what makes the comparisons *paired*.

Choices, so that a reviewer can check them:

- **Variant mean**: the mean over seeds of each seed's mean over cases (equal to the mean
  over all (seed, case) cells, as every seed sees the same cases).
- **Confidence intervals**: 95 % percentile bootstrap, *crossed*: each resample draws the
  seeds with replacement and, independently, the cases with replacement, and takes the mean
  of the resampled seeds x cases table. It covers both sources of variation, training
  randomness and the finite test set; resampling only seeds (3-5 values) would give a
  coarse, too-narrow interval, resampling only cases would ignore seed variance. The RNG is
  seeded, so tables are reproducible to the digit.
- **Paired test** against the reference variant on the matched (seed, case) pairs: Wilcoxon
  signed-rank by default (``scipy.stats.wilcoxon``: zeros dropped, exact p up to 50 pairs
  without ties, normal approximation beyond), or a paired t-test
  (``scipy.stats.ttest_rel``). With ``pairing="case"`` each case is first averaged over the
  seeds, one pair per case: the pairs of one case under different seeds are not
  independent, so this is the conservative choice when n matters.
- **Crossed test** (``test: crossed``): the two tests above treat every (seed, case) pair as
  independent, so with few seeds and a large seed-to-seed spread they can call a difference
  significant that the crossed interval (which does resample seeds) does not exclude. The
  crossed test models the paired differences as ``d[s, c] = mu + seed_s + case_c + e`` with
  random seed and case effects (two-way ANOVA without replication) and tests ``mu = 0``
  with ``t = mean(d) / sqrt((MS_seed + MS_case - MS_res) / (S C))`` on Satterthwaite's
  degrees of freedom: the mean's variance from both sources, as the interval has it.
- **Multiple comparisons**: Holm's step-down correction over all contrasts of the study.
- **Effect size**: matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-) for
  Wilcoxon (in [-1, 1]; R+/R- = rank sums of positive/negative differences, zeros dropped),
  Cohen's d_z = mean(d) / sd(d) for the t-test; and the mean difference with its crossed
  bootstrap interval, in Dice points.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from nasseg.errors import NassegError

__all__ = ["Comparison", "case_matrix", "compare", "crossed_bootstrap_ci", "crossed_t_test", "holm",
           "rank_biserial", "significance", "summarize_variant", "tidy"]

REQUIRED = ("variant", "seed", "case_id", "dice")


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the columns, drop missing Dice values and average over classes.

    Returns:
        One row per (variant, seed, case_id) with its ``dice``.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise NassegError(f"per-case results lack the columns {missing}")
    out = frame.dropna(subset=["dice"])
    return (out.groupby(["variant", "seed", "case_id"], as_index=False, sort=True)["dice"].mean())


def case_matrix(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The seeds x cases table of one variant's Dice (cases missing for a seed dropped).

    Args:
        frame: output of :func:`tidy`.
        variant: the variant's name.
    """
    sub = frame[frame["variant"] == variant]
    table = sub.pivot(index="seed", columns="case_id", values="dice")
    return table.dropna(axis=1).sort_index().sort_index(axis=1)


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """Row-wise ``bincount``: how often each of ``n`` indices was drawn in each resample."""
    b = draws.shape[0]
    flat = draws + (np.arange(b)[:, None] * n)
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(float)


def crossed_bootstrap_ci(matrix: np.ndarray, *, n_resamples: int = 10_000,
                         confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a seeds x cases table.

    Each resample draws ``S`` row indices and, independently, ``N`` column indices with
    replacement (first all row draws, ``rng.integers(0, S, (B, S))``, then all column draws,
    ``rng.integers(0, N, (B, N))``, from ``numpy.random.default_rng(seed)``) and takes
    ``matrix[rows][:, cols].mean()``; the interval is ``np.percentile`` of those means at
    ``(1 - confidence) / 2`` and its complement.

    Example:
        >>> crossed_bootstrap_ci(np.full((3, 4), 0.5), n_resamples=200)
        (0.5, 0.5)
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.size == 0:
        return (float("nan"), float("nan"))
    s, n = m.shape
    rng = np.random.default_rng(seed)
    rows = _counts(rng.integers(0, s, size=(n_resamples, s)), s)
    cols = _counts(rng.integers(0, n, size=(n_resamples, n)), n)
    means = ((rows @ m) * cols).sum(axis=1) / (s * n)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return (float(low), float(high))


def summarize_variant(frame: pd.DataFrame, variant: str, *, n_resamples: int = 10_000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, float | int | str]:
    """Mean Dice of one variant, its bootstrap interval and its seed-to-seed spread.

    Returns:
        ``variant, n_seeds, n_cases, dice_mean, dice_sd`` (sd of the per-seed means,
        ``ddof=1``; NaN with one seed), ``dice_ci_low, dice_ci_high``.
    """
    m = case_matrix(frame, variant)
    seed_means = m.to_numpy().mean(axis=1) if m.size else np.array([])
    low, high = crossed_bootstrap_ci(m.to_numpy(), n_resamples=n_resamples,
                                     confidence=confidence, seed=seed)
    return {
        "variant": variant,
        "n_seeds": int(m.shape[0]) if m.size else 0,
        "n_cases": int(m.shape[1]) if m.size else 0,
        "dice_mean": float(seed_means.mean()) if seed_means.size else float("nan"),
        "dice_sd": float(seed_means.std(ddof=1)) if seed_means.size > 1 else float("nan"),
        "dice_ci_low": low,
        "dice_ci_high": high,
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


def crossed_t_test(d: np.ndarray) -> tuple[float, float, float]:
    """Test that the mean of a seeds x cases table of paired differences is zero, with random
    seed and case effects (see the module docstring).

    Returns:
        ``(t, df, p)``, two-sided; NaN with fewer than 2 seeds or 2 cases.
    """
    d = np.asarray(d, dtype=float)
    s, c = d.shape if d.ndim == 2 else (0, 0)
    if s < 2 or c < 2:
        return (float("nan"),) * 3
    grand = d.mean()
    rows, cols = d.mean(axis=1), d.mean(axis=0)
    ms_seed = c * ((rows - grand) ** 2).sum() / (s - 1)
    ms_case = s * ((cols - grand) ** 2).sum() / (c - 1)
    ms_res = ((d - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((s - 1) * (c - 1))
    combined = ms_seed + ms_case - ms_res
    if combined <= 0:  # negative variance-component estimates: fall back to the residual term
        combined, df = ms_res, float((s - 1) * (c - 1))
    else:
        df = combined ** 2 / (ms_seed ** 2 / (s - 1) + ms_case ** 2 / (c - 1)
                              + ms_res ** 2 / ((s - 1) * (c - 1)))
    if combined == 0:
        return (float("nan"), df, 1.0) if grand == 0 else (float(np.sign(grand) * np.inf), df, 0.0)
    t = grand / np.sqrt(combined / (s * c))
    return float(t), float(df), float(2 * sps.t.sf(abs(t), df))


@dataclass(frozen=True)
class Comparison:
    """One paired comparison, ``variant - reference``.

    Attributes:
        n_pairs: number of matched pairs the test used (before Wilcoxon drops zeros).
        mean_diff: mean paired difference in Dice.
        diff_ci_low, diff_ci_high: crossed bootstrap interval of ``mean_diff``.
        statistic: Wilcoxon's T (the smaller rank sum) or Student's t (paired or crossed).
        p_value: two-sided, uncorrected (see :func:`holm`).
        effect_size: rank-biserial r (Wilcoxon) or Cohen's d_z (t-tests: mean over the sd of
            the paired differences).
        effect_measure: ``"r_rb"`` or ``"d_z"``.
    """

    variant: str
    reference: str
    n_pairs: int
    mean_diff: float
    diff_ci_low: float
    diff_ci_high: float
    test: str
    statistic: float
    p_value: float
    effect_size: float
    effect_measure: str


def paired_differences(frame: pd.DataFrame, variant: str, reference: str) -> pd.DataFrame:
    """``variant - reference`` on the seeds and cases both have (a seeds x cases table)."""
    a, b = case_matrix(frame, variant), case_matrix(frame, reference)
    seeds = a.index.intersection(b.index)
    cases = a.columns.intersection(b.columns)
    return a.loc[seeds, cases] - b.loc[seeds, cases]


def compare(frame: pd.DataFrame, variant: str, reference: str, *,
            test: Literal["wilcoxon", "ttest", "crossed"] = "wilcoxon",
            pairing: Literal["seed_case", "case"] = "seed_case",
            n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Paired comparison of two variants over their matched (seed, case) pairs.

    Args:
        frame: output of :func:`tidy`.
        variant, reference: variant names; the difference is ``variant - reference``.
        test: ``wilcoxon``, ``ttest`` or ``crossed`` (random seed and case effects).
        pairing: ``seed_case`` (one pair per seed and case) or ``case`` (seed-averaged);
            ``crossed`` always uses the whole seeds x cases table.
        n_resamples, confidence, seed: bootstrap settings of the difference's interval.
    """
    diff = paired_differences(frame, variant, reference)
    dm = diff.to_numpy()
    d = dm.ravel() if pairing == "seed_case" or test == "crossed" else \
        (dm.mean(axis=0) if dm.size else dm.ravel())
    low, high = crossed_bootstrap_ci(dm, n_resamples=n_resamples, confidence=confidence, seed=seed)
    nan = float("nan")
    mean = float(d.mean()) if d.size else nan
    measure = "r_rb" if test == "wilcoxon" else "d_z"
    if d.size < 2:
        stat = p = effect = nan
    elif np.all(d == 0):
        stat, p, effect = 0.0, 1.0, 0.0
    elif test == "wilcoxon":
        res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        stat, p, effect = float(res.statistic), float(res.pvalue), rank_biserial(d)
    elif test == "crossed":
        stat, _, p = crossed_t_test(dm)
        sd = float(d.std(ddof=1))
        effect = mean / sd if sd > 0 else float(np.sign(mean) * np.inf)
    else:
        sd = float(d.std(ddof=1))
        if sd == 0.0:  # every pair differs by the same non-zero amount
            stat, p, effect = float(np.sign(mean) * np.inf), 0.0, float(np.sign(mean) * np.inf)
        else:
            res = sps.ttest_rel(d, np.zeros_like(d))
            stat, p, effect = float(res.statistic), float(res.pvalue), mean / sd
    return Comparison(variant, reference, int(d.size), mean, low, high, test, stat, p, effect, measure)


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
