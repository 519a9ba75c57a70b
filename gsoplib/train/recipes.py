"""Training recipes as named presets, and the learning-rate schedule they define.

A recipe fixes the optimiser (SGD with momentum and weight decay) and the schedule. Any field can
be overridden (``TrainConfig("small_gsop1", "fashion_mnist", recipe="gsop-cifar100", epochs=10)``,
or ``gsop train --lr``). The papers' recipes are kept as the papers state them; ``fast`` is this
library's own recipe for small images on a CPU budget (the bundled checkpoints are trained with
it); ``finetune`` is fast-MPN-COV's for a pretrained backbone with new second-order parts.

A recipe's ``lr`` is meant for its ``reference_batch``. Trained with another batch and no ``lr``
of its own, a run uses ``lr * batch / reference_batch`` (the linear scaling rule, Goyal et al.
2017): the ``fast`` recipe's 0.1 at batch 128 is 0.01875 at batch 24. Its warm-up is counted in
steps, ``warmup_epochs`` of them but at least ``warmup_min_steps`` (capped at a quarter of the
run): half an epoch of 72 images in batches of 24 is 1.5 steps, too short to warm anything.
``grad_clip`` bounds a step's gradient norm (``fast``: 5; a ResNet's 2048-d features make the
classifier's first steps large for a few images). ``new_lr_factor`` multiplies the lr of the
parts a fine-tuned model adds to a pretrained backbone (fast-MPN-COV's ``classifier_factor``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..registry import Registry, matching

RECIPES: Registry = Registry("recipe", {
    "gsop-imagenet": {
        "source": "GSoP-Net Sec. 4 (ImageNet): lr 0.1 divided by 10 every 30 epochs to 100",
        "epochs": 100,
        "batch_size": 160,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": False,
        "schedule": "step",
        "milestones": [30, 60, 90],
        "gamma": 0.1,
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
        "augment": True,
        "reference_batch": 160,
        "warmup_min_steps": 0,
        "grad_clip": None,
        "new_lr_factor": 1.0,
    },
    "gsop-cifar100": {
        "source": "GSoP-Net Sec. 4 (CIFAR-100): 110 epochs, lr 0.25 -> 0.025 -> 0.0025 at 80/95",
        "epochs": 110,
        "batch_size": 128,
        "lr": 0.25,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": False,
        "schedule": "step",
        "milestones": [80, 95],
        "gamma": 0.1,
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
        "augment": True,
        "reference_batch": 128,
        "warmup_min_steps": 0,
        "grad_clip": None,
        "new_lr_factor": 1.0,
    },
    "gmsop-imagenet64": {
        "source": "GM-SOP Sec. 3.3 (downsampled ImageNet 64x64): {50, 15, 10} epochs, lr 0.1, "
        "decay 0.1, batch 256, wd 5e-4",
        "epochs": 75,
        "batch_size": 256,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "nesterov": False,
        "schedule": "step",
        "milestones": [50, 65],
        "gamma": 0.1,
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
        "augment": True,
        "reference_batch": 256,
        "warmup_min_steps": 0,
        "grad_clip": None,
        "new_lr_factor": 1.0,
    },
    "gmsop-places365": {
        "source": "GM-SOP Sec. 3.4 (Places365 100x100): {25, 5, 5, 5} epochs, lr 0.1, decay 0.1",
        "epochs": 40,
        "batch_size": 256,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "nesterov": False,
        "schedule": "step",
        "milestones": [25, 30, 35],
        "gamma": 0.1,
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
        "augment": True,
        "reference_batch": 256,
        "warmup_min_steps": 0,
        "grad_clip": None,
        "new_lr_factor": 1.0,
    },
    "fast": {
        "source": "gsoplib: short cosine schedule with warm-up and label smoothing for small "
        "images on a CPU budget",
        "epochs": 8,
        "batch_size": 128,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "nesterov": True,
        "schedule": "cosine",
        "milestones": [],
        "gamma": 0.1,
        "warmup_epochs": 0.5,
        "label_smoothing": 0.1,
        "augment": True,
        "reference_batch": 128,
        "warmup_min_steps": 20,
        "grad_clip": 5.0,
        "new_lr_factor": 1.0,
    },
})

RECIPES["finetune"] = {
    "source": "fast-MPN-COV finetune.sh (fine-grained recognition on an ImageNet-pretrained "
    "backbone): lr 1.2e-3 at batch 10, wd 1e-3, the new parts' lr x5; cosine over 30 epochs "
    "with a short warm-up is gsoplib's choice",
    "epochs": 30,
    "batch_size": 10,
    "lr": 1.2e-3,
    "momentum": 0.9,
    "weight_decay": 1e-3,
    "nesterov": False,
    "schedule": "cosine",
    "milestones": [],
    "gamma": 0.1,
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "augment": True,
    "reference_batch": 10,
    "warmup_min_steps": 0,
    "grad_clip": None,
    "new_lr_factor": 5.0,
}

SCHEDULES = ("step", "cosine", "constant")


def list_recipes(pattern: str | None = None) -> list[str]:
    """The recipe names, those matching ``pattern`` (``"gsop-*"``) if given."""
    return sorted(matching(RECIPES, pattern))


def recipe(name: str) -> dict:
    """A copy of recipe ``name``'s fields (without its ``source`` note)."""
    return {
        k: (list(v) if isinstance(v, list) else v)
        for k, v in RECIPES.get(name).items()
        if k != "source"
    }


def scaled_lr(lr: float, batch_size: int, reference_batch: int) -> float:
    """The linear scaling rule: ``lr`` meant for ``reference_batch``, used at ``batch_size``."""
    return lr * batch_size / reference_batch


def warmup_steps(warmup_epochs: float, steps_per_epoch: int, epochs: int,
                 min_steps: int = 0) -> int:
    """Linear warm-up length in optimiser steps: ``warmup_epochs`` of them, rounded up, and at
    least ``min_steps``, the floor capped at a quarter of the run's steps; 0 without warm-up.

    Examples:
        >>> warmup_steps(0.5, 3, 8, min_steps=20)   # 72 images, batch 24: 24 steps in all
        6
        >>> warmup_steps(0.5, 469, 8, min_steps=20)  # Fashion-MNIST, batch 128
        235
    """
    if warmup_epochs <= 0:
        return 0
    floor = min(min_steps, (epochs * steps_per_epoch) // 4)
    return max(math.ceil(warmup_epochs * steps_per_epoch), floor)


def lr_factor(
    t: float,
    epochs: float,
    schedule: str,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    warmup_epochs: float = 0.0,
) -> float:
    """The multiplier of the base learning rate at training time ``t`` (in epochs, fractional).

    Linear warm-up from 0 over ``warmup_epochs``, then:
    step: ``gamma ** (number of milestones <= floor(t))``, changing at epoch boundaries;
    cosine: ``0.5 (1 + cos(pi (t - warmup) / (epochs - warmup)))``, per iteration, to 0 at the end;
    constant: 1.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
    warm = min(1.0, t / warmup_epochs) if warmup_epochs > 0 else 1.0
    if schedule == "step":
        return warm * gamma ** sum(1 for m in milestones if math.floor(t) >= m)
    if schedule == "cosine":
        span = max(epochs - warmup_epochs, 1e-12)
        progress = min(max((t - warmup_epochs) / span, 0.0), 1.0)
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    return warm
