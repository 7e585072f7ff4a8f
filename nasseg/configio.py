"""Loading typed configs from YAML with errors that name the file and the field.

Every config in nasseg (architecture, data, training, search space, study, ablation)
is a :class:`Strict` pydantic model (``extra="forbid"``); :func:`format_validation_error`
is the one formatter that turns pydantic's errors into a
:class:`~nasseg.errors.ConfigError` such as::

    arch.yaml: stages.2.block.type: unknown block 'cmunxt' (did you mean 'cmunext'?)

This module imports no registry (and so no torch): the tag names of tagged unions are
read off the model being validated.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from nasseg.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The base of every nasseg config: unknown keys are errors (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid")


def _loc(loc: tuple) -> str:
    # drop the tag names pydantic inserts for tagged unions (e.g. "cmunext" in stages.0.block.cmunext.x)
    return ".".join(str(p) for p in loc)


def _models(model: Any, seen: set | None = None) -> set[type[BaseModel]]:
    """Every pydantic model class reachable from ``model`` (through its field types)."""
    seen = set() if seen is None else seen
    if isinstance(model, type) and issubclass(model, BaseModel):
        if model not in seen:
            seen.add(model)
            for f in model.model_fields.values():
                _models(f.annotation, seen)
    else:
        for arg in get_args(model):
            _models(arg, seen)
    return seen


def field_names(model: Any) -> set[str]:
    """Every field name reachable from a pydantic model class (for "did you mean")."""
    return {name for m in _models(model) for name in m.model_fields}


def _direct_models(annotation: Any) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    return {m for arg in get_args(annotation) for m in _direct_models(arg)}


def _fields_at(model: Any, loc: tuple) -> set[str]:
    """The field names of the model(s) at ``loc`` (list indexes, mapping keys and union
    tags stay at the same models), so "did you mean" suggests a key of that section."""
    current = _direct_models(model)
    for part in loc:
        nxt = {m for c in current if isinstance(part, str) and part in c.model_fields
               for m in _direct_models(c.model_fields[part].annotation)}
        if nxt:
            current = nxt
    return {name for m in current for name in m.model_fields}


def _union_tags(model: Any) -> set[str]:
    """The values of every ``type: Literal[...]`` field reachable from ``model``: the tags
    pydantic puts into error locations of tagged unions (block, skip, attention names)."""
    tags = set()
    for m in _models(model):
        field = m.model_fields.get("type")
        if field is not None and get_origin(field.annotation) is Literal:
            tags |= {str(v) for v in get_args(field.annotation)}
    return tags


def format_validation_error(err: ValidationError, source: str, model: Any = None) -> str:
    """One line per problem: ``source: field.path: message``.

    A required field reported missing because it was misspelled gets no line of its own:
    the misspelling's line (``unknown key 'epoch' (did you mean 'epochs'?)``) says it all.
    """
    lines = []
    fields = field_names(model) if model is not None else set()
    tags = _union_tags(model) if model is not None else set()
    errors = err.errors()
    misspelled = set()  # (parent loc, the field an unknown key there was meant to be)
    for e in errors:
        if e["type"] == "extra_forbidden":
            here = _fields_at(model, e["loc"][:-1]) if model is not None else fields
            close = difflib.get_close_matches(str(e["loc"][-1]), list(here or fields), n=1, cutoff=0.5)
            misspelled.update((tuple(e["loc"][:-1]), c) for c in close)
    for e in errors:
        loc, kind, ctx = e["loc"], e["type"], e.get("ctx") or {}
        if kind == "missing" and loc and (tuple(loc[:-1]), loc[-1]) in misspelled:
            continue
        if kind == "union_tag_invalid":
            tag = ctx.get("tag", "")
            expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            what = loc[-1] if loc else "type"
            msg = (f"unknown {what} type '{tag}'{did_you_mean(str(tag), expected)}; "
                   f"expected one of: {', '.join(expected)}")
            loc = (*loc, "type")
        elif kind == "literal_error" and loc and loc[-1] == "type":
            expected = [t.strip(" '") for t in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
            what = next((p for p in reversed(loc[:-1]) if isinstance(p, str) and p not in tags), "")
            msg = (f"unknown {what} type '{e['input']}'{did_you_mean(str(e['input']), expected)}; "
                   f"expected one of: {', '.join(expected)}")
        elif kind == "extra_forbidden":
            here = _fields_at(model, loc[:-1]) if model is not None else fields
            msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), here or fields)}"
        elif kind == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if not isinstance(e.get("input"), (dict, list)) and kind not in ("value_error", "assertion_error"):
                msg += f" (got {e['input']!r})"
        # tagged-union members appear in loc as their tag: keep the user's path
        path = _loc(tuple(p for p in loc if not (isinstance(p, str) and p in tags)))
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
