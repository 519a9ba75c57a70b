"""Floor 2: network-end heads, (B, C, H, W) -> logits; ``head(x, return_aux=True)`` adds the
auxiliary loss (the GM-SOP balance loss; zero for the others).

    GlobalAvgPoolHead    first-order: GAP + FC (vanilla, SE, CBAM, GSoP-Net1)
    ISqrtCovHead         iSQRT-COV: reduction, covariance, Newton-Schulz sqrt, triu, FC (GSoP-Net2)
    GatedMixtureHead     GM-SOP / GM-GAP: N components, noisy top-K gate, balance loss
    AverageMixtureHead   Ave-SOP-N / Ave-GAP-N;  ComponentHead: one parametric SR-SOP or GAP
"""

from __future__ import annotations

from .gap import GlobalAvgPoolHead
from .isqrt import ISqrtCov, ISqrtCovHead
from .mixture import (
    AverageMixtureHead,
    ComponentHead,
    GatedMixtureHead,
    NoisyTopKGate,
    balance_loss,
)

__all__ = [
    "AverageMixtureHead",
    "ComponentHead",
    "GatedMixtureHead",
    "GlobalAvgPoolHead",
    "ISqrtCov",
    "ISqrtCovHead",
    "NoisyTopKGate",
    "balance_loss",
]
