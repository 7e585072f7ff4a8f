"""Dominance, Pareto sets and normalised hypervolume.

Normalisation (what ``nasseg`` reports as "normalised hypervolume"): each objective
``o`` is mapped linearly onto [0, 1], 1 being best, between the study's fixed
``reference_point[o]`` (the worst bound, maps to 0) and ``ideal_point[o]`` (maps to 1):

- maximised (dice): ``(v - ref) / (ideal - ref)``, with ref 0 and ideal 1;
- minimised (macs, params, latency, memory): ``(ref - v) / (ref - ideal)``, with ideal 0
  and ref = the space's constraint maximum (or the study's ``reference_point``).

The ideal of each objective is its registry record's ``ideal``
(:mod:`nasseg.store.objectives`) unless the study stored its own ``ideal_point``.

The hypervolume of the normalised points with respect to the origin is then a
fraction of the unit box: 0 = nothing better than the reference, 1 = a perfect network
that costs nothing. Points outside the box on any axis contribute nothing.

Example:
    >>> hypervolume(np.array([[0.5, 0.5], [0.25, 1.0]]))
    0.375
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y, d in zip(a, b, directions):
        if d == "maximize":
            x, y = -x, -y
        if x > y:
            return False
        better |= x < y
    return better


def pareto_indices(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (ties: every copy is kept)."""
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)]


def normalise(values: Sequence[float], names: Sequence[str], directions: Sequence[str],
              reference: dict[str, float], ideal: dict[str, float]) -> list[float]:
    """Map one objective vector onto [0, 1]^m (1 = best), as the module docstring defines."""
    out = []
    for v, name, d in zip(values, names, directions):
        ref, best = reference[name], ideal[name]
        span = (best - ref) if d == "maximize" else (ref - best)
        gain = (v - ref) if d == "maximize" else (ref - v)
        out.append(gain / span if span else 0.0)
    return out


def hypervolume(points: np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` (maximised) above the origin.

    Recursive slicing on the last axis with a 2D sweep at the bottom; exact for any
    number of objectives, fast for the few hundred points of a study.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or len(pts) == 0:
        return 0.0
    pts = pts[(pts > 0).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[_non_dominated_max(pts)]
    m = pts.shape[1]
    if m == 1:
        return float(pts.max())
    if m == 2:
        order = np.argsort(-pts[:, 0])
        hv, best_y = 0.0, 0.0
        for x, y in pts[order]:
            if y > best_y:
                hv += x * (y - best_y)
                best_y = y
        return float(hv)
    pts = pts[np.argsort(-pts[:, -1])]
    hv = 0.0
    for i in range(len(pts)):
        below = pts[i + 1, -1] if i + 1 < len(pts) else 0.0
        depth = pts[i, -1] - below
        if depth > 0:
            hv += depth * hypervolume(pts[: i + 1, :-1])
    return float(hv)


def _non_dominated_max(pts: np.ndarray) -> np.ndarray:
    keep = np.ones(len(pts), dtype=bool)
    for i in range(len(pts)):
        if not keep[i]:
            continue
        ge = (pts >= pts[i]).all(axis=1) & (pts > pts[i]).any(axis=1)
        if ge.any():
            keep[i] = False
    # exact duplicates: keep the first copy
    _, first = np.unique(pts[keep], axis=0, return_index=True)
    idx = np.flatnonzero(keep)[np.sort(first)]
    return idx


def normalised_hypervolume(values: Sequence[Sequence[float]], names: Sequence[str],
                           directions: Sequence[str], reference: dict[str, float],
                           ideal: dict[str, float]) -> float:
    """Hypervolume of raw objective vectors after :func:`normalise` (a fraction of [0, 1]^m)."""
    if not values:
        return 0.0
    pts = np.array([normalise(v, names, directions, reference, ideal) for v in values])
    return hypervolume(np.clip(pts, None, 1.0))
