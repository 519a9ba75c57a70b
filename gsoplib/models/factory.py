"""The zoo's networks by name, randomly initialised or with bundled weights: ``create_model``,
``list_models``, ``model_defaults`` (re-exported by :mod:`gsoplib.models`).

``create_model(name)`` builds (:mod:`gsoplib.models.build`); ``create_model("arch.tag",
pretrained=True)`` loads a bundled checkpoint through :func:`gsoplib.checkpoint.load_checkpoint`,
which itself builds with :mod:`gsoplib.models.build`: the factory sits above the loader, as
timm's ``_factory`` sits above its ``_builder``, and nothing below it imports it.
"""

from __future__ import annotations

from torch import nn

from ..bundled import bundled_files, bundled_name
from ..registry import UnknownNameError, matching, unknown
from .backbones import is_backbone_name
from .build import build_model, model_kwargs, zoo_config
from .zoo import CONFIGS


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Every named configuration, or those matching ``pattern`` (``"*gsop*"``; a pattern without
    a wildcard matches names that contain it; :func:`gsoplib.registry.matching`).
    ``pretrained=True``: the bundled checkpoints instead, named ``arch.tag`` as timm names
    pretrained weights (``small_gsop1.fmnist``; ``create_model(name, pretrained=True)`` builds
    one, :func:`gsoplib.pretrained.load_pretrained` also returns its metadata).

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
    cfg = zoo_config(name)
    return {**cfg["defaults"], "paper": cfg["paper"]}


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None,
                 pretrained: bool = False, **overrides) -> nn.Module:
    """The network ``name`` (see :func:`list_models`); keyword arguments override its config.
    A name ``torchvision:NAME`` or ``timm:NAME`` is a pretrained backbone with second-order parts
    (:func:`gsoplib.models.backbones.backbone_model`, with ``weights``, ``blocks``, ``head``...).

    ``pretrained=True`` with a bundled name ``arch.tag`` (``list_models(pretrained=True)``)
    returns that checkpoint's network with its weights, verified as
    :func:`gsoplib.checkpoint.load_checkpoint` verifies any file, in training mode like every
    new model (timm's convention: call ``.eval()`` before inference). Its configuration is the
    one it was trained with: ``num_classes`` and ``in_chans`` may only repeat it, and other
    overrides are refused.

    Examples:
        >>> import torch
        >>> create_model("small_gsop1", num_classes=10, in_chans=1)(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> net = create_model("small_gsop1.fmnist", pretrained=True).eval()
        >>> net(torch.zeros(1, 1, 28, 28)).shape, net.training
        (torch.Size([1, 10]), False)
    """
    if pretrained:
        return _bundled_model(name, num_classes, in_chans, overrides)
    return build_model(name, num_classes=num_classes, in_chans=in_chans, **overrides)


def _bundled_model(name: str, num_classes: int | None, in_chans: int | None,
                   overrides: dict) -> nn.Module:
    from gsoplib.checkpoint.load import load_checkpoint  # above build, below this factory

    files = bundled_files()
    key = name if name in files else bundled_name(str(name))
    if key not in files:
        tagged = matching(files, f"{name}.*") if isinstance(name, str) else []
        if tagged:
            raise UnknownNameError(
                f"{name!r} has bundled weights {', '.join(tagged)}; name one, e.g. "
                f"create_model({tagged[0]!r}, pretrained=True).")
        raise unknown("pretrained model", name, files)
    if overrides:
        raise ValueError(
            f"bundled weights fit only the configuration they were trained with; "
            f"create_model({key!r}, pretrained=True) takes no {', '.join(sorted(overrides))}.")
    checkpoint = load_checkpoint(files[key])
    for what, asked, has in (("classes", num_classes, len(checkpoint.classes)),
                             ("input channels", in_chans, checkpoint.in_chans)):
        if asked is not None and asked != has:
            raise ValueError(f"{key} was trained with {has} {what}, not {asked}; leave "
                             f"{'num_classes' if what == 'classes' else 'in_chans'} out, or "
                             f"train a new {key.rpartition('.')[0]} with `gsop train`.")
    return checkpoint.model.train()


__all__ = ["create_model", "list_models", "model_defaults", "model_kwargs"]
