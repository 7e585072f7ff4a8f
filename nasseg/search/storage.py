"""Study storage: URLs, opening, worker identity, and recovering trials of dead workers.

Storage URLs (``storage:`` in a study, or the default):

- ``sqlite:///runs/NAME/study.db`` (the default, in the study's output folder), or any
  SQLAlchemy URL Optuna accepts (``postgresql://...``, ``mysql://...``);
- ``journal:///abs/path/study.log`` or ``journal://rel/path.log``: Optuna's journal
  file storage (append-only, safe for several processes on one file system);
- a bare path: ``*.log`` is a journal file, ``*.db``/``*.sqlite``/``*.sqlite3`` a SQLite file.

Crash recovery: every trial records its *owner*, the process that will report its result
(``{host, pid, start}``, ``start`` being the process's start time, so a recycled pid is
not mistaken for it) and a ``heartbeat`` time while it trains. A RUNNING trial is stale
when its owner is on this host and no longer alive, or when its heartbeat is older than
``grace_s`` (owners on other hosts). :func:`recover_stale` marks a stale trial FAIL
(``fail_reason`` says why, ``requeued`` is true) and enqueues its params again, so the
budget is still met and nothing completed is touched.

Example:
    >>> storage = open_storage("journal:///tmp/demo/study.log")
    >>> recover_stale(optuna.load_study(study_name="demo", storage=storage), storage)
    []
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from nasseg.errors import ConfigError

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def default_storage_url(output_dir: Path) -> str:
    """``sqlite:///<absolute output_dir>/study.db``."""
    return f"sqlite:///{Path(output_dir).resolve() / 'study.db'}"


def normalise_url(url: str) -> str:
    """Turn a bare path into a URL and make relative file paths absolute (for other processes)."""
    if url.startswith("journal://"):
        return f"journal://{Path(url[len('journal://'):]).expanduser().resolve()}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url[len("sqlite:///"):]
        if rest and rest != ":memory:":
            return f"sqlite:///{Path(rest).expanduser().resolve()}"
        return url
    if "://" in url:
        return url
    path = Path(url).expanduser()
    if path.suffix == ".log":
        return f"journal://{path.resolve()}"
    if path.suffix in _SQLITE_SUFFIXES:
        return f"sqlite:///{path.resolve()}"
    raise ConfigError(f"storage '{url}': not a URL, a .log journal file or a .db SQLite file")


def open_storage(url: str) -> BaseStorage:
    """Open (creating if needed) the storage a URL names; see the module docstring."""
    url = normalise_url(url)
    if url.startswith("journal://"):
        path = Path(url[len("journal://"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return RDBStorage(url)


def storage_path(url: str) -> Path | None:
    """The file behind a SQLite or journal URL (``None`` for a database server)."""
    url = normalise_url(url)
    for prefix in ("journal://", "sqlite:///"):
        if url.startswith(prefix):
            return Path(url[len(prefix):])
    return None


# -- owners and heartbeats ------------------------------------------------------------------
def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def identity() -> dict[str, Any]:
    """This process: ``{host, pid, start}`` (start = its start time in clock ticks)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_ticks(pid)}


def alive(owner: dict[str, Any]) -> bool | None:
    """Whether the owner process still runs; ``None`` when it is on another host."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = owner.get("start")
    return start is None or _start_ticks(pid) == start


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _age_s(iso: str | None, fallback: dt.datetime | None) -> float:
    when = dt.datetime.fromisoformat(iso) if iso else fallback
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.astimezone()
    return (dt.datetime.now(dt.timezone.utc) - when).total_seconds()


def stale_reason(trial: FrozenTrial, grace_s: float) -> str | None:
    """Why a RUNNING trial is stale, or ``None`` when its owner may still be working on it."""
    owner = trial.user_attrs.get("owner")
    if owner is not None:
        state = alive(owner)
        if state is False:
            return f"its process (pid {owner.get('pid')} on {owner.get('host')}) died"
        if state is True:
            return None
    age = _age_s(trial.user_attrs.get("heartbeat"), trial.datetime_start)
    if age > grace_s:
        return f"no heartbeat for {age:.0f} s (grace {grace_s:.0f} s)"
    return None


def recover_stale(study: optuna.Study, storage: BaseStorage, grace_s: float = 600.0) -> list[int]:
    """Fail every stale RUNNING trial and enqueue its params again; return their numbers."""
    study_id = storage.get_study_id_from_name(study.study_name)
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(t, grace_s)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:  # attributes first: a finished trial can no longer be updated
            storage.set_trial_user_attr(trial_id, "fail_reason", f"interrupted: {reason}; re-queued")
            storage.set_trial_user_attr(trial_id, "requeued", True)
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue  # another process recovered it first
        attrs = {k: v for k, v in t.user_attrs.items() if k in ("initial_arch",)}
        study.enqueue_trial(t.params, user_attrs={**attrs, "retry_of": t.number})
        recovered.append(t.number)
    return recovered


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts against the trial budget (all but re-queued and waiting ones)."""
    if trial.state == TrialState.WAITING:
        return False
    return not (trial.state == TrialState.FAIL and trial.user_attrs.get("requeued"))

