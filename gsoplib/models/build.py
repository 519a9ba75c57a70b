"""One network built from a name and keyword arguments, with no weights loaded: the layer the
checkpoint loader builds on (``gsoplib.checkpoint.load``), below :func:`gsoplib.models.create_model`
(which can also load bundled weights, so it sits above the loader)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ..registry import unknown
from .backbones import backbone_model, is_backbone_name
from .resnet import ResNet
from .zoo import CONFIGS, resolve


def zoo_config(name: str) -> dict:
    """The zoo's configuration ``name`` (kwargs, defaults, paper row); an unknown name is one
    sentence with the close ones."""
    cfg = resolve(name)
    if cfg is None:
        raise unknown("model", name, CONFIGS)
    return cfg


def model_kwargs(name: str, **overrides) -> dict:
    """The :class:`ResNet` keyword arguments ``create_model(name, **overrides)`` uses.

    ``head_kwargs`` and ``block_kwargs`` given as dicts update the configuration's, so
    ``head_kwargs={"iters": 5}`` changes one hyper-parameter and keeps the rest.

    Examples:
        >>> model_kwargs("small_gsop2", head_kwargs={"iters": 5})["head_kwargs"]["iters"]
        5
    """
    cfg = zoo_config(name)
    kwargs = dict(cfg["kwargs"])
    kwargs.setdefault("num_classes", cfg["defaults"]["num_classes"])
    kwargs.setdefault("in_chans", cfg["defaults"]["in_chans"])
    for key in ("head_kwargs", "block_kwargs"):
        if isinstance(overrides.get(key), Mapping) and isinstance(kwargs.get(key), Mapping):
            overrides[key] = {**kwargs[key], **overrides[key]}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return kwargs


def build_model(name: str, **kwargs) -> nn.Module:
    """A zoo configuration (``ResNet(**model_kwargs(name, **kwargs))``) or a pretrained backbone
    (``torchvision:NAME`` / ``timm:NAME``, :func:`gsoplib.models.backbones.backbone_model`);
    randomly initialised unless a backbone's ``weights`` are given."""
    if is_backbone_name(name):
        return backbone_model(name, **{k: v for k, v in kwargs.items() if v is not None})
    return ResNet(**model_kwargs(name, **kwargs))


__all__ = ["build_model", "model_kwargs", "zoo_config"]
