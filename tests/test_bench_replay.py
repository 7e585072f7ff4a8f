"""Replay against a tiny constructed table; the MO-ASHA rung rule on constructed curves."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nasseg.bench.replay import Snapper, replay, front_test_hv
from nasseg.bench.table import NotInTable, Table
from nasseg.search.mofidelity import RungRule, nondominated_ranks, priority
from nasseg.search.space_parse import parse_space
from nasseg.search.stopping import Curve

SPACE = {"name": "tiny", "spatial_dims": 2, "stages": {"n": 3, "width": [8, 16, 32], "depth": 1,
         "block": {"type": "conv", "kernel_size": {"choice": [3, 5]}}, "skip": {"type": "concat"}}}
# four archs: kernel 3/5 per the tied leaf would give 2; use width base via kernel only + costs
VAL = {"a": [0.30, 0.50, 0.60, 0.70], "b": [0.10, 0.20, 0.25, 0.30], "c": [0.40, 0.55, 0.65, 0.72],
       "d": [0.05, 0.10, 0.12, 0.15]}
COSTS = {"a": (1.0, 4e5), "b": (2.0, 8e5), "c": (0.5, 2e5), "d": (2.5, 9e5)}


def tiny_table() -> Table:
    rows = []
    for k, (aid, curve) in enumerate(VAL.items()):
        for seed in (0, 1):
            for e, v in enumerate(curve, start=1):
                rows.append({"arch_id": aid, "seed": seed, "epoch": e, "val_dice": v + 0.01 * seed,
                             "test_dice": v - 0.02, "params": COSTS[aid][1], "gmacs": COSTS[aid][0],
                             "order": k, "space_params": json.dumps({"stages.block.kernel_size": 3 + 2 * (k % 2),
                                                                     "x": k})})
    return Table.from_frame(pd.DataFrame(rows), "tiny")


def test_replay_returns_the_recorded_curve_and_refuses_unknown_archs():
    t = tiny_table()
    val, test = t.curve("c", seed=1)
    assert np.allclose(val, np.array(VAL["c"]) + 0.01) and np.allclose(test, np.array(VAL["c"]) - 0.02)
    with pytest.raises(NotInTable, match="not in the table"):
        t.curve("zzz", seed=0)
    with pytest.raises(NotInTable, match="seed 7"):
        t.curve("a", seed=7)


def test_incomplete_runs_are_dropped():
    t = tiny_table()
    df = pd.DataFrame({"arch_id": ["e"], "seed": [0], "epoch": [1], "val_dice": [0.9], "test_dice": [0.9],
                       "params": [1.0], "gmacs": [1.0]})
    assert "e" not in Table.from_frame(pd.concat([pd.DataFrame({
        "arch_id": t.arch_ids[0], "seed": 0, "epoch": [1, 2, 3, 4], "val_dice": VAL["a"], "test_dice": VAL["a"],
        "params": 1.0, "gmacs": 1.0}), df])).arch_ids


def test_nondominated_sorting_and_priority():
    pts = np.array([[0.9, -1.0], [0.5, -0.5], [0.4, -2.0], [0.95, -0.4]])
    assert nondominated_ranks(pts).tolist() == [1, 1, 2, 0]
    assert priority(pts)[0] == 3


def test_rung_rule_promotes_by_nondominated_sorting_with_known_costs():
    rule = RungRule(r_min=1, eta=2)
    assert rule.rungs(4) == [1, 2] and rule.rungs(8) == [1, 2, 4]
    earlier = [Curve(0, "a", (1.0,), {1: 0.6, 2: 0.7}), Curve(1, "b", (1.0,), {1: 0.7, 2: 0.8})]
    # dominated by both (same cost, lower Dice): rank 3 of 3, top ceil(3/2) = 2 continue -> stop
    assert rule.decide(Curve(2, "c", (1.0,), {1: 0.5}), 1, earlier, 4)[0]
    # low Dice but the cheapest: non-dominated at rung 1 -> continues (costs known at t=0)
    assert not rule.decide(Curve(2, "d", (0.1,), {1: 0.2}), 1, earlier, 4)[0]
    # epoch 3 is not a rung, and the last epoch never is
    assert not rule.decide(Curve(2, "c", (1.0,), {1: 0.5, 2: 0.5, 3: 0.5}), 3, earlier, 4)[0]
    assert not rule.decide(Curve(2, "c", (1.0,), {4: 0.1}), 4, earlier, 4)[0]
    # the first result at a rung always continues; later trials do not count
    assert not rule.decide(Curve(0, "a", (1.0,), {1: 0.1}), 1, [Curve(5, "z", (0.1,), {1: 0.9})], 4)[0]


@pytest.mark.parametrize("strategy", ["random", "random+moasha", "random+pareto", "local+moasha", "morea+moasha",
                                      "predictor+moasha"])
def test_replay_counts_epochs_as_live(strategy):
    t = tiny_table()
    space = parse_space(SPACE, "tiny.yaml")
    run = replay(t, space, strategy, seed=0, budget=9)
    trained = [x for x in run.trials if not x.reused]
    assert run.spent == sum(x.epochs_run for x in trained)           # an early stop costs what it ran
    assert all(x.spent_after - x.epochs_run < 9 for x in trained)    # a trial starts only below budget
    for x in trained:                                                # result = best val epoch, its test
        val, test = t.val[x.arch, 0, : x.epochs_run], t.test[x.arch, 0, : x.epochs_run]
        assert x.val == val.max() and x.test == test[int(np.argmax(val))]
    if strategy == "random+moasha":   # with every arch tried, "d" (dominated by all) is stopped early
        full = replay(t, space, strategy, seed=0, budget=16)
        d = t.lookup("d")
        assert any(x.arch == d and x.epochs_run < t.epochs for x in full.trials) or full.trials[0].arch == d


def test_snapper_and_optuna_samplers_stay_in_the_table():
    t = tiny_table()
    d = Snapper(t).distances({"stages.block.kernel_size": 5, "x": 3})
    assert int(np.argmin(d)) == 3 and d.min() == 0
    space = parse_space(SPACE, "tiny.yaml")
    run = replay(t, space, "tpe+moasha", seed=1, budget=12)
    assert {x.arch for x in run.trials} <= set(range(len(t))) and run.spent >= 12 or len(
        {x.arch for x in run.trials if not x.reused}) == len(t)
    ref = {"dice": 0.0, "macs": 3.0, "params": 1e6}
    assert 0 < front_test_hv(t, run.trials, ref) < 1


def test_bench_search_replay_cli_writes_the_report(tmp_path, capsys):
    from nasseg.cli import main

    rows = []
    for aid, curve in VAL.items():
        for seed in (0, 1):
            rows += [{"arch_id": aid, "seed": seed, "epoch": e, "val_dice": v, "test_dice": v - 0.01 * seed,
                      "params": COSTS[aid][1], "gmacs": COSTS[aid][0]} for e, v in enumerate(curve, 1)]
    path = tmp_path / "tiny.csv.gz"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "report"
    assert main(["bench", "search", "--replay", str(path), "--replay-seeds", "4", "--budget", "8",
                 "--strategies", "random", "random+moasha", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| random+moasha |" in text and "Holm" in text
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["budget_epochs"] == 8 and res["settings"]["n_seeds"] == 4
    assert {"summary.md", "hv_curve.csv", "hv_vs_budget.html"} <= {p.name for p in out.iterdir()}


def test_the_bar_needs_both_the_gain_and_the_test():
    from nasseg.bench.search_report import meets

    def v(ratio, p, reach, mean=0.3):
        return {"hv": {"0.5": {"ratio_to_random": ratio, "p_holm": p, "mean": mean}},
                "reach_random_final_epochs": reach}

    assert meets(v(1.35, 0.01, None), 40)
    assert meets(v(1.1, 0.01, 20), 40)            # random's final HV with half the budget
    assert not meets(v(1.35, 0.2, None), 40)      # not significant
    assert not meets(v(1.1, 0.01, 21), 40)


def test_the_replayed_default_is_the_study_default():
    from nasseg.bench.replay import parse_strategy
    from nasseg.search.study import EarlyStoppingConfig, SamplerConfig

    sampler, stops = parse_strategy("default")
    assert (sampler, stops) == (SamplerConfig().name, [EarlyStoppingConfig().rule])
    assert EarlyStoppingConfig().enabled
