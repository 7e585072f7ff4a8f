"""A persistent cost cache: a small SQLite table keyed by what determines the numbers.

Counts are keyed by (architecture id, input shape, counter versions); latency and
measured memory also by the device they were measured on. The default file is
``$NASSEG_CACHE_DIR/cost.sqlite`` (``~/.cache/nasseg``); several processes may
share it (SQLite serialises writers).
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any


def default_cache_path() -> Path:
    root = os.environ.get("NASSEG_CACHE_DIR") or Path.home() / ".cache" / "nasseg"
    return Path(root) / "cost.sqlite"


class CostCache:
    """``get(key)`` / ``put(key, value)`` of JSON values in one SQLite file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS cost (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT value FROM cost WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO cost (key, value) VALUES (?, ?)",
                       (key, json.dumps(value, sort_keys=True)))

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM cost").fetchone()[0]
