"""The leaves of a search space: a fixed value, a choice, an int or a float range.

A leaf is written in YAML either as a plain value (fixed) or as a mapping with one
of the keys ``choice``, ``int`` or ``float``::

    act: gelu                                   # fixed
    norm: {choice: [batch, instance]}           # categorical
    depth: {int: [1, 3], per_stage: true}       # integer range, one value per stage
    lr: {float: [1.0e-4, 1.0e-2], log: true}    # float range, log scale

Example:
    >>> leaf = parse_leaf({"int": [1, 3]}, "stages.depth")
    >>> leaf.contains(2), leaf.contains(4)
    (True, False)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from nasseg.errors import ConfigError, did_you_mean

SPEC_KEYS = ("choice", "int", "float")
_MODIFIERS = {"choice": {"per_stage"}, "int": {"per_stage", "step", "log"},
              "float": {"per_stage", "step", "log"}}


def is_spec(value: Any) -> bool:
    """True when ``value`` is a mapping that describes a sampled leaf."""
    return isinstance(value, dict) and any(k in value for k in SPEC_KEYS)


@dataclass(frozen=True)
class Fixed:
    """A leaf that is not searched."""

    value: Any
    per_stage: bool = False

    def contains(self, value: Any) -> bool:
        return value == self.value


@dataclass(frozen=True)
class Dist:
    """A sampled leaf: ``kind`` is ``choice``, ``int`` or ``float``."""

    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0
    high: float = 0
    step: float | None = None
    log: bool = False
    per_stage: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """Ask ``trial`` for this leaf's value under the parameter name ``name``."""
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def distribution(self) -> BaseDistribution:
        """The equivalent Optuna distribution (for grids and checks)."""
        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return FloatDistribution(self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) or (value is None and c is None)
                       for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step and not math.isclose(((value - self.low) / self.step) % 1, 0, abs_tol=1e-9):
            return False
        return True

    def grid(self) -> list[Any]:
        """Every value of a discrete leaf (a float range without a step has none)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ValueError("a float range without a step cannot be enumerated")
        n = int(round((self.high - self.low) / self.step))
        return [self.low + i * self.step for i in range(n + 1)]

    def excluding(self, value: Any) -> Leaf | None:
        """This leaf without ``value`` (a conditional restriction): a narrower range or
        choice, a :class:`Fixed` when one value is left, ``None`` when none is."""
        if not self.contains(value):
            return self
        if self.kind == "choice":
            rest = tuple(c for c in self.choices if c != value)
        elif self.kind == "int" and value in (self.low, self.high) and self.low != self.high:
            low, high = (self.low + (self.step or 1), self.high) if value == self.low else (
                self.low, self.high - (self.step or 1))
            if low == high:
                return Fixed(int(low), self.per_stage)
            return Dist("int", low=low, high=high, step=self.step, log=self.log, per_stage=self.per_stage)
        elif self.kind == "int" and self.low == self.high:
            return None
        else:
            raise ConfigError(f"cannot exclude {value!r} from the inside of {self.describe()}")
        if not rest:
            return None
        return Fixed(rest[0], self.per_stage) if len(rest) == 1 else Dist(
            "choice", choices=rest, per_stage=self.per_stage)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        step = f" step {self.step}" if self.step else ""
        return f"{self.kind} in [{self.low}, {self.high}]{step}{' (log)' if self.log else ''}"


Leaf = Fixed | Dist


def parse_leaf(raw: Any, path: str, *, allow_per_stage: bool = False) -> Leaf:
    """Parse one YAML leaf (a value or a ``choice``/``int``/``float`` mapping).

    Raises:
        ConfigError: ``path: message`` (the caller prefixes the file).
    """
    if not is_spec(raw):
        return Fixed(raw)
    kinds = [k for k in SPEC_KEYS if k in raw]
    if len(kinds) > 1:
        raise ConfigError(f"{path}: give one of {', '.join(kinds)}, not several")
    kind = kinds[0]
    for key in raw:
        if key != kind and key not in _MODIFIERS[kind]:
            raise ConfigError(f"{path}: unknown key '{key}' in a {kind} leaf"
                              f"{did_you_mean(str(key), _MODIFIERS[kind])}; "
                              f"allowed: {', '.join(sorted(_MODIFIERS[kind]))}")
    per_stage = raw.get("per_stage", False)
    if not isinstance(per_stage, bool):
        raise ConfigError(f"{path}.per_stage: expected true or false, got {per_stage!r}")
    if per_stage and not allow_per_stage:
        raise ConfigError(f"{path}.per_stage: only leaves under 'stages' can be chosen per stage")
    body = raw[kind]
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise ConfigError(f"{path}.choice: expected a non-empty list, got {body!r}")
        for c in body:
            if not (c is None or isinstance(c, bool | int | float | str)):
                raise ConfigError(f"{path}.choice: {c!r} is not a scalar (choices must be "
                                  "numbers, strings, booleans or null)")
        if len({repr(c) for c in body}) != len(body):
            raise ConfigError(f"{path}.choice: {body} repeats a value")
        return Dist("choice", choices=tuple(body), per_stage=per_stage)
    if not (isinstance(body, list) and len(body) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in body)):
        raise ConfigError(f"{path}.{kind}: expected [low, high], got {body!r}")
    low, high = body
    if kind == "int" and not all(float(v).is_integer() for v in body):
        raise ConfigError(f"{path}.int: bounds must be integers, got {body}")
    if low > high:
        raise ConfigError(f"{path}.{kind}: low {low} is above high {high}")
    log, step = bool(raw.get("log", False)), raw.get("step")
    if log and low <= 0:
        raise ConfigError(f"{path}.{kind}: a log range needs low > 0, got {low}")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        raise ConfigError(f"{path}.step: expected a positive number, got {step!r}")
    if log and step not in (None, 1):
        raise ConfigError(f"{path}: a log range cannot have a step")
    if kind == "int":
        return Dist("int", low=int(low), high=int(high), step=int(step or 1), log=log, per_stage=per_stage)
    return Dist("float", low=float(low), high=float(high), step=None if step is None else float(step),
                log=log, per_stage=per_stage)
