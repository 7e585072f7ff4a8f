"""Trials against a real SQLite/journal storage and the real trainer (counted, never mocked)."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from test_search_helpers import TINY_SPACE, CountingTrainer, arch_yaml, make_study

from nasseg.arch import arch_id, load_arch
from nasseg.search.proposals import REUSE_STREAK
from nasseg.search.results import open_result
from nasseg.search.runner import run_search
from nasseg.train import TrainingFailed

STUDY_ATTRS = {"nasseg_kind", "format", "config", "objectives", "reference_point", "ideal_point", "dataset",
               "versions", "command", "created"}
TRIAL_ATTRS = {"arch", "arch_id", "cost", "history", "stopped_early", "stop_reason", "seed", "split",
               "per_case", "train_seconds", "best", "metrics", "checkpoint"}


def test_over_budget_is_not_trained_duplicates_are_reused_and_attrs_stored(tmp_path: Path) -> None:
    small, big = arch_yaml(tmp_path, "small", 4), arch_yaml(tmp_path, "big", 48)
    study_yaml = make_study(tmp_path, initial_archs=[small, big], budget={"trials": 5})
    trainer = CountingTrainer()
    summary = run_search(study_yaml, trainer=trainer, progress=False, command="pytest")
    # the space holds 2 networks: the budget of 5 trained ones is never met; the infeasible
    # one and re-proposals of the trained one use up none of it, and a run of
    # REUSE_STREAK re-proposals of known networks ends the search
    assert summary["trained"] == 1 and summary["outcomes"]["trained"] == 1
    assert summary["infeasible"] + summary["duplicate"] == summary["proposals"] - 1 >= REUSE_STREAK
    assert summary["infeasible"] >= 1 and summary["duplicate"] >= 1 and summary["invalid"] == 0
    # every proposal's screening is timed; it is a part of the study's wall time
    assert 0 < summary["screen_seconds"] < summary["wall_seconds"]
    # only one architecture is feasible and it is trained exactly once
    assert trainer.calls == [arch_id(load_arch(small))]

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert STUDY_ATTRS <= set(study.user_attrs)
    assert study.user_attrs["objectives"] == [{"name": "dice", "direction": "maximize"},
                                              {"name": "params", "direction": "minimize"}]
    assert study.user_attrs["reference_point"] == {"dice": 0.0, "params": 60000.0}
    assert study.user_attrs["format"] == 2 and study.metric_names == ["dice", "params"]
    t0, t1, *rest = study.trials
    assert t0.user_attrs["initial_arch"] == small and t1.user_attrs["initial_arch"] == big
    assert TRIAL_ATTRS <= set(t0.user_attrs)
    assert t0.user_attrs["arch_id"] == arch_id(load_arch(small))
    assert len(t0.user_attrs["history"]) == 2 and 0 <= t0.values[0] <= 1
    assert t0.values[1] == t0.user_attrs["cost"]["params"]
    assert t0.user_attrs["split"]["n_train"] + t0.user_attrs["split"]["n_val"] + t0.user_attrs["split"].get("n_test", 2) == 8
    # the over-budget network: costs and constraint values recorded, no training
    assert t1.user_attrs["trained"] is False and "history" not in t1.user_attrs
    assert (t0.user_attrs["outcome"], t1.user_attrs["outcome"]) == ("trained", "infeasible")
    assert "params" in t1.user_attrs["constraint_violation"]
    assert t1.constraints["params"] > 0 >= t0.constraints["params"]  # Optuna sees the constraint
    for t in rest:  # later trials repeat one of the two networks
        assert t.user_attrs.get("reused_from") == 0 or t.user_attrs["trained"] is False
    assert any(t.user_attrs.get("reused_from") == 0 for t in rest)
    # resuming with the budget met runs nothing
    again = run_search(study_yaml, trainer=trainer, progress=False)
    assert again["counted"] == summary["counted"] and len(trainer.calls) == 1


def test_failures_are_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 5]}}}
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trials": 3}, sampler="grid")

    def failing(arch, data, cfg, **kw):
        raise TrainingFailed("non-finite loss at epoch 1, step 1")

    summary = run_search(study_yaml, trainer=failing, progress=False)
    assert summary["states"] == {"fail": 2}  # the grid has 2 points: it stops when they are done
    assert summary["outcomes"] == {"failed": 2}
    reasons = [t.user_attrs["fail_reason"] for t in open_result(study_yaml).trials]
    assert reasons == ["non-finite loss at epoch 1, step 1"] * 2


def test_an_invalid_proposal_is_recorded_as_invalid_and_uses_no_budget(tmp_path: Path) -> None:
    """A space can no longer express an invalid network through its own choices; a network
    that still fails to validate is recorded as ``invalid`` with its reason, never trained,
    and not counted against the budget."""
    from nasseg.errors import ConfigError
    from nasseg.search.objective import Outcome, screen
    from nasseg.search.proposals import budget_used
    from nasseg.search.runner import tell
    from nasseg.search.setup import open_study, prepare
    from nasseg.store import TrialWriter, outcome

    prep = prepare(make_study(tmp_path))
    study = open_study(prep, create=True)
    writer = TrialWriter(study.ask())

    def invalid():
        raise ConfigError("stages.0.decoder_depth: 0 needs a skip that fuses to the stage width")

    result = screen(prep.setup, writer, study, invalid, "cpu")
    assert isinstance(result, Outcome) and result.state == "fail"
    tell(study, writer.number, result)
    (t,) = study.get_trials()
    assert outcome(t) == "invalid" and t.user_attrs["fail_reason"].startswith("invalid network: stages.0")
    assert budget_used([t]) == (0, 1)


@pytest.mark.parametrize(("amp", "precision"), [("off", "fp32"), ("fp16", "fp16"), ("auto", "fp32")])
def test_screening_profiles_at_the_workers_device_and_the_runs_precision(tmp_path: Path, monkeypatch,
                                                                         amp: str, precision: str) -> None:
    """The cost profile is told the worker's resolved device and the precision the trial's
    run trains at (``train.amp`` through resolve_run's rule); it decides neither itself
    (it timed CUDA under bf16 whenever the GPU had it, ``amp: off`` or not)."""
    from nasseg.search import objective
    from nasseg.search.setup import open_study, prepare
    from nasseg.store import TrialWriter

    device = "cpu" if amp == "auto" else "cuda:0"  # fp32 and fp16 on CUDA are decided without a GPU
    prep = prepare(make_study(tmp_path, train={"batch_size": 4, "num_threads": 1, "amp": amp}))
    study = open_study(prep, create=True)
    seen = []

    def profile(cfg, shape, **kw):
        seen.append(kw)
        raise ValueError("stop after the profile call")

    monkeypatch.setattr(objective, "profile", profile)
    arch = load_arch(arch_yaml(tmp_path, "a", 4))
    result = objective.screen(prep.setup, TrialWriter(study.ask()), study, lambda: arch, device)
    assert result.state == "fail" and [(kw["device"], kw["precision"]) for kw in seen] == [(device, precision)]

def test_real_nan_loss_fails_the_trial_with_its_reason(tmp_path: Path) -> None:
    study_yaml = make_study(tmp_path, budget={"trials": 1},
                            initial_archs=[arch_yaml(tmp_path, "small", 4)],
                            train={"batch_size": 4, "num_threads": 1, "lr": 1.0e+30})
    summary = run_search(study_yaml, progress=False)
    assert summary["states"] == {"fail": 1}
    (t,) = open_result(study_yaml).trials
    assert "non-finite loss" in t.user_attrs["fail_reason"]


def test_journal_storage_and_changed_study_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "j" / "study.log"
    study_yaml = make_study(tmp_path, storage=f"journal://{log}", budget={"trials": 1},
                            initial_archs=[arch_yaml(tmp_path, "small", 4)])
    assert run_search(study_yaml, progress=False)["states"] == {"complete": 1}
    assert log.exists()
    study = open_result(str(log))
    assert study.user_attrs["nasseg_kind"] == "search" and len(study.trials) == 1
    changed = make_study(tmp_path, storage=f"journal://{log}", epochs=3, budget={"trials": 2})
    from nasseg.errors import ConfigError

    with pytest.raises(ConfigError, match="was created with a different train"):
        run_search(changed, progress=False)


def test_trial_epoch_budget_counts_trained_epochs_only(tmp_path: Path) -> None:
    from nasseg.search.results import epochs_trained

    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 6]}}}
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trial_epochs": 3}, sampler="random")
    trainer = CountingTrainer()
    run_search(study_yaml, trainer=trainer, progress=False)
    trials = open_result(study_yaml).trials
    assert sum(epochs_trained(t) for t in trials) == 4  # 2 + 2: the second trial starts at 2 < 3
    assert len(trainer.calls) == 2 and epochs_trained(trials[-1]) == 2


def test_resume_check_tolerates_new_config_fields_but_not_changed_values() -> None:
    from nasseg.search.setup import _relevant_data, _same

    assert _same({"lr": 0.1, "split": {"seed": 0}}, {"lr": 0.1, "split": {"seed": 0, "new_field": 1}})
    assert not _same({"lr": 0.1, "split": {"seed": 0}}, {"lr": 0.1, "split": {"seed": 1}})
    folder = {"kind": "folder", "path": "/d", "synthetic": {"n_cases": 96}}
    assert _relevant_data(folder) == {"kind": "folder", "path": "/d"}  # generator defaults don't matter
