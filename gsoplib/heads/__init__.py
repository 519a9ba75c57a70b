"""Floor 2: network-end heads, (B, C, H, W) -> logits; ``head(x, return_aux=True)`` adds the
auxiliary loss (the GM-SOP balance loss; zero for the others).

    GlobalAvgPoolHead    first-order: GAP + FC (vanilla, SE, CBAM, GSoP-Net1)
    ISqrtCovHead         iSQRT-COV: reduction, covariance, Newton-Schulz sqrt, triu, FC (GSoP-Net2)
    GatedMixtureHead     GM-SOP / GM-GAP: N components, noisy top-K gate, balance loss
    NoisyTopKGate        the gate alone (heads/gate.py), with balance_loss, load_loss and
                         gate_diagnostics / diagnose_gate: does the gate choose by image?
    AverageMixtureHead   Ave-SOP-N / Ave-GAP-N;  ComponentHead: one parametric SR-SOP or GAP

``create_head(name, in_channels, num_classes=..., **kw)`` builds one by its name in
:data:`HEADS` ('gap', 'isqrt', 'gated_mixture', 'average_mixture', 'component').
"""

from __future__ import annotations

from torch import nn

from ..registry import Registry
from .gap import GlobalAvgPoolHead
from .gate import (
    GateDiagnostics,
    NoisyTopKGate,
    balance_loss,
    diagnose_gate,
    gate_diagnostics,
    load_loss,
)
from .isqrt import ISqrtCov, ISqrtCovHead
from .mixture import AverageMixtureHead, ComponentHead, GatedMixtureHead

HEADS = Registry("head", {
    "gap": GlobalAvgPoolHead,
    "isqrt": ISqrtCovHead,
    "gated_mixture": GatedMixtureHead,
    "average_mixture": AverageMixtureHead,
    "component": ComponentHead,
})


def list_heads(pattern: str | None = None) -> list[str]:
    """The names :func:`create_head` accepts, those matching ``pattern`` if given."""
    return HEADS.names(pattern)


def create_head(name: str, in_channels: int, **kwargs) -> nn.Module:
    """A head by name for a ``in_channels``-channel map: (B, C, H, W) -> (B, num_classes).

    Examples:
        >>> import torch
        >>> create_head("isqrt", 64, num_classes=10, rd_channels=16)(torch.randn(2, 64, 7, 7)).shape
        torch.Size([2, 10])
    """
    return HEADS.get(name)(in_channels, **kwargs)

__all__ = [
    "AverageMixtureHead",
    "ComponentHead",
    "GateDiagnostics",
    "GatedMixtureHead",
    "GlobalAvgPoolHead",
    "HEADS",
    "ISqrtCov",
    "ISqrtCovHead",
    "NoisyTopKGate",
    "balance_loss",
    "create_head",
    "diagnose_gate",
    "gate_diagnostics",
    "list_heads",
    "load_loss",
]
