"""Global second-order pooling blocks (GSoP-Net, Gao et al. CVPR 2019, Sec. 3 and Fig. 1b).

A GSoP block summarises a whole feature map by a covariance matrix, embeds that matrix with a
row-wise convolution and turns it into sigmoid weights that rescale the map:

    channel-wise (Sec. 3.1)   x (B, C', H, W) -> 1x1 conv to c + BN + ReLU -> c x c covariance
                              -> row-wise BN -> row-wise conv (c -> 4c, groups c) -> 1x1 conv to
                              C' + sigmoid -> (B, C', 1, 1) weights -> x * weights
    position-wise (Sec. 3.2)  x -> 1x1 conv to c + BN (no ReLU) -> adaptive pool to h x w -> hw x hw
                              covariance (positions are the variables) -> row-wise BN -> row conv
                              (hw -> 4hw, groups hw) -> ReLU -> 1x1 conv to hw + sigmoid ->
                              (B, 1, h, w) -> upsampled to H x W -> x * weights
    fusion (Sec. 4.1, Table 4b)  both, combined by average, maximum or concatenation + 1x1 conv

The row-wise convolution treats the d x d covariance as a 1 x d map with d channels (row i is
channel i): each row gets 4 length-d filters of its own, so the embedding is one linear map per
row, 4d^2 weights in all (Table 2: 1 x 128 x 1, G = 128 for c = 128).

Where the authors' code and the paper differ (notebook 03, section 10, tabulates the same):

    after the reducing BN       paper: a ReLU in both blocks (Table 2's "conv + BN + ReLU");
                                code: a ReLU in the channel block, none in the position block.
                                Here as the code, no option.
    before the reducing conv    code: a ReLU on the input, every block; paper: nothing.
                                ``pre_relu=False`` (the paper); ``True`` as the code.
    reducing conv's stride      code: 2 in the first stage only; paper: not stated.
                                ``rd_stride=1``; ``2`` as the code.
    between row conv and        paper: Sec. 3.1 and Fig. 1b describe an activation in the channel
    expand conv                 block, Table 2 lists none in either block; code: none in the
                                channel block, a ReLU in the position block. Here as the code:
                                ``mid_act=False`` in the channel block (``True`` adds a ReLU); a
                                ReLU in the position block, no option.
    position covariance         code: a centring matrix with the constant 1/64 where 1/c belongs;
                                paper: centred over the channels. Here centred, no option.
    position map upsampling     paper: not stated; code: adaptive average pooling (a box resize).
                                ``upsample="bilinear"``; ``"box"`` as the code.
    position block output       paper: x * w; code: relu(x * w). Here x * w, no option.

So the channel block follows the paper where the paper is explicit (Table 2 where its text and
Table 2 disagree) and offers every code choice as an argument, enough to rebuild the authors'
channel-wise networks (``gsoplib.convert``); the position block has the code's activations and
the paper's centring and output, with no option for either, so the authors' position-wise and
fusion networks cannot be rebuilt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import covariance, position_covariance
from ..taps import Tap

FUSIONS = ("avg", "max", "cat")
UPSAMPLES = ("bilinear", "nearest", "box")
EMBED_IMPLS = ("conv", "einsum")


def _kaiming(module: nn.Module) -> nn.Module:
    """Kaiming-normal (fan_out) conv weights, BN weight 1 and bias 0 (GSoP code, Sec. 4)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class RowwiseEmbedding(nn.Module):
    """Row-wise BN and row-wise conv of a covariance (Sec. 3.1): (B, d, d) -> (B, 4d, 1, 1).

    The matrix is reshaped to (B, d, d, 1): row i becomes channel i, BN normalises each row and a
    grouped conv with kernel (d, 1) and d groups maps each row to ``expansion`` numbers.

    ``impl`` chooses how the row-wise conv runs, with the same parameters either way (state dicts
    load into both): 'conv' the grouped convolution (default), 'einsum' the same map as one
    batched contraction out[b, i, e] = sum_j W[i, e, j] rows[b, i, j] + bias[i, e], a (d, B, d) x
    (d, d, e) batched GEMM. Which is faster depends on the device (cuDNN's grouped convs are slow
    for kernel (d, 1) with d groups on some GPUs); ``benchmarks/gpu.py`` measures both.
    """

    def __init__(self, dim: int, expansion: int = 4, impl: str = "conv") -> None:
        super().__init__()
        if impl not in EMBED_IMPLS:
            raise ValueError(f"impl must be one of {', '.join(EMBED_IMPLS)}, got {impl!r}")
        self.dim, self.expansion, self.impl = dim, expansion, impl
        self.bn = nn.BatchNorm2d(dim)
        self.conv = nn.Conv2d(dim, expansion * dim, kernel_size=(dim, 1), groups=dim, bias=True)

    def forward(self, cov: torch.Tensor) -> torch.Tensor:
        return self.row_conv(self.bn_rows(cov))

    def bn_rows(self, cov: torch.Tensor) -> torch.Tensor:
        """Row-wise BN: (B, d, d) -> (B, d, d, 1)."""
        return self.bn(cov.unsqueeze(-1))

    def row_conv(self, rows: torch.Tensor) -> torch.Tensor:
        """The row-wise conv: (B, d, d, 1) -> (B, expansion * d, 1, 1)."""
        if self.impl == "conv":
            return self.conv(rows)
        d, e = self.dim, self.expansion
        # Output channel i*e + k of the grouped conv belongs to group (row) i.
        weight = self.conv.weight.view(d, e, d)
        out = torch.einsum("bij,iej->bie", rows.squeeze(-1), weight.to(rows.dtype))
        out = out + self.conv.bias.view(d, e).to(out.dtype)
        return out.reshape(rows.shape[0], d * e, 1, 1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, expansion={self.expansion}, impl={self.impl!r}"


class GSoPChannel(nn.Module):
    """Channel-wise GSoP block (Fig. 1b, Sec. 3.1, Table 2): (B, C, H, W) -> (B, C, H, W).

    Args:
        channels: C, the channels of the tensor to rescale (C' in the paper).
        rd_channels: c, the covariance size (128 in the paper; 64 on CIFAR, Table 6).
        rd_stride: stride of the reducing 1x1 conv (paper 1; the code uses 2 on the first stage).
        pre_relu: apply a ReLU to the input before reducing (the code's quirk; paper False).
        mid_act: a ReLU between the row-wise conv and the final conv (the code and Table 2: False;
            Sec. 3.1 and Fig. 1b describe an activation after the row conv).
        expansion: row conv output per row (4 in the paper: c -> 4c).
        embed_impl: how the row-wise conv runs, 'conv' or 'einsum' (see
            :class:`RowwiseEmbedding`); same parameters and results either way.

    Parameters: C*c + c (reduce) + 2c (BN) + 2c (row BN) + 4c*c + 4c (row conv) + 4c*C + C
    (expand): 0.72 M for C = 1024, c = 128 (Table 2).

    Taps: tap_input (B, C, H, W), tap_cov (B, c, c), tap_cov_bn (B, c, c) after row-wise BN,
    tap_channel_weights (B, C, 1, 1), tap_output (B, C, H, W).
    """

    def __init__(
        self,
        channels: int,
        rd_channels: int = 128,
        *,
        rd_stride: int = 1,
        pre_relu: bool = False,
        mid_act: bool = False,
        expansion: int = 4,
        embed_impl: str = "conv",
    ) -> None:
        super().__init__()
        self.channels, self.rd_channels = channels, rd_channels
        self.pre_act = nn.ReLU() if pre_relu else nn.Identity()
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, rd_channels, 1, stride=rd_stride, bias=True),
            nn.BatchNorm2d(rd_channels),
            nn.ReLU(inplace=True),
        )
        self.embed = RowwiseEmbedding(rd_channels, expansion, embed_impl)
        self.mid_act = nn.ReLU(inplace=True) if mid_act else nn.Identity()
        self.expand = nn.Conv2d(expansion * rd_channels, channels, 1, bias=True)
        self.tap_input = Tap("tap_input", "the tensor the block rescales, (B, C, H, W)")
        self.tap_cov = Tap("tap_cov", "channel covariance of the reduced map, (B, c, c)")
        self.tap_cov_bn = Tap("tap_cov_bn", "the covariance after row-wise BN, (B, c, c)")
        self.tap_channel_weights = Tap("tap_channel_weights", "channel weights, (B, C, 1, 1)")
        self.tap_output = Tap("tap_output", "x * weights, (B, C, H, W)")
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tap_input(x)
        cov = self.tap_cov(covariance(self.reduce(self.pre_act(x))))
        rows = self.tap_cov_bn(self.embed.bn_rows(cov).squeeze(-1)).unsqueeze(-1)
        weights = torch.sigmoid(self.expand(self.mid_act(self.embed.row_conv(rows))))
        return self.tap_output(x * self.tap_channel_weights(weights).to(x.dtype))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rd_channels={self.rd_channels}"


class GSoPPosition(nn.Module):
    """Position-wise GSoP block (Sec. 3.2, Table 2): (B, C, H, W) -> (B, C, H, W).

    Activations as the authors' code (no ReLU after the reducing BN; a ReLU before the expand
    conv), no option: Table 2 has a ReLU after the BN and neither Sec. 3.2 nor Table 2 has one
    before the expand conv. Centring and output as the paper (see the module docstring).

    Args:
        channels: C of the tensor to rescale.
        rd_channels: c, channels after the reducing 1x1 conv (128); they are the samples of the
            position covariance.
        pool_size: the fixed h = w of the pooled map (8: a 64 x 64 covariance).
        pre_relu: the code's leading ReLU (paper False).
        upsample: how the h x w weight map returns to H x W: 'bilinear' (default), 'nearest', or
            'box' (adaptive average pooling, what the authors' code uses).
        expansion: row conv output per row (4: hw -> 4hw).
        embed_impl: 'conv' or 'einsum', see :class:`RowwiseEmbedding`.

    Parameters: C*c + c + 2c (reduce + BN) + 2hw (row BN) + 4hw*hw + 4hw (row conv) +
    4hw*hw + hw: 0.16 M for C = 1024, c = 128, hw = 64 (Table 2).

    Taps: tap_input, tap_pos_cov (B, hw, hw), tap_pos_weights_pooled (B, 1, h, w),
    tap_pos_weights (B, 1, H, W), tap_output.
    """

    def __init__(
        self,
        channels: int,
        rd_channels: int = 128,
        pool_size: int = 8,
        *,
        pre_relu: bool = False,
        upsample: str = "bilinear",
        expansion: int = 4,
        embed_impl: str = "conv",
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {upsample!r}")
        self.channels, self.rd_channels, self.pool_size = channels, rd_channels, pool_size
        self.upsample = upsample
        positions = pool_size * pool_size
        self.pre_act = nn.ReLU() if pre_relu else nn.Identity()
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, rd_channels, 1, bias=True), nn.BatchNorm2d(rd_channels)
        )
        self.embed = RowwiseEmbedding(positions, expansion, embed_impl)
        self.expand = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(expansion * positions, positions, 1, bias=True)
        )
        self.tap_input = Tap("tap_input", "the tensor the block rescales, (B, C, H, W)")
        self.tap_pos_cov = Tap("tap_pos_cov", "covariance of the pooled positions, (B, hw, hw)")
        self.tap_pos_weights_pooled = Tap("tap_pos_weights_pooled", "weights, (B, 1, h, w)")
        self.tap_pos_weights = Tap("tap_pos_weights", "weights at full size, (B, 1, H, W)")
        self.tap_output = Tap("tap_output", "x * weights, (B, C, H, W)")
        _kaiming(self)

    def position_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> sigmoid weights (B, 1, H, W), recorded by the taps."""
        z = F.adaptive_avg_pool2d(self.reduce(self.pre_act(x)), self.pool_size)
        cov = self.tap_pos_cov(position_covariance(z))
        w = torch.sigmoid(self.expand(self.embed(cov)))
        w = self.tap_pos_weights_pooled(w.view(-1, 1, self.pool_size, self.pool_size))
        size = x.shape[-2:]
        if self.upsample == "box":
            w = F.adaptive_avg_pool2d(w, size)
        elif self.upsample == "bilinear":
            w = F.interpolate(w, size=size, mode="bilinear", align_corners=False)
        else:
            w = F.interpolate(w, size=size, mode="nearest")
        return self.tap_pos_weights(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tap_input(x)
        return self.tap_output(x * self.position_weights(x).to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, rd_channels={self.rd_channels}, "
            f"pool_size={self.pool_size}, upsample={self.upsample!r}"
        )


class GSoPFusion(nn.Module):
    """Channel- and position-wise GSoP fused (Sec. 4.1, Table 4b): (B, C, H, W) -> (B, C, H, W).

    Both blocks see the same input; their outputs are combined by ``fusion``: 'avg' (mean),
    'max' (element-wise maximum) or 'cat' (concatenate to 2C, then a 1x1 conv back to C, the
    paper's way to keep the tensor size). The paper finds the two not complementary: channel-wise
    alone is the default block. Keyword arguments go to both blocks (rd_channels, pre_relu);
    ``pool_size`` and ``upsample`` to the position block.
    Taps: those of ``channel`` and ``position`` (their own module paths).
    """

    def __init__(
        self,
        channels: int,
        rd_channels: int = 128,
        fusion: str = "avg",
        *,
        pool_size: int = 8,
        upsample: str = "bilinear",
        pre_relu: bool = False,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.fusion = fusion
        self.channel = GSoPChannel(channels, rd_channels, pre_relu=pre_relu)
        self.position = GSoPPosition(
            channels, rd_channels, pool_size, pre_relu=pre_relu, upsample=upsample
        )
        self.merge = (
            _kaiming(nn.Conv2d(2 * channels, channels, 1, bias=False)) if fusion == "cat" else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.channel(x), self.position(x)
        if self.fusion == "avg":
            return (a + b) / 2
        if self.fusion == "max":
            return torch.maximum(a, b)
        return self.merge(torch.cat([a, b], dim=1))

    def extra_repr(self) -> str:
        return f"fusion={self.fusion!r}"
