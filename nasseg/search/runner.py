"""The Optuna backend: ``nasseg search STUDY.yaml [--workers N]``.

``--workers N`` starts N processes that share the study storage (a SQLite file or a
journal file by default). Processes rather than threads: each trial is a CPU- or
GPU-bound torch training that should own its threads and device, a crash (out of
memory, a segfault in a kernel) takes down one worker and not the study, and the
same recovery that survives a killed run covers a killed worker.

Each worker repeats, holding a lock file in the output folder: recover stale trials
(:func:`~nasseg.store.study.recover_stale`), check the budget, ``study.ask()`` and claim
the trial (:mod:`nasseg.store.claims`); then, without the lock, it runs
:func:`~nasseg.search.objective.run_objective` and tells the result. Running the same
command again continues the same study: finished trials are kept, trials of dead
processes are failed and re-queued, and the budget counts what is already done (a
re-proposed, already trained network is not counted; see :mod:`nasseg.search.proposals`).
Each worker samples with its own seed, and dies with the parent process.

Example:
    >>> summary = run_search("studies/quickstart.yaml")
    >>> summary["complete"], summary["front"]
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from nasseg.data.check import split_notes
from nasseg.search import feasibility
from nasseg.search.admission import admitted_trainer, needs_alone_retry, study_admission
from nasseg.search.monitor import Monitor
from nasseg.search.objective import Outcome, Trainer, run_objective
from nasseg.lifeline import die_with_parent
from nasseg.search.proposals import budget_used, distinct_counts, used_up, worker_seed
from nasseg.search.samplers import exhausted, make_sampler
from nasseg.search.verdict import search_verdict
from nasseg.search.setup import Prepared, open_study, prepare
from nasseg.search.sources import TrialSource
from nasseg.store import (TrialWriter, counted, epochs_trained, front, open_existing, outcome_counts,
                          recover_stale, retries)
from nasseg.store.claims import HEARTBEAT_GRACE_S, claim, run_lock
from nasseg.store.read import field
from nasseg.store.study import enqueue_retry


def budget_left(prep: Prepared, study: optuna.Study) -> int | None:
    """Networks still to train under the budget (``None`` when trials are not what limits
    it): ``budget.trials`` counts trained networks, not proposals (see
    :mod:`nasseg.search.proposals`). With a ``trial_epochs`` budget, 0 once the epochs
    trained (running trials counted in full) reach it.
    """
    budget = prep.cfg.budget
    trials = study.get_trials(deepcopy=False)
    if used_up(trials):
        return 0  # the sampler keeps re-proposing trained networks: the space is used up
    if budget.trial_epochs is not None:
        spent = sum(prep.setup.train.epochs if t.state == TrialState.RUNNING else epochs_trained(t)
                    for t in trials)
        if spent >= budget.trial_epochs:
            return 0
    if budget.trials is None:
        return None
    trained, _ = budget_used(trials)
    return max(0, budget.trials - trained)


def proposal_time(trials: list) -> dict[str, float]:
    """``{"screen_seconds", "wall_seconds"}``: the time spent screening proposals (sampling,
    building, counting costs, checking limits and duplicates) and the study's wall time
    (first trial started to last finished), summed over every run of the study."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    return {"screen_seconds": round(sum(field(t, "screen_seconds") or 0.0 for t in trials), 2),
            "wall_seconds": round(wall, 1)}


def announce_split(prep: Prepared, say: Callable[[str], None] | None) -> None:
    """Say which near-duplicate families the study's split keeps together, and warn when
    groups are likely but undeclared (:func:`nasseg.data.check.split_notes`)."""
    for line in split_notes(prep.setup.data) if say is not None else []:
        say(line)


def announce_feasibility(prep: Prepared, say: Callable[[str], None] | None) -> None:
    """Estimate the space's feasible fraction (:mod:`nasseg.search.feasibility`): refuse a
    space with none, and say so before the search starts when it is low."""
    if not prep.setup.limits:
        return
    est = feasibility.check(prep.space, prep.setup, seed=prep.cfg.seed)
    if est.fraction < feasibility.LOW and say is not None:
        say(f"{est.line()}: most proposals will be rejected before training (they do not use up "
            "the budget)")


def tell(study: optuna.Study, number: int, outcome: Outcome) -> None:
    """Tell Optuna a trial's outcome (COMPLETE with values, or FAIL)."""
    if outcome.state == "complete":
        study.tell(number, outcome.values)
    else:
        study.tell(number, state=TrialState.FAIL)


def requeue(study: optuna.Study, writer: TrialWriter, reason: str, alone: bool = False) -> None:
    """Fail our own interrupted trial and enqueue its params again (``alone``: the copy
    trains alone on its device, see :mod:`nasseg.search.admission`)."""
    writer.set(fail_reason=f"interrupted: {reason}; re-queued")
    study.tell(writer.trial, state=TrialState.FAIL)
    enqueue_retry(study, writer.params, writer.number, reason, writer.get("initial_arch"), alone=alone)


def worker_loop(prep: Prepared, worker: int = 0, device: str = "cpu", trainer: Trainer | None = None,
                deadline: float | None = None, num_threads: int | None = None) -> int:
    """Run trials until the budget or the deadline is reached; returns how many it ran."""
    if num_threads:
        torch.set_num_threads(num_threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(prep, create=False)
    # its own random stream per worker and per resume: no replay of earlier proposals
    study.sampler = make_sampler(prep.cfg, prep.space,
                                 seed=worker_seed(prep.cfg.seed, worker, len(study.get_trials(deepcopy=False))))
    setup = prep.setup
    adm = study_admission(prep.cfg, prep.output_dir)
    if num_threads and setup.train.num_threads is None:
        setup = _replace(setup, train=setup.train.model_copy(update={"num_threads": num_threads}))
    ran = 0
    while True:
        with run_lock(prep.output_dir):
            recover_stale(study, HEARTBEAT_GRACE_S)
            left = budget_left(prep, study)
            if (left is not None and left <= 0) or (deadline is not None and time.time() >= deadline) \
                    or exhausted(study):
                return ran
            trial = study.ask()
            writer = claim(TrialWriter(trial), worker=worker)
        alone = bool(writer.get("run_alone"))
        run = trainer if adm is None else admitted_trainer(trainer, adm, setup, device,
                                                           trial.number, alone)
        try:
            outcome = run_objective(
                setup, writer, study,
                lambda: prep.space.build(TrialSource(trial), setup.in_channels, setup.out_channels),
                device, run)
        except KeyboardInterrupt:
            requeue(study, writer, "stopped by the user (Ctrl-C)", alone=alone)
            raise
        if adm is not None and needs_alone_retry(outcome, alone):
            requeue(study, writer, f"{outcome.reason} beside other trials; retried alone on {device}", alone=True)
        else:
            tell(study, trial.number, outcome)
        ran += 1


def _replace(setup: Any, **kw: Any) -> Any:
    return replace(setup, **kw)


def _worker_main(prep: Prepared, worker: int, device: str, trainer: Trainer | None,
                 deadline: float | None, num_threads: int, parent: int) -> None:
    die_with_parent(parent)  # a killed parent takes its workers with it
    with contextlib.suppress(KeyboardInterrupt):
        worker_loop(prep, worker, device, trainer, deadline, num_threads)


def run_search(study_path: str | Path, *, workers: int | None = None, trials: int | None = None,
               trainer: Trainer | None = None, progress: bool = True, command: str = "",
               on_trial: Callable[[Any], None] | None = None,
               overrides: dict[str, Any] | None = None, trials_per_device: int | None = None,
               say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Create or resume the study of ``study_path`` and run it to its budget.

    Args:
        study_path: the study YAML.
        workers: processes sharing the storage (default: the study's ``workers``).
        trials: override the study's trial budget.
        trainer: the training function (tests pass a counting wrapper of the real one).
        progress: show the rich progress display.
        command: the command line, stored with a new study.
        overrides: study fields replaced for this run (``device``, ``epochs``, ``time_s``,
            ``output_dir``; see :func:`nasseg.search.setup.prepare`).
        trials_per_device: override the study's ``trials_per_device`` (``--trials-per-gpu``).
        say: prints a line before the search starts (the feasibility estimate when the
            space's feasible fraction is low).

    Returns:
        A summary: counts by state, the storage URL, the Pareto set's trial numbers.
    """
    prep = prepare(study_path, workers=workers, trials=trials, command=command, overrides=overrides,
                   trials_per_device=trials_per_device)
    announce_feasibility(prep, say)
    study = open_study(prep, create=True)
    announce_split(prep, say)
    recover_stale(study, HEARTBEAT_GRACE_S)
    n = prep.cfg.workers
    deadline = time.time() + prep.cfg.budget.time_s if prep.cfg.budget.time_s else None
    devices = prep.cfg.devices
    threads = max(1, (os.cpu_count() or 1) // n)
    with Monitor(prep, enabled=progress, on_trial=on_trial):
        if n == 1:
            worker_loop(prep, 0, devices[0], trainer, deadline, None)
        else:
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_worker_main, args=(prep, i, devices[i % len(devices)], trainer,
                                                            deadline, threads, os.getpid()), daemon=False)
                     for i in range(n)]
            for p in procs:
                p.start()
            try:
                for p in procs:
                    p.join()
            except KeyboardInterrupt:
                for p in procs:
                    p.join(timeout=60)
                raise
    return summarise(prep)


def summarise(prep: Prepared) -> dict[str, Any]:
    """Counts by state and the Pareto set of the study (read back from the storage)."""
    study = open_existing(prep.storage_url, prep.cfg.name)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    retried = retries(trials)
    return {"study": prep.cfg.name, "storage": prep.storage_url, "states": states,
            "outcomes": outcome_counts(trials), **proposal_time(trials),
            "counted": sum(counted(t, retried) for t in trials), **distinct_counts(trials),
            "front": [t.number for t in front(study, trials)], "verdict": search_verdict(study, trials)}


__all__ = ["prepare", "run_search", "summarise", "worker_loop"]
