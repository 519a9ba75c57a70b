"""Floor 2: network-end heads, (B, C, H, W) -> logits; ``head(x, return_aux=True)`` adds the
auxiliary loss (the GM-SOP balance loss; zero for the others).

    GlobalAvgPoolHead    first-order: GAP + FC (vanilla, SE, CBAM, GSoP-Net1)
    ISqrtCovHead         iSQRT-COV: reduction, covariance, Newton-Schulz sqrt, triu, FC (GSoP-Net2)
    GatedMixtureHead     GM-SOP / GM-GAP: N components, noisy top-K gate, balance loss
    NoisyTopKGate        the gate alone (heads/gate.py), with balance_loss, load_loss and
                         gate_diagnostics / diagnose_gate: does the gate choose by image?
    AverageMixtureHead   Ave-SOP-N / Ave-GAP-N;  ComponentHead: one parametric SR-SOP or GAP
"""

from __future__ import annotations

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

__all__ = [
    "AverageMixtureHead",
    "ComponentHead",
    "GateDiagnostics",
    "GatedMixtureHead",
    "GlobalAvgPoolHead",
    "ISqrtCov",
    "ISqrtCovHead",
    "NoisyTopKGate",
    "balance_loss",
    "diagnose_gate",
    "gate_diagnostics",
    "load_loss",
]
