"""What produced a result: the software versions, the code's git commit, the command line,
the data's content hash, the split, seeds and threads -- stored with every run, study and report.

Example:
    >>> prov = provenance(data=resolve_data("synthetic"), seeds=[0], threads=1)  # doctest: +SKIP
    >>> sorted(prov)                                                            # doctest: +SKIP
    ['command', 'data_hash', 'deterministic', 'seeds', 'split_hash', 'threads', 'versions']
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import nasseg
from nasseg.data.identity import folder_identity
from nasseg.data.splits import split_hash
from nasseg.device import deterministic_run

_PACKAGES = ("optuna", "numpy", "scipy", "pandas", "plotly", "pydantic", "ray")


def versions() -> dict[str, str]:
    """nasseg, Python, the platform, torch (and CUDA/GPU when present) and the installed
    libraries a result depends on; a library that is not installed is left out.

    Example:
        >>> versions()["torch"]
        '2.13.0+cpu'
    """
    import torch  # lazy: CLI startup (torch)

    out = {"nasseg": nasseg.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "torch": torch.__version__}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name()
    out.update(git_state())
    return out


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, str]:
    """``{"git_commit", "git_dirty"}`` of the checkout the package runs from (``{}`` when it is
    installed, or git is missing). ``git_dirty`` is ``"yes"`` when tracked files differ from
    the commit -- the result then came from code no commit holds.
    """
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": "yes" if dirty else "no"}


def data_hash(data: Any) -> str:
    """16 hex digits identifying a dataset's content: its folder's identity
    (:func:`nasseg.data.identity.folder_identity`: relative file names, sizes and the first
    and last 64 KiB of each; stable across machines and mount points), or the generator
    settings of synthetic data.

    Example:
        >>> data_hash(resolve_data("synthetic")) == data_hash(resolve_data("synthetic"))  # doctest: +SKIP
        True
    """
    if getattr(data, "kind", None) == "synthetic" or not getattr(data, "path", None):
        key = json.dumps({"synthetic": data.synthetic.model_dump(mode="json"), "size": data.size},
                         sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]
    return folder_identity(str(Path(data.path).resolve()))


def deterministic_flags(device: str | None = None) -> dict[str, Any]:
    """torch's determinism settings as they are now or, with ``device`` (``cpu``,
    ``cuda[:N]``, ``auto``), as each training run on that device will set them (a study
    records this before its runs start; see :func:`nasseg.device.deterministic_run`).

    Example:
        >>> deterministic_flags("cpu")["deterministic_algorithms"]
        True
    """
    import torch  # lazy: CLI startup (torch)

    flags: dict[str, Any] = {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                             "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
                             "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                             "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if device is None:
        return flags
    kind = "cuda" if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else "cpu"
    flags["deterministic_algorithms"] = flags["deterministic_algorithms"] or deterministic_run(kind)
    if kind == "cuda":
        flags["cudnn_benchmark"] = "on in runs whose batch shapes are fixed"
    flags["set_by"] = f"each training run on {kind}"
    return flags


def provenance(*, data: Any = None, split: dict[str, Any] | None = None, seeds: list[int] | None = None,
               threads: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Everything needed to say what produced a result.

    Args:
        data: the ``DataConfig`` (for its content hash).
        split: the split used (for its hash; see :func:`nasseg.data.splits.split_hash`).
        seeds: training seeds.
        threads: torch CPU threads (default: the current setting).
        device: where the runs will train, for a record written before they start (the
            determinism flags are then those the runs set, not the current ones).

    Returns:
        ``versions`` (with ``git_commit``/``git_dirty`` from a checkout), ``command`` (the
        exact command line), ``data_hash``, ``split_hash``, ``seeds``, ``threads``,
        ``deterministic`` (:func:`deterministic_flags`).
    """
    import torch  # lazy: CLI startup (torch)

    return {"versions": versions(), "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "data_hash": data_hash(data) if data is not None else None,
            "split_hash": split_hash(split) if split else None, "seeds": list(seeds or []),
            "threads": threads if threads is not None else torch.get_num_threads(),
            "deterministic": deterministic_flags(device)}
