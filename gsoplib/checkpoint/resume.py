"""Training's resume state: a separate .pt file of tensors and primitives, read with
``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .metadata import _one_line, _refuse
from .save import _atomic_write


def save_state(path: str | os.PathLike, state: Mapping) -> Path:
    """Write resume state (tensors, numbers, strings, lists, dicts only) atomically."""
    path = Path(path)
    _atomic_write(path, lambda tmp: torch.save(dict(state), tmp))
    return path


def load_state(path: str | os.PathLike) -> dict:
    """Read resume state with ``torch.load(weights_only=True)``: no code in the file can run."""
    path = Path(path)
    if not path.is_file():
        raise _refuse(path, "does not exist; there is no training state to resume from.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses any pickled global it does not allow
        raise _refuse(
            path, f"is not a readable resume state (corrupt, or holds code: {_one_line(error)})."
        ) from error
