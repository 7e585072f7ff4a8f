"""The progress display of ``nasseg search``: polls the study storage from a thread.

It shows a bar of counted trials against the budget, the running trials with their
last epoch, one line per finished trial, and the best front so far; reading the
storage means it works the same for one worker, N worker processes and Ray.

Example:
    >>> with Monitor(prep, enabled=True):
    ...     worker_loop(prep)
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nasseg.store import (OBJECTIVES, arch_summary, counted, fail_reason, front, hypervolume, open_existing, retries,
                          trial_record)


def trial_line(t: FrozenTrial, names: list[str], retried: dict[int, FrozenTrial] | None = None) -> str:
    """One line describing a finished trial."""
    r = trial_record(t)
    if t.state == TrialState.FAIL:
        return f"#{t.number} failed: {fail_reason(t, retried or {}) or 'unknown reason'}"
    vals = ", ".join(OBJECTIVES[n].describe(v) for n, v in zip(names, t.values or []))
    tag = ""
    if r.constraint_violation:
        tag = f" [infeasible: {r.constraint_violation}, not trained]"
    elif r.reused_from is not None:
        tag = f" [duplicate of #{r.reused_from}, not retrained]"
    elif r.stopped_early:
        tag = f" [stopped at epoch {r.epochs_run}]"
    return f"#{t.number} {vals}{tag}  {arch_summary(r.arch)}"


def running_line(t: FrozenTrial) -> str:
    """Where a running trial is: ``#3 e2 45/120`` (epoch 2, step 45 of 120), or ``#3 e1``
    (validations done + 1) before its first progress write."""
    r = trial_record(t)
    if r.progress:
        p = r.progress
        return f"#{t.number} e{p['epoch']} {p['step']}/{p['steps']}"
    return f"#{t.number} e{len(r.history or []) + 1}"


class Monitor:
    """Context manager running the display thread (a no-op when ``enabled`` is False)."""

    def __init__(self, prep: Any, enabled: bool = True, interval: float = 1.0,
                 on_trial: Callable[[FrozenTrial], None] | None = None) -> None:
        self.prep, self.enabled, self.interval, self.on_trial = prep, enabled, interval, on_trial
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.console = Console(stderr=True)
        self.seen: set[int] = set()

    def __enter__(self) -> Monitor:
        if self.enabled or self.on_trial:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def _run(self) -> None:
        study = open_existing(self.prep.storage_url, self.prep.cfg.name)
        names = [o for o in self.prep.cfg.objectives]
        total = self.prep.cfg.budget.trials
        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                       disable=not self.enabled, transient=False)
        with bar:
            task = bar.add_task(f"search {self.prep.cfg.name}", total=total, info="")
            self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
            while True:
                final = self.stop.wait(self.interval)
                try:
                    self._tick(study, names, bar, task)
                except Exception as err:  # noqa: BLE001 - the display must never stop the search
                    self.console.print(f"[dim](progress display: {err})[/]")
                if final:
                    return

    def _tick(self, study: optuna.Study, names: list[str], bar: Progress, task: Any) -> None:
        trials = study.get_trials(deepcopy=False)
        retried = retries(trials)
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                if self.enabled:
                    bar.console.print(escape(trial_line(t, names, retried)), highlight=False)
                if self.on_trial:
                    self.on_trial(t)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        run_info = " ".join(running_line(t) for t in running)
        pareto = front(study, trials)
        hv = hypervolume(study, trials)
        done = sum(counted(t, retried) and t.state.is_finished() for t in trials)
        bar.update(task, completed=done,
                   info=f"front {len(pareto)} | HV {hv:.3f} | running {run_info or '-'}")
