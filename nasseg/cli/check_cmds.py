"""``nasseg check DATA``: what a dataset holds before it is split.

Cases, classes and their balance, a category and a group key read from the case ids, exact
duplicates and near-duplicate families (with their case ids, hash distances and label Dice),
and the warnings a split of it would print. Exit 0; exit 2 (one line) when the data cannot
be read.

Examples::

    nasseg check ../shared/data/busi_256
    nasseg check ../shared/data/msd_hippocampus --json > hippocampus_check.json
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from nasseg.data import DataConfig, load_dataset, resolve_data
from nasseg.data.check import check_dataset


def register(sub: Any) -> None:
    """Add ``check`` to the ``nasseg`` command line."""
    p = sub.add_parser("check", help="duplicates, class balance and likely groups of a dataset",
                       description="Check a dataset before splitting it: cases, classes and their balance, "
                                   "exact and near-duplicate cases (perceptual hashes; families are kept on "
                                   "one side of every split), categories and group keys in the case ids.")
    p.add_argument("data", help="a dataset folder, 'synthetic', 'synthetic3d' or a data-config YAML")
    p.add_argument("--size", type=int, help="2D: resize to this size first, as training would (default: native)")
    p.add_argument("--threshold", type=int, help="near-duplicate Hamming distance in bits "
                                                 "(default 10 of 64 in 2D, 24 of 216 in 3D)")
    p.add_argument("--stratify", help="the stratification the split would use, for the warnings (default: presence)")
    p.add_argument("--group", help="the group key the split would use, for the warnings (default: none)")
    p.add_argument("--split-table", help="CSV with a case_id column and group/stratum columns (default: none)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    spec: Any = DataConfig.from_yaml(args.data) if str(args.data).endswith((".yaml", ".yml")) else args.data
    cfg = resolve_data(spec, size=args.size, stratify=args.stratify, group=args.group, table=args.split_table)
    found = check_dataset(load_dataset(cfg), cfg.split, threshold=args.threshold)
    print(json.dumps(found, indent=1) if args.json else "\n".join(format_check(found, str(args.data))))
    return 0


def format_check(found: dict[str, Any], source: str) -> list[str]:
    """The text report of :func:`nasseg.data.check.check_dataset`."""
    dup = found["duplicates"]
    lines = [f"{source}: {found['cases']} cases ({found['spatial_dims']}D), checked in {found['seconds']:.1f} s"]
    lines.append("classes: " + "; ".join(f"{c['class']} in {c['cases']} cases ({100 * c['voxel_share']:.1f}% "
                                         "of voxels)" for c in found["classes"]))
    if found["strata"]:
        lines.append(f"strata (--stratify {found['strata']['stratify']}): "
                     + ", ".join(f"{k or '(none)'} {v}" for k, v in found["strata"]["counts"].items()))
    if found["groups"]:
        g = found["groups"]
        lines.append(f"declared groups (--group {g['group']}): {g['groups']} groups of {g['cases']} cases")
    cat = found["category"]
    lines.append("category in case ids: " + (", ".join(f"{k} {v}" for k, v in cat["counts"].items())
                                             + f" (stratify with --stratify '{cat['stratify']}')" if cat else "none"))
    key = found["group_key"]
    lines.append("group key in case ids: " + (f"{key['groups']} groups of {key['mean_cases']} cases on average "
                                              f"(--group '{key['group']}')" if key else "none found"))
    lines.append(f"exact duplicates: {len(dup['exact'])} set(s) of identical images" + "".join(f"\n  {' = '.join(s)}" for s in dup["exact"]))
    mixed = found["mixed_category_families"]
    lines.append(f"near-duplicate families ({dup['method']}, <= {dup['threshold_bits']} bits): "
                 f"{dup['families']} families, {dup['cases']} cases" + (f"; {mixed} mix categories" if mixed else ""))
    for n, fam in enumerate(dup["family_list"], 1):
        pairs = ", ".join(f"{a}~{b} d{d}" + ("" if dice is None else f" Dice {dice:.2f}") for a, b, d, dice in fam["pairs"])
        tag = " exact" if fam["exact"] else ""
        cats = f" [{'/'.join(fam['categories'])}]" if len(fam["categories"]) > 1 else ""
        lines.append(f"  {n:3d}. {len(fam['cases'])} cases{tag}{cats}: {pairs}")
    lines += found["warnings"]
    return lines
