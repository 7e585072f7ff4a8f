"""Checking a search space's leaves against the architecture config.

Every key of a space is looked up in :class:`~nasseg.arch.ArchConfig`, its stage
config, or the ``Params`` of a registered block, skip or skip attention, and every
fixed value, choice and range bound is validated by the field's own pydantic type,
so a typo or an impossible value fails when the space is loaded::

    search_spaces/x.yaml: stages.block.kernal_size: unknown field of block 'cmunext'
    (did you mean 'kernel_size'?)
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from nasseg.errors import ConfigError, did_you_mean
from nasseg.search.dists import Dist, Fixed, Leaf


_ADAPTERS: dict[int, TypeAdapter] = {}


def _adapter(field: FieldInfo) -> TypeAdapter:
    if id(field) not in _ADAPTERS:
        ann = field.annotation
        _ADAPTERS[id(field)] = TypeAdapter(Annotated[(ann, *field.metadata)] if field.metadata else ann)
    return _ADAPTERS[id(field)]


def check_value(field: FieldInfo, value: Any, path: str) -> None:
    """Validate one value with the pydantic type of ``field``; ConfigError names ``path``."""
    try:
        _adapter(field).validate_python(value)
    except ValidationError as err:
        msg = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise ConfigError(f"{path}: {value!r} is not a valid value: {msg}") from None


def check_leaf(field: FieldInfo, leaf: Leaf, path: str) -> None:
    """Validate a fixed value, every choice, or both bounds of a range against ``field``."""
    if isinstance(leaf, Fixed):
        check_value(field, leaf.value, path)
    elif leaf.kind == "choice":
        for i, c in enumerate(leaf.choices):
            check_value(field, c, f"{path}.choice.{i}")
    else:
        lo, hi = (int(leaf.low), int(leaf.high)) if leaf.kind == "int" else (leaf.low, leaf.high)
        check_value(field, lo, f"{path}.{leaf.kind}.0")
        check_value(field, hi, f"{path}.{leaf.kind}.1")


def unknown_key(path: str, known: list[str], what: str) -> ConfigError:
    """The error for a key (the last part of ``path``) that is no field of ``what``."""
    key = path.rsplit(".", 1)[-1]
    return ConfigError(f"{path}: unknown field of {what}{did_you_mean(key, known)}; "
                       f"fields: {', '.join(known)}")


def type_names(leaf: Leaf, registry: Any, path: str, *, allow_none: bool = False) -> list[str]:
    """The component types a ``type`` leaf can take, each checked against ``registry``."""
    if isinstance(leaf, Dist) and leaf.kind != "choice":
        raise ConfigError(f"{path}: a component type must be fixed or a choice, not a {leaf.kind} range")
    names = [leaf.value] if isinstance(leaf, Fixed) else list(leaf.choices)
    allowed = [*registry.names(), *(["none"] if allow_none else [])]
    for i, name in enumerate(names):
        where = path if isinstance(leaf, Fixed) else f"{path}.choice.{i}"
        if name not in allowed:
            raise ConfigError(f"{where}: unknown {registry.kind} '{name}'"
                              f"{did_you_mean(str(name), allowed)}; expected one of: {', '.join(allowed)}")
    return names
