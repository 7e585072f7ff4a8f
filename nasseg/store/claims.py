"""One writer per run: a trial is claimed the moment it is asked, and only a dead claim is taken over.

Every process that works on a study (search workers, ``nasseg ablate`` processes) does,
holding the run's lock file (:func:`run_lock`, in the study's output folder):

1. fail the RUNNING trials whose claim is dead (:func:`nasseg.store.study.recover_stale`),
2. decide what is left to do (the budget; an ablation's (variant, seed) pairs not COMPLETE
   and not claimed by a live process),
3. ``study.ask()`` and :func:`claim` it: owner ``{host, pid, start}`` and a first
   ``heartbeat`` are written before the lock is released.

So a RUNNING trial without an owner, seen by a process holding the lock, lost its asker
between ``ask()`` and the owner write (a kill in that window): it is stale after
:data:`~nasseg.store.storage.OWNERLESS_GRACE_S` seconds (to allow for an asker on another host that does not
share the lock file) instead of the 600 s heartbeat grace. A trial whose owner is a live
process on this host is never failed, whatever its heartbeat says.

Example:
    >>> with run_lock(out_dir):
    ...     recover_stale(study)
    ...     writer = claim(TrialWriter(study.ask()), worker=0)
"""
from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nasseg.store.storage import HEARTBEAT_GRACE_S, OWNERLESS_GRACE_S, alive, identity, now_iso

__all__ = ["HEARTBEAT_GRACE_S", "OWNERLESS_GRACE_S", "claim", "live_claim", "run_lock"]

# HEARTBEAT_GRACE_S and OWNERLESS_GRACE_S belong to staleness (nasseg.store.storage.stale_reason);
# they are re-exported here, where the claim protocol that sets them is described.


@contextlib.contextmanager
def run_lock(folder: Path | str) -> Iterator[None]:
    """Hold the exclusive lock file ``folder/.run.lock`` (created with its folder).

    The lock is released by the kernel when its holder dies, so a killed process never
    blocks the others.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".run.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def job_lock(path: Path | str, *, wait: bool) -> Iterator[bool]:
    """Hold the exclusive lock file ``path`` for one job (e.g. one confirmation run): yields
    ``True`` when held, ``False`` when another process holds it and ``wait`` is false. The
    kernel releases it when the holder dies, so a killed process's job can be taken over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def claim(writer: Any, **fields: Any) -> Any:
    """Record this process as the owner of the trial ``writer`` holds, with a first heartbeat.

    Call it right after ``study.ask()``, before releasing :func:`run_lock`.

    Returns:
        The writer.
    """
    writer.set(owner=identity(), heartbeat=now_iso(), **fields)
    return writer


def live_claim(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is RUNNING and claimed by a process that still runs (or, on another
    host, may still run: its liveness cannot be checked from here)."""
    if trial.state != TrialState.RUNNING:
        return False
    owner = trial.user_attrs.get("owner")
    return owner is None or alive(owner) is not False
