"""Registered blocks: the ``block.type`` vocabulary of architecture configs.

Adding a block is one file (its ``Params`` and module) plus one line here; the
contract tests in ``tests/test_contract.py`` then cover it in 2D and 3D.
"""
from nasseg.blocks.base import Block, KernelSize, Params
from nasseg.blocks.cmunext import CMUNeXtBlock
from nasseg.blocks.conv import ConvBlock
from nasseg.blocks.dacb import DACB
from nasseg.blocks.segnetr import SegNetrBlock
from nasseg.blocks.swin import SwinBlock
from nasseg.registry import Registry

BLOCKS = Registry("block")
BLOCKS.register(ConvBlock)
BLOCKS.register(CMUNeXtBlock)
BLOCKS.register(SegNetrBlock)
BLOCKS.register(DACB)
BLOCKS.register(SwinBlock)

__all__ = ["BLOCKS", "Block", "KernelSize", "Params"]
