"""Pareto-aware early stopping of a trial, from the costs known before training.

Optuna cannot prune multi-objective trials and Ray Tune's schedulers rank one
metric. But every cost objective (MACs, parameters, latency, memory) of a network is
known before it trains, so only its Dice is still unknown. The rule:

    Let D_T(e) be trial T's best validation Dice up to epoch e (its running maximum)
    and c_T its vector of cost objectives (those of the study's objectives that are
    minimised). An earlier trial S (a lower trial number, finished or still running,
    trained under the same settings, feasible, a different architecture) *dominates T
    at epoch e* when S has been validated at epoch e or later and

        c_S <= c_T in every cost objective   and   D_S(e) >= D_T(e) + margin,

    (with ``margin = 0`` at least one of these must be strict). T is stopped after
    epoch e when e >= ``warmup_epochs`` and at least ``min_dominators`` distinct
    architectures dominate it at e.

A stopped trial would have to gain more than ``margin`` Dice over every one of those
architectures, which reached their Dice at no higher cost in the same number of epochs,
just to tie; it is recorded COMPLETE with its best Dice so far, ``stopped_early = true``,
the reason, and its curve. With no cost objective the rule reduces to "at least k
earlier trials were better by ``margin`` at the same epoch".

Example:
    >>> s = Curve(trial=0, arch_id="a", costs=(1.0,), dice={1: 0.6, 2: 0.7})
    >>> t = Curve(trial=1, arch_id="b", costs=(2.0,), dice={1: 0.3, 2: 0.4})
    >>> [c.trial for c in dominators(t, 2, [s], margin=0.05)]
    [0]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nasseg.search.study import EarlyStoppingConfig


@dataclass
class Curve:
    """One trial's validation Dice by epoch, with its (minimised) cost objectives."""

    trial: int
    arch_id: str
    costs: tuple[float, ...]
    dice: dict[int, float] = field(default_factory=dict)

    def best_until(self, epoch: int) -> float | None:
        """Running maximum of Dice up to ``epoch``; None when it was not validated by then."""
        seen = [d for e, d in self.dice.items() if e <= epoch]
        return max(seen) if seen else None

    @property
    def last_epoch(self) -> int:
        return max(self.dice, default=0)


def dominators(curve: Curve, epoch: int, others: Sequence[Curve], margin: float) -> list[Curve]:
    """The earlier curves (one per architecture) that dominate ``curve`` at ``epoch``."""
    mine = curve.best_until(epoch)
    if mine is None:
        return []
    found: dict[str, Curve] = {}
    for s in others:
        if s.trial >= curve.trial or s.arch_id == curve.arch_id or s.arch_id in found:
            continue
        if s.last_epoch < epoch:
            continue
        theirs = s.best_until(epoch)
        if theirs is None or len(s.costs) != len(curve.costs):
            continue
        cheaper_or_equal = all(a <= b for a, b in zip(s.costs, curve.costs))
        strict = theirs > mine or any(a < b for a, b in zip(s.costs, curve.costs))
        if cheaper_or_equal and theirs >= mine + margin and (margin > 0 or strict):
            found[s.arch_id] = s
    return list(found.values())


def should_stop(curve: Curve, epoch: int, others: Sequence[Curve],
                rule: EarlyStoppingConfig) -> tuple[bool, str | None]:
    """Apply the rule after ``epoch``; returns ``(stop, reason)``."""
    if not rule.enabled or epoch < rule.warmup_epochs:
        return False, None
    doms = dominators(curve, epoch, others, rule.margin)
    if len(doms) < rule.min_dominators:
        return False, None
    mine = curve.best_until(epoch)
    who = ", ".join(f"#{s.trial} ({s.best_until(epoch):.3f})" for s in doms[:6])
    return True, (f"pareto: at epoch {epoch} Dice {mine:.3f} is dominated by {len(doms)} earlier "
                  f"trials at no higher cost and >= {rule.margin} more Dice: {who}")


class ParetoStopper:
    """The training callback: records Dice per epoch and applies :func:`should_stop`.

    ``load_others`` is called at every validation and returns the earlier trials' curves
    (read from the study storage), so trials running in parallel see each other.

    Example:
        >>> stop = ParetoStopper(EarlyStoppingConfig(), Curve(5, "abc", (0.1,)), lambda: curves)
        >>> stop(3, {"dice": 0.41})
        False
    """

    def __init__(self, rule: EarlyStoppingConfig, curve: Curve,
                 load_others: Callable[[], Sequence[Curve]], epochs: int | None = None) -> None:
        self.rule, self.curve, self.load_others, self.epochs = rule, curve, load_others, epochs
        self.reason: str | None = None

    def __call__(self, epoch: int, metrics: dict) -> bool:
        self.curve.dice[int(epoch)] = float(metrics["dice"])
        if not self.rule.enabled or epoch < self.rule.warmup_epochs:
            return False
        if self.epochs is not None and epoch >= self.epochs:
            return False  # nothing left to save
        stop, reason = should_stop(self.curve, int(epoch), self.load_others(), self.rule)
        if stop:
            self.reason = reason
        return stop
