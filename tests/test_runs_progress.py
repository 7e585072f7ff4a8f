"""A running trial's position within its epoch reaches the study (what `nasseg search` shows)."""
from __future__ import annotations

import time

from optuna.trial import TrialState

from nasseg.runs import train_and_record
from nasseg.search.monitor import running_line
from nasseg.store import StudyRecord, TrialWriter, create_or_open
from nasseg.train import TrainConfig, train
from tests.test_train_engine import FAST, _data, tiny_arch


def test_progress_is_written_while_training_and_shown_for_running_trials(tmp_path):
    study = create_or_open(f"sqlite:///{tmp_path / 'study.db'}", "p",
                           StudyRecord(nasseg_kind="search", objectives=[{"name": "dice", "direction": "maximize"}]))
    writer = TrialWriter(study.ask())
    written = []

    def slow_trainer(arch, data, cfg, *, on_step, **kw):
        def step(epoch, s, n):
            on_step(epoch, s, n)
            time.sleep(0.15)  # a long step: the heartbeat thread writes between steps
            running = study.get_trials(deepcopy=False)[0]
            assert running.state == TrialState.RUNNING
            written.append((running.user_attrs.get("progress"), running_line(running)))
        return train(arch, data, cfg, on_step=step, **kw)

    run = train_and_record(writer, tiny_arch(), _data(), TrainConfig(epochs=2, **FAST), trainer=slow_trainer,
                           heartbeat_s=0.05)
    assert run.ok
    shown = [line for p, line in written if p]
    assert shown and shown[-1] in ("#0 e2 1/2", "#0 e2 2/2")
    assert {p["steps"] for p, _ in written if p} == {2}
    assert all(line.startswith("#0 e") for _, line in written)
    (t,) = study.get_trials()
    assert t.user_attrs["progress"]["epoch"] == 2
