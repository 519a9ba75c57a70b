"""The zoo's networks by name: ``create_model``, ``model_kwargs``, ``model_defaults``,
``list_models`` (re-exported by :mod:`gsoplib.models`)."""

from __future__ import annotations

from collections.abc import Mapping

from ..bundled import bundled_files
from ..registry import matching, unknown
from .backbones import backbone_model, is_backbone_name
from .resnet import ResNet
from .zoo import CONFIGS, resolve


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Every named configuration, or those matching ``pattern`` (``"*gsop*"``; a pattern without
    a wildcard matches names that contain it; :func:`gsoplib.registry.matching`).
    ``pretrained=True``: the bundled checkpoints instead, named ``arch.tag`` as timm names
    pretrained weights (``small_gsop1.fmnist``; load them with
    :func:`gsoplib.pretrained.load_pretrained`).

    Examples:
        >>> list_models("small_gsop?")
        ['small_gsop1', 'small_gsop2']
        >>> list_models("*gsop1*", pretrained=True)
        ['small_gsop1.fmnist', 'small_gsop1.second_order']
    """
    return matching(bundled_files() if pretrained else CONFIGS, pattern)


def model_defaults(name: str) -> dict:
    """What ``name`` expects by default: num_classes, in_chans, input_size; and its paper row."""
    if is_backbone_name(name):
        return {"num_classes": 1000, "in_chans": 3, "input_size": 224,
                "paper": f"pretrained backbone {name} with second-order parts"}
    cfg = _config(name)
    return {**cfg["defaults"], "paper": cfg["paper"]}


def _config(name: str) -> dict:
    cfg = resolve(name)
    if cfg is None:
        raise unknown("model", name, CONFIGS)
    return cfg


def model_kwargs(name: str, **overrides) -> dict:
    """The :class:`ResNet` keyword arguments ``create_model(name, **overrides)`` uses.

    ``head_kwargs`` and ``block_kwargs`` given as dicts update the configuration's, so
    ``head_kwargs={"iters": 5}`` changes one hyper-parameter and keeps the rest.
    """
    cfg = _config(name)
    kwargs = {k: v for k, v in cfg["kwargs"].items()}
    kwargs.setdefault("num_classes", cfg["defaults"]["num_classes"])
    kwargs.setdefault("in_chans", cfg["defaults"]["in_chans"])
    for key in ("head_kwargs", "block_kwargs"):
        if isinstance(overrides.get(key), Mapping) and isinstance(kwargs.get(key), Mapping):
            overrides[key] = {**kwargs[key], **overrides[key]}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return kwargs


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None,
                 **overrides) -> ResNet:
    """The network ``name`` (see :func:`list_models`); keyword arguments override its config.
    A name ``torchvision:NAME`` or ``timm:NAME`` is a pretrained backbone with second-order parts
    (:func:`gsoplib.models.backbones.backbone_model`, with ``weights``, ``blocks``, ``head``...).

    Examples:
        >>> import torch
        >>> create_model("small_gsop1", num_classes=10, in_chans=1)(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if is_backbone_name(name):
        kwargs = {"num_classes": num_classes, "in_chans": in_chans, **overrides}
        return backbone_model(name, **{k: v for k, v in kwargs.items() if v is not None})
    return ResNet(**model_kwargs(name, num_classes=num_classes, in_chans=in_chans, **overrides))
