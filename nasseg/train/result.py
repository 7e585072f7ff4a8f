"""What a training run returns, how it fails, and the run folder it writes."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from nasseg.errors import ConfigError, NassegError, writing
from nasseg.jsonsafe import json_safe


class TrainingFailed(NassegError):
    """A run could not finish: non-finite loss, CUDA out of memory, ...

    Attributes:
        reason: one line, e.g. ``"non-finite loss at epoch 3, step 12"``.
        history: the per-epoch metrics completed before the failure.
    """

    def __init__(self, reason: str, history: list[dict] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.history = history or []


@dataclass
class TrainResult:
    """The outcome of :func:`nasseg.train.train`.

    Attributes:
        best_epoch: epoch with the highest validation Dice (selection uses ``val`` only).
        best: mean validation metrics at that epoch (``dice``, ``iou``, ``hd95``, ``assd``,
            ``nsd``, ``dice_pooled``, empty counts and, for multi-class data, ``dice_1``, ...).
        history: per evaluated epoch: ``epoch, train_loss, dice, iou, hd95, lr, seconds,
            train_seconds, eval_seconds, images_per_s`` (+ per-class entries).
        per_case: ``{case_id, class, dice, iou, hd95, ...}`` of every validation case and
            foreground class at the best epoch.
        test: mean test metrics of the best-by-val weights, scored once (``None`` when the
            split has no test cases); what final tables report.
        test_per_case: per-case test rows, as ``per_case``.
        split: ``{method, seed, rule, train, val, test, hash}``, the split actually used.
        stopped_early: True when the callback, the patience or the time limit ended the run.
        stop_reason: ``"callback"``, ``"patience"``, ``"time"`` or ``None``.
        seconds: wall time of the whole run (loading included).
        epochs_run: epochs trained.
        num_params: trainable parameters of the network.
        config: the resolved ``arch``/``data``/``train`` configs and versions.
        run_dir: where the run was written, if anywhere.
        epoch_seconds: training time (no validation) of every epoch run.
        epoch_images: images (2D) or patches (3D) trained on in every epoch run.
        model: the trained network with the best epoch's weights (not serialised).
    """

    best_epoch: int
    best: dict[str, float]
    history: list[dict]
    per_case: list[dict]
    split: dict[str, Any]
    test: dict[str, float] | None = None
    test_per_case: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str | None = None
    seconds: float = 0.0
    epochs_run: int = 0
    num_params: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_images: list[int] = field(default_factory=list)
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (NaN/inf become ``None``; the model is left out)."""
        return json_safe({f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"})



RUN_FILES = ("config.json", "split.json", "plan.json", "history.csv", "metrics.json", "per_case.csv",
             "test_per_case.csv", "checkpoint.pt", "checkpoint.pt.tmp", "checkpoint_latest.pt",
             "checkpoint_latest.pt.tmp", "failed.json")
"""The files a run folder holds (:class:`RunWriter`, and the 3D ``plan.json``)."""


def claim_run_dir(run_dir: str | Path, *, overwrite: bool = False, remove: bool = True,
                  flag: str = "--run-dir") -> Path:
    """``run_dir`` made ready for a new run: refused when it holds an earlier run (finished
    or failed) unless ``overwrite``, which removes that run's files (when ``remove``; so
    nothing of the old run is mixed into the new one). Other files are left alone.

    Raises:
        ConfigError: ``run_dir`` is a file, or holds an earlier run (without ``overwrite``).

    Example:
        >>> claim_run_dir("runs/train/dsb")  # doctest: +SKIP
        ConfigError: --run-dir runs/train/dsb: holds an earlier run (checkpoint.pt, ...); ...
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file; a folder is needed here")
    earlier = [n for n in RUN_FILES if (path / n).exists()]
    if earlier and not overwrite:
        raise ConfigError(f"{flag} {path}: holds an earlier run ({', '.join(earlier)}); choose another folder "
                          f"(or pass --overwrite to replace it)")
    for name in earlier if remove else ():
        (path / name).unlink()
    return path


def can_resume(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a killed training :func:`resumable` accepts, and no failed one
    (a run that failed, e.g. diverged, is trained anew, not continued into the same failure)."""
    path = Path(run_dir)
    return ((path / "checkpoint_latest.pt").exists() and not (path / "metrics.json").exists()
            and not (path / "failed.json").exists())


def resumable(run_dir: str | Path | None, flag: str = "--resume") -> Path:
    """``run_dir`` holds a killed training to continue: a ``checkpoint_latest.pt`` and no
    ``metrics.json`` (a finished run is never continued or rewritten).

    Raises:
        ConfigError: no folder given, a finished run, or no ``checkpoint_latest.pt``.
    """
    if run_dir is None:
        raise ConfigError(f"{flag} needs the run folder to continue (-o/--out)")
    path = Path(run_dir)
    if (path / "metrics.json").exists():
        raise ConfigError(f"{flag} {path}: the run there finished (metrics.json); nothing to continue")
    if not (path / "checkpoint_latest.pt").exists():
        raise ConfigError(f"{flag} {path}: no checkpoint_latest.pt (no killed training to continue there)")
    return path


class RunWriter:
    """Writes a run folder: ``config.json``, ``split.json``, ``history.csv``,
    ``metrics.json``, ``per_case.csv``, ``test_per_case.csv``, ``checkpoint.pt`` (and
    ``failed.json``); :func:`claim_run_dir` checks the folder first."""

    def __init__(self, run_dir: Path | None) -> None:
        self.dir = Path(run_dir) if run_dir is not None else None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    def json(self, name: str, data: Any) -> None:
        if self.dir is not None:
            with writing(self.dir / name):  # a full disk names the file (nasseg.errors.environment_error)
                (self.dir / name).write_text(json.dumps(json_safe(data), indent=1) + "\n")

    def csv(self, name: str, rows: list[dict]) -> None:
        if self.dir is None or not rows:
            return
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with writing(self.dir / name), open(self.dir / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    def checkpoint(self, payload: dict[str, Any]) -> None:
        """``checkpoint.pt``: the chosen weights, written once when training ends."""
        self.save("checkpoint.pt", payload)

    def save(self, name: str, payload: dict[str, Any]) -> None:
        """``torch.save`` to ``name`` atomically (a ``.tmp`` file, then renamed over it)."""
        if self.dir is not None:
            tmp = self.dir / f"{name}.tmp"
            buffer = io.BytesIO()  # serialised in memory, written by Python: a full or read-only disk is
            torch.save(payload, buffer)  # an OSError naming the file, not torch's "enforce fail at inline_container.cc"
            with writing(tmp), open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
            tmp.replace(self.dir / name)
