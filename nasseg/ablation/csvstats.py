"""The statistics table of any long-format per-case results file (``nasseg stats``).

Input: a CSV with one row per (variant, training seed, test case) -- columns ``variant``,
``seed``, ``case`` (or ``case_id``), optionally ``class`` (averaged away), and one or more
numeric metric columns -- from nasseg (an ablation's ``per_case.csv``) or from anywhere
else. Output: the same table an ablation report shows (:mod:`nasseg.ablation.tables`),
one per metric, every non-baseline variant compared with the baseline by the mixed model
of :mod:`nasseg.ablation.stats` (or a per-case test), Holm-corrected per metric; with fewer
than 3 matched seeds a comparison conditional on the trained networks, without p.

What the table uses (:mod:`nasseg.ablation.cases`): runs with Dice 0 on every case are
left out as degenerate, means and comparisons are over the cases every remaining run has
with a finite value, and intervals are clipped to the metric's range; the note counts
each. Variants that share no seed label with the baseline are refused (seeds are paired
by label).

Example:
    >>> res = csv_stats("reports/skips/per_case.csv", baseline="skip_fusion")  # doctest: +SKIP
    >>> res["dice"].table[["variant", "mean_diff", "p_value"]]                    # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nasseg.ablation.cases import clip_intervals, clip_note, complete_cases, degenerate_runs
from nasseg.ablation.config import StatsConfig
from nasseg.ablation.stats import compare, holm, significance, summarize_variant, tidy
from nasseg.errors import DataError

__all__ = ["CsvStats", "TableConfig", "csv_stats", "read_results"]

ID_COLUMNS = ("variant", "seed", "case", "case_id", "class", "trial", "split")
SEEN_SPLITS = ("train", "val")
"""``split`` values (``nasseg evaluate``'s per_case.csv) of cases a network was trained or
validated on: never analysed as held-out cases."""
LOWER_IS_BETTER = ("hd95", "assd")
COUNT_COLUMNS = ("inter", "pred_voxels", "label_voxels")
"""nasseg's per-case voxel counts (what the pooled Dice adds up): not metrics, analysed only when named."""


@dataclass
class TableConfig:
    """What :mod:`nasseg.ablation.tables` reads of a study config: its name and stats settings."""

    name: str
    stats: StatsConfig


@dataclass
class CsvStats:
    """One metric's table (``table`` as :func:`nasseg.ablation.results.analyze` builds it)."""

    config: TableConfig
    table: pd.DataFrame
    data: pd.DataFrame
    scored_split: str = "test"
    convention: str | None = ""
    notes: list[str] = field(default_factory=list)


def read_results(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read and check a long-format results CSV; return it (``case`` renamed ``case_id``)
    and its metric columns.

    Raises:
        DataError: unreadable file, missing columns, no numeric metric column, or a
            (variant, seed, case[, class]) that appears twice -- named with the file.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable results CSV ({err})") from None
    if "case" in frame.columns and "case_id" not in frame.columns:
        frame = frame.rename(columns={"case": "case_id"})
    missing = [c for c in ("variant", "seed", "case") if (c if c != "case" else "case_id") not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (need variant, seed, case and metric columns)")
    metrics = [c for c in frame.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])]
    if not metrics:
        raise DataError(f"{path}: no numeric metric column besides {[c for c in frame.columns if c in ID_COLUMNS]}")
    keys = ["variant", "seed", "case_id"] + (["class"] if "class" in frame.columns else [])
    dup = frame.duplicated(keys)
    if dup.any():
        first = frame.loc[dup, keys].iloc[0].tolist()
        raise DataError(f"{path}: {int(dup.sum())} duplicate rows, e.g. {dict(zip(keys, first))}")
    frame["variant"] = frame["variant"].astype(str)
    frame["case_id"] = frame["case_id"].astype(str)
    return frame, metrics


def csv_stats(path: str | Path, baseline: str, *, metrics: list[str] | None = None,
              stats: StatsConfig | None = None, name: str | None = None) -> dict[str, CsvStats]:
    """The statistics table of every metric of a results CSV, variants against ``baseline``.

    Args:
        path: the CSV.
        baseline: the reference variant.
        metrics: the metric columns to analyse (default: every numeric column but the ids
            and :data:`COUNT_COLUMNS`).
        stats: test, alpha and confidence (default: the mixed model, 0.05, 95%).
        name: the table's name (default: the file's stem).

    Raises:
        DataError: bad file, unknown baseline or metric.
    """
    frame, found = read_results(path)
    metrics = metrics or [m for m in found if m not in COUNT_COLUMNS]
    unknown = [m for m in metrics if m not in found]
    if unknown:
        raise DataError(f"{path}: no numeric column {unknown} (metric columns: {found})")
    variants = sorted(frame["variant"].unique(), key=lambda v: (v != baseline, v))
    if baseline not in variants:
        raise DataError(f"{path}: baseline '{baseline}' is not a variant (variants: {variants})")
    st = stats or StatsConfig()
    conf = st.bootstrap.confidence
    frame, seen_note, scored = _held_out(path, frame)
    frame, notes = _usable_runs(path, frame, found, variants, baseline)
    notes = [*seen_note, *notes]
    out = {}
    for m in metrics:
        data, cases = complete_cases(tidy(frame, m), m)
        if not cases.kept:
            raise DataError(f"{path}: no case has a finite {m} in every run ({cases.note()})")
        comps = {v: compare(data, v, baseline, test=st.test, metric=m, confidence=conf)
                 for v in variants if v != baseline}
        p_holm = dict(zip(comps, holm([c.p_value for c in comps.values()]), strict=True))
        rows = []
        for v in variants:
            row = {**summarize_variant(data, v, metric=m, confidence=conf), "is_baseline": v == baseline}
            if v in comps:
                c = comps[v]
                row.update(reference=baseline, n_pairs=c.n_pairs, mean_diff=c.mean_diff,
                           diff_ci_low=c.diff_ci_low, diff_ci_high=c.diff_ci_high, test=c.test,
                           statistic=c.statistic, df=c.df, p_value=c.p_value, p_holm=float(p_holm[v]),
                           effect_size=c.effect_size, effect_measure=c.effect_measure,
                           significance=significance(float(p_holm[v]), st.alpha),
                           var_seed=c.var_seed, var_case=c.var_case, var_res=c.var_res)
            rows.append(row)
        cols = ["variant", "is_baseline", "n_seeds", "n_cases", f"{m}_mean", f"{m}_sd", f"{m}_ci_low",
                f"{m}_ci_high", "interval", "reference", "n_pairs", "mean_diff", "diff_ci_low", "diff_ci_high",
                "test", "statistic", "df", "p_value", "p_holm", "effect_size", "effect_measure", "significance",
                "var_seed", "var_case", "var_res"]
        table, clipped = clip_intervals(pd.DataFrame(rows).reindex(columns=cols), m)
        table["params"] = table["macs"] = np.nan
        note = (f"Lower {m} is better." if m in LOWER_IS_BETTER else "")
        out[m] = CsvStats(TableConfig(name or Path(path).stem, st), table, frame, scored_split=scored,
                          convention=note, notes=[cases.note(), *notes, *clip_note(clipped, m)])
    return out


def _held_out(path: Path | str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str], str]:
    """Leave out rows whose ``split`` says the network saw the case (train/val), with a note;
    returns the rows, the note and what the remaining cases are (``test``, ``external``,
    ``held-out``). A file without a ``split`` column is taken as test cases, as before."""
    if "split" not in frame.columns:
        return frame, [], "test"
    split = frame["split"].astype(str)
    seen = split.isin(SEEN_SPLITS)
    if seen.all():
        raise DataError(f"{path}: every row's split is train or val: these cases were used to train or "
                        "select the networks, so they cannot show held-out performance")
    note = []
    if seen.any():
        counts = split[seen].value_counts()
        note = [f"Left out {int(seen.sum())} rows of cases the networks were trained or validated on ("
                + ", ".join(f"{n} {k}" for k, n in counts.items()) + "; the split column of nasseg "
                "evaluate's per_case.csv): only held-out cases are analysed."]
    kept = set(split[~seen])
    scored = kept.pop() if len(kept) == 1 else "held-out"
    return frame[~seen], note, scored


def _usable_runs(path: Path | str, frame: pd.DataFrame, found: list[str], variants: list[str],
                 baseline: str) -> tuple[pd.DataFrame, list[str]]:
    """Drop degenerate runs (Dice 0 on every case) and check that seeds pair by label."""
    notes = []
    bad = degenerate_runs(tidy(frame, "dice")) if "dice" in found else []
    if bad:
        keys = set(bad)
        frame = frame[[k not in keys for k in zip(frame["variant"], frame["seed"])]]
        notes.append(f"Left out {len(bad)} degenerate run{'s' if len(bad) != 1 else ''} (Dice 0 on every "
                     "case: no foreground found anywhere): " + ", ".join(f"{v} seed {s}" for v, s in bad) + ".")
    seeds = {v: set(frame.loc[frame["variant"] == v, "seed"]) for v in variants}
    for v in variants:
        if v == baseline:
            continue
        if not seeds[v] or not seeds[baseline]:
            raise DataError(f"{path}: variant '{v if not seeds[v] else baseline}' has no usable run left")
        common = seeds[v] & seeds[baseline]
        if not common:
            raise DataError(f"{path}: variants '{v}' (seeds {_labels(seeds[v])}) and '{baseline}' (seeds "
                            f"{_labels(seeds[baseline])}) share no seed label; comparisons pair seeds by label, "
                            "so give the runs of one training seed the same label in every variant")
        if common != seeds[v] | seeds[baseline]:
            notes.append(f"{v} vs {baseline}: compared on the seeds both have ({_labels(common)}); "
                         f"unmatched: {_labels((seeds[v] | seeds[baseline]) - common)}.")
    return frame, notes


def _labels(seeds: set) -> str:
    return ", ".join(str(s) for s in sorted(seeds, key=str))
