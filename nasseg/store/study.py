"""Creating, opening, finding and recovering stored studies.

- :func:`create_or_open`: the study of a run (``nasseg search``/``ablate``): created with
  its :class:`~nasseg.store.records.StudyRecord` and objective names the first time, else
  opened and its format and kind checked.
- :func:`open_existing`: a stored study, never creating anything.
- :func:`locate`: the study a command names (a study YAML, a run folder, a storage file
  or URL), for ``nasseg pareto``/``export``/``report``.
- :func:`recover_stale`: fail the RUNNING trials of dead workers and re-queue their params.

Example:
    >>> study = create_or_open("sqlite:///runs/demo/study.db", "demo", record, sampler=sampler)
    >>> recover_stale(study)
    []
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from nasseg.errors import ConfigError
from nasseg.store.claims import HEARTBEAT_GRACE_S
from nasseg.store.read import study_record, trial_record
from nasseg.store.records import StudyRecord
from nasseg.store.storage import normalise_url, open_storage, stale_reason, storage_path
from nasseg.store.studyfile import study_location

__all__ = ["create_or_open", "enqueue_retry", "locate", "open_existing", "recover_stale", "update_record"]


def create_or_open(url: str | BaseStorage, name: str, record: StudyRecord, *, sampler: Any = None,
                   enqueue: Iterable[tuple[dict[str, Any], dict[str, Any]]] = ()) -> optuna.Study:
    """Open study ``name``, or create it with ``record``, its objective names and the
    ``enqueue`` trials (``(params, user_attrs)``) when the storage does not hold it.

    ``url`` is a storage URL or file (see :mod:`nasseg.store.storage`) or an open storage
    (e.g. ``optuna.storages.InMemoryStorage()``).

    Raises:
        ConfigError: the stored study is of another kind (or not a nasseg study).
        StoreFormatError: it is stored in a format this nasseg cannot read.
    """
    storage = open_storage(url, create=True) if isinstance(url, str) else url
    directions = [o.direction for o in record.objectives]
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=directions, load_if_exists=True)
        if "nasseg_kind" not in study.user_attrs:  # we won a race to create it: write the record
            _write(study, record)
            for params, attrs in enqueue:
                study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
    stored = study_record(study)
    if stored is None or stored.nasseg_kind != record.nasseg_kind:
        raise ConfigError(f"storage {url} already holds a study '{name}' that is not a nasseg "
                          f"{record.nasseg_kind}; give this study another name or storage")
    return study


def _write(study: optuna.Study, record: StudyRecord) -> None:
    for key, value in record.attrs().items():
        study.set_user_attr(key, value)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(record.objective_names)


def update_record(study: optuna.Study, **fields: Any) -> None:
    """Overwrite fields of the stored record (e.g. the command of the latest run)."""
    known = set(StudyRecord.model_fields)
    for key, value in fields.items():
        if key not in known:
            raise KeyError(f"'{key}' is not a StudyRecord field")
        study.set_user_attr(key, value)


def open_existing(url: str, name: str | None = None, *, sampler: Any = None,
                  where: str | None = None) -> optuna.Study:
    """Open a stored study without creating anything; its format is checked.

    Args:
        url: the storage URL or file.
        name: the study; ``None`` picks the only (search) study in the storage.
        where: what errors name (default: the URL).

    Raises:
        StorageError: no such storage, or not a readable one.
        ConfigError: no such study, or several and none named.
        StoreFormatError: a format this nasseg cannot read.
    """
    where = where or url
    storage = open_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if name is None:
        kinds = {s.study_name: s.user_attrs.get("nasseg_kind") for s in storage.get_all_studies()}
        searches = [n for n in names if kinds[n] == "search"] or names
        if len(searches) != 1:
            raise ConfigError(f"{where}: {'no studies' if not searches else 'several studies: ' + ', '.join(searches)}"
                              "; name one with --study")
        name = searches[0]
    if name not in names:
        raise ConfigError(f"{where}: no study '{name}' (studies: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    study_record(study)  # refuse an unknown format here, before anything reads it
    return study


def locate(target: str | Path, study_name: str | None = None, profile: str | None = None) -> optuna.Study:
    """The stored study a command names: a search or ablation YAML (its storage and name
    resolved as ``nasseg search``/``ablate`` do; ``profile`` for an ablation's profile), a
    run folder holding ``study.db``/``study.log``, a storage file or a URL.

    Raises:
        ConfigError: nothing stored there, no such study, or several and none named.
    """
    text = str(target)
    path = Path(text)
    if path.suffix in (".yaml", ".yml"):
        url, name = study_location(path, profile)
        study_name = study_name or name
    elif path.is_dir():
        found = [p for p in (path / "study.db", path / "study.log") if p.exists()]
        if not found:
            raise ConfigError(f"{path}: no study.db or study.log in this folder")
        url = normalise_url(str(found[0]))
    else:
        url = normalise_url(text)
    file = storage_path(url)
    if file is not None and not file.exists():
        raise ConfigError(f"{text}: no study storage at {file} (run `nasseg search` first, or `nasseg ablate` for an ablation)")
    return open_existing(url, study_name, where=text)


def recover_stale(study: optuna.Study, grace_s: float = HEARTBEAT_GRACE_S) -> list[int]:
    """Fail every stale RUNNING trial (see :func:`nasseg.store.storage.stale_reason`) and
    enqueue its params again, its copy recording ``retry_of`` and ``retry_reason``.

    Nothing completed is touched; a trial another process recovers first is skipped.

    Returns:
        The numbers of the trials this call failed.
    """
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(t, grace_s)
        if reason is None:
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another process recovered it first
        rec = trial_record(t)
        enqueue_retry(study, t.params, t.number, reason, rec.initial_arch, alone=bool(rec.run_alone))
        recovered.append(t.number)
    return recovered


def enqueue_retry(study: optuna.Study, params: dict[str, Any], number: int, reason: str,
                  initial_arch: str | None = None, alone: bool = False) -> None:
    """Enqueue the params of failed trial ``number`` again; the copy records why (and
    ``run_alone`` when it must train alone on its device)."""
    attrs: dict[str, Any] = {"retry_of": number, "retry_reason": reason}
    if alone:
        attrs["run_alone"] = True
    if initial_arch is not None:
        attrs["initial_arch"] = initial_arch
    study.enqueue_trial(params, user_attrs=attrs)
