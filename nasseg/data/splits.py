"""Train / validation / test splits: seeded, stratified and group-aware; k-fold; from a file.

Every split has three disjoint partitions: ``train`` (fitted), ``val`` (selection: best
epoch, early stopping, search feedback) and ``test`` (scored once with the weights chosen
on ``val``; what tables report). The split a run used is returned as a plain dict
(``method, seed, rule, train, val, test``) and written as ``split.json`` beside its
results; that file can be passed back as ``split.method="file"`` to reproduce it.

Stratification and groups (see :class:`~nasseg.data.config.SplitConfig`): cases of one
group (patient, video) are kept together; groups are ordered so that every stratum is
spread evenly along the order (each stratum's shuffled groups at positions
``(i + u) / n_stratum``, ``u`` uniform), then cut by case counts: the first
``round(test_fraction N)`` cases are test, the next ``round(val_fraction N)`` val. So each
partition holds each stratum in about its overall proportion, and the counts are exact
when there are no groups.

Near-duplicates: :func:`split_dataset` joins every near-duplicate family
(:mod:`nasseg.data.integrity`) into one group by default, so a case and its twin are never
on both sides (``split.duplicates: ignore`` turns this off); ``split.json`` records it
under ``duplicates``.

Example:
    >>> s = make_split([f"c{i}" for i in range(10)], SplitConfig(seed=1))
    >>> len(s["train"]), len(s["val"]), len(s["test"])
    (6, 2, 2)
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasseg.data.config import SplitConfig
from nasseg.data.integrity import family_groups, find_duplicates
from nasseg.errors import DataError

__all__ = ["PINNED_SPLIT_FILE", "case_keys", "describe_duplicates", "make_split", "resume_split", "sample_cases",
           "split_dataset", "split_hash", "stratified_order"]

PARTS = ("train", "val", "test")
PINNED_SPLIT_FILE = "split_before_duplicate_groups.json"
"""Where :func:`resume_split` writes a resumed study's pre-grouping split (in its output folder)."""


def split_hash(split: dict[str, Any]) -> str:
    """12 hex digits identifying the exact train/val/test case ids (order-free).

    Example:
        >>> split_hash({"train": ["b", "a"], "val": ["c"], "test": []}) == \\
        ...     split_hash({"train": ["a", "b"], "val": ["c"]})
        True
    """
    ids = {p: sorted(map(str, split.get(p) or [])) for p in PARTS}
    return hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:12]


def _describe(cfg: SplitConfig) -> str:
    """The rule that made a split, in words (stored in ``split.json``)."""
    if cfg.method == "file":
        return f"read from {cfg.file}" + (f" (fold {cfg.fold})" if cfg.fold else "")
    what = (f"{cfg.k}-fold of the non-test cases, fold {cfg.fold} = val" if cfg.method == "kfold"
            else f"val {cfg.val_fraction:g}")
    strat = "" if cfg.stratify == "none" else f", stratified by {cfg.stratify}"
    group = f", grouped by {cfg.group}" if cfg.group else ""
    return f"seeded shuffle (seed {cfg.seed}): test {cfg.test_fraction:g}, {what}{strat}{group}"


def stratified_order(strata: Sequence[str], seed: int) -> np.ndarray:
    """A seeded permutation of units in which every stratum is spread evenly.

    Unit ``j`` of stratum ``s`` (after a seeded shuffle within ``s``) gets the key
    ``(j + u) / n_s`` with ``u ~ U(0, 1)``; units are returned by increasing key. Any prefix
    of the order then holds each stratum in about its overall proportion.

    Example:
        >>> order = stratified_order(["a"] * 6 + ["b"] * 3, seed=0)
        >>> sorted(["a"] * 6 + ["b"] * 3) == sorted(["a" if i < 6 else "b" for i in order])
        True
    """
    rng = np.random.default_rng(seed)
    strata = list(strata)
    keys = np.empty(len(strata))
    for s in sorted(set(strata)):
        idx = np.flatnonzero(np.array([x == s for x in strata], dtype=bool))
        idx = idx[rng.permutation(idx.size)]
        keys[idx] = (np.arange(idx.size) + rng.uniform(size=idx.size)) / idx.size
    return np.argsort(keys, kind="stable")


def _units(case_ids: list[str], strata: list[str] | None, groups: list[str] | None
           ) -> tuple[list[list[int]], list[str]]:
    """Groups of case indices (one per group, or per case) and each group's stratum
    (the most common stratum of its cases)."""
    keys = groups if groups is not None else case_ids
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    units = list(members.values())
    labels = []
    for u in units:
        vals = [strata[i] for i in u] if strata is not None else [""]
        labels.append(max(sorted(set(vals)), key=vals.count))
    return units, labels


def _cut(units: list[list[int]], order: np.ndarray, sizes: Sequence[int]) -> list[list[int]]:
    """Walk ``units`` in ``order``, filling partitions of the given case counts in turn;
    the last partition takes what is left."""
    parts: list[list[int]] = [[] for _ in range(len(sizes) + 1)]
    bounds = np.cumsum(sizes)
    taken = 0
    for u in order:
        k = int(np.searchsorted(bounds, taken, side="right"))
        parts[k] += units[u]
        taken += len(units[u])
    return parts


def make_split(case_ids: list[str], cfg: SplitConfig, *, strata: list[str] | None = None,
               groups: list[str] | None = None) -> dict[str, Any]:
    """Divide ``case_ids`` into training, validation and test ids.

    Args:
        case_ids: ids of the loaded cases.
        cfg: the split settings.
        strata: one stratum label per case (``None`` = one stratum).
        groups: one group label per case (``None`` = every case its own group).

    Returns:
        ``{"method", "seed", "rule", "train", "val", "test", "hash"}`` (plus ``k``/``fold``
        or ``file``); ids keep the dataset's order within each list.

    Raises:
        DataError: too few cases or groups, a bad fold, or a split file that is
            unreadable, malformed, overlapping or naming unknown cases.
    """
    n = len(case_ids)
    if n < 2:
        raise DataError(f"a split needs at least 2 cases, got {n}")
    order = {c: i for i, c in enumerate(case_ids)}
    out: dict[str, Any] = {"method": cfg.method, "seed": cfg.seed, "rule": _describe(cfg)}
    if cfg.method == "file":
        parts = _read_split_file(Path(cfg.file or ""), order, cfg.fold)
        out.update(seed=None, file=str(cfg.file))
    else:
        units, unit_strata = _units(case_ids, strata, groups)
        perm = stratified_order(unit_strata, cfg.seed)
        n_test = max(1, round(cfg.test_fraction * n)) if cfg.test_fraction > 0 else 0
        if cfg.method == "random":
            n_val = max(1, round(cfg.val_fraction * n))
            if n_test + n_val >= n or len(units) < 2 + (n_test > 0):
                raise DataError(f"{n} cases in {len(units)} groups cannot give non-empty train, val"
                                f"{' and test' if n_test else ''} partitions (val_fraction "
                                f"{cfg.val_fraction:g}, test_fraction {cfg.test_fraction:g})")
            test, val, train = _cut(units, perm, [n_test, n_val])
        else:
            if cfg.fold >= cfg.k:
                raise DataError(f"split.fold={cfg.fold} but k={cfg.k} folds (0..{cfg.k - 1})")
            test, rest = _cut(units, perm, [n_test])
            left = set(rest)
            rest_units = [u for u in (units[i] for i in perm) if u[0] in left]
            if cfg.k > len(rest_units):
                raise DataError(f"split.k={cfg.k} folds but only {len(rest_units)} non-test groups")
            folds = [[i for u in rest_units[f::cfg.k] for i in u] for f in range(cfg.k)]
            val = folds[cfg.fold]
            train = [i for f, fold in enumerate(folds) if f != cfg.fold for i in fold]
            out.update(k=cfg.k, fold=cfg.fold)
        parts = {p: [case_ids[i] for i in sorted(idx)] for p, idx in
                 zip(PARTS, (train, val, test), strict=True)}
    out.update(parts)
    out["hash"] = split_hash(out)
    return out


def _read_split_file(path: Path, order: dict[str, int], fold: int) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable split file ({err})") from None
    if isinstance(data, list):  # nnU-Net's splits_final.json: one {"train", "val"} per fold
        if not 0 <= fold < len(data):
            raise DataError(f"{path}: split.fold={fold} but the file holds {len(data)} folds")
        data = data[fold]
    if not isinstance(data, dict) or not isinstance(data.get("train"), list) or not isinstance(data.get("val"), list):
        raise DataError(f"{path}: a split file needs 'train' and 'val' lists of case ids")
    lists = {p: [str(c) for c in data.get(p) or []] for p in PARTS}
    unknown = [c for p in PARTS for c in lists[p] if c not in order]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} case ids not in the dataset, e.g. {unknown[:3]}")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = set(lists[a]) & set(lists[b])
        if both:
            raise DataError(f"{path}: cases in both {a} and {b}, e.g. {sorted(both)[:3]}")
    if not lists["train"] or not lists["val"]:
        raise DataError(f"{path}: 'train' and 'val' must both be non-empty")
    if "test" not in data:  # cases the file does not name are the test set
        listed = set(lists["train"]) | set(lists["val"])
        lists["test"] = [c for c in order if c not in listed]
    return {p: sorted(v, key=order.__getitem__) for p, v in lists.items()}


def _column(cfg: SplitConfig, case_ids: list[str], column: str) -> list[str]:
    """``column`` of ``cfg.table`` for every case (matched by id, or by file stem)."""
    path = Path(cfg.table or "")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise DataError(f"{path}: split.table unreadable ({err})") from None
    if not rows or cfg.id_column not in rows[0] or column not in rows[0]:
        have = list(rows[0]) if rows else []
        raise DataError(f"{path}: split.table needs the columns '{cfg.id_column}' and '{column}' (has {have})")
    by_id = {}
    for r in rows:
        by_id[r[cfg.id_column]] = r[column]
        by_id.setdefault(Path(r[cfg.id_column]).stem, r[column])
    missing = [c for c in case_ids if c not in by_id]
    if missing:
        raise DataError(f"{path}: {len(missing)} cases have no row (column '{cfg.id_column}'), "
                        f"e.g. {missing[:3]}")
    return [by_id[c] for c in case_ids]


def _regex(pattern: str, case_ids: list[str], field: str) -> list[str]:
    try:
        rx = re.compile(pattern)
    except re.error as err:
        raise DataError(f"split.{field}: bad regular expression '{pattern}' ({err})") from None
    out = []
    for c in case_ids:
        m = rx.search(c)
        if m is None:
            raise DataError(f"split.{field}: '{pattern}' does not match the case id '{c}'")
        out.append(m.group(1) if m.groups() else m.group(0))
    return out


def case_keys(ds: Any, cfg: SplitConfig) -> tuple[list[str] | None, list[str] | None]:
    """The stratum and group label of every case of ``ds`` under ``cfg`` (``None`` = unused).

    ``stratify: presence`` labels a case by the foreground classes its label contains
    (``"1"``, ``"1,2"``, ``""`` for an empty label).
    """
    ids = list(ds.case_ids)
    strata: list[str] | None = None
    if cfg.stratify == "presence":
        strata = []
        for i in range(len(ds)):
            present = np.unique(np.asarray(ds.labels[i]))
            strata.append(",".join(str(int(v)) for v in present if v > 0))
    elif cfg.stratify.startswith("regex:"):
        strata = _regex(cfg.stratify[6:], ids, "stratify")
    elif cfg.stratify != "none":
        strata = _column(cfg, ids, cfg.stratify)
    groups = None
    if cfg.group:
        groups = _regex(cfg.group[6:], ids, "group") if cfg.group.startswith("regex:") \
            else _column(cfg, ids, cfg.group)
    return strata, groups


def split_dataset(ds: Any, cfg: SplitConfig, *, duplicates: bool | None = None) -> dict[str, Any]:
    """:func:`make_split` of a loaded dataset, with its strata and groups from ``cfg``.

    Near-duplicate families (:func:`nasseg.data.integrity.find_duplicates`) are kept on one
    side of the split unless ``cfg.duplicates`` is ``ignore``: each family joins the
    declared group (``cfg.group``) of any of its cases, so neither is divided. The record
    gains ``duplicates``: the setting (``split``: ``group``/``ignore``), whether families
    were grouped, how many (and how many cases they hold), the hash and threshold, and how
    many families the split still divides (``straddling``; 0 when grouped; a ``file`` split
    is used as given and only counted).

    Args:
        ds: the loaded dataset.
        cfg: the split settings.
        duplicates: ``None`` (default) = ``cfg.duplicates``; ``False`` gives the split
            nasseg made before families were grouped (:func:`resume_split`).
    """
    strata, groups = case_keys(ds, cfg)
    report = find_duplicates(ds)
    setting = cfg.duplicates if duplicates is None else ("group" if duplicates else "ignore")
    grouped = setting == "group" and cfg.method != "file"
    if grouped:
        groups = family_groups(report, groups)
    try:
        out = make_split(list(ds.case_ids), cfg, strata=strata, groups=groups)
    except DataError as err:
        if not (grouped and report.families):
            raise
        raise DataError(f"{err}; near-duplicate families joined {report.n_cases_in_families} cases into "
                        f"{len(report.families)} groups (list them with: nasseg check DATA)") from None
    part = {c: p for p in PARTS for c in out[p]}
    straddling = sum(len({part.get(c) for c in fam.cases}) > 1 for fam in report.families)
    out["duplicates"] = {"split": setting, "grouped": grouped, **report.summary(), "straddling": straddling}
    if grouped and report.families:
        out["rule"] += (f", {len(report.families)} near-duplicate families "
                        f"({report.n_cases_in_families} cases) kept together")
    elif cfg.method != "file" and setting == "ignore":
        out["rule"] += ", near-duplicates not grouped (split.duplicates: ignore)"
    return out


def resume_split(ds: Any, cfg: SplitConfig, recorded: Callable[[dict[str, Any]], bool],
                 folder: Path) -> SplitConfig:
    """Split settings that give a resumed study the split its earlier runs used.

    Studies created before near-duplicate families were grouped recorded splits made without
    grouping; resumed now, their new runs would be trained and scored on another split, and
    the runs could no longer be paired (an ablation refuses to analyse them). When the split
    ``cfg`` makes now is not one the study recorded but the ungrouped split is, that split is
    written to ``folder/split_before_duplicate_groups.json`` (once; an existing file is read,
    never rewritten) and ``cfg`` is returned with ``method: file`` pointing at it, so every
    later run uses it. Otherwise (a new study, one created since, a ``file`` split) ``cfg``.

    Args:
        ds: the study's dataset.
        cfg: the study's split settings.
        recorded: whether a split (the dict :func:`split_dataset` returns) is one the study's
            completed runs recorded (they store a summary hash: the caller compares it).
        folder: the study's output folder.

    Raises:
        DataError: the pinned file exists but holds another split.
    """
    if cfg.method == "file" or recorded(split_dataset(ds, cfg)):
        return cfg
    before = split_dataset(ds, cfg, duplicates=False)
    if not recorded(before):
        return cfg
    path = Path(folder) / PINNED_SPLIT_FILE
    if path.exists():
        held = make_split(list(ds.case_ids), SplitConfig(method="file", file=str(path)))
        if held["hash"] != before["hash"]:
            raise DataError(f"{path}: holds another split than the study's earlier runs used")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**before, "pinned": "the split of the study's runs made before "
                                    "near-duplicate families were grouped"}, indent=1))
    return cfg.model_copy(update={"method": "file", "file": str(path)})


def describe_duplicates(split: dict[str, Any]) -> str:
    """One line on a split's near-duplicate families (for run headers; ``""`` if unrecorded).

    Example:
        >>> describe_duplicates({"duplicates": {"grouped": True, "families": 3, "cases": 7,
        ...                      "threshold_bits": 10, "method": "phash64", "straddling": 0}})
        'near-duplicates: 3 families (7 cases, phash64 <= 10 bits) kept on one side of the split'
    """
    d = split.get("duplicates")
    if not d:
        return ""
    what = f"{d['families']} families ({d['cases']} cases, {d['method']} <= {d['threshold_bits']} bits)"
    if d["grouped"]:
        return f"near-duplicates: {what} kept on one side of the split"
    why = " (split.duplicates: ignore)" if d.get("split") == "ignore" else ""
    return f"near-duplicates: {what} not grouped{why}; {d['straddling']} families cross train/val/test"


def sample_cases(ds: Any, n: int, cfg: SplitConfig) -> list[int]:
    """Indices of a seeded sample of ``n`` cases, stratified (and grouped) as ``cfg`` says;
    in dataset order. Used for ``max_cases``.

    Example:
        >>> from nasseg.data import load_dataset, resolve_data  # doctest: +SKIP
        >>> len(sample_cases(load_dataset(resolve_data("synthetic", n_cases=20)), 5, SplitConfig()))  # doctest: +SKIP
        5
    """
    if n >= len(ds):
        return list(range(len(ds)))
    strata, groups = case_keys(ds, cfg)
    units, unit_strata = _units(list(ds.case_ids), strata, groups)
    chosen, _ = _cut(units, stratified_order(unit_strata, cfg.seed + 7919), [n])
    return sorted(chosen)
