"""Find and open the study a report is about: from a study YAML, a storage file, a folder
or an Optuna storage URL. Opening never creates a storage.

Example:
    >>> open_study("studies/cmunext_skip_ablation.yaml", profile="cpu").study_name  # doctest: +SKIP
    'cmunext_skip_ablation-cpu'
"""
from __future__ import annotations

from pathlib import Path

import optuna
import yaml

from nasseg.errors import ConfigError, NassegError

__all__ = ["open_study"]


def _storage_of(source: str, profile: str | None) -> tuple[str, str | None]:
    """(storage URL, study name or None) for a study YAML, a .db file, a folder or a URL."""
    path = Path(source)
    if source.startswith("journal://"):
        return "search:", None
    if "://" in source:
        return source, None
    if path.suffix in (".yaml", ".yml"):
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read the study file ({err})") from None
        if not isinstance(raw, dict) or "name" not in raw:
            raise ConfigError(f"{path}: a study file needs a 'name'")
        if raw.get("kind", "ablation") == "ablation" and "factors" in raw:
            from nasseg.ablation.config import load_ablation

            cfg = load_ablation(path, profile=profile)
            return cfg.storage_url(), cfg.name
        return "search:", None
    if path.is_dir():
        if not (path / "study.db").exists() and (path / "study.log").exists():
            return "search:", None
        path = path / "study.db"
    if path.suffix == ".log":
        return "search:", None
    return f"sqlite:///{path}", None


def open_study(source: str | Path, study_name: str | None = None,
               profile: str | None = None) -> optuna.Study:
    """Load a finished or running study for reporting; never creates one.

    Args:
        source: a study YAML (its storage and name are resolved as ``nasseg ablate`` /
            ``nasseg search`` do), an Optuna storage URL, a ``.db`` file, a search's ``.log``
            journal, or a folder holding either.
        study_name: needed when the storage holds several studies.
        profile: the profile the study YAML was run with (its name gets ``-PROFILE``).

    Raises:
        NassegError: no storage there, no such study, or several and none named.
    """
    url, name = _storage_of(str(source), profile)
    if url == "search:":  # a search YAML or a journal file: the search knows how to open those
        from nasseg.search.results import open_result

        return open_result(source, study_name)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise NassegError(f"{source}: no study storage at {url.removeprefix('sqlite:///')} "
                          "(has the study been run?)")
    name = study_name or name
    try:
        names = optuna.get_all_study_names(storage=url)
    except Exception as err:  # noqa: BLE001 - any storage failure is the user's URL
        raise NassegError(f"{source}: cannot open storage {url}: {err}") from None
    if name is None:
        if len(names) != 1:
            raise NassegError(f"{source}: the storage holds {len(names)} studies "
                              f"({', '.join(names) or 'none'}); choose one with --study-name")
        name = names[0]
    if name not in names:
        raise NassegError(f"{source}: no study '{name}' in {url} (it holds: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=url)
