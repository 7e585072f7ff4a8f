"""Re-read a finished BUSI ablation's per-case table with nasseg's own tools (issue 21, item 4).

Three things its evidence README states, measured from the files alone:

1. **Near-duplicates across its split.** The split is remade from the study's split settings
   as nasseg made it before families were grouped (``split_dataset(..., duplicates=False)``;
   ``--duplicates group``: as it makes it now, families kept on one side),
   checked against the split hash the README records and against the test cases of
   ``per_case.csv``, then the near-duplicate families of ``nasseg check`` are counted:
   test images with a family member in training (and in training or validation).
2. **A seed-level interval of the difference.** The per-seed means of the paired (seed, case)
   differences (``nasseg.ablation.stats.paired_differences``), one value per training seed,
   and their Student-t interval (``case_t_interval``, df = seeds - 1): the interval that does
   not lean on the crossed model's seed variance, which sits on its boundary (0) in this run.
3. **What the HD95 mean is made of.** Per variant: mean and median, the cells at the
   empty-prediction penalty (the image diagonal), the cells with Dice 0, and the top 10%.

Usage::

    python benchmarks/recheck_busi_ablation.py reports/evidence/busi_skip_fusion_vs_concat/per_case.csv \\
        --data ../shared/data/busi_256 --data-size 128 --stratify 'regex:^(benign|malignant)' \
        --split-hash ba41fe3a62a2
    python benchmarks/recheck_busi_ablation.py reports/evidence/busi_skip_fusion_vs_concat_grouped/per_case.csv \
        --data ../shared/data/busi_256 --data-size 128 --stratify 'regex:^(benign|malignant)' \
        --duplicates group --split-hash 9de1da1be4c8

Prints Markdown.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from nasseg.ablation.stats import case_t_interval, paired_differences, tidy
from nasseg.data import SplitConfig, load_dataset, resolve_data, split_dataset
from nasseg.data.integrity import find_duplicates

PARTS = ("train", "val", "test")


def leaks(per_case: pd.DataFrame, data: str, size: int | None, cfg: SplitConfig, split_hash: str | None,
          grouped: bool = False) -> list[str]:
    """Test images of the run whose near-duplicate family reaches training (or validation)."""
    ds = load_dataset(resolve_data(data, size=size))
    split = split_dataset(ds, cfg, duplicates=grouped)
    if split_hash and split["hash"] != split_hash:
        sys.exit(f"the remade split has hash {split['hash']}, the run recorded {split_hash}: not the run's split")
    if set(split["test"]) != set(per_case["case"]):
        sys.exit("the remade split's test cases are not the cases of the per-case table")
    part = {c: p for p in PARTS for c in split[p]}
    rep = find_duplicates(ds)
    in_train, outside_test = set(), set()
    for fam in rep.families:
        for c in fam.cases:
            others = {part[o] for o in fam.cases if o != c}
            if part[c] == "test" and "train" in others:
                in_train.add(c)
            if part[c] == "test" and others - {"test"}:
                outside_test.add(c)
    return [f"- split remade: hash {split['hash']}, {len(split['train'])} / {len(split['val'])} / "
            f"{len(split['test'])} train / val / test cases (= the per-case table's test cases)",
            f"- near-duplicate families ({rep.method} <= {rep.threshold} bits): {len(rep.families)}, "
            f"{split['duplicates']['straddling']} of them cross train/val/test",
            f"- test images with a family member in training: {len(in_train)} of {len(split['test'])}; "
            f"in training or validation: {len(outside_test)}"]


def seed_level(frame: pd.DataFrame, variant: str, baseline: str, metric: str) -> list[str]:
    """The per-seed mean differences and their t interval (df = seeds - 1)."""
    d = paired_differences(frame, variant, baseline, metric)
    per_seed = d.mean(axis=1)
    low, high = case_t_interval(per_seed.to_numpy())
    shown = ", ".join(f"{s}: {v:+.4f}" for s, v in per_seed.items())
    return [f"- {metric}, {variant} - {baseline}, per seed ({d.shape[1]} cases each): {shown}",
            f"- mean {per_seed.mean():+.4f}, 95% t interval over {len(per_seed)} seeds (df {len(per_seed) - 1}): "
            f"[{low:+.4f}, {high:+.4f}] (half-width {(high - low) / 2:.4f})"]


def hd95_tail(per_case: pd.DataFrame, size: int) -> list[str]:
    """What each variant's HD95 mean is made of."""
    diag = float(np.hypot(size, size))
    out = [f"| variant | cells | HD95 mean | median | penalty cells (HD95 = {diag:.1f}) | their share of the sum "
           "| Dice-0 cells | their share | top 10% cells' share |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, g in per_case.groupby("variant"):
        total = g["hd95"].sum()
        pen = np.isclose(g["hd95"], diag)
        zero = g["dice"] == 0
        top = g["hd95"] >= g["hd95"].quantile(0.9)
        out.append(f"| {v} | {len(g)} | {g['hd95'].mean():.2f} | {g['hd95'].median():.2f} | {int(pen.sum())} | "
                   f"{g['hd95'][pen].sum() / total:.3f} | {int(zero.sum())} | {g['hd95'][zero].sum() / total:.3f} | "
                   f"{g['hd95'][top].sum() / total:.3f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("per_case", help="the ablation's per_case.csv (variant, seed, case, dice, hd95, ...)")
    ap.add_argument("--baseline", default="skip_fusion", help="reference variant (default skip_fusion)")
    ap.add_argument("--variant", default="concat", help="compared variant (default concat)")
    ap.add_argument("--data", default=None, help="the dataset folder, for the near-duplicate check (default: skip it)")
    ap.add_argument("--data-size", type=int, default=None,
                    help="the study's data.size, the images the families are hashed from (default: native)")
    ap.add_argument("--split-seed", type=int, default=0, help="the study's split seed (default 0)")
    ap.add_argument("--stratify", default="presence", help="the study's split.stratify (default presence)")
    ap.add_argument("--split-hash", default=None, help="the split hash the run recorded (default: not checked)")
    ap.add_argument("--duplicates", choices=("ignore", "group"), default="ignore",
                    help="the run's split.duplicates: ignore (default: runs made before families were grouped) "
                         "or group")
    ap.add_argument("--size", type=int, default=256, help="side of the scored images, for the HD95 penalty (default 256)")
    args = ap.parse_args(argv)
    per_case = pd.read_csv(args.per_case)
    frame = tidy(per_case.rename(columns={"case": "case_id"}), "dice")
    lines = ["## Seed-level interval of the difference", *seed_level(frame, args.variant, args.baseline, "dice")]
    if "hd95" in per_case:
        lines += ["", "## HD95: what the mean is made of", *hd95_tail(per_case, args.size)]
    if args.data:
        cfg = SplitConfig(seed=args.split_seed, stratify=args.stratify)
        lines += ["", "## Near-duplicates across the run's split", *leaks(per_case, args.data, args.data_size, cfg,
                                                                                 args.split_hash,
                                                                                 args.duplicates == "group")]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
