"""Writing a checkpoint: the weights' digest, the versions, an atomic write, and the head's
defaults pinned in the metadata."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable, Mapping
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

import gsoplib
from gsoplib.heads.gate import NoisyTopKGate
from gsoplib.models.zoo import resolve
from gsoplib.state_dict import clean_state_dict, unwrap

from .metadata import FORMAT, METADATA_KEY


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    return {
        "gsoplib": gsoplib.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp)``, then rename over ``path``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    model_name: str,
    model_kwargs: Mapping | None = None,
    classes: list[str] | tuple[str, ...],
    input_size: tuple[int, int],
    in_chans: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dataset: str | None = None,
    data_options: Mapping | None = None,
    train_config: Mapping | None = None,
    metrics: Mapping | None = None,
    resize: int | None = None,
) -> Path:
    """Write ``model``'s weights and metadata (see the module docstring) atomically to ``path``.

    ``resize``: the shorter side images are resized to before a centre crop of ``input_size``
    (None: resized to ``input_size`` whole). Every mapping must be JSON-serialisable. Returns the
    path written.
    """
    path = Path(path)
    tensors = {
        k: v.detach().cpu().contiguous().clone()
        for k, v in clean_state_dict(unwrap(model).state_dict()).items()
    }
    meta = {
        "format": FORMAT,
        "model": {"name": model_name,
                  "kwargs": _pin_defaults(model_name, unwrap(model), model_kwargs)},
        "data": {
            "name": dataset,
            "classes": list(classes),
            "input_size": list(input_size),
            "in_chans": int(in_chans),
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "options": dict(data_options or {}),
            "resize": None if resize is None else int(resize),
        },
        "train": dict(train_config or {}),
        "metrics": dict(metrics or {}),
        "versions": versions(),
        "sha256": tensor_digest(tensors),
    }
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError as error:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {error}") from error
    blob = safetensors.torch.save(tensors, metadata={"format": "pt", METADATA_KEY: text})
    _atomic_write(path, lambda tmp: tmp.write_bytes(blob))
    return path


def _pin_defaults(model_name: str, model: nn.Module, kwargs: Mapping | None) -> dict:
    """``kwargs`` with every head keyword argument the model was built with written out: a zoo
    model's configured ``head_kwargs`` (the call's own win), and the form of its GM-SOP gate.
    A later change of the zoo's defaults then cannot change what the file computes."""
    kwargs = dict(kwargs or {})
    head_kwargs = kwargs.get("head_kwargs")
    if not isinstance(head_kwargs, (Mapping, type(None))):
        return kwargs
    config = resolve(model_name)
    zoo = dict(config["kwargs"].get("head_kwargs") or {}) if config else {}
    pinned = {**zoo, **(head_kwargs or {})}
    gate = next((m for m in model.modules() if isinstance(m, NoisyTopKGate)), None)
    if gate is not None:
        pinned["gate"] = gate.form
    if pinned:
        kwargs["head_kwargs"] = pinned
    return kwargs
