"""From factors to variants (the networks to train) and contrasts (the comparisons to test).

Example:
    >>> from nasseg.ablation.config import AblationConfig
    >>> cfg = AblationConfig(name="s", base="cmunext_s", data={}, factors={
    ...     "skip": {"path": "stages.*.skip.type", "levels": ["concat", "irsc"]}})
    >>> [v.name for v in plan_variants(cfg)]
    ['concat', 'irsc']
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nasseg.ablation.config import AblationConfig
from nasseg.ablation.factors import set_path
from nasseg.errors import ConfigError, NassegError
from nasseg.configio import format_validation_error

__all__ = ["Contrast", "Variant", "plan_contrasts", "plan_variants", "variant_name", "build_archs"]


@dataclass(frozen=True)
class Variant:
    """One network of the study.

    Attributes:
        name: unique name (``irsc``, or ``skip=irsc,kernel=7`` with several factors).
        levels: factor name -> level label.
        values: factor name -> level value (what is written into the config).
        is_baseline: every factor at its baseline level.
    """

    name: str
    levels: dict[str, str]
    values: dict[str, Any] = field(compare=False)
    is_baseline: bool


@dataclass(frozen=True)
class Contrast:
    """One paired comparison: ``variant`` minus ``reference``; ``factor`` is the factor
    whose effect it measures (``None`` when several differ, as in baseline contrasts)."""

    variant: str
    reference: str
    factor: str | None


def variant_name(levels: dict[str, str]) -> str:
    """``label`` for one factor, ``f1=label1,f2=label2`` for several.

    Example:
        >>> variant_name({"skip": "irsc", "block": "conv"})
        'skip=irsc,block=conv'
    """
    if len(levels) == 1:
        return next(iter(levels.values()))
    return ",".join(f"{k}={v}" for k, v in levels.items())


def plan_variants(cfg: AblationConfig) -> list[Variant]:
    """The study's variants, baseline first, in a stable order.

    ``one_at_a_time``: the baseline, then for each factor each non-baseline level with every
    other factor at its baseline. ``full_factorial``: every combination of levels.
    """
    labels = {n: f.level_labels() for n, f in cfg.factors.items()}
    values = {n: dict(zip(labels[n], f.levels, strict=True)) for n, f in cfg.factors.items()}
    base = {n: f.baseline_label() for n, f in cfg.factors.items()}
    if cfg.design == "full_factorial":
        combos = [dict(zip(labels, c, strict=True)) for c in itertools.product(*labels.values())]
        combos.sort(key=lambda c: c != base)  # baseline first, the rest in product order
    else:
        combos = [dict(base)]
        for n in labels:
            combos += [{**base, n: lv} for lv in labels[n] if lv != base[n]]
    return [Variant(name=variant_name(c), levels=c,
                    values={n: values[n][lv] for n, lv in c.items()}, is_baseline=c == base)
            for c in combos]


def plan_contrasts(cfg: AblationConfig, variants: list[Variant]) -> list[Contrast]:
    """The comparisons to test, in table order (see ``StatsConfig.contrasts``)."""
    by_levels = {tuple(sorted(v.levels.items())): v for v in variants}
    baseline = next(v for v in variants if v.is_baseline)
    base = baseline.levels
    out: list[Contrast] = []
    for v in variants:
        if v.is_baseline:
            continue
        differing = [n for n in v.levels if v.levels[n] != base[n]]
        if cfg.stats.contrasts == "baseline":
            out.append(Contrast(v.name, baseline.name, differing[0] if len(differing) == 1 else None))
            continue
        for n in differing:
            if cfg.stats.effects_of is not None and n not in cfg.stats.effects_of:
                continue
            ref = by_levels.get(tuple(sorted({**v.levels, n: base[n]}.items())))
            if ref is not None:
                out.append(Contrast(v.name, ref.name, n))
    return out


def _load_base(spec: str) -> Any:
    from nasseg.arch import load_arch  # lazy: torch; nasseg.ablation is read without it

    try:
        return load_arch(spec)
    except NassegError:
        raise
    except (OSError, ValueError) as err:
        raise ConfigError(f"base '{spec}': {err}") from None


def build_archs(cfg: AblationConfig, variants: list[Variant], where: str = "study") -> dict[str, Any]:
    """Apply each variant's levels to the base network and validate it as an ``ArchConfig``.

    Every level is checked here, before anything trains: a bad path or an invalid
    combination is a :class:`ConfigError` naming the study, the variant and the field.

    Returns:
        variant name -> ``ArchConfig``.
    """
    from nasseg.arch import ArchConfig  # lazy: torch; nasseg.ablation is read without it

    out: dict[str, Any] = {}
    for v in variants:
        base_spec = next((val for n, val in v.values.items() if cfg.factors[n].path == "base"), cfg.base)
        if not isinstance(base_spec, str):
            raise ConfigError(f"{where}: factor with path 'base': levels are preset names or "
                              f"config files, got {base_spec!r}")
        data = _load_base(base_spec).model_dump(mode="json")
        data["name"] = f"{data.get('name') or base_spec}/{v.name}"
        for n, val in v.values.items():
            if cfg.factors[n].path == "base":
                continue
            try:
                for path, value in cfg.factors[n].settings(val).items():
                    data = set_path(data, path, value)
            except ConfigError as err:
                raise ConfigError(f"{where}: factors.{n} (level '{v.levels[n]}'): {err}") from None
        try:
            out[v.name] = ArchConfig.model_validate(data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(
                err, f"{where}: variant '{v.name}' is not a valid network", ArchConfig)) from None
        except ValueError as err:
            raise ConfigError(f"{where}: variant '{v.name}' is not a valid network: {err}") from None
    return out
