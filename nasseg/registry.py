"""Name -> class tables for blocks and skips: the YAML vocabulary.

A registered name is what users write in YAML (``block: {type: cmunext}``);
names are snake_case and are never renamed without keeping an alias.

Example:
    >>> BLOCKS = Registry("block")
    >>> BLOCKS.register(ConvBlock)           # uses ConvBlock.Params' ``type`` literal
    >>> BLOCKS.get("conv") is ConvBlock
    True
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import get_args

from nasseg.errors import ConfigError, did_you_mean


class Registry:
    """An ordered table of modules, keyed by the ``type`` literal of their ``Params``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Add ``cls``; its name is the single value of ``cls.Params.model_fields['type']``."""
        (name,) = get_args(cls.Params.model_fields["type"].annotation)
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = cls
        return cls

    def get(self, name: str) -> type:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; "
                f"registered: {', '.join(self._items)}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def params_types(self) -> tuple[type, ...]:
        return tuple(cls.Params for cls in self._items.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
