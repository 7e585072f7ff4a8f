"""The study store: old formats read or refused by name, bad files reported and left
untouched, concurrent creation of a new SQLite file, records checked, the registry."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasseg.cli import main
from nasseg.errors import ConfigError
from nasseg.store import (OBJECTIVES, StudyRecord, TrialWriter, add_trial, create_or_open, fail_reason, feasible, front,
                          hypervolume, locate, objectives_of, retries, split_summary, study_record)

optuna.logging.set_verbosity(optuna.logging.WARNING)
FIXTURE = Path(__file__).parent / "fixtures" / "study_format1.db"
"""A 4-trial search written by nasseg before the store existed (format 1, no ``format`` key):
trials 0 and 3 the same trained 4-wide network, 1 and 2 a 48-wide one over max_params."""
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "study.db"
    shutil.copy(FIXTURE, path)  # never open the tracked file itself
    return path


def test_format_1_study_is_read_by_pareto_and_the_readers(old_db: Path, capsys) -> None:
    study = locate(old_db)
    rec = study_record(study)
    assert rec.format == 1 and rec.nasseg_kind == "search"
    assert [o.name for o in objectives_of(study)] == ["dice", "macs", "params"]
    trials = study.get_trials()
    assert [feasible(t) for t in trials] == [True, False, False, True]
    assert [t.number for t in front(study)] == [0]  # trial 3 reused trial 0's result
    assert 0 < hypervolume(study) < 1
    assert main(["pareto", str(old_db), "--all"]) == 0
    out = capsys.readouterr().out
    assert "quickstart: all trials" in out and "params 0.272 M params > max 0.060 M params" not in out
    assert "conv x3 | widths 4-4-4 | k 3-3-3 | skip concat" in out


def test_format_1_study_renders_a_report(old_db: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(old_db), "-o", str(tmp_path / "r")]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Pareto front" in html and "quickstart" in html


def test_unknown_format_is_refused_naming_it(old_db: Path, capsys) -> None:
    optuna.load_study(study_name="quickstart", storage=f"sqlite:///{old_db}").set_user_attr("format", 99)
    assert main(["pareto", str(old_db)]) == 2
    err = capsys.readouterr().err
    assert "study 'quickstart' is stored in nasseg format 99; this nasseg reads formats 1, 2" in err
    assert main(["report", str(old_db), "-o", str(old_db.parent / "r")]) == 2
    assert "nasseg format 99" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"", "an empty file (0 bytes), not a study database"),
    (b"hello, not a database\n" * 10, "not a SQLite database"),
    (None, "a SQLite database without Optuna's tables"),
])
def test_bad_storage_files_are_reported_and_left_untouched(tmp_path: Path, capsys, content, message) -> None:
    path = tmp_path / "study.db"
    if content is None:
        import sqlite3

        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE notes (x TEXT)")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    assert main(["pareto", str(path)]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_or_open(f"sqlite:///{path}", "s", _record())
    assert path.read_bytes() == before  # never written


def _record() -> StudyRecord:
    return StudyRecord(nasseg_kind="search", objectives=[{"name": "dice", "direction": "maximize"}])


_CREATE = """
import sys, time
from pathlib import Path
from nasseg.store import StudyRecord, create_or_open
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
rec = StudyRecord(nasseg_kind="search", objectives=[{"name": "dice", "direction": "maximize"}])
study = create_or_open(sys.argv[1], "race", rec, enqueue=[({"w": 1}, {})])
print(study.study_name)
"""


def test_concurrent_first_use_of_a_new_sqlite_file(tmp_path: Path) -> None:
    url, go = f"sqlite:///{tmp_path / 'new' / 'study.db'}", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CREATE, url, str(go)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
    go.touch()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    study = locate(tmp_path / "new" / "study.db")
    assert study.study_name == "race" and len(study.get_trials()) == 1  # enqueued once
    assert study.metric_names == ["dice"] and study.user_attrs["format"] == 2


def test_writer_refuses_unknown_fields_and_stores_constraints_where_optuna_reads_them() -> None:
    study = create_or_open(optuna.storages.InMemoryStorage(), "w", _record())
    writer = TrialWriter(study.ask())
    with pytest.raises(KeyError, match="'arch_idd' is not a TrialRecord field"):
        writer.set(arch_idd="x")
    with pytest.raises(KeyError, match="'alone' is not a TrialRecord field"):
        writer.get("alone")
    writer.set(arch_id="a", history=[{"epoch": 1, "dice": float("nan")}])
    writer.constrain({"params": 5.0})
    study.tell(writer.trial, [0.5])
    (t,) = study.get_trials()
    assert t.constraints == {"params": 5.0} and not feasible(t)
    assert t.user_attrs["history"] == [{"epoch": 1, "dice": None}]


def test_recovery_reason_is_read_from_the_requeued_copy() -> None:
    from nasseg.store import recover_stale

    study = create_or_open(optuna.storages.InMemoryStorage(), "r", _record())
    writer = TrialWriter(study.ask({"w": optuna.distributions.IntDistribution(1, 4)}))
    writer.set(owner={"host": "elsewhere", "pid": 1, "start": 0})
    assert recover_stale(study, grace_s=0.0) == [0]
    dead, retry = study.get_trials()
    assert dead.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.user_attrs["retry_of"] == 0
    assert fail_reason(dead, retries([dead, retry])).startswith("interrupted: no heartbeat for")


def test_split_summary_hashes_ids_as_strings() -> None:
    a = split_summary({"method": "random", "seed": 0, "train": [1, 2, 10], "val": [3]})
    b = split_summary({"method": "random", "seed": 0, "train": ["1", "10", "2"], "val": ["3"]})
    assert a == b and a["n_train"] == 3 and "n_test" not in a
    assert split_summary({"train": [1], "val": [2], "test": [3]})["n_test"] == 1


def test_every_objective_is_one_complete_record() -> None:
    from nasseg.search.space import Constraints

    for name, o in OBJECTIVES.items():
        assert o.name == name and o.direction in ("maximize", "minimize") and o.label and o.column
        if o.constraint:
            assert Constraints(**{o.constraint: 1.0}).limits() == {name: 1.0}
    assert OBJECTIVES["macs"].value({"macs": 2.5e9}) == 2.5
    assert OBJECTIVES["params"].describe(41750.0) == "0.042 M params"


def test_pareto_on_a_stored_study_imports_neither_torch_nor_ray(old_db: Path) -> None:
    import yaml

    (old_db.parent / "run").mkdir()
    shutil.move(old_db, old_db.parent / "run" / "study.db")
    study_yaml = old_db.parent / "quickstart.yaml"
    study_yaml.write_text(yaml.safe_dump({
        "name": "quickstart", "space": "tiny_space.yaml", "budget": {"trials": 4}, "epochs": 2,
        "train": {"batch_size": 4}, "output_dir": str(old_db.parent / "run")}))
    code = ("import sys; from nasseg.cli import main; code = main(['pareto', sys.argv[1]]); "
            "print('LOADED', [m for m in ('torch', 'ray') if m in sys.modules]); sys.exit(code)")
    for target in (old_db.parent / "run" / "study.db", study_yaml):
        out = subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "quickstart: Pareto set" in out.stdout and "LOADED []" in out.stdout


def test_study_train_settings_are_typed_when_the_study_is_loaded(tmp_path: Path) -> None:
    import yaml

    from nasseg.search.study import load_study_config

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "space": "x.yaml", "budget": {"trials": 1}, "epochs": 1,
                                    "train": {"lr": "fast"}}))
    with pytest.raises(ConfigError, match=r"s\.yaml: train: lr: "):
        load_study_config(path)
    path.write_text(yaml.safe_dump({"name": "s", "space": "x.yaml", "budget": {"trials": 1}, "epochs": 2,
                                    "train": {"lr": 0.01}}))
    tc = load_study_config(path).train_config()
    assert (tc.lr, tc.epochs, tc.device) == (0.01, 2, "auto")  # the device is chosen at run time


def test_only_the_store_touches_user_attrs() -> None:
    """One owner of the stored format: no module outside nasseg/store reads or writes
    Optuna user attrs (they go through TrialWriter, trial_record and study_record)."""
    root = Path(__file__).resolve().parents[1] / "nasseg"
    pattern = re.compile(r"\.user_attrs\b|set_user_attr\(|user_attrs\s*=")
    offenders = [f"{p.relative_to(root.parent)}:{i}: {line.strip()}"
                 for p in sorted(root.rglob("*.py")) if p.parent.name != "store"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_format_1_ablation_runs_marked_per_case_split_test_count_as_test_scored(tmp_path) -> None:
    """Before ``test_per_case`` existed, a run scored on the test cases said so with
    ``per_case_split: test``; the tables must still call those results test results."""
    from test_report_html import make_ablation_study

    from nasseg.ablation.results import analyze

    plain = make_ablation_study(f"sqlite:///{tmp_path / 'a.db'}")
    assert analyze(plain).scored_split == "val"
    old = make_ablation_study(f"sqlite:///{tmp_path / 'b.db'}")
    marked = create_or_open(f"sqlite:///{tmp_path / 'c.db'}", "skips", StudyRecord.model_validate(old.user_attrs))
    for t in old.get_trials():
        add_trial(marked, t.values, **t.user_attrs, per_case_split="test")
    assert analyze(marked).scored_split == "test"


def test_a_trial_that_must_run_alone_still_must_after_recovery() -> None:
    from nasseg.store import recover_stale

    study = create_or_open(optuna.storages.InMemoryStorage(), "r", _record())
    writer = TrialWriter(study.ask({"w": optuna.distributions.IntDistribution(1, 4)}))
    writer.set(owner={"host": "elsewhere", "pid": 1, "start": 0}, run_alone=True)
    assert recover_stale(study, grace_s=0.0) == [0]
    retry = study.get_trials()[1]
    assert retry.state == TrialState.WAITING and retry.user_attrs["run_alone"] is True


def test_the_trial_table_says_when_a_running_trial_lost_its_process(capsys) -> None:
    """`pareto --all` between a kill and the next `search`: the trial still reads RUNNING in
    the storage, but its note says its process is gone and what will happen to it."""
    import socket

    from nasseg.search.results import trial_table

    study = create_or_open(optuna.storages.InMemoryStorage(), "k", _record())
    dead = subprocess.Popen(["true"])
    dead.wait()
    TrialWriter(study.ask()).set(owner={"host": socket.gethostname(), "pid": dead.pid, "start": None})
    TrialWriter(study.ask()).set(owner={"host": socket.gethostname(), "pid": os.getpid(), "start": None})
    notes = trial_table(study)["note"].tolist()
    assert notes[0] == (f"interrupted: its process (pid {dead.pid} on {socket.gethostname()}) died; "
                        "the next `nasseg search` re-queues it")
    assert notes[1] == ""  # this process still runs


def test_a_study_left_with_a_hot_journal_by_a_killed_writer_opens_with_its_committed_trials(tmp_path) -> None:
    """SIGKILL inside a write transaction (larger than SQLite's page cache) leaves a hot
    journal that a read-only connection cannot roll back; `pareto` and a resumed `search`
    reported the study as corrupt (seen once in test_sigkill_during_a_trial_then_resume)."""
    db = tmp_path / "study.db"
    study = create_or_open(f"sqlite:///{db}", "hot", _record())
    for i in range(120):
        add_trial(study, [0.5], seed=i, arch_id="x" * 2000)
    code = ("import os, signal, sqlite3; con = sqlite3.connect(%r, isolation_level=None); "
            "con.execute('PRAGMA cache_size=1'); con.execute('BEGIN IMMEDIATE'); "
            "con.execute(\"UPDATE trial_user_attributes SET value_json = '\\\"\" + 'y' * 3000 + \"\\\"'\"); "
            "os.kill(os.getpid(), signal.SIGKILL)" % str(db))
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert (tmp_path / "study.db-journal").stat().st_size > 0  # the hot journal
    trials = locate(db).get_trials(deepcopy=False)
    assert len(trials) == 120 and {t.user_attrs["arch_id"] for t in trials} == {"x" * 2000}  # as committed
