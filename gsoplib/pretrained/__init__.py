"""Checkpoints shipped with the package: small models trained by ``gsop train``.

Each ``NAME.safetensors`` beside this file is a :mod:`gsoplib.checkpoint` file whose metadata
records the model, the data, the recipe and the command's settings, the wall time, and the final
test metrics. ``benchmarks/train_pretrained.sh`` regenerates them all.

Examples:
    >>> from gsoplib.pretrained import list_pretrained, load_pretrained
    >>> "fmnist_small_gsop1" in list_pretrained()
    True
    >>> ck = load_pretrained("fmnist_small_gsop1")
    >>> type(ck.model).__name__, ck.classes[:2], ck.metrics["test_top1"] > 0.9
    ('ResNet', ['T-shirt/top', 'Trouser'], True)
"""

from __future__ import annotations

from pathlib import Path

import torch

from gsoplib.checkpoint import Checkpoint, load_checkpoint, read_metadata

FOLDER = Path(__file__).resolve().parent


def list_pretrained() -> list[str]:
    """Names of the bundled checkpoints, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.safetensors"))


def pretrained_path(name: str) -> Path:
    """The file of bundled checkpoint ``name``; ValueError naming the valid ones if unknown."""
    names = list_pretrained()
    if name not in names:
        raise ValueError(
            f"unknown pretrained checkpoint {name!r}; bundled: {', '.join(names) or 'none'}"
        )
    return FOLDER / f"{name}.safetensors"


def pretrained_info(name: str) -> dict:
    """Metadata of bundled checkpoint ``name`` without loading its weights."""
    return read_metadata(pretrained_path(name))


def load_pretrained(name: str, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild bundled checkpoint ``name`` (model in eval mode, with its metadata)."""
    return load_checkpoint(pretrained_path(name), device)


__all__ = ["list_pretrained", "load_pretrained", "pretrained_info", "pretrained_path"]
