"""GM-SOP's component models (CMs): a parametric projection followed by a parameter-free pool.

    parametric SR-SOP (Sec. 2.2, Eq. 5-6)  J = 2 steps of 1x1 conv + ReLU (C -> 256 -> 128, no BN,
                                           no bias, as in the release), covariance, Newton-Schulz
                                           square root, upper triangle: 128 -> 8256-d
    parametric GAP (Sec. 3.1, item 2)      1x1 conv + ReLU (C -> 512), global average: 512-d

and the gating network's own prediction layers (:class:`GateBranch`, Sec. 2.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..ops import covariance, sqrtm_newton_schulz, triu_dim, triu_vec
from ..taps import Tap
from .gate import _check_choice

COMPONENTS = ("sop", "gap")
GATE_BRANCHES = ("component", "gap")


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def projection(
    in_channels: int, channels: Sequence[int], batch_norm: bool = False
) -> nn.Sequential:
    """1x1 conv (+ BN) + ReLU steps: (B, in_channels, H, W) -> (B, channels[-1], H, W).

    For SR-SOP each step is one P_j of the J-step estimation Sigma(Q_j) = (P_j X)^T (P_j X)
    (GM-SOP Eq. 6-8). CMs have no BN (the release; a CM sees only the samples routed to it, so
    batch statistics would depend on the routing); the gating branch has BN (the release).
    """
    layers: list[nn.Module] = []
    for width in channels:
        layers.append(_conv1x1(in_channels, width))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        in_channels = width
    return nn.Sequential(*layers)


def sr_sop(z: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Matrix square-root normalised covariance pooling (GM-SOP Eq. 5 and 9; iSQRT-COV).

    z: (B, c, H, W) -> (B, c(c+1)/2): covariance, Newton-Schulz root, upper triangle. float32.
    """
    return triu_vec(sqrtm_newton_schulz(covariance(z), iters=iters))


class SRSOP(nn.Module):
    """SR-SOP as a module with taps: (B, c, H, W) -> (B, c(c+1)/2), float32.

    ``iters`` Newton-Schulz iterations: 3 as in the release and the GSoP-Net code (the paper's
    Sec. 3.1 text says five). Taps: tap_cov (B, c, c), tap_cov_sqrt (B, c, c).
    """

    def __init__(self, iters: int = 3) -> None:
        super().__init__()
        self.iters = iters
        self.tap_cov = Tap("tap_cov", "covariance of the projected features, (B, c, c)")
        self.tap_cov_sqrt = Tap("tap_cov_sqrt", "its Newton-Schulz square root, (B, c, c)")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        cov = self.tap_cov(covariance(z))
        return triu_vec(self.tap_cov_sqrt(sqrtm_newton_schulz(cov, iters=self.iters)))

    def extra_repr(self) -> str:
        return f"iters={self.iters}"


class GlobalAvgPool(nn.Module):
    """(B, c, H, W) -> (B, c): the mean over positions."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean(dim=(2, 3))


class ComponentModel(nn.Module):
    """One CM: a parametric ``project`` then a parameter-free ``pool``; (B, C, H, W) -> (B, dim)."""

    def __init__(self, project: nn.Module, pool: nn.Module, dim: int) -> None:
        super().__init__()
        self.project, self.pool, self.dim = project, pool, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.project(x))


def _component_parts(
    component: str,
    in_channels: int,
    sop_channels: Sequence[int],
    gap_dim: int,
    iters: int,
    batch_norm: bool = False,
) -> tuple[nn.Module, nn.Module, int]:
    _check_choice(component, COMPONENTS, "component")
    if component == "sop":
        width = sop_channels[-1] if sop_channels else in_channels
        return projection(in_channels, sop_channels, batch_norm), SRSOP(iters), triu_dim(width)
    return projection(in_channels, [gap_dim], batch_norm), GlobalAvgPool(), gap_dim


def make_component(
    component: str,
    in_channels: int,
    sop_channels: Sequence[int] = (256, 128),
    gap_dim: int = 512,
    iters: int = 3,
) -> ComponentModel:
    """A CM by kind: 'sop' (:func:`parametric_srsop`) or 'gap' (:func:`parametric_gap`)."""
    return ComponentModel(*_component_parts(component, in_channels, sop_channels, gap_dim, iters))


def parametric_srsop(
    in_channels: int, channels: Sequence[int] = (256, 128), iters: int = 3
) -> ComponentModel:
    """Parametric SR-SOP CM (GM-SOP Sec. 2.2): 1x1 convs C -> 256 -> 128 with ReLU, then SR-SOP.

    (B, C, H, W) -> (B, 8256). ``channels=()`` gives the plain, parameter-free SR-SOP of the
    input's C channels (the paper's "SR-SOP" baseline): (B, C(C+1)/2).
    """
    return make_component("sop", in_channels, channels, iters=iters)


def parametric_gap(in_channels: int, dim: int = 512) -> ComponentModel:
    """Parametric GAP CM (GM-SOP Sec. 3.1, ResNet-18-Xd): 1x1 conv C -> dim + ReLU, then GAP.

    (B, C, H, W) -> (B, dim).
    """
    return make_component("gap", in_channels, gap_dim=dim)


class GateBranch(nn.Module):
    """The gating network's prediction layers f (GM-SOP Sec. 2.3): (B, C, H, W) -> (B, dim).

    'component': the same architecture as a CM, with BN after each 1x1 conv (the release), so
    f is 8256-d for SR-SOP and 512-d for GAP; it costs about one more CM per sample.
    'gap': the input's global average, C-d; nearly free.
    No taps: it is the gate's input, not a CM.
    """

    def __init__(
        self,
        kind: str,
        in_channels: int,
        component: str = "sop",
        sop_channels: Sequence[int] = (256, 128),
        gap_dim: int = 512,
        iters: int = 3,
    ) -> None:
        super().__init__()
        _check_choice(kind, GATE_BRANCHES, "gate branch")
        _check_choice(component, COMPONENTS, "component")
        self.kind, self.component, self.iters = kind, component, iters
        if kind == "gap":
            self.project, self.dim = nn.Identity(), in_channels
        else:
            self.project, _, self.dim = _component_parts(
                component, in_channels, sop_channels, gap_dim, iters, batch_norm=True
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(x)
        if self.kind == "component" and self.component == "sop":
            return sr_sop(z, self.iters)
        return z.mean(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, dim={self.dim}"
