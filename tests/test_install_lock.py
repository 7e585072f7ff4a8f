"""The installed packages are the ones the suite passed with (constraints.txt).

A fresh install resolves the newest releases; a drift from the lock file once broke the
README's test command (optuna 5.1's NSGA-II sampler could not be pickled by Ray Tune) while
CI, on a machine with the older packages, stayed green. This test names every drift at
once. To test against the latest releases on purpose, set ``NASSEG_UNLOCKED=1`` (what
``.ci/refresh-lock`` does before it rewrites the lock).
"""
from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

LOCK = Path(__file__).resolve().parents[1] / "constraints.txt"


def locked() -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line."""
    out = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{LOCK}: '{line}' is not name==version"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def drifts(lock: dict[str, str], installed: dict[str, str]) -> list[str]:
    """The packages whose installed version is not the locked one (a local label such as
    ``+cpu`` is ignored: ``torch==2.13.0`` locks the CPU and the CUDA build alike)."""
    return [f"{name} {installed[name]} installed, {v} locked" for name, v in sorted(lock.items())
            if name in installed and Version(installed[name]).public != Version(v).public]


def installed_versions() -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in metadata.distributions()}


def test_the_lock_file_pins_what_nasseg_needs() -> None:
    lock = locked()
    for name in ("torch", "optuna", "ray", "pandas", "numpy", "pydantic", "statsmodels", "monai", "psycopg"):
        assert name in lock, f"{LOCK} does not pin {name}"


def test_drift_is_named() -> None:
    lock = {"torch": "2.13.0", "optuna": "5.0.0", "ray": "2.60.0"}
    found = drifts(lock, {"torch": "2.13.0+cpu", "optuna": "5.1.0"})
    assert found == ["optuna 5.1.0 installed, 5.0.0 locked"]


@pytest.mark.skipif(os.environ.get("NASSEG_UNLOCKED") == "1", reason="NASSEG_UNLOCKED=1: testing unlocked versions")
def test_installed_versions_match_the_lock_file() -> None:
    found = drifts(locked(), installed_versions())
    assert not found, ("installed packages differ from constraints.txt (install with "
                       "pip install -c constraints.txt -e '.[ray,test,postgres]', or refresh the lock "
                       "with bash .ci/refresh-lock): " + "; ".join(found))
