"""The Ray Tune backend: ``nasseg search STUDY.yaml --backend ray [--workers N] [--address A]``.

The same objective (:func:`~nasseg.search.objective.run_objective`), space, objectives,
sampler and stopping rule as the Optuna backend, scheduled by Ray Tune:

- :class:`NassegSearch` is Ray's ``OptunaSearch`` on the study's own storage and sampler.
  Its define-by-run space samples the architecture in the driver (``study.ask()`` also
  picks up enqueued presets and re-queued trials) and passes only the trial number on.
- Each Tune trial runs in a Ray worker: it opens the storage, rebuilds the network from
  the stored params, runs the objective (attributes written as it goes, per-epoch
  ``tune.report``), and reports the outcome; the searcher tells Optuna (COMPLETE with
  the values, or FAIL), so ``nasseg pareto``/``export``/the report read it like any study.
- Resources per trial: ``resources.cpus_per_trial`` and ``resources.gpus_per_trial``
  (fractional: 0.25 lets four small trials share one GPU); ``--workers`` caps the
  trials running at once. ``--address`` joins an existing cluster, whose nodes must have
  nasseg installed and reach the storage (use a database URL there, not a local file);
  without it a local Ray instance is started and shut down.

The Pareto-aware stopping runs inside the trial (Tune's schedulers rank one metric), as
with the Optuna backend. A driver killed mid-run leaves RUNNING trials owned by its pid;
the next run fails and re-queues them.

Example:
    >>> summary = run_search_ray("studies/quickstart.yaml", workers=2)
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasseg.errors import ConfigError

try:
    import ray
    from ray import tune
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch
except ImportError:  # pragma: no cover - ray is an optional dependency
    raise ConfigError("--backend ray needs Ray Tune: pip install 'nasseg[ray]'") from None
from nasseg.search.objective import Trainer, TrialHandle, run_objective
from nasseg.search.setup import Prepared, open_study, prepare
from nasseg.search.sources import FixedSource, TrialSource
from nasseg.search.storage import identity, open_storage, recover_stale

REPO = Path(__file__).resolve().parents[2]


class NassegSearch(OptunaSearch):
    """OptunaSearch that tells Optuna what the nasseg trial reported (or FAIL), and
    stops suggesting once the study's budget (trials or trial-epochs) is used."""

    def __init__(self, *args: Any, prep: Prepared, **kwargs: Any) -> None:
        self._prep = prep
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict | str | None:
        from nasseg.search.runner import budget_left

        if self._ot_study is not None and budget_left(self._prep, self._ot_study) == 0:
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        state = (result or {}).get("nasseg_state")
        if state == "complete" and not error:
            self._ot_study.tell(ot_trial, list(result["nasseg_values"]))
        else:
            if state != "fail":
                with _suppress():
                    ot_trial.set_user_attr("fail_reason", "the Ray trial errored before reporting "
                                                          "(see the Ray logs under the output folder)")
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)


class SampleSpace:
    """The define-by-run space handed to OptunaSearch (picklable: Tune checkpoints it).

    Samples the network in the driver, records the driver as the trial's owner, and
    passes only the trial number to the worker.
    """

    def __init__(self, prep: Prepared) -> None:
        self.prep = prep
        self.owner = identity()

    def __call__(self, trial: Any) -> dict[str, Any]:
        trial.set_user_attr("owner", self.owner)
        s = self.prep.setup
        self.prep.space.sample(TrialSource(trial), s.in_channels, s.out_channels)
        return {"nasseg_trial": trial.number}


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], Exception)


def _trainable(config: dict[str, Any], prep: Prepared, trainer: Trainer | None, gpus: float) -> None:
    """One Tune trial: rebuild the sampled network from the storage and run the objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(prep.storage_url)
    study = optuna.load_study(study_name=prep.cfg.name, storage=storage)
    handle = TrialHandle(storage, prep.cfg.name, int(config["nasseg_trial"]))
    setup = prep.setup
    handle.set("worker", f"ray pid {os.getpid()}")
    params = handle.params()
    device = "cuda" if gpus > 0 else "cpu"
    names = setup.objectives
    nan = float("nan")

    def on_epoch(epoch: int, metrics: dict) -> None:
        tune.report({**dict.fromkeys(names, nan), "epoch": epoch, "dice": float(metrics["dice"]),
                     "nasseg_state": "running"})

    outcome = run_objective(setup, handle, study,
                            lambda: prep.space.build(FixedSource(params), setup.in_channels, setup.out_channels),
                            device, trainer, on_epoch)
    values = outcome.values or [nan] * len(names)
    tune.report({**dict(zip(names, values)), "nasseg_state": outcome.state, "nasseg_values": values,
                 "fail_reason": outcome.reason or ""})


def run_search_ray(study_path: str | Path, *, workers: int | None = None, trials: int | None = None,
                   address: str | None = None, trainer: Trainer | None = None, progress: bool = True,
                   command: str = "") -> dict[str, Any]:
    """Create or resume the study and run it under Ray Tune (see the module docstring)."""
    from nasseg.search.monitor import Monitor
    from nasseg.search.runner import GRACE_S, budget_left, summarise

    prep = prepare(study_path, workers=workers, trials=trials, command=command)
    study, storage = open_study(prep, create=True)
    recover_stale(study, storage, GRACE_S)
    left = budget_left(prep, study)
    if left == 0:
        return summarise(prep)
    res = prep.cfg.resources
    n = prep.cfg.workers
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "runtime_env": {"env_vars": {"PYTHONPATH": _pythonpath()}}}
        if address:
            kw["address"] = address
        else:
            kw["num_cpus"] = max(os.cpu_count() or 1, int(n * res.cpus_per_trial + 0.999))
        ray.init(**kw)
    try:
        if prep.setup.train.num_threads is None:
            prep.setup.train = prep.setup.train.model_copy(
                update={"num_threads": max(1, int(res.cpus_per_trial))})
        names, modes = prep.cfg.objectives, ["max" if d == "maximize" else "min" for d in prep.cfg.directions()]
        searcher = NassegSearch(prep=prep, space=SampleSpace(prep), metric=names, mode=modes, sampler=study.sampler,
                                     study_name=prep.cfg.name, storage=storage)
        fn = tune.with_resources(
            tune.with_parameters(_trainable, prep=prep, trainer=trainer, gpus=res.gpus_per_trial),
            {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
        tcfg = tune.TuneConfig(search_alg=searcher, num_samples=left if left is not None else -1,
                               max_concurrent_trials=n, time_budget_s=prep.cfg.budget.time_s,
                               reuse_actors=True)
        rcfg = tune.RunConfig(name=f"{prep.cfg.name}_{int(time.time())}",
                              storage_path=str((prep.output_dir / "ray").resolve()), verbose=0)
        with Monitor(prep, enabled=progress):
            tune.Tuner(fn, tune_config=tcfg, run_config=rcfg).fit()
    finally:
        if started:
            ray.shutdown()
    return summarise(prep)


def _pythonpath() -> str:
    parts = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)
