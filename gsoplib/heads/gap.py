"""First-order head: global average pooling and a linear classifier (GSoP-Net1's head).

(B, C, H, W) -> mean over positions (B, C) -> dropout -> FC -> (B, num_classes). This is the head
of the vanilla, SE, CBAM and GSoP-Net1 networks (GSoP-Net Sec. 3.3: "GSoP-Net1 ... ends with
average pooling").
"""

from __future__ import annotations

import torch
from torch import nn

from ._contract import with_aux


class GlobalAvgPoolHead(nn.Module):
    """GAP + optional dropout + FC: (B, C, H, W) -> (B, num_classes); ``output_dim`` = C."""

    def __init__(self, in_channels: int, num_classes: int = 1000, dropout: float = 0.0) -> None:
        super().__init__()
        self.output_dim = in_channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled representation, (B, C)."""
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        return with_aux(self.fc(self.dropout(self.features(x))), None, return_aux)
