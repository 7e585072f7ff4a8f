"""Write studies in nasseg's stored format from values you give: for tests of the report
and of the statistics, and for anyone checking that their own study reads back.

These only *store* what the caller passes, through the study store (real Optuna storage,
trials stored as a run stores them); they compute nothing and invent nothing.

Example:
    >>> study = new_study("sqlite:///tmp/s.db", "demo", "search",
    ...                   [("dice", "maximize"), ("macs", "minimize")], reference_point={"dice": 0, "macs": 2e9})
    >>> add_trial(study, [0.8, 1e9], arch=arch, params={"width": 16})   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import optuna

from nasseg.store import StudyRecord, add_trial, create_or_open

__all__ = ["add_trial", "new_study"]


def new_study(storage: str | None, name: str, kind: str, objectives: list[tuple[str, str]], *,
              config: dict[str, Any] | None = None, reference_point: dict[str, float] | None = None,
              dataset: dict[str, Any] | None = None, command: str = "", versions: dict[str, str] | None = None,
              created: str = "2025-01-01T00:00:00+00:00", ideal_point: dict[str, float] | None = None,
              ) -> optuna.Study:
    """Create a study with a nasseg :class:`~nasseg.store.records.StudyRecord` (in memory
    when ``storage`` is ``None``)."""
    record = StudyRecord(nasseg_kind=kind, objectives=[{"name": n, "direction": d} for n, d in objectives],
                         config=config or {}, dataset=dataset or {}, versions=versions or {},
                         command=command, created=created, reference_point=reference_point,
                         ideal_point=ideal_point)
    return create_or_open(storage or optuna.storages.InMemoryStorage(), name, record)
