"""What every study file holds, whatever its kind: the study base.

A search study (:class:`nasseg.search.study.StudyConfig`) and an ablation study
(:class:`nasseg.ablation.config.AblationConfig`) both extend :class:`StudyBase`: one
``name``, ``description``, ``data``, ``train``, output folder (``output_dir``; an
ablation's older ``out_dir`` is read as the same field), ``storage`` (default:
``sqlite:///<output folder>/study.db``, absolute) and ``kind`` (``search`` or
``ablation``; written or inferred). The store finds any study's storage from its file
(:func:`study_location`) through this base alone, without importing either kind.

Example:
    >>> cfg = StudyBase(name="demo", output_dir="/tmp/demo")
    >>> cfg.out_dir(), cfg.storage_url()
    (PosixPath('/tmp/demo'), 'sqlite:////tmp/demo/study.db')
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from nasseg.configio import Strict, read_yaml, validate
from nasseg.errors import ConfigError, did_you_mean
from nasseg.store.storage import default_storage_url, normalise_url

__all__ = ["KINDS", "StudyBase", "deep_merge", "file_kind", "read_study_file", "study_location"]

KINDS = ("search", "ablation")
"""The kinds of study file."""


class StudyBase(Strict):
    """The fields and defaults every study shares (see the module docstring).

    Attributes:
        name: the study's name in its storage (letters, digits, ``_ - .``).
        description: free text shown in reports.
        data: the dataset (its shape is the kind's: see each subclass).
        train: a ``nasseg.train.TrainConfig`` mapping.
        storage: Optuna storage URL or file; default :meth:`storage_url`.
        output_dir: where the storage, runs and tables go; default ``runs/<name>``.
    """

    KIND: ClassVar[str] = ""
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    data: Any = None
    train: dict[str, Any] = Field(default_factory=dict)
    storage: str | None = None
    output_dir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _kind_and_old_names(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        kind = raw.pop("kind", cls.KIND)
        if kind not in KINDS + ("",) or (cls.KIND and kind != cls.KIND):
            raise ValueError(f"kind is '{kind}', not a{'n' if cls.KIND == 'ablation' else ''} "
                             f"{cls.KIND or ' or '.join(KINDS)} study")
        if "out_dir" in raw:
            if "output_dir" in raw:
                raise ValueError("give output_dir or out_dir (its older name), not both")
            raw["output_dir"] = raw.pop("out_dir")
        return raw

    def out_dir(self) -> Path:
        """The output folder: ``output_dir``, or ``runs/NAME`` (absolute)."""
        return Path(self.output_dir).expanduser().resolve() if self.output_dir else (Path("runs") / self.name).resolve()

    def storage_url(self) -> str:
        """``storage`` (normalised), or ``sqlite:///<out_dir>/study.db``."""
        return normalise_url(self.storage) if self.storage else default_storage_url(self.out_dir())


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``over`` merged in: mappings recursively, anything else replaced.

    Example:
        >>> deep_merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}})
        {'a': {'x': 1, 'y': 3}}
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def file_kind(raw: dict[str, Any]) -> str:
    """The kind of a study file's mapping: its ``kind``, else ``ablation`` when it has
    ``factors``, else ``search``."""
    return str(raw.get("kind") or ("ablation" if "factors" in raw else "search"))


def read_study_file(path: str | Path, profile: str | None = None) -> tuple[dict[str, Any], str]:
    """A study file's mapping with ``profile`` deep-merged in, and what errors should name.

    A profile gives the study its own name (``NAME-PROFILE``) unless it sets ``name``, so
    its results never mix with the full run's; a search file without ``name`` is named
    after the file.

    Raises:
        ConfigError: unreadable YAML, not a mapping, or an unknown profile (naming the file).
    """
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file is a mapping (name, data, ...)")
    if "name" not in raw and file_kind(raw) == "search":
        raw = {**raw, "name": Path(path).stem}
    if profile is None:
        return raw, str(path)
    profiles = raw.get("profiles") or {}
    if profile not in profiles:
        raise ConfigError(f"{path}: profiles: no profile '{profile}'" + did_you_mean(profile, profiles)
                          + (f"; defined: {', '.join(profiles)}" if profiles else ""))
    if not isinstance(profiles[profile], dict):
        raise ConfigError(f"{path}: profiles.{profile}: a profile is a mapping of fields to override")
    if "profiles" in profiles[profile]:
        raise ConfigError(f"{path}: profiles.{profile}: a profile cannot define profiles")
    merged = deep_merge(raw, profiles[profile])
    if "name" not in profiles[profile]:
        merged["name"] = f"{raw.get('name')}-{profile}"
    return merged, f"{path} (profile '{profile}')"


def study_location(path: str | Path, profile: str | None = None) -> tuple[str, str]:
    """The storage URL and study name a study file (of either kind) points at.

    Only the base fields are read here; the whole file is validated by the command that
    runs it (``nasseg search``/``ablate``).

    Raises:
        ConfigError: the file, a profile or a base field is bad (naming the file and field).
    """
    raw, where = read_study_file(path, profile)
    base = {k: raw[k] for k in ("kind", "name", "storage", "output_dir", "out_dir") if k in raw}
    cfg = validate(StudyBase, base, where)
    return cfg.storage_url(), cfg.name
