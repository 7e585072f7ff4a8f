"""Registered skip connections and skip attentions: the ``skip.type`` and
``skip_attention.type`` vocabulary of architecture configs."""
from nasseg.registry import Registry
from nasseg.skips.base import Skip, UpMode, make_up
from nasseg.skips.concat import ConcatSkip
from nasseg.skips.csab import CSAB
from nasseg.skips.irsc import IRSC
from nasseg.skips.skip_fusion import SkipFusion

SKIPS = Registry("skip")
SKIPS.register(ConcatSkip)
SKIPS.register(SkipFusion)
SKIPS.register(IRSC)



def fuses(skip_type: str) -> bool:
    """Whether skip ``skip_type`` merges to the stage width (``decoder_depth: 0`` allowed)."""
    return SKIPS.get(skip_type).fuses


ATTENTIONS = Registry("skip attention")
ATTENTIONS.register(CSAB)

__all__ = ["ATTENTIONS", "SKIPS", "Skip", "UpMode", "fuses", "make_up"]
