"""Dominance, Pareto sets and exact hypervolume against hand-computed and brute-force values."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from nasseg.store.pareto import dominates, hypervolume, normalise, normalised_hypervolume, pareto_indices

MAX_MIN = ["maximize", "minimize"]


def test_dominance_respects_directions() -> None:
    assert dominates([0.9, 1.0], [0.8, 2.0], MAX_MIN)
    assert not dominates([0.9, 3.0], [0.8, 2.0], MAX_MIN)
    assert not dominates([0.8, 2.0], [0.8, 2.0], MAX_MIN)  # equal: not strictly better
    assert dominates([0.8, 1.0], [0.8, 2.0], MAX_MIN)


def test_pareto_indices() -> None:
    pts = [[0.9, 5.0], [0.8, 2.0], [0.7, 3.0], [0.95, 9.0], [0.8, 2.0]]
    assert pareto_indices(pts, MAX_MIN) == [0, 1, 3, 4]


def test_hypervolume_hand_computed() -> None:
    assert hypervolume(np.array([[0.5, 0.5], [0.25, 1.0]])) == pytest.approx(0.375)
    assert hypervolume(np.array([[1.0, 1.0, 1.0]])) == pytest.approx(1.0)
    # two boxes 1x1x0.5 and 0.5x0.5x1 overlapping in 0.5x0.5x0.5
    assert hypervolume(np.array([[1, 1, 0.5], [0.5, 0.5, 1]])) == pytest.approx(0.5 + 0.25 - 0.125)
    assert hypervolume(np.array([[0.5, -0.1]])) == 0.0  # outside the reference box
    assert hypervolume(np.zeros((0, 3))) == 0.0


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_brute_force_on_a_grid(m: int) -> None:
    rng = np.random.default_rng(m)
    k = 8  # points on a k-grid so the brute force is exact
    pts = rng.integers(1, k + 1, size=(12, m)) / k
    cells = np.array(list(itertools.product(*[np.arange(k) + 0.5] * m))) / k
    covered = (cells[:, None, :] <= pts[None, :, :]).all(axis=2).any(axis=1)
    assert hypervolume(pts) == pytest.approx(covered.mean())


def test_normalisation_maps_reference_to_zero_and_ideal_to_one() -> None:
    ref, ideal = {"dice": 0.0, "params": 1e6}, {"dice": 1.0, "params": 0.0}
    names, dirs = ["dice", "params"], MAX_MIN
    assert normalise([0.0, 1e6], names, dirs, ref, ideal) == [0.0, 0.0]
    assert normalise([1.0, 0.0], names, dirs, ref, ideal) == [1.0, 1.0]
    assert normalise([0.8, 2.5e5], names, dirs, ref, ideal) == pytest.approx([0.8, 0.75])
    hv = normalised_hypervolume([[0.8, 2.5e5], [0.9, 2e6]], names, dirs, ref, ideal)
    assert hv == pytest.approx(0.6)  # the second point is beyond the params reference


def _stored_study():
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from nasseg.report.testing import new_study
    from nasseg.store import add_trial

    study = new_study(None, "s", "search", [("dice", "maximize"), ("params", "minimize")],
                      reference_point={"dice": 0.0, "params": 100.0}, ideal_point={"dice": 1.0, "params": 0.0})
    dist = {"w": CategoricalDistribution([1, 2, 3, 4, 5])}

    def add(w, values, state=TrialState.COMPLETE, constraints=None, **attrs):
        base = {"arch_id": f"a{w}", "trained": True, "epochs_run": 4}
        add_trial(study, values, state=state, params={"w": w}, distributions=dist,
                  constraints=constraints or {"params": -1.0}, **{**base, **attrs})

    add(1, [0.8, 50.0], metrics={"test": {"dice": 0.7}})                  # front
    add(2, [0.6, 20.0], epochs_run=2, stopped_early=True, metrics={"test": {"dice": 0.5}})  # front, stopped
    add(3, [0.0, 500.0], trained=False, constraints={"params": 400.0})    # infeasible: never in front
    add(1, [0.8, 50.0], reused_from=0)                                    # duplicate: costs nothing
    add(4, None, state=TrialState.FAIL, history=[{"epoch": 1, "dice": 0.1}])  # failed after 1 epoch
    add(5, [0.5, 60.0], metrics={"test": {"dice": 0.9}})                  # dominated by #0 on val
    return study


def test_front_hypervolume_and_budget_curve_of_a_stored_study() -> None:
    from nasseg.search.results import front_trials, hv_curve, hypervolume

    study = _stored_study()
    assert [t.number for t in front_trials(study)] == [0, 1]
    # normalised points (0.8, 0.5) and (0.6, 0.8): 0.8*0.5 + 0.6*(0.8-0.5)
    assert hypervolume(study) == pytest.approx(0.4 + 0.18)
    curve = hv_curve(study)
    assert curve["epochs_spent"].tolist() == [4, 6, 6, 6, 7, 11]
    assert curve["hv"].iloc[0] == pytest.approx(0.4) and curve["hv"].iloc[-1] == pytest.approx(0.58)
    # the same front (chosen on val) with test Dice: (0.7, 0.5) and (0.5, 0.8); #5's better test
    # Dice does not count, validation did not choose it
    assert curve["hv_test"].iloc[0] == pytest.approx(0.35) and curve["hv_test"].iloc[-1] == pytest.approx(0.5)


def test_saved_epochs_counts_only_stopped_trials() -> None:
    from nasseg.bench.live import saved_epochs

    assert saved_epochs(_stored_study(), epochs=4) == 2
