"""Budgets are counted the same in a replayed and a live search.

A small live study (real trainer, generated data, Pareto-aware stopping, a budget in
training epochs) is run; its trials' curves become a table; replaying the same
architecture sequence with the same stopping rule must train each trial for the same
number of epochs, spend the same budget and stop after the same trial.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_search_helpers import make_study

from nasseg.bench.replay import replay
from nasseg.bench.table import Table
from nasseg.search.proposals import used_up
from nasseg.search.results import open_result
from nasseg.store import epochs_trained, trial_record
from nasseg.search.runner import run_search
from nasseg.search.study import EarlyStoppingConfig

SPACE = {"name": "tiny", "spatial_dims": 2,
         "stages": {"n": 3, "width": {"choice": [4, 6, 8]}, "depth": 1,
                    "block": {"type": "conv", "kernel_size": {"choice": [3, 5]}}, "skip": {"type": "concat"}},
         "constraints": {"input_size": [32, 32], "max_params": 1000000, "max_gmacs": 1.0}}
RULES = {"pareto": {"enabled": True, "rule": "pareto", "warmup_epochs": 1, "min_dominators": 1, "margin": 0.0},
         "moasha": {"enabled": True, "rule": "moasha", "r_min": 1, "eta": 2}}


@pytest.mark.parametrize("rule", ["pareto", "moasha"])
def test_replay_spends_the_budget_like_the_live_search(tmp_path: Path, rule: str) -> None:
    RULE = RULES[rule]
    study_yaml = make_study(tmp_path, space_dict=SPACE, objectives=["dice", "macs", "params"],
                            budget={"trial_epochs": 10}, epochs=3, early_stopping=RULE)
    run_search(study_yaml, progress=False)
    live = sorted(open_result(study_yaml).trials, key=lambda t: t.number)
    rows = []
    records = [trial_record(t) for t in live]
    for r in records:
        if r.reused_from is not None or not r.trained:
            continue
        dice = [h["dice"] for h in r.history]
        dice += [dice[-1]] * (3 - len(dice))       # epochs a stopped trial never ran: never read
        rows += [{"arch_id": r.arch_id, "seed": 0, "epoch": e, "val_dice": d, "test_dice": d,
                  "params": r.cost["params"], "gmacs": r.cost["macs"] / 1e9} for e, d in enumerate(dice, 1)]
    table = Table.from_frame(pd.DataFrame(rows), "live")
    order = [r.arch_id for r in records]
    run = replay(table, None, f"random+{rule}", seed=0, budget=10, initial=order,
                 early_stopping=EarlyStoppingConfig(**RULE))
    assert any(r.stopped_early for r in records)      # the rule did stop a trial
    assert [x.epochs_run for x in run.trials] == [epochs_trained(t) for t in live]
    # the budget is spent, unless the 6-network space was used up first (see search/proposals.py)
    assert run.spent == sum(epochs_trained(t) for t in live) >= (1 if used_up(live) else 10)
    assert [table.arch_ids[x.arch] for x in run.trials] == order
