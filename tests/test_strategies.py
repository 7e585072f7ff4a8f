"""nasseg's search strategies (nasseg.search.strategies) as Optuna samplers.

Each passes Optuna's packaged sampler conformance suite (optuna.testing.pytest_samplers),
and none re-proposes a configuration it was told about, infeasible ones included.
"""
from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.testing.pytest_samplers import (BasicSamplerTestCase, MultiObjectiveSamplerTestCase,
                                            RelativeSamplerTestCase)

from nasseg.search.strategies import LocalSearchSampler, MOREASampler, PredictorSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

FACTORIES = {
    "local": lambda: LocalSearchSampler(n_startup_trials=3, seed=0),
    "morea": lambda: MOREASampler(population_size=4, sample_size=2, seed=0),
    "predictor": lambda: PredictorSampler(n_startup_trials=3, seed=0),
}


@pytest.mark.parametrize("sampler", list(FACTORIES.values()), ids=list(FACTORIES))
class TestOptunaSuite(BasicSamplerTestCase, RelativeSamplerTestCase, MultiObjectiveSamplerTestCase):
    """Optuna's own sampler tests, parametrised over nasseg's strategies."""


def _grid_objective(trial: optuna.Trial) -> tuple[float, float]:
    a = trial.suggest_categorical("a", ["p", "q", "r"])
    b = trial.suggest_int("b", 0, 3)
    c = trial.suggest_categorical("c", [1, 2])
    if a == "q":                      # a conditional parameter
        trial.suggest_categorical("d", ["x", "y"])
    return b + c + (a == "r"), float(b * c)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_never_reproposes_a_known_configuration(name):
    """32 configurations (a conditional parameter under a == "q"): 32 trials visit each once."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=FACTORIES[name]())
    study.optimize(_grid_objective, n_trials=32)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_infeasible_proposal_is_not_proposed_again(name):
    """A trial told infeasible (Trial.set_constraint > 0) is known: 11 more trials over a
    12-point space propose the 11 others, none of them the infeasible one."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=FACTORIES[name]())
    for v in range(3):                              # feasible results first, so strategies leave startup
        t = study.ask()
        x, y = t.suggest_int("x", 0, 3), t.suggest_categorical("y", ["u", "v", "w"])
        study.tell(t, [x, 0.0])
    bad = study.ask({"x": optuna.distributions.IntDistribution(0, 3),
                     "y": optuna.distributions.CategoricalDistribution(["u", "v", "w"])})
    bad.set_constraint("macs", 1.0)
    study.tell(bad, state=optuna.trial.TrialState.FAIL)
    for _ in range(12 - 4):
        t = study.ask()
        x, y = t.suggest_int("x", 0, 3), t.suggest_categorical("y", ["u", "v", "w"])
        assert (x, y) != (bad.params["x"], bad.params["y"])
        study.tell(t, [x, float(y == "w")])
    keys = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(keys)) == 12 == len(list(itertools.product(range(4), "uvw")))


def test_local_search_climbs_to_the_single_objective_optimum():
    """Separable 5x5x5 space: first-improvement local search from the worst corner reaches
    the optimum in far fewer than the 125 evaluations of exhaustive search."""
    study = optuna.create_study(direction="maximize", sampler=LocalSearchSampler(n_startup_trials=1, seed=1))
    study.enqueue_trial({"a": 0, "b": 0, "c": 0})
    study.optimize(lambda t: sum(t.suggest_int(k, 0, 4) for k in "abc"), n_trials=40)
    assert study.best_value == 12


@pytest.mark.parametrize("name", ["local", "morea", "predictor"])
def test_study_config_names_each_strategy(name):
    """`sampler: {name: local|morea|predictor}` builds the strategy, and it pickles (Ray)."""
    import pickle

    from nasseg.search.samplers import make_sampler
    from nasseg.search.space_parse import load_space
    from nasseg.search.study import StudyConfig

    cfg = StudyConfig(name="s", space="search_spaces/quickstart_2d.yaml", epochs=1, budget={"trials": 3},
                      sampler={"name": name})
    sampler = make_sampler(cfg, load_space("search_spaces/quickstart_2d.yaml"))
    assert type(pickle.loads(pickle.dumps(sampler))) is type(sampler)
