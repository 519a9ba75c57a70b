"""Floor 3: the networks. ``create_model(name, num_classes=..., in_chans=...)`` builds any
configuration of :mod:`gsoplib.models.zoo`; ``list_models()`` names them."""

from __future__ import annotations

from .backbones import BackboneNet, backbone_model, is_backbone_name
from .factory import create_model, list_models, model_defaults, model_kwargs
from .flops import count_multiply_adds, model_gflops
from .params import count_parameters
from .resnet import HEADS, RESIDUAL_BLOCKS, ResNet, parse_mask
from .zoo import CONFIGS

__all__ = [
    "BackboneNet",
    "CONFIGS",
    "HEADS",
    "RESIDUAL_BLOCKS",
    "ResNet",
    "backbone_model",
    "count_multiply_adds",
    "count_parameters",
    "create_model",
    "is_backbone_name",
    "list_models",
    "model_defaults",
    "model_gflops",
    "model_kwargs",
    "parse_mask",
]
