"""What nasseg's search strategies share: a sampler that plans one whole configuration per trial.

Local search, MOREA and the predictor each decide a complete configuration (a parent's
parameters with one changed, or a new random one) when a trial asks its first parameter.
The plan is served through Optuna's public sampler interface:

- :meth:`PlannedSampler.infer_relative_search_space`: the parameters every finished trial
  has (Optuna's ``IntersectionSearchSpace``, as NSGA-II uses);
- :meth:`PlannedSampler.sample_relative`: the plan's values for those;
- :meth:`PlannedSampler.sample_independent`: the plan's value for any other parameter
  (conditional ones, e.g. ``stages.block.segnetr.window_size``); where the plan has none (a
  conditional parameter a mutation switched on) or its value is outside the distribution
  asked, a random value that keeps the trial's configuration unknown, if one is found.

*Known* configurations are every earlier trial's parameters, whatever its state: trained,
failed, running in another worker, or told infeasible (``Trial.set_constraint`` > 0,
:attr:`optuna.trial.FrozenTrial.constraints`). A plan never repeats one: a plan matches a
known trial when it agrees with every parameter that trial has (so conditional parameters a
trial never asked do not hide a repeat). Only feasible, complete trials with finite values
are *results* (parents, fronts, training data).

Example:
    >>> class Fixed(PlannedSampler):
    ...     def propose(self, study, trial, history):
    ...         return {"x": 1}
    >>> study = optuna.create_study(sampler=Fixed(seed=0))
    >>> study.ask().suggest_int("x", 0, 3)
    1
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


MAX_ENUMERATED = 32
"""An int parameter with at most this many values has all of them as neighbours; a wider one
its two nearest values on each side (on the log grid for ``log=True``)."""
FLOAT_NEIGHBOURS = 4
"""A float parameter's neighbours: this many Gaussian steps (sd 10 % of its internal range)."""
RANDOM_TRIES = 200
"""Random draws tried before a plan gives up on finding an unknown configuration."""


@dataclass
class History:
    """What a strategy sees of a study when it plans a trial.

    Attributes:
        results: the feasible complete trials with finite values, in the order they finished.
        points: their objective values, every objective turned to "larger is better",
            shape ``(len(results), n_objectives)``.
        distributions: the latest distribution of every parameter seen so far.
    """

    results: list[FrozenTrial]
    points: np.ndarray
    distributions: dict[str, BaseDistribution]
    _finished: dict[tuple[str, ...], set[tuple[Any, ...]]] = field(default_factory=dict)
    _pending: dict[tuple[str, ...], set[tuple[Any, ...]]] = field(default_factory=dict)

    def known(self, plan: dict[str, Any]) -> bool:
        """Whether executing ``plan`` would give an earlier trial's parameters again."""
        names = set(plan)
        groups = [*self._finished.items(), *self._pending.items()]
        for group, values in groups:
            if set(group) <= names and tuple(plan[n] for n in group) in values:
                return True
        for group, values in groups:                    # every completion of a conditional
            extra = [i for i, n in enumerate(group) if n not in names]   # parameter known?
            if not extra or not names <= set(group):
                continue
            shared = [i for i, n in enumerate(group) if n in names]
            seen = {tuple(v[i] for i in extra) for v in values if all(v[i] == plan[group[i]] for i in shared)}
            if seen and len(seen) >= _count([self.distributions.get(group[i]) for i in extra]):
                return True
        return False

    def add(self, plan: dict[str, Any]) -> None:
        """Count ``plan`` as known (a plan made for another trial in this process)."""
        group = tuple(sorted(plan))
        self._pending.setdefault(group, set()).add(tuple(plan[n] for n in group))

    def front(self, among: Sequence[int] | None = None) -> list[int]:
        """Indices into :attr:`results` of the non-dominated results (of ``among`` if given)."""
        idx = np.arange(len(self.results)) if among is None else np.asarray(among, dtype=int)
        if len(idx) == 0:
            return []
        return [int(idx[i]) for i in front_indices(self.points[idx])]


def front_indices(points: np.ndarray) -> list[int]:
    """Rows of ``points`` (all maximised, ``(n, m)``) that no other row dominates, ascending.

    Lexicographically best first: a dominating point always comes before the points it
    dominates, so each point is compared with the front found so far only (O(n * front)).
    """
    pts = np.asarray(points, dtype=float)
    order = np.lexsort(tuple(-pts[:, j] for j in reversed(range(pts.shape[1]))))
    front: list[int] = []
    for i in order:
        if front:
            f = pts[front]
            if ((f >= pts[i]).all(1) & (f > pts[i]).any(1)).any():
                continue
        front.append(int(i))
    return sorted(front)


def _count(dists: list[BaseDistribution | None]) -> float:
    """How many configurations ``dists`` span (``inf`` with a float one)."""
    n = 1.0
    for d in dists:
        if isinstance(d, CategoricalDistribution):
            n *= len(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            n *= (d.high - d.low) // d.step + 1
        else:
            return math.inf
    return n


def feasible(t: FrozenTrial) -> bool:
    """Every constraint value (``Trial.set_constraint``) is <= 0 (none set: feasible)."""
    return all(v <= 0 for v in t.constraints.values())


_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


@dataclass
class Seen:
    """What a sampler has read from a study's finished trials (they no longer change)."""

    numbers: set[int] = field(default_factory=set)
    known: dict[tuple[str, ...], set[tuple[Any, ...]]] = field(default_factory=dict)
    results: list[FrozenTrial] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)


def history(study: optuna.Study, trial: FrozenTrial, seen: Seen | None = None) -> History:
    """The :class:`History` of ``study`` as seen by the planning of ``trial``.

    ``seen`` carries what earlier plans of the same sampler read from finished trials, so
    each finished trial is read once (a 500-trial replay: 500 reads, not 125,000)."""
    seen = Seen() if seen is None else seen
    signs = np.array([1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions])
    pending: dict[tuple[str, ...], set[tuple[Any, ...]]] = {}
    dists: dict[str, BaseDistribution] = {}
    for t in study.get_trials(deepcopy=False):
        if t.number == trial.number or t.number in seen.numbers:
            continue
        group = tuple(sorted(t.params))
        if t.state not in _FINISHED:
            dists.update(t.distributions)
            if group:
                pending.setdefault(group, set()).add(tuple(t.params[n] for n in group))
            continue
        seen.numbers.add(t.number)
        seen.distributions.update(t.distributions)
        if group:
            seen.known.setdefault(group, set()).add(tuple(t.params[n] for n in group))
        if (t.state == TrialState.COMPLETE and t.values is not None
                and all(math.isfinite(v) for v in t.values) and feasible(t)):
            seen.results.append(t)
            seen.points.append(np.asarray(t.values, dtype=float) * signs)
    pts = np.array(seen.points, dtype=float).reshape(len(seen.results), len(signs))
    return History(list(seen.results), pts, {**seen.distributions, **dists}, seen.known, pending)


def neighbours(params: dict[str, Any], dists: dict[str, BaseDistribution],
               rng: np.random.RandomState) -> list[tuple[str, Any]]:
    """Every one-parameter change ``(name, new value)`` of ``params`` (see the module constants)."""
    out: list[tuple[str, Any]] = []
    for name, value in params.items():
        d = dists.get(name)
        if isinstance(d, CategoricalDistribution):
            out += [(name, c) for c in d.choices if c != value]
        elif isinstance(d, IntDistribution):
            out += [(name, v) for v in _int_neighbours(d, int(value))]
        elif isinstance(d, FloatDistribution):
            out += [(name, _float_step(d, float(value), rng)) for _ in range(FLOAT_NEIGHBOURS)]
    return out


def _int_neighbours(d: IntDistribution, value: int) -> list[int]:
    if d.log:
        grid = sorted({int(round(math.exp(x))) for x in np.linspace(math.log(d.low), math.log(d.high), 33)})
    else:
        grid = list(range(d.low, d.high + 1, d.step))
    if len(grid) <= MAX_ENUMERATED:
        return [v for v in grid if v != value]
    pos = int(np.searchsorted(grid, value))
    return [v for v in grid[max(0, pos - 2): pos + 3] if v != value]


def _float_step(d: FloatDistribution, value: float, rng: np.random.RandomState) -> float:
    lo, hi, v = (math.log(d.low), math.log(d.high), math.log(value)) if d.log else (d.low, d.high, value)
    x = float(np.clip(v + rng.normal(0.0, 0.1 * (hi - lo)), lo, hi))
    x = math.exp(x) if d.log else x
    if d.step is not None:
        x = d.low + round((x - d.low) / d.step) * d.step
    return float(min(max(x, d.low), d.high))


def random_value(d: BaseDistribution, rng: np.random.RandomState) -> Any:
    """One uniform draw from ``d`` (log-uniform for ``log=True``), as Python scalars."""
    if isinstance(d, CategoricalDistribution):
        return d.choices[int(rng.randint(len(d.choices)))]
    if isinstance(d, IntDistribution):
        if d.log:
            x = math.exp(rng.uniform(math.log(d.low - 0.5), math.log(d.high + 0.5)))
            return int(min(d.high, max(d.low, round(x))))
        return int(d.low + d.step * rng.randint((d.high - d.low) // d.step + 1))
    assert isinstance(d, FloatDistribution)
    if d.log:
        return float(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
    if d.step is not None:
        x = d.low + d.step * rng.randint(int(round((d.high - d.low) / d.step)) + 1)
        return float(min(max(x, d.low), d.high))
    return float(rng.uniform(d.low, d.high))


class PlannedSampler(BaseSampler):
    """Base class: serve a per-trial plan from :meth:`propose` (see the module docstring).

    Args:
        seed: seed of the strategy's random choices (``None``: nondeterministic).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._space = IntersectionSearchSpace(include_pruned=True)
        self._plans: dict[tuple[str, int], tuple[dict[str, Any], History]] = {}
        self._seen: dict[str, Seen] = {}
        self._lock = threading.Lock()

    def propose(self, study: optuna.Study, trial: FrozenTrial, hist: History) -> dict[str, Any] | None:
        """The configuration for ``trial`` (``None`` or ``{}``: random parameters)."""
        raise NotImplementedError

    def random_plan(self, hist: History) -> dict[str, Any]:
        """A random configuration over every parameter seen so far that is not known
        (``{}`` if :data:`RANDOM_TRIES` draws found none, or nothing was seen yet)."""
        if not hist.distributions:
            return {}
        for _ in range(RANDOM_TRIES):
            plan = {n: random_value(d, self._rng) for n, d in hist.distributions.items()}
            if not hist.known(plan):
                return plan
        return {}

    def mutants(self, parent: FrozenTrial, hist: History) -> list[dict[str, Any]]:
        """The unknown one-parameter mutations of ``parent``."""
        out = []
        for name, value in neighbours(parent.params, hist.distributions, self._rng):
            plan = {**parent.params, name: value}
            if not hist.known(plan):
                out.append(plan)
        return out

    def __getstate__(self) -> dict[str, Any]:          # picklable (Ray ships the searcher)
        state = self.__dict__.copy()
        state["_lock"], state["_plans"], state["_seen"] = None, {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reseed_rng(self) -> None:
        self._rng.seed()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._space.calculate(study)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        plan, _ = self._plan(study, trial)
        out = {}
        for name, d in search_space.items():
            out[name] = plan[name] if _fits(d, plan.get(name, _MISSING)) else random_value(d, self._rng)
        return out

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan, hist = self._plan(study, trial)
        value = plan.get(param_name, _MISSING)
        if _fits(param_distribution, value):
            return value
        value = random_value(param_distribution, self._rng)
        for _ in range(RANDOM_TRIES if plan else 0):     # a parameter the plan lacks (conditional):
            if not hist.known({**plan, param_name: value}):   # a value that keeps the trial new
                break
            value = random_value(param_distribution, self._rng)
        with self._lock:
            plan[param_name] = value
        return value

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        with self._lock:
            self._plans.pop((study.study_name, trial.number), None)

    def _plan(self, study: optuna.Study, trial: FrozenTrial) -> tuple[dict[str, Any], History]:
        key = (study.study_name, trial.number)
        with self._lock:
            if key not in self._plans:
                hist = history(study, trial, self._seen.setdefault(study.study_name, Seen()))
                for (name, number), (other, _) in self._plans.items():
                    if name == study.study_name and number != trial.number and other:
                        hist.add(other)
                self._plans[key] = (dict(self.propose(study, trial, hist) or {}), hist)
            return self._plans[key]


_MISSING = object()


def _fits(d: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a value of ``d`` (what a trial accepts from a sampler)."""
    if value is _MISSING:
        return False
    if isinstance(d, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in d.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not d.low <= value <= d.high:
        return False
    if isinstance(d, IntDistribution):
        return isinstance(value, int) and (value - d.low) % d.step == 0
    step = getattr(d, "step", None)
    return step is None or abs((value - d.low) / step - round((value - d.low) / step)) < 1e-8
