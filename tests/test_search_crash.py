"""Crash safety: a study killed with SIGKILL mid-trial resumes, keeps every completed trial,
re-queues the interrupted one and finishes its budget (real subprocesses, real SQLite)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from optuna.trial import TrialState
from test_search_helpers import TINY_SPACE, make_study

from nasseg.errors import ConfigError
from nasseg.search.proposals import REUSE_STREAK, distinct_counts
from nasseg.search.results import open_result
from nasseg.store import fail_reason, requeued, retries

CLI = [sys.executable, "-c", "import sys; from nasseg.cli import main; sys.exit(main(sys.argv[1:]))"]
REPO = Path(__file__).resolve().parent.parent


def _search(study_yaml: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*CLI, "search", str(study_yaml), "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_during_a_trial_then_resume(tmp_path: Path) -> None:
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 6]}}}
    # 60 epochs of a tiny network: a few seconds per trial, time to kill one mid-training
    study_yaml = make_study(tmp_path, space_dict=space, budget={"trials": 4}, epochs=60, sampler="random")
    proc = _search(study_yaml)
    t0, killed = time.monotonic(), None
    try:
        while time.monotonic() - t0 < 240 and proc.poll() is None:
            time.sleep(0.2)
            try:
                trials = open_result(study_yaml).get_trials(deepcopy=False)
            except ConfigError:  # the storage or the study is not created yet
                continue
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("history")]
            if done and running:
                proc.send_signal(signal.SIGKILL)
                killed = running[0].number
                break
    finally:
        if proc.poll() is None and killed is None:
            proc.kill()
        out = proc.communicate(timeout=60)[0]
    assert killed is not None, f"never saw a running trial after a completed one:\n{out}"
    assert proc.returncode == -signal.SIGKILL
    before = {t.number: (t.values, t.user_attrs["arch_id"]) for t in open_result(study_yaml).trials
              if t.state == TrialState.COMPLETE}
    assert open_result(study_yaml).trials[killed].state == TrialState.RUNNING  # left behind

    second = _search(study_yaml)
    out = second.communicate(timeout=400)[0]
    assert second.returncode == 0, out

    trials = open_result(study_yaml).trials
    for number, (values, aid) in before.items():  # nothing completed is lost or changed
        assert trials[number].state == TrialState.COMPLETE
        assert (trials[number].values, trials[number].user_attrs["arch_id"]) == (values, aid)
    dead = trials[killed]
    retried = retries(trials)
    assert dead.state == TrialState.FAIL and requeued(dead, retried)
    assert fail_reason(dead, retried).startswith("interrupted: its process (pid")
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # both networks of the space trained once; re-proposals of them answered from the
    # record (they use up no budget) until REUSE_STREAK of them in a row end the search
    counts = distinct_counts(trials)
    assert counts["trained"] == 2 and counts["duplicate"] >= REUSE_STREAK
    assert len(complete) == 2 + counts["duplicate"]
