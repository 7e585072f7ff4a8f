"""The rich progress bar of a training run (silent when ``show`` is False)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    """One bar over all training steps, with the running loss and the last validation;
    ``on_step(epoch, step, steps_per_epoch)`` is called after every step, shown or not.

    Example:
        >>> with Progress(False, epochs=2, steps_per_epoch=3) as bar:
        ...     bar.step(torch.tensor(0.5))
    """

    def __init__(self, show: bool, epochs: int, steps_per_epoch: int,
                 on_step: Callable[[int, int, int], None] | None = None) -> None:
        self.show, self.epochs, self.n, self.on_step = show, epochs, 0, on_step
        self._bar: RichProgress | None = None
        self._task = None
        self._spe = max(1, steps_per_epoch)
        self._total = epochs * self._spe
        self._last = ""

    def __enter__(self) -> Progress:  # noqa: PYI034
        if self.show:
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(f"epoch 1/{self.epochs}", total=self._total, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def step(self, loss: torch.Tensor | None) -> None:
        """Advance one step; show ``loss`` when it is on the CPU (a CUDA loss is shown
        at the end of the epoch: reading it here would make the step wait for the GPU)."""
        self.n += 1
        if self.on_step is not None:
            self.on_step((self.n - 1) // self._spe + 1, (self.n - 1) % self._spe + 1, self._spe)
        if self._bar is None:
            return
        fields: dict[str, Any] = {}
        if (self.n - 1) % self._spe == 0:
            fields["description"] = f"epoch {(self.n - 1) // self._spe + 1}/{self.epochs}"
        if loss is not None and loss.device.type == "cpu":
            fields["status"] = f"loss {float(loss):.4f}{self._last}"
        self._bar.update(self._task, advance=1, **fields)

    def epoch_done(self, epoch: int, record: dict[str, Any]) -> None:
        """Show the validation metrics of ``epoch``."""
        self._last = f"  val dice {record['dice']:.4f} (ep {epoch})"
        if self._bar is not None:
            self._bar.update(self._task, status=f"loss {record['train_loss']:.4f}{self._last}")
