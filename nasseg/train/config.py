"""The typed training config (pydantic, ``extra="forbid"``), stored with every run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from nasseg.configio import Strict, validate
from nasseg.errors import ConfigError
from nasseg.configio import read_yaml


RUNTIME_FIELDS = frozenset({"device", "num_threads"})
"""Where and on how many threads a run trains: chosen at run time, not part of what a
trained result means (left out of :meth:`TrainConfig.recipe`, the stored settings)."""


class TrainConfig(Strict):
    """How a network is trained and validated.

    Attributes:
        epochs: passes over the training cases.
        steps_per_epoch: training steps per epoch, the same in train, search and ablation
            (``None`` = one pass: training cases / batch size, a last batch of one dropped).
        batch_size: cases (2D) or patches (3D) per step; for 3D volumes, when not set, the
            plan chooses it (:mod:`nasseg.data.plan`).
        optimizer: ``adamw`` (default) or ``sgd`` (with ``momentum``, Nesterov off).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        momentum: SGD momentum.
        schedule: per-step decay to 0: ``cosine`` or ``poly`` (``(1 - t/T) ** poly_power``).
        poly_power: exponent of the poly schedule (0.9 in the CMUNeXt code).
        warmup_steps: linear warm-up steps before the decay.
        ce_weight: weight of BCE (binary) or cross-entropy (multi-class).
        dice_weight: weight of the soft Dice loss (foreground classes only).
        ds_weights: loss weights of the outputs ``[main, half, quarter, ...]`` when the
            network has deep supervision; ``None`` = 1, 1/2, 1/4, ... normalised to sum 1.
        patience: stop after this many evaluations without a better validation Dice
            (``None`` = never).
        min_delta: smallest Dice gain that counts as better.
        max_seconds: stop at the first epoch end past this much training time, after
            validating that epoch (seconds spent in training steps, validation excluded;
            ``None`` = no limit).
        eval_every: validate every N epochs (and always after the last, and at a stop for
            ``max_seconds``). Unset on a CPU 3D plan, the plan chooses N so that sliding-window
            validation stays within a quarter of the CPU time
            (:meth:`nasseg.data.plan.Plan.eval_every`); otherwise 1.
        seed: seeds Python, NumPy, torch, the batch order and augmentations.
        device: ``cpu``, ``cuda`` (or ``cuda:N``) or ``auto`` (CUDA when available).
        amp: mixed precision on CUDA: ``bf16``, ``fp16`` (with gradient scaling),
            ``off``, or ``auto`` (bf16 where supported). Ignored on the CPU.
        channels_last: channels-last memory format for the network and its inputs. On
            by default: faster with cuDNN, and on the CPU too with oneDNN (measured here,
            fwd+bwd per step: 1.37x for cmunext_s at 8x3x96x96, 1.65x for the small 3D
            U-Net at 4x1x32x48x32).
        num_threads: torch CPU threads: a number, ``None`` (leave torch's setting) or
            ``"auto"`` (default): the cores the process may use, at most 8, whatever the
            load (see :func:`nasseg.train.resolved.auto_threads`).
        eval_batch_size: cases per evaluation forward pass (2D and fixed-size data; the
            3D plan lowers it to fit the memory budget), for validation and test alike.
        sw_overlap: sliding-window overlap for volumes evaluated by patches.
        max_grad_norm: clip gradients to this norm (``None`` = no clipping).
        compile: train through :func:`torch.compile` (off by default: compiling takes
            tens of seconds per network, which a short search trial does not earn back;
            validation runs the uncompiled network, whose batch shapes vary).

    Example:
        >>> TrainConfig.cmunext().optimizer, TrainConfig.cmunext().ce_weight
        ('sgd', 0.5)
    """

    epochs: int = Field(20, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["cosine", "poly", "constant"] = "cosine"
    poly_power: float = Field(0.9, gt=0)
    warmup_steps: int = Field(0, ge=0)
    ce_weight: float = Field(1.0, ge=0)
    dice_weight: float = Field(1.0, ge=0)
    ds_weights: list[float] | None = None
    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)
    max_seconds: float | None = Field(None, gt=0)
    eval_every: int = Field(1, ge=1)
    seed: int = 0
    device: str = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    num_threads: int | Literal["auto"] | None = "auto"
    eval_batch_size: int = Field(16, ge=1)
    sw_overlap: float = Field(0.5, ge=0, lt=1)
    max_grad_norm: float | None = Field(None, gt=0)
    compile: bool = False

    @classmethod
    def cmunext(cls, **overrides: Any) -> TrainConfig:
        """The CMUNeXt authors' recipe: SGD 0.01, momentum 0.9, wd 1e-4, poly 0.9,
        batch 8, loss 0.5 * BCE + Dice (they train 300 epochs)."""
        recipe: dict[str, Any] = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                                  "schedule": "poly", "poly_power": 0.9, "batch_size": 8, "ce_weight": 0.5,
                                  "dice_weight": 1.0}
        recipe.update(overrides)
        return cls(**recipe)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Load a YAML mapping of fields (a ``recipe: cmunext`` key starts from that recipe).

        Raises:
            ConfigError: unreadable file or a bad field (named, with "did you mean").
        """
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a training config must be a mapping of fields")
        return cls.build(data, where=str(path))

    def recipe(self) -> dict[str, Any]:
        """The settings that define a trained result (JSON), without :data:`RUNTIME_FIELDS`."""
        return self.model_dump(mode="json", exclude=set(RUNTIME_FIELDS))

    @classmethod
    def build(cls, data: dict[str, Any], where: str = "training config") -> TrainConfig:
        """Validate a mapping; ``recipe: cmunext`` starts from :meth:`cmunext`."""
        data = dict(data)
        recipe = data.pop("recipe", None)
        if recipe not in (None, "default", "cmunext"):
            raise ConfigError(f"{where}: recipe: unknown recipe '{recipe}' (default, cmunext)")
        if recipe == "cmunext":
            data = {**cls.cmunext().model_dump(exclude_unset=True), **data}
        return validate(cls, data, where)
