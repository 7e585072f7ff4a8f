"""The Pareto-aware stopping rule on constructed curves."""
from __future__ import annotations

from nasseg.search.stopping import Curve, ParetoStopper, dominators, should_stop
from nasseg.search.study import EarlyStoppingConfig

RULE = EarlyStoppingConfig(enabled=True, rule="pareto", warmup_epochs=2, min_dominators=2, margin=0.05)


def curve(trial: int, arch: str, costs: tuple[float, ...], *dice: float) -> Curve:
    return Curve(trial, arch, costs, {e: d for e, d in enumerate(dice, start=1)})


# three earlier trials: two cheap and good, one expensive and better
EARLIER = [
    curve(0, "a", (1.0, 100.0), 0.50, 0.70, 0.80, 0.85),
    curve(1, "b", (0.8, 90.0), 0.40, 0.65, 0.75, 0.80),
    curve(2, "c", (5.0, 500.0), 0.60, 0.80, 0.90, 0.92),
]


def test_a_costlier_worse_trial_is_stopped_after_warmup() -> None:
    t = curve(3, "t", (2.0, 200.0), 0.20, 0.30)
    assert should_stop(t, 1, EARLIER, RULE) == (False, None)  # warm-up
    stop, reason = should_stop(t, 2, EARLIER, RULE)
    assert stop
    assert "epoch 2" in reason and "#0" in reason and "#1" in reason and "#2" not in reason


def test_cost_matters_a_cheaper_trial_is_not_dominated() -> None:
    cheap = curve(3, "t", (0.5, 50.0), 0.20, 0.30)  # worse Dice, but cheaper than everyone
    assert dominators(cheap, 2, EARLIER, RULE.margin) == []
    assert should_stop(cheap, 2, EARLIER, RULE)[0] is False


def test_margin_and_min_dominators() -> None:
    close = curve(3, "t", (2.0, 200.0), 0.20, 0.62)  # within 0.05 of #1 (0.65) -> only #0 counts
    assert [c.trial for c in dominators(close, 2, EARLIER, 0.05)] == [0]
    assert should_stop(close, 2, EARLIER, RULE)[0] is False
    assert should_stop(close, 2, EARLIER, RULE.model_copy(update={"min_dominators": 1}))[0] is True
    assert should_stop(close, 2, EARLIER, RULE.model_copy(update={"margin": 0.0}))[0] is True


def test_uses_running_best_and_only_comparable_trials() -> None:
    # its best so far (0.75 at epoch 1) counts, not the dip at epoch 2
    dip = curve(3, "t", (2.0, 200.0), 0.75, 0.10)
    assert dominators(dip, 2, EARLIER, 0.05) == []  # with the raw 0.10, #0 and #1 would dominate
    assert should_stop(dip, 2, EARLIER, RULE)[0] is False
    t = curve(3, "t", (2.0, 200.0), 0.1, 0.1, 0.1)
    others = [
        curve(0, "t", (1.0, 1.0), 0.9, 0.9, 0.9),      # same architecture: not evidence
        curve(1, "x", (1.0, 1.0), 0.9),                # stopped before epoch 2: not comparable there
        curve(4, "y", (1.0, 1.0), 0.9, 0.9, 0.9),      # a later trial: not "earlier"
        curve(2, "z", (1.0, 1.0), 0.9, 0.9, 0.9),
        curve(5, "z", (1.0, 1.0), 0.9, 0.9, 0.9),      # same arch as #2 counted once
    ]
    assert [c.trial for c in dominators(t, 2, others, 0.05)] == [2]


def test_switched_off_never_stops() -> None:
    t = curve(3, "t", (2.0, 200.0), 0.0, 0.0, 0.0)
    off = RULE.model_copy(update={"enabled": False})
    assert should_stop(t, 3, EARLIER, off) == (False, None)


def test_without_cost_objectives_it_compares_dice_only() -> None:
    others = [curve(0, "a", (), 0.5, 0.6), curve(1, "b", (), 0.5, 0.7)]
    assert should_stop(curve(2, "t", (), 0.1, 0.2), 2, others, RULE)[0]
    assert not should_stop(curve(2, "t", (), 0.1, 0.6), 2, others, RULE)[0]


def test_stopper_callback_records_curve_reads_others_and_spares_the_last_epoch() -> None:
    calls = []

    def load():
        calls.append(1)
        return EARLIER

    stopper = ParetoStopper(RULE, Curve(3, "t", (2.0, 200.0)), load, epochs=4)
    assert stopper(1, {"dice": 0.2}) is False and calls == []  # warm-up: storage not even read
    assert stopper(2, {"dice": 0.3}) is True
    assert stopper.curve.dice == {1: 0.2, 2: 0.3}
    assert stopper.reason.startswith("pareto: at epoch 2 Dice 0.300 is dominated by 2 earlier trials")
    last = ParetoStopper(RULE, Curve(3, "t", (2.0, 200.0)), load, epochs=2)
    last(1, {"dice": 0.2})
    assert last(2, {"dice": 0.3}) is False  # stopping after the last epoch saves nothing
