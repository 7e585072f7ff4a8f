"""Where a space's sampled values come from: an Optuna trial, fixed params, or a known network.

The same walk over a space (:meth:`SearchSpace.sample`) serves three purposes:

- :class:`TrialSource` asks an ``optuna.Trial`` (a search);
- :class:`FixedSource` replays stored params (a Ray worker, ``nasseg export``);
- :class:`ArchSource` reads the values off an existing architecture and records the
  params that reproduce it (seeding a study with presets such as ``cmunext_s``).

Example:
    >>> src = ArchSource(load_arch("cmunext_s").canonical(), "cmunext_s", "space.yaml")
    >>> space.sample(src); src.params["stages.n"]
    5
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import optuna

from nasseg.errors import ConfigError
from nasseg.search.dists import Dist

Where = list[str] | Callable[[dict[str, Any]], Any]
"""The dotted architecture paths a parameter lands at, or a function of the architecture."""


class Source(Protocol):
    def pick(self, name: str, leaf: Dist, where: Where) -> Any:
        """The value of parameter ``name`` (a leaf of the space)."""


class TrialSource:
    """Suggest every parameter from an Optuna trial."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def pick(self, name: str, leaf: Dist, where: Where) -> Any:
        return leaf.suggest(self.trial, name)


class RandomSource:
    """Uniform values for every parameter (a seeded numpy ``Generator``), recorded in
    ``params``: the benchmark recorder's sample and the feasibility estimate. Float
    ranges are drawn uniformly (log-uniformly with ``log``)."""

    def __init__(self, rng: Any) -> None:
        self.rng, self.params = rng, {}

    def pick(self, name: str, leaf: Dist, where: Where) -> Any:
        if leaf.kind == "choice":
            value = leaf.choices[int(self.rng.integers(len(leaf.choices)))]
        elif leaf.kind == "int":
            step = int(leaf.step or 1)
            value = int(leaf.low) + step * int(self.rng.integers((int(leaf.high) - int(leaf.low)) // step + 1))
        elif leaf.log:
            value = float(math.exp(self.rng.uniform(math.log(leaf.low), math.log(leaf.high))))
        else:
            value = float(self.rng.uniform(leaf.low, leaf.high))
        self.params[name] = value
        return value


class FixedSource:
    """Replay stored params; a missing one is a ConfigError naming it."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def pick(self, name: str, leaf: Dist, where: Where) -> Any:
        if name not in self.params:
            raise ConfigError(f"parameter '{name}' is missing from the stored params "
                              f"({', '.join(sorted(self.params)) or 'none'})")
        return self.params[name]


def read_path(arch: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a canonical architecture dict.

    A missing skip attention (``None``) reads as type ``"none"``.
    """
    node: Any = arch
    parts = path.split(".")
    for k, part in enumerate(parts):
        if node is None:
            return "none" if parts[k:] == ["type"] else None
        if isinstance(node, list):
            idx = int(part)
            node = node[idx] if idx < len(node) else None
        else:
            node = node.get(part)
    return node


class ArchSource:
    """Read each parameter off a known architecture and record it in ``params``."""

    def __init__(self, arch: dict[str, Any], label: str, source: str) -> None:
        self.arch, self.label, self.source = arch, label, source
        self.params: dict[str, Any] = {}

    def pick(self, name: str, leaf: Dist, where: Where) -> Any:
        if callable(where):
            try:
                values = [where(self.arch)]
            except (IndexError, KeyError, ZeroDivisionError, TypeError):
                values = [None]
        else:
            values = [read_path(self.arch, p) for p in where]
        values = [_plain(v) for v in values]
        if any(v != values[0] for v in values):
            raise ConfigError(f"{self.source}: {name}: tied across stages in the space, but "
                              f"{self.label} has different values {values}")
        value = values[0]
        if isinstance(value, float) and value.is_integer() and (
                leaf.kind == "int" or any(type(c) is int for c in leaf.choices)):
            value = int(value)
        if not leaf.contains(value):
            raise ConfigError(f"{self.source}: {name}: {self.label} has {value!r}, outside the "
                              f"space ({leaf.describe()})")
        self.params[name] = value
        return value


def _plain(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
