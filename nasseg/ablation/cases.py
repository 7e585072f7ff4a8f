"""Which cases and runs a statistics table may use, and the range its intervals may show.

- **Complete cases** (:func:`complete_cases`): every mean and comparison of a table is over
  the cases that *every* run of the table (each variant x seed) has with a finite value, so
  the means shown and the differences shown are over the same cases. Cases missing from
  some run, and cases with a NaN or infinite value in some run, are dropped and counted.
- **Degenerate runs** (:func:`degenerate_runs`): a run whose Dice is 0 on every case found
  no foreground anywhere (a failed run, not a measurement); it is left out with a count.
- **Bounds** (:func:`clip_intervals`): the model's intervals are symmetric t intervals and
  can leave the metric's possible range (Dice below 0 near a floor of zeros); the shown
  interval is clipped to the range (:data:`BOUNDS`) and the table says how many were.

Example:
    >>> frame = pd.DataFrame({"variant": ["a", "a", "b"], "seed": [0, 0, 0],
    ...                       "case_id": ["x", "y", "x"], "dice": [0.5, 0.7, 0.6]})
    >>> kept, cs = complete_cases(frame, "dice")
    >>> cs.kept, cs.note()
    (('x',), 'n = 1 of 2 cases (every run has it, with a finite value); dropped: 1 missing from some run (e.g. b seed 0 lacks 1).')
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["BOUNDS", "CaseSet", "clip_intervals", "clip_note", "complete_cases", "degenerate_runs"]

BOUNDS = {"dice": (0.0, 1.0), "iou": (0.0, 1.0), "nsd": (0.0, 1.0), "hd95": (0.0, math.inf),
          "assd": (0.0, math.inf)}
"""The possible range of each known metric (others are unbounded)."""


@dataclass(frozen=True)
class CaseSet:
    """The cases a table uses and what was dropped.

    Attributes:
        kept: the complete cases, sorted.
        n_total: cases seen in any run.
        missing: cases absent from at least one run.
        nonfinite: cases present in every run but NaN or infinite in at least one.
        nan_cells, inf_cells: (run, case) values that are NaN / infinite.
        example: a run that lacks cases, e.g. ``"concat seed 2 lacks 4"``.
    """

    kept: tuple[str, ...]
    n_total: int
    missing: int = 0
    nonfinite: int = 0
    nan_cells: int = 0
    inf_cells: int = 0
    example: str = ""

    def note(self) -> str:
        """``"n = 54 of 60 cases (...); dropped: ..."``, the sentence the table prints."""
        text = f"n = {len(self.kept)} of {self.n_total} cases (every run has it, with a finite value)"
        dropped = []
        if self.missing:
            dropped.append(f"{self.missing} missing from some run" + (f" (e.g. {self.example})" if self.example else ""))
        if self.nonfinite:
            cells = ", ".join(f"{n} {kind} value{'s' if n != 1 else ''}" for n, kind in
                              ((self.nan_cells, "NaN"), (self.inf_cells, "infinite")) if n)
            dropped.append(f"{self.nonfinite} non-finite in some run ({cells})")
        return text + ("; dropped: " + ", ".join(dropped) if dropped else "") + "."


def complete_cases(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, CaseSet]:
    """Restrict a tidy table (:func:`nasseg.ablation.stats.tidy`) to its complete cases.

    Args:
        frame: one row per (variant, seed, case_id) with ``metric``.
        metric: the value column.

    Returns:
        The rows of the complete cases, and the :class:`CaseSet`.
    """
    if frame.empty:
        return frame, CaseSet((), 0)
    runs = frame[["variant", "seed"]].drop_duplicates()
    values = frame[metric].to_numpy(dtype=float)
    per_case = frame.groupby("case_id").size()
    missing = set(per_case.index[per_case < len(runs)])
    bad = set(frame.loc[~np.isfinite(values), "case_id"]) - missing
    kept = tuple(sorted(set(per_case.index) - missing - bad))
    example = ""
    if missing:
        counts = frame.groupby(["variant", "seed"]).size().sort_values(kind="stable")
        (v, s), n = counts.index[0], int(counts.iloc[0])
        example = f"{v} seed {s} lacks {len(per_case) - n}"
    cs = CaseSet(kept, len(per_case), len(missing), len(bad), int(np.isnan(values).sum()),
                 int(np.isinf(values).sum()), example)
    return frame[frame["case_id"].isin(kept)], cs


def degenerate_runs(frame: pd.DataFrame, metric: str = "dice") -> list[tuple[str, object]]:
    """The ``(variant, seed)`` runs whose ``metric`` (Dice) is 0 on every case they have.

    Such a network predicted no foreground where there was some, on every case: a failed
    run. Empty when the frame has no ``metric`` column.
    """
    if metric not in frame.columns or frame.empty:
        return []
    zero = frame.assign(_z=frame[metric].to_numpy(dtype=float) == 0).groupby(["variant", "seed"])["_z"].all()
    return [k for k, z in zero.items() if z]


def clip_intervals(table: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, int]:
    """Clip the shown intervals of a statistics table to the metric's range.

    The variant intervals go to ``BOUNDS[metric]``, the difference intervals to
    ``[lo - hi, hi - lo]``; the means are never changed.

    Returns:
        The table and the number of intervals that were clipped.
    """
    lo, hi = BOUNDS.get(metric, (-math.inf, math.inf))
    out = table.copy()
    n = 0
    for cols, (a, b) in (((f"{metric}_ci_low", f"{metric}_ci_high"), (lo, hi)),
                         (("diff_ci_low", "diff_ci_high"), (lo - hi, hi - lo))):
        if cols[0] not in out.columns:
            continue
        low = pd.to_numeric(out[cols[0]], errors="coerce")
        high = pd.to_numeric(out[cols[1]], errors="coerce")
        n += int(((low < a) | (high > b)).sum())
        out[cols[0]], out[cols[1]] = low.clip(lower=a, upper=b), high.clip(lower=a, upper=b)
    return out, n


def clip_note(clipped: int, metric: str) -> list[str]:
    """The sentence saying that ``clipped`` shown intervals were cut to the metric's range."""
    if not clipped:
        return []
    lo, hi = BOUNDS[metric]
    rng = f"[{lo:g}, {hi:g}]" if math.isfinite(hi) else f">= {lo:g}"
    return [f"{clipped} interval{'s' if clipped != 1 else ''} clipped to the metric's range {rng} (and "
            "differences to the matching range): the t interval is symmetric and does not know the bound."]
