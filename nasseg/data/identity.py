"""A dataset's identity: the one content key of a set of files.

Used for the data hash of every run's provenance (:func:`nasseg.versions.data_hash`) and
for the key of the preprocessed-volume cache (:mod:`nasseg.data.preprocess`): the sorted
file names relative to the dataset folder, their sizes and their first and last 64 KiB.
No modification time enters it, so a copy of the same files on another machine has the
same identity, and an edited file (new size or new bytes at either end, as any rewrite of
a compressed image has) changes it.

Example:
    >>> files_identity([Path("imagesTr/a.nii.gz")], root=Path("/data/Task04"))  # doctest: +SKIP
    '3f0c5b8e0d9a61c2'
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["EDGE_BYTES", "files_identity", "folder_identity"]

EDGE_BYTES = 65536
"""Bytes read from each end of every file."""


def files_identity(paths: Sequence[Path | str], root: Path | str | None = None) -> str:
    """16 hex digits identifying the content of ``paths`` (in any order), named relative to
    ``root`` (default: their common folder)."""
    paths = [Path(p) for p in paths]
    if root is None:
        root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: os.path.relpath(q, root)):
        size = p.stat().st_size
        h.update(f"{os.path.relpath(p, root)}\t{size}\t".encode())
        with open(p, "rb") as f:
            h.update(f.read(EDGE_BYTES))
            if size > EDGE_BYTES:
                f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
                h.update(f.read(EDGE_BYTES))
    return h.hexdigest()[:16]


def folder_identity(root: str) -> str:
    """:func:`files_identity` of every file under folder ``root`` (hidden files and folders
    left out); cached per process while no file's name, size or modification time changes
    (a long-lived process sees an edit)."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(folder) / n for n in names if not n.startswith(".")]
    stamp = tuple(sorted((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()]))
    return _identity(root, stamp)


@functools.lru_cache(maxsize=8)
def _identity(root: str, stamp: tuple) -> str:
    return files_identity([Path(p) for p, _, _ in stamp], root)
