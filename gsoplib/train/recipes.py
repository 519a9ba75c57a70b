"""Training recipes as named presets, and the learning-rate schedule they define.

A recipe fixes the optimiser (SGD with momentum and weight decay) and the schedule. Any field can
be overridden (``TrainConfig.from_recipe("gsop-cifar100", epochs=10)``, or ``gsop train --lr``).
The papers' recipes are kept as the papers state them; ``fast`` is this library's own recipe for
small images on a CPU budget (the bundled checkpoints are trained with it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RECIPES: dict[str, dict] = {
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
    },
}

SCHEDULES = ("step", "cosine", "constant")


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def recipe(name: str) -> dict:
    """A copy of recipe ``name``'s fields (without its ``source`` note)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(list_recipes())}")
    return {
        k: (list(v) if isinstance(v, list) else v)
        for k, v in RECIPES[name].items()
        if k != "source"
    }


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
