"""One configurable ResNet for every network of the GSoP-Net and GM-SOP papers.

    stem -> layer1 ... layerS (residual blocks, an attention block inside some) -> head

Residual blocks: ``basic`` (two 3x3 convs), ``bottleneck`` (1x1, 3x3, 1x1 x4) and
``preact_bottleneck`` (He et al. 2016's pre-activation form, used for CIFAR's ResNet-164).
An attention block sits after the block's last conv (after bn3 in a bottleneck), before the
residual add: GSoP-Net Sec. 3.3 "after the proposed blocks, we also use a shortcut connection".

Where blocks go is a per-stage mask in the paper's notation (Table 4c/4d): ``"C,C,C,-"`` has a
channel-wise GSoP block in stages 1-3 and none in stage 4; ``"-,-,-,√"`` has none and the
iSQRT-COV head (the tick may be written ``v``). Entries are letters (``-`` none, ``C`` GSoP
channel, ``P`` GSoP position, ``S`` SE, ``A`` CBAM) or any :func:`gsoplib.blocks.create_block`
name (``gsop_fuse_cat``). Within a stage ``where`` picks the blocks: ``"last"`` (after the last
residual block, the paper's GSoP-Net on ImageNet), ``"all"`` (every residual block, SE-Net's
placement) or an int n (every n-th, ending with the last: 18 blocks in ResNet-164's 54, Table 6).

Stems: ``imagenet`` (7x7/2 conv + 3x3/2 max pool), ``cifar`` (3x3 conv), ``small`` (GM-SOP Table 1:
3x3 conv, 16 channels, stride 1). Heads: see :data:`HEADS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..blocks import create_block, list_blocks
from ..heads import HEADS
from ..registry import Registry

MASK_LETTERS = {"-": None, "C": "gsop", "P": "gsop_pos", "S": "se", "A": "cbam"}
ISQRT_TICKS = ("√", "v", "V")
STEMS = ("imagenet", "cifar", "small")


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _shortcut(cin: int, cout: int, stride: int, batch_norm: bool = True) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    if not batch_norm:
        return conv1x1(cin, cout, stride)
    return nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs: (B, cin, H, W) -> (B, planes, H/s, W/s). ``attn`` before the add."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, attn: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn or nn.Identity()
        self.shortcut = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1, 3x3 (stride), 1x1 x4: (B, cin, H, W) -> (B, 4 planes, H/s, W/s). ``attn`` after bn3."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, attn: nn.Module | None = None):
        super().__init__()
        cout = planes * self.expansion
        self.conv1, self.bn1 = conv1x1(cin, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = conv1x1(planes, cout), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn or nn.Identity()
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        return self.relu(out + self.shortcut(x))


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016): BN-ReLU-conv three times, ``attn`` on the
    residual branch, identity add with no activation after it. (B, cin, H, W) ->
    (B, 4 planes, H/s, W/s); a projection shortcut reads the pre-activated input."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, attn: nn.Module | None = None):
        super().__init__()
        cout = planes * self.expansion
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv1x1(cin, planes)
        self.bn2, self.conv2 = nn.BatchNorm2d(planes), conv3x3(planes, planes, stride)
        self.bn3, self.conv3 = nn.BatchNorm2d(planes), conv1x1(planes, cout)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn or nn.Identity()
        self.shortcut = _shortcut(cin, cout, stride, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return self.attn(out) + skip


RESIDUAL_BLOCKS = Registry("residual block", {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_bottleneck": PreActBottleneck,
})


def parse_mask(mask: str | Sequence[str | None], stages: int) -> tuple[list[str | None], bool]:
    """The paper's ``[S2, S3, S4, S5]`` notation -> (block name or None per stage, isqrt head).

    ``"C,C,C,√"`` -> (['gsop', 'gsop', 'gsop', None], True). A tick is allowed only last.
    """
    entries = [e.strip() for e in mask.split(",")] if isinstance(mask, str) else list(mask)
    entries = ["-" if e in (None, "") else e for e in entries]
    if len(entries) != stages:
        raise ValueError(
            f"block mask {mask!r} has {len(entries)} entries; this network has {stages} stages"
        )
    tick = entries[-1] in ISQRT_TICKS
    if tick:
        entries[-1] = "-"
    names: list[str | None] = []
    for entry in entries:
        if entry in ISQRT_TICKS:
            raise ValueError(f"block mask {mask!r}: the iSQRT-COV tick can only be the last entry")
        name = MASK_LETTERS.get(entry, entry)
        if name is not None and name not in list_blocks():
            known = ", ".join(list(MASK_LETTERS) + list_blocks())
            raise ValueError(f"block mask {mask!r}: unknown entry {entry!r}; use one of {known}")
        names.append(name)
    return names, tick


def _stage_has_block(where: str | int, index: int, depth: int) -> bool:
    if where == "last":
        return index == depth - 1
    if where == "all":
        return True
    if isinstance(where, int) and where > 0:
        return (depth - 1 - index) % where == 0
    raise ValueError(f"where must be 'last', 'all' or a positive int, got {where!r}")


def make_stem(kind: str, in_chans: int, width: int, pre_activation: bool = False) -> nn.Sequential:
    """(B, in_chans, H, W) -> (B, width, H', W'): H/4 for 'imagenet', H for 'cifar' and 'small'.

    A pre-activation network's stem is the bare conv: its first block starts with BN-ReLU.
    """
    if kind not in STEMS:
        raise ValueError(f"unknown stem {kind!r}; known stems: {', '.join(STEMS)}")
    if kind == "imagenet":
        conv = nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                             nn.MaxPool2d(3, stride=2, padding=1))
    conv = conv3x3(in_chans, width)
    if pre_activation:
        return nn.Sequential(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True))


class ResNet(nn.Module):
    """A ResNet with attention blocks by stage mask and a chosen head.

    Input (B, in_chans, H, W) -> logits (B, num_classes); ``model(x, return_aux=True)`` ->
    (logits, aux) with the head's auxiliary loss (the GM-SOP balance loss, else zero).

    Args:
        block: 'basic', 'bottleneck' or 'preact_bottleneck'.
        layers: residual blocks per stage, e.g. (2, 2, 2, 2) for ResNet-26 (Table 3).
        widths: planes per stage (a bottleneck's output is 4x).
        stem: 'imagenet', 'cifar' or 'small'; ``stem_width`` its channels.
        in_chans: 1 (grey) or 3 (colour). num_classes: outputs of the head.
        strides: per-stage strides; ``last_stride=1`` keeps the last stage at full resolution
            (the iSQRT-COV convention, GSoP-Net Table 3 and GM-SOP Table 1 for SOP heads).
        blocks: the stage mask (see the module docstring); a tick selects the iSQRT-COV head.
        where: which residual blocks of a masked stage get the attention block.
        block_kwargs: for :func:`create_block` (``rd_channels``, ``pre_relu``...); a list of
            dicts gives one per stage (the code's ``rd_stride=2`` on the first stage).
        omit_last_block: drop the network's very last attention block (GSoP-Net2 on CIFAR:
            "the last GSoP block is replaced by a meta-layer of iSQRT-COV", Sec. 4.3).
        head: a key of :data:`HEADS`; None means 'isqrt' when the mask has a tick, else 'gap'.
        head_kwargs: for the head (``rd_channels``, ``iters``, ``dropout``, ``k``...).
    """

    def __init__(
        self,
        block: str = "bottleneck",
        layers: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        *,
        stem: str = "imagenet",
        stem_width: int = 64,
        in_chans: int = 3,
        num_classes: int = 1000,
        strides: Sequence[int] | None = None,
        last_stride: int | None = None,
        blocks: str | Sequence[str | None] | None = None,
        where: str | int = "last",
        block_kwargs: Mapping | Sequence[Mapping] | None = None,
        omit_last_block: bool = False,
        head: str | None = None,
        head_kwargs: Mapping | None = None,
    ) -> None:
        super().__init__()
        RESIDUAL_BLOCKS.get(block)  # an unknown name: one sentence with the close ones
        if len(widths) != len(layers):
            raise ValueError(f"{len(layers)} stages in layers but {len(widths)} widths")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        stages = len(layers)
        names, tick = parse_mask(blocks if blocks is not None else ["-"] * stages, stages)
        head = head or ("isqrt" if tick else "gap")
        if tick and head != "isqrt":
            raise ValueError(f"the block mask asks for the iSQRT-COV head but head={head!r}")
        HEADS.get(head)  # an unknown name: one sentence with the close ones
        strides = list(strides) if strides is not None else [1] + [2] * (stages - 1)
        if last_stride is not None:
            strides[-1] = last_stride
        per_stage = (
            [dict(block_kwargs or {})] * stages
            if block_kwargs is None or isinstance(block_kwargs, Mapping)
            else [dict(kw) for kw in block_kwargs]
        )
        residual = RESIDUAL_BLOCKS[block]
        self.pre_activation = block == "preact_bottleneck"
        self.stem = make_stem(stem, in_chans, stem_width, self.pre_activation)
        cin = stem_width
        placed = [
            [names[s] if names[s] and _stage_has_block(where, i, n) else None for i in range(n)]
            for s, n in enumerate(layers)
        ]
        if omit_last_block:
            last = max(
                ((s, i) for s, row in enumerate(placed) for i, b in enumerate(row) if b),
                default=None,
            )
            if last is not None:
                placed[last[0]][last[1]] = None
        self.stage_names = []
        for s, (depth, planes) in enumerate(zip(layers, widths)):
            cout = planes * residual.expansion
            units = []
            for i in range(depth):
                attn = create_block(placed[s][i], cout, **per_stage[s]) if placed[s][i] else None
                units.append(residual(cin, planes, strides[s] if i == 0 else 1, attn))
                cin = cout
            name = f"layer{s + 1}"
            self.add_module(name, nn.Sequential(*units))
            self.stage_names.append(name)
        self.final_act = (
            nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
            if self.pre_activation
            else nn.Identity()
        )
        self.num_features = cin
        self.head = HEADS[head](cin, num_classes=num_classes, **dict(head_kwargs or {}))
        self._init_backbone()

    def _init_backbone(self) -> None:
        """Kaiming-normal (fan_out) convs and BN 1 / 0 outside the blocks and heads, which
        initialise themselves (as the GSoP-Net authors' code initialises its ResNets)."""
        for name in ["stem", *self.stage_names, "final_act"]:
            for path, m in getattr(self, name).named_modules():
                if ".attn" in f".{path}" or path.startswith("attn"):
                    continue
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the last stage's map (B, num_features, H', W')."""
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.final_act(x)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        return self.head(self.forward_features(x), return_aux=return_aux)
