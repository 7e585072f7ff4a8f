"""The Ray Tune backend: ``nasseg search STUDY.yaml --backend ray [--workers N] [--address A]``.

The same objective (:func:`~nasseg.search.objective.run_objective`), space, objectives,
sampler and stopping rule as the Optuna backend, scheduled by Ray Tune:

- :class:`NassegSearcher` implements Ray's public ``Searcher`` interface on the study
  itself: ``suggest`` asks the study (which also picks up enqueued presets and re-queued
  trials), samples the architecture in the driver and passes the trial number and params
  on; ``on_trial_result`` writes what the worker reported into the trial's record;
  ``on_trial_complete`` tells Optuna (COMPLETE with the values, or FAIL).
- Each Tune trial runs in a Ray worker: it rebuilds the network from the params, runs the
  objective and reports the record fields it produces with every ``tune.report`` (the
  driver, which holds the trial, writes them), so ``nasseg pareto``/``export``/the report
  read it like any study.
- Resources per trial: ``resources.cpus_per_trial`` and ``resources.gpus_per_trial``
  (fractional: 0.25 lets four small trials share one GPU); ``--trials-per-gpu N`` (or
  ``trials_per_device: N``) sets it to 1/N of a GPU, and each node admits trials onto its
  GPUs by estimated memory (:mod:`nasseg.search.admission`, a ledger per node); a trial
  that runs out of memory beside others is retried alone. ``--workers`` caps the
  trials running at once. ``--address`` joins an existing cluster, whose nodes must have
  nasseg installed and reach the storage (a database URL, or a journal file on a shared
  file system); without it a local Ray instance is started and shut down. A trial whose
  worker process or node is lost is restarted by Tune (``FailureConfig(max_failures=2)``)
  on the same Optuna trial.

The Pareto-aware stopping runs inside the trial (Tune's schedulers rank one metric), as
with the Optuna backend. A driver killed mid-run leaves RUNNING trials owned by its pid;
the next run fails and re-queues them.

Example:
    >>> summary = run_search_ray("studies/quickstart.yaml", workers=2)
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasseg.errors import ConfigError, is_out_of_memory

try:
    import ray
    from ray import tune
    from ray.tune.search import Searcher
except ImportError:  # pragma: no cover - ray is an optional dependency
    raise ConfigError("--backend ray needs Ray Tune: pip install 'nasseg[ray]'") from None
from nasseg.search.admission import Admission, admitted_trainer, device_capacity_mb
from nasseg.search.objective import Outcome, Trainer, run_objective, screen
from nasseg.search.proposals import worker_seed
from nasseg.search.samplers import exhausted, make_sampler
from nasseg.search.setup import Prepared, open_study, prepare
from nasseg.search.sources import FixedSource, TrialSource
from nasseg.store import TrialWriter, open_existing, recover_stale
from nasseg.store.records import json_safe
from nasseg.store.storage import identity
from nasseg.search.monitor import Monitor
from nasseg.search.runner import announce_feasibility, announce_split, budget_left, requeue, summarise, tell
from nasseg.store.claims import HEARTBEAT_GRACE_S

REPO = Path(__file__).resolve().parents[2]


class NassegSearcher(Searcher):
    """Ray's public ``Searcher`` interface over the nasseg study (see the module docstring);
    it stops suggesting once the study's budget (trials or trial-epochs) is used."""

    def __init__(self, prep: Prepared, study: optuna.Study, metric: list[str], mode: list[str]) -> None:
        super().__init__(metric=metric, mode=mode)
        self.prep, self.study = prep, study
        self.owner = identity()
        self.running: dict[str, TrialWriter] = {}
        self.recorded: dict[str, Any] = {}  # the last report's training_iteration, per Tune trial

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles the searcher with the experiment (``Tuner.__init__``); the study is
        not picklable (NSGA-II/III samplers hold a thread lock) and lives in the storage
        anyway, so a pickled searcher carries no study and no running trials: a restored
        one re-opens the study (:meth:`__setstate__`), as a resumed ``nasseg search`` does."""
        state = dict(self.__dict__)
        state.update(study=None, running={}, recorded={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.study is None:
            self.study = open_study(self.prep, create=False)
            self.study.sampler = make_sampler(self.prep.cfg, self.prep.space, seed=worker_seed(
                self.prep.cfg.seed, 0, len(self.study.get_trials(deepcopy=False))))

    def suggest(self, trial_id: str) -> dict | str | None:
        s = self.prep.setup
        while True:
            if budget_left(self.prep, self.study) == 0 or exhausted(self.study):
                return Searcher.FINISHED
            writer = TrialWriter(self.study.ask())
            writer.set(owner=self.owner)
            src = TrialSource(writer.trial)
            if s.needs_latency:  # latency is measured on the worker's device: the worker screens
                try:
                    self.prep.space.sample(src, s.in_channels, s.out_channels)
                except ConfigError:
                    pass  # the worker rebuilds it and records why
                break
            # rejected proposals (invalid, over a limit, duplicate) are told here, in the
            # driver, and never become Tune trials (see nasseg.search.proposals)
            screened = screen(s, writer, self.study,
                              lambda: self.prep.space.build(src, s.in_channels, s.out_channels), "cpu",
                              wait=False)
            if not isinstance(screened, Outcome):
                writer.set(outcome="trained")  # accepted: a later proposal of it is a duplicate
                break
            tell(self.study, writer.number, screened)
        self.running[trial_id] = writer
        return {"nasseg_trial": writer.number, "nasseg_params": writer.params,
                "nasseg_alone": bool(writer.get("run_alone"))}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        writer = self.running.get(trial_id)
        if writer is not None:
            _record(writer, result)
            self.recorded[trial_id] = result.get("training_iteration")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        writer = self.running.pop(trial_id, None)
        if writer is None:
            return
        result = result or {}
        if self.recorded.pop(trial_id, None) != result.get("training_iteration"):
            _record(writer, result)  # Tune hands the last report to on_trial_complete again
        state = result.get("nasseg_state")
        if state == "complete" and not error:
            self.study.tell(writer.trial, list(result["nasseg_values"]))
            return
        if state == "fail" and not writer.get("run_alone") and is_out_of_memory(result.get("fail_reason")):
            requeue(self.study, writer, f"{result['fail_reason']} beside other trials; retried alone", alone=True)
            return
        if state != "fail":
            writer.set(fail_reason="the Ray trial errored before reporting (see the Ray logs under "
                                   "the output folder)")
        self.study.tell(writer.trial, state=TrialState.FAIL)


def _record(writer: TrialWriter, result: dict) -> None:
    fields = json.loads(result.get("nasseg_record") or "{}")  # a string: Tune flattens nested results
    limits = fields.pop("_constraints", None)
    if fields:
        writer.set(**fields)
    if limits:
        writer.constrain(limits)


class ReportWriter:
    """A trial writer inside a Ray worker: collects record fields and hands them to the
    driver with the next ``tune.report`` (:meth:`pending`)."""

    def __init__(self, number: int, params: dict[str, Any]) -> None:
        self.number, self.params = number, params
        self.fields: dict[str, Any] = {}
        self.lock = threading.Lock()

    def set(self, **fields: Any) -> None:
        with self.lock:
            self.fields.update(json_safe(fields))

    def get(self, key: str) -> Any:
        return self.fields.get(key)

    def constrain(self, values: dict[str, float]) -> None:
        self.set(_constraints={k: float(v) for k, v in values.items()})

    def pending(self) -> str:
        """The fields set since the last call, as JSON."""
        with self.lock:
            out, self.fields = self.fields, {}
            return json.dumps(out)


def _trainable(config: dict[str, Any], prep: Prepared, trainer: Trainer | None, gpus: float) -> None:
    """One Tune trial: rebuild the sampled network from its params and run the objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_existing(prep.storage_url, prep.cfg.name)
    writer = ReportWriter(int(config["nasseg_trial"]), dict(config["nasseg_params"]))
    setup = prep.setup
    writer.set(worker=f"ray pid {os.getpid()}")
    device = "cuda" if gpus > 0 else "cpu"
    adm = _node_admission(prep, device)
    if adm is not None:  # the ledger is per node, keyed by the physical GPU Ray assigned
        key = f"cuda:{ray.get_gpu_ids()[0]}" if device == "cuda" and ray.get_gpu_ids() else device
        trainer = admitted_trainer(trainer, adm, setup, device, writer.number,
                                   bool(config.get("nasseg_alone")), key=key)
    names = setup.objectives
    nan = float("nan")

    def on_epoch(epoch: int, metrics: dict) -> None:
        tune.report({**dict.fromkeys(names, nan), "epoch": epoch, "dice": float(metrics["dice"]),
                     "nasseg_state": "running", "nasseg_record": writer.pending()})

    outcome = run_objective(setup, writer, study,
                            lambda: prep.space.build(FixedSource(writer.params), setup.in_channels,
                                                     setup.out_channels),
                            device, trainer, on_epoch)
    values = outcome.values or [nan] * len(names)
    tune.report({**dict(zip(names, values)), "nasseg_state": outcome.state, "nasseg_values": values,
                 "fail_reason": outcome.reason or "", "nasseg_record": writer.pending()})


def _node_admission(prep: Prepared, device: str) -> Any:
    """This node's admission controller (ledger in its temp folder), or ``None``."""
    cfg = prep.cfg
    if cfg.trials_per_device <= 1 and cfg.device_memory_mb is None:
        return None
    ledger = Path(tempfile.gettempdir()) / f"nasseg-admission-{cfg.name}.json"
    return Admission(ledger, device_capacity_mb(device, cfg.device_memory_mb), cfg.trials_per_device)


def gpus_per_trial(prep: Prepared) -> float:
    """The study's GPU share per trial: ``resources.gpus_per_trial``, divided by
    ``trials_per_device`` (a whole GPU when trials per device are set on a CUDA study)."""
    res, per = prep.cfg.resources, prep.cfg.trials_per_device
    if per > 1 and any(d.startswith("cuda") for d in prep.cfg.devices):
        return (res.gpus_per_trial or 1.0) / per
    return res.gpus_per_trial


def run_search_ray(study_path: str | Path, *, workers: int | None = None, trials: int | None = None,
                   address: str | None = None, trainer: Trainer | None = None, progress: bool = True,
                   command: str = "", overrides: dict[str, Any] | None = None,
                   trials_per_device: int | None = None, say: Any = None) -> dict[str, Any]:
    """Create or resume the study and run it under Ray Tune (see the module docstring);
    ``overrides`` as for :func:`nasseg.search.runner.run_search`."""
    prep = prepare(study_path, workers=workers, trials=trials, command=command, overrides=overrides,
                   trials_per_device=trials_per_device)
    announce_feasibility(prep, say)
    study = open_study(prep, create=True)
    announce_split(prep, say)
    recover_stale(study, HEARTBEAT_GRACE_S)
    # the Ray searcher is one proposer: its own random stream per resume, as each Optuna
    # worker has (seeded by the study seed alone, a resumed run re-proposed its first networks)
    study.sampler = make_sampler(prep.cfg, prep.space,
                                 seed=worker_seed(prep.cfg.seed, 0, len(study.get_trials(deepcopy=False))))
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
        searcher = NassegSearcher(prep, study, metric=names, mode=modes)
        gpus = gpus_per_trial(prep)
        fn = tune.with_resources(
            tune.with_parameters(_trainable, prep=prep, trainer=trainer, gpus=gpus),
            {"cpu": res.cpus_per_trial, "gpu": gpus})
        tcfg = tune.TuneConfig(search_alg=searcher, num_samples=left if left is not None else -1,
                               max_concurrent_trials=n, time_budget_s=prep.cfg.budget.time_s,
                               reuse_actors=True)
        rcfg = tune.RunConfig(name=f"{prep.cfg.name}_{int(time.time())}",
                              storage_path=str((prep.output_dir / "ray").resolve()), verbose=0,
                              failure_config=tune.FailureConfig(max_failures=2))
        with Monitor(prep, enabled=progress):
            tune.Tuner(fn, tune_config=tcfg, run_config=rcfg).fit()
    finally:
        if started:
            ray.shutdown()
    return summarise(prep)


def _pythonpath() -> str:
    parts = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)
