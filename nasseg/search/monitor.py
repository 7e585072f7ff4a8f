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

from nasseg.search.storage import counted, open_storage


def trial_line(t: FrozenTrial, names: list[str]) -> str:
    """One line describing a finished trial."""
    from nasseg.search.results import arch_summary

    a = t.user_attrs
    if t.state == TrialState.FAIL:
        return f"#{t.number} failed: {a.get('fail_reason', 'unknown reason')}"
    vals = ", ".join(_fmt(n, v) for n, v in zip(names, t.values or []))
    tag = ""
    if a.get("constraint_violation"):
        tag = f" [infeasible: {a['constraint_violation']}, not trained]"
    elif a.get("reused_from") is not None:
        tag = f" [duplicate of #{a['reused_from']}, not retrained]"
    elif a.get("stopped_early"):
        tag = f" [stopped at epoch {a.get('epochs_run')}]"
    return f"#{t.number} {vals}{tag}  {arch_summary(a.get('arch'))}"


def _fmt(name: str, v: float) -> str:
    if name == "dice":
        return f"dice {v:.3f}"
    if name == "params":
        return f"{v / 1e6:.3f} M params"
    if name == "macs":
        return f"{v:.3f} GMACs"
    if name == "latency":
        return f"{v:.1f} ms"
    return f"{v:.1f} MB"


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
        storage = open_storage(self.prep.storage_url)
        study = optuna.load_study(study_name=self.prep.cfg.name, storage=storage)
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
        from nasseg.search.results import front_trials, hypervolume

        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                if self.enabled and not t.user_attrs.get("requeued"):
                    bar.console.print(escape(trial_line(t, names)), highlight=False)
                if self.on_trial:
                    self.on_trial(t)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        run_info = " ".join(f"#{t.number}@e{len(t.user_attrs.get('history') or [])}" for t in running)
        front = front_trials(study, trials)
        hv = hypervolume(study, trials) if "reference_point" in study.user_attrs else float("nan")
        done = sum(counted(t) and t.state.is_finished() for t in trials)
        bar.update(task, completed=done,
                   info=f"front {len(front)} | HV {hv:.3f} | running {run_info or '-'}")
