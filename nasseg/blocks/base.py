"""What every block shares: its typed params and its constructor signature.

A block keeps the spatial size; it maps ``in_channels`` to ``out_channels``
(or, if ``changes_width`` is False, the stage puts a 1x1 projection before it).
Down- and up-sampling belong to the U-shaped network, not the block.
"""
from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from torch import nn


def _check_kernel(k: int | tuple[int, ...]) -> int | tuple[int, ...]:
    sizes = (k,) if isinstance(k, int) else k
    if not sizes:
        raise ValueError("kernel size tuple is empty")
    for n in sizes:
        if n < 1 or n % 2 == 0:
            raise ValueError(f"kernel size must be odd and positive, got {n}")
    return k


KernelSize = Annotated[int | tuple[int, ...], AfterValidator(_check_kernel)]
"""An odd kernel size: one int for every axis, or one per spatial axis."""


class Params(BaseModel):
    """Typed hyperparameters of one registered component; ``type`` is its registered name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


class Block(nn.Module):
    """Base class of registered blocks.

    Subclasses set ``Params`` (with a ``type: Literal[...]`` field) and take keyword
    arguments ``spatial_dims, in_channels, out_channels, params, norm, act, depth``.
    """

    Params: ClassVar[type[Params]]
    owns_depth: ClassVar[bool] = False
    """True when the block repeats its own inner unit ``depth`` times (CMUNeXt)."""
    changes_width: ClassVar[bool] = True
    """False when the block only maps C -> C (DACB); the stage then projects first."""
