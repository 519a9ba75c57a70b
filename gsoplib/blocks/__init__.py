"""Floor 2: attention blocks that sit inside a network and return ``x * gate``.

``create_block(name, channels, **kw)`` builds one by name, the way timm's ``create_attn`` does:

    "gsop"            GSoPChannel   channel-wise second-order block (GSoP-Net Sec. 3.1)
    "gsop_pos"        GSoPPosition  position-wise second-order block (Sec. 3.2)
    "gsop_fuse_avg"   GSoPFusion    both, averaged (Table 4b)
    "gsop_fuse_max"   GSoPFusion    both, element-wise maximum
    "gsop_fuse_cat"   GSoPFusion    both, concatenated + 1x1 conv
    "se"              SE            squeeze-and-excitation baseline
    "cbam"            CBAM          CBAM baseline
"""

from __future__ import annotations

from functools import partial

from torch import nn

from ..registry import Registry
from .firstorder import CBAM, SE
from .gsop import GSoPChannel, GSoPFusion, GSoPPosition, RowwiseEmbedding

BLOCKS = Registry("block", {
    "gsop": GSoPChannel,
    "gsop_pos": GSoPPosition,
    "gsop_fuse_avg": partial(GSoPFusion, fusion="avg"),
    "gsop_fuse_max": partial(GSoPFusion, fusion="max"),
    "gsop_fuse_cat": partial(GSoPFusion, fusion="cat"),
    "se": SE,
    "cbam": CBAM,
})


def list_blocks(pattern: str | None = None) -> list[str]:
    """The names :func:`create_block` accepts, those matching ``pattern`` (``"gsop*"``) if
    given (:func:`gsoplib.registry.matching`)."""
    return BLOCKS.names(pattern)


def create_block(name: str, channels: int, **kwargs) -> nn.Module:
    """A block by name for a ``channels``-channel tensor; ``kwargs`` go to its constructor."""
    return BLOCKS.get(name)(channels, **kwargs)


__all__ = [
    "BLOCKS",
    "CBAM",
    "SE",
    "GSoPChannel",
    "GSoPFusion",
    "GSoPPosition",
    "RowwiseEmbedding",
    "create_block",
    "list_blocks",
]
