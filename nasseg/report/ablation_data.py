"""The data of an ablation's figures, from :class:`nasseg.ablation.results.AblationResult`.

Example:
    >>> bars = bars_info(analyze(study))            # doctest: +SKIP
    >>> bars.bars[["variant", "dice_mean", "marks"]]  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from nasseg.ablation.results import AblationResult

__all__ = ["BarsInfo", "bars_info", "forest_info"]


@dataclass
class BarsInfo:
    """Bars: one row per variant (``variant, is_baseline, dice_mean, ci_low, ci_high, marks,
    params, macs, n_seeds``); ``seeds``: each seed's mean Dice (``variant, seed, dice``)."""

    bars: pd.DataFrame
    seeds: pd.DataFrame
    single_reference: bool


def bars_info(result: AblationResult) -> BarsInfo:
    """Mean Dice with its interval per variant, and the significance mark(s) of its
    comparisons (``**``; with several references ``** vs concat``)."""
    t = result.table
    refs = set(t["reference"].dropna())
    single = len(refs) <= 1
    rows = []
    for v in result.variants:
        mine = t[t["variant"] == v.name]
        first = mine.iloc[0]
        marks = [r["significance"] if single else f"{r['significance']} vs {r['reference']}"
                 for _, r in mine.iterrows() if isinstance(r["reference"], str) and r["significance"]]
        rows.append({"variant": v.name, "is_baseline": v.is_baseline,
                     "dice_mean": first["dice_mean"], "ci_low": first["dice_ci_low"],
                     "ci_high": first["dice_ci_high"], "marks": marks, "params": first["params"],
                     "macs": first["macs"], "n_seeds": first["n_seeds"]})
    seeds = result.seed_means()
    return BarsInfo(pd.DataFrame(rows), seeds, single)


def forest_info(result: AblationResult) -> pd.DataFrame:
    """One row per comparison with a result: ``label`` ("irsc - skip_fusion"), ``variant,
    reference, mean_diff, ci_low, ci_high, p_holm, significance``."""
    t = result.table.dropna(subset=["reference", "mean_diff"])
    return pd.DataFrame({
        "label": [f"{v} − {r}" for v, r in zip(t["variant"], t["reference"], strict=True)],
        "variant": t["variant"], "reference": t["reference"], "mean_diff": t["mean_diff"],
        "ci_low": t["diff_ci_low"], "ci_high": t["diff_ci_high"], "p_holm": t["p_holm"],
        "significance": t["significance"],
    }).reset_index(drop=True)
