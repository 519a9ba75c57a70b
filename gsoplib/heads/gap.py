"""First-order head: global average pooling and a linear classifier (GSoP-Net1's head).

(B, C, H, W) -> mean over positions (B, C) -> dropout -> FC -> (B, num_classes). This is the head
of the vanilla, SE, CBAM and GSoP-Net1 networks (GSoP-Net Sec. 3.3: "GSoP-Net1 ... ends with
average pooling").

``hidden=d`` puts a Linear(C, d) + ReLU between the means and the FC, so that the classifier reads
d features, as many as a covariance head's C(C+1)/2 when d is set so: a control that separates
"the head reads more features" from "the features are second-order" (``benchmarks/compare.py
--sweep``'s "GAP + MLP" pooling). ``feature_scale`` multiplies the pooled means before the
FC, as :class:`~gsoplib.heads.ISqrtCovHead`'s does its root: the sweep's "GAP x4" control for
the scaled covariance head (a larger input scale is a larger effective rate for the FC). Neither
is in the papers; ``hidden=0, feature_scale=1`` (the defaults) is GSoP-Net1's head.
"""

from __future__ import annotations

import torch
from torch import nn

from ._contract import with_aux


class GlobalAvgPoolHead(nn.Module):
    """GAP [+ Linear(C, hidden) + ReLU] + optional dropout + FC: (B, C, H, W) -> (B, num_classes).

    ``output_dim`` is what the FC reads: C, or ``hidden`` when it is set.
    """

    def __init__(self, in_channels: int, num_classes: int = 1000, dropout: float = 0.0,
                 hidden: int = 0, feature_scale: float = 1.0) -> None:
        super().__init__()
        self.feature_scale = float(feature_scale)
        if hidden < 0:
            raise ValueError(f"hidden must be 0 (no hidden layer) or a width, got {hidden}")
        self.hidden = (nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True))
                       if hidden else nn.Identity())
        self.output_dim = hidden or in_channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.output_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled representation (times ``feature_scale``), (B, C)."""
        return x.mean(dim=(2, 3)) * self.feature_scale

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        return with_aux(self.fc(self.dropout(self.hidden(self.features(x)))), None, return_aux)
