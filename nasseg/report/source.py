"""Find and open the study a report is about: from a study YAML, a storage file, a folder
or an Optuna storage URL. Opening never creates a storage.

Example:
    >>> open_study("studies/cmunext_skip_ablation.yaml", profile="cpu").study_name  # doctest: +SKIP
    'cmunext_skip_ablation-cpu'
"""
from __future__ import annotations

from pathlib import Path

import optuna

from nasseg.store import locate

__all__ = ["open_study"]


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
        ConfigError: no storage there, no such study, or several and none named.
    """
    return locate(source, study_name, profile)
