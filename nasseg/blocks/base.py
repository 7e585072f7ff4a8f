"""What every block shares: its typed params and its constructor signature.

A block keeps the spatial size; it maps ``in_channels`` to ``out_channels``
(or, if ``changes_width`` is False, the stage puts a 1x1 projection before it).
Down- and up-sampling belong to the U-shaped network, not the block.
"""
from __future__ import annotations

from typing import ClassVar

from torch import nn

from nasseg.params import KernelSize, Params

__all__ = ["Block", "KernelSize", "Params"]


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
