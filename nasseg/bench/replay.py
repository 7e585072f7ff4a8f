"""Replay a search strategy against a recorded table instead of training.

One replayed run is a live search with the training replaced by a table lookup:

- a *sampler* proposes an architecture: ``random`` draws uniformly from the table's
  untried architectures (random search in the space, conditioned on the recorded set);
  ``rsnap``/``nsga2``/``nsga2p20``/``tpe``/``gp`` are Optuna 5 samplers and ``local``/``morea``/
  ``predictor`` nasseg's (:mod:`nasseg.search.strategies`, default settings) (``rsnap``: its
  RandomSampler, which shows what snapping alone does) that suggest the space's
  parameters (``space.sample(TrialSource(trial))``, exactly as live), and the proposal
  is *snapped* to the table: an exact match is a duplicate (reused at 0 epochs, as live
  runs reuse a trained identical network); otherwise the nearest untried recorded
  architecture (:class:`Snapper`) is trained. The sampler is told the snapped network's
  objectives (validation Dice, MACs, parameters). :meth:`Table.lookup` refuses anything
  else, so no result is ever invented;
- the network "trains" epoch by epoch along its recorded validation curve (training seed
  ``table.seeds[seed % S]`` for the whole run, as a live study uses one seed); after each
  epoch the optional *stopping rules* (``pareto``: the Pareto-aware rule with the study
  defaults; ``moasha``: :class:`nasseg.search.mofidelity.RungRule`) see the earlier
  trials' curves through :func:`nasseg.search.mofidelity.make_stopper`, the same callback
  a live trial runs;
- the budget is counted in training epochs as live (:func:`budget_left`): a trial starts
  while the epochs spent are below the budget, costs the epochs it ran (an early-stopped
  trial the epochs before it stopped, a duplicate 0), and may end past the budget;
- the result of a trial is its best validation Dice (the engine keeps the best epoch) and
  the *test* Dice at that epoch. The front is chosen on validation Dice and costs; its
  hypervolume is measured with the test Dice (:func:`front_test_hv`).

Example:
    >>> run = replay(table, space, "nsga2+pareto", seed=0, budget=60)       # doctest: +SKIP
    >>> run.spent, len(run.trials)                                          # doctest: +SKIP
    (61, 17)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from nasseg.bench.table import Table
from nasseg.errors import ConfigError
from nasseg.search.mofidelity import make_stopper
from nasseg.store.pareto import normalised_hypervolume, pareto_indices
from nasseg.search.stopping import Curve
from nasseg.search.strategies import LocalSearchSampler, MOREASampler, PredictorSampler
from nasseg.search.study import EarlyStoppingConfig, SamplerConfig

SAMPLERS = ("random", "rsnap", "nsga2", "nsga2p20", "tpe", "gp", "local", "morea", "predictor")
STOPPING = ("pareto", "moasha")
DEFAULT_CURRENT = f"{SamplerConfig().name}+{EarlyStoppingConfig().rule}"
"""nasseg's default search, read from the study defaults (:class:`nasseg.search.study.StudyConfig`
without ``sampler`` and ``early_stopping.rule``). Earlier defaults, still replayable by name:
``random+moasha`` (until issue 22's NAS-Bench-201 evidence) and ``nsga2p20+pareto`` (NSGA-II,
population 20 by the study's rule ``max(4, min(50, trials // 3))``, Pareto-aware stopping)."""
OBJECTIVES = ["dice", "macs", "params"]
DIRECTIONS = ["maximize", "minimize", "minimize"]


@dataclass
class Trial:
    """One replayed trial: which architecture, how long it trained and what it scored."""

    number: int
    arch: int
    epochs_run: int
    val: float
    test: float
    spent_after: int
    reused: bool = False
    stop_reason: str | None = None


@dataclass
class Run:
    strategy: str
    seed: int
    budget: int
    trials: list[Trial] = field(default_factory=list)

    @property
    def spent(self) -> int:
        return self.trials[-1].spent_after if self.trials else 0


def budget_left(spent: int, budget: int) -> bool:
    """True while another trial may start: the live rule of ``budget.trial_epochs``."""
    return spent < budget


def parse_strategy(name: str) -> tuple[str, list[str]]:
    """``"tpe+moasha"`` -> ``("tpe", ["moasha"])``; ``default`` is :data:`DEFAULT_CURRENT`."""
    parts = (DEFAULT_CURRENT if name == "default" else name).split("+")
    sampler, stops = parts[0], parts[1:]
    if sampler not in SAMPLERS or any(s not in STOPPING for s in stops):
        raise ConfigError(f"strategy '{name}': use SAMPLER[+STOP...] with samplers {', '.join(SAMPLERS)} "
                          f"and stopping rules {', '.join(STOPPING)}")
    return sampler, stops


class Snapper:
    """Nearest recorded architecture to a proposal, in the space's parameters.

    Distance: a sum over parameter *groups* (per-stage copies ``stages.<i>.x`` form one
    group and share its weight 1): numbers by ``|a - b| / range``, categories by 0/1, a
    parameter present on one side only by 1. Ties go to the earlier-recorded network.
    """

    def __init__(self, table: Table) -> None:
        names = sorted({k for p in table.space_params for k in p})
        if not names:
            raise ConfigError(f"{table.source}: the table has no space parameters to snap to")
        groups: dict[str, list[str]] = {}
        for n in names:
            groups.setdefault(re.sub(r"\.\d+\.", ".*.", n), []).append(n)
        self.cols: list[tuple[str, float, float | None, np.ndarray, np.ndarray]] = []
        for group, members in groups.items():
            for n in members:
                vals = [p.get(n) for p in table.space_params]
                present = np.array([v is not None for v in vals])
                numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals if v is not None)
                if numeric:
                    arr = np.array([float(v) if v is not None else np.nan for v in vals])
                    span = float(np.nanmax(arr) - np.nanmin(arr)) if present.any() else 0.0
                    self.cols.append((n, 1.0 / len(members), span or 1.0, arr / (span or 1.0), present))
                else:
                    arr = np.array([str(v) for v in vals], dtype=object)
                    self.cols.append((n, 1.0 / len(members), None, arr, present))

    def distances(self, params: dict[str, Any]) -> np.ndarray:
        d = 0.0
        for name, w, span, arr, present in self.cols:
            v = params.get(name)
            if v is None:
                d = d + w * present
                continue
            if span is not None:
                diff = np.abs(arr - float(v) / span)
                d = d + w * np.where(present, np.nan_to_num(diff), 1.0)
            else:
                d = d + w * np.where(present, arr != str(v), 1.0)
        return np.asarray(d, dtype=float)


def front_test_hv(table: Table, trials: list[Trial], reference: dict[str, float]) -> float:
    """Normalised HV (test Dice, MACs, params) of the front chosen on validation Dice."""
    done = [t for t in trials if not t.reused]
    if not done:
        return 0.0
    val_pts = [(t.val, *table.costs(t.arch)) for t in done]
    front = pareto_indices(val_pts, DIRECTIONS)
    test_pts = [(done[i].test, *table.costs(done[i].arch)) for i in front]
    return normalised_hypervolume(test_pts, OBJECTIVES, DIRECTIONS, reference, {"dice": 1.0, "macs": 0.0,
                                                                                  "params": 0.0})


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "rsnap":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=6, seed=seed)
    if name == "nsga2p20":
        return optuna.samplers.NSGAIISampler(population_size=20, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "local":
        return LocalSearchSampler(seed=seed)
    if name == "morea":
        return MOREASampler(seed=seed)
    if name == "predictor":
        return PredictorSampler(seed=seed)
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


def replay(table: Table, space: Any, strategy: str, seed: int, budget: int,
           limits: dict[str, float] | None = None, max_trials: int | None = None,
           early_stopping: EarlyStoppingConfig | None = None, initial: list[str] = ()) -> Run:
    """Replay one search (see the module docstring).

    Args:
        limits: the space's limits (``{"macs": G, "params": n}``, in the units of the objective registry), given to Optuna as
            constraint values (every recorded network is feasible, so they are <= 0).
        max_trials: stop after this many trials (duplicates included); default
            ``20 * ceil(budget / epochs)``.
        early_stopping: the stopping rules' settings (default: the study defaults); the
            strategy's ``+pareto``/``+moasha`` choose the rule.
        initial: architecture ids tried first, in order (the study's ``initial_archs``;
            Optuna samplers get them enqueued); each must be in the table.
    """
    sampler_name, stops = parse_strategy(strategy)
    rng = np.random.default_rng(seed)
    s_col = seed % len(table.seeds)
    E = table.epochs
    es = early_stopping or EarlyStoppingConfig()
    limits = limits or {}
    max_trials = max_trials or 20 * math.ceil(budget / E)
    snapper = None if sampler_name == "random" else Snapper(table)
    study = None
    if sampler_name != "random":
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(directions=DIRECTIONS, sampler=_sampler(sampler_name, seed))
    run = Run(strategy, seed, budget)
    tried: dict[int, Trial] = {}
    curves: list[Curve] = []
    spent = 0
    queue = [table.lookup(a) for a in initial]
    for number in range(max_trials):
        if not budget_left(spent, budget):
            break
        if queue and study is not None:
            study.enqueue_trial(table.space_params[queue[0]])
        trial = study.ask() if study is not None else None
        if queue and trial is None:
            arch = queue.pop(0)
        elif trial is None:
            untried = [i for i in range(len(table)) if i not in tried]
            if not untried:
                break
            arch = int(untried[int(rng.integers(len(untried)))])
        else:
            params = {}
            space.sample(_Recording(trial, params), 3, 1)
            d = snapper.distances(params)
            if queue:
                d = np.where(np.arange(len(table)) == queue.pop(0), 0.0, np.inf)
            exact = [i for i in np.flatnonzero(d <= 1e-12) if int(i) in tried]
            if exact:
                arch = int(exact[0])
            else:
                d[list(tried)] = np.inf
                if not np.isfinite(d).any():
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    break
                arch = int(np.argmin(d))
        if arch in tried:
            prev = tried[arch]
            t = Trial(number, arch, 0, prev.val, prev.test, spent, reused=True)
        else:
            t = _train(table, arch, s_col, number, stops, es, curves, E)
            spent += t.epochs_run
            t.spent_after = spent
            tried[arch] = t
        run.trials.append(t)
        if study is not None:
            gmacs, nparams = table.costs(arch)
            for key, value in (("macs", gmacs), ("params", nparams)):
                if key in limits:
                    trial.set_constraint(key, value - limits[key])
            study.tell(trial, [t.val, gmacs, nparams])
    return run


def _train(table: Table, arch: int, s_col: int, number: int, stops: list[str], es: EarlyStoppingConfig,
           curves: list[Curve], E: int) -> Trial:
    """Walk the recorded curve epoch by epoch through the live stopping callbacks."""
    val, test = table.val[arch, s_col], table.test[arch, s_col]
    curve = Curve(number, table.arch_ids[arch], table.costs(arch))
    stoppers = [make_stopper(es.model_copy(update={"enabled": True, "rule": r}), curve, lambda: curves, E)
                for r in stops]
    curves.append(curve)
    reason, epochs_run = None, E
    for e in range(1, E + 1):
        curve.dice[e] = float(val[e - 1])
        hit = [s for s in stoppers if s(e, {"dice": float(val[e - 1])})]
        if hit:
            reason, epochs_run = hit[0].reason, e
            break
    best = int(np.argmax(val[:epochs_run]))
    return Trial(number, arch, epochs_run, float(val[best]), float(test[best]), 0, stop_reason=reason)


class _Recording:
    """A TrialSource that also records every suggested parameter."""

    def __init__(self, trial: optuna.Trial, params: dict[str, Any]) -> None:
        self.trial, self.params = trial, params

    def pick(self, name: str, leaf: Any, where: Any) -> Any:
        value = leaf.suggest(self.trial, name)
        self.params[name] = value
        return value
