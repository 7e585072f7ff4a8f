"""Training and validation: losses, per-case metrics, the training loop, the benchmark.

Example:
    >>> from nasseg.arch import load_arch
    >>> from nasseg.data import resolve_data
    >>> res = train(load_arch("cmunext_s"), resolve_data("synthetic"), TrainConfig(epochs=3))  # doctest: +SKIP
    >>> res.best["dice"], res.best_epoch
"""
from nasseg.train.config import TrainConfig
from nasseg.train.engine import train
from nasseg.train.losses import SegLoss
from nasseg.train.metrics import case_metrics, hd95, summarise
from nasseg.train.result import TrainingFailed, TrainResult

__all__ = ["SegLoss", "TrainConfig", "TrainResult", "TrainingFailed", "case_metrics", "hd95", "summarise",
           "train"]
