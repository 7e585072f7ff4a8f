"""Shared test setup: a private cost cache, and where the real datasets live."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config):
    # never read or write the user's ~/.cache/nasseg from tests
    os.environ.setdefault("NASSEG_CACHE_DIR", tempfile.mkdtemp(prefix="nasseg-test-cache-"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def bench_out(tmp_path) -> Path:
    """Where a slow test saves its measured numbers: ``reports/bench`` only when run as a
    benchmark (``NASSEG_BENCH=1 python -m pytest -m slow ...``), else a temporary folder,
    so a test run never rewrites the committed results."""
    if os.environ.get("NASSEG_BENCH") == "1":
        out = REPO / "reports" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path
