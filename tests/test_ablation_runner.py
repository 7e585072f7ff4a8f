"""``nasseg ablate`` end to end on tiny synthetic data: real training, real Optuna storage,
crash recovery, resumption, and the statistics table checked against the stored runs."""
from __future__ import annotations

import socket
import subprocess

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from nasseg.ablation.config import load_ablation
from nasseg.ablation.results import analyze
from nasseg.ablation.runner import run_ablation
from nasseg.ablation.stats import fit_crossed
from nasseg.cli import main
from nasseg.errors import ConfigError
from nasseg.store import fail_reason

STUDY = {
    "name": "tiny",
    "base": "cmunext_s",
    "factors": {"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]}},
    "seeds": [0, 2],  # seed 1's initial networks predict no foreground after 1 epoch: degenerate runs fail
    "data": {"kind": "synthetic", "size": 32, "synthetic": {"n_cases": 12}, "split": {"seed": 5}},
    "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "num_threads": 1},
    "stats": {"bootstrap": {"n_resamples": 200}},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Run the study in three goes: one run, a simulated crash, then the rest."""
    tmp = tmp_path_factory.mktemp("ablate")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "out_dir": str(tmp / "out")}))
    cfg = load_ablation(path)
    lines: list[str] = []
    run_ablation(cfg, where=str(path), command="nasseg ablate tiny.yaml", echo=lines.append, max_runs=1)
    # a process killed mid-run leaves its trial RUNNING, owned by a process that is gone
    study = optuna.load_study(study_name="tiny", storage=cfg.storage_url())
    ghost = study.ask()
    dead = subprocess.Popen(["true"])
    dead.wait()
    ghost.set_user_attr("owner", {"host": socket.gethostname(), "pid": dead.pid, "start": None})
    ghost.set_user_attr("variant", "irsc")
    ghost.set_user_attr("seed", 0)
    run_ablation(cfg, where=str(path), command="nasseg ablate tiny.yaml", echo=lines.append)
    return path, cfg, lines


def test_runs_resume_after_a_crash(finished):
    path, cfg, lines = finished
    study = optuna.load_study(study_name="tiny", storage=cfg.storage_url())
    trials = study.get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [(t.number, fail_reason(t, {})) for t in failed] == [(1, "interrupted")]
    assert sorted((t.user_attrs["variant"], t.user_attrs["seed"]) for t in done) == \
        [("irsc", 0), ("irsc", 2), ("skip_fusion", 0), ("skip_fusion", 2)]
    assert "trial 1 was interrupted; its run will be repeated" in lines
    assert "study 'tiny': 2 variants x 2 seeds = 4 runs, 1 already complete; " \
           f"storage {cfg.storage_url()}" in lines
    # a third start has nothing left to do and adds no trial
    more: list[str] = []
    run_ablation(cfg, where=str(path), echo=more.append)
    assert more[-1] == "nothing to run" and len(study.get_trials()) == len(trials)


def test_each_run_stores_what_the_report_needs(finished):
    _, cfg, _ = finished
    study = optuna.load_study(study_name="tiny", storage=cfg.storage_url())
    assert study.user_attrs["nasseg_kind"] == "ablation"
    assert study.user_attrs["objectives"] == [{"name": "dice", "direction": "maximize"}]
    assert study.user_attrs["dataset"]["split"]["seed"] == 5
    assert study.user_attrs["config"]["factors"]["skip"]["levels"] == ["skip_fusion", "irsc"]
    hashes = set()
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        a = t.user_attrs
        assert a["arch"]["in_channels"] == 1 and len(a["arch_id"]) == 12
        assert a["cost"]["params"] > 0 and a["cost"]["macs"] > 0
        assert len(a["history"]) == 1 and a["split"]["n_val"] == len(a["per_case"]) > 0
        assert a["is_baseline"] == (a["variant"] == "skip_fusion")
        assert t.values[0] == pytest.approx(float(np.mean([c["dice"] for c in a["per_case"]])), abs=1e-6)
        hashes.add(a["split"]["hash"])
    assert len(hashes) == 1  # every run was scored on the same held-out cases


def test_statistics_table_matches_the_stored_runs(finished):
    _, cfg, _ = finished
    study = optuna.load_study(study_name="tiny", storage=cfg.storage_url())
    cells = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        per = pd.DataFrame(t.user_attrs["test_per_case"]).groupby("case_id")["dice"].mean().sort_index()
        cells[(t.user_attrs["variant"], t.user_attrs["seed"])] = per.to_numpy()
    table = analyze(study).table.set_index("variant")
    for v in ("skip_fusion", "irsc"):
        seed_means = [cells[(v, s)].mean() for s in (0, 2)]
        assert table.loc[v, "dice_mean"] == pytest.approx(np.mean(seed_means), abs=1e-12)
        assert table.loc[v, "dice_sd"] == pytest.approx(np.std(seed_means, ddof=1), abs=1e-12)
    d = np.stack([cells[("irsc", s)] - cells[("skip_fusion", s)] for s in (0, 2)])  # seeds x test cases
    row = table.loc["irsc"]
    # two seeds: no mixed-model p-value, the per-case comparison conditional on the networks
    assert row["n_pairs"] == d.shape[1] and row["reference"] == "skip_fusion" and row["test"] == "conditional"
    assert row["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert np.isnan(row["p_value"]) and np.isnan(row["p_holm"]) and row["significance"] == ""
    assert fit_crossed(d).n_seeds == 2
    assert table.loc["skip_fusion", "params"] > table.loc["irsc", "params"]


def test_changed_study_refuses_to_mix_with_stored_runs(finished):
    path, _, _ = finished
    cfg = load_ablation(path, overrides={"train": {"epochs": 2}})
    with pytest.raises(ConfigError, match=r"already holds study 'tiny' run with different train; "
                                          r"its runs cannot be mixed"):
        run_ablation(cfg, where=str(path), echo=lambda _: None)


def test_cli_ablate_writes_tables_and_report(finished, tmp_path, capsys):
    path, _, _ = finished
    out = tmp_path / "rep"
    assert main(["ablate", str(path), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nothing to run" in text and f"report: {out / 'report.html'}" in text
    assert "| irsc |" in text
    assert sorted(p.name for p in out.iterdir()) == ["per_case.csv", "report.html", "stats.csv", "stats.md",
                                                     "stats.tex"]
    csv = pd.read_csv(out / "stats.csv")
    assert csv["variant"].tolist() == ["skip_fusion", "irsc"]
    html = (out / "report.html").read_text()  # provenance in the report's header
    assert "Provenance" in html
    import optuna

    study = optuna.load_study(study_name="tiny", storage=load_ablation(path).storage_url())
    prov = study.user_attrs["provenance"]
    assert prov["seeds"] == [0, 2] and prov["threads"] == 1 and len(prov["data_hash"]) == 16
    assert f"data hash {prov['data_hash']}" in html


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**STUDY, "factor": {}}))
    assert main(["ablate", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"nasseg: error: {bad}: factor: unknown key 'factor' (did you mean 'factors'?)"


def test_cli_max_runs_stops_early_and_the_rest_resumes(tmp_path, capsys):
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "name": "one", "seeds": 1, "out_dir": str(tmp_path / "out")}))
    assert main(["ablate", str(path), "--max-runs", "1", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] skip_fusion seed 0: val dice " in out and "irsc seed 0" not in out
    study = optuna.load_study(study_name="one", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert [t.user_attrs["variant"] for t in study.get_trials()] == ["skip_fusion"]
    assert study.user_attrs["command"] == f"nasseg ablate {path} --max-runs 1"


def test_an_ablation_whose_every_run_fails_exits_3_with_the_reason(tmp_path, capsys):
    """lr 1e6 makes every run diverge: the runs are recorded as failed, and instead of a
    report of empty cells the command ends with exit 3 and the reason."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "seeds": 1, "out_dir": str(tmp_path / "out"),
                                    "train": {**STUDY["train"], "lr": 1e6}}))
    assert main(["ablate", str(path), "-o", str(tmp_path / "rep")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nasseg: error: {path}: no run completed (2 x diverged")
    assert not (tmp_path / "rep").exists()
