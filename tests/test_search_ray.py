"""The Ray Tune backend: a real local Ray instance, 2 concurrent trials, read back by pareto."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from optuna.trial import TrialState
from test_search_helpers import TINY_SPACE, make_study

from nasseg.cli import main
from nasseg.search.results import open_result

pytest.importorskip("ray.tune")


def test_ray_backend_two_workers_then_pareto(tmp_path: Path, capsys) -> None:
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 5, 6, 7, 48]},
                                      "block": {"type": "conv", "kernel_size": {"choice": [3, 5]}}}}
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trials": 4}, sampler="nsga2",
                            objectives=["dice", "params", "macs"],
                            reference_point={"macs": 0.01})
    code = main(["search", str(study_yaml), "--backend", "ray", "--workers", "2", "--no-progress"])
    assert code == 0
    everything = open_result(study_yaml).trials
    # the budget counts trained networks: 4 distinct ones; proposals over the limit or of a
    # network already trained (or training) were screened in the driver and never ran in Ray
    trials = [t for t in everything if t.user_attrs["outcome"] == "trained"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({t.user_attrs["arch_id"] for t in trials}) == 4
    assert all(t.user_attrs["outcome"] in ("infeasible", "duplicate") and "worker" not in t.user_attrs
               for t in everything if t not in trials)
    # sampled in this process (the driver), run in Ray worker processes
    assert {t.user_attrs["owner"]["pid"] for t in everything} == {os.getpid()}
    workers = {t.user_attrs["worker"] for t in trials}
    assert all(w.startswith("ray pid ") for w in workers) and str(os.getpid()) not in " ".join(workers)
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # two trials ran at the same time
    capsys.readouterr()
    assert main(["pareto", str(study_yaml)]) == 0
    out = capsys.readouterr().out
    assert "tiny: Pareto set" in out and "conv x3" in out


def test_a_resumed_ray_search_proposes_new_networks(tmp_path: Path, capsys) -> None:
    """The Ray searcher seeds its sampler per resume (study seed, stored trials), as Optuna
    workers do: seeded by the study seed alone, the resumed run re-proposed its first networks."""
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 5, 6, 7, 8, 9, 10, 11]},
                                      "block": {"type": "conv", "kernel_size": {"choice": [3, 5, 7]}}}}
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trials": 2}, epochs=1)
    assert main(["search", str(study_yaml), "--backend", "ray", "--workers", "1", "--no-progress"]) == 0
    assert main(["search", str(study_yaml), "--backend", "ray", "--workers", "1", "--trials", "4",
                 "--no-progress"]) == 0
    trials = [t for t in open_result(study_yaml).trials if t.user_attrs["outcome"] == "trained"]
    ids = [t.user_attrs["arch_id"] for t in trials]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len(set(ids)) == 4, ids


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_ray_backend_other_samplers_then_pareto(tmp_path: Path, sampler: str, capsys) -> None:
    """Every sampler nasseg offers runs under Ray with 2 workers (nsga2 is the test above):
    Tune pickles the searcher, and optuna 5.1's NSGA-II sampler holds a thread lock."""
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 5, 6, 7, 48]}}}
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trials": 3}, sampler=sampler, epochs=1)
    assert main(["search", str(study_yaml), "--backend", "ray", "--workers", "2", "--no-progress"]) == 0
    trained = [t for t in open_result(study_yaml).trials if t.user_attrs["outcome"] == "trained"]
    assert [t.state for t in trained] == [TrialState.COMPLETE] * 3
    capsys.readouterr()
    assert main(["pareto", str(study_yaml)]) == 0
    assert "tiny: Pareto set" in capsys.readouterr().out


@pytest.mark.parametrize("sampler", ["nsga2", "nsga3", "tpe", "gp", "random", "grid"])
def test_the_ray_searcher_pickles_and_reopens_its_study(tmp_path: Path, sampler: str) -> None:
    import pickle

    from nasseg.search.ray_backend import NassegSearcher
    from nasseg.search.setup import open_study, prepare

    prep = prepare(make_study(tmp_path, sampler=sampler))
    searcher = NassegSearcher(prep, open_study(prep, create=True), metric=["dice"], mode=["max"])
    back = pickle.loads(pickle.dumps(searcher))
    assert back.study.study_name == searcher.study.study_name
    assert type(back.study.sampler) is type(searcher.study.sampler)
