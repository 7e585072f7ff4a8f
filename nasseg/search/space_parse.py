"""Reading a search-space YAML into a :class:`~nasseg.search.space.SearchSpace`.

Every key is checked against the architecture config and the registered blocks,
skips and skip attentions; every value, choice and range bound against the field's
type. Errors name the file and the dotted path::

    search_spaces/x.yaml: stages.block.kernal_size: unknown field of block 'cmunext'
    (did you mean 'kernel_size'?); fields: kernel_size, expansion

Example:
    >>> space = load_space("search_spaces/lightweight_2d.yaml")
    >>> sorted(space.param_leaves())[:2]
    ['stages.0.block.kernel_size', 'stages.1.block.kernel_size']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from nasseg.arch.config import ArchConfig, StageConfig, StemConfig, check_divisible
from nasseg.configio import read_yaml, validate
from nasseg.errors import ConfigError, did_you_mean
from nasseg.search.dists import Dist, Fixed, Leaf, is_spec, parse_leaf
from nasseg.search.schema import check_leaf, type_names, unknown_key
from nasseg.skips import SKIPS, fuses
from nasseg.search.space import (_COMPONENTS, Component, Constraints, Geometric, SearchSpace,
                                 StageSpace)

_RESERVED = ("name", "description", "constraints")
_STAGE_KEYS = ("n", "width", "depth", "decoder_depth", "block", "skip", "skip_attention")
_DEFAULT_TYPE = {"block": "conv", "skip": "concat", "skip_attention": "none"}


class _WithConstraints(BaseModel):
    model_config = ConfigDict(extra="forbid")
    constraints: Constraints


def load_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space YAML file.

    Raises:
        ConfigError: naming the file and the offending path.
    """
    return parse_space(read_yaml(path), str(path))


def parse_space(raw: Any, source: str) -> SearchSpace:
    """Check a space given as a mapping; ``source`` names it in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    constraints = validate(_WithConstraints, {"constraints": raw.get("constraints") or {}}, source).constraints
    try:
        space = _parse(raw, source, constraints)
    except ConfigError as err:
        msg = str(err)
        raise ConfigError(msg if msg.startswith(f"{source}:") else f"{source}: {msg}") from None
    return space


def _parse(raw: dict[str, Any], source: str, constraints: Constraints) -> SearchSpace:
    arch_fields = [k for k in ArchConfig.model_fields if k != "name"]
    top: dict[str, Leaf] = {}
    for key, value in raw.items():
        if key in _RESERVED or key in ("stem", "stages"):
            continue
        if key not in arch_fields:
            raise unknown_key(str(key), [*arch_fields, *_RESERVED], "the architecture config")
        leaf = parse_leaf(value, key)
        check_leaf(ArchConfig.model_fields[key], leaf, key)
        top[key] = leaf
    if "spatial_dims" not in top or not isinstance(top["spatial_dims"], Fixed):
        raise ConfigError("spatial_dims: required, and fixed (2 or 3)")
    dims = top["spatial_dims"].value
    stem = _parse_stem(raw.get("stem"))
    if "stages" not in raw:
        raise ConfigError("stages: required (the template every stage is sampled from)")
    stages = _parse_stages(raw["stages"])
    if constraints.limits() and constraints.input_size is None:
        raise ConfigError("constraints.input_size: required when a max_* limit is set "
                          "(the spatial size the limits are measured at)")
    if constraints.input_size is not None and len(constraints.input_size) != dims:
        raise ConfigError(f"constraints.input_size: {constraints.input_size} has "
                          f"{len(constraints.input_size)} sizes but spatial_dims is {dims}")
    space = SearchSpace(name=str(raw.get("name") or Path(source).stem),
                        description=str(raw.get("description") or ""), source=source, top=top,
                        stem=stem, stages=stages, constraints=constraints, raw=raw)
    if constraints.input_size is not None:
        check_divisible(constraints.input_size, space.max_stages, "constraints.input_size",
                        whose="the space's deepest networks: ")
    return space


def _parse_stem(raw: Any) -> dict[str, Leaf] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or is_spec(raw):
        raise ConfigError(f"stem: expected null or a mapping of stem fields, got {raw!r}")
    out = {}
    for key, value in raw.items():
        if key not in StemConfig.model_fields:
            raise unknown_key(f"stem.{key}", list(StemConfig.model_fields), "the stem")
        out[key] = parse_leaf(value, f"stem.{key}")
        check_leaf(StemConfig.model_fields[key], out[key], f"stem.{key}")
    return out


def _parse_stages(raw: Any) -> StageSpace:
    if not isinstance(raw, dict) or is_spec(raw):
        raise ConfigError("stages: expected a mapping (one template for every stage, "
                          f"with n: the number of stages), got {type(raw).__name__}")
    for key in raw:
        if key not in _STAGE_KEYS:
            raise unknown_key(f"stages.{key}", list(_STAGE_KEYS), "a stage")
    if "n" not in raw:
        raise ConfigError("stages.n: required (the number of stages, e.g. 5 or {choice: [4, 5]})")
    n = parse_leaf(raw["n"], "stages.n")
    values = [n.value] if isinstance(n, Fixed) else (list(n.choices) if n.kind == "choice" else [n.low, n.high])
    if (isinstance(n, Dist) and n.kind == "float") or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in values):
        raise ConfigError(f"stages.n: expected integers >= 2, got {raw['n']!r}")
    if "width" not in raw:
        raise ConfigError("stages.width: required")
    fields = {}
    for key in ("depth", "decoder_depth"):
        if key in raw:
            fields[key] = parse_leaf(raw[key], f"stages.{key}", allow_per_stage=True)
            check_leaf(StageConfig.model_fields[key], fields[key], f"stages.{key}")
    comps = {kind: _parse_component(kind, raw[kind]) for kind in _COMPONENTS if kind in raw}
    dd = fields.get("decoder_depth")
    skip_types = type_names(comps["skip"].type, SKIPS, "stages.skip.type") if "skip" in comps else ["concat"]
    unfused = [t for t in skip_types if not fuses(t)]
    if dd is not None and unfused and (isinstance(dd, Fixed) and dd.value == 0 or
                                       isinstance(dd, Dist) and dd.excluding(0) is None):
        raise ConfigError(f"stages.decoder_depth: only 0 (no decoder block), which needs a skip that "
                          f"fuses to the stage width, but stages.skip.type can be {', '.join(unfused)}; "
                          "allow decoder_depth 1 or drop those skips")
    return StageSpace(n=n, width=_parse_width(raw["width"]), fields=fields, components=comps)


def _parse_width(raw: Any) -> Leaf | Geometric | list[int]:
    field = StageConfig.model_fields["width"]
    if isinstance(raw, list):
        for i, w in enumerate(raw):
            check_leaf(field, Fixed(w), f"stages.width.{i}")
        return list(raw)
    if isinstance(raw, dict) and "base" in raw:
        for key in raw:
            if key not in ("base", "factor", "round_to"):
                raise ConfigError(f"stages.width.{key}: unknown key of a geometric width"
                                  f"{did_you_mean(str(key), ['base', 'factor', 'round_to'])}; "
                                  "expected base, factor, round_to")
        base = parse_leaf(raw["base"], "stages.width.base")
        check_leaf(field, base, "stages.width.base")
        factor = parse_leaf(raw.get("factor", 2), "stages.width.factor")
        lo = factor.value if isinstance(factor, Fixed) else (
            min(factor.choices) if factor.kind == "choice" else factor.low)
        if not isinstance(lo, int | float) or lo < 1:
            raise ConfigError(f"stages.width.factor: expected numbers >= 1, got {raw.get('factor')!r}")
        round_to = raw.get("round_to", 1)
        if not isinstance(round_to, int) or round_to < 1:
            raise ConfigError(f"stages.width.round_to: expected a positive integer, got {round_to!r}")
        return Geometric(base, factor, round_to)
    leaf = parse_leaf(raw, "stages.width", allow_per_stage=True)
    check_leaf(field, leaf, "stages.width")
    return leaf


def _parse_component(kind: str, raw: Any) -> Component:
    path = f"stages.{kind}"
    registry = _COMPONENTS[kind]
    if raw is None and kind == "skip_attention":
        return Component(kind, Fixed("none"))
    if not isinstance(raw, dict) or is_spec(raw):
        raise ConfigError(f"{path}: expected a mapping with 'type' and parameters, got {raw!r}")
    type_leaf = parse_leaf(raw.get("type", _DEFAULT_TYPE[kind]), f"{path}.type", allow_per_stage=True)
    types = type_names(type_leaf, registry, f"{path}.type", allow_none=kind == "skip_attention")
    comp = Component(kind, type_leaf)
    for key, value in raw.items():
        if key == "type":
            continue
        if key in registry:
            comp.specific[key] = _parse_specific(kind, key, value, types)
            continue
        owners = [t for t in types if key in comp.fields(t)]
        if not owners:
            real = [t for t in types if t != "none"]
            known = sorted({f for t in real for f in comp.fields(t)})
            what = (f"{registry.kind} '{real[0]}'" if len(real) == 1 else
                    f"any of the {registry.kind}s {', '.join(real)}")
            raise unknown_key(f"{path}.{key}", known, what)
        leaf = parse_leaf(value, f"{path}.{key}", allow_per_stage=True)
        for t in owners:
            check_leaf(registry.get(t).Params.model_fields[key], leaf, f"{path}.{key}")
        comp.generic[key] = leaf
    return comp


def _parse_specific(kind: str, type_name: str, raw: Any, types: list[str]) -> dict[str, Leaf]:
    path = f"stages.{kind}.{type_name}"
    registry = _COMPONENTS[kind]
    if type_name not in types:
        raise ConfigError(f"{path}: {registry.kind} '{type_name}' is not among "
                          f"stages.{kind}.type's values ({', '.join(types)})")
    if not isinstance(raw, dict) or is_spec(raw):
        raise ConfigError(f"{path}: expected a mapping of {registry.kind} '{type_name}' parameters")
    fields = {k: f for k, f in registry.get(type_name).Params.model_fields.items() if k != "type"}
    out = {}
    for key, value in raw.items():
        if key not in fields:
            raise unknown_key(f"{path}.{key}", list(fields), f"{registry.kind} '{type_name}'")
        out[key] = parse_leaf(value, f"{path}.{key}", allow_per_stage=True)
        check_leaf(fields[key], out[key], f"{path}.{key}")
    return out
