"""The objective registry: one record per objective a study can search, constrain or show.

Every module that prints, plots, constrains, normalises or measures an objective reads
it from :data:`OBJECTIVES` (the study schema, the space's ``constraints:`` fields, the
cost-to-value conversion, the hypervolume's ideal point, table columns, figure axes and
the progress lines). Adding an objective is adding one :class:`Objective` here.

``trial.values`` hold each objective in its ``unit``: Dice a fraction (maximised), MACs
and FLOPs in G (10^9) at the space's ``constraints.input_size``, parameters as a raw
count, latency in ms, memory in MB (all minimised). A cost objective is read from the
stored :class:`nasseg.cost.Cost` dict (``source`` key times ``factor``); a trained
metric from the training result's best validation metrics.

Example:
    >>> OBJECTIVES["macs"].value({"macs": 2.5e9})
    2.5
    >>> OBJECTIVES["params"].text(41750.0), OBJECTIVES["params"].column
    ('0.042', 'params (M)')
    >>> OBJECTIVES["macs"].constraint
    'max_gmacs'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["OBJECTIVES", "Objective", "cost_values", "directions", "get", "limit_fields"]


@dataclass(frozen=True)
class Objective:
    """One objective.

    Attributes:
        name: the key in study configs, ``trial.values`` order lists and tables.
        direction: ``maximize`` or ``minimize`` (Optuna's words).
        unit: the unit of the stored value (``fraction``, ``GMACs``, ``ms``, ...).
        measured: ``metric`` (a trained validation metric) or ``counter`` (a cost counted
            or measured on the network without training).
        device: ``any`` (the same wherever it is counted) or ``target`` (measured on the
            device the trial runs on, e.g. latency: cost profiling must time it there).
        source: the key of the value in the training metrics (``metric``) or in the
            stored cost dict (``counter``).
        factor: stored value = ``source`` value * factor (1e-9 turns counts into G).
        constraint: the field of a space's ``constraints:`` that caps it (``None``: none).
        label: the human name on axes and in headings.
        column: the table header (the unit of :meth:`text`).
        scale: the displayed number is value * scale (params are shown in millions).
        digits: decimals shown.
        suffix: what follows the number in a sentence (``M params``; empty: the name leads).
        ideal: the best possible value (the hypervolume's ideal point).
    """

    name: str
    direction: Literal["maximize", "minimize"]
    unit: str
    measured: Literal["metric", "counter"]
    source: str
    label: str
    column: str
    constraint: str | None = None
    device: Literal["any", "target"] = "any"
    factor: float = 1.0
    scale: float = 1.0
    digits: int = 3
    suffix: str = ""
    ideal: float = 0.0

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def axis(self) -> str:
        """Axis title: the label with its unit (``MACs (GMACs)``; none for fractions/counts)."""
        return self.label if self.unit in ("fraction", "parameters", "") else f"{self.label} ({self.unit})"

    def value(self, source: dict[str, Any]) -> float | None:
        """This objective's value from a cost dict or a metrics dict (``None`` if absent)."""
        raw = source.get(self.source)
        return None if raw is None else float(raw) * self.factor

    def text(self, v: float | None) -> str:
        """The displayed number (``-`` for missing or non-finite values)."""
        try:
            v = float(v)
        except (TypeError, ValueError):
            return "-"
        return f"{v * self.scale:.{self.digits}f}" if math.isfinite(v) else "-"

    def describe(self, v: float | None) -> str:
        """``dice 0.712``, ``0.042 M params``, ``1.3 GMACs``: a value in a sentence."""
        return f"{self.text(v)} {self.suffix}" if self.suffix else f"{self.name} {self.text(v)}"


def _reg(*objs: Objective) -> dict[str, Objective]:
    return {o.name: o for o in objs}


OBJECTIVES: dict[str, Objective] = _reg(
    Objective("dice", "maximize", "fraction", "metric", "dice", "Dice", "dice", digits=4, ideal=1.0),
    Objective("macs", "minimize", "GMACs", "counter", "macs", "MACs", "GMACs", constraint="max_gmacs",
              factor=1e-9, suffix="GMACs"),
    Objective("params", "minimize", "parameters", "counter", "params", "Params", "params (M)",
              constraint="max_params", scale=1e-6, suffix="M params"),
    Objective("latency", "minimize", "ms", "counter", "latency_ms", "Latency", "latency (ms)",
              constraint="max_latency_ms", device="target", digits=1, suffix="ms"),
    Objective("memory", "minimize", "MB", "counter", "memory_mb", "Memory", "memory (MB)",
              constraint="max_memory_mb", digits=1, suffix="MB"),
    Objective("flops", "minimize", "GFLOPs", "counter", "flops", "FLOPs", "GFLOPs", constraint="max_gflops",
              factor=1e-9, suffix="GFLOPs"),
)
"""Every objective a study can name, in the order of this table."""


def get(name: str) -> Objective:
    """The registered objective, or a plain record for a name this nasseg does not know
    (a study written by another version): minimised, its name as label, no unit."""
    return OBJECTIVES.get(name) or Objective(name, "minimize", "", "counter", name, name, name)


def directions(names: list[str]) -> list[str]:
    """Optuna directions of ``names`` (in order)."""
    return [OBJECTIVES[n].direction for n in names]


def cost_values(cost: Any) -> dict[str, float | None]:
    """``{objective: value}`` of every counter objective from a :class:`~nasseg.cost.Cost`
    or its stored dict, in the units of ``trial.values`` (``None`` when not measured)."""
    d = cost if isinstance(cost, dict) else cost.to_dict()
    return {o.name: o.value(d) for o in OBJECTIVES.values() if o.measured == "counter"}


def limit_fields() -> dict[str, Objective]:
    """``{constraint field: objective}``: the ``max_*`` keys a space's ``constraints:`` accepts."""
    return {o.constraint: o for o in OBJECTIVES.values() if o.constraint}
