"""The study store on every storage backend it supports, as Optuna tests its own storages
(``optuna/testing/storages.py``: ``STORAGE_MODES`` and one parametrised fixture): every test
here runs on SQLite, on a journal file and on PostgreSQL.

PostgreSQL is the server ``.ci/run`` starts (``NASSEG_TEST_POSTGRES_URL``) or a throwaway one
started here (``tests/pg_server.py``); each test gets a database of its own. Where neither
can run, the PostgreSQL cases are skipped with the reason.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState

from nasseg.errors import ConfigError
from nasseg.report.testing import add_trial, new_study
from nasseg.store import (front, hypervolume, locate, open_existing, open_storage, recover_stale, study_record,
                          trial_record, update_record)
from nasseg.store.storage import identity

BACKENDS = ("sqlite", "journal", "postgresql")
"""Every storage kind a study can be kept in (nasseg.store.storage)."""

REPO = Path(__file__).resolve().parents[1]
OBJECTIVES = [("dice", "maximize"), ("macs", "minimize")]


@pytest.fixture(scope="module")
def postgres_server():
    """The URL of a PostgreSQL server whose user may create databases, or the reason there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        yield None, "the PostgreSQL driver (psycopg 3) is missing: pip install 'nasseg[postgres]'"
        return
    import pg_server

    url, folder = os.environ.get("NASSEG_TEST_POSTGRES_URL"), None
    if not url:
        try:
            url, folder = pg_server.start()
        except RuntimeError as err:
            yield None, f"no PostgreSQL server: {err}"
            return
    try:
        pg_server.wait_ready(url)
        yield url, ""
    finally:
        if folder is not None:
            pg_server.stop(folder)


def _database(server: str, name: str, sql: str) -> str:
    import psycopg

    base = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.format(name=name))
    head, _, _ = server.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(params=BACKENDS)
def storage(request, tmp_path, postgres_server):
    """A URL of a new, empty storage of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
    elif request.param == "journal":
        yield f"journal://{tmp_path / 'study.log'}"
    else:
        server, reason = postgres_server
        if server is None:
            pytest.skip(reason)
        name = f"nasseg_{uuid.uuid4().hex[:12]}"
        yield _database(server, name, "CREATE DATABASE {name}")
        _database(server, name, "DROP DATABASE {name} WITH (FORCE)")


def test_a_study_is_created_once_and_another_kind_is_refused(storage):
    study = new_study(storage, "s", "search", OBJECTIVES, reference_point={"dice": 0.0, "macs": 2.0})
    again = new_study(storage, "s", "search", OBJECTIVES, command="a later run")
    assert again._study_id == study._study_id and study_record(again).command == ""  # opened, not rewritten
    with pytest.raises(ConfigError, match="already holds a study 's' that is not a nasseg ablation"):
        new_study(storage, "s", "ablation", [("dice", "maximize")])
    update_record(study, command="nasseg search s.yaml")
    assert study_record(open_existing(storage, "s")).command == "nasseg search s.yaml"


def test_trials_read_back_with_their_records_front_and_hypervolume(storage):
    study = new_study(storage, "s", "search", OBJECTIVES, reference_point={"dice": 0.0, "macs": 2.0})
    for i, (dice, macs) in enumerate([(0.8, 1.0), (0.6, 0.5), (0.5, 1.5)]):
        add_trial(study, [dice, macs], params={"width": 8 * (i + 1)}, arch_id=f"a{i}", epochs_run=3,
                  metrics={"val": {"dice": dice}})
    add_trial(study, None, state=TrialState.FAIL, arch_id="a3", fail_reason="CPU out of memory at epoch 1")
    stored = locate(storage)  # found by its URL, the only search study there
    assert [t.number for t in front(stored)] == [0, 1]  # (0.5, 1.5) is dominated by (0.8, 1.0)
    # normalised to [0, 1] (dice 0 -> 1, macs 2 -> 0): boxes 0.8 x 0.5 and 0.6 x 0.75, overlap 0.6 x 0.5
    assert hypervolume(stored) == pytest.approx(0.8 * 0.5 + 0.6 * 0.75 - 0.6 * 0.5)
    records = [trial_record(t) for t in stored.get_trials(deepcopy=False)]
    assert [r.arch_id for r in records] == ["a0", "a1", "a2", "a3"]
    assert records[1].metrics == {"val": {"dice": 0.6}} and records[3].fail_reason.startswith("CPU out of memory")


def test_open_existing_picks_the_search_and_names_what_is_missing(storage):
    new_study(storage, "the_ablation", "ablation", [("dice", "maximize")])
    new_study(storage, "the_search", "search", OBJECTIVES)
    assert open_existing(storage).study_name == "the_search"
    with pytest.raises(ConfigError, match=r"no study 'nope' \(studies: "):
        open_existing(storage, "nope")
    assert {s.study_name for s in open_storage(storage).get_all_studies()} == {"the_ablation", "the_search"}


def test_a_dead_owners_trial_is_failed_and_requeued_and_a_live_ones_is_not(storage):
    study = new_study(storage, "s", "search", OBJECTIVES)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process that no longer runs
    dead = study.ask()
    dead.suggest_int("width", 4, 64)
    dead.set_user_attr("owner", {**identity(), "pid": gone.pid})
    dead.set_user_attr("heartbeat", "2000-01-01T00:00:00+00:00")
    live = study.ask()
    live.set_user_attr("owner", identity())  # this process, whatever its heartbeat says
    live.set_user_attr("heartbeat", "2000-01-01T00:00:00+00:00")
    assert recover_stale(study) == [dead.number]
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].user_attrs["retry_of"] == dead.number and "died" in trials[2].user_attrs["retry_reason"]
    retry = study.ask()  # the next ask runs the re-queued params
    assert retry.number == trials[2].number and retry.suggest_int("width", 4, 64) == trials[0].params["width"]


WORKER = """
import sys
from nasseg.store import TrialWriter, open_existing
from nasseg.store.claims import claim
study = open_existing(sys.argv[1], "s")
for _ in range(5):
    writer = claim(TrialWriter(study.ask()), worker=int(sys.argv[2]))
    study.tell(writer.trial, [0.5, 1.0])
"""


def test_two_processes_writing_at_once_lose_and_duplicate_nothing(storage):
    new_study(storage, "s", "search", OBJECTIVES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, storage, str(w)], env=env, stderr=subprocess.PIPE,
                              text=True) for w in (0, 1)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()[-2000:]
    trials = open_existing(storage, "s").get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(10)) and {t.state for t in trials} == {TrialState.COMPLETE}
    assert sorted(t.user_attrs["worker"] for t in trials) == [0] * 5 + [1] * 5
    assert len({t.user_attrs["owner"]["pid"] for t in trials}) == 2
