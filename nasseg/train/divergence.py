"""Divergence detection: a run that blew up fails with the reason, it is never COMPLETE.

Three signs, checked as the run goes (the loss after every step on the CPU, every
``check_interval`` steps on CUDA; Dice after every validation):

- a non-finite loss (NaN or inf);
- an exploding loss: above ``factor`` (1000) times the run's first loss, which is measured
  before any update and so is the loss of the initial weights (about 1.6 for BCE + Dice;
  a learning rate of 1e6 reaches 1e25 within a few steps while staying finite);
- a collapsed Dice: validation Dice at exactly the value an empty prediction scores (every
  case predicted as background) at ``COLLAPSE_PATIENCE`` validations in a row, after an
  earlier validation was clearly above it. One or two such validations early in training
  are common and not a divergence: on busi_256 at 96 px, 43% of runs predicted nothing at
  epoch 2 and none by epoch 6, and one run that scored 0.095 at epoch 1 and nothing at
  epoch 2 was failed by a one-validation rule (reports/bench/table/busi_96.record.log).

Example:
    >>> guard = DivergenceGuard()
    >>> guard.check([torch.tensor(1.5), torch.tensor(2e4)], 0, epoch=1, history=[])
    Traceback (most recent call last):
    nasseg.train.result.TrainingFailed: diverged: loss 2e+04 at epoch 1, step 2 is over 1000x the first loss 1.5; lower train.lr (--lr) or set train.max_grad_norm
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasseg.train.result import TrainingFailed

COLLAPSE_MARGIN = 0.05
"""How far above the empty-prediction Dice an earlier validation must have been."""

COLLAPSE_PATIENCE = 3
"""How many validations in a row must score the empty-prediction Dice to be a collapse."""


class DivergenceGuard:
    """Per-run state of the divergence checks.

    Args:
        factor: a loss above ``factor`` times the first loss is a divergence.
    """

    def __init__(self, factor: float = 1e3) -> None:
        self.factor = factor
        self.first: Tensor | None = None
        self.empty_dice: float | None = None

    def check(self, losses: list[Tensor], start: int, epoch: int, history: list[dict]) -> int:
        """Check the losses from ``start`` on; returns the new start.

        Raises:
            TrainingFailed: a non-finite or exploding loss (the reason names the step).
        """
        if len(losses) <= start:
            return start
        recent = torch.stack(losses[start:]).float()
        if self.first is None:  # kept on the device: one host read per check, not three
            self.first = recent[0].abs().clamp_min(1e-3)
        bad = ~torch.isfinite(recent)
        over = recent > self.factor * self.first
        if not int(bad.any() * 2 + over.any()):
            return len(losses)
        if bool(bad.any()):
            step = start + int(bad.nonzero()[0, 0]) + 1
            raise TrainingFailed(f"non-finite loss at epoch {epoch}, step {step}; lower train.lr (--lr)", history)
        i = int(over.nonzero()[0, 0])
        raise TrainingFailed(
            f"diverged: loss {float(recent[i]):.3g} at epoch {epoch}, step {start + i + 1} is over "
            f"{self.factor:.0f}x the first loss {float(self.first):.3g}; lower train.lr (--lr) or set "
            "train.max_grad_norm", history)

    def set_empty_dice(self, labels: Tensor | list[Tensor], num_classes: int) -> None:
        """Record the Dice an empty prediction scores on these held-out labels.

        Per case and foreground class an empty prediction scores 1 when the class is
        absent and 0 otherwise (see :mod:`nasseg.train.metrics`); averaged over cases,
        then over classes.
        """
        cases = labels if isinstance(labels, list) else list(labels)
        if not cases:
            return
        per_class = []
        for k in range(1, num_classes):
            absent = [0.0 if bool((lab == k).any()) else 1.0 for lab in cases]
            per_class.append(sum(absent) / len(absent))
        self.empty_dice = sum(per_class) / len(per_class)

    def check_dice(self, history: list[dict]) -> None:
        """Fail when the last ``COLLAPSE_PATIENCE`` validations all scored the empty-prediction
        Dice after an earlier one was clearly above it.

        Raises:
            TrainingFailed: naming the epochs, the value and the best earlier Dice.
        """
        if self.empty_dice is None or len(history) <= COLLAPSE_PATIENCE:
            return
        recent, before = history[-COLLAPSE_PATIENCE:], history[:-COLLAPSE_PATIENCE]
        if any(abs(h["dice"] - self.empty_dice) > 1e-9 for h in recent):
            return
        best = max(before, key=lambda h: h["dice"])
        if best["dice"] > self.empty_dice + COLLAPSE_MARGIN:
            raise TrainingFailed(
                f"diverged: validation Dice collapsed to {recent[-1]['dice']:.3f}, the score of predicting nothing, "
                f"at epochs {recent[0]['epoch']}-{recent[-1]['epoch']}, after {best['dice']:.3f} at epoch "
                f"{best['epoch']}; lower train.lr (--lr)", history)
