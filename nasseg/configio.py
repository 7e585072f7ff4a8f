"""Loading typed configs from YAML with errors that name the file and the field.

Every config in nasseg (architecture, data, training, search space, study, ablation)
is a :class:`Strict` pydantic model (``extra="forbid"``); :func:`format_validation_error`
is the one formatter that turns pydantic's errors into a
:class:`~nasseg.errors.ConfigError` such as::

    arch.yaml: stages.2.block.type: unknown block 'cmunxt' (did you mean 'cmunext'?)

Two YAML habits that would silently change a run are refused: a key given twice in one
mapping (:func:`read_yaml` names the file, key and both lines; PyYAML keeps the last value),
and a ``true``/``false`` where a number is expected or a number where ``true``/``false``
is (``epochs: true`` would be 1 epoch under pydantic's lax mode; :class:`Strict` refuses it).

This module imports no registry (and so no torch): the tag names of tagged unions are
read off the model being validated.
"""
from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from nasseg.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The base of every nasseg config: unknown keys are errors (``extra="forbid"``), and
    booleans and numbers are never taken for each other (:func:`bool_mismatch`)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_bool_coercion(cls, raw: Any) -> Any:
        return check_bools(cls, raw)


def check_bools(model: type[BaseModel], raw: Any) -> Any:
    """``raw`` unchanged, or a ValueError naming the first field whose value
    :func:`bool_mismatch` refuses (a model validator: a field validator cannot run on the
    ``type`` tag of a tagged union)."""
    if isinstance(raw, dict):
        for name, value in raw.items():
            field = model.model_fields.get(name) if isinstance(name, str) else None
            problem = bool_mismatch(field.annotation, value) if field is not None else None
            if problem:
                raise ValueError(f"{name}: {problem}")
    return raw


@lru_cache(maxsize=None)
def _members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of an annotation: ``int | None`` -> ``(int, NoneType)``, Annotated stripped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return tuple(m for arg in get_args(annotation) for m in _members(arg))
    return (annotation,)


def _literal_values(member: Any) -> tuple[Any, ...]:
    return get_args(member) if get_origin(member) is Literal else ()


def bool_mismatch(annotation: Any, value: Any) -> str | None:
    """Why ``value`` must not be coerced to ``annotation`` (``None`` = fine): a YAML
    ``true``/``false`` for a number (pydantic's lax mode makes ``true`` 1), or a number or
    word for a boolean (``1``, ``"yes"``); list and tuple items are checked too.

    Example:
        >>> bool_mismatch(int, True)
        'expected a number, got true'
        >>> bool_mismatch(bool | None, 1)
        'expected true or false, got 1'
        >>> bool_mismatch(list[int], [2, False]) is None, bool_mismatch(int | bool, True) is None
        (False, True)
    """
    try:
        members = _members(annotation)
    except TypeError:  # an unhashable annotation: leave it to pydantic
        return None
    if Any in members or object in members:
        return None
    if isinstance(value, bool):
        if bool in members or any(isinstance(v, bool) for m in members for v in _literal_values(m)):
            return None
        numbers = any(m in (int, float) for m in members) or any(
            isinstance(v, (int, float)) for m in members for v in _literal_values(m))
        return f"expected a number, got {str(value).lower()}" if numbers else None
    if bool in members and isinstance(value, (int, float, str)):
        others = [m for m in members if m is not bool and m is not type(None)]
        if not any(m in (int, float, str) or _literal_values(m) for m in others):
            return f"expected true or false, got {value!r}"
        return None
    if isinstance(value, (list, tuple)):
        for m in members:
            origin, args = get_origin(m), get_args(m)
            if origin not in (list, tuple, set, frozenset, Sequence) or not args:
                continue
            for i, item in enumerate(value):
                if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                    item_type = args[i] if i < len(args) else None
                else:
                    item_type = args[0]
                problem = bool_mismatch(item_type, item) if item_type is not None else None
                if problem:
                    return f"item {i}: {problem}"
            return None
    return None


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


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, line: int) -> None:
        super().__init__(f"key '{key}' given twice")
        self.key, self.first, self.line = key, first, line


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a key given twice in one mapping (PyYAML keeps the
    last value without a word, so ``epochs: 200`` followed later by ``epochs: 2`` trains 2)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' may repeat
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                pass
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error or a repeated key is a ConfigError naming ``source``.

    Example:
        >>> parse_yaml("epochs: 200\\nlr: 0.01\\nepochs: 2\\n", "train.yaml")
        Traceback (most recent call last):
        nasseg.errors.ConfigError: train.yaml: line 3: key 'epochs' is given twice (first on line 1); keep one
    """
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as err:
        raise ConfigError(f"{source}: line {err.line}: key '{err.key}' is given twice (first on line "
                          f"{err.first}); keep one") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file, a syntax error or a key given twice is a
    ConfigError naming it (and the key and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    return parse_yaml(text, str(path))


def load_yaml(model: type[M], path: str | Path) -> M:
    """Read and validate one YAML file into ``model``."""
    return validate(model, read_yaml(path), str(path))
