"""iSQRT-COV: covariance pooling normalised by a Newton-Schulz matrix square root.

The meta-layer of Li et al. (CVPR 2018), GSoP-Net2's head (GSoP-Net Sec. 3.3, Table 3) and the
iSQRT-COV baseline of Tables 4c, 5 and 6:

    x (B, C, H, W) -> 1x1 conv C -> d (no bias) + BN + ReLU -> covariance (B, d, d)
    -> trace pre-normalisation, N coupled Newton-Schulz iterations, sqrt(trace) compensation
    -> upper triangle, row-major (B, d(d+1)/2) -> dropout -> FC

``output_dim`` = d(d+1)/2: 256 -> 32896 (ImageNet, "32K"), 128 -> 8256 (CIFAR, "8K"), 64 -> 2080.
N = 3 as in the GSoP code and fast-MPN-COV's default; the iSQRT-COV ImageNet recipes use 5.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops import DEFAULT_EPS, covariance, sqrtm_newton_schulz, triu_dim, triu_vec
from ..taps import Tap
from ._contract import with_aux


class ISqrtCov(nn.Module):
    """The iSQRT-COV meta-layer: (B, C, H, W) -> (B, d(d+1)/2) float32.

    Args:
        in_channels: C.
        rd_channels: d, the covariance size after the 1x1 reduction; None keeps C (no reduction).
        iters: Newton-Schulz iterations N.
        memory_efficient: recompute the iteration in backward instead of saving it
            (see :func:`gsoplib.ops.sqrtm_newton_schulz`).
        compensate: multiply by sqrt(tr Sigma) after the iteration (iSQRT-COV's
            post-compensation); False leaves the trace-normalised root, an ablation.

    Taps: tap_cov (B, d, d), tap_cov_sqrt (B, d, d) the normalised covariance.
    """

    def __init__(
        self,
        in_channels: int,
        rd_channels: int | None = 256,
        iters: int = 3,
        memory_efficient: bool = False,
        compensate: bool = True,
    ) -> None:
        super().__init__()
        d = in_channels if rd_channels is None else rd_channels
        self.reduce = (
            nn.Identity()
            if rd_channels is None
            else nn.Sequential(
                nn.Conv2d(in_channels, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True)
            )
        )
        for m in self.reduce.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.rd_channels, self.iters, self.memory_efficient = d, iters, memory_efficient
        self.compensate = compensate
        self.output_dim = triu_dim(d)
        self.tap_cov = Tap("tap_cov", "covariance of the reduced map, (B, d, d)")
        self.tap_cov_sqrt = Tap("tap_cov_sqrt", "its Newton-Schulz square root, (B, d, d)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.tap_cov(covariance(self.reduce(x)))
        root = sqrtm_newton_schulz(cov, iters=self.iters, memory_efficient=self.memory_efficient)
        if not self.compensate:
            trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1).clamp(min=DEFAULT_EPS)
            root = root / trace.sqrt().view(-1, 1, 1)
        return triu_vec(self.tap_cov_sqrt(root))

    def extra_repr(self) -> str:
        return f"d={self.rd_channels}, iters={self.iters}, output_dim={self.output_dim}"


class ISqrtCovHead(nn.Module):
    """iSQRT-COV meta-layer + dropout + FC: (B, C, H, W) -> (B, num_classes).

    ``dropout`` 0.5 before the FC on CIFAR (GSoP-Net Sec. 4.3), 0 on ImageNet. Keyword arguments
    go to :class:`ISqrtCov` (``compensate=False`` drops the post-compensation by sqrt(tr Sigma),
    an ablation).

    ``feature_scale`` multiplies the vectorised root before the FC (1: the paper). The root of a
    covariance is small next to a GAP feature of the same backbone (a squared norm of about 6
    against 68 for the small ResNet at initialisation), so the FC over its d(d+1)/2 inputs
    starts with tiny logits and passes the backbone about a quarter to a third of the gradient
    a GAP head does (notebook 02 measures 0.28-0.32 on the same backbone weights, seeds 0-2): at
    a few epochs the network trains slower and less reliably. The small networks of the zoo use
    4, which brings that gradient to about a GAP head's (1.2 times it there);
    the paper configurations keep 1 (``benchmarks/compare.py --table isqrt_head`` measures
    both). ``norm``: a BatchNorm1d before the FC; ``fc_init='zeros'``: a zero-initialised FC
    (both ablations, measured there).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int = 1000,
        rd_channels: int | None = 256,
        iters: int = 3,
        dropout: float = 0.0,
        memory_efficient: bool = False,
        compensate: bool = True,
        norm: bool = False,
        fc_init: str = "default",
        feature_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.pool = ISqrtCov(in_channels, rd_channels, iters, memory_efficient, compensate)
        self.output_dim = self.pool.output_dim
        self.norm = nn.BatchNorm1d(self.output_dim) if norm else nn.Identity()
        self.feature_scale = feature_scale
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.output_dim, num_classes)
        if fc_init not in ("default", "zeros"):
            raise ValueError(f"unknown fc_init {fc_init!r}; expected default or zeros")
        if fc_init == "zeros":
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised covariance, vectorised: (B, d(d+1)/2)."""
        return self.pool(x)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        feats = self.features(x)
        feats = self.norm(feats.to(self.fc.weight.dtype)) * self.feature_scale
        return with_aux(self.fc(self.dropout(feats)), None, return_aux)
