"""Checkpoints: one .safetensors file whose metadata says how to rebuild and use the model.

The file holds the model's tensors and one metadata entry, ``gsoplib``, a JSON document::

    {"format": "gsoplib.checkpoint/1",
     "model": {"name": "small_gsop1", "kwargs": {"num_classes": 10, "in_chans": 1}},
     "data": {"name": "fashion_mnist", "classes": [...], "input_size": [28, 28],
              "in_chans": 1, "mean": [...], "std": [...], "options": {}},
     "train": {...the training configuration...}, "metrics": {...final metrics...},
     "versions": {"gsoplib": "...", "torch": "...", "python": "..."},
     "sha256": "<digest of every tensor's name, dtype, shape and bytes>"}

Loading reads only that: the model is rebuilt by ``create_model(name, **kwargs)`` and its weights
are checked against the digest and the rebuilt model's keys and shapes. Nothing is unpickled and
no code from the file runs; a file that is not such a checkpoint is refused with a
:class:`CheckpointError` whose message is one sentence.

Training's resume state (optimizer, epoch, random states, history) is a separate ``.pt`` file of
tensors and primitives only, written by :func:`save_state` and read by :func:`load_state` with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

import gsoplib

FORMAT = "gsoplib.checkpoint/1"
METADATA_KEY = "gsoplib"


class CheckpointError(ValueError):
    """A file that is not a usable gsoplib checkpoint; the message says why in one sentence."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode) and its metadata."""

    model: nn.Module
    meta: dict
    path: Path

    @property
    def model_name(self) -> str:
        return self.meta["model"]["name"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["data"]["classes"])

    @property
    def in_chans(self) -> int:
        return int(self.meta["data"]["in_chans"])

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.meta["data"]["input_size"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.meta["data"]["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.meta["data"]["std"])

    @property
    def metrics(self) -> dict:
        return dict(self.meta.get("metrics") or {})


def clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DistributedDataParallel's leading ``module.`` and torch.compile's ``_orig_mod.``."""
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
) -> Path:
    """Write ``model``'s weights and metadata (see the module docstring) atomically to ``path``.

    Every mapping must be JSON-serialisable. Returns the path written.
    """
    path = Path(path)
    tensors = {
        k: v.detach().cpu().contiguous().clone()
        for k, v in clean_state_dict(unwrap(model).state_dict()).items()
    }
    meta = {
        "format": FORMAT,
        "model": {"name": model_name, "kwargs": dict(model_kwargs or {})},
        "data": {
            "name": dataset,
            "classes": list(classes),
            "input_size": list(input_size),
            "in_chans": int(in_chans),
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "options": dict(data_options or {}),
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


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} {why}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's metadata, validated, without reading the weights."""
    path = Path(path)
    if not path.is_file():
        raise _refuse(path, "does not exist or is not a file; expected a .safetensors checkpoint.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise _refuse(
            path,
            "is a pickled PyTorch file (torch.save), which can run code when loaded; "
            "gsoplib reads only .safetensors checkpoints.",
        )
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise _refuse(
            path, f"is not a valid safetensors file (corrupt or truncated: {_one_line(error)})."
        ) from error
    if METADATA_KEY not in raw:
        raise _refuse(path, "is a safetensors file without gsoplib metadata to rebuild it from.")
    try:
        meta = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise _refuse(path, f"has corrupt gsoplib metadata ({_one_line(error)}).") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _refuse(path, f"has metadata format {found!r}; this gsoplib reads {FORMAT!r}.")
    missing = [k for k in ("model", "data", "sha256") if k not in meta]
    if missing:
        raise _refuse(path, f"has metadata without {', '.join(missing)}.")
    return meta


def load_checkpoint(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    model_factory: Callable[..., nn.Module] | None = None,
) -> Checkpoint:
    """Rebuild the model from the metadata alone and load its verified weights.

    Args:
        path: a file written by :func:`save_checkpoint`.
        device: where the model goes.
        model_factory: ``factory(name, **kwargs) -> nn.Module``; default
            :func:`gsoplib.models.create_model`.
    Returns:
        a :class:`Checkpoint` with the model in eval mode.
    Raises:
        CheckpointError: the file is missing, pickled, corrupt, truncated, from another format,
            names an unknown model, or its weights do not fit the rebuilt model.
    """
    path = Path(path)
    meta = read_metadata(path)
    try:
        tensors = safetensors.torch.load_file(str(path))
    except Exception as error:  # a header that parses can still point past the end of the file
        raise _refuse(
            path, f"is not a valid safetensors file (corrupt or truncated: {_one_line(error)})."
        ) from error
    if tensor_digest(tensors) != meta["sha256"]:
        raise _refuse(path, "has weights that do not match the checksum in its metadata (corrupt).")
    if model_factory is None:
        from gsoplib.models import create_model as model_factory
    name, kwargs = meta["model"]["name"], meta["model"].get("kwargs", {})
    try:
        model = model_factory(name, **kwargs)
    except (KeyError, ValueError, TypeError) as error:
        why = _one_line(error).rstrip(".")
        raise _refuse(path, f"names a model this gsoplib cannot build ({why}).") from error
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = [
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", wrong),
            )
            if keys
        ]
        raise _refuse(path, f"does not fit model {name!r} ({'; '.join(parts)}).")
    model.load_state_dict(tensors)
    return Checkpoint(model.to(device).eval(), meta, path)


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
