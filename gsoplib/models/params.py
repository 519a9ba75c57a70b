"""Parameter counts of modules (GSoP-Net Table 2 reports its blocks' sizes this way)."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` and its submodules.

    Each parameter is counted once, even when shared between submodules (``module.parameters()``
    deduplicates). Buffers (BatchNorm running statistics) are not parameters and are not
    counted. trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["count_parameters"]
