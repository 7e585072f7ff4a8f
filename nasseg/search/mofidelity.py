"""Multi-objective asynchronous successive halving (MO-ASHA), stopping variant.

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020)
keeps a trial running past a *rung* (an epoch ``r_min * eta**k``) only if it is in the
top ``1/eta`` of all results recorded at that rung. MO-ASHA (Schmucker et al.,
"Multi-objective Asynchronous Successive Halving", 2021; Syne Tune's ``MOASHA``) ranks
the results at a rung by non-dominated sorting instead of one metric. Here the vector
at a rung is (best validation Dice up to the rung, then every cost objective, all known
at t = 0); within a front, ties are broken by NSGA-II's crowding distance (larger first).

Rule for trial T after epoch e, when e is a rung and e < the last epoch:
``R`` = the results at rung e of every earlier trial that reached it, plus T's;
T continues iff its position in the (rank, -crowding) order of ``R`` is
``< ceil(len(R) / eta)``. With one result, it continues.

The rule has the shape of :func:`nasseg.search.stopping.should_stop` (the same
:class:`~nasseg.search.stopping.Curve` records), so it runs live as a training
callback (:class:`RuleStopper`) and in replay (:mod:`nasseg.bench.replay`).

Example:
    >>> rule = RungRule(r_min=1, eta=2)
    >>> rule.rungs(8)
    [1, 2, 4]
    >>> a = Curve(0, "a", (1.0,), {1: 0.8}); b = Curve(1, "b", (1.0,), {1: 0.5})
    >>> rule.decide(b, 1, [a])[0]            # b is dominated by a at rung 1: stop
    True
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasseg.search.stopping import Curve, ParetoStopper


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Front index (0 = non-dominated) of every row of ``points`` (all maximised), shape ``(n,)``."""
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    ge = (pts[:, None, :] >= pts[None, :, :]).all(-1)
    gt = (pts[:, None, :] > pts[None, :, :]).any(-1)
    dom = ge & gt                      # dom[i, j]: i dominates j
    ranks = np.full(n, -1)
    left = np.ones(n, dtype=bool)
    r = 0
    while left.any():
        front = left & ~dom[left].any(0)
        ranks[front] = r
        left &= ~front
        r += 1
    return ranks


def crowding(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one set of points (extremes get ``inf``)."""
    pts = np.asarray(points, dtype=float)
    n, m = pts.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(pts[:, k], kind="stable")
        span = pts[order[-1], k] - pts[order[0], k]
        out[order[0]] = out[order[-1]] = np.inf
        if span > 0:
            out[order[1:-1]] += (pts[order[2:], k] - pts[order[:-2], k]) / span
    return out


def priority(points: np.ndarray) -> np.ndarray:
    """Row indices of ``points`` best first: by front, then by crowding distance (descending)."""
    ranks = nondominated_ranks(points)
    crowd = np.zeros(len(points))
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding(points[idx])
    return np.lexsort((-crowd, ranks))


@dataclass(frozen=True)
class RungRule:
    """MO-ASHA's stopping rule (see the module docstring)."""

    r_min: int = 1
    eta: int = 2

    def rungs(self, epochs: int) -> list[int]:
        """Rung epochs below ``epochs`` (the last epoch is not a rung: nothing is left to save)."""
        out, r = [], self.r_min
        while r < epochs:
            out.append(r)
            r *= self.eta
        return out

    def decide(self, curve: Curve, epoch: int, others: Sequence[Curve],
               epochs: int | None = None) -> tuple[bool, str | None]:
        """``(stop, reason)`` for ``curve`` after ``epoch`` given the earlier trials ``others``."""
        if epoch not in self.rungs(epochs or epoch + 1):
            return False, None
        mine = curve.best_until(epoch)
        if mine is None:
            return False, None
        seen: set[str] = {curve.arch_id}
        pts = [(mine, *(-c for c in curve.costs))]
        for s in others:
            if s.trial >= curve.trial or s.arch_id in seen or s.last_epoch < epoch:
                continue
            d = s.best_until(epoch)
            if d is None or len(s.costs) != len(curve.costs):
                continue
            seen.add(s.arch_id)
            pts.append((d, *(-c for c in s.costs)))
        keep = math.ceil(len(pts) / self.eta)
        position = int(np.flatnonzero(priority(np.array(pts)) == 0)[0])
        if position < keep:
            return False, None
        return True, (f"moasha: at rung {epoch} Dice {mine:.3f} ranks {position + 1} of {len(pts)} "
                      f"by non-dominated sorting; the top {keep} continue (eta {self.eta})")


class RuleStopper:
    """A training callback ``(epoch, metrics) -> stop`` for any rule with ``decide``.

    ``load_others`` returns the earlier trials' curves (as for
    :class:`nasseg.search.stopping.ParetoStopper`).
    """

    def __init__(self, rule: RungRule, curve: Curve, load_others: Callable[[], Sequence[Curve]],
                 epochs: int) -> None:
        self.rule, self.curve, self.load_others, self.epochs = rule, curve, load_others, epochs
        self.reason: str | None = None

    def __call__(self, epoch: int, metrics: dict) -> bool:
        self.curve.dice[int(epoch)] = float(metrics["dice"])
        if epoch not in self.rule.rungs(self.epochs):
            return False
        stop, reason = self.rule.decide(self.curve, int(epoch), self.load_others(), self.epochs)
        self.reason = reason if stop else None
        return stop


def make_stopper(cfg: Any, curve: Curve, load_others: Callable[[], Sequence[Curve]],
                 epochs: int) -> ParetoStopper | RuleStopper:
    """The training callback of a study's ``early_stopping`` section (live and replayed).

    ``rule: moasha`` (and enabled) gives a :class:`RuleStopper` over
    ``RungRule(cfg.r_min, cfg.eta)``; anything else the Pareto-aware
    :class:`~nasseg.search.stopping.ParetoStopper` (which does nothing when disabled).
    """
    if cfg.enabled and getattr(cfg, "rule", "pareto") == "moasha":
        return RuleStopper(RungRule(cfg.r_min, cfg.eta), curve, load_others, epochs)
    return ParetoStopper(cfg, curve, load_others, epochs)
