"""Fault injection, searches: nothing feasible, everything diverged, export of a failed
trial, pareto on an empty study, and resumed runs that propose new networks.

Issue 10, cases 3, 4, 5, 6 and 7: exit 0 and an empty front when constraints rejected every
candidate or every trial failed; a diverged trial on the front; a resumed run replaying the
first run's proposals; ``export`` of a failed trial writing a file; ``pareto`` on a study
with no trials ending in ``KeyError``.
"""
from __future__ import annotations

import logging

import pytest
from optuna.trial import TrialState
from test_search_helpers import TINY_SPACE, arch_yaml, make_study

from nasseg.cli import main
from nasseg.report.testing import new_study
from nasseg.search.proposals import distinct_counts, worker_seed
from nasseg.store import locate


def _space(**stages):
    return {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], **stages}}


def test_a_space_with_no_feasible_network_is_refused_before_the_search(tmp_path, capsys):
    """The feasibility estimate (64 random draws) finds no network within max_params: one
    line naming the space, the draws and the limit, exit 2, and no trial is stored."""
    space = {**TINY_SPACE, "constraints": {"input_size": [32, 32], "max_params": 100}}
    study = make_study(tmp_path, space_dict=space, budget={"trials": 2})
    assert main(["search", str(study), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tiny_space.yaml: no feasible network in 64 random draws" in err[0]
    assert "64 params" in err[0] and "> max" in err[0] and "widen the space's constraints" in err[0]
    assert not (tmp_path / "run" / "study.db").exists() or not locate(study).get_trials()


def test_a_space_with_a_small_feasible_fraction_says_so_and_trains_its_budget(tmp_path, capsys):
    """Issue 22: 5 of 100 widths are within max_params (5%; 20 feasible networks with the
    depth and kernel choices). The estimate is stated before any training, with its draws
    and the limit that rejected the others; the search still ends with its budget of trained
    networks, the rejected proposals not counted and not ending it early."""
    space = _space(width={"choice": [4, 6, 8, 10, 12, *range(64, 444, 4)]}, depth={"choice": [1, 2]},
                   block={"type": "conv", "kernel_size": {"choice": [3, 5]}})
    study = make_study(tmp_path, space_dict=space, budget={"trials": 3}, epochs=1)
    assert main(["search", str(study), "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("feasible: about"))
    assert "of tiny (" in line and "random networks valid and within the limits" in line
    assert "params" in line and "most proposals will be rejected before training" in line
    pct = int(line.split("about ")[1].split("%")[0])
    assert 0 < pct < 10
    counts = distinct_counts(locate(study).get_trials(deepcopy=False))
    assert counts["trained"] == 3


def test_an_infeasible_initial_network_is_recorded_and_exports_with_a_warning(tmp_path, capsys, caplog):
    study = make_study(tmp_path, initial_archs=[arch_yaml(tmp_path, "big", 48)], budget={"trials": 1})
    assert main(["search", str(study), "--no-progress"]) == 0
    assert locate(study).trials[0].user_attrs["outcome"] == "infeasible"
    capsys.readouterr()
    assert main(["pareto", str(study), "--all", "--csv", str(tmp_path / "all.csv")]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "all.csv")  # not trained: no Dice shown, its outcome named
    row = table[table["trial"] == 0].iloc[0]
    assert row["state"] == "infeasible" and pd.isna(row["dice"])
    assert set(table["state"]) <= {"trained", "infeasible", "duplicate"}
    with caplog.at_level(logging.WARNING, logger="nasseg"):  # an infeasible trial exports with a warning
        assert main(["export", str(study), "--trial", "0", "-o", str(tmp_path / "a.yaml")]) == 0
    assert "# WARNING: trial 0 is infeasible" in (tmp_path / "a.yaml").read_text()
    assert any("trial 0 is infeasible" in r.getMessage() for r in caplog.records)


def test_every_trial_diverging_exits_3_with_the_reason_and_export_refuses(tmp_path, capsys):
    study = make_study(tmp_path, space_dict=_space(width={"choice": [4, 6]}), budget={"trials": 2},
                       train={"batch_size": 4, "num_threads": 1, "lr": 1e6})
    assert main(["search", str(study), "--no-progress"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no feasible trial" in err and "0 complete" in err
    assert "most common failures: " in err and "'diverged: loss N at epoch N, step N is over" in err
    trials = locate(study).get_trials(deepcopy=False)
    assert trials and all(t.state == TrialState.FAIL for t in trials)  # never COMPLETE, never on a front
    assert main(["export", str(study), "--trial", "0", "-o", str(tmp_path / "f.yaml")]) == 2
    assert "trial 0 is FAIL (diverged" in capsys.readouterr().err
    assert not (tmp_path / "f.yaml").exists()


def test_pareto_on_a_study_without_trials_is_one_line(tmp_path, capsys):
    new_study(f"sqlite:///{tmp_path / 'e.db'}", "e", "search", [("dice", "maximize"), ("params", "minimize")])
    assert main(["pareto", str(tmp_path / "e.db")]) == 3
    assert capsys.readouterr().err.strip() == \
        f"nasseg: error: {tmp_path / 'e.db'}: study e holds no trials yet; run `nasseg search` on its study YAML first"


def test_a_resumed_search_proposes_new_networks(tmp_path):
    space = _space(width={"choice": [4, 6, 8, 10, 12, 14, 16]}, depth={"choice": [1, 2]},
                   block={"type": "conv", "kernel_size": {"choice": [3, 5, 7]}})  # 42 networks
    study = make_study(tmp_path, space_dict=space, budget={"trials": 2}, epochs=1)
    assert main(["search", str(study), "--no-progress"]) == 0
    assert main(["search", str(study), "--no-progress", "--trials", "4"]) == 0
    trials = locate(study).get_trials(deepcopy=False)
    # the first run's random stream is not replayed (it was: the resume re-proposed trial 0);
    # seeded per worker and resume, so this outcome is reproducible
    assert trials[2].params != trials[0].params
    counts = distinct_counts(trials)  # the budget counts trained networks (infeasible ones aside)
    assert counts["trained"] == 4
    assert len({worker_seed(0, w, n) for w in range(4) for n in range(50)}) == 200


@pytest.mark.parametrize("flag", ["--trials", "--workers"])
def test_search_counts_are_checked_before_the_study_is_created(tmp_path, capsys, flag):
    study = make_study(tmp_path)
    assert main(["search", str(study), flag, "-1"]) == 2
    assert not (tmp_path / "run").exists()


def test_resuming_a_search_on_changed_data_is_refused(tmp_path, capsys):
    """Issue 20: a resume after the dataset's files changed mixed trials scored on two
    splits in one front and reused scores from the old data; the study records the data's
    content identity and a resume on other content is refused (exit 2, one line)."""
    from faults import mask_folder
    from PIL import Image

    data = mask_folder(tmp_path / "data", n=8, size=32)
    study = make_study(tmp_path, budget={"trials": 1}, epochs=1,
                       data={"kind": "folder", "path": str(data), "split": {"val_fraction": 0.25}})
    assert main(["search", str(study), "--no-progress"]) == 0
    assert main(["search", str(study), "--no-progress", "--trials", "1"]) == 0  # same data: resumes
    Image.new("L", (32, 32), 7).save(data / "images" / "c3.png")  # one image edited
    capsys.readouterr()
    assert main(["search", str(study), "--no-progress", "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed since study 'tiny' was created" in err[0] and str(data) in err[0]
    assert len(locate(study).get_trials()) >= 1
