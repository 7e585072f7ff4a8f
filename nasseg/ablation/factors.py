"""Address and edit a config dict by dotted path: what an ablation factor changes.

A path names a field of ``ArchConfig.model_dump()``: dots separate keys, an integer
picks one list element, ``*`` means "every element" and a Python slice picks a range
(``:-1`` = all but the last), e.g. ``stages.*.skip.type``, ``stages.0.block.kernel_size``,
``stages.:-1.skip_attention`` (the deepest stage has no skip, so leave it out).

Setting a ``type`` key (``stages.*.block.type: conv``) swaps the component: the
enclosing dict is replaced by ``{"type": new}``, so the new component starts from its
own defaults instead of inheriting the old one's parameters (which its ``extra="forbid"``
params would reject). To set a component and its parameters at once, give the whole
dict as the level: ``stages.*.block: {type: conv, kernel_size: 3}``.

Example:
    >>> cfg = {"stages": [{"skip": {"type": "concat"}}, {"skip": {"type": "concat"}}]}
    >>> set_path(cfg, "stages.*.skip.type", "irsc")["stages"][1]["skip"]
    {'type': 'irsc'}
"""
from __future__ import annotations

import copy
from typing import Any

from nasseg.errors import ConfigError, did_you_mean

__all__ = ["get_path", "set_path", "split_path"]


def split_path(path: str) -> list[str]:
    """Split a dotted path into its parts, rejecting empty ones.

    Example:
        >>> split_path("stages.*.block.kernel_size")
        ['stages', '*', 'block', 'kernel_size']
    """
    parts = path.split(".")
    if not path or any(p == "" for p in parts):
        raise ConfigError(f"'{path}' is not a dotted path (e.g. stages.*.skip.type)")
    return parts


def _children(node: Any, part: str, done: str, path: str) -> list[tuple[Any, Any]]:
    """The (container, key) pairs that ``part`` names inside ``node``."""
    if isinstance(node, list):
        if part == "*":
            return [(node, i) for i in range(len(node))]
        if ":" in part:
            try:
                bounds = [int(b) if b else None for b in part.split(":")]
                picked = range(len(node))[slice(*bounds)]
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: '{part}' is not a slice like ':-1' or '1:3'") from None
            return [(node, i) for i in picked]
        try:
            index = int(part)
        except ValueError:
            raise ConfigError(f"{path}: '{done}' is a list; use an index, '*' or a slice, "
                              f"not '{part}'") from None
        if not -len(node) <= index < len(node):
            raise ConfigError(f"{path}: '{done}' has {len(node)} entries, no index {index}")
        return [(node, index)]
    if isinstance(node, dict):
        if part == "*":
            raise ConfigError(f"{path}: '*' needs a list, but '{done}' is a mapping")
        if part not in node:
            where = f"'{done}'" if done else "the config"
            raise ConfigError(f"{path}: {where} has no field '{part}'" + did_you_mean(part, node))
        return [(node, part)]
    raise ConfigError(f"{path}: '{done}' is a value ({node!r}), it has no field '{part}'")


def _locate(cfg: dict[str, Any], path: str, shown: str | None = None) -> list[tuple[Any, Any]]:
    parts = split_path(path)
    slots: list[tuple[Any, Any]] = [({"": cfg}, "")]
    done = ""
    for part in parts:
        nxt: list[tuple[Any, Any]] = []
        for container, key in slots:
            nxt.extend(_children(container[key], part, done, shown or path))
        slots = nxt
        done = f"{done}.{part}" if done else part
    return slots


def get_path(cfg: dict[str, Any], path: str) -> list[Any]:
    """Every value that ``path`` names (one per ``*`` match).

    Raises:
        ConfigError: a part of the path does not exist; the message names it.

    Example:
        >>> get_path({"stages": [{"width": 8}, {"width": 16}]}, "stages.*.width")
        [8, 16]
    """
    return [container[key] for container, key in _locate(cfg, path)]


def set_path(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a deep copy of ``cfg`` with every field named by ``path`` set to ``value``.

    The final key must already exist (``model_dump()`` lists every field, so a missing
    key is a typo, reported with a "did you mean"). Setting ``type`` to a different
    value replaces the enclosing dict by ``{"type": value}`` (see the module docstring).

    Args:
        cfg: a plain config dict (e.g. ``ArchConfig.model_dump()``); not modified.
        path: dotted path, ``*`` for every list element.
        value: the new value (deep-copied into each place).

    Raises:
        ConfigError: the path does not exist in ``cfg``.
    """
    out = copy.deepcopy(cfg)
    parts = split_path(path)
    if parts[-1] == "type" and len(parts) > 1:
        for container, key in _locate(out, ".".join(parts[:-1]), shown=path):
            node = container[key]
            if not isinstance(node, dict) or "type" not in node:
                raise ConfigError(f"{path}: '{'.'.join(parts[:-1])}' has no field 'type'")
            if node["type"] != value:
                container[key] = {"type": copy.deepcopy(value)}
        return out
    for container, key in _locate(out, path):
        container[key] = copy.deepcopy(value)
    return out
