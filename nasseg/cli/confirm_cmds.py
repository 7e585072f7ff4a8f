"""Sub-command ``nasseg confirm``: re-train a search's Pareto members over several seeds and
score them on the test split (see :mod:`nasseg.search.confirm`).

Examples::

    nasseg confirm studies/quickstart.yaml              # Pareto members x 3 seeds
    nasseg confirm studies/search_dsb2018.yaml --top 5 --seeds 5
    nasseg confirm studies/busi.yaml --against cmunext_s --seeds 5   # cheaper members vs the preset
"""
from __future__ import annotations

import argparse
from typing import Any

from nasseg.cli.console import quiet_libraries
from nasseg.cli.vocabulary import add_no_progress


def register(sub: Any) -> None:
    """Add ``confirm`` to the ``nasseg`` command line."""
    p = sub.add_parser("confirm", help="re-train a search's Pareto set over seeds and score it on the test split",
                       description="Re-train the Pareto members (or the top K by validation Dice) of a search "
                                   "with several seeds and score them once on the test split, which the search "
                                   "never saw; stores validation and confirmed test Dice (95% CI) side by side, "
                                   "which members stay on the front, and the hypervolume of confirmed values. "
                                   "With --against NAME (a preset or architecture YAML the study trained, e.g. "
                                   "one of its initial_archs): only the members that cost no more than NAME on "
                                   "every cost objective, plus NAME itself as the reference, each member's test "
                                   "Dice difference to it (mixed model, Holm-adjusted p) and a verdict: found or "
                                   "not found, a network at <= NAME's cost with a 95% CI above 0.")
    p.add_argument("study", help="the search study YAML")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per member (default 3)")
    p.add_argument("--top", type=int, help="confirm the top K by validation Dice instead of the Pareto set "
                                           "(default: the Pareto set)")
    p.add_argument("--epochs", type=int, help="override the study's epochs (default: the study's)")
    p.add_argument("--against", metavar="NAME", help="a preset or architecture YAML that is one of the study's "
                                                     "trials: confirm only the members costing no more than it, "
                                                     "and compare each with it (default: no reference)")
    add_no_progress(p)
    p.set_defaults(func=run_confirm)


def run_confirm(args: argparse.Namespace) -> int:
    from nasseg.search.confirm import confirm_search, interval_note  # lazy: CLI startup (pandas)

    quiet_libraries(args)
    res = confirm_search(args.study, seeds=args.seeds, top=args.top, epochs=args.epochs, against=args.against,
                         progress=not args.no_progress)
    t = res.table
    if t.empty:  # --against with no member at the reference's cost: the verdict says so, nothing trained
        return 0
    vs = "is_reference" in t
    print(f"\n{'trial':>5}  {'val Dice':>8}  {'test Dice [95% CI]':>26}  seeds  on front (val -> test)"
          + ("  vs reference [95% CI]  p (Holm)" if vs else ""))
    for _, r in t.iterrows():
        line = (f"{int(r['trial']):>5}  {r['val_dice']:8.4f}  {r['test_dice']:.4f} [{r['test_ci_low']:.4f}, "
                f"{r['test_ci_high']:.4f}]  {int(r['n_seeds']):>5}  "
                f"{'yes' if r['on_val_front'] else 'no'} -> {'yes' if r['stays_on_front'] else 'no'}")
        if vs and r["is_reference"]:
            line += f"  reference ({args.against})"
        elif vs:
            p = "-" if r["p_holm"] != r["p_holm"] else f"{r['p_holm']:.3g}"
            line += f"  {r['diff_vs_ref']:+.4f} [{r['diff_ci_low']:+.4f}, {r['diff_ci_high']:+.4f}]  {p}"
        print(line)
    print(f"test Dice: {interval_note(t)}")
    print(f"normalised hypervolume of these members: val {res.hv_val:.4f}, confirmed test {res.hv_test:.4f}")
    if vs:
        print(f"reference: trial {res.reference} is {args.against}; the others cost no more than it on every "
              "cost objective (differences = member - reference, paired on seeds and test cases)")
        print(res.verdict)
    print(f"per-case test results: {res.out_dir / 'per_case.csv'} (nasseg stats input); "
          f"summary: {res.out_dir / 'confirm.csv'}")
    return 0
