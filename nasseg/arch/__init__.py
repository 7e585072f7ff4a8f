"""Architectures: the typed config, presets, and the network they build.

Example:
    >>> cfg = load_arch("cmunext_s")            # a preset, or a YAML path
    >>> model = build_model(cfg)
    >>> arch_id(cfg)
    '...12 hex digits...'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nasseg.arch.config import ArchConfig, StageConfig, arch_id, check_divisible, check_input_shape, size_multiple
from nasseg.arch.network import UNet, make_stage
from nasseg.configio import load_yaml, validate
from nasseg.errors import ConfigError, did_you_mean

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


def preset_names() -> list[str]:
    """Names of the shipped presets (``nasseg/presets/*.yaml``)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_arch(source: str | Path | dict[str, Any] | ArchConfig) -> ArchConfig:
    """An :class:`ArchConfig` from a preset name, a YAML/JSON path, or a mapping.

    Raises:
        ConfigError: naming the file and field when the config is invalid, or the
            closest preset when ``source`` is neither a preset nor a file.
    """
    if isinstance(source, ArchConfig):
        return source
    if isinstance(source, dict):
        return validate(ArchConfig, source, "architecture config")
    text = str(source)
    if text in preset_names():
        return load_yaml(ArchConfig, PRESET_DIR / f"{text}.yaml")
    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return load_yaml(ArchConfig, path)
    raise ConfigError(f"'{text}' is neither a preset{did_you_mean(text, preset_names())} "
                      f"nor a file; presets: {', '.join(preset_names())}")


def build_model(config: ArchConfig | str | Path | dict[str, Any]) -> UNet:
    """Build the network a config (or preset name, or YAML path) describes."""
    return UNet(load_arch(config))


__all__ = ["ArchConfig", "StageConfig", "UNet", "arch_id", "build_model", "check_divisible", "check_input_shape",
           "load_arch", "make_stage", "preset_names", "size_multiple"]
