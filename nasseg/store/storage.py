"""Study storage: URLs, opening (safely), worker identity, and whether a trial is stale.

Storage URLs (``storage:`` in a study, or the default):

- ``sqlite:///runs/NAME/study.db`` (the default, in the study's output folder), or any
  SQLAlchemy URL Optuna accepts (``postgresql://...``, ``mysql://...``);
- ``journal:///abs/path/study.log`` or ``journal://rel/path.log``: Optuna's journal
  file storage (append-only, safe for several processes on one file system);
- a bare path: ``*.log`` is a journal file, ``*.db``/``*.sqlite``/``*.sqlite3`` a SQLite file.

Messages show a URL's password masked (:func:`nasseg.errors.mask_url`: ``user:***@host``).
Opening never harms a file: readers (``create=False``) never create a storage or write a
schema; a 0-byte file, a file that is not SQLite, a SQLite file without Optuna's tables
or a corrupt one is reported (:class:`StorageError`, naming the file) and left as it is.
A new SQLite file is created under an exclusive lock beside it, so that two processes
starting on the same new file do not both write the schema.

Crash recovery: every trial records its *owner*, the process that will report its result
(``{host, pid, start}``, ``start`` being the process's start time, so a recycled pid is
not mistaken for it) and a ``heartbeat`` time while it trains. A RUNNING trial is stale
(:func:`stale_reason`) when its owner is on this host and no longer alive, when its
heartbeat is older than ``grace_s`` (owners on other hosts), or when it never recorded an
owner after :data:`OWNERLESS_GRACE_S` (why so short: see :mod:`nasseg.store.claims`).

Example:
    >>> storage = open_storage("journal:///tmp/demo/study.log", create=True)
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial

from nasseg.errors import ConfigError, mask_url

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"

HEARTBEAT_GRACE_S = 600.0
"""Seconds without a heartbeat after which a trial owned by a process on another host (whose
liveness cannot be checked from here) is stale."""
OWNERLESS_GRACE_S = 20.0
"""Seconds after which a RUNNING trial that never recorded its owner is stale (the asker
writes it within milliseconds of ``ask()``, under the run lock: see :mod:`nasseg.store.claims`)."""


class StorageError(ConfigError):
    """A storage that cannot be opened: missing, empty, foreign or corrupt (names the file)."""


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


def open_storage(url: str, *, create: bool = False) -> BaseStorage:
    """Open the storage a URL names (see the module docstring).

    Args:
        url: a storage URL or path.
        create: create the file (and its folder) when missing; False only opens.

    Raises:
        StorageError: missing (without ``create``), empty, not SQLite, without Optuna's
            tables, or unreadable.
    """
    url = normalise_url(url)
    if url.startswith("journal://"):
        path = Path(url[len("journal://"):])
        if not path.exists() and not create:
            raise StorageError(f"no study storage at {path} (run `nasseg search` first)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except Exception as err:  # noqa: BLE001 - any failure to replay is a bad journal
            raise StorageError(f"{path}: not a readable Optuna journal ({type(err).__name__}: {err})") from None
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return _open_sqlite(Path(url[len("sqlite:///"):]), url, create)
    try:
        return RDBStorage(url)
    except Exception as err:  # noqa: BLE001 - a server URL the user gave
        detail = (str(err).strip().splitlines() or [""])[0]
        raise StorageError(mask_url(f"cannot open storage {url}: {type(err).__name__}: {detail}")) from None


def _open_sqlite(path: Path, url: str, create: bool) -> BaseStorage:
    if not create:
        if not path.exists():
            raise StorageError(f"no study storage at {path} (run `nasseg search` first, or `nasseg ablate` for an ablation)")
        check_sqlite(path)
        return _rdb(url, path, skip_tables=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path.parent / f".{path.name}.lock"):  # one creator; the others wait for it
        if not path.exists():
            return _rdb(url, path, skip_tables=False)
        check_sqlite(path)
        return _rdb(url, path, skip_tables=True)


def _rdb(url: str, path: Path, skip_tables: bool) -> RDBStorage:
    try:
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}},
                          skip_table_creation=skip_tables)
    except Exception as err:  # noqa: BLE001 - e.g. an Optuna schema of another version
        raise StorageError(f"{path}: cannot open as an Optuna study storage "
                           f"({type(err).__name__}: {err})") from None


def check_sqlite(path: Path) -> None:
    """Raise :class:`StorageError` unless ``path`` is a SQLite file holding Optuna's tables.

    Reads the file only (SQLite opened read-only), with one exception: a process killed
    inside a write transaction leaves a hot journal (``study.db-journal``), which a
    read-only connection cannot roll back ("attempt to write a readonly database"). Then
    the file is opened read-write once, so that SQLite's own crash recovery restores the
    last committed state; nothing committed changes.
    """
    size = path.stat().st_size
    if size == 0:
        raise StorageError(f"{path}: an empty file (0 bytes), not a study database; delete it or "
                           "choose another storage")
    with open(path, "rb") as fh:
        if fh.read(16) != _SQLITE_MAGIC:
            raise StorageError(f"{path}: not a SQLite database (is it the right file?)")
    try:
        tables = _tables(path, "ro")
    except sqlite3.OperationalError as err:
        if "readonly" not in str(err) or not Path(f"{path}-journal").exists():
            raise StorageError(f"{path}: a corrupt SQLite database ({err})") from None
        try:
            tables = _tables(path, "rw")  # rolls the hot journal back
        except sqlite3.DatabaseError as err2:
            raise StorageError(f"{path}: a corrupt SQLite database ({err2})") from None
    except sqlite3.DatabaseError as err:
        raise StorageError(f"{path}: a corrupt SQLite database ({err})") from None
    if not {"studies", "trials", "alembic_version"} <= tables:
        raise StorageError(f"{path}: a SQLite database without Optuna's tables (not a study "
                           "storage); choose another storage file")


def _tables(path: Path, mode: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=60)) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


@contextlib.contextmanager
def _file_lock(path: Path):  # noqa: ANN202
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    elif trial.user_attrs.get("heartbeat") is None:  # its asker died before claiming it
        age = _age_s(None, trial.datetime_start)
        if age > min(grace_s, OWNERLESS_GRACE_S):
            return f"its process died between ask() and recording its owner ({age:.0f} s ago)"
        return None
    age = _age_s(trial.user_attrs.get("heartbeat"), trial.datetime_start)
    if age > grace_s:
        return f"no heartbeat for {age:.0f} s (grace {grace_s:.0f} s)"
    return None
