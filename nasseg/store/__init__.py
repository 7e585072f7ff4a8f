"""The study store: the one owner of what nasseg keeps in an Optuna storage.

- :mod:`~nasseg.store.records`: the typed, versioned study and trial records;
- :mod:`~nasseg.store.objectives`: the objective registry (one record per objective);
- :mod:`~nasseg.store.storage`: storage URLs, safe opening, owners and staleness;
- :mod:`~nasseg.store.study`: create, open, locate, recover stale trials;
- :mod:`~nasseg.store.write`: a trial's record through Optuna's public trial API;
- :mod:`~nasseg.store.read`: the readers (feasible trials, front, hypervolume, summaries);
- :mod:`~nasseg.store.pareto`: dominance, Pareto sets and normalised hypervolume.

Searches, ablations and the report read and write user attrs only through this package,
and it imports neither torch nor ray, so reading a study is fast.

Example:
    >>> from nasseg.store import front, locate
    >>> [t.number for t in front(locate("runs/quickstart/study.db"))]   # doctest: +SKIP
"""
from nasseg.store.objectives import OBJECTIVES, Objective
from nasseg.store.read import (REJECTED, arch_summary, constraints, counted, epochs_trained, fail_reason,
                               feasible, front, hypervolume, hypervolume_on_test, objectives_of, outcome,
                               outcome_counts, requeued, retries, split_summary,
                               study_record, trial_record, unique_feasible)
from nasseg.store.records import FORMAT, StoreFormatError, StudyRecord, TrialRecord
from nasseg.store.storage import StorageError, open_storage
from nasseg.store.study import create_or_open, locate, open_existing, recover_stale, update_record
from nasseg.store.write import TrialWriter, add_trial

__all__ = [
    "FORMAT", "OBJECTIVES", "Objective", "REJECTED", "StorageError", "StoreFormatError", "StudyRecord", "TrialRecord",
    "TrialWriter", "add_trial", "arch_summary", "constraints", "counted", "create_or_open",
    "epochs_trained", "fail_reason", "feasible", "front", "hypervolume", "hypervolume_on_test", "locate", "objectives_of",
    "open_existing", "outcome", "outcome_counts", "open_storage", "recover_stale", "requeued", "retries", "split_summary",
    "study_record", "trial_record", "unique_feasible", "update_record",
]
