"""Loading typed configs from YAML with errors that name the file and the field.

Every config in nasseg (architecture, data, training, search space, study) is a
pydantic model with ``extra="forbid"``; this module turns pydantic's errors into
one :class:`~nasseg.errors.ConfigError` such as::

    arch.yaml: stages.2.block.type: unknown block 'cmunxt' (did you mean 'cmunext'?)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from nasseg.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)


def _loc(loc: tuple) -> str:
    # drop the tag names pydantic inserts for tagged unions (e.g. "cmunext" in stages.0.block.cmunext.x)
    return ".".join(str(p) for p in loc)


def field_names(model: Any, seen: set | None = None) -> set[str]:
    """Every field name reachable from a pydantic model class (for "did you mean")."""
    seen = set() if seen is None else seen
    if isinstance(model, type) and issubclass(model, BaseModel):
        if model in seen:
            return set()
        seen.add(model)
        names = set(model.model_fields)
        for f in model.model_fields.values():
            names |= field_names(f.annotation, seen)
        return names
    names = set()
    for arg in get_args(model):
        names |= field_names(arg, seen)
    return names


def format_validation_error(err: ValidationError, source: str, model: Any = None) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    fields = field_names(model) if model is not None else set()
    for e in err.errors():
        loc, kind, ctx = e["loc"], e["type"], e.get("ctx") or {}
        if kind == "union_tag_invalid":
            tag = ctx.get("tag", "")
            expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            what = loc[-1] if loc else "type"
            msg = (f"unknown {what} type '{tag}'{did_you_mean(str(tag), expected)}; "
                   f"expected one of: {', '.join(expected)}")
            loc = (*loc, "type")
        elif kind == "literal_error" and loc and loc[-1] == "type":
            expected = [t.strip(" '") for t in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
            what = next((p for p in reversed(loc[:-1]) if isinstance(p, str) and p not in _TAGS), "")
            msg = (f"unknown {what} type '{e['input']}'{did_you_mean(str(e['input']), expected)}; "
                   f"expected one of: {', '.join(expected)}")
        elif kind == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), fields)}"
        elif kind == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if not isinstance(e.get("input"), (dict, list)) and kind not in ("value_error", "assertion_error"):
                msg += f" (got {e['input']!r})"
        # tagged-union members appear in loc as their tag: keep the user's path
        path = _loc(tuple(p for p in loc if not (isinstance(p, str) and p in _TAGS)))
        lines.append(f"{source}: {path}: {msg}" if path else f"{source}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], data: Any, source: str) -> M:
    """``model.model_validate(data)``, raising ConfigError naming ``source`` and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, model)) from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def load_yaml(model: type[M], path: str | Path) -> M:
    """Read and validate one YAML file into ``model``."""
    return validate(model, read_yaml(path), str(path))


def _all_tags() -> set[str]:
    from nasseg.blocks import BLOCKS
    from nasseg.skips import ATTENTIONS, SKIPS

    return set(BLOCKS) | set(SKIPS) | set(ATTENTIONS)


_TAGS = _all_tags()
