"""How much of a search space is feasible, estimated before a search starts.

A space whose limits (``max_params``, ``max_gmacs``, ...) exclude almost every network
would make a search spin: every proposal rejected, none trained. Before the workers
start, :func:`estimate` draws networks uniformly from the space (a seeded
:class:`~nasseg.search.sources.RandomSource`), counts their costs as a trial does (meta
device, cached, so the search's own proposals of the same networks are free) and checks
them against the limits. It stops once :data:`ENOUGH` feasible networks were found
(a few seconds for a good space) or after :data:`DRAWS` draws. :func:`check` refuses a
space with no feasible network among them (the fraction is below ``1/DRAWS``), naming the
limits that rejected them, and :func:`Estimate.line` states a low fraction up front.
Limits measured on the target device (latency) are not checked here: trials check them.

Example:
    >>> est = check(space, setup)          # doctest: +SKIP
    >>> est.line()                         # doctest: +SKIP
    'feasible: about 31% of lightweight_2d (8 of 26 random networks within the limits; ...)'
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasseg.cost import profile
from nasseg.errors import ConfigError, NassegError
from nasseg.search.sources import RandomSource
from nasseg.store import OBJECTIVES
from nasseg.store.objectives import cost_values

DRAWS = 64
"""The most networks drawn."""
ENOUGH = 8
"""Drawing stops once this many feasible networks were found."""
LOW = 0.1
"""Below this estimated fraction the search says so before it starts."""


@dataclass
class Estimate:
    """The outcome of :func:`estimate`: networks drawn, valid, feasible, and why the others
    were rejected (``{"invalid": n, "params": n, "macs": n}``; one network may exceed
    several limits)."""

    space: str
    drawn: int = 0
    valid: int = 0
    feasible: int = 0
    rejected: Counter = field(default_factory=Counter)
    example: str = ""

    @property
    def fraction(self) -> float:
        return self.feasible / max(1, self.drawn)

    def line(self) -> str:
        why = ", ".join(f"{n} {k}" for k, n in self.rejected.most_common())
        return (f"feasible: about {self.fraction:.0%} of {self.space} ({self.feasible} of {self.drawn} "
                f"random networks valid and within the limits{'; rejected: ' + why if why else ''})")


def estimate(space: Any, setup: Any, seed: int = 0, draws: int = DRAWS, enough: int = ENOUGH) -> Estimate:
    """Draw up to ``draws`` networks of ``space`` and check them as a trial of ``setup``
    (a :class:`~nasseg.search.objective.TrialSetup`) would, without training."""
    rng = np.random.default_rng(seed)
    limits = {k: v for k, v in setup.limits.items() if OBJECTIVES[k].device != "target"}
    est = Estimate(space.name)
    while est.drawn < draws and est.feasible < enough:
        est.drawn += 1
        try:
            cfg = space.build(RandomSource(rng), setup.in_channels, setup.out_channels)
            costs = cost_values(profile(cfg, setup.input_shape, device="cpu", latency=False))
        except (NassegError, RuntimeError, ValueError) as err:
            est.rejected["invalid"] += 1
            est.example = est.example or str(err)
            continue
        est.valid += 1
        over = [k for k, lim in limits.items() if costs[k] > lim]
        est.rejected.update(over)
        est.feasible += not over
        if over and not est.example:
            k = over[0]
            est.example = (f"e.g. {k} {OBJECTIVES[k].describe(costs[k])} > max "
                           f"{OBJECTIVES[k].describe(limits[k])}")
    return est


def check(space: Any, setup: Any, seed: int = 0) -> Estimate:
    """:func:`estimate`, refusing a space in which no drawn network is feasible.

    Raises:
        ConfigError: naming the space, the draws and the limits that rejected them.
    """
    est = estimate(space, setup, seed)
    if est.feasible == 0:
        why = ", ".join(f"{n} {k}" for k, n in est.rejected.most_common())
        raise ConfigError(
            f"{space.source}: no feasible network in {est.drawn} random draws (feasible fraction "
            f"< 1/{est.drawn}; rejected: {why}; {est.example}): widen the space's constraints or "
            "narrow its choices towards smaller networks")
    return est


__all__ = ["DRAWS", "ENOUGH", "LOW", "Estimate", "check", "estimate"]
