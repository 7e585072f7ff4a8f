"""The resolved run: decided once, independent of the machine's load, used by test scoring,
recorded with the run; a killed training continues from its last epoch."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nasseg.arch import load_arch
from nasseg.data import load_dataset, resolve_data
from nasseg.data.plan import CPU_BUDGET_MB, memory_budget_mb
from nasseg.train import TrainConfig, train
from nasseg.train.resolved import AUTO_THREADS_CAP, ResolvedRun, auto_threads, resolve_run
from tests.test_data_volumetric import write_decathlon

ROOT = Path(__file__).resolve().parents[1]
TINY3D = {"name": "tiny3d", "spatial_dims": 3, "in_channels": 2, "out_channels": 4,
          "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]}
TINY2D = {**TINY3D, "name": "tiny2d", "spatial_dims": 2, "in_channels": 1, "out_channels": 1}
TIMING = ("seconds", "train_seconds", "eval_seconds", "images_per_s", "epoch_seconds")


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def test_budget_and_threads_are_properties_of_the_machine_not_of_its_load():
    assert memory_budget_mb("cpu") == (CPU_BUDGET_MB, f"default CPU budget {CPU_BUDGET_MB:.0f} MB")
    assert auto_threads() == min(_cores(), AUTO_THREADS_CAP)


def test_resolved_run_is_frozen_recorded_and_read_back(tmp_path):
    root = write_decathlon(tmp_path / "d", n=4, shape=(20, 22, 8))
    data = resolve_data(str(root), val_fraction=0.25)
    arch = load_arch(TINY3D)
    run = resolve_run(arch, load_dataset(data), data, TrainConfig(device="cpu", num_threads=1))
    assert (run.device, run.precision, run.threads, run.size_multiple) == ("cpu", "fp32", 1, 2)
    assert run.memory_budget_mb == CPU_BUDGET_MB and run.input_shape == (2, *run.patch)
    assert ResolvedRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    with pytest.raises(AttributeError):
        run.batch_size = 3  # type: ignore[misc]


def test_test_cases_are_scored_at_the_planned_evaluation_batch(tmp_path, monkeypatch):
    """Bug: validation used the plan's evaluation batch, test scoring cfg.eval_batch_size (16),
    outside the out-of-memory guard."""
    import nasseg.train.engine as engine

    seen: list[int] = []
    real = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda *a, **kw: (seen.append(kw["batch_size"]), real(*a, **kw))[1])
    root = write_decathlon(tmp_path / "d", n=6, shape=(20, 22, 8))
    data = resolve_data(str(root), val_fraction=0.2, test_fraction=0.2, memory_mb=1.0)
    res = train(load_arch(TINY3D), data, TrainConfig(epochs=1, device="cpu", num_threads=1, steps_per_epoch=2),
                progress=False)
    planned = res.config["resolved"]["plan"]["eval_batch_size"]
    assert planned < 16 and res.test is not None
    assert seen == [planned, planned]  # validation, then test


def _cli_train(args: list[str], run_dir: Path) -> dict:
    """``nasseg train`` in a fresh process (threads left at auto); what its run folder recorded."""
    subprocess.run([sys.executable, "-m", "nasseg", "train", *args, "--device", "cpu", "--epochs", "1",
                    "--no-progress", "-o", str(run_dir)], cwd=ROOT, check=True, capture_output=True)
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [{k: v for k, v in h.items() if k not in TIMING} for h in metrics["history"]]
    return {"resolved": config["resolved"], "threads": config["provenance"]["threads"],
            "plan": (run_dir / "plan.json").read_text() if (run_dir / "plan.json").exists() else None,
            "history": history, "best": metrics["best"], "test": metrics["test"]}


def _load() -> list[subprocess.Popen]:
    """Two busy loops and a process holding 2 GiB of touched memory."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    hog = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(2 << 30); b[::4096] = b'x' * "
                            "len(b[::4096]); print('held', flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
    hog.stdout.readline()
    return [*busy, hog]


@pytest.mark.slow
def test_same_command_same_plan_threads_and_metrics_idle_and_loaded(tmp_path):
    import yaml

    root = write_decathlon(tmp_path / "d", n=5, shape=(20, 22, 8))
    arch3, arch2 = tmp_path / "tiny3d.yaml", tmp_path / "tiny2d.yaml"
    arch3.write_text(yaml.safe_dump(TINY3D))
    arch2.write_text(yaml.safe_dump(TINY2D))
    commands = {"3d": [str(arch3), "--data", str(root), "--steps-per-epoch", "2"],
                "2d": [str(arch2), "--data", "synthetic", "--size", "32", "--max-cases", "16"]}
    idle = {k: _cli_train(c, tmp_path / f"idle_{k}") for k, c in commands.items()}
    procs = _load()
    try:
        time.sleep(2)
        loaded = {k: _cli_train(c, tmp_path / f"loaded_{k}") for k, c in commands.items()}
    finally:
        for p in procs:
            p.kill()
            p.wait()
    for k in commands:
        a, b = idle[k], loaded[k]
        assert a["threads"] == b["threads"] == a["resolved"]["threads"] == min(_cores(), AUTO_THREADS_CAP)
        assert a["resolved"] == b["resolved"] and a["plan"] == b["plan"]
        assert a["history"] == b["history"] and a["best"] == b["best"] and a["test"] == b["test"]
    plan = json.loads(idle["3d"]["plan"])
    assert plan["budget_mb"] == CPU_BUDGET_MB and plan["budget_source"].startswith("default CPU budget")
    assert idle["2d"]["plan"] is None


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_last_epoch(tmp_path):
    """SIGKILL a real `nasseg train` after its first epoch; `--resume` ends it with every
    epoch, the history of both parts, and the numbers of an uninterrupted run."""
    import yaml

    arch = tmp_path / "tiny2d.yaml"
    arch.write_text(yaml.safe_dump(TINY2D))
    args = [sys.executable, "-m", "nasseg", "train", str(arch), "--data", "synthetic", "--size", "32",
            "--max-cases", "24", "--epochs", "3", "--steps-per-epoch", "30", "--batch-size", "4",
            "--threads", "1", "--device", "cpu", "--no-progress"]
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([*args, "-o", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoint_latest.pt"
    while not latest.exists() and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(latest, weights_only=False)["epoch"]
    assert killed_at < 3 and not (run_dir / "metrics.json").exists()
    refused = subprocess.run([*args, "-o", str(run_dir)], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "holds an earlier run" in refused.stderr + refused.stdout
    subprocess.run([*args, "-o", str(run_dir), "--resume"], cwd=ROOT, check=True, capture_output=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert [int(h["epoch"]) for h in _history(run_dir)] == [1, 2, 3] and not latest.exists()
    again = subprocess.run([*args, "-o", str(run_dir), "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "finished" in again.stderr + again.stdout
    whole = tmp_path / "whole"
    subprocess.run([*args, "-o", str(whole)], cwd=ROOT, check=True, capture_output=True)
    ref = json.loads((whole / "metrics.json").read_text())
    strip = lambda hs: [{k: v for k, v in h.items() if k not in TIMING} for h in hs]  # noqa: E731
    assert strip(metrics["history"]) == strip(ref["history"]) and metrics["test"] == ref["test"]


def test_a_trials_record_keeps_its_resolved_run():
    from nasseg.runs import train_and_record
    from nasseg.store.records import TrialRecord

    class Fields:
        """What a TrialWriter is given (``set(**fields)``), kept here."""

        def __init__(self) -> None:
            self.fields: dict = {}

        def set(self, **kw) -> None:
            self.fields.update(kw)

    writer = Fields()
    data = resolve_data("synthetic", n_cases=8, size=16)
    run = train_and_record(writer, load_arch(TINY2D), data,
                           TrainConfig(epochs=1, device="cpu", batch_size=4), run_dir=None)
    assert run.ok
    resolved = TrialRecord.model_validate({"resolved": writer.fields["resolved"]}).resolved
    assert ResolvedRun.from_dict(resolved) == ResolvedRun.from_dict(run.result.config["provenance"]["resolved"])
    assert resolved["threads"] == 1 and resolved["batch_size"] == 4 and tuple(resolved["input_shape"]) == (1, 16, 16)


def test_resume_continues_an_interrupted_run_and_refuses_a_changed_command(tmp_path):
    from nasseg.errors import ConfigError
    from nasseg.train.engine import Hooks

    class Interrupted(Exception):
        pass

    def stop_at_2(epoch: int) -> None:
        if epoch == 2:
            raise Interrupted

    data = resolve_data("synthetic", n_cases=8, size=16)
    cfg = TrainConfig(epochs=3, device="cpu", num_threads=1, batch_size=4, steps_per_epoch=2)
    with pytest.raises(Interrupted):
        train(load_arch(TINY2D), data, cfg, run_dir=tmp_path, progress=False, hooks=Hooks(on_epoch_start=stop_at_2))
    assert torch.load(tmp_path / "checkpoint_latest.pt", weights_only=False)["epoch"] == 1
    with pytest.raises(ConfigError, match=r"--resume .*: train\.epochs is 4 here but was 3 in the killed run"):
        train(load_arch(TINY2D), data, cfg.model_copy(update={"epochs": 4}), run_dir=tmp_path, progress=False,
              resume=True)
    res = train(load_arch(TINY2D), data, cfg, run_dir=tmp_path, progress=False, resume=True)
    assert [h["epoch"] for h in res.history] == [1, 2, 3] and res.epochs_run == 3
    assert not (tmp_path / "checkpoint_latest.pt").exists()
    with pytest.raises(ConfigError, match=r"the run there finished \(metrics\.json\)"):
        train(load_arch(TINY2D), data, cfg, run_dir=tmp_path, progress=False, resume=True)


@pytest.mark.parametrize("same_settings", [True, False])
def test_a_study_run_continues_its_killed_training(tmp_path, same_settings):
    """A study's run folder holding a killed training of the same settings (an ablation's
    variant and seed after a crash) is continued from its last epoch, not trained from epoch
    1; a killed run of other settings is trained anew and the trial records why."""
    from nasseg.runs import train_and_record
    from nasseg.train.engine import Hooks

    class Killed(Exception):
        pass

    def kill_at_3(epoch: int) -> None:
        if epoch == 3:
            raise Killed

    class Fields:
        def __init__(self) -> None:
            self.fields: dict = {}

        def set(self, **kw) -> None:
            self.fields.update(kw)

    data = resolve_data("synthetic", n_cases=8, size=16)
    cfg = TrainConfig(epochs=3, device="cpu", num_threads=1, batch_size=4, steps_per_epoch=2)
    with pytest.raises(Killed):
        train(load_arch(TINY2D), data, cfg, run_dir=tmp_path, progress=False, hooks=Hooks(on_epoch_start=kill_at_3))
    started: list[int] = []

    def trainer(*a, **kw):
        return train(*a, **kw, hooks=Hooks(on_epoch_start=started.append))

    writer = Fields()
    again = cfg if same_settings else cfg.model_copy(update={"lr": 0.01})
    run = train_and_record(writer, load_arch(TINY2D), data, again, run_dir=tmp_path, trainer=trainer)
    assert run.ok and [h["epoch"] for h in run.result.history] == [1, 2, 3]
    if same_settings:
        assert started == [3] and writer.fields["resumed"] is True and "resume_refused" not in writer.fields
    else:
        assert started == [1, 2, 3] and "train.lr is 0.01 here but was" in writer.fields["resume_refused"]
    assert not (tmp_path / "checkpoint_latest.pt").exists() and (tmp_path / "metrics.json").exists()
