"""Second-order pooling on a pretrained backbone: GSoP blocks and a new head on a torchvision or
timm ResNet, keeping its weights (the usual use of iSQRT-COV: fine-grained recognition on an
ImageNet-pretrained network).

    net = backbone_model("torchvision:resnet50", weights="resnet50.pth", blocks="C,C,C,C",
                         head="isqrt", last_stride=1, num_classes=200)

- ``blocks`` is a stage mask as for :class:`gsoplib.models.ResNet` (``"C,C,C,C"``, ``"-,-,C,√"``):
  a block goes into the last residual block of each masked stage, after its last BN and before
  the residual add, where GSoP-Net puts it (Sec. 3.3). The backbone's own module is kept and its
  BN becomes ``bn3.bn`` with the block beside it as ``bn3.attn``.
- ``last_stride=1`` removes layer4's downsampling (GSoP-Net Sec. 4.2.1, iSQRT-COV): the same
  weights, a map twice as large.
- ``head``: 'gap' (the backbone's own classifier is kept when ``num_classes`` is its own),
  'isqrt' (iSQRT-COV, 256-d reduction, 5 Newton-Schulz iterations as fast-MPN-COV's released
  networks), 'gated_mixture' (GM-SOP), or any other key of :data:`gsoplib.models.resnet.HEADS`.

New parts initialise themselves as the papers do (Kaiming-normal convs, BN 1 / 0); where no block
was inserted the backbone computes exactly what it computed before. ``weights`` is a name
(torchvision's ``IMAGENET1K_V2``, timm's ``a1_in1k`` or ``pretrained``: read from the library's
cache, downloaded only when missing, see :mod:`gsoplib.models.named_weights`), a file on disk (a
torchvision state dict ``.pth``, read with ``torch.load(weights_only=True)``, or a
``.safetensors`` file, e.g. timm's), a state dict, or None (the architecture only, as
:func:`gsoplib.checkpoint.load_checkpoint` builds it before loading its own weights).
``create_model("torchvision:resnet50", ...)`` calls this function, so a checkpoint of such a
network rebuilds from its metadata: the name, mask, head and stride are its model kwargs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..blocks import create_block
from ..state_dict import clean_state_dict
from .named_weights import fetch, is_weights_name
from .named_weights import resolve as resolve_weights
from .resnet import HEADS, parse_mask

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                       "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
                       "wide_resnet101_2")
SOURCES = ("torchvision", "timm")
STAGES = ("layer1", "layer2", "layer3", "layer4")
# iSQRT-COV on a pretrained ResNet: fast-MPN-COV's released networks (section 11).
ISQRT_DEFAULTS = {"rd_channels": 256, "iters": 5}


class WithBlock(nn.Module):
    """A residual block's last BN followed by an attention block: what the residual add sees.
    (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, bn: nn.Module, attn: nn.Module) -> None:
        super().__init__()
        self.bn, self.attn = bn, attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.bn(x))


def _split_name(name: str) -> tuple[str, str]:
    source, sep, arch = name.partition(":")
    if not sep or source not in SOURCES or not arch:
        raise ValueError(
            f"backbone {name!r} is not SOURCE:NAME; expected torchvision:resnet50 "
            f"(one of {', '.join(TORCHVISION_RESNETS)}) or timm:NAME for a timm ResNet"
        )
    return source, arch


def _construct(name: str) -> nn.Module:
    """The backbone's architecture with random weights: nothing is downloaded."""
    source, arch = _split_name(name)
    if source == "torchvision":
        if arch not in TORCHVISION_RESNETS:
            raise ValueError(f"backbone {name!r}: torchvision ResNets are "
                             f"{', '.join(TORCHVISION_RESNETS)}")
        import torchvision

        return getattr(torchvision.models, arch)(weights=None)
    try:
        import timm
    except ImportError:
        raise ValueError(f"backbone {name!r} needs timm, which is not installed "
                         "(pip install 'gsoplib[timm]')") from None
    if not timm.is_model(arch):
        raise ValueError(f"backbone {name!r}: timm has no model {arch!r}")
    model = timm.create_model(arch, pretrained=False)
    if not isinstance(model, timm.models.resnet.ResNet):
        raise ValueError(f"backbone {name!r} is a {type(model).__name__}, not a timm ResNet")
    return model


def read_weights(weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict:
    """A state dict from a file on disk (``.safetensors``, or a ``.pth`` read with
    ``torch.load(weights_only=True)``) or a mapping; ``module.`` prefixes dropped."""
    if isinstance(weights, Mapping):
        return clean_state_dict(weights)
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist; expected a torchvision state dict "
                         "(.pth) or a .safetensors file on disk (nothing is downloaded)")
    try:
        if path.suffix == ".safetensors":
            import safetensors.torch

            state = safetensors.torch.load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses code; broken files fail in their own ways
        why = " ".join(str(error).split())[:160]
        raise ValueError(f"weights file {path} is not a readable state dict (corrupt, or holds "
                         f"code, which is never run: {why})") from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    return clean_state_dict(state)


def _last_bn(unit: nn.Module) -> tuple[str, nn.Module]:
    """The BN before a residual block's add: bn3 in a bottleneck, bn2 in a basic block."""
    for name in ("bn3", "bn2"):
        if isinstance(getattr(unit, name, None), nn.BatchNorm2d):
            return name, getattr(unit, name)
    raise ValueError(f"{type(unit).__name__} has no bn3 or bn2 to put a block after")


def _remove_downsampling(stage: nn.Sequential) -> None:
    """Stride 1 in a stage's first block: its strided convs and a strided average pool."""
    first = stage[0]
    for parent in first.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.stride != (1, 1):
                child.stride = (1, 1)
            elif isinstance(child, nn.AvgPool2d) and child.stride not in (1, (1, 1)):
                setattr(parent, child_name, nn.Identity())


class BackboneNet(nn.Module):
    """A pretrained ResNet's stem and stages, GSoP blocks by stage mask, and a chosen head.

    (B, 3, H, W) -> logits (B, num_classes); ``model(x, return_aux=True)`` -> (logits, aux).
    See :func:`backbone_model` for the arguments.
    """

    def __init__(self, backbone: str, net: nn.Module, blocks: str, head: str | None,
                 num_classes: int, last_stride: int | None, block_kwargs: Mapping | None,
                 head_kwargs: Mapping | None) -> None:
        super().__init__()
        self.backbone = backbone
        names, tick = parse_mask(blocks, len(STAGES))
        head = head or ("isqrt" if tick else "gap")
        if tick and head != "isqrt":
            raise ValueError(f"the block mask asks for the iSQRT-COV head but head={head!r}")
        HEADS.get(head)  # an unknown name: one sentence with the close ones
        act = getattr(net, "relu", None) or net.act1
        self.stem = nn.Sequential(net.conv1, net.bn1, act, net.maxpool)
        self.stage_names = list(STAGES)
        self._new = []
        for stage_name, block in zip(STAGES, names):
            stage = getattr(net, stage_name)
            if block:
                unit = stage[-1]
                bn_name, bn = _last_bn(unit)
                attn = create_block(block, bn.num_features, **dict(block_kwargs or {}))
                setattr(unit, bn_name, WithBlock(bn, attn))
                self._new.append(f"{stage_name}.{len(stage) - 1}.{bn_name}.attn.")
            self.add_module(stage_name, stage)
        if last_stride == 1:
            _remove_downsampling(self.layer4)
        elif last_stride not in (None, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
        self.num_features = net.fc.in_features
        kwargs = dict(head_kwargs or {})
        if head == "isqrt":
            kwargs = {**ISQRT_DEFAULTS, **kwargs}
        self.head = HEADS[head](self.num_features, num_classes=num_classes, **kwargs)
        if head == "gap" and net.fc.out_features == num_classes and not kwargs:
            self.head.fc = net.fc  # the backbone's own classifier, pretrained
        else:
            self._new.append("head.")

    def new_parameter_names(self) -> list[str]:
        """Names of the parameters this network adds to the backbone (blocks, a new head):
        the trainer gives them the recipe's larger lr (``new_lr_factor``)."""
        return [n for n, _ in self.named_parameters() if n.startswith(tuple(self._new))]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> layer4's map (B, num_features, H', W')."""
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        return self.head(self.forward_features(x), return_aux=return_aux)


def backbone_model(
    backbone: str,
    weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
    *,
    blocks: str = "-,-,-,-",
    head: str | None = None,
    num_classes: int = 1000,
    in_chans: int = 3,
    last_stride: int | None = None,
    block_kwargs: Mapping | None = None,
    head_kwargs: Mapping | None = None,
) -> BackboneNet:
    """``backbone`` ('torchvision:resnet50', 'timm:resnet50', ...) with ``weights`` (a name, a
    file or a state dict; see the module docstring) loaded strictly into it, then GSoP blocks
    by the stage mask ``blocks``, layer4's stride, and the
    ``head`` (see the module docstring). ``block_kwargs`` go to every block (``rd_channels``
    128 by default), ``head_kwargs`` to the head."""
    if in_chans != 3:
        raise ValueError(f"backbone {backbone!r} takes 3-channel images, not in_chans={in_chans}")
    net = _construct(backbone)
    named = None
    if is_weights_name(weights):
        named = resolve_weights(backbone, weights)
        weights = fetch(named)
    if weights is not None:
        where = "the state dict" if isinstance(weights, Mapping) else f"weights file {weights}"
        try:
            result = net.load_state_dict(read_weights(weights), strict=False)
        except RuntimeError as error:  # shapes that differ
            why = " ".join(str(error).split()).split("size mismatch for ", 1)[-1][:160]
            raise ValueError(f"{where} does not fit {backbone} (size mismatch for {why})") from None
        if result.missing_keys or result.unexpected_keys:
            parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                     for label, keys in (("missing", result.missing_keys),
                                         ("unexpected", result.unexpected_keys)) if keys]
            raise ValueError(f"{where} does not fit {backbone} ({'; '.join(parts)})")
    model = BackboneNet(backbone, net, blocks, head, num_classes, last_stride, block_kwargs,
                        head_kwargs)
    model.named_weights = named
    return model


def is_backbone_name(name: str) -> bool:
    return isinstance(name, str) and name.split(":", 1)[0] in SOURCES and ":" in name


__all__ = ["BackboneNet", "WithBlock", "backbone_model", "is_backbone_name", "read_weights"]
