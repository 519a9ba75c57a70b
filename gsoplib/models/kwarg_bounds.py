"""The declared type and range of every keyword argument a model's configuration may carry.

A checkpoint's metadata rebuilds its model from a name and keyword arguments
(:mod:`gsoplib.checkpoint`), and those come from the file. Shapes are checked against the file's
tensors, but many arguments change no shape and still decide what a forward pass costs or
whether it runs: ``head_kwargs={"iters": 10**9}`` builds a model whose first forward pass never
ends. :func:`check_model_kwargs` checks every argument of the configuration that would be built
(the zoo's configuration with the file's overrides) against the bounds below, before anything is
built, and refuses an argument that no bound declares.

The bounds are what the papers use with room for a user's own experiments:

- Newton-Schulz iterations 1 to 20 (the papers use 3 and 5; 10 is already at the exact root);
- residual blocks 1 to 200 per stage and 1 to 8 stages (ResNet-164 has 18 per stage,
  ResNet-101's third stage 23); widths and reduced channels 1 to 4,096; strides 1 to 4;
- a mixture of 1 to 128 components, K of them chosen (GM-SOP Sec. 3.2 tries N = 128, K = 32;
  its networks use 16 and 8); component widths 1 to 4,096, at most 4 projections;
- the GAP head's hidden width 0 to 32,896 (iSQRT-COV's feature count at 256 channels);
- weights of losses 0 to 10,000 (GM-SOP's alpha is 100, Fig. 2 tries 1,000), dropout 0 to 1,
  scales from 0.001
  to 1,000 (the gate's learned logit scale is capped at 100);
- names (forms, implementations, gates, routers) one of those the code knows.

A bound is a :class:`Bound`: what it accepts, and how an error sentence names it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..blocks import BLOCKS
from ..blocks.gsop import EMBED_IMPLS, FUSIONS, UPSAMPLES
from ..heads.components import COMPONENTS, GATE_BRANCHES
from ..heads.dispatch import EXECUTIONS
from ..heads.gate import GATE_FORMS, GATE_INITS, INPUT_NORMS, NOISE_MODES, ROUTERS, WEIGHTINGS
from .resnet import HEADS, MASK_LETTERS, RESIDUAL_BLOCKS, STEMS, parse_mask

MAX_ITERS = 20
MAX_DEPTH = 200
MAX_STAGES = 8
MAX_WIDTH = 4096
MAX_COMPONENTS = 128
MAX_CLASSES = 100_000
MAX_IN_CHANS = 16
MAX_MASK_CHARS = 200


class KwargError(ValueError):
    """A model keyword argument outside its declared bound, or one no bound declares.

    ``field`` is its dotted path (``model.kwargs.head_kwargs.iters``); the message reads
    "FIELD VALUE; expected WHAT" or "FIELD is not an argument WHAT takes (it takes ...)".
    """

    def __init__(self, field: str, value: Any, expected: str, *, unknown: str = "") -> None:
        self.field, self.value, self.expected = field, value, expected
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(
            f"{field} is not an argument {unknown} takes (it takes {expected})" if unknown
            else f"{field} {shown}; expected {expected}"
        )


@dataclass(frozen=True)
class Bound:
    """One argument's declared type and range: ``accepts(value)``; ``expected`` for messages."""

    expected: str
    test: Callable[[Any], bool]

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError, OverflowError):
            return False


def integer(low: int, high: int) -> Bound:
    """A whole number (not a bool, not a float) from ``low`` to ``high``."""
    return Bound(f"a whole number from {low:,} to {high:,}",
                 lambda v: type(v) is int and low <= v <= high)


def number(low: float, high: float) -> Bound:
    """A finite int or float from ``low`` to ``high``."""
    return Bound(f"a number from {low:g} to {high:g}",
                 lambda v: type(v) in (int, float) and math.isfinite(v) and low <= v <= high)


def flag() -> Bound:
    return Bound("true or false", lambda v: type(v) is bool)


def choice(names: Sequence[str] | Mapping) -> Bound:
    """One of ``names`` (a string)."""
    names = tuple(names)
    return Bound(f"one of {', '.join(map(repr, names))}", lambda v: type(v) is str and v in names)


def integers(low: int, high: int, min_len: int, max_len: int) -> Bound:
    """A list (or tuple) of ``min_len`` to ``max_len`` whole numbers from ``low`` to ``high``."""
    return Bound(
        f"a list of {min_len} to {max_len} whole numbers from {low:,} to {high:,}",
        lambda v: isinstance(v, (list, tuple)) and min_len <= len(v) <= max_len
        and all(type(n) is int and low <= n <= high for n in v),
    )


def optional(bound: Bound) -> Bound:
    """None or what ``bound`` accepts."""
    return Bound(f"null or {bound.expected}", lambda v: v is None or bound.accepts(v))


def either(first: Bound, second: Bound) -> Bound:
    return Bound(f"{first.expected}, or {second.expected}",
                 lambda v: first.accepts(v) or second.accepts(v))


def _mask(value: Any) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= MAX_MASK_CHARS
    return (isinstance(value, (list, tuple)) and 0 < len(value) <= MAX_STAGES
            and all(v is None or (type(v) is str and len(v) <= 40) for v in value))


CHANNELS = integer(1, MAX_WIDTH)
LOSS_WEIGHT = number(0, 10_000)
SCALE = number(1e-3, 1_000)

#: the ResNet's own arguments (:class:`gsoplib.models.ResNet`).
RESNET_BOUNDS: dict[str, Bound] = {
    "block": choice(RESIDUAL_BLOCKS),
    "layers": integers(1, MAX_DEPTH, 1, MAX_STAGES),
    "widths": integers(1, MAX_WIDTH, 1, MAX_STAGES),
    "stem": choice(STEMS),
    "stem_width": integer(1, 1024),
    "in_chans": integer(1, MAX_IN_CHANS),
    "num_classes": integer(1, MAX_CLASSES),
    "strides": optional(integers(1, 4, 1, MAX_STAGES)),
    "last_stride": optional(integer(1, 4)),
    "blocks": optional(Bound(
        f"a stage mask: a string of at most {MAX_MASK_CHARS} characters or a list of at most "
        f"{MAX_STAGES} block names", _mask)),
    "where": either(choice(("last", "all")), integer(1, MAX_DEPTH)),
    "block_kwargs": optional(Bound(
        f"an object, or a list of at most {MAX_STAGES} objects (one per stage)",
        lambda v: isinstance(v, Mapping) or (isinstance(v, (list, tuple)) and len(v) <= MAX_STAGES
                                             and all(isinstance(m, Mapping) for m in v)))),
    "omit_last_block": flag(),
    "head": optional(choice(HEADS)),
    "head_kwargs": optional(Bound("an object", lambda v: isinstance(v, Mapping))),
}

#: a pretrained backbone's (``torchvision:NAME``, ``timm:NAME``; :func:`backbone_model`).
#: ``weights`` is not among them: a checkpoint's own tensors are its weights, and a path from a
#: file is never read.
BACKBONE_BOUNDS: dict[str, Bound] = {
    key: RESNET_BOUNDS[key] for key in
    ("in_chans", "num_classes", "last_stride", "head", "head_kwargs")
} | {
    "blocks": RESNET_BOUNDS["blocks"],
    "block_kwargs": optional(Bound("an object", lambda v: isinstance(v, Mapping))),
}

#: every attention block's arguments (:data:`gsoplib.blocks.BLOCKS`), by name.
BLOCK_BOUNDS: dict[str, Bound] = {
    "rd_channels": optional(CHANNELS),
    "rd_stride": integer(1, 8),
    "pre_relu": flag(),
    "mid_act": flag(),
    "expansion": integer(1, 16),
    "embed_impl": choice(EMBED_IMPLS),
    "pool_size": integer(1, 64),
    "upsample": choice(UPSAMPLES),
    "fusion": choice(FUSIONS),
    "rd_ratio": number(1e-4, 1),
    "spatial_kernel": integer(1, 31),
    "gate_layer": choice(("sigmoid", "hard_sigmoid")),
}

#: every head's arguments (:data:`gsoplib.models.resnet.HEADS`), by name.
HEAD_BOUNDS: dict[str, Bound] = {
    "dropout": number(0, 1),
    "hidden": integer(0, 32_896),  # the GAP head's hidden width; 32,896 = C(C+1)/2 at C = 256
    "rd_channels": optional(CHANNELS),
    "iters": integer(1, MAX_ITERS),
    "memory_efficient": flag(),
    "compensate": flag(),
    "norm": flag(),
    "fc_init": choice(("default", "zeros")),
    "feature_scale": SCALE,
    "component": choice(COMPONENTS),
    "num_components": integer(1, MAX_COMPONENTS),
    "k": integer(1, MAX_COMPONENTS),
    "gate": choice(GATE_FORMS),
    "noise": optional(choice(NOISE_MODES)),
    "noise_epsilon": optional(number(0, 1)),
    "gate_init": optional(choice(GATE_INITS)),
    "random_ties": optional(flag()),
    "gate_input_norm": optional(choice(INPUT_NORMS)),
    "gate_router": optional(choice(ROUTERS)),
    "gate_logit_scale": optional(number(1e-3, 100)),
    "gate_learn_scale": optional(flag()),
    "gate_weighting": optional(choice(WEIGHTINGS)),
    "alpha": LOSS_WEIGHT,
    "load_weight": LOSS_WEIGHT,
    "z_loss_weight": LOSS_WEIGHT,
    "gate_detach": optional(flag()),
    "unbiased": flag(),
    "gate_branch": choice(GATE_BRANCHES),
    "sop_channels": integers(1, MAX_WIDTH, 0, 4),
    "gap_dim": integer(1, 16_384),  # 8,256 in GM-SOP's GAP-to-SR-SOP comparison
    "execution": choice(EXECUTIONS),
    "capacity_factor": optional(number(1e-3, 64)),
    "norm_init": number(0, 1_000),
}

#: constructor arguments a file may not set, and why.
NOT_FROM_FILES = {
    "act_layer": "a Python class, which no JSON value names",
    "in_channels": "set by the network from the feature map",
    "channels": "set by the network from the feature map",
    "backbone": "the checkpoint's model name",
    "weights": "a checkpoint's own tensors are its weights, and a path from a file is never read",
}


def accepted(factory: Callable) -> list[str]:
    """The keyword arguments of ``factory`` a file may set: its signature less NOT_FROM_FILES."""
    return [p for p in inspect.signature(factory).parameters
            if p not in NOT_FROM_FILES and p != "num_classes"]


def _check_all(prefix: str, kwargs: Any, bounds: Mapping[str, Bound],
               allowed: Sequence[str], what: str) -> None:
    if not isinstance(kwargs, Mapping):
        raise KwargError(prefix, kwargs, "an object of keyword arguments")
    for key, value in kwargs.items():
        field = f"{prefix}.{key}"
        if key not in allowed or key not in bounds:
            raise KwargError(field, value, ", ".join(k for k in allowed if k in bounds),
                             unknown=what)
        if not bounds[key].accepts(value):
            raise KwargError(field, value, bounds[key].expected)


def _block_names(mask: Any, stages: int) -> list[str]:
    """The blocks a valid mask places, as :data:`BLOCKS` names."""
    names, _ = parse_mask(mask if mask is not None else ["-"] * stages, stages)
    return [MASK_LETTERS.get(n, n) for n in names if n]


def _check_blocks(prefix: str, block_kwargs: Any, placed: list[str]) -> None:
    per_stage = block_kwargs if isinstance(block_kwargs, (list, tuple)) else [block_kwargs]
    for i, kwargs in enumerate(per_stage):
        field = f"{prefix}.block_kwargs" + (f"[{i}]" if per_stage is block_kwargs else "")
        for name in placed or list(BLOCKS):
            if name in BLOCKS:
                what = f"block {name!r}" if placed else "any block"
                allowed = accepted(BLOCKS[name]) if placed else list(BLOCK_BOUNDS)
                _check_all(field, kwargs or {}, BLOCK_BOUNDS, allowed, what)


def check_model_kwargs(kwargs: Mapping, *, backbone: bool = False,
                       prefix: str = "model.kwargs") -> None:
    """Raise :class:`KwargError` unless every argument of ``kwargs`` (a configuration as
    :class:`gsoplib.models.ResNet`, or :func:`backbone_model` when ``backbone``, takes it,
    head and block arguments included) is declared and within its bound."""
    bounds = BACKBONE_BOUNDS if backbone else RESNET_BOUNDS
    _check_all(prefix, kwargs, bounds, list(bounds),
               "a pretrained backbone" if backbone else "the ResNet")
    stages = 4 if backbone else len(kwargs.get("layers", (3, 4, 6, 3)))
    for key in ("widths", "strides"):
        if kwargs.get(key) is not None and len(kwargs[key]) != stages:
            raise KwargError(f"{prefix}.{key}", kwargs[key],
                             f"{stages} entries, one per stage of layers")
    try:
        placed = _block_names(kwargs.get("blocks"), stages)
        tick = parse_mask(kwargs.get("blocks") or ["-"] * stages, stages)[1]
    except ValueError as error:
        raise KwargError(f"{prefix}.blocks", kwargs.get("blocks"),
                         f"a valid stage mask ({error})") from None
    unknown = [n for n in placed if n not in BLOCKS]
    if unknown:
        raise KwargError(f"{prefix}.blocks", kwargs.get("blocks"),
                         f"blocks named in {', '.join(MASK_LETTERS)} or {', '.join(BLOCKS)}")
    if kwargs.get("block_kwargs") is not None:
        _check_blocks(prefix, kwargs["block_kwargs"], placed)
    head = kwargs.get("head") or ("isqrt" if tick else "gap")
    _check_all(f"{prefix}.head_kwargs", kwargs.get("head_kwargs") or {}, HEAD_BOUNDS,
               accepted(HEADS[head]), f"head {head!r}")


__all__ = [
    "BACKBONE_BOUNDS",
    "BLOCK_BOUNDS",
    "Bound",
    "HEAD_BOUNDS",
    "KwargError",
    "NOT_FROM_FILES",
    "RESNET_BOUNDS",
    "accepted",
    "check_model_kwargs",
]
