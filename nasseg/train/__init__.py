"""Training and validation: losses, per-case metrics, the training loop.

:class:`TrainConfig` is imported at once (it needs no torch, so study configs validate
without it); the rest is imported on first use.

Example:
    >>> from nasseg.arch import load_arch
    >>> from nasseg.data import resolve_data
    >>> res = train(load_arch("cmunext_s"), resolve_data("synthetic"), TrainConfig(epochs=3))  # doctest: +SKIP
    >>> res.best["dice"], res.best_epoch
"""
from __future__ import annotations

import importlib
from typing import Any

from nasseg.train.config import TrainConfig

_WHERE = {"train": "nasseg.train.engine", "SegLoss": "nasseg.train.losses",
          "case_metrics": "nasseg.train.metrics", "hd95": "nasseg.train.metrics",
          "summarise": "nasseg.train.metrics", "TrainingFailed": "nasseg.train.result",
          "TrainResult": "nasseg.train.result"}

__all__ = ["SegLoss", "TrainConfig", "TrainResult", "TrainingFailed", "case_metrics", "hd95", "summarise",
           "train"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'nasseg.train' has no attribute '{name}'")
    return getattr(importlib.import_module(_WHERE[name]), name)
