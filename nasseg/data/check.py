"""What ``nasseg check DATA`` reports, and the warnings a split prints: classes and their
balance, categories and group keys read from case ids, exact and near-duplicate families.

Case-id patterns are read by splitting ids at ``-``, ``_``, ``.`` and spaces:

- a *category* is a leading alphabetic token with 2-8 values, each on at least 2 cases
  (BUSI's ``benign_001`` / ``malignant_001``): a stratification key,
  ``split.stratify: "regex:^([A-Za-z]+)"``;
- a *group key* is the first prefix of tokens (shorter than the id) with more than 8 values
  that puts at least half the cases in groups of 2 or more (``12-034``: video 12, frame 34;
  ``case_0001_slice_12``): likely a patient or video, which a split must keep together.

Example:
    >>> id_category(["benign_001", "benign_002", "malignant_001", "malignant_002"])
    ('regex:^([A-Za-z]+)', {'benign': 2, 'malignant': 2})
    >>> id_group_key([f"{v}-{f:03d}" for v in range(10) for f in range(3)])[0]
    'regex:^([^-_. ]+)[-_. ]'
"""
from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import numpy as np

from nasseg.data import load_dataset
from nasseg.data.integrity import DuplicateReport, find_duplicates
from nasseg.data.splits import case_keys, describe_duplicates, split_dataset

__all__ = ["check_dataset", "class_balance", "id_category", "id_group_key", "split_notes", "split_warnings"]

_SEP = r"[-_. ]"
_TOKEN = r"[^-_. ]+"
CATEGORY_PATTERN = "regex:^([A-Za-z]+)"
FAMILY_SHARE = 0.10
"""Share of cases in near-duplicate families above which groups are called likely."""


def id_category(case_ids: list[str]) -> tuple[str, dict[str, int]] | None:
    """A category in the ids' leading alphabetic token: ``(stratify value, counts)``, or None."""
    heads = [_category(c) for c in case_ids]
    if not case_ids or None in heads:
        return None
    counts = Counter(heads)
    if 2 <= len(counts) <= 8 and min(counts.values()) >= 2:
        return CATEGORY_PATTERN, dict(sorted(counts.items()))
    return None


def id_group_key(case_ids: list[str]) -> tuple[str, int, float] | None:
    """A likely patient/video key in the ids: ``(group value, groups, mean cases per group)``."""
    n = len(case_ids)
    tokens = [re.split(_SEP, c) for c in case_ids]
    for k in range(1, max((len(t) for t in tokens), default=1)):
        if any(len(t) <= k for t in tokens):
            return None
        counts = Counter(tuple(t[:k]) for t in tokens)
        in_groups = sum(v for v in counts.values() if v >= 2)
        if len(counts) > 8 and 2 * in_groups >= n:
            pattern = "regex:^(" + _SEP.join([_TOKEN] * k) + ")" + _SEP
            return pattern, len(counts), n / len(counts)
    return None


def class_balance(ds: Any) -> list[dict[str, Any]]:
    """Per class (background first): the cases whose label contains it and its voxel share."""
    k = ds.num_classes
    cases, voxels = np.zeros(k, np.int64), np.zeros(k, np.int64)
    for i in range(len(ds)):
        counts = np.bincount(np.asarray(ds.labels[i]).ravel(), minlength=k)[:k]
        cases += counts > 0
        voxels += counts
    total = max(int(voxels.sum()), 1)
    return [{"class": ds.class_names[c] if c < len(ds.class_names) else str(c), "cases": int(cases[c]),
             "voxel_share": round(float(voxels[c]) / total, 4)} for c in range(k)]


def split_warnings(case_ids: list[str], cfg: Any, report: DuplicateReport | None) -> list[str]:
    """One-line warnings for a split config (``SplitConfig``) that ignores likely structure:
    groups likely (an id pattern, or many near-duplicate families) but none declared; a
    category in the ids while the split stratifies by no key (``presence`` or ``none``)."""
    out = []
    if cfg.method != "file" and not cfg.group:
        why = []
        key = id_group_key(case_ids)
        if key:
            why.append(f"case ids share prefixes ({key[1]} groups of {key[2]:.1f} cases: --group '{key[0]}')")
        if report is not None and report.n_cases_in_families >= FAMILY_SHARE * len(case_ids):
            why.append(f"{report.n_cases_in_families} of {len(case_ids)} cases are in "
                       f"{len(report.families)} near-duplicate families")
        if why:
            out.append("warning: groups (patients, videos) are likely but none is declared: " + "; ".join(why)
                       + "; declare the key with --group (split.group) if the data has one")
    cat = id_category(case_ids)
    if cfg.method != "file" and cat and cfg.stratify in ("presence", "none"):  # no key chosen
        shown = ", ".join(f"{k} {v}" for k, v in cat[1].items())
        out.append(f"warning: case ids carry a category ({shown}) the split does not stratify by; "
                   f"add --stratify '{cat[0]}' (split.stratify) to balance it across train/val/test")
    return out


def split_notes(data: Any) -> list[str]:
    """What a run header says about the split of ``data`` (a ``DataConfig``): the
    near-duplicate families kept together and any :func:`split_warnings`."""
    ds = load_dataset(data)
    split = split_dataset(ds, data.split)
    return [x for x in (describe_duplicates(split), *split_warnings(list(ds.case_ids), data.split,
                                                                    find_duplicates(ds))) if x]


def check_dataset(ds: Any, cfg: Any, *, threshold: int | None = None) -> dict[str, Any]:
    """Everything ``nasseg check`` prints, as plain data (JSON-ready).

    Args:
        ds: the loaded dataset.
        cfg: its ``SplitConfig`` (for the warnings: declared group and stratification).
        threshold: near-duplicate Hamming threshold (default per dimensionality).
    """
    t0 = time.perf_counter()
    rep = find_duplicates(ds, threshold)
    ids = list(ds.case_ids)
    key = id_group_key(ids)
    cat = id_category(ids)
    labels_by_family = [sorted({c for c in map(_category, fam.cases) if c}) for fam in rep.families]
    strata, groups = case_keys(ds, cfg)  # also checks --stratify / --group against the data
    return {
        "dataset": ds.kind, "cases": len(ds), "spatial_dims": ds.spatial_dims, "classes": class_balance(ds),
        "strata": {"stratify": cfg.stratify, "counts": dict(sorted(Counter(strata).items()))} if strata else None,
        "groups": {"group": cfg.group, "groups": len(set(groups)), "cases": len(groups)} if groups else None,
        "category": {"stratify": cat[0], "counts": cat[1]} if cat else None,
        "group_key": {"group": key[0], "groups": key[1], "mean_cases": round(key[2], 2)} if key else None,
        "duplicates": {**rep.summary(), "exact": rep.exact_groups,
                       "family_list": [{"cases": f.cases, "max_distance": f.max_distance, "exact": f.exact,
                                     "categories": labs, "pairs": [list(p) for p in f.pairs]}
                                    for f, labs in zip(rep.families, labels_by_family, strict=True)]},
        "mixed_category_families": sum(len(labs) > 1 for labs in labels_by_family) if cat else 0,
        "warnings": split_warnings(ids, cfg, rep),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _category(case_id: str) -> str | None:
    m = re.match(r"^([A-Za-z]+)(?:[-_. ]|\d|$)", case_id)
    return m.group(1) if m else None
