"""First-order attention baselines of the GSoP paper's tables: SE and CBAM (Table 5, Table 6).

Both summarise the map by means (and CBAM by maxima) instead of a covariance; they follow timm's
``SEModule`` and ``CbamModule`` signatures so results compare like for like.
"""

from __future__ import annotations

import torch
from torch import nn

from ..taps import Tap


def _rd(channels: int, rd_ratio: float, rd_channels: int | None) -> int:
    return rd_channels if rd_channels is not None else max(1, round(channels * rd_ratio))


def _gate(name: str) -> nn.Module:
    gates = {"sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid}
    if name not in gates:
        raise ValueError(f"gate_layer must be one of {', '.join(gates)}, got {name!r}")
    return gates[name]()


class SE(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): (B, C, H, W) -> (B, C, H, W).

    Global average -> 1x1 conv C -> C * rd_ratio -> act -> 1x1 conv back to C -> gate; x * gate.
    Parameters: 2 * C * rd + rd + C (with rd = C/16: C^2/8 + 17C/16).
    Taps: tap_input, tap_channel_weights (B, C, 1, 1), tap_output.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        gate_layer: str = "sigmoid",
    ) -> None:
        super().__init__()
        rd = _rd(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)
        self.gate = _gate(gate_layer)
        self.tap_input = Tap("tap_input", "the tensor the block rescales, (B, C, H, W)")
        self.tap_channel_weights = Tap("tap_channel_weights", "channel weights (B, C, 1, 1)")
        self.tap_output = Tap("tap_output", "x * weights, (B, C, H, W)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tap_input(x)
        w = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.tap_output(x * self.tap_channel_weights(w))


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al. 2018): (B, C, H, W) -> (B, C, H, W).

    Channel gate: a shared MLP (C -> C * rd_ratio -> C, no bias) over the average- and the
    max-pooled vectors, summed, sigmoid. Spatial gate: a ``spatial_kernel`` x ``spatial_kernel``
    conv (2 -> 1) + BN over the channel mean and maximum of the re-weighted map, sigmoid.
    Parameters: 2 * C * rd + 2 * k^2 + 2.
    Taps: tap_input, tap_channel_weights (B, C, 1, 1), tap_pos_weights (B, 1, H, W), tap_output.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        spatial_kernel: int = 7,
        act_layer: type[nn.Module] = nn.ReLU,
        gate_layer: str = "sigmoid",
    ) -> None:
        super().__init__()
        rd = _rd(channels, rd_ratio, rd_channels)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, rd, 1, bias=False),
            act_layer(inplace=True),
            nn.Conv2d(rd, channels, 1, bias=False),
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False),
            nn.BatchNorm2d(1),
        )
        self.channel_gate, self.spatial_gate = _gate(gate_layer), _gate(gate_layer)
        self.tap_input = Tap("tap_input", "the tensor the block rescales, (B, C, H, W)")
        self.tap_channel_weights = Tap("tap_channel_weights", "channel weights (B, C, 1, 1)")
        self.tap_pos_weights = Tap("tap_pos_weights", "spatial weights (B, 1, H, W)")
        self.tap_output = Tap("tap_output", "the re-weighted tensor, (B, C, H, W)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tap_input(x)
        pooled = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        x = x * self.tap_channel_weights(self.channel_gate(pooled))
        summary = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        w = self.tap_pos_weights(self.spatial_gate(self.spatial(summary)))
        return self.tap_output(x * w)
