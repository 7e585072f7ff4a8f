"""A predictor over architecture encodings with Thompson sampling (BANANAS-style), multi-objective.

White, Neiswanger, Savani, "BANANAS: Bayesian optimization with neural architectures for
neural architecture search" (AAAI 2021): fit a predictor with uncertainty on the encodings
of the evaluated networks, generate candidates by mutating the best ones, score each
candidate by *independent Thompson sampling* (one draw from its own predictive
distribution) and evaluate the best score. Here:

- encoding: one-hot for a categorical parameter, ``[0, 1]`` (on the log scale where the
  distribution is log) for a number, concatenated in parameter-name order (``p`` params);
- predictor: one Gaussian process per objective with the degree-2 polynomial kernel
  ``k(x, x') = (1 + <x, x'> / p) ** 2`` (every pairwise interaction of the choices, as a
  linear model over pairs of operations would have; BANANAS's MLP ensemble over path
  encodings needs a cell DAG, nasseg's spaces are parameter lists), targets standardised,
  the noise ratio chosen from {0.01, 0.03, 0.1, 0.3, 1} by marginal likelihood;
- candidates: every unknown one-parameter mutation of the current front plus up to
  :data:`RANDOM_CANDIDATES` random unknown configurations, at most :data:`MAX_CANDIDATES`;
- acquisition with several objectives: each candidate's draws (all objectives turned to
  maximised, scaled to the observed range) are scalarised by a random augmented Chebyshev
  weighting, one weight vector per proposal (ParEGO, Knowles 2006; Paria, Kandasamy,
  Póczos 2020 for Thompson sampling with random scalarisations);
- the first ``n_startup_trials`` results: random unknown configurations.

Example:
    >>> sampler = PredictorSampler(n_startup_trials=10, seed=0)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial

from nasseg.search.strategies.base import History, PlannedSampler

RANDOM_CANDIDATES = 100
MAX_CANDIDATES = 300
NOISE_RATIOS = (0.01, 0.03, 0.1, 0.3, 1.0)
MAX_TRAINING = 400
"""The GP is fitted on the most recent results up to this many (cubic cost)."""


def encode(params_list: list[dict[str, Any]], dists: dict[str, BaseDistribution]) -> np.ndarray:
    """Encodings of configurations, shape ``(len(params_list), width)`` (see the module docstring)."""
    cols = []
    for name in sorted(dists):
        d = dists[name]
        if isinstance(d, CategoricalDistribution):
            for c in d.choices:
                cols.append([1.0 if name in p and p[name] == c else 0.0 for p in params_list])
        else:
            lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
            span = (hi - lo) or 1.0
            cols.append([((math.log(p[name]) if d.log else p[name]) - lo) / span if name in p else 0.0
                         for p in params_list])
    return np.array(cols, dtype=float).T.reshape(len(params_list), len(cols))


class _GP:
    """Exact GP regression with the polynomial kernel, one output."""

    def __init__(self, X: np.ndarray, y: np.ndarray, p: int) -> None:
        self.X, self.p = X, p
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mu) / self.sd
        K = self.kernel(X, X)
        self.scale = float(np.mean(np.diag(K))) or 1.0
        K = K / self.scale
        best = None
        n = len(z)
        for r in NOISE_RATIOS:
            L = np.linalg.cholesky(K + r * np.eye(n))
            a = np.linalg.solve(L.T, np.linalg.solve(L, z))
            amp = max(float(z @ a) / n, 1e-12)
            nll = 0.5 * n * math.log(amp) + float(np.log(np.diag(L)).sum())
            if best is None or nll < best[0]:
                best = (nll, L, a, amp)
        _, self.L, self.alpha, self.amp = best

    def kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return (1.0 + A @ B.T / self.p) ** 2

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Ks = self.kernel(Xs, self.X) / self.scale
        mean = Ks @ self.alpha
        v = np.linalg.solve(self.L, Ks.T)
        kss = (1.0 + (Xs * Xs).sum(1) / self.p) ** 2 / self.scale
        var = np.clip(kss - (v * v).sum(0), 1e-12, None) * self.amp
        return self.mu + self.sd * mean, self.sd * np.sqrt(var)


class PredictorSampler(PlannedSampler):
    """GP-predictor Thompson sampling over mutations of the front (see the module docstring).

    Args:
        n_startup_trials: random configurations before the predictor is used (default 10).
        seed: seed of the random choices.
    """

    def __init__(self, n_startup_trials: int = 10, seed: int | None = None) -> None:
        super().__init__(seed)
        self.n_startup_trials = max(2, n_startup_trials)

    def propose(self, study: optuna.Study, trial: FrozenTrial, hist: History) -> dict[str, Any] | None:
        if len(hist.results) < self.n_startup_trials:
            return self.random_plan(hist)
        cands = [c for i in hist.front() for c in self.mutants(hist.results[i], hist)]
        for _ in range(RANDOM_CANDIDATES):
            c = self.random_plan(hist)
            if c:
                cands.append(c)
        if not cands:
            return self.random_plan(hist)
        if len(cands) > MAX_CANDIDATES:
            cands = [cands[int(i)] for i in self._rng.choice(len(cands), MAX_CANDIDATES, replace=False)]
        train = hist.results[-MAX_TRAINING:]
        Y = hist.points[-MAX_TRAINING:]
        X = encode([t.params for t in train], hist.distributions)
        Xc = encode(cands, hist.distributions)
        p = max(1, len(hist.distributions))
        draws = np.empty((len(cands), Y.shape[1]))
        for j in range(Y.shape[1]):
            mean, sd = _GP(X, Y[:, j], p).predict(Xc)
            draws[:, j] = mean + sd * self._rng.standard_normal(len(cands))
        lo, hi = Y.min(0), Y.max(0)
        scaled = (draws - lo) / np.where(hi > lo, hi - lo, 1.0)
        w = self._rng.dirichlet(np.ones(Y.shape[1]))
        score = (w * scaled).min(1) + 0.05 * (w * scaled).sum(1)
        return cands[int(np.argmax(score))]
