"""Floor 1: a model's state dict as it was written, without its training wrappers' names.

A leaf (torch only) that both :mod:`gsoplib.checkpoint` and :mod:`gsoplib.models.backbones`
read, so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DistributedDataParallel's leading ``module.`` and torch.compile's ``_orig_mod.``.

    Examples:
        >>> list(clean_state_dict({"module._orig_mod.fc.weight": torch.zeros(1)}))
        ['fc.weight']
    """
    out = {}
    for key, value in state.items():
        parts = [p for p in key.split(".") if p != "_orig_mod"]
        while parts and parts[0] == "module":
            parts = parts[1:]
        out[".".join(parts)] = value
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


__all__ = ["clean_state_dict", "unwrap"]
